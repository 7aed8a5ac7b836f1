"""The run directory: one per run, holding its config, its checkpoint and its metrics.

Layout (the same for text agents and image trainers)::

    config.json        the resolved config, with "agent" added (and any entries a trainer records)
    checkpoint.pt      latest checkpoint, replaced atomically (agents/runtime/run_checkpoint.py)
    checkpoints/       the last K checkpoints when a run keeps more than one (checkpoint_history.py)
    metrics.csv        one row per logged step (agents/runtime/logging.py); tensorboard/ beside it
    .lock              held by the process training into the directory (run_lock.py)

:func:`prepare_run_dir` is the one door into a directory, and it writes nothing before the
run has been checked against what the directory holds:

1. ``--resume`` of a directory with nothing to resume is an error (:class:`NoCheckpointError`),
   raised before anything is created;
2. the directory is created and locked (:class:`RunLockedError` if another process has it);
3. a fresh start never overwrites a run (:class:`RunExistsError`); a resume must be of the same
   agent and the same config (up to the keys that change how long or how visibly a run goes
   on, not what it computes), checked against ``config.json`` or, when that is gone, against
   the config the checkpoint stores; a resume of a run that already reached its last step is
   :class:`RunFinished` (the commands report it and exit 0);
4. only then are stale temp files of interrupted writes removed and ``config.json`` written.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from agents.runtime.checkpoint import load_checkpoint, remove_stale_temp_files
from agents.runtime.config import ConfigError, build_config, config_to_dict
from agents.runtime.distributed import broadcast_object, current_context
from agents.runtime.errors import (
    NoCheckpointError,
    RunDirError,
    RunExistsError,
    RunFinished,
    RunLockedError,
)
from agents.runtime.run_lock import holds_lock, lock_run_dir, unlock_run_dir
from textgan_envs.atomic_files import atomic_write_text

CHECKPOINT_NAME = "checkpoint.pt"
CONFIG_NAME = "config.json"
# Keys that may differ between the saved config and a resumed one: they change how long or how
# visibly a run goes on (or how much history it keeps, or where a verified cache lives), not what
# it computes up to a given step.
RESUMABLE_CHANGES = frozenset(
    {
        "total_steps",
        "progress",
        "tensorboard",
        "out_dir",
        "device",
        "keep_checkpoints",
        "d_pretrain_cache",
        "data_cache",
    }
)

__all__ = [
    "CHECKPOINT_NAME",
    "CONFIG_NAME",
    "RESUMABLE_CHANGES",
    "NoCheckpointError",
    "RunDirError",
    "RunExistsError",
    "RunFinished",
    "RunLockedError",
    "has_checkpoint",
    "has_run_state",
    "prepare_run_dir",
    "read_run_config",
    "release_run_dir",
]


def prepare_run_dir(
    out_dir: str | Path,
    cfg: Any,
    agent: str,
    resume: bool,
    *,
    resumable: frozenset[str] = RESUMABLE_CHANGES,
    extra: Mapping[str, Any] | None = None,
    total_steps: int | None = None,
    length_key: str = "total_steps",
    partial: Sequence[str] = (),
) -> Path:
    """Check, create, lock and record the run directory ``out_dir`` (see the module docstring).

    ``extra`` entries (e.g. where the data came from) are recorded beside the config and
    compared the same way. ``total_steps`` (named ``length_key`` in messages) is the step at
    which the run is finished. ``partial`` names checkpoint files (relative paths) of phases
    that run before the first run checkpoint, e.g. ``mle/mle_checkpoint.pt``: a directory
    holding one is resumable and is not overwritten by a fresh start.

    The lock stays held until :func:`release_run_dir` or the end of the process. In a
    data-parallel run rank 0 does all of it and every rank raises rank 0's error.
    """
    build_config(type(cfg), config_to_dict(cfg))  # same checks as the CLI, before any work
    run_dir = Path(out_dir)
    resolved = {"agent": agent, **config_to_dict(cfg), **(extra or {})}
    args = (run_dir, resolved, agent, resume, resumable, total_steps, length_key, tuple(partial))
    ctx = current_context()
    if not ctx.distributed:
        _prepare(*args)
        return run_dir
    error: BaseException | None = None
    if ctx.is_main:
        try:
            _prepare(*args)
        except Exception as exc:  # handed to every rank, so they all stop the same way
            error = exc
    error = broadcast_object(error, ctx)
    if error is not None:
        raise error
    return run_dir


def release_run_dir(run_dir: str | Path) -> None:
    """Release the lock :func:`prepare_run_dir` took (a trainer calls it when its run ends)."""
    unlock_run_dir(run_dir)


def _prepare(
    run_dir: Path,
    resolved: dict[str, Any],
    agent: str,
    resume: bool,
    resumable: frozenset[str],
    total_steps: int | None,
    length_key: str,
    partial: tuple[str, ...],
) -> None:
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"run directory {run_dir} is an existing file, not a directory (--out)")
    if resume and not has_run_state(run_dir, partial):
        raise NoCheckpointError(f"no checkpoint in {run_dir}; drop --resume to start a new run")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"cannot create run directory {run_dir}: {exc.strerror or exc} (--out)"
        ) from None
    took_lock = not holds_lock(run_dir)
    lock_run_dir(run_dir)
    try:
        if resume:
            _check_resume(run_dir, resolved, agent, resumable, total_steps, length_key)
        else:
            found = _run_state_file(run_dir, partial)
            if found is not None:
                raise RunExistsError(
                    f"{run_dir} already holds a run ({found}); pass --resume to continue it "
                    "or choose another --out"
                )
        remove_stale_temp_files(run_dir)
        config_path = run_dir / CONFIG_NAME
        atomic_write_text(config_path, json.dumps(resolved, indent=2, sort_keys=True) + "\n")
    except BaseException:
        if took_lock:
            unlock_run_dir(run_dir)
        raise


def _check_resume(
    run_dir: Path,
    resolved: dict[str, Any],
    agent: str,
    resumable: frozenset[str],
    total_steps: int | None,
    length_key: str,
) -> None:
    """Refuse a resume as another agent, with another config, or of a finished run."""
    header = _checkpoint_header(run_dir)
    saved, against = _saved_config(run_dir), ""
    if saved is None and header.get("config") is not None:
        saved, against = dict(header["config"]), " than its checkpoint stores"
    for holder in ((saved or {}).get("agent"), header.get("agent")):
        if holder is not None and holder != agent:
            raise RunDirError(
                f"cannot resume {run_dir} as agent {agent!r}: it holds a {holder!r} run"
            )
    if saved is not None:
        diffs = sorted(
            k
            for k in set(saved) | set(resolved)
            if k not in resumable and saved.get(k) != resolved.get(k)
        )
        if len(diffs) > 1 and "data_digest" in diffs:
            diffs.remove("data_digest")  # the changed settings explain the changed data
        if diffs:
            details = ", ".join(f"{k}: {saved.get(k)!r} -> {resolved.get(k)!r}" for k in diffs)
            if diffs == ["data_digest"]:
                details += (
                    "; the data differ from the run's: another corpus file, or oracle samples "
                    "drawn by an older version or under other CPU float kernels (resume on the "
                    "machine that started the run; the config key data_cache keeps a draw for "
                    "resumes elsewhere); or start a new run"
                )
            raise RunDirError(
                f"cannot resume {run_dir} with a different config{against} ({details})"
            )
    step = header.get("step")
    if total_steps is not None and step is not None and int(step) >= total_steps:
        raise RunFinished(
            f"{run_dir} is finished (step {int(step)} of {total_steps}); nothing to resume "
            f"(raise {length_key} to train on)"
        )


def _saved_config(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / CONFIG_NAME
    if not path.is_file():
        return None
    try:
        saved = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise RunDirError(f"{path} is not valid JSON ({exc}); restore it or remove it") from None
    if not isinstance(saved, dict):
        raise RunDirError(f"{path} holds a {type(saved).__name__}, not a JSON object")
    return saved


def _checkpoint_header(run_dir: Path) -> dict[str, Any]:
    """The small entries of the run checkpoint (agent, step, config); ``{}`` when there is none.

    The tensors are memory-mapped, not read: cheap even for a large checkpoint.
    """
    path = run_dir / CHECKPOINT_NAME
    if not path.is_file():
        return {}
    state = load_checkpoint(path, mmap=True)
    return {key: state.get(key) for key in ("agent", "step", "config")}


def read_run_config(run_dir: str | Path, agent: str | None = None) -> dict[str, Any]:
    """The ``config.json`` of a run directory, ``"agent"`` included.

    Raises :class:`RunDirError` when it is missing, or was written by another agent than
    ``agent`` (when given).
    """
    path = Path(run_dir) / CONFIG_NAME
    if not path.is_file():
        raise RunDirError(f"{run_dir} is not a run directory (no {CONFIG_NAME})")
    saved = json.loads(path.read_text())
    if agent is not None and saved.get("agent") != agent:
        raise RunDirError(f"{run_dir} holds a {saved.get('agent')!r} run, not a {agent!r} run")
    return saved


def has_checkpoint(run_dir: str | Path) -> bool:
    """Whether ``run_dir`` holds a run checkpoint to resume from."""
    return (Path(run_dir) / CHECKPOINT_NAME).is_file()


def has_run_state(run_dir: str | Path, partial: Sequence[str] = ()) -> bool:
    """Whether ``run_dir`` holds anything to resume: the run checkpoint or one of ``partial``."""
    return _run_state_file(Path(run_dir), tuple(partial)) is not None


def _run_state_file(run_dir: Path, partial: tuple[str, ...]) -> str | None:
    for name in (CHECKPOINT_NAME, *partial):
        if (run_dir / name).is_file():
            return name
    return None

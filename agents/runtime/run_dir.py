"""The run directory: one per run, holding its config, its checkpoint and its metrics.

Layout (the same for text agents and image trainers)::

    config.json        the resolved config, with "agent" added (and any entries a trainer records)
    checkpoint.pt      latest checkpoint, replaced atomically (agents/runtime/run_checkpoint.py)
    metrics.csv        one row per logged step (agents/runtime/logging.py); tensorboard/ beside it

A directory that holds a checkpoint is never overwritten by a fresh start, and a run is
resumed only with the config it was started with (up to the keys that change how long or how
visibly it runs, not what it computes).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agents.runtime.config import build_config, config_to_dict
from agents.runtime.distributed import barrier, current_context

CHECKPOINT_NAME = "checkpoint.pt"
CONFIG_NAME = "config.json"
# Keys that may differ between the saved config and a resumed one: they change how long or how
# visibly a run goes on, not what it computes up to a given step.
RESUMABLE_CHANGES = frozenset({"total_steps", "progress", "tensorboard", "out_dir", "device"})


class RunDirError(RuntimeError):
    """The run directory holds a different run, or a run that should have been resumed."""


class RunExistsError(RunDirError, FileExistsError):
    """A fresh start was asked for in a directory that already holds a run."""


def prepare_run_dir(
    out_dir: str | Path,
    cfg: Any,
    agent: str,
    resume: bool,
    *,
    resumable: frozenset[str] = RESUMABLE_CHANGES,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Create ``out_dir`` and write ``config.json``; refuse to clobber or to resume a different run.

    Without ``resume``, a directory that already holds a checkpoint is an error (pass
    ``--resume`` or pick a fresh ``--out``). With ``resume``, the saved config must equal
    ``cfg`` except for the keys in ``resumable``. ``extra`` entries (e.g. where the data came
    from) are recorded beside the config and compared the same way.
    """
    build_config(type(cfg), config_to_dict(cfg))  # same checks as the CLI, before any work
    run_dir = Path(out_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    resolved = {"agent": agent, **config_to_dict(cfg), **(extra or {})}
    config_path = run_dir / CONFIG_NAME
    if has_checkpoint(run_dir) and not resume:
        raise RunExistsError(
            f"{run_dir} already holds a run ({CHECKPOINT_NAME}); pass --resume to continue it "
            "or choose another --out"
        )
    if resume and config_path.exists():
        saved = json.loads(config_path.read_text())
        diffs = sorted(
            k
            for k in set(saved) | set(resolved)
            if k not in resumable and saved.get(k) != resolved.get(k)
        )
        if diffs:
            details = ", ".join(f"{k}: {saved.get(k)!r} -> {resolved.get(k)!r}" for k in diffs)
            raise RunDirError(f"cannot resume {run_dir} with a different config ({details})")
    if current_context().is_main:
        tmp = config_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(resolved, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, config_path)
    barrier(current_context())
    return run_dir


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

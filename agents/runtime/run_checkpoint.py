"""The run checkpoint and the resume contract every trainer follows.

A checkpoint holds everything a run needs to continue bit for bit: the modules, the
optimisers, every explicit ``torch.Generator``, the global RNG states (per rank in a
data-parallel run) and a :class:`RunState` (the step counter plus small scalar and tensor
state such as a moving-average baseline or BEGAN's k_t). A trainer

1. calls :func:`resume_or_start` once its modules, optimisers and generators exist: it loads
   the checkpoint when resuming one, and writes the step-0 checkpoint otherwise;
2. calls :func:`save_run_checkpoint` every so often and at the end (after
   :func:`~agents.runtime.guards.check_finite`, so a poisoned state never overwrites a good one).

A run killed at any point and resumed therefore continues exactly like one that was never
interrupted (tested with a real SIGKILL in tests/test_resume_kill.py).

Every checkpoint also stores the run's ``config.json`` (``"config"``), so a resume can be
checked against it even when ``config.json`` is gone. ``keep`` > 1 keeps the last ``keep``
checkpoints as step files beside ``checkpoint.pt`` (:mod:`agents.runtime.checkpoint_history`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from agents.runtime import checkpoint_history as history
from agents.runtime.checkpoint import CheckpointError, atomic_save, load_checkpoint
from agents.runtime.distributed import barrier, current_context, gather_objects
from agents.runtime.run_dir import CHECKPOINT_NAME, CONFIG_NAME, has_checkpoint
from agents.runtime.seeding import rng_state, set_rng_state

CHECKPOINT_FORMAT = "textgan-run"
CHECKPOINT_VERSION = 1


@dataclass
class RunState:
    """Step counter and small state saved with every checkpoint.

    ``step`` counts completed steps; ``scalars`` holds floats such as a moving-average baseline
    or a running log-partition estimate (``None`` until first set); ``tensors`` holds small
    tensors (a window of summed losses, code statistics).
    """

    step: int = 0
    scalars: dict[str, float | None] = field(default_factory=dict)
    tensors: dict[str, Tensor] = field(default_factory=dict)


def save_run_checkpoint(
    run_dir: str | Path,
    state: RunState,
    modules: Mapping[str, nn.Module],
    optimizers: Mapping[str, torch.optim.Optimizer],
    generators: Mapping[str, torch.Generator],
    agent: str,
    keep: int = 1,
) -> Path:
    """Write modules, optimisers, generator states, global RNGs and ``state`` atomically.

    Collective in a data-parallel run: every rank calls it, rank 0 writes (with every rank's
    random streams, so a resumed run continues each of them), the others wait for the file.
    ``keep`` > 1 also keeps the last ``keep`` checkpoints as ``checkpoints/step-N.pt``.
    """
    if keep < 1:
        raise ValueError(f"keep must be >= 1 (checkpoints kept), got {keep}")
    ctx = current_context()
    per_rank = gather_objects(
        {"generators": {n: g.get_state() for n, g in generators.items()}, "rng": rng_state()}, ctx
    )
    path = Path(run_dir) / CHECKPOINT_NAME
    if not ctx.is_main:
        barrier(ctx)
        return path
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "agent": agent,
        "step": int(state.step),
        "scalars": {k: (None if v is None else float(v)) for k, v in state.scalars.items()},
        "tensors": {k: v.detach().cpu() for k, v in state.tensors.items()},
        "modules": {name: m.state_dict() for name, m in modules.items()},
        "optimizers": {name: o.state_dict() for name, o in optimizers.items()},
        "generators": {name: g.get_state() for name, g in generators.items()},
        "rng": rng_state(),
        "world_size": ctx.world_size,
        "config": _run_config(run_dir),
    }
    policy = modules.get("policy")
    if policy is not None and hasattr(policy, "config"):
        payload["policy_config"] = policy.config()  # lets `textgan sample` rebuild the generator
    if ctx.distributed:
        payload["rank_states"] = per_rank
    if keep == 1:
        atomic_save(payload, path)
    else:
        step_file = atomic_save(payload, history.step_path(run_dir, state.step))
        history.publish_latest(step_file, path)
    history.prune(run_dir, keep, state.step)
    barrier(ctx)
    return path


def _run_config(run_dir: str | Path) -> dict[str, Any] | None:
    """The run's ``config.json`` as stored in its checkpoints (``None`` when there is none)."""
    path = Path(run_dir) / CONFIG_NAME
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def load_run_checkpoint(
    run_dir: str | Path,
    modules: Mapping[str, nn.Module],
    optimizers: Mapping[str, torch.optim.Optimizer],
    generators: Mapping[str, torch.Generator],
    agent: str | None = None,
    map_location: str | torch.device = "cpu",
) -> RunState:
    """Restore everything :func:`save_run_checkpoint` wrote into the given objects; return the state.

    Refuses a checkpoint of another agent, one lacking any of the given objects, and one
    written by a different number of processes than this run has.
    """
    path = Path(run_dir) / CHECKPOINT_NAME
    ckpt = load_checkpoint(
        path,
        required_keys=("format", "step", "modules", "optimizers", "generators", "rng"),
        map_location=map_location,
    )
    if ckpt["format"] != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is a {ckpt['format']!r} file, not a textgan run checkpoint")
    if agent is not None and ckpt.get("agent") != agent:
        raise CheckpointError(f"{path} was written by agent {ckpt.get('agent')!r}, not {agent!r}")
    ctx = current_context()
    saved_world = int(ckpt.get("world_size", 1))
    if saved_world != ctx.world_size:
        raise CheckpointError(
            f"{path} was written by {saved_world} process(es); resume it with the same "
            f"number (this run has {ctx.world_size})"
        )
    for kind, wanted, saved in (
        ("module", modules, ckpt["modules"]),
        ("optimizer", optimizers, ckpt["optimizers"]),
        ("generator", generators, ckpt["generators"]),
    ):
        missing = sorted(set(wanted) - set(saved))
        if missing:
            raise CheckpointError(f"{path} lacks {kind} state for: {', '.join(missing)}")
    for kind, objects, saved in (
        ("module", modules, ckpt["modules"]),
        ("optimizer", optimizers, ckpt["optimizers"]),
    ):
        for name, obj in objects.items():
            try:
                obj.load_state_dict(saved[name])
            except (RuntimeError, ValueError, KeyError) as exc:
                lines = [line.strip() for line in str(exc).strip().splitlines()]
                first = lines[1] if len(lines) > 1 else lines[0]
                raise CheckpointError(
                    f"{path}: the {kind} state {name!r} does not fit this run (was the "
                    f"checkpoint written with another config?): {first}"
                ) from exc
    mine = ckpt["rank_states"][ctx.rank] if ctx.distributed else ckpt
    for name, gen in generators.items():
        gen.set_state(mine["generators"][name].to("cpu"))
    set_rng_state(mine["rng"])
    return RunState(
        step=int(ckpt["step"]),
        scalars=dict(ckpt.get("scalars", {})),
        tensors=dict(ckpt.get("tensors", {})),
    )


def resume_or_start(
    run_dir: str | Path,
    resume: bool,
    modules: Mapping[str, nn.Module],
    optimizers: Mapping[str, torch.optim.Optimizer],
    generators: Mapping[str, torch.Generator],
    agent: str,
    device: str | torch.device = "cpu",
    scalars: Mapping[str, float | None] | None = None,
    tensors: Mapping[str, Tensor] | None = None,
    keep: int = 1,
) -> tuple[RunState, bool]:
    """Load the checkpoint when resuming one, else write the step-0 checkpoint; return ``(state, resumed)``.

    ``scalars`` and ``tensors`` are the initial small state of a fresh start. A resume
    without a run checkpoint (only a pre-training one, see ``prepare_run_dir(partial=...)``)
    starts at step 0. ``keep`` is :func:`save_run_checkpoint`'s.
    """
    if resume and has_checkpoint(run_dir):
        return load_run_checkpoint(run_dir, modules, optimizers, generators, agent, device), True
    state = RunState(step=0, scalars=dict(scalars or {}), tensors=dict(tensors or {}))
    save_run_checkpoint(run_dir, state, modules, optimizers, generators, agent, keep=keep)
    return state, False

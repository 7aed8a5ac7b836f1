"""Shared run-loop pieces for every agent: run directory, checkpoints, resume, NaN guard, logging.

Not a base class: each agent's ``train(cfg)`` reads top to bottom and calls these functions.

Run directory layout (``cfg.out_dir``)::

    config.json        the resolved config, with "agent" added
    checkpoint.pt      latest checkpoint, replaced atomically (agents/checkpoint.py)
    metrics.csv        one row per logged step (agents/metric_log.py); tensorboard/ beside it

Reproducibility contract: all randomness of a run flows from ``cfg.seed`` through explicit
``torch.Generator`` objects plus the global RNGs, and every one of them is in the checkpoint,
together with the modules, optimisers, step counter and any scalar state (baselines, running
log-partition). A run killed at any point and resumed therefore continues bit-for-bit like one
that was never interrupted (tested with a real SIGKILL in tests/test_resume_kill.py).
"""

from __future__ import annotations

import json
import math
import os
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from agents.checkpoint import (
    CheckpointError,
    atomic_save,
    load_checkpoint,
    rng_state,
    set_rng_state,
)
from agents.config import config_to_dict
from agents.metric_log import MetricLogger

CHECKPOINT_NAME = "checkpoint.pt"
CONFIG_NAME = "config.json"
CHECKPOINT_FORMAT = "textgan-run"
CHECKPOINT_VERSION = 1
# Keys that may differ between the saved config and a resumed one: they change how long or how
# visibly a run goes on, not what it computes up to a given step.
RESUMABLE_CHANGES = frozenset({"total_steps", "progress", "tensorboard", "out_dir", "device"})


class NonFiniteError(FloatingPointError):
    """A reward, loss or weight became NaN/inf; the message names the quantity and the step."""


class RunDirError(RuntimeError):
    """The run directory holds a different run, or a run that should have been resumed."""


@dataclass
class RunState:
    """Step counters and small scalar state saved with every checkpoint.

    ``step`` counts completed adversarial (generator) steps; ``scalars`` holds floats such as a
    moving-average baseline or a running log-partition estimate (``None`` until first set).
    """

    step: int = 0
    scalars: dict[str, float | None] = field(default_factory=dict)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch global RNGs (explicit generators are seeded by their owners)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def make_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded with ``seed`` (one per independent random stream)."""
    gen = torch.Generator(device=device)
    gen.manual_seed(int(seed))
    return gen


def prepare_run_dir(out_dir: str | Path, cfg: Any, agent: str, resume: bool) -> Path:
    """Create ``out_dir`` and write ``config.json``; refuse to clobber or to resume a different run.

    Without ``resume``, a directory that already holds a checkpoint is an error (pass
    ``--resume`` or pick a fresh ``--out``). With ``resume``, the saved config must equal
    ``cfg`` except for the keys in :data:`RESUMABLE_CHANGES`.
    """
    run_dir = Path(out_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    resolved = {"agent": agent, **config_to_dict(cfg)}
    config_path = run_dir / CONFIG_NAME
    if (run_dir / CHECKPOINT_NAME).exists() and not resume:
        raise RunDirError(
            f"{run_dir} already holds a run ({CHECKPOINT_NAME}); pass --resume to continue it "
            "or choose another --out"
        )
    if resume and config_path.exists():
        saved = json.loads(config_path.read_text())
        diffs = sorted(
            k
            for k in set(saved) | set(resolved)
            if k not in RESUMABLE_CHANGES and saved.get(k) != resolved.get(k)
        )
        if diffs:
            details = ", ".join(f"{k}: {saved.get(k)!r} -> {resolved.get(k)!r}" for k in diffs)
            raise RunDirError(f"cannot resume {run_dir} with a different config ({details})")
    tmp = config_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(resolved, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, config_path)
    return run_dir


def read_run_config(run_dir: str | Path) -> dict[str, Any]:
    """The ``config.json`` of a run directory (raises ``RunDirError`` when missing)."""
    path = Path(run_dir) / CONFIG_NAME
    if not path.is_file():
        raise RunDirError(f"{run_dir} is not a run directory (no {CONFIG_NAME})")
    return json.loads(path.read_text())


def save_run_checkpoint(
    run_dir: str | Path,
    state: RunState,
    modules: Mapping[str, nn.Module],
    optimizers: Mapping[str, torch.optim.Optimizer],
    generators: Mapping[str, torch.Generator],
    agent: str,
) -> Path:
    """Write modules, optimisers, generator states, global RNGs and ``state`` atomically."""
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "agent": agent,
        "step": int(state.step),
        "scalars": {k: (None if v is None else float(v)) for k, v in state.scalars.items()},
        "modules": {name: m.state_dict() for name, m in modules.items()},
        "optimizers": {name: o.state_dict() for name, o in optimizers.items()},
        "generators": {name: g.get_state() for name, g in generators.items()},
        "rng": rng_state(),
    }
    return atomic_save(payload, Path(run_dir) / CHECKPOINT_NAME)


def load_run_checkpoint(
    run_dir: str | Path,
    modules: Mapping[str, nn.Module],
    optimizers: Mapping[str, torch.optim.Optimizer],
    generators: Mapping[str, torch.Generator],
    agent: str | None = None,
    map_location: str | torch.device = "cpu",
) -> RunState:
    """Restore everything :func:`save_run_checkpoint` wrote into the given objects; return the state."""
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
    for kind, wanted, saved in (
        ("module", modules, ckpt["modules"]),
        ("optimizer", optimizers, ckpt["optimizers"]),
        ("generator", generators, ckpt["generators"]),
    ):
        missing = sorted(set(wanted) - set(saved))
        if missing:
            raise CheckpointError(f"{path} lacks {kind} state for: {', '.join(missing)}")
    for name, module in modules.items():
        module.load_state_dict(ckpt["modules"][name])
    for name, opt in optimizers.items():
        opt.load_state_dict(ckpt["optimizers"][name])
    for name, gen in generators.items():
        gen.set_state(ckpt["generators"][name].to("cpu"))
    set_rng_state(ckpt["rng"])
    return RunState(step=int(ckpt["step"]), scalars=dict(ckpt.get("scalars", {})))


def has_checkpoint(run_dir: str | Path) -> bool:
    """Whether ``run_dir`` holds a run checkpoint to resume from."""
    return (Path(run_dir) / CHECKPOINT_NAME).is_file()


def check_finite(name: str, value: Tensor | float, step: int) -> None:
    """Raise :class:`NonFiniteError` naming ``name`` and ``step`` if ``value`` has NaN or inf.

    Call it on rewards, losses and weights *before* the optimiser step and before any
    checkpoint, so the last good checkpoint on disk is never overwritten by a poisoned state.
    """
    if isinstance(value, Tensor):
        ok = bool(torch.isfinite(value).all())
    else:
        ok = math.isfinite(float(value))
    if not ok:
        raise NonFiniteError(
            f"{name} is not finite (NaN or inf) at step {step}; stopped, the last good "
            f"checkpoint (if any) is left intact"
        )


def grad_global_norm(parameters) -> float:
    """Global L2 norm of the gradients (0.0 when none), for logging."""
    norms = [p.grad.detach().norm() for p in parameters if p.grad is not None]
    if not norms:
        return 0.0
    return float(torch.linalg.vector_norm(torch.stack(norms)))


def open_logger(
    run_dir: str | Path, state: RunState, resumed: bool, tensorboard: bool
) -> MetricLogger:
    """``metrics.csv`` (+ TensorBoard) in ``run_dir``; a resumed run drops rows past its checkpoint."""
    return MetricLogger(
        run_dir,
        name="metrics",
        tensorboard=tensorboard,
        resume_from_step=state.step if resumed else None,
    )


def progress_bar(total: int, initial: int, enabled: bool, desc: str):
    """A tqdm bar over adversarial steps that starts at ``initial`` when resuming."""
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled, desc=desc, dynamic_ncols=True)

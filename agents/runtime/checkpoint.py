"""Atomic, safely loaded checkpoint files, shared by every trainer.

Why: a run killed mid-write must never leave a half-written file where the last
good checkpoint was, and a checkpoint from somewhere else must never be
unpickled. So saves go to a temporary file in the same directory and are
renamed over the target (atomic on POSIX), and loads use
``torch.load(weights_only=True)`` and turn every failure into one clear error. A process
killed mid-write leaves its temporary file behind (``.NAME.*.tmp``): the run layer removes
those with :func:`remove_stale_temp_files` when the run starts or resumes, under its lock.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from agents.runtime.run_lock import LOCK_NAME
from textgan_envs.atomic_files import atomic_write


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, truncated, foreign or lacks required entries."""


def token_digest(*tokens: torch.Tensor) -> str:
    """A short SHA-256 of integer token tensors (values and shapes, device-independent).

    Recorded beside what was trained on them (the MLE checkpoint, a run's ``config.json``), so
    a resume refuses data that differ from the original, e.g. oracle samples drawn another way.
    """
    digest = hashlib.sha256()
    for tensor in tokens:
        array = tensor.detach().to("cpu", torch.int64).contiguous()
        digest.update(repr(tuple(array.shape)).encode())
        digest.update(array.numpy().tobytes())
    return digest.hexdigest()[:16]


def cpu_capability() -> str:
    """ATen's CPU kernel set in this process (``AVX2``, ``AVX512``, ...; ``ATEN_CPU_CAPABILITY``).

    Recorded beside :func:`token_digest` where data were drawn: oracle samples of the portable
    route can differ in a few sequences of 10,000 between kernel sets (float rounding at a class
    boundary moves a draw), so a refusal can name the setting that draws the same data.
    """
    return str(torch.backends.cpu.get_cpu_capability())


def atomic_save(obj: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write ``obj`` with ``torch.save`` atomically (:func:`atomic_write`)."""
    return atomic_write(path, lambda handle: torch.save(dict(obj), handle))


def load_checkpoint(
    path: str | os.PathLike[str],
    required_keys: Iterable[str] = (),
    map_location: str | torch.device = "cpu",
    mmap: bool = False,
) -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``; raise :class:`CheckpointError` on any problem.

    ``mmap=True`` maps the tensors instead of reading them: cheap when only the small entries
    (step, agent, config) are wanted.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except Exception as exc:  # truncated zip, foreign pickle, random bytes, ...
        raise CheckpointError(
            f"checkpoint {path} is corrupt, truncated or not a textgan checkpoint "
            f"(refused to unpickle it): {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(state).__name__}, expected a dict")
    missing = [key for key in required_keys if key not in state]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks required entries: {', '.join(missing)}")
    return state


#: What an interrupted atomic write leaves: ``atomic_save``'s ``.NAME.*.tmp`` and the
#: ``NAME.tmp`` / ``.NAME.tmp`` of the other atomic writers (config.json, the bench's files).
TEMP_PATTERN = "*.tmp"


def remove_stale_temp_files(directory: str | os.PathLike[str]) -> list[Path]:
    """Delete the temp files of interrupted atomic writes in ``directory`` and its subdirectories.

    One level deep (``mle/``, ``checkpoints/``, ``snapshots/``), never into a subdirectory that
    holds a lock file of its own (another run). Only safe while no other process writes there:
    the run layer calls it under the run's lock. Returns the removed paths.
    """
    root = Path(directory)
    folders = [root] + [
        sub for sub in root.iterdir() if sub.is_dir() and not (sub / LOCK_NAME).exists()
    ]
    removed: list[Path] = []
    for folder in folders:
        for tmp in folder.glob(TEMP_PATTERN):
            if tmp.is_file():
                tmp.unlink(missing_ok=True)
                removed.append(tmp)
    return removed

"""Atomic, safely loaded checkpoint files, shared by every trainer.

Why: a run killed mid-write must never leave a half-written file where the last
good checkpoint was, and a checkpoint from somewhere else must never be
unpickled. So saves go to a temporary file in the same directory and are
renamed over the target (atomic on POSIX), and loads use
``torch.load(weights_only=True)`` and turn every failure into one clear error.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, truncated, foreign or lacks required entries."""


def atomic_save(obj: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write ``obj`` with ``torch.save`` to a temp file, fsync it, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(dict(obj), handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


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

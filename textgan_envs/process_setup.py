"""The process-wide CPU settings every ``textgan`` process starts with, in one place.

The command line, the bench's worker processes and the ranks torchrun starts call
:func:`tune_process` before any tensor work; a library user can call it once at the top of
their own script. Each setting changes the whole process, so importing the package never does.
"""

from __future__ import annotations

from typing import NamedTuple

from textgan_envs.allocator import retain_freed_memory
from textgan_envs.denormals import flush_denormals

__all__ = ["ProcessSettings", "tune_process"]


class ProcessSettings(NamedTuple):
    """Which settings :func:`tune_process` could apply."""

    retained_freed_memory: bool
    """glibc keeps freed blocks for reuse (``allocator.py``)."""
    flushed_denormals: bool
    """every CPU thread flushes float32 denormals to zero (``denormals.py``)."""


def tune_process() -> ProcessSettings:
    """Keep freed heap memory and flush denormals; each returns ``False`` where it cannot apply."""
    return ProcessSettings(
        retained_freed_memory=retain_freed_memory(),
        flushed_denormals=flush_denormals(warn=False),
    )

"""Files written whole or not at all: a temp file beside the target, fsynced, renamed over it.

Why: a process killed mid-write must never leave half a file where a good one was (a
checkpoint, a run's ``config.json``, a vocabulary, a bench record). ``os.replace`` is atomic
on POSIX, so readers see the old file or the new one. A killed writer leaves ``.NAME.*.tmp``,
which the run layer removes under its lock (``agents.runtime.remove_stale_temp_files``).
It lives in the lowest package so every layer writes files the same way.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

#: Permissions of shared outputs (records, configs, data): readable by everyone, like ``open``'s.
WORLD_READABLE = 0o644


def atomic_write(
    path: str | os.PathLike[str], write: Callable[[BinaryIO], object], mode: int | None = None
) -> Path:
    """Call ``write`` on a temp file beside ``path``, fsync it, then rename it over ``path``.

    ``mode``: the file's permissions (else mkstemp's 0600, right for checkpoints).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        if mode is not None:
            os.chmod(tmp_name, mode)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike[str], text: str, mode: int = WORLD_READABLE) -> Path:
    """:func:`atomic_write` of ``text`` as UTF-8, world-readable by default."""
    return atomic_write(path, lambda handle: handle.write(text.encode("utf-8")), mode=mode)

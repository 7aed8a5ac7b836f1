"""One writer per run directory: an exclusive advisory lock held for the run's life.

Why ``flock`` on a file in the directory: the kernel drops the lock when its holder dies, so a
run killed with SIGKILL never leaves a stale lock (nothing to clean up, no pid to test for
liveness), and a second writer is told at once instead of interleaving rows into the first
one's ``metrics.csv``. The holder writes its pid into the lock file so the refusal can name it.

The lock file (``.lock``) stays in the directory after the run: deleting it would let a later
writer lock a fresh file while an earlier one still holds the old, unlinked one.

Locks belong to the process. Taking one the process already holds is a no-op, so a trainer
may prepare its directory more than once (resume right after a start, in one process);
another process is always refused. Advisory: tools that ignore it (``rm``, an editor) are not
stopped.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from agents.runtime.errors import RunLockedError

LOCK_NAME = ".lock"

_HELD: dict[Path, int] = {}  # resolved run directory -> fd holding its lock


def _key(run_dir: str | Path) -> Path:
    return Path(run_dir).resolve()


def lock_run_dir(run_dir: str | Path) -> Path:
    """Take the exclusive lock of ``run_dir`` (which must exist); :class:`RunLockedError` if taken.

    Returns the lock file's path.
    """
    key = _key(run_dir)
    path = key / LOCK_NAME
    if key in _HELD:
        return path
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _read_pid(fd)
        os.close(fd)
        who = f"process {holder}" if holder else "another process"
        raise RunLockedError(
            f"{run_dir} is in use by {who} (lock {path}); wait for that run to end or choose "
            "another --out"
        ) from None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _HELD[key] = fd
    return path


def unlock_run_dir(run_dir: str | Path) -> None:
    """Release this process's lock of ``run_dir`` (nothing happens if it holds none)."""
    fd = _HELD.pop(_key(run_dir), None)
    if fd is not None:
        os.close(fd)  # closing the last descriptor of the open file releases the flock


def holds_lock(run_dir: str | Path) -> bool:
    """Whether this process holds the lock of ``run_dir``."""
    return _key(run_dir) in _HELD


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode().strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None

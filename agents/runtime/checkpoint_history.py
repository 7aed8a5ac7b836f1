"""The last K checkpoints of a run: step-numbered files under ``checkpoints/``, the newest linked as ``checkpoint.pt``.

Why hard links: ``checkpoint.pt`` stays the one file every reader and ``--resume`` opens, and
keeping history costs no second write: the step file is written once (atomically) and
``checkpoint.pt`` is replaced by a link to it (``os.replace`` of a fresh link, atomic too).
So K kept checkpoints take K checkpoints of disk, the newest counted once. Where the file
system has no hard links the step file is copied instead.

With ``keep=1`` (the default) nothing of this is used: ``checkpoint.pt`` is overwritten in
place, and step files left by an earlier ``keep`` are removed.

A step file newer than the checkpoint being written belongs to a future that was abandoned
(``checkpoint.pt`` was replaced by an older one by hand, or a run was killed between writing
a step file and linking it): it is removed, so the kept files are always the last K steps of
the run as it went on.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

HISTORY_DIR = "checkpoints"
_PREFIX, _SUFFIX = "step-", ".pt"


def step_path(run_dir: str | Path, step: int) -> Path:
    """Where the checkpoint of ``step`` is kept: ``checkpoints/step-00000010.pt``."""
    return Path(run_dir) / HISTORY_DIR / f"{_PREFIX}{int(step):08d}{_SUFFIX}"


def kept_checkpoints(run_dir: str | Path) -> dict[int, Path]:
    """The kept step files of a run, by step (empty when it keeps none)."""
    folder = Path(run_dir) / HISTORY_DIR
    if not folder.is_dir():
        return {}
    out: dict[int, Path] = {}
    for path in folder.glob(f"{_PREFIX}*{_SUFFIX}"):
        digits = path.name[len(_PREFIX) : -len(_SUFFIX)]
        if digits.isdigit():
            out[int(digits)] = path
    return dict(sorted(out.items()))


def publish_latest(step_file: Path, latest: Path) -> None:
    """Make ``latest`` the same file as ``step_file``, atomically (a hard link, else a copy)."""
    tmp = latest.with_name(f".{latest.name}.link.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(step_file, tmp)
    except OSError:
        shutil.copyfile(step_file, tmp)
    os.replace(tmp, latest)


def prune(run_dir: str | Path, keep: int, current_step: int) -> list[Path]:
    """Keep the newest ``keep`` step files up to ``current_step`` (none when ``keep <= 1``); return the removed ones."""
    kept = kept_checkpoints(run_dir)
    if not kept:
        return []
    steps = [s for s in kept if s <= current_step]
    survivors = set(steps[-keep:]) if keep > 1 else set()
    removed = [path for step, path in kept.items() if step not in survivors]
    for path in removed:
        path.unlink(missing_ok=True)
    return removed

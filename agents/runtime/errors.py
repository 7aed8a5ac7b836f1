"""The errors of a run directory, in one module so every part of the run layer can raise them.

Why apart from ``run_dir.py``: the lock (``run_lock.py``) raises them too, and ``run_dir.py``
imports the lock; the CLIs catch :class:`RunDirError` (and :class:`RunFinished` before it).
"""

from __future__ import annotations


class RunDirError(RuntimeError):
    """The run directory holds a different run, or a run that should have been resumed."""


class RunExistsError(RunDirError, FileExistsError):
    """A fresh start was asked for in a directory that already holds a run."""


class RunLockedError(RunDirError):
    """Another live process is training into the same run directory."""


class NoCheckpointError(RunDirError):
    """``--resume`` was given for a directory that holds nothing to resume."""


class RunFinished(RunDirError):
    """``--resume`` of a run that already reached its last step: there is nothing to do.

    Not a failure: the commands report it and exit 0, having written nothing.
    """

"""Flush float32 denormals to zero in every CPU thread, so Adam does not slow down as it trains.

Why: Adam's first moment of a weight whose gradient stays zero (a ReLU feature that never
fires) decays by 0.9 a step into the denormal range (below 1.2e-38), and x86 cores compute on
denormals through a slow microcode path. Training SeqGAN's CNN discriminator on an Intel Xeon
(AMX, 2 threads), a fifth of the highway weight's moments were denormal after five epochs and
an epoch went from 11.7 s to 14.1 s, most of it in the optimiser step (5 -> 13 ms); with
denormals flushed every epoch stayed at 11.4-11.9 s and the weights after 939 steps were
bit-identical to the unflushed run's (``BENCHMARKS.md``). A denormal moment moves a weight by
about ``1e-30``, far below the rounding step of any weight that is not itself ~0, so flushing
changes speed, not results, in practice.

The flags (x86 FTZ/DAZ, Arm FZ) belong to each thread. ``torch.set_flush_denormal`` sets them
in the calling thread only, and a new thread copies its creator's, so
:func:`flush_denormals` works for PyTorch's intra-op threads only if it runs before their
first parallel operation starts them: the ``textgan`` command calls it first thing, through
:func:`textgan_envs.process_setup.tune_process`. Where the threads already run it changes
nothing (all threads or none, so results never depend on which thread computed them).
``TEXTGAN_KEEP_DENORMALS=1`` keeps IEEE denormals. Importing the package never calls it.
"""

from __future__ import annotations

import os
import warnings

import torch

__all__ = ["KEEP_DENORMALS_ENV", "denormals_flushed", "flush_denormals"]

#: Set to ``1`` to keep IEEE denormals (``flush_denormals`` then changes nothing).
KEEP_DENORMALS_ENV = "TEXTGAN_KEEP_DENORMALS"
_PER_THREAD = 1 << 16  # elements per thread in the probe: above ATen's parallel grain (32,768)


def denormals_flushed() -> bool:
    """Whether every intra-op thread flushes float32 denormals (probed with one elementwise op)."""
    threads = torch.get_num_threads()
    # The smallest denormal from its bit pattern (a float conversion in a flushing thread
    # would already give 0); times 3 it stays denormal unless the thread flushes.
    denormals = torch.ones(threads * _PER_THREAD, dtype=torch.int32).view(torch.float32)
    return not bool((denormals * 3.0).any())


def flush_denormals(warn: bool = True) -> bool:
    """Flush float32 denormals to zero in this process's CPU threads; ``True`` if every one does.

    Call it before any parallel PyTorch operation. If PyTorch's threads are already running
    (or the CPU has no such mode) it undoes its change to the calling thread and returns
    ``False``, with a ``RuntimeWarning`` if ``warn``. Returns ``False`` without changing
    anything when ``TEXTGAN_KEEP_DENORMALS=1``.
    """
    if os.environ.get(KEEP_DENORMALS_ENV, "") not in ("", "0"):
        return False
    if not torch.set_flush_denormal(True):
        return False
    if denormals_flushed():
        return True
    torch.set_flush_denormal(False)
    if warn:
        warnings.warn(
            "flush_denormals(): PyTorch's worker threads started before it and keep IEEE "
            "denormals, so nothing was changed; call it at the start of the process, before "
            "any parallel tensor operation",
            RuntimeWarning,
            stacklevel=2,
        )
    return False

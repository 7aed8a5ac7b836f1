"""Keep freed heap memory in the process so per-step temporaries do not page-fault.

Why: sampling and Monte-Carlo rollouts allocate and free ``[rows, V]`` tensors
(10 MB at 512 x 5,000) every token. With glibc's default, adaptive thresholds
such blocks keep being returned to the OS and faulted back in, zero-filled,
on the next step: sampling 10,000 oracle sequences measured 4.7 s that way and
1.45 s with the thresholds raised (``benchmarks/oracle_sampling.py``).
PyTorch's CPU tuning guide recommends a caching allocator (jemalloc, tcmalloc)
for the same reason; raising glibc's thresholds needs nothing installed.

The ``textgan`` command and the benchmarks call :func:`retain_freed_memory` at
start-up; a library user can call it once in their own script. It changes the
whole process (freed memory is kept for reuse instead of returned to the OS,
up to ``trim_threshold`` bytes at the top of the heap), so importing the
package never calls it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

__all__ = ["retain_freed_memory"]

_M_TRIM_THRESHOLD = -1  # glibc <malloc.h>
_M_MMAP_THRESHOLD = -3
_USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")


def retain_freed_memory(mmap_threshold: int = 256 << 20, trim_threshold: int = 1 << 30) -> bool:
    """Raise glibc's mmap and trim thresholds; ``True`` if they were set.

    Blocks below ``mmap_threshold`` bytes come from the heap and are reused after
    ``free``; the heap is trimmed only when more than ``trim_threshold`` bytes are
    free at its top. Returns ``False`` without changing anything where the C
    library has no ``mallopt`` (macOS, Windows, musl) or where the user set
    glibc's own ``MALLOC_*_`` environment variables (theirs win).
    """
    if any(name in os.environ for name in _USER_SETTINGS):
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold)) == 1
    return mallopt(_M_TRIM_THRESHOLD, int(trim_threshold)) == 1 and ok

"""retain_freed_memory keeps large freed blocks for reuse instead of faulting them back in."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from textgan_envs import allocator

_FAULTS = """
import resource, sys, torch
from textgan_envs.allocator import retain_freed_memory
retained = retain_freed_memory() if sys.argv[1] == "retain" else None
torch.empty(10 << 20, dtype=torch.uint8).fill_(1)
for step in range(40):
    if step == 30:  # the heap may take a few rounds to settle; count the last 10
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.empty(40 << 20, dtype=torch.uint8).fill_(1)  # above glibc's 32 MB adaptive ceiling
print(retained, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _page_faults(mode: str) -> tuple[str, int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    done = subprocess.run(
        [sys.executable, "-c", _FAULTS, mode], capture_output=True, text=True, env=env, check=True
    )
    retained, faults = done.stdout.split()
    return retained, int(faults)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt thresholds are glibc's")
def test_freed_blocks_are_reused_instead_of_faulted_in_again():
    _, default_faults = _page_faults("default")
    retained, retained_faults = _page_faults("retain")
    assert retained == "True"
    assert default_faults > 10 * (40 << 20) // 4096 * 0.8  # every 40 MB block faulted in again
    assert retained_faults < 0.1 * default_faults


def test_user_malloc_settings_win(monkeypatch):
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "1000")

    def must_not_load(*args, **kwargs):
        raise AssertionError("mallopt must not be called when the user configured malloc")

    monkeypatch.setattr(allocator.ctypes, "CDLL", must_not_load)
    assert allocator.retain_freed_memory() is False


def test_no_mallopt_means_no_change(monkeypatch):
    for name in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_"):
        monkeypatch.delenv(name, raising=False)

    class NoMallopt:
        def __init__(self, *args, **kwargs):
            pass

    monkeypatch.setattr(allocator.ctypes, "CDLL", NoMallopt)
    assert allocator.retain_freed_memory() is False

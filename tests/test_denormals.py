"""flush_denormals reaches every PyTorch thread or none, and leaves training results unchanged.

Each case runs in a fresh interpreter: the flags belong to threads, and this test process's
own thread pool started long ago.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from textgan_envs.denormals import KEEP_DENORMALS_ENV, flush_denormals

_PROBE = """
import json, sys, warnings
import torch
torch.set_num_threads(2)
from textgan_envs.denormals import denormals_flushed, flush_denormals
if sys.argv[1] == "late":
    torch.full((1 << 22,), 1.0) * 2.0  # a parallel op starts the worker threads first
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    flushed = flush_denormals()
def denormals(n):  # the smallest denormal from its bits: no float conversion that could flush
    return torch.ones(n, dtype=torch.int32).view(torch.float32)
big = denormals(1 << 18) * 3.0  # both threads' halves
torch.set_num_threads(1)
one = denormals(8) * 3.0  # the calling thread only
print(json.dumps({
    "flushed": flushed,
    "warned": [str(w.message) for w in caught],
    "nonzero_two_threads": int((big != 0).sum()),
    "nonzero_main_thread": int((one != 0).sum()),
    "probe": denormals_flushed(),
}))
"""

_TRAIN = """
import json, sys
import torch
from textgan_envs.denormals import flush_denormals
flushed = flush_denormals() if sys.argv[1] == "flush" else False
torch.set_num_threads(2)
from textgan_envs.discriminators import (
    build_discriminator, make_discriminator_optimizer, train_discriminator,
)
torch.manual_seed(0)
gen = torch.Generator().manual_seed(1)
real = torch.randint(0, 100, (256, 12), generator=gen)
fake = torch.randint(100, 200, (256, 12), generator=gen)
disc = build_discriminator("cnn", 200, 12, seed=0)
opt = make_discriminator_optimizer(disc)
for _ in range(6):
    train_discriminator(disc, opt, real, fake, batch_size=32, generator=gen)
params = torch.cat([p.detach().flatten() for p in disc.parameters()])
print(json.dumps({"flushed": flushed, "params": params[::97].tolist()}))
"""


def _run(script: str, mode: str, **env: str) -> dict:
    environ = {k: v for k, v in os.environ.items() if k != KEEP_DENORMALS_ENV} | env
    done = subprocess.run(
        [sys.executable, "-c", script, mode],
        capture_output=True,
        text=True,
        env=environ,
        check=True,
        timeout=300,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def _supported() -> bool:
    out = subprocess.run(
        [sys.executable, "-c", "import torch; print(torch.set_flush_denormal(True))"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip() == "True"


needs_flush_mode = pytest.mark.skipif(
    not _supported(), reason="this CPU has no flush-to-zero mode torch can set"
)


@needs_flush_mode
def test_called_first_it_flushes_in_every_thread():
    out = _run(_PROBE, "first")
    assert out["flushed"] is True and out["probe"] is True
    assert out["warned"] == []
    assert out["nonzero_two_threads"] == 0 and out["nonzero_main_thread"] == 0


@needs_flush_mode
def test_called_after_the_threads_started_it_changes_nothing_and_says_so():
    out = _run(_PROBE, "late")
    assert out["flushed"] is False and out["probe"] is False
    assert len(out["warned"]) == 1 and "before any parallel" in out["warned"][0]
    # all threads or none: the calling thread was set back, so no result depends on the thread
    assert out["nonzero_main_thread"] == 8
    assert out["nonzero_two_threads"] == 1 << 18


@needs_flush_mode
def test_the_switch_keeps_ieee_denormals():
    out = _run(_PROBE, "first", **{KEEP_DENORMALS_ENV: "1"})
    assert out["flushed"] is False and out["warned"] == []
    assert out["nonzero_two_threads"] == 1 << 18


@needs_flush_mode
def test_flushing_leaves_discriminator_training_unchanged():
    kept, flushed = _run(_TRAIN, "keep"), _run(_TRAIN, "flush")
    assert kept["flushed"] is False and flushed["flushed"] is True
    torch.testing.assert_close(
        torch.tensor(flushed["params"]), torch.tensor(kept["params"]), rtol=1e-6, atol=1e-7
    )


def test_the_switch_is_read_before_anything_changes(monkeypatch):
    monkeypatch.setenv(KEEP_DENORMALS_ENV, "1")

    def must_not_be_called(on: bool) -> bool:
        raise AssertionError("set_flush_denormal must not be called when the switch is set")

    monkeypatch.setattr(torch, "set_flush_denormal", must_not_be_called)
    assert flush_denormals() is False


_ENTRY = """
import sys
from textgan_envs.denormals import denormals_flushed
if sys.argv[1] == "cli":
    from agents.cli import main
    try:
        main(["eval", "--help"])  # the dispatcher tunes the process before the command parses
    except SystemExit:
        pass
else:
    from agents.bench.grid import _init_worker
    _init_worker(2)  # what each bench worker process runs first
import json
print(json.dumps({"flushed": denormals_flushed()}))
"""


@needs_flush_mode
@pytest.mark.parametrize("entry", ["cli", "bench_worker"])
def test_the_textgan_command_and_bench_workers_start_flushed(entry):
    assert _run(_ENTRY, entry) == {"flushed": True}

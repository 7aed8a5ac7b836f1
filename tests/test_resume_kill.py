"""A run killed with SIGKILL mid-training and resumed ends exactly like an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from agents.runtime import CheckpointError, load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
TOTAL = 8
SETS = [
    "vocab_size=30",
    "seq_len=6",
    "n_real=256",
    "n_valid=64",
    "mle_epochs=0",
    'disc_kwargs={"emb_dim": 8, "filter_sizes": [2, 3], "num_filters": [8, 8]}',
    "d_pretrain_steps=0",
    "d_steps=1",
    "d_epochs=1",
    "d_negatives=128",
    "eval_samples=128",
    "eval_every=5",
    "checkpoint_every=1",
    "batch_size=16",
    "n_rollouts=2",
    f"total_steps={TOTAL}",
    "tensorboard=false",
    "progress=false",
    "device=cpu",
]


def command(out: Path, resume: bool = False) -> list[str]:
    argv = [sys.executable, "-m", "agents.train", "--agent", "reinforce", "--out", str(out)]
    for item in SETS:
        argv += ["--set", item]
    return argv + (["--resume"] if resume else [])


def env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def checkpoint_step(out: Path) -> int:
    try:
        return int(load_checkpoint(out / "checkpoint.pt", ["step"])["step"])
    except CheckpointError:
        return -1


@pytest.mark.timeout(300)
def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    # The uninterrupted reference runs alongside (same thread count, same device).
    reference = subprocess.Popen(
        command(straight), cwd=ROOT, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    proc = subprocess.Popen(
        command(killed), cwd=ROOT, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 200
    while checkpoint_step(killed) < 2:
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "run never reached step 2"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    at_kill = checkpoint_step(killed)
    assert 2 <= at_kill < TOTAL, f"kill came too late (checkpoint step {at_kill})"

    subprocess.run(
        command(killed, resume=True), cwd=ROOT, env=env(), check=True, capture_output=True
    )
    _, err = reference.communicate(timeout=200)
    assert reference.returncode == 0, err.decode()

    a = load_checkpoint(straight / "checkpoint.pt", ["modules", "optimizers", "step"])
    b = load_checkpoint(killed / "checkpoint.pt", ["modules", "optimizers", "step"])
    assert a["step"] == b["step"] == TOTAL
    for name, params in a["modules"].items():
        for key, value in params.items():
            assert torch.equal(value, b["modules"][name][key]), f"{name}.{key} differs after resume"
    assert a["scalars"] == b["scalars"]
    assert (straight / "metrics.csv").read_text() == (killed / "metrics.csv").read_text()

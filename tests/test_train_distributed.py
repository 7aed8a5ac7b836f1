"""`textgan train --nproc-per-node 2`: the real CLI under torchrun (gloo on CPU), end to end.

Rank 0 alone writes the run directory (one checkpoint, one metrics log, one config), and a
second launch resumes the distributed run from that checkpoint.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agents.runtime import load_checkpoint
from tests.test_train_cli import TINY

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 300


def _train(out: Path, total_steps: int, resume: bool = False) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    sets = [arg for item in (*TINY, f"total_steps={total_steps}") for arg in ("--set", item)]
    cmd = [sys.executable, "-m", "agents.train", "--agent", "reinforce", "--nproc-per-node", "2"]
    cmd += ["--out", str(out), "--set", "n_rollouts=2", *sets]
    cmd += ["--dist-timeout", "120"] + (["--resume"] if resume else [])
    return subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT_S)


def _steps(out: Path) -> list[int]:
    with (out / "metrics.csv").open(newline="") as handle:
        return [int(float(row["step"])) for row in csv.DictReader(handle)]


def test_cli_runs_data_parallel_with_rank0_side_effects_and_resumes(tmp_path):
    out = tmp_path / "run"
    first = _train(out, total_steps=2)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-4000:]
    checkpoints = sorted(p.name for p in out.rglob("*.pt"))
    assert checkpoints.count("checkpoint.pt") == 1, checkpoints
    assert len(list(out.rglob("metrics.csv"))) >= 1
    steps = _steps(out)
    assert steps == sorted(set(steps)) and steps[-1] == 2  # one writer: no duplicated rows
    ckpt = load_checkpoint(out / "checkpoint.pt")
    assert ckpt["world_size"] == 2 and len(ckpt["rank_states"]) == 2

    second = _train(out, total_steps=3, resume=True)
    assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-4000:]
    assert int(load_checkpoint(out / "checkpoint.pt")["step"]) == 3
    steps = _steps(out)
    assert steps == sorted(set(steps)) and steps[-1] == 3


def test_nproc_per_node_below_one_is_rejected(capsys):
    from agents.train import main

    assert main(["--agent", "reinforce", "--nproc-per-node", "0"]) == 2
    assert "--nproc-per-node must be >= 1" in capsys.readouterr().err


@pytest.mark.parametrize("world", ["0", "x"])
def test_bad_world_size_is_rejected_before_any_work(tmp_path, monkeypatch, capsys, world):
    from agents.train import main

    monkeypatch.setenv("WORLD_SIZE", world)
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "29999")
    out = tmp_path / "run"
    sets = [arg for item in TINY for arg in ("--set", item)]
    assert main(["--agent", "reinforce", "--out", str(out), *sets]) == 2
    assert "WORLD_SIZE" in capsys.readouterr().err
    assert not (out / "checkpoint.pt").exists()

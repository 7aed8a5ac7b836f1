"""`textgan began train --nproc-per-node 2`: BEGAN data-parallel under torchrun (gloo on CPU).

Two ranks with per-rank batch B must reach the same G/D weights and k_t as one process on the
concatenated batch 2B (the same data slice and the same two sharded z streams), including
across a resume; rank 0 alone writes the run directory.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from agents.runtime import load_checkpoint, shard_seed
from image_samplers.began.cli import main
from image_samplers.began.config import BEGANConfig
from image_samplers.began.model import sample_z
from image_samplers.began.train import BEGANTrainer

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 180
WORLD, PER_RANK = 2, 4
# gamma = 1 and a large gain make k_t move in the first steps, so a rank-local k update shows.
TINY = dict(
    data="digits",
    image_size=8,
    num_filters=4,
    z_dim=4,
    h_dim=4,
    gamma=1.0,
    lambda_k=0.5,
    lr=1e-3,
    log_every=1,
    sample_every=1,
    checkpoint_every=0,
    seed=3,
)


def _launch(out: Path, steps: int, resume: bool = False) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    cmd = [sys.executable, "-m", "image_samplers.began.cli", "train", "--out", str(out)]
    cmd += ["--nproc-per-node", str(WORLD), "--steps", str(steps), "--device", "cpu"]
    cmd += ["--no-progress", "--threads", "1", "--dist-timeout", "120"]
    if resume:
        cmd.append("--resume")
    else:
        cmd += ["--batch-size", str(PER_RANK)]
        for key, value in TINY.items():
            cmd += [f"--{key.replace('_', '-')}", str(value)]
    return subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT_S)


class ConcatenatedTrainer(BEGANTrainer):
    """One process drawing z exactly as the ranks do: rank 0's draw, then rank 1's."""

    def __init__(self, config: BEGANConfig) -> None:
        super().__init__(config, device="cpu")
        seeds = [shard_seed(config.seed + 1, rank) for rank in range(WORLD)]
        self.rank_rngs = [torch.Generator().manual_seed(s) for s in seeds]

    def _draw_z(self, n: int) -> torch.Tensor:
        parts = [sample_z(n // WORLD, self.config.z_dim, g) for g in self.rank_rngs]
        return torch.cat(parts)


def _assert_same(state: dict, ref: BEGANTrainer) -> None:
    for name, net in (("generator", ref.generator), ("discriminator", ref.discriminator)):
        for key, value in net.state_dict().items():
            torch.testing.assert_close(
                state["modules"][name][key], value, rtol=1e-4, atol=1e-5, msg=key
            )
    assert float(state["tensors"]["k"]) == pytest.approx(float(ref.k), abs=1e-6)


def test_two_ranks_equal_one_process_on_the_concatenated_batch_and_resume(tmp_path):
    torch.set_num_threads(1)
    ref = ConcatenatedTrainer(BEGANConfig(**TINY, batch_size=WORLD * PER_RANK, steps=4))
    out = tmp_path / "run"

    first = _launch(out, steps=2)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-4000:]
    ref.train(stop_at=2, progress=False)
    state = load_checkpoint(out / "checkpoint.pt")
    assert state["world_size"] == WORLD and len(state["rank_states"]) == WORLD
    assert float(ref.k) > 0.0  # the controller moved, so the k comparison is not vacuous
    _assert_same(state, ref)

    second = _launch(out, steps=4, resume=True)
    assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-4000:]
    ref.train(stop_at=4, progress=False)
    state = load_checkpoint(out / "checkpoint.pt")
    assert int(state["step"]) == 4
    _assert_same(state, ref)

    # Rank 0 alone writes: one checkpoint, one metrics CSV with each step once, one PNG per step.
    assert [p.name for p in out.rglob("*.pt")] == ["checkpoint.pt"]
    assert len(list(out.rglob("*.csv"))) == 1
    with (out / "metrics.csv").open(newline="") as handle:
        steps = [int(float(row["step"])) for row in csv.DictReader(handle)]
    assert steps == [1, 2, 3, 4]
    assert sorted(p.name for p in (out / "samples").glob("*.png")) == [
        f"step_{s:07d}.png" for s in (1, 2, 3, 4)
    ]
    assert first.stdout.count('"step": 2') == 1  # one summary line, from rank 0


def test_nproc_per_node_below_one_is_rejected(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "run"), "--nproc-per-node", "0"]) == 2
    assert "--nproc-per-node must be >= 1" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_resume_with_another_world_size_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    config = BEGANConfig(**TINY, batch_size=PER_RANK, steps=1)
    BEGANTrainer(config, out_dir=out, device="cpu").train(progress=False, tensorboard=False)
    state = load_checkpoint(out / "checkpoint.pt")
    state["world_size"] = WORLD
    torch.save(state, out / "checkpoint.pt")
    assert main(["train", "--out", str(out), "--resume", "--steps", "2", "--device", "cpu"]) == 2
    assert "written by 2 process(es)" in capsys.readouterr().err

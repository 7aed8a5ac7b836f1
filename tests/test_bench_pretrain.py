"""The bench's shared MLE start is exactly the pre-training an agent's own run does."""

from __future__ import annotations

from pathlib import Path

import torch

from agents.bench import cli
from agents.bench.runners import BenchRunner, _common_config
from agents.mle import load_mle_checkpoint, pretraining_config
from agents.setup import build_setup

SMALL = [
    "--seeds", "1", "--budget", "2", "--checkpoints", "1", "--agents", "mle",
    "--set", "vocab_size=30", "--set", "seq_len=6", "--set", "n_real=96", "--set", "n_valid=32",
    "--set", "mle_epochs=2", "--set", "d_pretrain_steps=0", "--set", "mle_lr=0.02",
    # not the defaults (64, 5.0): the values the bench's start used to drop
    "--set", "batch_size=8", "--set", "grad_clip=0.05",
    "--eval-set", "n_samples=16", "--eval-set", "n_bleu=8", "--eval-set", "n_refs=16",
    "--workers", "1", "--no-progress",
]  # fmt: skip


def test_the_bench_start_equals_an_agents_own_pretraining(tmp_path: Path) -> None:
    bench = cli.config_from_args(cli.build_parser().parse_args(["--out", str(tmp_path), *SMALL]))
    cached = tmp_path / "mle_seed0.pt"
    BenchRunner(bench).pretrain(0, cached, tmp_path / "work")
    bench_policy, _ = load_mle_checkpoint(cached)

    own = _common_config(bench, 0, tmp_path / "own", eval_samples=16)
    assert (own.batch_size, own.grad_clip) == (8, 0.05)
    setup = build_setup(own, tmp_path / "own", resume=False)  # MLE-pretrains in own/mle
    for name, value in setup.policy.state_dict().items():
        assert torch.equal(value, bench_policy.state_dict()[name]), name

    used = pretraining_config(own)
    assert (used.batch_size, used.grad_clip, used.lr, used.epochs) == (8, 0.05, 0.02, 2)


def test_a_cached_start_trained_on_other_data_is_refused(tmp_path: Path) -> None:
    """A bench resumed where its seed's data come out differently (another version's sampling)
    must not continue the cached MLE start on other data."""
    import pytest

    from agents.runtime import CheckpointError, atomic_save, load_checkpoint

    bench = cli.config_from_args(cli.build_parser().parse_args(["--out", str(tmp_path), *SMALL]))
    cached = tmp_path / "mle_seed0.pt"
    BenchRunner(bench).pretrain(0, cached, tmp_path / "work")
    state = load_checkpoint(cached)
    assert len(state["data_digest"]) == 16
    atomic_save({**state, "data_digest": "0" * 16}, cached)
    with pytest.raises(CheckpointError, match="trained on other data"):
        BenchRunner(bench)("mle", 0, 2, cached, tmp_path / "cell")


def test_the_seeds_data_do_not_depend_on_the_sampling_route(monkeypatch) -> None:
    from agents.setup import load_data

    bench = cli.config_from_args(cli.build_parser().parse_args(["--out", "unused", *SMALL]))
    cfg = _common_config(bench, 0, Path("unused"))
    default = load_data(cfg)
    monkeypatch.setenv("TEXTGAN_NATIVE_SAMPLING", "0")
    pytorch_only = load_data(cfg)
    assert torch.equal(default.real, pytorch_only.real)
    assert torch.equal(default.valid, pytorch_only.valid)
    assert default.record()["data_digest"] == pytorch_only.record()["data_digest"]

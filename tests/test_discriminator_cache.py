"""The shared pre-trained discriminator: a seed's runs reuse one D instead of each training
the same one, it is exactly the D a run would pre-train itself, and a cache saved for another
schedule, MLE start or seed, or a corrupt one, is never used."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest
import torch

from agents import reinforce
from agents import setup as agent_setup
from agents.bench import cli
from agents.runtime import build_config
from agents.setup import build_setup

VALUES: dict[str, Any] = {
    "vocab_size": 12,
    "seq_len": 5,
    "n_real": 64,
    "n_valid": 16,
    "mle_epochs": 1,
    "d_pretrain_steps": 2,
    "d_epochs": 1,
    "d_negatives": 32,
    "d_batch_size": 16,
    "batch_size": 8,
    "disc_kwargs": {"emb_dim": 8, "filter_sizes": [2, 3], "num_filters": [8, 8]},
    "device": "cpu",
    "progress": False,
    "tensorboard": False,
}


def _build(run_dir: Path, cache: Path | None = None, rng_seed: int = 123, **changes: Any) -> Any:
    """Build from a fixed global RNG state, as a run does after ``seed_everything``."""
    torch.manual_seed(rng_seed)
    values = {**VALUES, **changes, "out_dir": str(run_dir)}
    if cache is not None:
        values["d_pretrain_cache"] = str(cache)
    return build_setup(build_config(reinforce.ReinforceConfig, values), run_dir, resume=False)


@pytest.fixture
def rounds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the discriminator pre-training rounds run (a cache hit runs none)."""
    calls: list[int] = []
    original = agent_setup.discriminator_round

    def counting(*args: Any, **kwargs: Any) -> dict[str, float]:
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(agent_setup, "discriminator_round", counting)
    return calls


def _same_discriminator(a: Any, b: Any) -> bool:
    sa, sb = a.discriminator.state_dict(), b.discriminator.state_dict()
    if sa.keys() != sb.keys() or not all(torch.equal(sa[k], sb[k]) for k in sa):
        return False
    oa, ob = a.d_optimizer.state_dict()["state"], b.d_optimizer.state_dict()["state"]
    return oa.keys() == ob.keys() and all(
        torch.equal(oa[i][k], ob[i][k]) for i in oa for k in oa[i]
    )


def _build_then_draw(run_dir: Path, cache: Path | None = None) -> tuple[Any, torch.Tensor]:
    """Build; then what the agent's first dropout mask would see."""
    built = _build(run_dir, cache)
    return built, torch.rand(4)


def test_runs_of_a_seed_share_one_pretrained_discriminator(tmp_path: Path, rounds) -> None:
    own, own_draw = _build_then_draw(tmp_path / "own")  # no cache: pre-trains its own D
    assert len(rounds) == 2
    cache = tmp_path / "discriminator_seed0.pt"
    first, first_draw = _build_then_draw(tmp_path / "first", cache)
    assert len(rounds) == 4 and cache.is_file()
    second, second_draw = _build_then_draw(tmp_path / "second", cache)
    assert len(rounds) == 4  # loaded, not trained again
    assert _same_discriminator(own, first) and _same_discriminator(own, second)
    # training goes on from the same global stream whether the D was trained or loaded
    assert torch.equal(own_draw, first_draw) and torch.equal(own_draw, second_draw)
    # the loaded D is the trained one, not the fresh initialisation
    fresh = _build(tmp_path / "fresh", d_pretrain_steps=0)
    assert not _same_discriminator(fresh, second)


@pytest.mark.parametrize(
    "change",
    [
        {"d_pretrain_epochs": 2},
        {"d_pretrain_negatives": 16},
        {"seed": 1},
        {"mle_epochs": 2},
        {"rng_seed": 7},  # dropout would draw other masks
    ],
)
def test_a_cache_for_another_schedule_seed_or_start_is_not_used(
    tmp_path: Path, rounds, change: dict[str, Any]
) -> None:
    cache = tmp_path / "discriminator_seed0.pt"
    _build(tmp_path / "a", cache)
    with pytest.warns(
        UserWarning, match="pre-trained for another seed, data, MLE start, D schedule or global RNG"
    ):
        changed = _build(tmp_path / "b", cache, **change)
    assert len(rounds) == 4  # pre-trained anew
    assert _same_discriminator(changed, _build(tmp_path / "c", **change))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the cache now holds the new identity
        _build(tmp_path / "d", cache, **change)
    assert len(rounds) == 6  # c pre-trained (no cache), d loaded


def test_a_corrupt_cache_is_recomputed_not_trusted(tmp_path: Path, rounds) -> None:
    cache = tmp_path / "discriminator_seed0.pt"
    cache.write_bytes(b"not a checkpoint")
    with pytest.warns(UserWarning, match="ignoring the discriminator cache"):
        built = _build(tmp_path / "a", cache)
    assert len(rounds) == 2
    assert _same_discriminator(built, _build(tmp_path / "b"))
    assert _build(tmp_path / "c", cache) is not None and len(rounds) == 4  # valid again: loaded


TINY = [
    "--seeds", "1", "--budget", "2", "--checkpoints", "1",
    "--set", "vocab_size=30", "--set", "seq_len=6", "--set", "n_real=128", "--set", "n_valid=64",
    "--set", "mle_epochs=1", "--set", "d_negatives=64", "--set", "d_pretrain_steps=3",
    "--set", "disc_kwargs={\"emb_dim\": 8, \"filter_sizes\": [2, 3], \"num_filters\": [8, 8]}",
    "--eval-set", "n_samples=64", "--eval-set", "n_bleu=16", "--eval-set", "n_refs=64",
    "--eval-set", "temperatures=[1.0]", "--workers", "1", "--no-progress",
]  # fmt: skip


@pytest.mark.filterwarnings("error:ignoring the discriminator cache:UserWarning")
def test_the_bench_pretrains_each_seeds_discriminator_once(tmp_path: Path, rounds) -> None:
    """Our agents' cells and stock SB3's start from the same random state and share one D."""
    out = tmp_path / "bench"
    assert cli.main(["--out", str(out), "--agents", "reinforce,ppo,bgan", *TINY]) == 0
    assert (out / "pretrained" / "discriminator_seed0.pt").is_file()
    # ``rounds`` counts agents.setup's own calls, i.e. pre-training (the loop's per-update
    # rounds go through agents.loop's name): 3 rounds once, not once per cell
    assert len(rounds) == 3


def _stop_after(monkeypatch: pytest.MonkeyPatch, finished: int) -> None:
    """Make pre-training die (as a killed process would) once ``finished`` rounds are done."""
    original = agent_setup.discriminator_round
    calls: list[int] = []

    def dying(*args: Any, **kwargs: Any) -> dict[str, float]:
        if len(calls) == finished:
            raise KeyboardInterrupt
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(agent_setup, "discriminator_round", dying)


@pytest.mark.parametrize("with_cache", [True, False], ids=["cache", "run-dir"])
def test_a_stopped_pretraining_restarts_from_its_last_round(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, with_cache: bool
) -> None:
    steps = {"d_pretrain_steps": 4}
    whole, whole_draw = _build(tmp_path / "whole", **steps), torch.rand(4)
    cache = tmp_path / "discriminator_seed0.pt" if with_cache else None
    progress = (
        tmp_path / "discriminator_seed0.partial.pt"
        if with_cache
        else tmp_path / "stopped" / "d_pretrain_progress.pt"
    )
    with monkeypatch.context() as patch:
        _stop_after(patch, 3)
        with pytest.raises(KeyboardInterrupt):
            _build(tmp_path / "stopped", cache, **steps)
    assert progress.is_file()
    counted: list[int] = []
    original = agent_setup.discriminator_round
    monkeypatch.setattr(
        agent_setup,
        "discriminator_round",
        lambda *a, **k: counted.append(1) or original(*a, **k),
    )
    restarted, restarted_draw = _build(tmp_path / "stopped", cache, **steps), torch.rand(4)
    assert len(counted) == 1  # rounds 1-3 were kept, only round 4 ran
    assert _same_discriminator(whole, restarted)
    assert torch.equal(whole_draw, restarted_draw)  # the global stream too
    assert not progress.exists()  # finished: nothing left to resume
    assert (cache is None) or cache.is_file()


def test_progress_of_another_pretraining_is_not_used(tmp_path: Path, monkeypatch) -> None:
    cache = tmp_path / "discriminator_seed0.pt"
    with monkeypatch.context() as patch:
        _stop_after(patch, 1)
        with pytest.raises(KeyboardInterrupt):
            _build(tmp_path / "a", cache, d_pretrain_steps=3)
    with pytest.warns(UserWarning, match="pre-training progress .* another seed"):
        other = _build(tmp_path / "b", cache, d_pretrain_steps=3, seed=1)
    assert _same_discriminator(other, _build(tmp_path / "c", d_pretrain_steps=3, seed=1))
    (tmp_path / "discriminator_seed0.partial.pt").write_bytes(b"garbage")
    cache.unlink()
    with pytest.warns(UserWarning, match="ignoring the pre-training progress"):
        _build(tmp_path / "d", cache, d_pretrain_steps=3)

"""MLE training end to end on a tiny oracle, checkpoint/resume, failure modes and the CLI."""

from __future__ import annotations

import csv
import json

import pytest
import torch

import agents.mle as mle
from agents.mle import MLEConfig, load_mle_checkpoint, train_mle
from agents.mle_cli import main
from agents.policies import LSTMPolicy
from agents.runtime import CheckpointError
from textgan_envs.oracle import OracleLSTM

V, T = 20, 6


@pytest.fixture(scope="module")
def problem():
    oracle = OracleLSTM.random(11, vocab_size=V, emb_dim=8, hidden_dim=8, seq_len=T)
    gen = torch.Generator().manual_seed(0)
    return oracle, oracle.sample(1000, generator=gen), oracle.sample(300, generator=gen)


def fresh_policy(seed: int = 0) -> LSTMPolicy:
    policy = LSTMPolicy(V, T, emb_dim=8, hidden_dim=8, device="cpu")
    policy.reset_parameters(torch.Generator().manual_seed(seed))
    return policy


def config(**kw) -> MLEConfig:
    base = {"epochs": 4, "n_eval_samples": 1000, "progress": False, "seed": 3}
    return MLEConfig(**{**base, **kw})


def test_mle_reduces_nll_oracle_and_nll_test(problem, tmp_path) -> None:
    oracle, train, test = problem
    floor = oracle.nll(test).mean().item()
    history = train_mle(
        fresh_policy(), train, config(epochs=5), valid_tokens=test, oracle=oracle, out_dir=tmp_path
    )
    before, after = history[0], history[-1]
    assert [row["epoch"] for row in history] == list(range(6))
    # at least half the gap to the oracle's own NLL is closed, on both measures
    assert after["nll_oracle"] < before["nll_oracle"] - 0.5 * (before["nll_oracle"] - floor)
    assert after["nll_test"] < before["nll_test"] - 0.5 * (before["nll_test"] - floor)
    assert after["nll_test"] > floor - 0.05  # cannot beat the true model on held-out data
    with (tmp_path / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["step"]) for r in rows] == list(range(6))
    assert float(rows[-1]["nll_oracle"]) == pytest.approx(after["nll_oracle"])
    policy, state = load_mle_checkpoint(tmp_path / "mle_checkpoint.pt", device="cpu")
    assert state["epoch"] == 5 and isinstance(policy, LSTMPolicy)


def test_resumed_run_ends_identical_to_uninterrupted(problem, tmp_path) -> None:
    oracle, train, test = problem
    straight = fresh_policy()
    h_straight = train_mle(straight, train, config(), test, oracle, out_dir=tmp_path / "a")
    interrupted = fresh_policy()
    train_mle(interrupted, train, config(epochs=2), test, oracle, out_dir=tmp_path / "b")
    resumed = fresh_policy()  # a new process would start from a fresh model
    torch.manual_seed(999)  # and a different global RNG: the checkpoint must restore it
    h_resumed = train_mle(
        resumed, train, config(), test, oracle, out_dir=tmp_path / "b", resume=True
    )
    for p, q in zip(straight.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(p, q)
    drop = {"seconds"}
    strip = [{k: v for k, v in r.items() if k not in drop} for r in h_straight]
    assert strip == [{k: v for k, v in r.items() if k not in drop} for r in h_resumed]
    with (tmp_path / "b" / "metrics.csv").open() as handle:
        assert [int(r["step"]) for r in csv.DictReader(handle)] == list(range(5))


def test_resuming_on_other_training_data_is_refused_and_keeps_the_checkpoint(
    problem, tmp_path
) -> None:
    """A checkpoint remembers its training tokens: resuming it on others (oracle samples drawn
    another way, another corpus) would silently train one model on two datasets."""
    oracle, train, test = problem
    train_mle(fresh_policy(), train, config(epochs=2), test, oracle, out_dir=tmp_path)
    ckpt = tmp_path / "mle_checkpoint.pt"
    before = ckpt.read_bytes()
    other = train.clone()
    other[0, 0] = (other[0, 0] + 1) % V  # one token differs
    with pytest.raises(CheckpointError, match="trained on other data"):
        train_mle(fresh_policy(), other, config(), test, oracle, out_dir=tmp_path, resume=True)
    assert ckpt.read_bytes() == before
    # the same tokens (a copy, another device or dtype view) resume
    history = train_mle(
        fresh_policy(), train.clone(), config(epochs=3), test, oracle, out_dir=tmp_path, resume=True
    )
    assert history[-1]["epoch"] == 3
    # a checkpoint from before digests cannot be checked: it resumes, with a warning
    state = torch.load(ckpt, weights_only=True)
    del state["data_digest"]
    torch.save(state, ckpt)
    with pytest.warns(UserWarning, match="records no data digest"):
        train_mle(fresh_policy(), other, config(epochs=4), out_dir=tmp_path, resume=True)


def test_a_refusal_names_the_cpu_kernels_the_data_were_drawn_under(problem, tmp_path, monkeypatch):
    """Portable oracle draws differ in a few sequences between ATen's AVX2 and AVX-512 kernels
    (seed 2 of the published-oracle bench: 2 of 10,000), so a checkpoint made on one CPU is
    refused on the other; the refusal says which kernels drew it and how to draw the same data."""
    oracle, train, test = problem
    monkeypatch.setattr(mle, "cpu_capability", lambda: "AVX2")
    train_mle(fresh_policy(), train, config(epochs=1), out_dir=tmp_path)
    ckpt = tmp_path / "mle_checkpoint.pt"
    assert torch.load(ckpt, weights_only=True)["cpu_capability"] == "AVX2"
    other = train.clone()
    other[0, 0] = (other[0, 0] + 1) % V
    monkeypatch.setattr(mle, "cpu_capability", lambda: "AVX512")
    with pytest.raises(CheckpointError, match="ATen's AVX2 kernels and this process runs AVX512"):
        train_mle(fresh_policy(), other, config(epochs=2), out_dir=tmp_path, resume=True)
    with pytest.raises(CheckpointError, match="ATEN_CPU_CAPABILITY=avx2 to draw the same data"):
        train_mle(fresh_policy(), other, config(epochs=2), out_dir=tmp_path, resume=True)
    monkeypatch.setattr(mle, "cpu_capability", lambda: "AVX2")  # same kernels: no such advice
    with pytest.raises(CheckpointError, match="trained on other data") as info:
        train_mle(fresh_policy(), other, config(epochs=2), out_dir=tmp_path, resume=True)
    assert "to draw the same data" not in str(info.value)


def test_non_finite_loss_raises_and_keeps_last_good_checkpoint(problem, tmp_path, monkeypatch):
    oracle, train, _ = problem
    policy = fresh_policy()
    train_mle(policy, train, config(epochs=1), out_dir=tmp_path)
    ckpt = tmp_path / "mle_checkpoint.pt"
    good = ckpt.read_bytes()
    real_loss = mle.mle_loss
    monkeypatch.setattr(mle, "mle_loss", lambda p, x: real_loss(p, x) * float("nan"))
    with pytest.raises(FloatingPointError, match="loss became nan in epoch 2"):
        train_mle(policy, train, config(epochs=3), out_dir=tmp_path, resume=True)
    assert ckpt.read_bytes() == good
    assert load_mle_checkpoint(ckpt, device="cpu")[1]["epoch"] == 1


def test_corrupt_and_foreign_checkpoints_give_clear_errors(problem, tmp_path) -> None:
    oracle, train, _ = problem
    train_mle(fresh_policy(), train, config(epochs=1), out_dir=tmp_path)
    ckpt = tmp_path / "mle_checkpoint.pt"
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt, truncated"):
        load_mle_checkpoint(ckpt)
    with pytest.raises(CheckpointError, match="corrupt, truncated"):
        train_mle(fresh_policy(), train, config(epochs=2), out_dir=tmp_path, resume=True)
    ckpt.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError):
        load_mle_checkpoint(ckpt)
    torch.save({"weights": torch.zeros(3)}, ckpt)  # loadable, but not an MLE checkpoint
    with pytest.raises(CheckpointError, match="lacks required entries"):
        load_mle_checkpoint(ckpt)
    # a checkpoint of a differently shaped policy is refused on resume
    ckpt.write_bytes(data)
    other = LSTMPolicy(V, T, emb_dim=4, hidden_dim=8, device="cpu")
    with pytest.raises(CheckpointError, match="written for policy"):
        train_mle(other, train, config(epochs=2), out_dir=tmp_path, resume=True)


def test_config_and_input_validation(problem) -> None:
    _, train, _ = problem
    with pytest.raises(ValueError, match="batch_size"):
        MLEConfig(batch_size=0)
    with pytest.raises(ValueError, match="lr"):
        MLEConfig(lr=float("nan"))
    with pytest.raises(ValueError, match="outside"):
        train_mle(fresh_policy(), train + V, config(epochs=1))
    with pytest.raises(ValueError, match="2-D LongTensor"):
        train_mle(fresh_policy(), train.float(), config(epochs=1))


TINY = [
    "--vocab-size", "15", "--seq-len", "5", "--emb-dim", "8", "--hidden-dim", "8",
    "--n-train", "600", "--n-test", "200", "--n-eval-samples", "500",
    "--eval-every", "2", "--device", "cpu", "--no-progress",
]  # fmt: skip


def test_cli_tiny_run_writes_outputs_and_improves(tmp_path, capsys) -> None:
    out = tmp_path / "mle"
    assert main([*TINY, "--epochs", "4", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "generator after 4 MLE epochs" in printed and "floor" in printed
    for name in ("metrics.csv", "learning_curve.png", "config.json", "mle_checkpoint.pt"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    gap = summary["nll_oracle_before"] - summary["oracle_floor_nll"]
    assert summary["nll_oracle_after"] < summary["nll_oracle_before"] - 0.4 * gap
    assert summary["nll_test_after"] < summary["nll_test_before"]
    assert (out / "learning_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # resuming a finished run with more epochs continues from the checkpoint
    assert main([*TINY, "--epochs", "5", "--out", str(out), "--resume"]) == 0
    assert json.loads((out / "summary.json").read_text())["epochs"] == 5
    # resuming with different data settings is refused
    assert main([*TINY, "--n-train", "700", "--epochs", "5", "--out", str(out), "--resume"]) == 2
    assert "n_train: 600 -> 700" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--oracle", "missing.npz"], "does not exist"),
        (["--oracle", "params.txt"], "'seeded' or a .npz"),
        (["--epochs", "-1"], "must be >= 0"),
        (["--n-train", "0"], "positive integer"),
        (["--lr", "0"], "must be positive"),
        (["--device", "tpu"], "unknown device"),
        (["--bogus"], "unrecognized arguments"),
    ],
)
def test_cli_rejects_bad_options(argv, message, tmp_path, capsys) -> None:
    assert main([*TINY, "--out", str(tmp_path / "x"), *argv]) == 2
    assert message in capsys.readouterr().err


def test_cli_is_dispatched_by_textgan() -> None:
    from agents.cli import SUBCOMMANDS

    assert SUBCOMMANDS["mle"][0] == "agents.mle_cli"

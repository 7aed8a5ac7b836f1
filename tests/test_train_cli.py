"""`textgan train` / `textgan sample` end to end on tiny configs; config checking; NaN and corrupt-file faults."""

from __future__ import annotations

import csv
import json
import re

import pytest
import torch

from agents import reinforce
from agents import train as train_cli
from agents.runtime import ConfigError, build_config, load_checkpoint, load_config, parse_override
from agents.sample_cli import main as sample_main

V, T = 30, 6
TINY = [
    f"vocab_size={V}",
    f"seq_len={T}",
    "n_real=256",
    "n_valid=64",
    "mle_epochs=1",
    'disc_kwargs={"emb_dim": 8, "filter_sizes": [2, 3], "num_filters": [8, 8]}',
    "d_pretrain_steps=1",
    "d_steps=1",
    "d_epochs=1",
    "d_negatives=128",
    "eval_samples=128",
    "eval_every=2",
    "checkpoint_every=1",
    "batch_size=16",
    "tensorboard=false",
    "progress=false",
    "device=cpu",
]


def sets(*extra: str) -> list[str]:
    out: list[str] = []
    for item in (*TINY, *extra):
        out += ["--set", item]
    return out


# ------------------------------------------------------------------ config checking


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("n_rolouts=4", "unknown config key 'n_rolouts'.*n_rollouts"),
        ("batch_size=abc", "'batch_size': expected an integer"),
        ("d_steps=-1", "'d_steps': -1 is a negative count"),
        ("gamma=1.5", "'gamma': 1.5 is above its maximum"),
        ("reward=banana", "'reward': 'banana' is not one of"),
        ("tensorboard=1", "'tensorboard': expected true/false"),
        ("nokey", "not of the form key=value"),
    ],
)
def test_bad_config_rejected_before_any_work(tmp_path, capsys, override, message):
    out = tmp_path / "run"
    rc = train_cli.main(["--agent", "reinforce", "--out", str(out), "--set", override])
    assert rc == 2
    assert re.search(message, capsys.readouterr().err), override
    assert not out.exists()  # nothing was created


def test_config_file_and_precedence(tmp_path):
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps({"n_rollouts": 3, "g_lr": 0.5, "batch_size": 8}))
    cfg = load_config(reinforce.ReinforceConfig, path, ["g_lr=1e-3"], {"out_dir": "x"})
    assert (cfg.n_rollouts, cfg.g_lr, cfg.batch_size, cfg.out_dir) == (3, 1e-3, 8, "x")
    path.write_text(json.dumps({"n_rollout": 3}))
    with pytest.raises(ConfigError, match="unknown config key 'n_rollout'"):
        load_config(reinforce.ReinforceConfig, path)
    with pytest.raises(ConfigError, match="env_id"):
        build_config(reinforce.ReinforceConfig, {"env_id": "textgan/Nope-v0"})
    assert parse_override("device=cuda:0") == ("device", "cuda:0")
    assert parse_override("d_lr=null") == ("d_lr", None)


# ------------------------------------------------------------------ end to end


@pytest.mark.parametrize("agent", ["reinforce", "bgan", "actor_critic"])
def test_train_then_sample_end_to_end(tmp_path, capsys, agent):
    out = tmp_path / agent
    extra = {
        "reinforce": ["n_rollouts=2"],
        "bgan": ["n_groups=2", "n_samples=4", "condition_len=2"],
        "actor_critic": ["n_rollouts=2"],
    }[agent]
    argv = [
        "--agent",
        agent,
        "--env",
        "textgan/Oracle-v0",
        "--out",
        str(out),
        *sets("total_steps=3", *extra),
    ]
    assert train_cli.main(argv) == 0
    saved = json.loads((out / "config.json").read_text())
    assert saved["agent"] == agent and saved["total_steps"] == 3 and saved["vocab_size"] == V
    ckpt = load_checkpoint(out / "checkpoint.pt", ["modules", "optimizers", "generators", "rng"])
    assert ckpt["step"] == 3 and "discriminator" in ckpt["modules"]
    with (out / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["step"]) for r in rows] == [1, 2, 3]
    assert (
        rows[1]["nll_oracle"] != "nan" and rows[0]["nll_oracle"] == "nan"
    )  # eval_every=2, and at the end
    assert all(0 <= float(r["d_accuracy"]) <= 1 for r in rows)
    capsys.readouterr()
    assert sample_main(["--run", str(out), "-n", "5", "--temperature", "0.8"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 5
    for line in lines:
        ids = [int(tok) for tok in line.split()]
        assert len(ids) == T and all(0 <= i < V for i in ids)


def test_mle_agent_and_corpus_env(tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(["the cat sat", "a dog ran far", "the dog sat", "a cat ran"] * 10))
    out = tmp_path / "corpus_run"
    argv = ["--agent", "reinforce", "--env", "textgan/Corpus-v0", "--out", str(out)]
    argv += sets("total_steps=1", "n_rollouts=2", f"corpus_path={corpus}")
    assert train_cli.main(argv) == 0
    assert (out / "vocab.json").exists()
    capsys.readouterr()
    assert sample_main(["--run", str(out), "-n", "4"]) == 0
    words = capsys.readouterr().out.split()
    assert words and set(words) <= {"the", "a", "cat", "dog", "sat", "ran", "far", "<unk>"}
    mle_out = tmp_path / "mle_run"
    assert train_cli.main(["--agent", "mle", "--out", str(mle_out), *sets()]) == 0
    assert (mle_out / "mle" / "mle_checkpoint.pt").exists()
    assert sample_main(["--run", str(mle_out), "-n", "2"]) == 0


# ------------------------------------------------------------------ faults


def test_nan_stops_run_and_keeps_last_good_checkpoint(tmp_path, capsys, monkeypatch):
    calls = {"n": 0}
    real_q = reinforce.monte_carlo_q

    def poisoned(*args, **kwargs):
        calls["n"] += 1
        q = real_q(*args, **kwargs)
        return q * float("nan") if calls["n"] == 3 else q

    monkeypatch.setattr(reinforce, "monte_carlo_q", poisoned)
    out = tmp_path / "nan"
    argv = ["--agent", "reinforce", "--out", str(out), *sets("total_steps=5", "n_rollouts=2")]
    assert train_cli.main(argv) == 1
    err = capsys.readouterr().err
    assert "reward (Monte-Carlo Q)" in err and "step 3" in err
    ckpt = load_checkpoint(out / "checkpoint.pt", ["modules"])
    assert ckpt["step"] == 2
    assert all(torch.isfinite(v).all() for v in ckpt["modules"]["policy"].values())


def test_existing_run_corrupt_checkpoint_and_changed_config(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["--agent", "reinforce", "--out", str(out), *sets("total_steps=1", "n_rollouts=2")]
    assert train_cli.main(argv) == 0
    assert train_cli.main(argv) == 1  # refuses to overwrite without --resume
    assert "--resume" in capsys.readouterr().err
    assert train_cli.main([*argv, "--set", "n_rollouts=3", "--resume"]) == 1
    assert "n_rollouts: 2 -> 3" in capsys.readouterr().err
    data = (out / "checkpoint.pt").read_bytes()
    (out / "checkpoint.pt").write_bytes(data[: len(data) // 2])
    assert train_cli.main([*argv, "--set", "total_steps=2", "--resume"]) == 1
    assert "corrupt, truncated" in capsys.readouterr().err

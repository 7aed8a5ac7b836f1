"""``textgan eval --run DIR``: MaskGAN runs report their logged metrics; LSTM-policy runs report NLL-test/BLEU."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import torch

from agents.eval_cli import main
from agents.maskgan import MaskGANConfig
from agents.maskgan import train as train_maskgan

WORDS = ["a", "cat", "dog", "sits", "on", "the", "mat", "runs", "in", "park", "red", "big"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "corpus.txt"
    gen = torch.Generator().manual_seed(0)
    lengths = torch.randint(3, 9, (300,), generator=gen).tolist()
    lines = [
        " ".join(WORDS[i] for i in torch.randint(len(WORDS), (n,), generator=gen).tolist())
        for n in lengths
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def _last_logged(run: Path, key: str) -> float:
    with (run / "metrics.csv").open(newline="") as handle:
        values = [row[key] for row in csv.DictReader(handle) if row.get(key)]
    return float(values[-1])


def _eval_json(run: Path, capsys: pytest.CaptureFixture[str]) -> dict:
    assert (
        main(
            [
                "--run",
                str(run),
                "--device",
                "cpu",
                "--json",
                "--samples",
                "64",
                "--bleu-samples",
                "32",
            ]
        )
        == 0
    )
    return json.loads(capsys.readouterr().out)


def test_maskgan_run_reports_the_metrics_it_logged(
    tmp_path: Path, corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = MaskGANConfig(
        out_dir=str(tmp_path / "mg"), corpus_path=str(corpus), seq_len=10, n_eval=30,
        emb_dim=8, hidden_dim=8, batch_size=16, mle_steps=5, d_pretrain_steps=2, total_steps=3,
        eval_every=0, tensorboard=False, progress=False, device="cpu",
    )  # fmt: skip
    train_maskgan(cfg)
    out = _eval_json(Path(cfg.out_dir), capsys)
    assert out["agent"] == "maskgan" and out["step"] == cfg.n_steps
    for key in ("fill_ppl", "bleu4", "unique_2gram", "seen_3gram", "eval_d_fake"):
        assert math.isclose(out[key], _last_logged(Path(cfg.out_dir), key), rel_tol=1e-6), key
    # plain-text output names every metric
    assert main(["--run", cfg.out_dir, "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    assert "fill_ppl" in text and "seen_4gram" in text


def test_lstm_policy_run_reports_nll_test_and_bleu(
    tmp_path: Path, corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from agents.reinforce import ReinforceConfig
    from agents.reinforce import train as train_reinforce

    cfg = ReinforceConfig(
        out_dir=str(tmp_path / "rf"), env_id="textgan/Corpus-v0", corpus_path=str(corpus),
        vocab_size=40, seq_len=8, n_valid=40, emb_dim=8, hidden_dim=8, mle_epochs=1,
        disc="lstm", disc_kwargs={"emb_dim": 8, "hidden_dim": 8}, d_pretrain_steps=1,
        d_steps=1, d_epochs=1, d_negatives=32, d_batch_size=16, eval_samples=32, total_steps=2,
        batch_size=16, n_rollouts=2, eval_every=1, tensorboard=False, progress=False, device="cpu",
    )  # fmt: skip
    train_reinforce(cfg)
    out = _eval_json(Path(cfg.out_dir), capsys)
    assert out["agent"] == "reinforce" and out["step"] == 2
    # the checkpointed policy scores the held-out split exactly as the run logged it
    assert math.isclose(out["nll_test"], _last_logged(Path(cfg.out_dir), "nll_test"), rel_tol=1e-5)
    assert 0.0 <= out["bleu4"] <= 1.0 and 0.0 < out["unique2"] <= 1.0


def test_an_mle_agent_run_evaluates(
    tmp_path: Path, corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The mle agent lives in agents.mle_agent: eval finds its config through the registry."""
    from agents.mle_agent import MLEAgentConfig
    from agents.mle_agent import train as train_mle_agent

    cfg = MLEAgentConfig(
        out_dir=str(tmp_path / "mle"), env_id="textgan/Corpus-v0", corpus_path=str(corpus),
        vocab_size=40, seq_len=8, n_valid=40, emb_dim=8, hidden_dim=8, mle_epochs=1,
        disc="lstm", disc_kwargs={"emb_dim": 8, "hidden_dim": 8}, eval_samples=32,
        batch_size=16, tensorboard=False, progress=False, device="cpu",
    )  # fmt: skip
    train_mle_agent(cfg)
    out = _eval_json(Path(cfg.out_dir), capsys)
    assert out["agent"] == "mle" and out["step"] == 0
    assert math.isclose(out["nll_test"], _last_logged(Path(cfg.out_dir), "nll_test"), rel_tol=1e-5)


def test_not_a_run_directory_fails_cleanly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--run", str(tmp_path)]) == 2
    assert "not a run directory" in capsys.readouterr().err

"""`textgan bench` with stock stable-baselines3 PPO as a variant: a real tiny grid."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from agents.bench import cli

TINY = [
    "--seeds", "1", "--budget", "2", "--checkpoints", "2",
    "--set", "vocab_size=30", "--set", "seq_len=6", "--set", "n_real=128", "--set", "n_valid=64",
    "--set", "batch_size=16", "--set", "mle_epochs=1", "--set", "d_negatives=64",
    "--set", "d_pretrain_steps=1", "--set", "d_steps=1", "--set", "d_epochs=1",
    "--eval-set", "n_samples=64", "--eval-set", "n_bleu=16", "--eval-set", "n_refs=64",
    "--eval-set", "temperatures=[0.8,1.2]", "--workers", "1", "--no-progress",
]  # fmt: skip


def test_ppo_is_a_known_agent_and_bad_names_still_fail(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from agents.bench.runners import known_agents

    assert "ppo" in known_agents()
    with pytest.raises(SystemExit):
        cli.main(["--out", str(tmp_path / "b"), "--agents", "mle,ppo2", *TINY])
    assert "unknown agent(s) ppo2" in capsys.readouterr().err


def test_tiny_bench_with_ppo_writes_finite_nll_rows(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    assert cli.main(["--out", str(out), "--agents", "mle,ppo,a2c", *TINY]) == 0
    with (out / "results.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    ppo = [r for r in rows if r["agent"] == "ppo"]
    assert ppo, "no ppo rows in results.csv"
    assert {int(float(r["step"])) for r in ppo} == {0, 1, 2}  # step 0 + both segments
    for r in ppo:
        for key in ("nll_oracle", "nll_test"):
            assert math.isfinite(float(r[key])), (key, r)
    # PPO trained: its policy moved away from the step-0 one, which is the shared MLE start
    by_step = {int(float(r["step"])): r for r in ppo}
    assert float(by_step[2]["nll_test"]) != float(by_step[0]["nll_test"])
    start = {r["agent"]: r for r in rows if int(float(r["step"])) == 0 and r["phase"] == "train"}
    for agent in ("ppo", "a2c"):  # every variant starts from the same generator
        assert float(start[agent]["nll_test"]) == pytest.approx(float(start["mle"]["nll_test"]))
    a2c = {int(float(r["step"])): r for r in rows if r["agent"] == "a2c"}
    assert float(a2c[2]["nll_test"]) != float(a2c[0]["nll_test"])
    run = out / "runs" / "ppo__seed0"
    assert (run / "ppo_model.zip").is_file() and (run / "ppo_discriminator.pt").is_file()
    progress = json.loads((run / "bench_progress.json").read_text())
    assert "d_accuracy" in progress["rows"][-1]  # the discriminator was trained alongside

    # killed after the last segment trained but before it was recorded: no extra training
    cell = out / "cells" / "ppo__seed0.json"
    saved = (run / "ppo_model.zip").read_bytes()
    progress["rows"] = progress["rows"][:-1]
    (run / "bench_progress.json").write_text(json.dumps(progress))
    cell.unlink()
    assert cli.main(["--out", str(out), "--agents", "mle,ppo", *TINY]) == 0
    assert (run / "ppo_model.zip").read_bytes() == saved
    rows = json.loads((run / "bench_progress.json").read_text())["rows"]
    assert [r["step"] for r in rows] == [0, 1, 2]
    assert rows[-1]["nll_test"] == pytest.approx(float(by_step[2]["nll_test"]))

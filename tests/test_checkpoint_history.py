"""keep_checkpoints: the last K checkpoints kept as step files, checkpoint.pt linked to the newest,
resume unchanged; K=1 keeps only checkpoint.pt."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from agents import train as train_cli
from agents.runtime import RunState, kept_checkpoints, load_checkpoint, save_run_checkpoint
from tests.test_train_cli import sets


def _objects() -> tuple[dict, dict, dict]:
    net = torch.nn.Linear(2, 2)
    return {"net": net}, {"opt": torch.optim.Adam(net.parameters())}, {}


def test_keep_k_keeps_the_last_k_and_links_the_newest(tmp_path: Path) -> None:
    objects = _objects()
    for step in range(1, 6):
        save_run_checkpoint(tmp_path, RunState(step), *objects, "toy", keep=3)
    kept = kept_checkpoints(tmp_path)
    assert list(kept) == [3, 4, 5]
    assert (tmp_path / "checkpoint.pt").samefile(kept[5])  # one file, not two copies
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 5
    assert load_checkpoint(kept[3])["step"] == 3
    assert not list(tmp_path.rglob("*.tmp"))


def test_an_abandoned_future_is_dropped_and_keep_1_drops_the_history(tmp_path: Path) -> None:
    objects = _objects()
    for step in (1, 2, 3, 4):
        save_run_checkpoint(tmp_path, RunState(step), *objects, "toy", keep=2)
    assert list(kept_checkpoints(tmp_path)) == [3, 4]
    save_run_checkpoint(tmp_path, RunState(2), *objects, "toy", keep=2)  # resumed from step 2
    assert list(kept_checkpoints(tmp_path)) == [2]  # steps 3 and 4 belong to the old future
    save_run_checkpoint(tmp_path, RunState(3), *objects, "toy", keep=2)
    assert list(kept_checkpoints(tmp_path)) == [2, 3]
    save_run_checkpoint(tmp_path, RunState(4), *objects, "toy")  # keep=1: checkpoint.pt only
    assert kept_checkpoints(tmp_path) == {}
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 4
    with pytest.raises(ValueError, match="keep must be >= 1"):
        save_run_checkpoint(tmp_path, RunState(4), *objects, "toy", keep=0)


def test_a_run_keeping_two_resumes_exactly_like_one_keeping_one(tmp_path: Path) -> None:
    def run(out: Path, keep: int, total: int, resume: bool = False) -> None:
        argv = ["--agent", "reinforce", "--out", str(out)]
        argv += sets(f"total_steps={total}", "n_rollouts=2", f"keep_checkpoints={keep}")
        assert train_cli.main(argv + (["--resume"] if resume else [])) == 0

    run(tmp_path / "one", 1, 4)
    run(tmp_path / "two", 2, 2)
    run(tmp_path / "two", 3, 4, resume=True)  # keep may change on resume: it computes nothing
    assert list(kept_checkpoints(tmp_path / "two")) == [2, 3, 4]
    assert not (tmp_path / "one" / "checkpoints").exists()
    a = load_checkpoint(tmp_path / "one" / "checkpoint.pt")
    b = load_checkpoint(tmp_path / "two" / "checkpoint.pt")
    for name, params in a["modules"].items():
        for key, value in params.items():
            assert torch.equal(value, b["modules"][name][key]), f"{name}.{key}"
    with (
        (tmp_path / "one" / "metrics.csv").open() as f1,
        (tmp_path / "two" / "metrics.csv").open() as f2,
    ):
        assert list(csv.reader(f1)) == list(csv.reader(f2))
    assert json.loads((tmp_path / "two" / "config.json").read_text())["keep_checkpoints"] == 3

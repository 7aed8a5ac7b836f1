"""Checkpoints: atomic writes, safe loads, clear errors for corrupt or foreign files."""

from __future__ import annotations

import pickle
import random

import numpy as np
import pytest
import torch

from agents.runtime import (
    CheckpointError,
    MetricLogger,
    atomic_save,
    load_checkpoint,
    rng_state,
    set_rng_state,
)


def test_round_trip_keeps_tensors(tmp_path):
    path = atomic_save({"w": torch.arange(5.0), "step": 3}, tmp_path / "ckpt.pt")
    state = load_checkpoint(path, required_keys=["w", "step"])
    assert torch.equal(state["w"], torch.arange(5.0)) and state["step"] == 3
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]  # no temp file left behind


def test_truncated_checkpoint_is_refused_and_names_the_file(tmp_path):
    path = atomic_save({"w": torch.randn(100)}, tmp_path / "ckpt.pt")
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(CheckpointError, match="ckpt.pt"):
        load_checkpoint(path)


class _Foreign:
    pass


def test_foreign_pickle_is_not_unpickled(tmp_path):
    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps(_Foreign()))
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(path)


def test_missing_keys_and_missing_file(tmp_path):
    path = atomic_save({"a": torch.zeros(1)}, tmp_path / "c.pt")
    with pytest.raises(CheckpointError, match="optimizer"):
        load_checkpoint(path, required_keys=["a", "optimizer"])
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")


def test_failed_save_keeps_previous_checkpoint(tmp_path):
    path = atomic_save({"v": torch.ones(2)}, tmp_path / "c.pt")

    class Unsaveable:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        atomic_save({"v": Unsaveable()}, path)
    assert torch.equal(load_checkpoint(path)["v"], torch.ones(2))
    assert len(list(tmp_path.iterdir())) == 1


def test_rng_state_round_trip_through_a_checkpoint(tmp_path):
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    atomic_save({"rng": rng_state()}, tmp_path / "r.pt")
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(99), np.random.seed(99), torch.manual_seed(99)
    set_rng_state(load_checkpoint(tmp_path / "r.pt")["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def test_metric_logger_resume_drops_rows_after_the_checkpoint(tmp_path):
    log = MetricLogger(tmp_path, tensorboard=False)
    for step in range(5):
        log.log(step, {"loss": float(step)})
    log.log(5, {"loss": 5.0, "acc": torch.tensor(0.5)})
    log.close()
    resumed = MetricLogger(tmp_path, tensorboard=False, resume_from_step=2)
    resumed.log(3, {"loss": 30.0})
    lines = (tmp_path / "metrics.csv").read_text().splitlines()
    assert lines[0] == "step,loss,acc"
    assert [line.split(",")[0] for line in lines[1:]] == ["0", "1", "2", "3"]
    assert lines[-1].startswith("3,30.0")

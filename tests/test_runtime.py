"""The shared run layer: seed streams, run directory checks, run checkpoints, older run formats."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from agents.runtime import (
    SEED_STREAMS,
    CheckpointError,
    RunDirError,
    RunExistsError,
    RunState,
    atomic_save,
    load_checkpoint,
    load_run_checkpoint,
    prepare_run_dir,
    read_run_config,
    resume_or_start,
    save_run_checkpoint,
    seed_stream,
    step_seed,
)
from agents.setup import CommonConfig

# The offsets every result depends on: a changed number here changes a trainer's results.
FIXED_STREAMS = {
    "mle.eval": 1,
    "bench.eval": 1,
    "bench.continued_mle": 20,
    "oracle_data": 1,
    "policy_init": 2,
    "discriminator_init": 3,
    "pretrain_shuffle": 4,
    "pretrain_sample": 5,
    "eval": 7,
    "sample": 10,
    "shuffle": 11,
    "maskgan.init": 2,
    "maskgan.batch": 10,
    "maskgan.mask": 11,
    "maskgan.sample": 12,
    "maskgan.eval_masks": 100,
    "maskgan.eval_fill": 1,
    "began.init": 0,
    "began.z": 1,
    "began.fixed_z": 2,
    "began.eval_fake": 1,
    "ppgn.init": 0,
    "ppgn.evaluator": 101,
    "ppgn.eval_mixing": 1,
}
# Streams seeded from the run's own seed, per trainer: no two may share an offset.
RUN_SEED_STREAMS = {
    "text": ["oracle_data", "policy_init", "discriminator_init", "pretrain_shuffle"]
    + ["pretrain_sample", "sample", "shuffle"],
    "maskgan": ["maskgan.init", "maskgan.batch", "maskgan.mask", "maskgan.sample"]
    + ["maskgan.eval_masks"],
    "began": ["began.init", "began.z", "began.fixed_z"],
    "ppgn": ["ppgn.init", "ppgn.evaluator"],
}


def test_seed_streams_keep_their_offsets_and_never_collide_within_a_trainer() -> None:
    assert dict(SEED_STREAMS) == FIXED_STREAMS
    for trainer, names in RUN_SEED_STREAMS.items():
        offsets = [SEED_STREAMS[n] for n in names]
        assert len(set(offsets)) == len(offsets), trainer
    assert seed_stream(5, "sample") == 15
    assert seed_stream(step_seed(3, 4), "eval") == 3 * 1_000_003 + 4 + 7
    with pytest.raises(KeyError, match="unknown seed stream 'smaple'"):
        seed_stream(0, "smaple")


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(2, 2)


def _objects() -> tuple[dict, dict, dict]:
    net = _Net()
    opt = torch.optim.Adam(net.parameters())
    return {"net": net}, {"opt": opt}, {"g": torch.Generator().manual_seed(1)}


def test_run_state_round_trips_scalars_and_tensors(tmp_path) -> None:
    modules, optimizers, generators = _objects()
    state, resumed = resume_or_start(
        tmp_path, False, modules, optimizers, generators, "toy", scalars={"b": None}
    )
    assert not resumed and state == RunState(0, {"b": None}, {})
    state = RunState(3, {"b": 0.25, "n": 7}, {"k": torch.tensor(0.5), "w": torch.arange(3.0)})
    save_run_checkpoint(tmp_path, state, modules, optimizers, generators, "toy")
    back, resumed = resume_or_start(tmp_path, True, *_objects(), "toy")
    assert resumed and back.step == 3 and back.scalars == {"b": 0.25, "n": 7.0}
    assert torch.equal(back.tensors["w"], torch.arange(3.0)) and float(back.tensors["k"]) == 0.5


def test_a_checkpoint_of_another_agent_or_world_size_is_refused(tmp_path) -> None:
    save_run_checkpoint(tmp_path, RunState(1), *_objects(), "toy")
    with pytest.raises(CheckpointError, match="written by agent 'toy', not 'other'"):
        load_run_checkpoint(tmp_path, *_objects(), agent="other")
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["world_size"] == 1
    state["world_size"] = 2
    atomic_save(state, tmp_path / "checkpoint.pt")
    with pytest.raises(CheckpointError, match=r"written by 2 process\(es\).*this run has 1"):
        load_run_checkpoint(tmp_path, *_objects(), agent="toy")


def test_run_dir_refuses_clobbering_and_other_configs(tmp_path) -> None:
    cfg = CommonConfig(out_dir=str(tmp_path))
    prepare_run_dir(tmp_path, cfg, "toy", resume=False, extra={"data": "a"})
    assert read_run_config(tmp_path, agent="toy")["data"] == "a"
    with pytest.raises(RunDirError, match="holds a 'toy' run, not a 'other' run"):
        read_run_config(tmp_path, agent="other")
    save_run_checkpoint(tmp_path, RunState(), *_objects(), "toy")
    with pytest.raises(RunExistsError, match="--resume") as caught:
        prepare_run_dir(tmp_path, cfg, "toy", resume=False)
    assert isinstance(caught.value, FileExistsError) and isinstance(caught.value, RunDirError)
    longer = CommonConfig(out_dir=str(tmp_path), total_steps=cfg.total_steps + 1)
    prepare_run_dir(tmp_path, longer, "toy", resume=True, extra={"data": "a"})
    with pytest.raises(RunDirError, match=r"different config \(data: 'a' -> 'b'\)"):
        prepare_run_dir(tmp_path, longer, "toy", resume=True, extra={"data": "b"})
    prepare_run_dir(
        tmp_path, longer, "toy", resume=True, extra={"data": "b"}, resumable=frozenset({"data"})
    )
    assert json.loads((tmp_path / "config.json").read_text())["data"] == "b"


def test_began_loads_a_checkpoint_of_the_format_before_the_run_layer(tmp_path) -> None:
    from image_samplers.began import BEGANConfig, Generator
    from image_samplers.began.train import load_generator

    config = BEGANConfig(image_size=8, num_filters=4, z_dim=4, h_dim=4)
    torch.manual_seed(0)
    old = Generator(config)
    atomic_save(
        {"kind": "began", "config": config.to_dict(), "step": 9, "generator": old.state_dict()},
        tmp_path / "checkpoint.pt",
    )
    generator, loaded, step = load_generator(tmp_path, device="cpu")
    assert step == 9 and loaded == config
    for a, b in zip(old.parameters(), generator.parameters(), strict=True):
        assert torch.equal(a, b)


def test_began_run_directory_follows_the_run_layer(tmp_path) -> None:
    from image_samplers.began import BEGANConfig
    from image_samplers.began.train import BEGANTrainer, load_generator
    from image_samplers.data import load_digits

    data = load_digits(8).subset(torch.arange(16))
    config = BEGANConfig(image_size=8, num_filters=4, z_dim=4, h_dim=4, batch_size=8, steps=2)
    BEGANTrainer(config, out_dir=tmp_path, device="cpu", dataset=data).train(
        progress=False, tensorboard=False
    )
    saved = read_run_config(tmp_path, agent="began")
    assert saved["steps"] == 2
    ckpt = load_checkpoint(tmp_path / "checkpoint.pt")
    assert ckpt["format"] == "textgan-run" and ckpt["agent"] == "began" and ckpt["step"] == 2
    assert set(ckpt["modules"]) == {"generator", "discriminator"}
    assert set(ckpt["tensors"]) == {"k", "sums"} and set(ckpt["generators"]) == {"z"}
    assert load_generator(tmp_path, device="cpu")[2] == 2
    with pytest.raises(RunExistsError, match="--resume"):
        BEGANTrainer(config, out_dir=tmp_path, device="cpu", dataset=data)
    resumed = BEGANTrainer.resume(tmp_path, device="cpu", dataset=data, steps=3)
    assert resumed.step == 2 and resumed.config.steps == 3

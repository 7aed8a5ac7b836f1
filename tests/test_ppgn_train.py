"""PPGN training: end-to-end conditional sampling, resume, checkpoint validation, CLI errors."""

from __future__ import annotations

import pytest
import torch

from agents.runtime import CheckpointError, atomic_save
from image_samplers.data import load_digits
from image_samplers.metrics import train_evaluator
from image_samplers.ppgn import cli
from image_samplers.ppgn import train as train_mod
from image_samplers.ppgn.build import class_condition, make_sampler
from image_samplers.ppgn.config import PPGNConfig, tiny_config
from image_samplers.ppgn.sampler import preset
from image_samplers.ppgn.train import load_run, read_checkpoint, train_ppgn

MICRO = dict(
    image_size=8,
    code_dim=8,
    width=4,
    dae_hidden=16,
    batch_size=64,
    classifier_epochs=1,
    generator_epochs=1,
    dae_epochs=1,
    lr=1e-3,
)


@pytest.fixture(scope="module")
def digits8():
    data = load_digits(8)
    return data.subset(torch.arange(256))


def _params(models):
    return torch.cat(
        [
            p.detach().flatten()
            for m in models.modules().values()
            for p in m.state_dict().values()
            if p.is_floating_point()
        ]
    )


def test_resume_after_interruption_matches_uninterrupted_run(tmp_path, digits8, monkeypatch):
    config = PPGNConfig(**MICRO)
    full = train_ppgn(digits8, tmp_path / "full", config, device="cpu", progress=False)

    real_epoch = train_mod._train_epoch
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:  # dies inside the joint generator stage
            raise KeyboardInterrupt
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(train_mod, "_train_epoch", flaky)
    with pytest.raises(KeyboardInterrupt):
        train_ppgn(digits8, tmp_path / "cut", config, device="cpu", progress=False)
    state = read_checkpoint(tmp_path / "cut" / "checkpoint.pt")
    assert state["progress"] == {"stage": 3, "epoch": 0}
    with pytest.raises(CheckpointError, match="not finished training"):
        load_run(tmp_path / "cut", device="cpu")
    with pytest.raises(FileExistsError, match="--resume"):
        train_ppgn(digits8, tmp_path / "cut", config, device="cpu", progress=False)
    monkeypatch.setattr(train_mod, "_train_epoch", real_epoch)
    resumed = train_ppgn(
        digits8, tmp_path / "cut", config, device="cpu", resume=True, progress=False
    )
    torch.testing.assert_close(_params(resumed), _params(full))
    rows = (tmp_path / "cut" / "metrics.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 6  # header + one row per epoch of the six stages, no duplicates


def test_mismatched_and_foreign_checkpoints_are_rejected(tmp_path, digits8):
    config = PPGNConfig(**{**MICRO, "train_noiseless_joint": False, "dae_epochs": 0})
    train_ppgn(digits8, tmp_path / "run", config, device="cpu", progress=False)
    bigger = PPGNConfig(**{**MICRO, "code_dim": 12, "train_noiseless_joint": False})
    with pytest.raises(CheckpointError, match=r"code_dim: checkpoint 8 vs requested 12"):
        train_ppgn(digits8, tmp_path / "run", bigger, device="cpu", resume=True, progress=False)
    with pytest.raises(ValueError, match="needs generator 'noiseless_joint'"):
        models = load_run(tmp_path / "run", device="cpu")
        make_sampler(models, "noiseless-joint-ppgn-h", class_condition(models, 0))
    atomic_save(
        {"kind": "began", "version": 1, "config": {}, "models": {}, "progress": {}},
        tmp_path / "began" / "checkpoint.pt",
    )
    with pytest.raises(CheckpointError, match="'began' checkpoint, not a PPGN run"):
        load_run(tmp_path / "began", device="cpu")
    state = read_checkpoint(tmp_path / "run" / "checkpoint.pt")
    state["models"]["modules"]["classifier"]["fc_code.weight"] = torch.zeros(3, 3)
    atomic_save(state, tmp_path / "bad" / "checkpoint.pt")
    with pytest.raises(CheckpointError, match="network 'classifier' does not match"):
        load_run(tmp_path / "bad", device="cpu")
    with pytest.raises(ValueError, match="8x8 images but config.image_size is 16"):
        train_ppgn(digits8, tmp_path / "x", tiny_config(), device="cpu", progress=False)


def test_cli_errors_are_clear(tmp_path, capsys, digits8):
    assert cli.main(["sample", "--run", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
    config = PPGNConfig(**{**MICRO, "dae_epochs": 0})
    train_ppgn(digits8, tmp_path / "run", config, device="cpu", progress=False)
    assert (
        cli.main(["sample", "--run", str(tmp_path / "run"), "--class", "12", "--steps", "2"]) == 2
    )
    assert "unknown class id(s) [12]" in capsys.readouterr().err
    assert (
        cli.main(["train", "--data", "digits", "--out", str(tmp_path / "t"), "--set", "bogus=1"])
        == 2
    )
    assert "KEY one of" in capsys.readouterr().err
    rc = cli.main(
        [
            "sample",
            "--run",
            str(tmp_path / "run"),
            "--class",
            "3",
            "--class",
            "5",
            "--steps",
            "4",
            "-n",
            "4",
            "--out",
            str(tmp_path / "png"),
        ]
    )
    assert rc == 0
    assert {p.name for p in (tmp_path / "png").iterdir()} == {
        "noiseless-joint-ppgn-h_class3-5.png",
        "noiseless-joint-ppgn-h_class3-5_chain.png",
    }


def test_end_to_end_conditional_samples_beat_unconditioned_generator(tmp_path):
    """Digits 16x16, tiny C and DGN-AM G: target-class accuracy under a separate evaluator."""
    data = load_digits(16)
    config = tiny_config(
        classifier_epochs=4,
        generator_epochs=4,
        dae_epochs=0,
        train_joint=False,
        train_noiseless_joint=False,
    )
    models = train_ppgn(data, tmp_path / "run", config, device="cpu", progress=False)
    evaluator = train_evaluator(
        data, epochs=3, seed=5, device="cpu", widths=(8, 16), feature_dim=32
    )
    assert evaluator.test_accuracy > 0.6
    classes = torch.arange(10).repeat_interleave(4)
    sampler = make_sampler(
        models, preset("dgn-am", steps=40, save_every=0), class_condition(models, classes)
    )
    result = sampler.run(len(classes), seed=1)
    start = sampler.decode(sampler.init(len(classes), torch.Generator().manual_seed(1))).detach()
    accuracy = {
        name: float((evaluator.log_probs(images).argmax(-1) == classes).float().mean())
        for name, images in (("sampled", result.images), ("unconditioned", start))
    }
    assert accuracy["unconditioned"] < 0.3, accuracy
    assert accuracy["sampled"] > accuracy["unconditioned"] + 0.4, accuracy

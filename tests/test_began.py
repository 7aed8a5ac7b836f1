"""BEGAN: losses and k_t controller, architecture, config validation, exact resume, learning."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from image_samplers.began import (
    BEGANConfig,
    ConfigError,
    Discriminator,
    Generator,
    autoencoder_loss,
    convergence_measure,
    discriminator_loss,
    generator_loss,
    update_k,
)
from image_samplers.began.train import BEGANTrainer, epoch_order
from image_samplers.data import load_digits

T = torch.tensor


# ---------------------------------------------------------------- losses and controller
def test_update_k_proportional_step() -> None:
    k = update_k(T(0.5), T(0.2), T(0.05), gamma=0.5, lambda_k=0.1)
    assert k.item() == pytest.approx(0.5 + 0.1 * (0.5 * 0.2 - 0.05))
    # L(G(z)) above gamma L(x): the discriminator is winning too little on fakes, k falls.
    k = update_k(T(0.5), T(0.2), T(0.3), gamma=0.5, lambda_k=0.1)
    assert k.item() == pytest.approx(0.5 - 0.1 * 0.2)


def test_update_k_clips_to_unit_interval() -> None:
    assert update_k(T(0.999), T(10.0), T(0.0), 1.0, 0.1).item() == 1.0
    assert update_k(T(0.0005), T(0.0), T(10.0), 1.0, 0.1).item() == 0.0
    assert update_k(T(0.0), T(0.1), T(0.1), 0.5, 0.001).item() == 0.0


def test_losses_on_hand_made_tensors() -> None:
    v = T([[[[1.0, -1.0], [0.5, 0.0]]]])
    recon = T([[[[0.0, 0.0], [0.0, 0.0]]]])
    assert autoencoder_loss(v, recon).item() == pytest.approx((1 + 1 + 0.5 + 0) / 4)
    assert autoencoder_loss(v, v).item() == 0.0
    loss_real, loss_fake = T(0.3, requires_grad=True), T(0.2, requires_grad=True)
    k = T(0.5, requires_grad=True)
    l_d = discriminator_loss(loss_real, loss_fake, k)
    assert l_d.item() == pytest.approx(0.3 - 0.5 * 0.2)
    l_d.backward()
    assert loss_real.grad.item() == 1.0 and loss_fake.grad.item() == -0.5
    assert k.grad is None  # k_t is a controller state, not a parameter
    assert generator_loss(T(0.7)).item() == pytest.approx(0.7)
    assert convergence_measure(T(0.2), T(0.3), gamma=0.5).item() == pytest.approx(0.2 + 0.2)
    assert convergence_measure(T(0.2), T(0.05), gamma=0.5).item() == pytest.approx(0.2 + 0.05)


# ---------------------------------------------------------------- architecture
@pytest.mark.parametrize("size", [8, 16, 32, 64])
def test_shapes_and_widths(size: int) -> None:
    cfg = BEGANConfig(image_size=size, num_filters=4, z_dim=6, h_dim=5)
    gen, disc = Generator(cfg), Discriminator(cfg)
    scales = {8: 1, 16: 2, 32: 3, 64: 4}[size]
    assert cfg.num_scales == scales
    z = torch.rand(3, 6) * 2 - 1
    x = gen(z)
    assert x.shape == (3, 1, size, size)
    assert disc.encoder(x).shape == (3, 5)
    assert disc(x).shape == (3, 1, size, size)
    assert len(gen.decoder.blocks) == scales and len(disc.decoder.blocks) == scales
    strided = [
        m for m in disc.encoder.modules() if isinstance(m, torch.nn.Conv2d) and m.stride == (2, 2)
    ]
    assert [m.out_channels for m in strided] == [4 * (i + 2) for i in range(scales - 1)]
    assert disc.encoder.fc.in_features == 8 * 8 * 4 * scales
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in disc.modules())
    assert sum(isinstance(m, torch.nn.ELU) for m in gen.modules()) == 2 * scales


def test_skip_connection_concatenates_upsampled_h0() -> None:
    cfg = BEGANConfig(image_size=32, num_filters=4, z_dim=6)
    decoder = Generator(cfg).decoder
    seen: dict[int, torch.Tensor] = {}
    for i, block in enumerate(decoder.blocks):
        block.register_forward_pre_hook(lambda _m, args, i=i: seen.__setitem__(i, args[0]))
    z = torch.rand(2, 6)
    decoder(z)
    h0 = decoder.fc(z).view(2, 4, 8, 8)
    assert seen[0].shape[1] == 4 and torch.equal(seen[0], h0)
    for i in (1, 2):
        assert seen[i].shape == (2, 8, 8 * 2**i, 8 * 2**i)
        assert torch.equal(seen[i][:, 4:], F.interpolate(h0, scale_factor=2**i, mode="nearest"))
    no_skip = Generator(BEGANConfig(image_size=32, num_filters=4, z_dim=6, skip=False)).decoder
    assert [b[0].in_channels for b in no_skip.blocks] == [4, 4, 4]
    assert [b[0].in_channels for b in decoder.blocks] == [4, 8, 8]


@pytest.mark.parametrize("init", ["xavier", "default"])
def test_init_scales_weights_as_named(init: str) -> None:
    torch.manual_seed(0)
    cfg = BEGANConfig(image_size=16, num_filters=32, z_dim=16, h_dim=16, init=init)
    layers = [
        m
        for net in (Generator(cfg), Discriminator(cfg))
        for m in net.modules()
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))
    ]
    assert len(layers) > 10
    for layer in layers:
        w = layer.weight
        fan_in = w[0].numel()
        fan_out = w.shape[0] * (w[0, 0].numel() if w.ndim == 4 else 1)
        if init == "xavier":
            bound = (6.0 / (fan_in + fan_out)) ** 0.5
            assert torch.count_nonzero(layer.bias) == 0
        else:  # PyTorch: kaiming_uniform(a=sqrt(5)) = U(-1/sqrt(fan_in), 1/sqrt(fan_in))
            bound = fan_in**-0.5
            assert torch.count_nonzero(layer.bias) > 0
        assert w.abs().max() <= bound + 1e-6
        assert w.std().item() == pytest.approx(bound / 3**0.5, rel=0.15), layer


# ---------------------------------------------------------------- config
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("gamma", 0.0),
        ("gamma", 1.5),
        ("image_size", 12),
        ("image_size", 4),
        ("steps", -1),
        ("batch_size", 0),
        ("lr_min", 1.0),
        ("init", "glorot"),
    ],
)
def test_bad_config_names_the_field(field: str, value: float) -> None:
    with pytest.raises(ConfigError, match=rf"BEGANConfig\.{field}="):
        BEGANConfig(**{field: value})


def test_lr_schedule_halves_with_floor() -> None:
    cfg = BEGANConfig(lr=1e-4, lr_halve_every=10, lr_min=2e-5)
    assert [cfg.lr_at(s) for s in (0, 9, 10, 20, 30, 1000)] == pytest.approx(
        [1e-4, 1e-4, 5e-5, 2.5e-5, 2e-5, 2e-5]
    )


# ---------------------------------------------------------------- training
def _tiny(steps: int, **kw: object) -> BEGANConfig:
    values = dict(
        image_size=8,
        num_filters=4,
        z_dim=8,
        h_dim=8,
        batch_size=8,
        steps=steps,
        log_every=2,
        sample_every=0,
        checkpoint_every=4,
        lr=1e-3,
        lambda_k=0.05,
    )
    values.update(kw)
    return BEGANConfig(**values)


@pytest.fixture(scope="module")
def digits8():
    data = load_digits(8)
    return data.subset(torch.arange(40))  # 5 batches of 8: epochs turn over during the test


def _final_state(trainer: BEGANTrainer) -> dict[str, torch.Tensor]:
    flat = {f"g.{k}": v for k, v in trainer.generator.state_dict().items()}
    flat |= {f"d.{k}": v for k, v in trainer.discriminator.state_dict().items()}
    for name, opt in (("og", trainer.opt_g), ("od", trainer.opt_d)):
        for idx, st in opt.state_dict()["state"].items():
            flat |= {f"{name}.{idx}.{k}": v for k, v in st.items()}
    flat["k"] = trainer.k
    return flat


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return [
            {k: v for k, v in row.items() if k != "images_per_s"} for row in csv.DictReader(handle)
        ]


def test_resume_after_interruption_is_bit_identical(tmp_path: Path, digits8) -> None:
    cfg = _tiny(steps=10, lr_halve_every=4, lr_min=1e-4)
    full = BEGANTrainer(cfg, out_dir=tmp_path / "full", device="cpu", dataset=digits8)
    full.train(progress=False, tensorboard=False)

    first = BEGANTrainer(cfg, out_dir=tmp_path / "cut", device="cpu", dataset=digits8)
    first.train(stop_at=7, progress=False, tensorboard=False)  # checkpoints at 4 and 7, mid-window
    del first
    torch.manual_seed(12345)  # the resumed process starts with unrelated global RNG state
    resumed = BEGANTrainer.resume(tmp_path / "cut", device="cpu", dataset=digits8)
    assert resumed.step == 7 and resumed.epoch == 1
    resumed.train(progress=False, tensorboard=False)

    a, b = _final_state(full), _final_state(resumed)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert 0.0 < float(full.k) < 1.0  # the controller actually moved, so k was exercised
    assert _csv_rows(tmp_path / "full" / "metrics.csv") == _csv_rows(
        tmp_path / "cut" / "metrics.csv"
    )


def test_epoch_order_is_a_pure_function() -> None:
    assert torch.equal(epoch_order(50, 3, 2), epoch_order(50, 3, 2))
    assert not torch.equal(epoch_order(50, 3, 2), epoch_order(50, 3, 3))
    assert sorted(epoch_order(50, 3, 2).tolist()) == list(range(50))


def test_train_reports_falling_loss_real() -> None:
    data = load_digits(8)
    cfg = _tiny(steps=120, batch_size=16, num_filters=8, log_every=30, lambda_k=0.001, seed=1)
    trainer = BEGANTrainer(cfg, device="cpu", dataset=data)
    windows = [trainer.train(stop_at=s, progress=False) for s in range(30, 121, 30)]
    first, last = windows[0]["loss_real"], windows[-1]["loss_real"]
    assert last < 0.7 * first, [w["loss_real"] for w in windows]
    assert all(0.0 <= w["k"] <= 1.0 for w in windows)


# ---------------------------------------------------------------- command line
def test_cli_rejects_bad_values_with_field_name(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from image_samplers.began.cli import main

    assert main(["train", "--gamma", "1.5", "--out", str(tmp_path / "a")]) == 2
    assert "BEGANConfig.gamma=1.5" in capsys.readouterr().err
    assert main(["train", "--image-size", "24", "--out", str(tmp_path / "b")]) == 2
    assert "BEGANConfig.image_size=24" in capsys.readouterr().err
    assert main(["train", "--steps", "-3", "--out", str(tmp_path / "c")]) == 2
    assert "BEGANConfig.steps=-3" in capsys.readouterr().err
    assert main(["train", "--init", "he", "--out", str(tmp_path / "d")]) == 2
    assert "BEGANConfig.init='he'" in capsys.readouterr().err
    assert main(["train", "--resume", "--out", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_cli_train_resume_sample_interpolate(tmp_path: Path) -> None:
    import matplotlib.image as mpimg

    from image_samplers.began.cli import main

    run = tmp_path / "run"
    common = ["--image-size", "8", "--num-filters", "4", "--z-dim", "8", "--h-dim", "8"]
    args = ["train", "--out", str(run), *common, "--log-every", "2", "--sample-every", "2"]
    assert main([*args, "--steps", "3", "--no-progress"]) == 0
    assert main(["train", "--out", str(run), "--resume", "--steps", "4", "--no-progress"]) == 0
    rows = _csv_rows(run / "metrics.csv")
    assert [row["step"] for row in rows] == ["2", "3", "4"]
    saved = json.loads((run / "config.json").read_text())
    assert (saved["init"], saved["skip"], saved["beta1"]) == ("xavier", True, 0.5)
    other = tmp_path / "other"
    flags = ["--init", "default", "--no-skip", "--beta1", "0.9", "--steps", "1", "--no-progress"]
    assert main(["train", "--out", str(other), *common, *flags]) == 0
    saved = json.loads((other / "config.json").read_text())
    assert (saved["init"], saved["skip"], saved["beta1"]) == ("default", False, 0.9)
    assert {"loss_real", "loss_fake", "k", "m_global"} <= rows[0].keys()
    assert (run / "samples" / "step_0000004.png").is_file()
    assert main(["sample", "--run", str(run), "-n", "6", "--nrow", "3", "--device", "cpu"]) == 0
    grid = mpimg.imread(run / "sample_step4.png")
    assert grid.shape[:2] == (1 + 2 * 9, 1 + 3 * 9)
    assert main(["interpolate", "--run", str(run), "--rows", "2", "--frames", "5"]) == 0
    strip = mpimg.imread(run / "interpolation_step4.png")
    assert strip.shape[:2] == (1 + 2 * 9, 1 + 5 * 9)


def test_eval_joins_snapshots_with_logged_m_global(tmp_path: Path) -> None:
    from image_samplers.began.cli import correlation, logged_at

    log = tmp_path / "metrics.csv"
    log.write_text(
        "step,loss_real,m_global,k\n"
        "100,0.5,0.90,0.0\n200,0.4,0.80,0.01\n200,0.4,0.70,0.02\n300,0.3,0.60,0.03\n"
    )
    assert logged_at(log, [100, 200, 300]) == [0.90, 0.70, 0.60]  # re-logged step: last wins
    assert logged_at(log, [300], "k") == [0.03]
    with pytest.raises(ValueError, match=r"no row for step\(s\) \[150\]"):
        logged_at(log, [100, 150])
    xs = [1.0, 2.0, 3.0, 4.0, 5.0]
    curved = correlation(xs, [x**4 for x in xs])
    assert curved["spearman"] == pytest.approx(1.0) and 0.8 < curved["pearson"] < 0.99
    assert correlation(xs, [-x for x in xs])["pearson"] == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="paired"):
        correlation(xs[:2], xs[:2])

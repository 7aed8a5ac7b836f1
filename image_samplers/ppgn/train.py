"""Train every PPGN component on one image data set, stage by stage, with resume.

Stages, in order (each checkpointed after every epoch):

1. ``classifier``: C by cross-entropy; its lower conv stage is h1 and its
   post-ReLU fc layer is the code h = E(x).
2. ``generator_dgn``: G the DGN-AM way: ||G(E(x)) - x||^2 + feature matching in
   C's h1 space (the comparator) + a non-saturating GAN loss, with D or G paused
   when the ratio D loss / G adversarial loss is extreme.
3. ``generator_joint``: Joint PPGN-h: the same losses on G(h + noise), plus
   reconstruction of h through E(G(h + noise)); h1 reconstruction is the
   comparator term (C's lower layer is both, as pool5 is in the paper).
4. ``generator_noiseless_joint``: the same without noise (optional).
5. ``dae_h``: R(h), a DAE on codes with Gaussian noise (PPGN-h prior).
6. ``dae_x``: R(x), a DAE on images (PPGN-x prior).

Runs follow the run layer every trainer shares (:mod:`agents.runtime`): ``config.json``
holds the config and the data spec, the checkpoint every network, every optimiser, the code
statistics and the global RNG states; its step counts the epochs trained over all stages, so
the stage and epoch to continue from follow from it (:func:`progress_at`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from agents.runtime import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_NAME,
    RESUMABLE_CHANGES,
    CheckpointError,
    RunState,
    has_checkpoint,
    load_checkpoint,
    open_logger,
    prepare_run_dir,
    progress_bar,
    read_run_config,
    release_run_dir,
    resume_or_start,
    save_run_checkpoint,
    seed_stream,
)
from image_samplers.data import ImageDataset
from textgan_envs.device import resolve_device

from .config import SHAPE_FIELDS, PPGNConfig
from .models import Classifier, CodeDAE, Discriminator, Generator, ImageDAE

AGENT = "ppgn"
CHECKPOINT_KIND = AGENT
CHECKPOINT_VERSION = 1
# The data spec says where the data lives (a path may move between machines), not what a run
# computes: a resumed run may name it differently.
RESUMABLE = RESUMABLE_CHANGES | {"data"}
GENERATORS = ("dgn", "joint", "noiseless_joint")


def stages(config: PPGNConfig) -> list[str]:
    """Stage names for this config, in training order."""
    names = ["classifier"] + [f"generator_{g}" for g in generator_names(config)]
    return [*names, "dae_h", "dae_x"]


def generator_names(config: PPGNConfig) -> list[str]:
    """The generators this config trains (DGN-AM's always)."""
    wanted = {
        "dgn": True,
        "joint": config.train_joint,
        "noiseless_joint": config.train_noiseless_joint,
    }
    return [name for name in GENERATORS if wanted[name]]


def stage_epochs(config: PPGNConfig, stage: str) -> int:
    if stage == "classifier":
        return config.classifier_epochs
    if stage.startswith("generator_"):
        return config.generator_epochs
    return config.dae_epochs


def progress_at(config: PPGNConfig, step: int) -> tuple[int, int]:
    """``(stage index, epochs done in it)`` after ``step`` epochs over all stages.

    A finished stage counts as the start of the next one with epochs; ``(len(stages), 0)``
    when every stage is done.
    """
    names = stages(config)
    for index, stage in enumerate(names):
        epochs = stage_epochs(config, stage)
        if step < epochs:
            return index, step
        step -= epochs
    return len(names), 0


# ----------------------------------------------------------------------------- losses


def classifier_loss(classifier: Classifier, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(classifier(x), y)


def discriminator_loss(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """Standard GAN loss of D on real and generated logits."""
    return F.binary_cross_entropy_with_logits(
        d_real, torch.ones_like(d_real)
    ) + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))


def adversarial_loss(d_fake: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss -log D(G(h))."""
    return F.binary_cross_entropy_with_logits(d_fake, torch.ones_like(d_fake))


def generator_terms(
    classifier: Classifier,
    fake: torch.Tensor,
    x: torch.Tensor,
    h1: torch.Tensor,
    h: torch.Tensor,
    joint: bool,
) -> dict[str, torch.Tensor]:
    """Reconstruction terms of G: image, comparator (h1) and, for joint G, the code h."""
    fake_h1 = classifier.lower(fake)
    terms = {"image": F.mse_loss(fake, x), "feature": F.mse_loss(fake_h1, h1)}
    if joint:
        terms["code"] = F.mse_loss(classifier.code_from_lower(fake_h1), h)
    return terms


def dae_loss(dae: nn.Module, clean: torch.Tensor, sigma: float) -> torch.Tensor:
    """Denoising loss ||R(z + sigma n) - z||^2."""
    return F.mse_loss(dae(clean + sigma * torch.randn_like(clean)), clean)


# ----------------------------------------------------------------------------- models bundle


@dataclass
class PPGNModels:
    """Every trained component plus the code statistics the sampler needs."""

    config: PPGNConfig
    classifier: Classifier
    generators: dict[str, Generator]
    discriminators: dict[str, Discriminator]
    dae_h: CodeDAE
    dae_x: ImageDAE
    code_mean: torch.Tensor = field(default_factory=lambda: torch.zeros(0))
    """Per-dimension mean of real codes h = E(x) on the training split."""
    code_std: torch.Tensor = field(default_factory=lambda: torch.zeros(0))
    """Per-dimension std of real codes."""
    code_max: float = 0.0
    """Largest real code value: the default clip range for h is [0, code_max]."""

    @classmethod
    def create(cls, config: PPGNConfig, device: torch.device) -> PPGNModels:
        names = generator_names(config)
        return cls(
            config=config,
            classifier=Classifier(config).to(device),
            generators={n: Generator(config).to(device) for n in names},
            discriminators={n: Discriminator(config).to(device) for n in names},
            dae_h=CodeDAE(config).to(device),
            dae_x=ImageDAE(config).to(device),
            code_mean=torch.zeros(config.code_dim, device=device),
            code_std=torch.ones(config.code_dim, device=device),
        )

    def modules(self) -> dict[str, nn.Module]:
        out: dict[str, nn.Module] = {"classifier": self.classifier, "dae_h": self.dae_h}
        out["dae_x"] = self.dae_x
        out.update({f"generator_{k}": v for k, v in self.generators.items()})
        out.update({f"discriminator_{k}": v for k, v in self.discriminators.items()})
        return out

    def eval(self) -> PPGNModels:
        for module in self.modules().values():
            module.eval()
        return self

    @property
    def device(self) -> torch.device:
        return self.code_mean.device

    @property
    def code_noise_scale(self) -> float:
        """Mean per-dimension std of real codes: the unit for relative code noise."""
        return float(self.code_std.mean())

    def state(self) -> dict[str, Any]:
        return {
            "modules": {k: v.state_dict() for k, v in self.modules().items()},
            "code_mean": self.code_mean.cpu(),
            "code_std": self.code_std.cpu(),
            "code_max": float(self.code_max),
        }

    def load_state(self, state: dict[str, Any], source: str) -> None:
        modules = self.modules()
        saved = state["modules"]
        missing = sorted(set(modules) - set(saved))
        if missing:
            raise CheckpointError(f"{source} lacks networks: {', '.join(missing)}")
        for name, module in modules.items():
            try:
                module.load_state_dict(saved[name])
            except RuntimeError as exc:
                raise CheckpointError(
                    f"{source}: network {name!r} does not match this configuration: {exc}"
                ) from exc
        self.code_mean = state["code_mean"].to(self.device)
        self.code_std = state["code_std"].to(self.device)
        self.code_max = float(state["code_max"])


# ----------------------------------------------------------------------------- checkpoints


def _check_config(saved: dict[str, Any], config: PPGNConfig, path: Path) -> None:
    diffs = [
        f"{k}: checkpoint {saved.get(k)!r} vs requested {getattr(config, k)!r}"
        for k in SHAPE_FIELDS
        if saved.get(k) != getattr(config, k)
    ]
    if diffs:
        raise CheckpointError(
            f"checkpoint {path} was trained with a different configuration ({'; '.join(diffs)})"
        )


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A run's config, data spec, networks and stage progress, validated.

    Returns ``{"kind", "version", "config", "data", "models", "progress"}`` for a run
    checkpoint (its config read from the ``config.json`` beside it) and for a checkpoint of
    the layout PPGN wrote before the shared run format, so older runs still load.
    """
    path = Path(path)
    state = load_checkpoint(path)
    kind = state.get("agent", state.get("kind"))
    if kind != CHECKPOINT_KIND:
        raise CheckpointError(f"checkpoint {path} is a {kind!r} checkpoint, not a PPGN run")
    if state.get("format") != CHECKPOINT_FORMAT:
        return _validated_view(state, path)
    saved = read_run_config(path.parent, agent=AGENT)
    config = PPGNConfig.from_dict(saved)
    stage, epoch = progress_at(config, int(state["step"]))
    models = {"modules": state["modules"], **state["tensors"], **state["scalars"]}
    return {
        "kind": CHECKPOINT_KIND,
        "version": CHECKPOINT_VERSION,
        "config": config.to_dict(),
        "data": saved.get("data", ""),
        "models": models,
        "progress": {"stage": stage, "epoch": epoch},
    }


def _validated_view(state: dict[str, Any], path: Path) -> dict[str, Any]:
    """A checkpoint already in the layout :func:`read_checkpoint` returns, checked."""
    missing = [k for k in ("version", "config", "models", "progress") if k not in state]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks required entries: {', '.join(missing)}")
    if int(state["version"]) != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format version {state['version']}, expected {CHECKPOINT_VERSION}"
        )
    return state


def load_run(
    run_dir: str | os.PathLike[str], device: str | torch.device = "auto", complete: bool = True
) -> PPGNModels:
    """Rebuild the trained models of a run directory (eval mode)."""
    path = Path(run_dir) / CHECKPOINT_NAME
    state = read_checkpoint(path)
    config = PPGNConfig.from_dict(state["config"])
    if complete and state["progress"]["stage"] < len(stages(config)):
        raise CheckpointError(
            f"run {run_dir} has not finished training (stopped in stage "
            f"{stages(config)[state['progress']['stage']]!r}); resume it with --resume"
        )
    models = PPGNModels.create(config, resolve_device(device))
    models.load_state(state["models"], str(path))
    return models.eval()


# ----------------------------------------------------------------------------- training


def _adam(module: nn.Module, lr: float, gan: bool) -> torch.optim.Adam:
    return torch.optim.Adam(module.parameters(), lr=lr, betas=(0.5, 0.999) if gan else (0.9, 0.999))


def _optimizers(models: PPGNModels, stage: str) -> dict[str, torch.optim.Optimizer]:
    cfg = models.config
    if stage == "classifier":
        return {"c": _adam(models.classifier, cfg.classifier_lr, False)}
    if stage.startswith("generator_"):
        name = stage[len("generator_") :]
        return {
            "g": _adam(models.generators[name], cfg.lr, True),
            "d": _adam(models.discriminators[name], cfg.lr, True),
        }
    module = models.dae_h if stage == "dae_h" else models.dae_x
    return {"r": _adam(module, cfg.classifier_lr, False)}


@torch.no_grad()
def _code_statistics(models: PPGNModels, data: ImageDataset) -> None:
    models.classifier.eval()
    codes = torch.cat(
        [models.classifier.encode(x.to(models.device)) for x, _ in data.loader(512, shuffle=False)]
    )
    models.code_mean = codes.mean(0)
    models.code_std = codes.std(0).clamp_min(1e-3)
    models.code_max = float(codes.max())


def _train_epoch(
    models: PPGNModels,
    stage: str,
    optimizers: dict[str, torch.optim.Optimizer],
    data: ImageDataset,
    epoch: int,
    bar: Any,
) -> dict[str, float]:
    cfg, dev, C = models.config, models.device, models.classifier
    totals: dict[str, float] = {}
    count = 0
    for module in models.modules().values():
        module.eval()
    for x, y in data.loader(
        cfg.batch_size, shuffle=True, seed=cfg.seed * 1000 + epoch, drop_last=True
    ):
        x, y = x.to(dev), y.to(dev)
        if stage == "classifier":
            C.train()
            loss = classifier_loss(C, x, y)
            optimizers["c"].zero_grad(set_to_none=True)
            loss.backward()
            optimizers["c"].step()
            metrics = {"loss": loss.item(), "acc": (C(x).argmax(-1) == y).float().mean().item()}
        elif stage.startswith("generator_"):
            metrics = _gan_step(models, stage[len("generator_") :], optimizers, x)
        else:
            dae = models.dae_h if stage == "dae_h" else models.dae_x
            dae.train()
            if stage == "dae_h":
                with torch.no_grad():
                    clean = C.encode(x)
                sigma = cfg.dae_h_noise * models.code_noise_scale
            else:
                clean, sigma = x, cfg.dae_x_noise
            loss = dae_loss(dae, clean, sigma)
            optimizers["r"].zero_grad(set_to_none=True)
            loss.backward()
            optimizers["r"].step()
            metrics = {"loss": loss.item()}
        for k, v in metrics.items():
            totals[k] = totals.get(k, 0.0) + v
        count += 1
        bar.update(1)
        bar.set_postfix({k: f"{v:.3g}" for k, v in metrics.items() if not k.startswith("paused")})
    return {k: v / max(count, 1) for k, v in totals.items()}


def _gan_step(
    models: PPGNModels, name: str, optimizers: dict[str, torch.optim.Optimizer], x: torch.Tensor
) -> dict[str, float]:
    cfg, C = models.config, models.classifier
    G, D = models.generators[name], models.discriminators[name]
    G.train()
    D.train()
    joint = name != "dgn"
    with torch.no_grad():
        h1 = C.lower(x)
        h = C.code_from_lower(h1)
    sigma = cfg.joint_noise * models.code_noise_scale if name == "joint" else 0.0
    h_in = h + sigma * torch.randn_like(h) if sigma > 0 else h
    fake = G(h_in)

    d_loss = discriminator_loss(D(x), D(fake.detach()))
    with torch.no_grad():
        ratio = d_loss.item() / max(adversarial_loss(D(fake)).item(), 1e-8)
    pause_d = ratio < cfg.pause_d_below
    pause_g = ratio > cfg.pause_g_above
    if not pause_d:
        optimizers["d"].zero_grad(set_to_none=True)
        d_loss.backward()
        optimizers["d"].step()
    adv = adversarial_loss(D(fake))

    terms = generator_terms(C, fake, x, h1, h, joint)
    feature_weight = cfg.joint_h1_weight if joint else cfg.feature_weight
    g_loss = cfg.image_weight * terms["image"] + feature_weight * terms["feature"]
    if joint:
        g_loss = g_loss + cfg.joint_h_weight * terms["code"]
    g_loss = g_loss + cfg.adversarial_weight * adv
    if not pause_g:
        optimizers["g"].zero_grad(set_to_none=True)
        g_loss.backward()
        optimizers["g"].step()
    out = {k: v.item() for k, v in terms.items()}
    out.update(
        d_loss=d_loss.item(), adv=adv.item(), paused_d=float(pause_d), paused_g=float(pause_g)
    )
    return out


def train_ppgn(
    data: ImageDataset,
    out_dir: str | os.PathLike[str],
    config: PPGNConfig,
    device: str | torch.device = "auto",
    resume: bool = False,
    progress: bool = True,
    tensorboard: bool = False,
    data_spec: str = "",
) -> PPGNModels:
    """Train all stages into ``out_dir`` (checkpoint after every epoch); resume if asked.

    A resumed run keeps its own config; one whose networks have another shape is refused.
    """
    out = Path(out_dir)
    dev = resolve_device(device)
    if data.image_size != config.image_size:
        raise ValueError(
            f"data has {data.image_size}x{data.image_size} images but config.image_size is {config.image_size}"
        )
    if data.num_classes != config.num_classes:
        raise ValueError(f"data has {data.num_classes} classes but config has {config.num_classes}")
    if resume and has_checkpoint(out):
        saved = read_run_config(out, agent=AGENT)
        _check_config(saved, config, out / CHECKPOINT_NAME)
        config = PPGNConfig.from_dict(saved)
    names = stages(config)
    run_dir = prepare_run_dir(
        out,
        config,
        AGENT,
        resume,
        resumable=RESUMABLE,
        extra={"data": data_spec},
        total_steps=sum(stage_epochs(config, stage) for stage in names),
        length_key="the stage epochs",
    )
    try:
        return _train_stages(data, run_dir, config, dev, resume, progress, tensorboard)
    finally:
        release_run_dir(run_dir)


def _train_stages(
    data: ImageDataset,
    run_dir: Path,
    config: PPGNConfig,
    dev: torch.device,
    resume: bool,
    progress: bool,
    tensorboard: bool,
) -> PPGNModels:
    names = stages(config)
    torch.manual_seed(seed_stream(config.seed, "ppgn.init"))
    models = PPGNModels.create(config, dev)
    optimizers = {
        f"{stage}.{key}": opt for stage in names for key, opt in _optimizers(models, stage).items()
    }
    keep = config.keep_checkpoints
    state, resumed = resume_or_start(
        run_dir,
        resume,
        models.modules(),
        optimizers,
        {},
        AGENT,
        dev,
        **_code_state(models),
        keep=keep,
    )
    if resumed:
        models.code_mean = state.tensors["code_mean"].to(dev)
        models.code_std = state.tensors["code_std"].to(dev)
        models.code_max = float(state.scalars["code_max"])
    train_split, _ = data.split(config.valid_fraction, seed=config.seed)
    steps_per_epoch = len(train_split) // config.batch_size
    stage_idx, epoch = progress_at(config, state.step)
    logger = open_logger(run_dir, state, resumed, tensorboard)
    try:
        while stage_idx < len(names):
            stage = names[stage_idx]
            stage_optimizers = {
                key.split(".", 1)[1]: opt
                for key, opt in optimizers.items()
                if key.split(".", 1)[0] == stage
            }
            total = stage_epochs(config, stage)
            bar = progress_bar(
                total * steps_per_epoch,
                epoch * steps_per_epoch,
                progress,
                f"ppgn {stage}",
                leave=True,
            )
            while epoch < total:
                metrics = _train_epoch(models, stage, stage_optimizers, train_split, epoch, bar)
                epoch += 1
                if stage == "classifier" and epoch == total:
                    _code_statistics(models, train_split)
                state.step += 1
                logger.log(state.step, {f"{stage}/{k}": v for k, v in metrics.items()})
                state = RunState(state.step, **_code_state(models))
                save_run_checkpoint(
                    run_dir, state, models.modules(), optimizers, {}, AGENT, keep=keep
                )
            bar.close()
            stage_idx, epoch = stage_idx + 1, 0
    finally:
        logger.close()
    return models.eval()


def _code_state(models: PPGNModels) -> dict[str, dict[str, Any]]:
    """The code statistics, as run-state scalars and tensors."""
    return {
        "scalars": {"code_max": models.code_max},
        "tensors": {"code_mean": models.code_mean, "code_std": models.code_std},
    }

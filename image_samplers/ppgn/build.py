"""Wire trained PPGN models into a sampler for one variant and one condition."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .conditions import ClassCondition, Condition
from .sampler import PPGNSampler, SamplerConfig, preset
from .train import PPGNModels


def class_condition(
    models: PPGNModels, classes: int | Sequence[int] | torch.Tensor
) -> ClassCondition:
    """log p(y = c | x) under the run's classifier C (one class, or one per chain)."""
    return ClassCondition(models.classifier, classes, models.config.num_classes)


def make_sampler(
    models: PPGNModels,
    variant: str | SamplerConfig,
    condition: Condition,
    init_scale: float = 1.0,
) -> PPGNSampler:
    """A :class:`PPGNSampler` for a preset name (or an explicit config) on trained models.

    h-space chains start from N(code_mean, (init_scale * code_std)^2) clipped to
    [0, code_max]; x-space chains start from uniform noise in [-1, 1].
    """
    config = preset(variant) if isinstance(variant, str) else variant
    models.eval()
    dev = models.device
    if config.space == "x":
        if config.prior not in ("dae_x", "none"):
            raise ValueError(
                f"x-space sampling needs prior 'dae_x' or 'none', got {config.prior!r}"
            )

        def init_x(n: int, gen: torch.Generator) -> torch.Tensor:
            size = models.config.image_size
            return (torch.rand(n, 1, size, size, generator=gen) * 2 - 1).to(dev)

        prior = models.dae_x if config.prior == "dae_x" else None
        return PPGNSampler(config, condition, lambda x: x, prior, init_x, (-1.0, 1.0))

    if config.generator not in models.generators:
        raise ValueError(
            f"variant needs generator {config.generator!r}, but this run has "
            f"{', '.join(models.generators)} (train with train_noiseless_joint=True?)"
        )
    generator = models.generators[config.generator]
    if config.prior == "dae_h":
        prior = models.dae_h
    elif config.prior == "joint":

        def prior(h: torch.Tensor) -> torch.Tensor:
            return models.classifier.encode(generator(h))

    elif config.prior == "none":
        prior = None
    else:
        raise ValueError(f"h-space sampling cannot use prior {config.prior!r}")
    clip = (0.0, models.code_max)

    def init_h(n: int, gen: torch.Generator) -> torch.Tensor:
        noise = torch.randn(n, models.config.code_dim, generator=gen).to(dev)
        return (models.code_mean + init_scale * models.code_std * noise).clamp(*clip)

    return PPGNSampler(config, condition, generator, prior, init_h, clip)

"""MALA-approx sampling for PPGN (Nguyen et al., 2017, Eq. 11), in h-space or x-space.

    z_{t+1} = z_t + eps1 (R(z_t) - z_t) + eps2 d log p(c | x(z_t)) / d z_t + N(0, eps3^2)

with z = h and x(h) = G(h) for DGN-AM and the PPGN-h family, or z = x for PPGN-x.
Two step rules:

* ``plain``: exactly the update above (the eps's are step sizes).
* ``normalized``: the reference code's rule: d = eps1 (R(z) - z) + eps2 grad + noise,
  then z += lr * d / mean|d| (per chain), so only the ratios of the eps's matter
  and lr sets the mean absolute step.

Why one sampler for all five variants: they differ only in the prior R, the
generator and the eps's, which is what :data:`PRESETS` records.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

import torch

from .conditions import Condition, ConditionError

StepRule = Literal["plain", "normalized"]
Prior = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class SamplerConfig:
    """Hyper-parameters of one sampling run."""

    space: Literal["h", "x"] = "h"
    """Where the chain lives: the code h (through G) or the image x (PPGN-x)."""
    prior: Literal["none", "dae_h", "joint", "dae_x"] = "dae_h"
    """Which learned prior gives R: none (DGN-AM), R(h), E(G(h)) (joint), or R(x)."""
    generator: Literal["dgn", "joint", "noiseless_joint", "none"] = "dgn"
    """Which trained generator maps h to x."""
    epsilon1: float = 1e-5
    """Weight of the prior term R(z) - z."""
    epsilon2: float = 1.0
    """Weight of the condition term d log p(c | x) / dz."""
    epsilon3: float = 1e-17
    """Standard deviation of the Gaussian noise term."""
    step: StepRule = "normalized"
    """``plain`` (z + update) or ``normalized`` (z + lr * update / mean|update|)."""
    lr: float = 1.0
    """Normalised step only: mean absolute step at the first iteration (in units of h or x)."""
    lr_end: float | None = None
    """Normalised step only: linearly decay lr to this value over the run (None = constant)."""
    l2: float = 0.0
    """Optional L2 prior on z (adds -l2 * z to the update), as used with DGN-AM."""
    steps: int = 200
    """Number of updates per chain."""
    reset_every: int = 0
    """Re-initialise each chain every N steps (0 = never), for diversity along one chain."""
    clip: tuple[float, float] | None = None
    """Clamp z to this range after each step; None = the run's code range (h) or [-1, 1] (x)."""
    threshold: float = 0.0
    """Keep a recorded sample only if p(condition | x) >= threshold."""
    save_every: int = 10
    """Record the chain every N steps (0 = final state only)."""

    def __post_init__(self) -> None:
        if self.step not in ("plain", "normalized"):
            raise ValueError(f"step must be 'plain' or 'normalized', got {self.step!r}")
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if min(self.epsilon1, self.epsilon2, self.epsilon3, self.lr, self.l2) < 0:
            raise ValueError("epsilon1/2/3, lr and l2 must be non-negative")
        if self.reset_every < 0 or self.save_every < 0:
            raise ValueError("reset_every and save_every must be >= 0")
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold is a probability, got {self.threshold}")
        if self.clip is not None and not self.clip[0] < self.clip[1]:
            raise ValueError(f"clip range must be (low, high) with low < high, got {self.clip}")


#: The five samplers compared in the paper. All use the ``normalized`` step rule
#: of the reference code (lr=1, h clipped to [0, max real code] as the reference
#: clips fc6 to [0, 30]). :data:`PUBLISHED` lists the values taken from the paper /
#: reference sampling scripts; the eps1/eps3 of ppgn-h, joint-ppgn-h and ppgn-x
#: were set here by a small sweep on the MNIST models (see RESULTS.md, "PPGN").
#: Unlike the reference (which back-propagates from the pre-softmax unit), the
#: condition term is d log p(c | x) / dh.
PRESETS: dict[str, SamplerConfig] = {
    # DGN-AM: no learned prior (eps1 = 0), no noise; a small L2 decay (l2=) is optional.
    "dgn-am": SamplerConfig(
        space="h", prior="none", generator="dgn", epsilon1=0.0, epsilon2=1.0, epsilon3=0.0
    ),
    # PPGN-x: DAE on images, chain in pixel space (lr = mean |dx| per step, x in [-1, 1]).
    "ppgn-x": SamplerConfig(
        space="x",
        prior="dae_x",
        generator="none",
        epsilon1=0.1,
        epsilon2=1.0,
        epsilon3=0.02,
        lr=0.05,
    ),
    # PPGN-h: the DGN-AM generator plus a DAE R(h) on the code.
    "ppgn-h": SamplerConfig(
        space="h", prior="dae_h", generator="dgn", epsilon1=0.01, epsilon2=1.0, epsilon3=0.05
    ),
    # Joint PPGN-h: R(h) = E(G(h)) with the jointly trained (noisy) generator.
    "joint-ppgn-h": SamplerConfig(
        space="h", prior="joint", generator="joint", epsilon1=0.01, epsilon2=1.0, epsilon3=0.05
    ),
    # Noiseless Joint PPGN-h: published reference defaults.
    "noiseless-joint-ppgn-h": SamplerConfig(
        space="h",
        prior="joint",
        generator="noiseless_joint",
        epsilon1=1e-5,
        epsilon2=1.0,
        epsilon3=1e-17,
    ),
}
PUBLISHED: dict[str, str] = {
    "dgn-am": "eps1=0 (no learned prior), eps3=0",
    "noiseless-joint-ppgn-h": "eps1=1e-5, eps2=1, eps3=1e-17, normalised step, lr=1",
}


def preset(name: str, **overrides: object) -> SamplerConfig:
    """A preset by name (see :data:`PRESETS`), with field overrides."""
    if name not in PRESETS:
        raise ValueError(f"unknown PPGN variant {name!r}; choose one of {', '.join(PRESETS)}")
    return replace(PRESETS[name], **overrides)


@dataclass
class UpdateTerms:
    """The pieces of one update, exposed so each term can be tested on its own."""

    log_p: torch.Tensor
    """log p(condition | x(z)) at the current z, [B]."""
    prior: torch.Tensor
    """R(z) - z (zeros without a prior)."""
    condition: torch.Tensor
    """d log p / dz."""


@dataclass
class SampleResult:
    """Outcome of :meth:`PPGNSampler.run`."""

    images: torch.Tensor
    """Final image of every chain, [B, 1, S, S]."""
    log_p: torch.Tensor
    """log p(condition | final image), [B]."""
    chain_images: torch.Tensor
    """Recorded images over time, [T, B, 1, S, S] (every save_every steps, plus the last)."""
    chain_log_p: torch.Tensor
    """log p at the recorded steps, [T, B]."""
    chain_steps: list[int]
    """Step index of each recorded frame."""
    kept_images: torch.Tensor
    """Recorded images with p >= threshold, [K, 1, S, S]."""
    kept_chain: torch.Tensor
    """Which chain each kept image came from, [K]."""


class PPGNSampler:
    """Run batched MALA-approx chains for one condition.

    ``decode`` maps z to images (G for h-space, identity for x-space); ``prior``
    is R (None for DGN-AM); ``init`` draws fresh starting points given a batch
    size and a ``torch.Generator``.
    """

    def __init__(
        self,
        config: SamplerConfig,
        condition: Condition,
        decode: Callable[[torch.Tensor], torch.Tensor],
        prior: Prior | None,
        init: Callable[[int, torch.Generator], torch.Tensor],
        clip: tuple[float, float] | None,
    ) -> None:
        if config.epsilon1 > 0 and prior is None and config.prior != "none":
            raise ValueError(f"sampler config asks for prior {config.prior!r} but none was given")
        self.config = config
        self.condition = condition
        self.decode = decode
        self.prior = prior
        self.init = init
        self.clip = config.clip if config.clip is not None else clip

    def terms(self, z: torch.Tensor) -> UpdateTerms:
        """Evaluate log p, R(z) - z and d log p / dz at ``z`` (no update)."""
        z = z.detach().requires_grad_(True)
        with torch.enable_grad():
            log_p = self.condition(self.decode(z))
            if log_p.shape != (z.shape[0],):
                raise ConditionError(
                    f"condition must return one log-probability per chain, shape ({z.shape[0]},); "
                    f"got {tuple(log_p.shape)}"
                )
            if not torch.isfinite(log_p).all():
                bad = (~torch.isfinite(log_p)).nonzero().flatten().tolist()
                raise ConditionError(
                    f"condition returned non-finite log p(condition | x) for chain(s) {bad[:10]}: "
                    "it must return finite log-probabilities (use log_softmax / logsigmoid)"
                )
            if self.config.epsilon2 > 0:
                (grad,) = torch.autograd.grad(log_p.sum(), z)
            else:
                grad = torch.zeros_like(z)
        if not torch.isfinite(grad).all():
            raise ConditionError("gradient of the condition is not finite")
        z = z.detach()
        with torch.no_grad():
            prior = (
                self.prior(z) - z
                if self.prior is not None and self.config.epsilon1 > 0
                else torch.zeros_like(z)
            )
        return UpdateTerms(log_p=log_p.detach(), prior=prior, condition=grad)

    def step(
        self, z: torch.Tensor, generator: torch.Generator, lr: float | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One update of every chain; returns (new z, log p at the old z)."""
        cfg = self.config
        t = self.terms(z)
        noise = torch.randn(z.shape, generator=generator, device="cpu").to(z.device) * cfg.epsilon3
        update = cfg.epsilon1 * t.prior + cfg.epsilon2 * t.condition + noise
        if cfg.l2 > 0:
            update = update - cfg.l2 * z
        if cfg.step == "normalized":
            scale = update.abs().flatten(1).mean(1).clamp_min(1e-30)
            shape = (-1,) + (1,) * (z.dim() - 1)
            update = (cfg.lr if lr is None else lr) * update / scale.view(shape)
        new = z + update
        if self.clip is not None:
            new = new.clamp(*self.clip)
        return new.detach(), t.log_p

    def run(self, n_chains: int, seed: int = 0, progress: bool = False) -> SampleResult:
        """Run ``n_chains`` chains for ``config.steps`` updates and collect samples."""
        cfg = self.config
        gen = torch.Generator().manual_seed(seed)
        z = self.init(n_chains, gen)
        frames: list[torch.Tensor] = []
        frame_lp: list[torch.Tensor] = []
        frame_steps: list[int] = []
        steps = range(cfg.steps)
        if progress:
            from tqdm.auto import tqdm

            steps = tqdm(steps, desc="sampling", leave=False)
        for i in steps:
            lr = cfg.lr
            if cfg.lr_end is not None:
                lr = cfg.lr + (cfg.lr_end - cfg.lr) * i / cfg.steps
            if cfg.save_every and i % cfg.save_every == 0:
                x, lp = self._observe(z)
                frames.append(x)
                frame_lp.append(lp)
                frame_steps.append(i)
            z, _ = self.step(z, gen, lr)
            if cfg.reset_every and (i + 1) % cfg.reset_every == 0 and i + 1 < cfg.steps:
                z = self.init(n_chains, gen)
        x, lp = self._observe(z)
        frames.append(x)
        frame_lp.append(lp)
        frame_steps.append(cfg.steps)
        chain_images = torch.stack(frames)
        chain_log_p = torch.stack(frame_lp)
        keep = chain_log_p.exp() >= cfg.threshold
        kept_images = chain_images[keep]
        kept_chain = keep.nonzero()[:, 1]
        return SampleResult(
            images=x,
            log_p=lp,
            chain_images=chain_images,
            chain_log_p=chain_log_p,
            chain_steps=frame_steps,
            kept_images=kept_images,
            kept_chain=kept_chain,
        )

    def _observe(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            x = self.decode(z)
            lp = self.condition(x)
        return x.detach().cpu(), lp.detach().cpu()

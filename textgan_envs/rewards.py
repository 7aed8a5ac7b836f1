"""Reward modes: how a discriminator's logit becomes a reward, one registry entry each.

A discriminator returns one logit ``l`` per sequence, ``D(Y) = sigmoid(l)``. The
text-GAN papers differ only in how ``D`` becomes a reward:

* ``prob``  ``D(Y)`` (SeqGAN);
* ``log``   ``log D(Y)`` (MaskGAN);
* ``logit`` ``l`` itself;
* ``bgan``  the log importance weight ``log D - log(1 - D)`` of the GAN divergence
  (boundary-seeking GAN), which is exactly the logit (no rounding through two ``logsigmoid``);
* ``bgan_<divergence>`` BGAN's log importance weight ``log w(x)`` of another f-divergence
  (BGAN Table 1, :func:`bgan_log_weights`): ``bgan_kl``, ``bgan_hellinger``, ``bgan_chi2``
  (``jsd`` and reverse KL have the GAN's weight).

``log`` goes through ``logsigmoid`` so a confident discriminator (``|l|`` of hundreds)
never produces ``log(0)``. An env's ``reward_mode`` and an agent's reward name
the same :data:`REWARDS` entry, so the agent reads the env's rewards instead of
recomputing them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "DIVERGENCES",
    "REWARDS",
    "REWARD_MODES",
    "REWARD_RANGES",
    "Divergence",
    "RewardFn",
    "RewardMode",
    "bgan_log_weights",
    "bgan_reward_mode",
    "get_reward_fn",
    "reward_mode",
]

RewardFn = Callable[[Tensor], Tensor]
Divergence = Literal["gan", "jsd", "kl", "rkl", "hellinger", "chi2"]
DIVERGENCES: tuple[str, ...] = ("gan", "jsd", "kl", "rkl", "hellinger", "chi2")

_INF = float("inf")


def prob_reward(logits: Tensor) -> Tensor:
    """``D(Y) = sigmoid(logit)`` in [0, 1] (SeqGAN)."""
    return torch.sigmoid(logits)


def log_reward(logits: Tensor) -> Tensor:
    """``log D(Y) = logsigmoid(logit)`` in (-inf, 0] (MaskGAN); finite for finite logits."""
    return F.logsigmoid(logits)


def logit_reward(logits: Tensor) -> Tensor:
    """The raw logit ``log D - log(1 - D)``."""
    return logits


def bgan_reward(logits: Tensor) -> Tensor:
    """BGAN's log importance weight ``log D - log(1 - D)`` of the GAN divergence: the logit."""
    return bgan_log_weights(logits, "gan")


def bgan_log_weights(
    logits: Tensor, divergence: Divergence = "gan", chi2_floor: float = 1e-6
) -> Tensor:
    """Unnormalised log importance weights ``log w(x)`` from the discriminator's pre-activation ``V(x)``.

    BGAN Theorem 1 / Table 1: ``w(x) = (df*/dT)(T(x))`` with ``T = nu(V)`` the f-GAN output
    activation. Worked out per divergence:

    * ``gan``: ``T = -log(1 + e^-V)``, ``f*(t) = -log(1 - e^t)``  -> ``w = e^V`` (``D / (1 - D)``).
    * ``jsd``: ``T = log 2 - log(1 + e^-V)``, ``f*(t) = -log(2 - e^t)`` -> ``w = e^V``.
    * ``kl``: ``T = V``, ``f*(t) = e^(t - 1)`` -> ``w = e^(V - 1)``.
    * ``rkl``: ``T = -e^-V``, ``f*(t) = -1 - log(-t)`` -> ``w = -1/T = e^V``.
    * ``hellinger`` (squared Hellinger): ``T = 1 - e^-V``, ``f*(t) = t / (1 - t)`` -> ``w = e^(2V)``.
    * ``chi2`` (Pearson chi-square): ``T = V``, ``f*(t) = t^2/4 + t`` -> ``w = V/2 + 1``. This weight
      is not an exponential and is negative for ``V < -2``; it is floored at ``chi2_floor`` so
      the log exists and a sample the discriminator rejects gets (almost) zero weight.

    The constant factors (``e^-1`` for ``kl``) cancel after self-normalisation but matter for
    the REINFORCE variant's log-partition.
    """
    if divergence in ("gan", "jsd", "rkl"):
        return logits
    if divergence == "kl":
        return logits - 1.0
    if divergence == "hellinger":
        return 2.0 * logits
    if divergence == "chi2":
        return torch.log((logits / 2.0 + 1.0).clamp(min=chi2_floor))
    raise ValueError(
        f"unknown BGAN divergence {divergence!r}; choose one of {', '.join(DIVERGENCES)}"
    )


@dataclass(frozen=True)
class RewardMode:
    """One way to turn a discriminator logit into a reward."""

    name: str
    fn: RewardFn
    """Logits ``[B]`` -> rewards ``[B]``."""
    range: tuple[float, float]
    """Closed interval of the reward (the env's ``reward_range``)."""
    summary: str


def _divergence_weight(divergence: Divergence) -> RewardFn:
    def log_weight(logits: Tensor) -> Tensor:
        return bgan_log_weights(logits, divergence)

    log_weight.__name__ = f"bgan_{divergence}_reward"
    return log_weight


_CHI2_FLOOR_LOG = float(torch.log(torch.tensor(1e-6)))

REWARDS: dict[str, RewardMode] = {
    mode.name: mode
    for mode in (
        RewardMode("prob", prob_reward, (0.0, 1.0), "D(Y) (SeqGAN)"),
        RewardMode("log", log_reward, (-_INF, 0.0), "log D(Y) (MaskGAN)"),
        RewardMode("logit", logit_reward, (-_INF, _INF), "the discriminator's logit"),
        RewardMode("bgan", bgan_reward, (-_INF, _INF), "BGAN log weight, GAN divergence"),
        RewardMode("bgan_kl", _divergence_weight("kl"), (-_INF, _INF), "BGAN log weight, KL"),
        RewardMode(
            "bgan_hellinger",
            _divergence_weight("hellinger"),
            (-_INF, _INF),
            "BGAN log weight, squared Hellinger",
        ),
        RewardMode(
            "bgan_chi2",
            _divergence_weight("chi2"),
            (_CHI2_FLOOR_LOG, _INF),
            "BGAN log weight, Pearson chi-square (floored)",
        ),
    )
}

# Views of the registry by name, for callers that want one field.
REWARD_MODES: dict[str, RewardFn] = {name: mode.fn for name, mode in REWARDS.items()}
REWARD_RANGES: dict[str, tuple[float, float]] = {name: mode.range for name, mode in REWARDS.items()}


def reward_mode(name: str) -> RewardMode:
    """The registry entry called ``name``; a clear ``ValueError`` for unknown modes."""
    try:
        return REWARDS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown reward mode {name!r}; choose one of {sorted(REWARDS)}") from None


def get_reward_fn(mode: str) -> RewardFn:
    """The reward transform called ``mode``; a clear ``ValueError`` for unknown modes."""
    return reward_mode(mode).fn


def bgan_reward_mode(divergence: Divergence) -> str:
    """The env reward mode whose rewards are BGAN's log weights for ``divergence``."""
    if divergence not in DIVERGENCES:
        raise ValueError(
            f"unknown BGAN divergence {divergence!r}; choose one of {', '.join(DIVERGENCES)}"
        )
    if divergence in ("gan", "jsd", "rkl"):
        return "bgan"
    return f"bgan_{divergence}"

"""Reward transforms of a discriminator's logit, computed stably in log space.

A discriminator returns one logit ``l`` per sequence, ``D(Y) = sigmoid(l)``. The
text-GAN papers differ only in how ``D`` becomes a reward:

* ``prob``  ``D(Y)`` (SeqGAN);
* ``log``   ``log D(Y)`` (MaskGAN);
* ``logit`` ``l`` itself;
* ``bgan``  the log importance weight ``log D - log(1 - D)`` (boundary-seeking GAN),
  which equals the logit; computed from its definition with two ``logsigmoid``.

Everything goes through ``logsigmoid`` so a confident discriminator (``|l|`` of
hundreds) never produces ``log(0)``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

RewardFn = Callable[[Tensor], Tensor]


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
    """BGAN's log importance weight ``log D - log(1 - D)``; identical to the logit."""
    return F.logsigmoid(logits) - F.logsigmoid(-logits)


REWARD_MODES: dict[str, RewardFn] = {
    "prob": prob_reward,
    "log": log_reward,
    "logit": logit_reward,
    "bgan": bgan_reward,
}

# Closed interval of each reward, used for the env's ``reward_range``.
REWARD_RANGES: dict[str, tuple[float, float]] = {
    "prob": (0.0, 1.0),
    "log": (float("-inf"), 0.0),
    "logit": (float("-inf"), float("inf")),
    "bgan": (float("-inf"), float("inf")),
}


def get_reward_fn(mode: str) -> RewardFn:
    """The reward transform called ``mode``; a clear ``ValueError`` for unknown modes."""
    try:
        return REWARD_MODES[mode]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown reward mode {mode!r}; choose one of {sorted(REWARD_MODES)}"
        ) from None

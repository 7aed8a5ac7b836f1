"""Policy-gradient estimator pieces shared by the REINFORCE, BGAN and actor-critic agents.

Every function here is pure tensor maths (no module state, no RNG), so each is written once,
tested against hand-computed or enumerated answers, and reused by every agent. Shapes follow one
convention: ``[B, T]`` per-token quantities (batch first), optional ``mask`` of the same shape
with 1 for real tokens and 0 for padding.

References for the BGAN pieces: R. D. Hjelm, A. P. Jacob, T. Che, A. Trischler, K. Cho,
Y. Bengio, "Boundary-Seeking Generative Adversarial Networks", ICLR 2018 (arXiv:1702.08431),
Theorem 1 (``p(x) = (df*/dT)(T*(x)) q(x)``), Table 1 (importance weights per f-divergence),
Eq. 9-10 (self-normalised weights per conditioning) and Sec. 2.4 (REINFORCE variant with the
log-partition). The output activations and conjugates ``f*`` are those of f-GAN (Nowozin et
al., 2016, Table 2).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from textgan_envs.rewards import (  # noqa: F401  (BGAN's weights live with the reward modes)
    DIVERGENCES,
    Divergence,
    bgan_log_weights,
)


def _check_gamma(gamma: float) -> None:
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"discount gamma must lie in [0, 1], got {gamma}")


def discount_matrix(seq_len: int, gamma: float, device=None, dtype=torch.float32) -> Tensor:
    """``D[t, s] = gamma**(s - t)`` for ``s >= t`` else 0, so ``returns = rewards @ D.T``.

    A matrix product instead of a reverse Python loop keeps the whole computation on the
    device in one kernel; ``T`` is at most a few hundred, so the ``T x T`` matrix is tiny.
    """
    _check_gamma(gamma)
    idx = torch.arange(seq_len, device=device)
    lag = (idx[None, :] - idx[:, None]).to(dtype)  # s - t
    upper = lag >= 0
    # 0**0 = 1 in torch.pow, which is exactly the gamma = 0 convention (R_t = r_t).
    return torch.where(
        upper, torch.pow(torch.tensor(gamma, dtype=dtype, device=device), lag.clamp(min=0)), 0
    )


def discounted_returns(rewards: Tensor, gamma: float, mask: Tensor | None = None) -> Tensor:
    """``R_t = sum_{s >= t} m_s gamma**(s-t) r_s`` for rewards ``[B, T]`` (returns ``[B, T]``).

    Padding positions (``mask == 0``) contribute no reward; their own return is also zeroed so
    they add nothing to a loss that multiplies by the returns.
    """
    if rewards.dim() != 2:
        raise ValueError(f"rewards must be [B, T], got shape {tuple(rewards.shape)}")
    masked = rewards if mask is None else rewards * mask.to(rewards.dtype)
    d = discount_matrix(rewards.shape[1], gamma, device=rewards.device, dtype=rewards.dtype)
    returns = masked @ d.T
    return returns if mask is None else returns * mask.to(rewards.dtype)


def clipped_advantages(
    returns: Tensor, baseline: Tensor | float, clip: float | None = 5.0
) -> Tensor:
    """``clamp(R_t - b_t, -clip, clip)``, detached: advantages never carry critic gradients.

    ``clip=None`` disables clipping. MaskGAN clips to +-5 so one lucky sample cannot dominate.
    """
    adv = (returns - baseline).detach()
    if clip is None:
        return adv
    if clip <= 0:
        raise ValueError(f"advantage clip must be positive, got {clip}")
    return adv.clamp(-clip, clip)


def ema_update(previous: float | None, value: float, decay: float) -> float:
    """Exponential moving average ``decay * previous + (1 - decay) * value``; first call returns ``value``.

    Used as the moving-average baseline of REINFORCE: a scalar, stored in checkpoints as a float.
    """
    if not 0.0 <= decay < 1.0:
        raise ValueError(f"moving-average decay must lie in [0, 1), got {decay}")
    if previous is None:
        return float(value)
    return float(decay * previous + (1.0 - decay) * value)


def reinforce_loss(log_probs: Tensor, advantages: Tensor, mask: Tensor | None = None) -> Tensor:
    """Score-function surrogate ``-mean_b sum_t m_t log pi(y_t | y_<t) A_t`` (``A`` detached).

    Its gradient is the REINFORCE estimate of ``-grad E[sum_t A_t]``: summed over time as in
    SeqGAN's generator loss, averaged over the batch so the step size does not scale with ``B``.
    """
    if log_probs.shape != advantages.shape:
        raise ValueError(
            f"log_probs {tuple(log_probs.shape)} and advantages {tuple(advantages.shape)} differ in shape"
        )
    term = log_probs * advantages.detach()
    if mask is not None:
        term = term * mask.to(term.dtype)
    return -term.sum(dim=-1).mean()


def normalized_weights(log_w: Tensor, dim: int = -1) -> Tensor:
    """Self-normalised weights ``w_m / sum_m' w_m'`` along ``dim``, via log-sum-exp (BGAN Eq. 9).

    Computed as ``exp(log_w - logsumexp(log_w))`` so logits of +-1000 neither overflow nor
    underflow to an all-zero group.
    """
    return torch.exp(log_w - torch.logsumexp(log_w, dim=dim, keepdim=True))


def effective_sample_size(weights: Tensor, dim: int = -1) -> Tensor:
    """ESS ``1 / sum_m w~_m^2`` of normalised weights: ``M`` for uniform weights, 1 when one sample dominates."""
    return 1.0 / (weights * weights).sum(dim=dim)


def weight_variance(weights: Tensor, dim: int = -1) -> Tensor:
    """Population variance of the normalised weights within each group (0 for uniform weights)."""
    return weights.var(dim=dim, unbiased=False)


def log_partition_estimate(log_w: Tensor, dim: int = -1) -> Tensor:
    """Monte-Carlo ``log Z = log mean_m w_m`` along ``dim`` (log-sum-exp minus ``log M``)."""
    return torch.logsumexp(log_w, dim=dim) - math.log(log_w.shape[dim])


def update_running_log_partition(
    previous: float | None, log_w: Tensor, decay: float = 0.95
) -> float:
    """Running estimate of ``log Z = log E_q[w]``: an EMA of ``Z`` itself, kept in log space.

    ``log(decay * Z_prev + (1 - decay) * Z_batch)`` computed with ``logaddexp`` so it never
    overflows; the batch estimate pools every sample in ``log_w``. Used by the BGAN REINFORCE
    variant (BGAN Sec. 2.4), whose reward is ``log w(x) - log Z``.
    """
    if not 0.0 <= decay < 1.0:
        raise ValueError(f"log-partition decay must lie in [0, 1), got {decay}")
    batch = float(log_partition_estimate(log_w.detach().reshape(-1)))
    if previous is None or decay == 0.0:
        return batch
    mixed = torch.logaddexp(
        torch.tensor(math.log(decay) + previous, dtype=torch.float64),
        torch.tensor(math.log1p(-decay) + batch, dtype=torch.float64),
    )
    return float(mixed)


def bgan_loss(seq_log_probs: Tensor, log_w: Tensor) -> Tensor:
    """BGAN generator loss ``-mean_groups sum_m stopgrad(w~_m) log g(x_m)`` (BGAN Eq. 10).

    ``seq_log_probs`` and ``log_w`` are ``[G, M]``: ``G`` conditionings, ``M`` samples each.
    """
    if seq_log_probs.shape != log_w.shape or seq_log_probs.dim() != 2:
        raise ValueError(
            f"seq_log_probs {tuple(seq_log_probs.shape)} and log_w {tuple(log_w.shape)} must both be [G, M]"
        )
    w_tilde = normalized_weights(log_w.detach(), dim=-1)
    return -(w_tilde * seq_log_probs).sum(dim=-1).mean()


def sequence_entropy_estimate(log_probs: Tensor, mask: Tensor | None = None) -> Tensor:
    """Per-token entropy estimate ``-mean log pi(y_t | y_<t)`` of sampled tokens (a diagnostic)."""
    lp = log_probs.detach()
    if mask is None:
        return -lp.mean()
    m = mask.to(lp.dtype)
    return -(lp * m).sum() / m.sum().clamp(min=1)

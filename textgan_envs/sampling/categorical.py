"""Draw one class per row of a logits tensor, fast on CPU and GPU.

Why a custom categorical sampler: ``torch.multinomial`` over 5,000 classes is the
bottleneck of oracle sampling and Monte-Carlo rollouts on CPU. Inverse-CDF
sampling needs one uniform per row instead of one per class (Gumbel-max), and
doing it in two levels (pick a block of about sqrt(V) classes from the block
masses, then a class inside that block) replaces the full-width ``cumsum`` (a
slow sequential scan) by a fast reduction. On CPU the same two-level draw runs
in a C kernel (:mod:`textgan_envs.native_sampling`) that never writes a
``[rows, V]`` tensor. ``benchmarks/oracle_sampling.py`` measures the
alternatives side by side.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from textgan_envs import native_sampling

__all__ = [
    "sample_categorical",
    "sample_categorical_gumbel",
    "sample_categorical_inverse_cdf",
    "sample_categorical_multinomial",
    "sample_categorical_native",
]

# Below this many classes a single full-width cumsum is as fast as two levels.
_SINGLE_LEVEL_MAX_CLASSES = 512


def _check_temperature(temperature: float) -> float:
    temperature = float(temperature)
    if not math.isfinite(temperature) or temperature <= 0.0:
        raise ValueError(f"temperature must be a positive finite number, got {temperature!r}")
    return temperature


def _flatten_logits(logits: Tensor, temperature: float) -> tuple[Tensor, tuple[int, ...]]:
    """Logits as ``[N, V]`` float scaled by ``1/temperature``; the leading shape to restore."""
    if logits.dim() < 1 or logits.shape[-1] == 0:
        raise ValueError(
            f"logits need a non-empty last (class) dimension, got shape {tuple(logits.shape)}"
        )
    temperature = _check_temperature(temperature)
    lead = tuple(logits.shape[:-1])
    flat = logits.reshape(-1, logits.shape[-1])
    if not flat.is_floating_point():
        flat = flat.float()
    if temperature != 1.0:
        flat = flat / temperature
    return flat, lead


def _unnormalised_probs(logits: Tensor) -> Tensor:
    """Row probabilities; the samplers only need them up to a positive factor per row.

    ``torch.softmax`` is one fused pass (max, exp, sum, scale) and measured faster
    than ``exp(logits - max)`` built from separate ops.
    """
    return torch.softmax(logits, dim=-1)


def _last_positive(mass: Tensor) -> Tensor:
    """Index ``[N, 1]`` of the last entry with positive mass in each row of ``mass`` ``[N, K]``."""
    positive = (mass > 0).flip(-1).to(torch.uint8)
    return (mass.shape[-1] - 1 - positive.argmax(dim=-1, keepdim=True)).long()


def _inverse_cdf(weights: Tensor, generator: torch.Generator | None) -> Tensor:
    """Inverse-CDF draw ``[N, 1]`` from rows of non-negative ``weights`` ``[N, K]``.

    ``searchsorted(..., right=True)`` returns the first index whose cumulative mass
    exceeds the uniform, so zero-mass classes are never returned; the final clamp
    guards the case where float rounding puts the uniform at the total.
    """
    cdf = torch.cumsum(weights, dim=-1)
    u = torch.rand(
        (weights.shape[0], 1), generator=generator, device=weights.device, dtype=cdf.dtype
    )
    u = u * cdf[:, -1:]
    idx = torch.searchsorted(cdf, u, right=True)
    return torch.minimum(idx, _last_positive(weights))


def _block_size(num_classes: int) -> int:
    """A divisor of ``num_classes`` near sqrt(V) if one exists, else ceil(sqrt(V)) (then padded)."""
    root = math.sqrt(num_classes)
    divisors = [d for d in range(max(2, int(root / 3)), int(root * 3) + 1) if num_classes % d == 0]
    if divisors:
        return min(divisors, key=lambda d: abs(math.log(d / root)))
    return math.ceil(root)


def sample_categorical_inverse_cdf(
    logits: Tensor, generator: torch.Generator | None = None, temperature: float = 1.0
) -> Tensor:
    """Two-level inverse-CDF sampling (the default; see the module docstring)."""
    flat, lead = _flatten_logits(logits, temperature)
    n, num_classes = flat.shape
    probs = _unnormalised_probs(flat)  # [N, V]
    if num_classes <= _SINGLE_LEVEL_MAX_CLASSES:
        return _inverse_cdf(probs, generator).reshape(lead)
    block = _block_size(num_classes)
    n_blocks = math.ceil(num_classes / block)
    if n_blocks * block != num_classes:
        probs = torch.nn.functional.pad(probs, (0, n_blocks * block - num_classes))
    blocks = probs.view(n, n_blocks, block)  # [N, nb, blk]
    chosen_block = _inverse_cdf(blocks.sum(dim=-1), generator)  # [N, 1]
    inside = blocks.gather(1, chosen_block.unsqueeze(-1).expand(n, 1, block)).squeeze(1)  # [N, blk]
    within = _inverse_cdf(inside, generator)  # [N, 1]
    return (chosen_block * block + within).reshape(lead)


def sample_categorical_gumbel(
    logits: Tensor, generator: torch.Generator | None = None, temperature: float = 1.0
) -> Tensor:
    """Gumbel-max: ``argmax(logits + Gumbel noise)``; exact but one uniform per class."""
    flat, lead = _flatten_logits(logits, temperature)
    u = torch.rand(flat.shape, generator=generator, device=flat.device, dtype=flat.dtype)
    u = u.clamp_(min=torch.finfo(flat.dtype).tiny)
    return (flat - torch.log(-torch.log(u))).argmax(dim=-1).reshape(lead)


def sample_categorical_multinomial(
    logits: Tensor, generator: torch.Generator | None = None, temperature: float = 1.0
) -> Tensor:
    """``torch.multinomial`` on the softmax: the reference the fast samplers are checked against."""
    flat, lead = _flatten_logits(logits, temperature)
    probs = torch.softmax(flat, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).reshape(lead)


def sample_categorical_native(
    logits: Tensor, generator: torch.Generator | None = None, temperature: float = 1.0
) -> Tensor:
    """Two-level inverse-CDF sampling in the C kernel of :mod:`textgan_envs.native_sampling`.

    CPU only. A row with a NaN or without a finite entry raises ``ValueError``.
    """
    flat, lead = _flatten_logits(logits, 1.0)
    if flat.device.type != "cpu":
        raise ValueError(f"the C sampling kernel runs on CPU, got logits on {flat.device}")
    flat = flat.detach().float()
    if flat.stride(-1) != 1:
        flat = flat.contiguous()
    u = torch.rand(flat.shape[0], generator=generator)
    inv_temperature = 1.0 / _check_temperature(temperature)
    return native_sampling.sample_rows(flat, u, inv_temperature=inv_temperature).reshape(lead)


def _native_cpu(device: torch.device) -> bool:
    """Whether sampling on ``device`` goes through the C kernel."""
    return device.type == "cpu" and native_sampling.native_sampling_available()


def sample_categorical(
    logits: Tensor, generator: torch.Generator | None = None, temperature: float = 1.0
) -> Tensor:
    """Draw one class per row of ``logits`` ``[..., V]`` from ``softmax(logits / temperature)``.

    Returns a ``LongTensor[...]`` (the leading shape of ``logits``). Rows may
    contain ``-inf`` (masked classes, never drawn) but need one finite entry.
    On CPU this is :func:`sample_categorical_native` (where the kernel builds),
    elsewhere :func:`sample_categorical_inverse_cdf`: the same distribution.
    """
    if _native_cpu(logits.device):
        return sample_categorical_native(logits, generator=generator, temperature=temperature)
    return sample_categorical_inverse_cdf(logits, generator=generator, temperature=temperature)

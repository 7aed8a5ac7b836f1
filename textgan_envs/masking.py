"""MaskGAN's masks: which tokens of a real sequence stay visible and which the agent must fill.

A mask is a ``BoolTensor[B, T]`` called ``present``: ``True`` where the real token is kept,
``False`` where it is missing. Two schemes, as in MaskGAN (Fedus et al., 2018):

* ``random``: each token is kept independently with probability ``present_rate``;
* ``contiguous``: one missing span of length ``int((1 - present_rate) * L) - 1`` (at least 1),
  starting uniformly in ``[1, L - length]``, so the first token is always present.

``L`` is the row's length without padding: ``PAD`` positions are always present, so padded
corpus rows never ask for padding to be "filled" (for unpadded rows ``L = T``, the paper's
setting). Every row gets at least one missing token, so every episode has an action: a random
mask that happens to keep the whole row has one position, chosen uniformly, removed
(probability ``present_rate ** L``, negligible for real lengths).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from textgan_envs.vocab import Vocabulary

MaskKind = Literal["random", "contiguous"]
MASK_KINDS: tuple[str, ...] = ("random", "contiguous")


def check_present_rate(present_rate: float) -> float:
    """Return ``present_rate`` as a float; raise if it is not strictly inside (0, 1)."""
    rate = float(present_rate)
    if not 0.0 < rate < 1.0:
        raise ValueError(f"present_rate must be strictly between 0 and 1, got {present_rate}")
    return rate


def row_lengths(tokens: Tensor, pad_token: int | None = Vocabulary.PAD) -> Tensor:
    """Length of each row without trailing padding (``LongTensor[B]``); rows must have >= 2 tokens.

    ``pad_token=None`` means the data has no padding (e.g. oracle samples, where id 0 is a word).
    """
    if tokens.ndim != 2:
        raise ValueError(
            f"tokens must be a [batch, seq_len] tensor, got shape {tuple(tokens.shape)}"
        )
    if tokens.shape[1] < 2:
        raise ValueError(
            f"sequences must have at least 2 tokens to mask one and keep one, got seq_len={tokens.shape[1]}"
        )
    if pad_token is None:
        return torch.full(
            (tokens.shape[0],), tokens.shape[1], dtype=torch.long, device=tokens.device
        )
    lengths = (tokens != pad_token).sum(dim=1)
    short = (lengths < 2).nonzero().flatten()
    if short.numel():
        raise ValueError(
            f"{short.numel()} sequence(s) have fewer than 2 non-padding tokens "
            f"(first at row {int(short[0])}); MaskGAN needs a token to keep and one to fill"
        )
    return lengths


def random_mask(
    tokens: Tensor,
    present_rate: float = 0.5,
    generator: torch.Generator | None = None,
    pad_token: int | None = Vocabulary.PAD,
) -> Tensor:
    """Keep each non-padding token with probability ``present_rate``; at least one goes missing."""
    rate = check_present_rate(present_rate)
    lengths = row_lengths(tokens, pad_token)
    maskable = (
        torch.ones_like(tokens, dtype=torch.bool) if pad_token is None else tokens != pad_token
    )
    u = torch.rand(tokens.shape, generator=generator, device=tokens.device)
    present = (u < rate) | ~maskable
    none_missing = present.all(dim=1)
    if none_missing.any():
        rows = none_missing.nonzero().flatten()
        pick = torch.rand(rows.numel(), generator=generator, device=tokens.device)
        cols = (pick * lengths[rows]).long().clamp(max=tokens.shape[1] - 1)
        # Non-padding tokens come first in a row (padding only trails), so col < length is real.
        present[rows, cols] = False
    return present


def span_length(length: Tensor | int, present_rate: float) -> Tensor:
    """MaskGAN's contiguous span length ``int((1 - rate) * L) - 1``, clamped to ``[1, L - 1]``."""
    rate = check_present_rate(present_rate)
    length = torch.as_tensor(length)
    span = torch.floor((1.0 - rate) * length.double()).long() - 1
    return span.clamp(min=1).minimum(length - 1)


def contiguous_mask(
    tokens: Tensor,
    present_rate: float = 0.5,
    generator: torch.Generator | None = None,
    pad_token: int | None = Vocabulary.PAD,
) -> Tensor:
    """One missing span per row, starting uniformly in ``[1, L - span]`` (see module docstring)."""
    lengths = row_lengths(tokens, pad_token)
    span = span_length(lengths, present_rate).to(tokens.device)
    n_starts = lengths - span  # starts 1..L-span inclusive: L - span choices
    u = torch.rand(lengths.shape, generator=generator, device=tokens.device)
    start = 1 + torch.minimum((u * n_starts).long(), n_starts - 1)
    pos = torch.arange(tokens.shape[1], device=tokens.device).unsqueeze(0)
    missing = (pos >= start.unsqueeze(1)) & (pos < (start + span).unsqueeze(1))
    return ~missing


def make_mask(
    kind: MaskKind,
    tokens: Tensor,
    present_rate: float = 0.5,
    generator: torch.Generator | None = None,
    pad_token: int | None = Vocabulary.PAD,
) -> Tensor:
    """Dispatch on ``kind`` (``"random"`` or ``"contiguous"``)."""
    if kind == "random":
        return random_mask(tokens, present_rate, generator, pad_token)
    if kind == "contiguous":
        return contiguous_mask(tokens, present_rate, generator, pad_token)
    raise ValueError(f"mask kind must be one of {MASK_KINDS}, got {kind!r}")


def apply_mask(tokens: Tensor, present: Tensor, mask_token: int = Vocabulary.MASK) -> Tensor:
    """The masked sequence ``m(x)``: real tokens where present, ``mask_token`` where missing."""
    if tokens.shape != present.shape:
        raise ValueError(
            f"tokens {tuple(tokens.shape)} and mask {tuple(present.shape)} have different shapes"
        )
    return torch.where(present, tokens, torch.full_like(tokens, mask_token))

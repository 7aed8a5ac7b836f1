"""MaskGAN masks: rates, span lengths and start positions are statistically right; bad input fails."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import chisquare

from textgan_envs.masking import (
    apply_mask,
    contiguous_mask,
    make_mask,
    random_mask,
    span_length,
)
from textgan_envs.vocab import Vocabulary


def _tokens(batch: int, length: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(5, 100, (batch, length), generator=gen)


@pytest.mark.parametrize("rate", [0.2, 0.5, 0.8])
def test_random_mask_keeps_each_token_with_present_rate(rate: float) -> None:
    tokens = _tokens(20_000, 20)
    present = random_mask(tokens, rate, torch.Generator().manual_seed(1))
    # 400k Bernoulli draws: the std of the mean is < 0.001, a wrong rate misses by far more.
    assert abs(present.float().mean().item() - rate) < 0.005
    per_position = present.float().mean(dim=0)
    assert (per_position - rate).abs().max().item() < 0.02  # no position is favoured
    assert (~present).any(dim=1).all()  # every row has something to fill


def test_random_mask_never_masks_padding_and_forces_one_missing() -> None:
    tokens = _tokens(5000, 12)
    tokens[:, 4:] = Vocabulary.PAD  # 4 real tokens per row
    present = random_mask(tokens, 0.9, torch.Generator().manual_seed(2))
    assert present[:, 4:].all()
    assert (~present[:, :4]).any(dim=1).all()  # 0.9**4 = 66% would keep all without the rule


def test_contiguous_span_length_and_uniform_start() -> None:
    length, rate = 20, 0.5
    tokens = _tokens(30_000, length)
    present = contiguous_mask(tokens, rate, torch.Generator().manual_seed(3))
    missing = ~present
    span = int((1 - rate) * length) - 1  # 9
    assert (missing.sum(dim=1) == span).all()
    starts = missing.float().argmax(dim=1)
    # one contiguous run: the missing positions are exactly start..start+span-1
    pos = torch.arange(length).unsqueeze(0)
    expected = (pos >= starts.unsqueeze(1)) & (pos < starts.unsqueeze(1) + span)
    assert torch.equal(missing, expected)
    counts = torch.bincount(starts, minlength=length)
    assert counts[0] == 0 and counts[length - span + 1 :].sum() == 0  # start in [1, T - span]
    observed = counts[1 : length - span + 1].numpy()
    assert chisquare(observed).pvalue > 0.001  # uniform over the 11 allowed starts


def test_contiguous_mask_on_padded_rows_stays_inside_the_sentence() -> None:
    tokens = _tokens(4000, 20)
    tokens[:, 10:] = Vocabulary.PAD  # L = 10 -> span int(0.5 * 10) - 1 = 4, start in [1, 6]
    present = contiguous_mask(tokens, 0.5, torch.Generator().manual_seed(4))
    missing = ~present
    assert (missing.sum(dim=1) == 4).all()
    assert not missing[:, 10:].any() and not missing[:, 0].any()
    starts = missing.float().argmax(dim=1)
    assert set(starts.tolist()) == {1, 2, 3, 4, 5, 6}


def test_span_length_follows_the_formula_and_is_clamped() -> None:
    assert span_length(20, 0.5).item() == 9
    assert span_length(20, 0.7).item() == int((1 - 0.7) * 20) - 1
    assert span_length(2, 0.5).item() == 1  # int(1) - 1 = 0 would mask nothing
    assert span_length(10, 0.01).item() == 8  # int(9.9) - 1 = 8 <= L - 1


@pytest.mark.parametrize("rate", [0.0, 1.0, -0.1, 1.5])
def test_present_rate_outside_open_interval_is_rejected(rate: float) -> None:
    with pytest.raises(ValueError, match="present_rate"):
        random_mask(_tokens(2, 5), rate)
    with pytest.raises(ValueError, match="present_rate"):
        contiguous_mask(_tokens(2, 5), rate)


def test_short_sequences_are_rejected() -> None:
    with pytest.raises(ValueError, match="at least 2 tokens"):
        random_mask(_tokens(3, 1), 0.5)
    tokens = _tokens(3, 6)
    tokens[1, 1:] = Vocabulary.PAD
    with pytest.raises(ValueError, match="fewer than 2 non-padding tokens"):
        contiguous_mask(tokens, 0.5)
    with pytest.raises(ValueError, match="mask kind"):
        make_mask("middle", _tokens(2, 5))  # type: ignore[arg-type]


def test_apply_mask_writes_mask_token_only_where_missing() -> None:
    tokens = torch.tensor([[7, 8, 9, 2]])
    present = torch.tensor([[True, False, True, False]])
    assert apply_mask(tokens, present).tolist() == [[7, 4, 9, 4]]
    with pytest.raises(ValueError, match="different shapes"):
        apply_mask(tokens, present[:, :3])


@settings(max_examples=60, deadline=None)
@given(
    length=st.integers(2, 30),
    real=st.integers(2, 30),
    rate=st.floats(0.01, 0.99),
    kind=st.sampled_from(["random", "contiguous"]),
    seed=st.integers(0, 2**31 - 1),
)
def test_masks_only_touch_real_tokens(
    length: int, real: int, rate: float, kind: str, seed: int
) -> None:
    real = min(real, length)
    tokens = _tokens(8, length, seed % 1000)
    tokens[:, real:] = Vocabulary.PAD
    present = make_mask(kind, tokens, rate, torch.Generator().manual_seed(seed))  # type: ignore[arg-type]
    assert present.shape == tokens.shape and present.dtype == torch.bool
    assert present[:, real:].all()
    assert (~present).any(dim=1).all()
    if kind == "contiguous":
        assert present[:, 0].all()  # the span starts at 1 or later
    masked = apply_mask(tokens, present)
    assert torch.equal(masked[present], tokens[present])

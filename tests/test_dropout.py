"""The bfloat16 path's dropout: nn.Dropout's distribution from a quarter of the random draws."""

from __future__ import annotations

import warnings

import pytest
import torch

from textgan_envs.discriminators import build_discriminator
from textgan_envs.discriminators.dropout import fast_dropout, keep_mask


def test_every_uniform_of_a_draw_keeps_at_the_keep_rate() -> None:
    torch.manual_seed(0)
    mask = keep_mask((4000, 64), 0.75, torch.device("cpu"))
    kept = (mask > 0).float().view(-1, 4)  # columns: the four uniforms of one 64-bit draw
    # 64,000 Bernoulli(0.75) per column: sd 0.0017, so 0.01 is ~6 sd. The top 16 bits of a
    # draw without its sign bit (torch's random_() on int64) would keep at 0.5.
    assert torch.allclose(kept.mean(0), torch.full((4,), 0.75), atol=0.01), kept.mean(0)
    assert set(mask.unique().tolist()) == {0.0, float(torch.tensor(1.0 / 0.75))}


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9])
def test_keep_rate_follows_keep(keep: float) -> None:
    torch.manual_seed(1)
    rate = (keep_mask((100_000,), keep, torch.device("cpu")) > 0).float().mean()
    assert abs(float(rate) - keep) < 0.006, rate  # sd <= 0.0016


def test_neighbouring_elements_are_independent() -> None:
    torch.manual_seed(2)
    kept = (keep_mask((200_000,), 0.5, torch.device("cpu")) > 0).float()
    both = (kept[:-1] * kept[1:]).mean()  # 0.25 if independent; 0.5 if pairs were copied
    assert abs(float(both) - 0.25) < 0.005, both


def test_fast_dropout_scales_masks_and_passes_the_same_mask_to_the_gradient() -> None:
    torch.manual_seed(3)
    x = torch.randn(64, 33, requires_grad=True)  # 2,112 elements: not a multiple of 4 per row
    y = fast_dropout(x, 0.25, training=True)
    y.sum().backward()
    kept = y.detach() != 0
    assert torch.allclose(y.detach()[kept], x.detach()[kept] / 0.75)
    assert torch.equal(x.grad, kept.float() / 0.75)


def test_fast_dropout_is_the_identity_out_of_training_and_seeded_by_torch() -> None:
    x = torch.randn(8, 10)
    assert fast_dropout(x, 0.25, training=False) is x
    torch.manual_seed(4)
    first = fast_dropout(x, 0.25, training=True)
    torch.manual_seed(4)
    assert torch.equal(first, fast_dropout(x, 0.25, training=True))
    assert not torch.equal(first, fast_dropout(x, 0.25, training=True))


@pytest.mark.parametrize("keep", [0.0, 1.5, 1e-6])
def test_keep_outside_the_range_is_refused(keep: float) -> None:
    with pytest.raises(ValueError, match="keep"):
        keep_mask((4,), keep, torch.device("cpu"))


def test_only_the_bf16_path_uses_it() -> None:
    """float32 training keeps nn.Dropout's random stream, so recorded results reproduce."""
    spec = dict(kind="cnn", vocab_size=50, seq_len=12, seed=0)
    exact = build_discriminator(**spec).train()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        low = build_discriminator(train_precision="bfloat16", **spec).train()
    tokens = torch.randint(0, 50, (16, 12), generator=torch.Generator().manual_seed(0))
    h = exact.highway(exact.pooled_features(tokens)).detach()
    torch.manual_seed(5)
    want = exact.output(torch.nn.functional.dropout(h, 0.25, training=True)).squeeze(1)
    torch.manual_seed(5)
    assert torch.allclose(exact(tokens), want, atol=1e-5)
    torch.manual_seed(5)
    masked = fast_dropout(h, 0.25, training=True)
    torch.manual_seed(5)
    got = low(tokens)
    assert torch.allclose(got, low.output(masked).squeeze(1), atol=0.05)  # bf16 GEMMs
    assert not torch.allclose(got, want, atol=0.05)  # a different mask

"""Discriminators: shapes, SeqGAN defaults, short sequences, training that learns, clean errors."""

from __future__ import annotations

import pytest
import torch

from textgan_envs.discriminators import (
    CNNDiscriminator,
    LSTMDiscriminator,
    build_discriminator,
    discriminator_accuracy,
    eval_logits,
    make_discriminator_optimizer,
    train_discriminator,
)
from textgan_envs.discriminators.cnn import SEQGAN_FILTER_SIZES, SEQGAN_NUM_FILTERS


def test_cnn_has_seqgan_defaults() -> None:
    d = CNNDiscriminator(vocab_size=50, seq_len=20)
    assert d.embedding.embedding_dim == 64
    assert [c.kernel_size[0] for c in d.convs] == list(SEQGAN_FILTER_SIZES)
    assert [c.out_channels for c in d.convs] == list(SEQGAN_NUM_FILTERS)
    assert d.highway.transform.in_features == sum(SEQGAN_NUM_FILTERS) == 1720
    assert d.dropout.p == pytest.approx(0.25)
    assert d.l2_reg_lambda == 0.2 and d.default_lr == 1e-4
    opt = make_discriminator_optimizer(d)
    assert isinstance(opt, torch.optim.Adam) and opt.param_groups[0]["lr"] == 1e-4


@pytest.mark.parametrize("kind", ["cnn", "lstm"])
@pytest.mark.parametrize("length", [1, 3, 20, 25])
def test_logits_shape_for_any_length(kind: str, length: int) -> None:
    d = build_discriminator(kind, vocab_size=30, seq_len=length)
    out = eval_logits(d, torch.randint(0, 30, (5, length)))
    assert out.shape == (5,) and torch.isfinite(out).all()


def test_build_is_seeded_and_leaves_global_rng_alone() -> None:
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = build_discriminator("cnn", 40, 8, seed=5)
    after = torch.rand(1)
    b = build_discriminator("cnn", 40, 8, seed=5)
    c = build_discriminator("cnn", 40, 8, seed=6)
    assert torch.equal(before, after)
    assert torch.equal(a.embedding.weight, b.embedding.weight)
    assert not torch.equal(a.embedding.weight, c.embedding.weight)


def test_eval_logits_is_deterministic_and_restores_mode() -> None:
    d = build_discriminator("cnn", 40, 8)
    d.train()
    x = torch.randint(0, 40, (16, 8))
    assert torch.equal(eval_logits(d, x), eval_logits(d, x))  # no dropout noise
    assert d.training


def test_cnn_regularization_is_half_l2_of_output_layer() -> None:
    d = CNNDiscriminator(vocab_size=10, seq_len=5)
    expected = 0.2 * 0.5 * (d.output.weight.pow(2).sum() + d.output.bias.pow(2).sum())
    torch.testing.assert_close(d.regularization(), expected)


def _pattern_data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Real sequences use tokens 0..4 only, fakes use 5..9: separable, not trivially by position."""
    g = torch.Generator().manual_seed(seed)
    real = torch.randint(0, 5, (n, 8), generator=g)
    fake = torch.randint(5, 10, (n, 8), generator=g)
    return real, fake


# The CNN is trained with SeqGAN's structure but fewer maps, to keep the test fast on CPU.
SMALL = {"cnn": {"filter_sizes": (1, 2, 3, 5), "num_filters": (16, 16, 16, 16)}, "lstm": {}}


@pytest.mark.parametrize("kind", ["cnn", "lstm"])
def test_training_learns_to_separate(kind: str) -> None:
    d = build_discriminator(kind, vocab_size=10, seq_len=8, seed=0, **SMALL[kind])
    opt = make_discriminator_optimizer(d, lr=3e-3)
    real, fake = _pattern_data(256, seed=1)
    test_real, test_fake = _pattern_data(128, seed=2)
    before = discriminator_accuracy(d, test_real, test_fake)
    g = torch.Generator().manual_seed(0)
    stats = train_discriminator(d, opt, real, fake, epochs=3, batch_size=64, generator=g)
    after = discriminator_accuracy(d, test_real, test_fake)
    assert set(stats) == {"loss", "accuracy"}
    assert after >= 0.97 and after >= before + 0.15, (before, after)
    assert not d.training


def test_training_balances_classes() -> None:
    """With 10x more fakes, an unbalanced loop would learn 'always fake'."""
    calls: list[torch.Tensor] = []

    class Spy(LSTMDiscriminator):
        def forward(self, tokens):  # type: ignore[override]
            calls.append(tokens)
            return super().forward(tokens)

    d = Spy(10, 8)
    real, fake = _pattern_data(300, seed=3)
    train_discriminator(
        d,
        make_discriminator_optimizer(d),
        real[:30],
        fake,
        generator=torch.Generator().manual_seed(0),
    )
    seen = torch.cat(calls)
    assert len(seen) == 60
    assert int((seen < 5).all(dim=1).sum()) == 30


def test_training_is_reproducible_with_generator() -> None:
    real, fake = _pattern_data(64, seed=4)
    results = []
    for _ in range(2):
        d = build_discriminator("lstm", 10, 8, seed=1)
        torch.manual_seed(0)  # dropout masks
        results.append(
            train_discriminator(
                d,
                make_discriminator_optimizer(d),
                real,
                fake,
                generator=torch.Generator().manual_seed(9),
            )
        )
    assert results[0] == results[1]


def test_bad_batches_raise_clear_errors() -> None:
    d = build_discriminator("lstm", 10, 8)
    opt = make_discriminator_optimizer(d)
    real, fake = _pattern_data(8, seed=0)
    with pytest.raises(ValueError, match="outside the discriminator's vocabulary"):
        train_discriminator(d, opt, real + 10, fake)
    with pytest.raises(ValueError, match="lengths differ"):
        train_discriminator(d, opt, real, fake[:, :4])
    with pytest.raises(ValueError, match="LongTensor"):
        train_discriminator(d, opt, real.float(), fake)
    with pytest.raises(ValueError, match="unknown discriminator kind"):
        build_discriminator("transformer", 10, 8)
    with pytest.raises(ValueError, match="must return logits of shape"):
        eval_logits(lambda y: torch.zeros(len(y), 2), real)


def test_cnn_chunked_forward_equals_one_pass_with_gradients() -> None:
    """Large batches are scored in chunks; values and gradients must not depend on the split."""
    disc = build_discriminator("cnn", 50, 12, seed=0)
    tokens = torch.randint(0, 50, (37, 12), generator=torch.Generator().manual_seed(1))
    disc.eval()
    whole = disc(tokens)
    whole.sum().backward()
    grad_whole = disc.embedding.weight.grad.clone()
    disc.zero_grad()
    disc.rows_per_chunk = 5  # 8 chunks, the last one short
    chunked = disc(tokens)
    chunked.sum().backward()
    assert torch.allclose(chunked, whole, atol=1e-6)
    assert torch.allclose(disc.embedding.weight.grad, grad_whole, atol=1e-6)

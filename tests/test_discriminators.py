"""Discriminators: shapes, SeqGAN defaults, short sequences, training that learns, clean errors."""

from __future__ import annotations

import copy

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


def test_cnn_chunked_forward_equals_one_pass_with_gradients(gemm_library: str) -> None:
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


def _plain_adam_steps(disc, x: torch.Tensor, y: torch.Tensor, order: torch.Tensor, batch: int):
    """The plain loop: torch.optim.Adam's defaults at lr 1e-4, BCE + SeqGAN's output-layer L2."""
    opt = torch.optim.Adam(disc.parameters(), lr=1e-4)
    disc.train()
    for start in range(0, len(x), batch):
        idx = order[start : start + batch]
        w, b = disc.output.weight, disc.output.bias
        l2 = 0.2 * 0.5 * (w.pow(2).sum() + b.pow(2).sum())
        loss = torch.nn.functional.binary_cross_entropy_with_logits(disc(x[idx]), y[idx]) + l2
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def test_a_training_step_equals_plain_adam_with_output_l2(gemm_library: str) -> None:
    """One step of train_discriminator (fused convs, fused Adam) lands on the plain loop's weights."""
    ours = build_discriminator("cnn", vocab_size=50, seq_len=20, seed=0)  # SeqGAN's sizes
    plain = build_discriminator("cnn", vocab_size=50, seq_len=20, seed=0)
    plain.fused_convs = False
    gen = torch.Generator().manual_seed(5)
    real, fake = (
        torch.randint(0, 25, (32, 20), generator=gen),
        torch.randint(25, 50, (32, 20), generator=gen),
    )
    torch.manual_seed(7)  # dropout masks: the same draws in both runs
    train_discriminator(
        ours,
        make_discriminator_optimizer(ours),
        real,
        fake,
        batch_size=64,
        generator=torch.Generator().manual_seed(3),
    )
    order = torch.randperm(64, generator=torch.Generator().manual_seed(3))
    torch.manual_seed(7)
    _plain_adam_steps(
        plain, torch.cat([real, fake]), torch.cat([torch.ones(32), torch.zeros(32)]), order, 64
    )
    start = build_discriminator("cnn", vocab_size=50, seq_len=20, seed=0).state_dict()
    compared = total = 0
    for name, param in plain.named_parameters():
        mine, step = ours.state_dict()[name], param.detach() - start[name]
        assert step.abs().max() > 0, name
        # Adam's first step is lr * g / (|g| + eps): where |g| is within ~100 eps of 0 (sums that
        # cancel), float32 rounding in either formulation moves it visibly. Elsewhere it is exact.
        clear = param.grad.abs() > 1e-6
        torch.testing.assert_close(mine[clear], param.detach()[clear], rtol=0, atol=1e-7, msg=name)
        assert (mine - param.detach()).abs().max() <= 2e-4, name  # never more than lr apart
        compared, total = compared + int(clear.sum()), total + param.numel()
    assert compared > 0.85 * total


def test_fused_adam_survives_loading_a_plain_adam_state() -> None:
    """A checkpoint written by a non-fused Adam resumes on the fused kernel, with the same result."""
    d = build_discriminator("cnn", vocab_size=30, seq_len=6, seed=0, **SMALL["cnn"]).eval()
    x = torch.randint(0, 30, (8, 6))
    plain_opt = torch.optim.Adam(d.parameters(), lr=1e-3)
    d(x).sum().backward()
    plain_opt.step()
    fused = make_discriminator_optimizer(d, lr=1e-3)
    fused.load_state_dict(copy.deepcopy(plain_opt.state_dict()))
    assert fused.param_groups[0]["fused"] is True
    twin = build_discriminator("cnn", vocab_size=30, seq_len=6, seed=0, **SMALL["cnn"])
    twin.load_state_dict(d.state_dict())
    twin.eval()  # no dropout: both see the same function
    twin_opt = torch.optim.Adam(twin.parameters(), lr=1e-3)
    twin_opt.load_state_dict(copy.deepcopy(plain_opt.state_dict()))
    for model, opt in ((d, fused), (twin, twin_opt)):
        opt.zero_grad()
        model(x).pow(2).sum().backward()
        opt.step()
    for a, b in zip(d.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def _accuracy_training_only_the_conv_bank(seed: int = 0) -> tuple[float, float]:
    """Accuracy before/after training with the highway and output frozen at their random init.

    Only the embedding and the filters learn, so the result depends on the conv bank's backward.
    """
    d = build_discriminator("cnn", vocab_size=10, seq_len=8, seed=seed, **SMALL["cnn"])
    for p in [*d.highway.parameters(), *d.output.parameters()]:
        p.requires_grad_(False)
    real, fake = _pattern_data(256, seed=1)
    test_real, test_fake = _pattern_data(128, seed=2)
    before = discriminator_accuracy(d, test_real, test_fake)
    opt = make_discriminator_optimizer(d, lr=3e-3)
    train_discriminator(d, opt, real, fake, epochs=3, generator=torch.Generator().manual_seed(0))
    return before, discriminator_accuracy(d, test_real, test_fake)


def test_conv_bank_backward_alone_learns_to_separate() -> None:
    before, after = _accuracy_training_only_the_conv_bank()
    assert after >= 0.95 and after >= before + 0.2, (before, after)


def test_a_broken_conv_bank_backward_misses_the_learning_margin(monkeypatch) -> None:
    """The margin above is one a backward that passes no gradient does not reach."""
    from textgan_envs.discriminators.conv_bank import ConvBankMaxPool

    def no_gradient(ctx, grad):
        x = ctx.saved_tensors[0]
        weights = [grad.new_zeros(shape) for shape in ctx.shapes]
        biases = [grad.new_zeros(shape[0]) for shape in ctx.shapes]
        return (torch.zeros_like(x), None, None, *weights, *biases)

    monkeypatch.setattr(ConvBankMaxPool, "backward", staticmethod(no_gradient))
    before, after = _accuracy_training_only_the_conv_bank()
    assert not (after >= 0.95 and after >= before + 0.2), (before, after)

"""The opt-in ``train_precision="bfloat16"`` of SeqGAN's CNN: bfloat16 GEMMs in training steps.

It must run on any CPU (emulated where there are no bfloat16 dot products, with a warning),
stay within bfloat16 rounding of the float32 function, really round (a silent float32 path
would pass a closeness test alone), learn, keep float32 weights, and leave scoring float32.
"""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F

from textgan_envs.discriminators import (
    build_discriminator,
    discriminator_accuracy,
    eval_logits,
    make_discriminator_optimizer,
    train_discriminator,
)
from textgan_envs.discriminators.native import native_conv_bank_available, pool_scores


@pytest.fixture(params=["kernel", "pytorch"])
def backward(request, monkeypatch) -> str:
    """Run a test with the C kernels (bf16 pooling, sparse backward) and with PyTorch's."""
    monkeypatch.setenv("TEXTGAN_NATIVE_CONV_BANK", "1" if request.param == "kernel" else "0")
    if request.param == "kernel" and not native_conv_bank_available():
        pytest.skip("the conv-bank kernel did not build here")
    return request.param


def _bf16_model(**kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # emulated on CPUs without bf16 dots
        return build_discriminator(train_precision="bfloat16", **kwargs)


def _logits_and_grads(disc, tokens, labels):
    disc.zero_grad(set_to_none=True)
    logits = disc(tokens)
    loss = F.binary_cross_entropy_with_logits(logits, labels) + disc.regularization()
    loss.backward()
    return logits.detach(), torch.cat([p.grad.flatten() for p in disc.parameters()])


@pytest.mark.parametrize("fused", [True, False])
def test_bf16_training_step_is_float32_to_bf16_rounding_but_not_float32(
    fused: bool, backward: str
) -> None:
    spec = dict(kind="cnn", vocab_size=60, seq_len=20, seed=3)
    exact, low = build_discriminator(**spec).eval(), _bf16_model(**spec).eval()
    low.fused_convs = fused  # False: the plain formulation under autocast
    gen = torch.Generator().manual_seed(4)
    tokens = torch.randint(0, 60, (32, 20), generator=gen)
    labels = torch.randint(0, 2, (32,), generator=gen).float()
    exact_logits, exact_grad = _logits_and_grads(exact, tokens, labels)
    low_logits, low_grad = _logits_and_grads(low, tokens, labels)
    gap = (low_logits - exact_logits).abs().max() / exact_logits.abs().max()
    assert 1e-5 < gap < 2e-2, gap  # rounded to bfloat16 (2^-8), not computed in float32
    assert low_logits.dtype == torch.float32 and low_grad.dtype == torch.float32
    cosine = F.cosine_similarity(low_grad, exact_grad, dim=0)
    assert cosine > 0.995, cosine
    output_grads = [p.grad for p in (low.output.weight, low.highway.gate.weight)]
    for got, name in zip(output_grads, ("output", "gate"), strict=True):
        want = dict(exact.named_parameters())[
            "output.weight" if name == "output" else "highway.gate.weight"
        ].grad
        assert (got - want).norm() / want.norm() < 3e-2, name


def test_bf16_pooling_kernel_widens_exactly() -> None:
    if not native_conv_bank_available():
        pytest.skip("the conv-bank kernel did not build here")
    gen = torch.Generator().manual_seed(0)
    scores = torch.randn(5, 7, 9, generator=gen).bfloat16()
    scores[1, 3] = scores[1, 2]  # exact ties: the first position wins
    got, got_at = torch.empty(5, 12), torch.empty(5, 12, dtype=torch.int64)
    want, want_at = got.clone(), got_at.clone()
    pool_scores(scores, got, got_at, 2)
    pool_scores(scores.float(), want, want_at, 2)
    assert torch.equal(got[:, 2:11], want[:, 2:11]) and torch.equal(
        got_at[:, 2:11], want_at[:, 2:11]
    )
    value, index = scores.float().max(dim=1)
    assert torch.equal(got[:, 2:11], value.clamp_min(0)) and torch.equal(got_at[:, 2:11], index)
    with pytest.raises(ValueError, match="float32 or bfloat16"):
        pool_scores(scores.half(), got, got_at, 2)


def test_bf16_training_learns_and_keeps_float32_weights_and_scoring(backward: str) -> None:
    small = dict(kind="cnn", vocab_size=10, seq_len=8, seed=0)
    small.update(filter_sizes=(1, 2, 3, 5), num_filters=(16, 16, 16, 16))
    d = _bf16_model(**small)
    opt = make_discriminator_optimizer(d, lr=3e-3)
    gen = torch.Generator().manual_seed(1)
    real = torch.randint(0, 5, (256, 8), generator=gen)  # low ids real, high ids fake
    fake = torch.randint(5, 10, (256, 8), generator=gen)
    before = discriminator_accuracy(d, real[:128], fake[:128])
    train_discriminator(d, opt, real, fake, epochs=3, generator=torch.Generator().manual_seed(0))
    after = discriminator_accuracy(d, real[128:], fake[128:])
    assert after >= 0.97 and after >= before + 0.15, (before, after)
    assert all(p.dtype == torch.float32 for p in d.parameters())
    twin = build_discriminator(**small)
    twin.load_state_dict(d.state_dict())  # same keys and dtypes as a float32 model
    tokens = torch.randint(0, 10, (16, 8), generator=gen)
    assert torch.equal(eval_logits(d, tokens), eval_logits(twin, tokens))  # scoring: float32


def test_unknown_precision_is_refused() -> None:
    with pytest.raises(ValueError, match="train_precision 'float16'"):
        build_discriminator("cnn", vocab_size=10, seq_len=8, train_precision="float16")


@pytest.mark.parametrize("has_dots", [True, False])
def test_bf16_warns_only_where_the_cpu_would_emulate_it(monkeypatch, has_dots: bool) -> None:
    import textgan_envs.native_sampling as features

    monkeypatch.setattr(features, "cpu_has_bf16_dot_products", lambda: has_dots)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        build_discriminator("cnn", vocab_size=10, seq_len=8, train_precision="bfloat16")
    emulated = [w for w in caught if "emulated" in str(w.message)]
    assert len(emulated) == (0 if has_dots else 1)

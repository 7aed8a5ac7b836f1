"""The fused convolution bank computes the plain Conv1d + ReLU + amax formulation's function.

Same weights, same tokens: logits and every parameter's gradient must agree with the plain
formulation to float32 tolerance, at SeqGAN's published sizes, for sequences shorter than,
equal to and longer than the widest filter.
"""

from __future__ import annotations

import shutil

import pytest
import torch
import torch.nn.functional as F

from textgan_envs.discriminators import build_discriminator, eval_logits
from textgan_envs.discriminators.conv_bank import (
    ConvBankMaxPool,
    conv_bank_max_pool,
    plain_conv_bank_max_pool,
)
from textgan_envs.discriminators.native import native_conv_bank_available
from textgan_envs.native_sampling import set_native_arch

BACKWARDS = ["kernel", "portable kernel", "pytorch"]


@pytest.fixture(params=BACKWARDS)
def backward(request, monkeypatch) -> str:
    """Run a test with the C kernel's backward (built for this CPU and for the compiler's
    baseline target) and with the PyTorch fallback."""
    monkeypatch.setenv("TEXTGAN_NATIVE_CONV_BANK", "0" if request.param == "pytorch" else "1")
    old_arch = set_native_arch("portable" if request.param == "portable kernel" else "native")
    request.addfinalizer(lambda: set_native_arch(old_arch))
    if request.param != "pytorch" and not native_conv_bank_available():
        pytest.skip("the conv-bank kernel did not build here")
    return request.param


def _logits_and_grads(disc, tokens, labels, fused: bool):
    disc.fused_convs = fused
    disc.zero_grad(set_to_none=True)
    logits = disc(tokens)
    loss = F.binary_cross_entropy_with_logits(logits, labels) + disc.regularization()
    loss.backward()
    return logits.detach(), {n: p.grad.clone() for n, p in disc.named_parameters()}


@pytest.mark.parametrize("seq_len", [7, 20, 26])
def test_fused_logits_and_gradients_equal_plain_at_seqgan_sizes(
    seq_len: int, backward: str, gemm_library: str
) -> None:
    disc = build_discriminator("cnn", vocab_size=60, seq_len=seq_len, seed=3).eval()
    gen = torch.Generator().manual_seed(4)
    tokens = torch.randint(0, 60, (24, seq_len), generator=gen)
    labels = torch.randint(0, 2, (24,), generator=gen).float()
    plain_logits, plain_grads = _logits_and_grads(disc, tokens, labels, fused=False)
    fused_logits, fused_grads = _logits_and_grads(disc, tokens, labels, fused=True)
    torch.testing.assert_close(fused_logits, plain_logits, rtol=1e-5, atol=1e-5)
    assert plain_grads.keys() == fused_grads.keys()
    for name, grad in plain_grads.items():
        scale = grad.abs().max().clamp(min=1e-12)
        torch.testing.assert_close(
            fused_grads[name] / scale, grad / scale, rtol=0, atol=1e-5, msg=name
        )
        assert grad.abs().sum() > 0, name  # every parameter takes part


@pytest.mark.parametrize("emb", [8, 37])  # 37: no multiple of any vector width
def test_bank_gradient_matches_plain_for_random_output_gradients(
    emb: int, backward: str, gemm_library: str
) -> None:
    """The op alone: pooled features and input/weight/bias gradients for an arbitrary upstream."""
    torch.manual_seed(0)
    convs = torch.nn.ModuleList(torch.nn.Conv1d(emb, n, w) for w, n in ((1, 5), (3, 7), (6, 4)))
    x = torch.randn(5, 9, emb, requires_grad=True)
    upstream = torch.randn(5, 16)
    results = []
    for bank in (plain_conv_bank_max_pool, conv_bank_max_pool):
        convs.zero_grad(set_to_none=True)
        x.grad = None
        out = bank(x, convs)
        (out * upstream).sum().backward()
        results.append((out.detach(), x.grad.clone(), [p.grad.clone() for p in convs.parameters()]))
    (plain_out, plain_gx, plain_gp), (out, gx, gp) = results
    torch.testing.assert_close(out, plain_out)
    torch.testing.assert_close(gx, plain_gx)
    for a, b in zip(gp, plain_gp, strict=True):
        torch.testing.assert_close(a, b)


def test_maps_that_never_fire_pass_no_gradient(backward: str) -> None:
    """A map whose every position is <= 0 outputs 0 and gets no gradient, as with ReLU + amax."""
    conv = torch.nn.Conv1d(4, 3, 2)
    with torch.no_grad():
        conv.bias.fill_(-100.0)
    x = torch.randn(2, 5, 4, requires_grad=True)
    out = conv_bank_max_pool(x, [conv])
    out.sum().backward()
    assert torch.equal(out, torch.zeros_like(out))
    assert torch.equal(conv.weight.grad, torch.zeros_like(conv.weight))
    assert torch.equal(x.grad, torch.zeros_like(x))


def test_forward_only_path_equals_autograd_path_and_plain(gemm_library: str) -> None:
    disc = build_discriminator("cnn", vocab_size=40, seq_len=12, seed=1).eval()
    tokens = torch.randint(0, 40, (9, 12), generator=torch.Generator().manual_seed(2))
    with torch.enable_grad():
        grad_path = disc(tokens).detach()
    no_grad_path = eval_logits(disc, tokens)
    disc.fused_convs = False
    plain = eval_logits(disc, tokens)
    torch.testing.assert_close(no_grad_path, grad_path)
    torch.testing.assert_close(no_grad_path, plain, rtol=1e-5, atol=1e-5)


def test_autocast_bfloat16_scoring_stays_close(gemm_library: str) -> None:
    disc = build_discriminator("cnn", vocab_size=40, seq_len=10, seed=1).eval()
    tokens = torch.randint(0, 40, (6, 10), generator=torch.Generator().manual_seed(3))
    exact = eval_logits(disc, tokens)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        approx = eval_logits(disc, tokens)
        with torch.enable_grad():
            trained = disc(tokens)  # autocast with gradients: the plain formulation
    assert (approx - exact).abs().max() < 0.2
    assert trained.requires_grad and (trained.float() - exact).abs().max() < 0.2


def test_the_op_is_used_for_training() -> None:
    disc = build_discriminator("cnn", vocab_size=20, seq_len=6, seed=0)
    out = disc(torch.randint(0, 20, (3, 6)))
    names, seen, stack = set(), set(), [out.grad_fn]
    while stack:
        node = stack.pop()
        if node is not None and id(node) not in seen:
            seen.add(id(node))
            names.add(type(node).__name__)
            stack.extend(fn for fn, _ in node.next_functions)
    assert f"{ConvBankMaxPool.__name__}Backward" in names


def test_filters_alone_get_gradients_when_the_input_needs_none(backward: str) -> None:
    """Frozen embeddings: the filters still learn, and no input gradient is computed."""
    disc = build_discriminator("cnn", vocab_size=30, seq_len=9, seed=0)
    disc.embedding.weight.requires_grad_(False)
    disc(torch.randint(0, 30, (4, 9))).sum().backward()
    assert disc.embedding.weight.grad is None
    assert all(c.weight.grad is not None and c.weight.grad.abs().sum() > 0 for c in disc.convs)


def test_the_kernel_builds_where_a_compiler_exists(monkeypatch) -> None:
    """A machine with a C compiler trains on the kernel (a silent fallback would be slower)."""
    monkeypatch.setenv("TEXTGAN_NATIVE_CONV_BANK", "1")
    if shutil.which("cc") is None:
        pytest.skip("no C compiler")
    assert native_conv_bank_available()


def test_bad_setting_is_refused(monkeypatch) -> None:
    monkeypatch.setenv("TEXTGAN_NATIVE_CONV_BANK", "yes")
    with pytest.raises(ValueError, match="TEXTGAN_NATIVE_CONV_BANK"):
        native_conv_bank_available()


@pytest.mark.parametrize("machine, wide", [("x86_64", True), ("aarch64", False)])
def test_wide_vectors_are_tried_first_on_x86_only(monkeypatch, machine: str, wide: bool) -> None:
    """x86-64 builds try 512-bit vectors first, with the plain flag sets kept as fallbacks;
    other architectures (whose compilers reject the flag) get the plain sets alone."""
    from textgan_envs.discriminators import native

    monkeypatch.setattr(native.platform, "machine", lambda: machine)
    sets = native._kernel_flag_sets()
    assert (native._WIDE_VECTORS[0] in sets[0]) is wide
    assert [s for s in sets if native._WIDE_VECTORS[0] not in s] == native._flag_sets("native")

"""bfloat16 shadows of the highway weights in bfloat16 training (``bf16_weights.py``).

The shadow path must be the cast path's training step (same weights after several Adam
steps), keep PyTorch's semantics for any other optimiser (float32 ``weight.grad``), notice
weights changed behind its back (``load_state_dict``, another optimiser's step), sum
accumulated gradients in float32, resume from Adam's own ``state_dict``, and refuse Adam
settings its update does not implement.
"""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
import torch.nn.functional as F

from textgan_envs.discriminators import build_discriminator, make_discriminator_optimizer
from textgan_envs.discriminators.bf16_weights import ShadowedAdam, shadow_gradient, shadow_of
from textgan_envs.discriminators.native import (
    adam_step_bf16_grad,
    build_flags,
    native_conv_bank_available,
)
from textgan_envs.native_sampling import set_native_arch

pytestmark = pytest.mark.skipif(
    not native_conv_bank_available(), reason="the native discriminator kernels did not build here"
)
SPEC = dict(kind="cnn", vocab_size=60, seq_len=20, seed=3)


@pytest.fixture(params=["native", "portable"])
def arch(request) -> str:
    """The kernels built for this CPU, and for the compiler's baseline target."""
    old = set_native_arch(request.param)
    request.addfinalizer(lambda: set_native_arch(old))
    if not native_conv_bank_available():
        pytest.skip(f"the {request.param} build of the kernels failed here")
    if request.param == "portable":
        assert "-march=native" not in build_flags()
    return request.param


def _model(shadows: bool = True):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # emulated on CPUs without bf16 dots
        disc = build_discriminator(train_precision="bfloat16", **SPEC)
    disc.bf16_shadows = shadows
    return disc.train()


def _batches(n: int):
    gen = torch.Generator().manual_seed(11)
    return [
        (
            torch.randint(0, 60, (32, 20), generator=gen),
            torch.randint(0, 2, (32,), generator=gen).float(),
        )
        for _ in range(n)
    ]


def _backward(disc, tokens, labels, seed: int) -> torch.Tensor:
    torch.manual_seed(seed)  # the same dropout masks for every model
    logits = disc(tokens)
    (F.binary_cross_entropy_with_logits(logits, labels) + disc.regularization()).backward()
    return logits.detach()


def _train(disc, optimizer, batches, first_seed: int = 0) -> list[torch.Tensor]:
    logits = []
    for i, (tokens, labels) in enumerate(batches):
        optimizer.zero_grad(set_to_none=True)
        logits.append(_backward(disc, tokens, labels, first_seed + i))
        optimizer.step()
    return logits


def _highway_weights(disc):
    return [disc.highway.transform.weight, disc.highway.gate.weight]


def _assert_same_parameters(a, b, rtol: float = 1e-5, atol: float = 1e-7) -> None:
    for (name, p), q in zip(a.named_parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=rtol, atol=atol, msg=lambda m, n=name: f"{n}: {m}")


@pytest.mark.parametrize("numel", [4096, 4096 + 13])
def test_adam_kernel_is_fused_adams_arithmetic(numel: int, arch: str) -> None:
    gen = torch.Generator().manual_seed(0)
    start = torch.randn(numel, generator=gen)
    reference = start.clone().requires_grad_()
    adam = torch.optim.Adam([reference], lr=1e-3, betas=(0.8, 0.99), eps=1e-6, fused=True)
    param, m, v = start.clone(), torch.zeros(numel), torch.zeros(numel)
    low = torch.empty(numel, dtype=torch.bfloat16)
    for step in range(1, 6):
        grad = (torch.randn(numel, generator=gen) * 10.0 ** (step - 3)).bfloat16()
        reference.grad = grad.float()
        adam.step()
        adam_step_bf16_grad(param, m, v, grad, low, float(step), 1e-3, 0.8, 0.99, 1e-6)
        state = adam.state[reference]
        # Within a few float32 ulps (PyTorch's scalar tail and its compiler's contractions
        # round differently here and there); a wrong formula misses by far more: each step
        # moves the weights by ~1e-3, a thousand ulps.
        torch.testing.assert_close(m, state["exp_avg"], rtol=1e-6, atol=1e-30)
        torch.testing.assert_close(v, state["exp_avg_sq"], rtol=1e-6, atol=1e-30)
        torch.testing.assert_close(param, reference.detach(), rtol=1e-6, atol=1e-30)
        assert torch.equal(
            low, param.bfloat16()
        )  # the shadow is the weight, rounded as torch rounds
    assert not torch.equal(param, start)


def test_adam_kernel_refuses_wrong_dtypes_and_sizes() -> None:
    p, m, v = torch.zeros(8), torch.zeros(8), torch.zeros(8)
    low = torch.zeros(8, dtype=torch.bfloat16)
    with pytest.raises(ValueError, match="grad must be a contiguous torch.bfloat16"):
        adam_step_bf16_grad(p, m, v, torch.zeros(8), low, 1.0, 1e-3, 0.9, 0.999, 1e-8)
    with pytest.raises(ValueError, match="exp_avg_sq must be"):
        adam_step_bf16_grad(p, m, torch.zeros(4), low, low, 1.0, 1e-3, 0.9, 0.999, 1e-8)


def test_shadowed_training_is_the_cast_paths_training(arch: str) -> None:
    shadowed, cast = _model(shadows=True), _model(shadows=False)
    opt_shadowed, opt_cast = (
        make_discriminator_optimizer(shadowed),
        make_discriminator_optimizer(cast),
    )
    assert isinstance(opt_shadowed, ShadowedAdam) and not isinstance(opt_cast, ShadowedAdam)
    for group in (opt_shadowed.param_groups, opt_cast.param_groups):
        group[0]["lr"] = 1e-3  # steps large enough that a wrong update would show
    batches = _batches(5)
    logits_shadowed = _train(shadowed, opt_shadowed, batches)
    logits_cast = _train(cast, opt_cast, batches)
    for a, b in zip(logits_shadowed, logits_cast, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    # Adam divides by sqrt(v): where a gradient is near zero, the last bits in which the two
    # paths' bfloat16 GEMMs accumulate differently move a weight by up to ~1e-4 of a step on
    # some CPUs. A wrong update misses by a whole step (lr = 1e-3); allow 1/100 of one.
    _assert_same_parameters(shadowed, cast, rtol=0.0, atol=1e-5)
    start = _model()
    assert not torch.allclose(shadowed.highway.gate.weight, start.highway.gate.weight, atol=1e-4)
    for weight in _highway_weights(shadowed):  # the path was taken, and left the shadow current
        assert weight.grad is None and shadow_gradient(weight) is None
        assert torch.equal(shadow_of(weight).low, weight.detach().bfloat16())
    state = opt_shadowed.state_dict()["state"]
    assert all(float(s["step"]) == 5.0 for s in state.values())


def test_any_other_optimiser_gets_float32_gradients_and_fresh_shadows() -> None:
    shadowed, cast = _model(shadows=True), _model(shadows=False)
    batches = _batches(3)
    for disc in (shadowed, cast):
        sgd = torch.optim.SGD(disc.parameters(), lr=0.5)
        for i, (tokens, labels) in enumerate(batches):
            sgd.zero_grad()
            _backward(disc, tokens, labels, i)
            weight = disc.highway.transform.weight
            assert weight.grad is not None and weight.grad.dtype == torch.float32
            sgd.step()
    _assert_same_parameters(shadowed, cast, rtol=1e-6, atol=1e-7)  # SGD moved the weights


def test_load_state_dict_and_deepcopy_see_the_new_weights() -> None:
    trained, fresh = _model(), _model()
    optimizer = make_discriminator_optimizer(trained)
    _train(trained, optimizer, _batches(2))
    tokens, labels = _batches(1)[0]
    trained.load_state_dict(fresh.state_dict())  # the shadows must follow
    torch.testing.assert_close(
        _backward(trained, tokens, labels, 7), _backward(_model(), tokens, labels, 7)
    )
    twin = copy.deepcopy(trained)  # its own weights: no reader, so float32 gradients
    _backward(twin, tokens, labels, 7)
    assert twin.highway.gate.weight.grad is not None


def test_accumulated_gradients_are_summed_in_float32() -> None:
    shadowed, cast = _model(shadows=True), _model(shadows=False)
    batches = _batches(2)
    for disc in (shadowed, cast):
        optimizer = make_discriminator_optimizer(disc)
        optimizer.param_groups[0]["lr"] = 1e-3
        optimizer.zero_grad()
        for i, (tokens, labels) in enumerate(batches):
            _backward(disc, tokens, labels, i)
        if disc is shadowed:  # both gradients moved to weight.grad, none left waiting
            assert all(shadow_gradient(w) is None for w in _highway_weights(disc))
        reference = disc.highway.gate.weight.grad.clone()
        optimizer.step()
    torch.testing.assert_close(shadowed.highway.gate.weight.grad, reference)
    _assert_same_parameters(shadowed, cast)


def test_zero_grad_drops_a_waiting_gradient() -> None:
    disc = _model()
    optimizer = make_discriminator_optimizer(disc)
    tokens, labels = _batches(1)[0]
    _backward(disc, tokens, labels, 0)
    weight = disc.highway.gate.weight
    assert shadow_gradient(weight) is not None and weight.grad is None
    optimizer.zero_grad()
    before = weight.detach().clone()
    optimizer.step()
    assert torch.equal(weight, before)  # no gradient: no update, as in Adam


def test_resuming_from_a_saved_state_is_uninterrupted_training() -> None:
    batches = _batches(4)
    straight = _model()
    _train(straight, make_discriminator_optimizer(straight), batches)
    first = _model()
    optimizer = make_discriminator_optimizer(first)
    _train(first, optimizer, batches[:2])
    saved = copy.deepcopy((first.state_dict(), optimizer.state_dict()))
    resumed = _model()
    resumed.load_state_dict(saved[0])
    plain_adam = torch.optim.Adam(resumed.parameters(), lr=1e-4)
    plain_adam.load_state_dict(saved[1])  # the same state layout as Adam's
    optimizer = make_discriminator_optimizer(resumed)
    optimizer.load_state_dict(plain_adam.state_dict())
    _train(resumed, optimizer, batches[2:], first_seed=2)
    _assert_same_parameters(resumed, straight, rtol=0, atol=0)


def test_unimplemented_adam_settings_are_refused() -> None:
    disc = _model()
    optimizer = make_discriminator_optimizer(disc)
    optimizer.param_groups[0]["amsgrad"] = True
    tokens, labels = _batches(1)[0]
    _backward(disc, tokens, labels, 0)
    with pytest.raises(ValueError, match="amsgrad"):
        optimizer.step()


def test_distributed_training_keeps_float32_gradients(monkeypatch) -> None:
    """DDP all-reduces ``weight.grad`` as autograd fills it: no shadows under torch.distributed."""
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    disc = _model()
    assert disc.shadowed_weights() == []
    assert not isinstance(make_discriminator_optimizer(disc), ShadowedAdam)
    tokens, labels = _batches(1)[0]
    _backward(disc, tokens, labels, 0)
    assert all(w.grad is not None for w in _highway_weights(disc))

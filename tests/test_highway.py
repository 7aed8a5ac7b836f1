"""The highway layer's stacked weights (``highway.py``): one buffer, the same function."""

from __future__ import annotations

import copy
import io

import torch
import torch.nn.functional as F

from textgan_envs.discriminators import build_discriminator
from textgan_envs.discriminators.highway import stacked_view


def _stacked(disc) -> bool:
    tr, gate = disc.highway.transform, disc.highway.gate
    return (
        stacked_view(tr.weight, gate.weight) is not None
        and stacked_view(tr.bias, gate.bias) is not None
    )


def test_a_fresh_cnn_keeps_both_layers_in_one_buffer_and_a_state_dict_round_trip_keeps_it() -> None:
    disc = build_discriminator("cnn", vocab_size=30, seq_len=12, seed=0)
    assert _stacked(disc)
    weights = stacked_view(disc.highway.transform.weight, disc.highway.gate.weight)
    torch.testing.assert_close(weights[1720:], disc.highway.gate.weight, rtol=0, atol=0)
    buffer = io.BytesIO()
    torch.save(disc.state_dict(), buffer)
    buffer.seek(0)
    other = build_discriminator("cnn", vocab_size=30, seq_len=12, seed=1)
    other.load_state_dict(torch.load(buffer, weights_only=True))
    assert _stacked(other)
    for name, value in disc.state_dict().items():
        torch.testing.assert_close(other.state_dict()[name], value, rtol=0, atol=0, msg=name)


def test_a_step_on_stacked_weights_equals_one_on_separate_ones(gemm_library: str) -> None:
    """``copy.deepcopy`` gives each weight its own storage, so the twin takes the six-GEMM route;
    logits and every gradient agree to float32 rounding under either GEMM library."""
    disc = build_discriminator("cnn", vocab_size=30, seq_len=20, seed=0).eval()
    twin = copy.deepcopy(disc)
    assert _stacked(disc) and not _stacked(twin)
    tokens = torch.randint(0, 30, (24, 20), generator=torch.Generator().manual_seed(2))
    labels = (torch.arange(24) % 2).float()
    results = []
    for model in (disc, twin):
        logits = model(tokens)
        loss = F.binary_cross_entropy_with_logits(logits, labels)
        results.append((logits.detach(), torch.autograd.grad(loss, list(model.parameters()))))
    (logits, grads), (twin_logits, twin_grads) = results
    torch.testing.assert_close(logits, twin_logits, rtol=1e-5, atol=1e-6)
    for (name, _), got, want in zip(disc.named_parameters(), grads, twin_grads, strict=True):
        assert want.abs().max() > 0, name
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-7, msg=name)
    with torch.no_grad():  # scoring
        torch.testing.assert_close(disc(tokens), twin(tokens), rtol=1e-5, atol=1e-6)

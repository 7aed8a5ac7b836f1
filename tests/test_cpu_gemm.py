"""The float32 training GEMMs' library: the switch, the automatic choice, and that it is used."""

from __future__ import annotations

import os

import pytest
import torch
import torch.nn.functional as F

from textgan_envs.discriminators import build_discriminator, cpu_gemm
from textgan_envs.discriminators.cpu_gemm import GEMM_LIBRARY_ENV, auto_library, gemm_library

AVX512 = {"avx2", "fma", "avx512f"}


@pytest.mark.parametrize(
    ("vendor", "flags", "available", "expected"),
    [
        ("AuthenticAMD", AVX512, True, "onednn"),
        ("AuthenticAMD", AVX512, False, "aten"),  # no oneDNN in this PyTorch
        ("AuthenticAMD", {"avx2", "fma"}, True, "aten"),  # AVX2: no consistent gain measured
        ("GenuineIntel", AVX512 | {"amx_bf16"}, True, "aten"),  # MKL's own AVX-512 kernels
        ("", {"asimd"}, True, "aten"),  # Arm, or no /proc/cpuinfo
    ],
)
def test_auto_picks_onednn_only_on_amd_with_avx512(vendor, flags, available, expected) -> None:
    assert auto_library(vendor, flags, available) == expected


def test_the_switch_forces_a_library_and_refuses_unknown_names(monkeypatch) -> None:
    monkeypatch.setenv(GEMM_LIBRARY_ENV, "aten")
    assert gemm_library() == "aten"
    monkeypatch.setenv(GEMM_LIBRARY_ENV, " ATEN ")
    assert gemm_library() == "aten"
    monkeypatch.setenv(GEMM_LIBRARY_ENV, "mkl-please")
    with pytest.raises(ValueError, match="TEXTGAN_CPU_GEMM='mkl-please'.*auto, aten, onednn"):
        gemm_library()


def test_forcing_onednn_without_it_is_a_clear_error(monkeypatch) -> None:
    monkeypatch.setattr(cpu_gemm, "onednn_linear_available", lambda: False)
    monkeypatch.setenv(GEMM_LIBRARY_ENV, "onednn")
    with pytest.raises(RuntimeError, match="TEXTGAN_CPU_GEMM=onednn.*use aten or auto"):
        gemm_library()


def _training_step(disc) -> None:
    tokens = torch.randint(0, 40, (16, 20), generator=torch.Generator().manual_seed(0))
    loss = F.binary_cross_entropy_with_logits(disc(tokens), torch.ones(16))
    loss.backward()


def test_a_training_step_runs_its_gemms_where_the_switch_says(gemm_library, monkeypatch) -> None:
    """Every GEMM of a SeqGAN CNN training step (12 convolution widths, the highway's three over
    its stacked weights) and of its scoring (12 + 1) goes through oneDNN when chosen, and none
    does otherwise."""
    calls = []
    real = cpu_gemm.onednn_linear

    def counting(x, weight, bias=None):
        calls.append(tuple(x.shape))
        return real(x, weight, bias)

    for module in ("highway", "conv_bank"):
        monkeypatch.setattr(f"textgan_envs.discriminators.{module}.onednn_linear", counting)
    disc = build_discriminator("cnn", vocab_size=40, seq_len=20, seed=0).train()
    _training_step(disc)
    assert len(calls) == (12 + 3 if gemm_library == "onednn" else 0)
    calls.clear()
    with torch.no_grad():
        disc.eval()(torch.randint(0, 40, (8, 20)))
    assert len(calls) == (12 + 1 if gemm_library == "onednn" else 0)
    calls.clear()
    disc.fused_convs = False  # the plain reference formulation: PyTorch's own layers
    _training_step(disc.train())
    assert calls == []


def test_torch_compile_of_the_cnn_gives_eager_loss_and_gradients_under_either_library(
    gemm_library,
) -> None:
    """``torch.compile`` traces the SeqGAN CNN on PyTorch's own GEMMs: its CPU backend cannot
    lower oneDNN's linear op on a trainable weight (it raised a LoweringException)."""
    torch._dynamo.reset()
    sizes = {"emb_dim": 8, "filter_sizes": [2, 3], "num_filters": [6, 5]}
    disc = build_discriminator("cnn", vocab_size=40, seq_len=12, seed=0, **sizes).eval()
    tokens = torch.randint(0, 40, (16, 12), generator=torch.Generator().manual_seed(1))

    def loss_of(model):
        loss = F.binary_cross_entropy_with_logits(model(tokens), torch.ones(16))
        grads = torch.autograd.grad(loss, list(disc.parameters()))
        return loss.detach(), grads

    eager_loss, eager_grads = loss_of(disc)
    compiled_loss, compiled_grads = loss_of(torch.compile(disc))
    torch._dynamo.reset()
    torch.testing.assert_close(compiled_loss, eager_loss, rtol=1e-5, atol=1e-6)
    for got, want in zip(compiled_grads, eager_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


def test_setting_a_library_for_a_block_restores_the_switch(monkeypatch) -> None:
    monkeypatch.delenv(GEMM_LIBRARY_ENV, raising=False)
    with cpu_gemm.gemm_library_set_to("aten"):
        assert gemm_library() == "aten"
    assert GEMM_LIBRARY_ENV not in os.environ
    monkeypatch.setenv(GEMM_LIBRARY_ENV, "aten")
    with pytest.raises(KeyError), cpu_gemm.gemm_library_set_to("auto"):
        raise KeyError("a failing block")
    assert os.environ[GEMM_LIBRARY_ENV] == "aten"

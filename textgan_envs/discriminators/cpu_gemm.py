"""Which library runs the float32 GEMMs of a discriminator training step on the CPU.

Why: PyTorch sends float32 ``mm``/``addmm`` to its BLAS (MKL on x86 builds). On an AMD EPYC
with AVX-512 (Zen 4), MKL ran the SeqGAN CNN step's GEMMs at 100-130 GFLOP/s in the step where
oneDNN, the library PyTorch itself uses for convolutions and bfloat16 matmuls, ran them at
130-170 (its 2048^3 product: 190 against MKL's 136 GFLOP/s); a training step went from 42.3 to
39.6 ms, on a quieter host from 37.3 to 36.6 ms (``benchmarks/gemm_library_step.py``,
BENCHMARKS.md), and scoring a generator
step's 19,520 Monte-Carlo completions from 4.76 to 3.38 s (``benchmarks/cnn_scoring.py``).
With both libraries held to AVX2 on the same CPU, the comparison went one way in one run
(oneDNN 3 ms slower a step) and the other way in the next (0.5 ms faster), and on Intel CPUs
MKL runs its own AVX-512 kernels. So ``"auto"`` picks oneDNN on AMD CPUs with AVX-512 only,
the one kind measured faster, and PyTorch's own route everywhere else.

``TEXTGAN_CPU_GEMM`` = ``auto`` (default) | ``aten`` (PyTorch's ``addmm``) | ``onednn`` forces
one, which is how the tests run both routes on any machine. The two give the same products to
float32 rounding, not bit for bit. The choice covers training steps and scoring (rewards,
accuracy) of the SeqGAN CNN; its plain reference formulation (``fused_convs=False``),
autocast and code traced by ``torch.compile`` always take PyTorch's route.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from functools import lru_cache

import torch
from torch import Tensor

from textgan_envs.native_sampling import _cpu_signature, cpuinfo_field

GEMM_LIBRARY_ENV = "TEXTGAN_CPU_GEMM"
GEMM_LIBRARIES = ("auto", "aten", "onednn")


@lru_cache(maxsize=1)
def onednn_linear_available() -> bool:
    """Whether this PyTorch can run a float32 ``x W^T + b`` through oneDNN (and gets it right)."""
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        op = torch.ops.mkldnn._linear_pointwise
        x = torch.arange(12, dtype=torch.float32).view(3, 4) / 7
        w = torch.arange(20, dtype=torch.float32).view(5, 4) / 11
        b = torch.arange(5, dtype=torch.float32)
        got = op(x, w, b, "none", [], "")
    except (AttributeError, RuntimeError, TypeError):
        return False
    return bool(torch.allclose(got, torch.addmm(b, x, w.t()), rtol=1e-5, atol=1e-6))


def auto_library(vendor: str, flags: set[str], onednn_available: bool) -> str:
    """``"auto"``'s rule: oneDNN on an AMD CPU (``vendor_id`` ``AuthenticAMD``) with ``avx512f``
    where oneDNN is available, else ``"aten"``."""
    amd_avx512 = vendor == "AuthenticAMD" and "avx512f" in flags
    return "onednn" if amd_avx512 and onednn_available else "aten"


@lru_cache(maxsize=1)
def _auto_choice() -> str:
    flags = set(_cpu_signature().partition(":")[2].split())
    return auto_library(cpuinfo_field("vendor_id"), flags, onednn_linear_available())


def gemm_library() -> str:
    """The library the float32 training GEMMs use here: ``"aten"`` or ``"onednn"``.

    Raises ``ValueError`` for an unknown ``TEXTGAN_CPU_GEMM`` and ``RuntimeError`` where it
    asks for oneDNN and this PyTorch cannot run it.
    """
    setting = os.environ.get(GEMM_LIBRARY_ENV, "auto").strip().lower() or "auto"
    if setting not in GEMM_LIBRARIES:
        raise ValueError(
            f"{GEMM_LIBRARY_ENV}={setting!r}: choose one of {', '.join(GEMM_LIBRARIES)}"
        )
    if setting == "auto":
        return _auto_choice()
    if setting == "onednn" and not onednn_linear_available():
        raise RuntimeError(
            f"{GEMM_LIBRARY_ENV}=onednn, but this PyTorch build cannot run float32 linear "
            "layers through oneDNN (torch.ops.mkldnn._linear_pointwise); use aten or auto"
        )
    return setting


@contextlib.contextmanager
def gemm_library_set_to(library: str | None) -> Iterator[None]:
    """Runs the block with ``TEXTGAN_CPU_GEMM=library`` (``None``: as it is), then restores it;
    for benchmarks that time both libraries side by side in one process."""
    old = os.environ.get(GEMM_LIBRARY_ENV)
    if library is not None:
        os.environ[GEMM_LIBRARY_ENV] = library
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(GEMM_LIBRARY_ENV, None)
        else:
            os.environ[GEMM_LIBRARY_ENV] = old


def uses_onednn(x: Tensor) -> bool:
    """Whether a GEMM on ``x`` goes through oneDNN: float32 on the CPU, outside autocast (whose
    casts only PyTorch's own ops get) and outside ``torch.compile`` (whose CPU backend cannot
    lower oneDNN's linear op with a weight that is not a constant), where :func:`gemm_library`
    says so."""
    return (
        x.device.type == "cpu"
        and x.dtype == torch.float32
        and not torch.is_autocast_enabled("cpu")
        and not torch.compiler.is_compiling()
        and gemm_library() == "onednn"
    )


def onednn_linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``x @ weight.T + bias`` by oneDNN, row-major ``[rows, out]``; any strides for ``x``'s
    and ``weight``'s matrices (a transposed view is read in place)."""
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")

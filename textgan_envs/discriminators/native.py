"""The discriminator's C kernels (``csrc/``), built on first use: the conv bank's backward pass
and the bfloat16 highway weights' Adam step.

Why: after max-over-time pooling each (sequence, filter) sends its gradient to one window,
so the dense GEMMs of the backward multiply mostly zeros. The kernel adds only the nonzero
windows (about a tenth of the dense flops at SeqGAN's sizes, T=20) on PyTorch's OpenMP
threads. It is compiled like the sampling kernel (:mod:`textgan_envs.native_sampling`: the
system C compiler, ``-march=native`` where it works, else the compiler's baseline target,
cached per source, flags, compiler and CPU; ``TEXTGAN_NATIVE_ARCH=portable`` or
:func:`~textgan_envs.native_sampling.set_native_arch` selects the baseline-target build, the
switch that tests the portable code on any machine). Where nothing builds, a warning says
why and the conv bank keeps its PyTorch backward (same numbers to float32 rounding).
``TEXTGAN_NATIVE_CONV_BANK=0`` selects the PyTorch backward on purpose.

The same library holds :func:`adam_step_bf16_grad` (``csrc/adam_bf16.c``), the update that
lets bfloat16 training keep bfloat16 copies of the highway weights
(:mod:`textgan_envs.discriminators.bf16_weights`); without the library that path is off too.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import subprocess
import tempfile
import threading
import warnings
from pathlib import Path

import torch
from torch import Tensor

from textgan_envs.native_sampling import (
    _cache_dir,
    _compiler,
    _cpu_signature,
    _flag_sets,
    native_arch,
)

SOURCES = tuple(Path(__file__).with_name("csrc") / name for name in ("conv_bank.c", "adam_bf16.c"))
#: ``-fno-math-errno`` lets ``sqrtf`` vectorise (the Adam step ran 3x slower without it);
#: nothing here reads ``errno``.
_COMMON_FLAGS = ["-O3", "-std=gnu11", "-shared", "-fPIC", "-fno-math-errno"]
#: With ``-march=native`` on x86-64: 512-bit vectors where the CPU has AVX-512 (GCC tunes
#: Zen 4 for 256-bit); the backward's loops then ran 5% faster on an avx512 EPYC. The kernel
#: has no horizontal reductions, so its results do not depend on the vector width.
_WIDE_VECTORS = ["-mprefer-vector-width=512"]
_ERRORS = {
    -1: "a filter wider than the sequence",
    -2: "an argmax past the end",
    -3: "out of memory",
}

_lock = threading.Lock()
#: Per build ("native", "portable"): "library" (CDLL or None), "flags", "failure".
_states: dict[str, dict[str, object]] = {}


def _build_key(compiler: str, flags: list[str]) -> str:
    """Names a build by everything it depends on: source, flags, compiler and CPU."""
    try:
        version = subprocess.run(
            [compiler, "--version"], capture_output=True, text=True, timeout=60
        ).stdout
    except (OSError, subprocess.SubprocessError):
        version = compiler
    key = hashlib.sha256(b"".join(source.read_bytes() for source in SOURCES))
    for part in (" ".join(flags), version, _cpu_signature()):
        key.update(part.encode())
    return key.hexdigest()[:16]


def _build(compiler: str, flags: list[str], target: Path) -> None:
    """Compile to ``target`` atomically; ``RuntimeError`` with the compiler's words."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(dir=target.parent, suffix=".so.partial")
    os.close(handle)
    command = [compiler, *_COMMON_FLAGS, *flags, *map(str, SOURCES), "-o", partial]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed: {done.stderr.strip()[-400:]}")
        os.replace(partial, target)
    except (OSError, subprocess.SubprocessError) as error:
        raise RuntimeError(f"{' '.join(command)} failed: {error}") from error
    finally:
        if os.path.exists(partial):
            os.unlink(partial)


def _bind(library: ctypes.CDLL) -> ctypes.CDLL:
    pointer, int64, int32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int32
    fn = library.textgan_conv_bank_backward
    fn.argtypes = [pointer, int64, int64, int64, int64, pointer, pointer, pointer]
    fn.argtypes += [pointer, pointer, pointer, pointer, int32, int32]
    fn.restype = int64
    pack = library.textgan_conv_bank_pack
    pack.argtypes = [pointer, pointer, int64, int64, int64, int32]
    pack.restype = None
    for pool in (library.textgan_conv_bank_pool, library.textgan_conv_bank_pool_bf16):
        pool.argtypes = [pointer, int64, int64, int64, int64, int64, pointer, pointer, int32]
        pool.restype = int64
    double = ctypes.c_double
    adam = library.textgan_adam_bf16_grad
    adam.argtypes = [pointer, pointer, pointer, pointer, pointer, int64, double, double]
    adam.argtypes += [double, double, double, int32]
    adam.restype = None
    return library


def _open(compiler: str, flags: list[str]) -> ctypes.CDLL:
    """The cached build for ``flags``, built first if missing or unloadable."""
    target = _cache_dir() / f"conv_bank-{_build_key(compiler, flags)}.so"
    if target.is_file():
        try:
            return _bind(ctypes.CDLL(str(target)))
        except (OSError, AttributeError):  # truncated or foreign file: build it again
            target.unlink(missing_ok=True)
    _build(compiler, flags, target)
    return _bind(ctypes.CDLL(str(target)))


def _kernel_flag_sets(arch: str = "native") -> list[list[str]]:
    """The sampling kernel's flag sets for ``arch`` (:func:`_flag_sets`: ``"native"``, or
    ``"portable"`` for the compiler's baseline target), wide vectors first on x86-64."""
    sets = _flag_sets(arch)
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return sets
    wide = [[*flags, *_WIDE_VECTORS] for flags in sets if "-march=native" in flags]
    return wide + sets


def _load() -> ctypes.CDLL | None:
    """Build (or find) and load the current build once per process (``native`` or
    ``portable``, as :func:`~textgan_envs.native_sampling.native_arch` says); remember why
    if that fails."""
    arch = native_arch()
    with _lock:
        state = _states.setdefault(arch, {})
        if "library" in state:
            return state["library"]  # type: ignore[return-value]
        compiler, errors = _compiler(), []
        if compiler is None:
            errors.append(f"no C compiler found (looked for {os.environ.get('CC', 'cc')!r})")
        else:
            for flags in _kernel_flag_sets(arch):
                try:
                    state["library"], state["flags"] = _open(compiler, flags), flags
                    return state["library"]  # type: ignore[return-value]
                except (OSError, AttributeError, RuntimeError) as error:
                    errors.append(str(error))
        state["library"], state["failure"] = None, "; ".join(errors)
        warnings.warn(
            "textgan's C conv-bank kernel is unavailable, so training SeqGAN's CNN uses the "
            f"slower PyTorch backward ({state['failure']}). Set TEXTGAN_NATIVE_CONV_BANK=0 "
            "to silence this.",
            RuntimeWarning,
            stacklevel=3,
        )
        return None


def native_conv_bank_available() -> bool:
    """Whether the conv bank's CPU backward goes through the C kernel (building it on first call)."""
    setting = os.environ.get("TEXTGAN_NATIVE_CONV_BANK", "1")
    if setting not in ("0", "1"):
        raise ValueError(f"TEXTGAN_NATIVE_CONV_BANK must be 0 or 1, got {setting!r}")
    return setting == "1" and _load() is not None


def build_flags() -> list[str] | None:
    """The compiler flags of the loaded build (``None`` where it did not build)."""
    if _load() is None:
        return None
    return _states[native_arch()].get("flags")  # type: ignore[return-value]


def _library() -> ctypes.CDLL:
    library = _load()
    if library is None:
        failure = _states[native_arch()].get("failure")
        raise RuntimeError(f"the conv-bank kernel did not build: {failure}")
    return library


def pack_filters(weight: Tensor, out: Tensor) -> None:
    """Write a contiguous float32 CPU ``Conv1d`` weight ``[maps, E, width]`` into ``out``
    (``maps * width * E`` floats) as tap-major rows ``[maps, width, E]``."""
    maps, emb, width = weight.shape
    if not weight.is_contiguous() or not out.is_contiguous() or out.numel() != weight.numel():
        raise ValueError("pack_filters needs a contiguous weight and an output of its size")
    _library().textgan_conv_bank_pack(
        weight.data_ptr(), out.data_ptr(), maps, emb, width, torch.get_num_threads()
    )


def pool_scores(scores: Tensor, pooled: Tensor, argmax: Tensor, col: int) -> None:
    """relu(max over positions) of one width's ``scores [B, P, maps]`` (float32 or bfloat16)
    into columns ``col .. col + maps`` of ``pooled [B, F]`` (float32) and its first argmax
    into ``argmax`` (int64); all contiguous CPU tensors."""
    batch, positions, maps = scores.shape
    kernels = {
        torch.float32: _library().textgan_conv_bank_pool,
        torch.bfloat16: _library().textgan_conv_bank_pool_bf16,
    }
    if scores.dtype not in kernels or pooled.dtype != torch.float32:
        raise ValueError(
            f"pool_scores takes float32 or bfloat16 scores into float32 maxima, got "
            f"{scores.dtype} into {pooled.dtype}"
        )
    if not (scores.is_contiguous() and pooled.is_contiguous() and argmax.is_contiguous()):
        raise ValueError("pool_scores needs contiguous tensors")
    if pooled.shape != argmax.shape or pooled.shape[0] != batch or col + maps > pooled.shape[1]:
        raise ValueError(f"pool_scores: columns {col}..{col + maps} outside {tuple(pooled.shape)}")
    code = kernels[scores.dtype](
        scores.data_ptr(), batch, positions, maps, pooled.shape[1], col,
        pooled.data_ptr(), argmax.data_ptr(), torch.get_num_threads(),
    )  # fmt: skip
    if code != 0:
        raise MemoryError("conv-bank pooling kernel: out of memory")


def conv_bank_backward(
    x: Tensor,
    widths: Tensor,
    offsets: Tensor,
    filters: Tensor,
    grad: Tensor,
    argmax: Tensor,
    want_grad_x: bool,
) -> tuple[Tensor | None, Tensor]:
    """``(grad_x [B, T, E] or None, grad_filters)`` from the pooled gradient (see the C source).

    ``x`` float32 ``[B, T, E]``, ``widths``/``offsets`` int64 ``[F]``, ``filters`` packed
    tap-major float32, ``grad`` float32 ``[B, F]`` (0 where ReLU passed none), ``argmax`` int64
    ``[B, F]``; all contiguous CPU tensors. ``grad_filters`` is packed at the same offsets in
    ``Conv1d``'s layout: each width's part is its weight's gradient.
    """
    library = _library()
    batch, length, emb = x.shape
    grad_x = torch.empty_like(x) if want_grad_x else None
    grad_filters = torch.empty_like(filters)
    code = library.textgan_conv_bank_backward(
        x.data_ptr(), batch, length, emb, widths.numel(), widths.data_ptr(), offsets.data_ptr(),
        filters.data_ptr(), grad.data_ptr(), argmax.data_ptr(),
        grad_x.data_ptr() if grad_x is not None else None, grad_filters.data_ptr(),
        int(want_grad_x), torch.get_num_threads(),
    )  # fmt: skip
    if code != 0:
        raise ValueError(f"conv-bank kernel refused its input: {_ERRORS.get(code, code)}")
    return grad_x, grad_filters


def adam_step_bf16_grad(
    param: Tensor,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    grad: Tensor,
    low_param: Tensor,
    step: float,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
) -> None:
    """Adam's update of ``param`` (float32) from ``grad`` (bfloat16), in place, and
    ``low_param = param.to(torch.bfloat16)`` in the same pass (see ``csrc/adam_bf16.c``).

    The float32 arithmetic of ``torch.optim.Adam(fused=True)`` on ``grad.float()`` (no weight
    decay, amsgrad or maximize); ``step`` is the step count after this update. All tensors
    contiguous, on the CPU and of ``param``'s size.
    """
    tensors = {"param": param, "exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq}
    tensors |= {"grad": grad, "low_param": low_param}
    for name, tensor in tensors.items():
        wanted = torch.bfloat16 if name in ("grad", "low_param") else torch.float32
        if (
            tensor.dtype != wanted
            or tensor.device.type != "cpu"
            or not tensor.is_contiguous()
            or tensor.numel() != param.numel()
        ):
            raise ValueError(
                f"adam_step_bf16_grad: {name} must be a contiguous {wanted} CPU tensor of "
                f"{param.numel()} elements, got {tensor.dtype} {tuple(tensor.shape)} on "
                f"{tensor.device}"
            )
    bias_correction1 = 1.0 - beta1**step
    bias_correction2_sqrt = (1.0 - beta2**step) ** 0.5
    _library().textgan_adam_bf16_grad(
        param.data_ptr(), exp_avg.data_ptr(), exp_avg_sq.data_ptr(), grad.data_ptr(),
        low_param.data_ptr(), param.numel(), beta1, beta2, lr / bias_correction1,
        bias_correction2_sqrt, eps, torch.get_num_threads(),
    )  # fmt: skip

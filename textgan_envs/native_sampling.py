"""Categorical sampling on CPU through a small C kernel, built on first use.

Why: the CPU cost of sampling from a model with 5,000 classes is not the
arithmetic but the passes over ``[rows, V]`` tensors: PyTorch's softmax reads
and writes every logit three times, and the two-level inverse-CDF draw of
:func:`textgan_envs.sampling.sample_categorical_inverse_cdf` adds a block sum
and several small ops per step. ``csrc/categorical.c`` reads each row once
into L1 cache for its maximum and once for its block masses, writes nothing
of size ``[rows, V]``, and runs rows in parallel on PyTorch's own OpenMP
threads. It draws from the same distribution in the same two levels (one
uniform per row). For models with an output projection it also computes the
logits itself, 8 rows at a time into a buffer in cache (:func:`sample_projected`,
used by :class:`~textgan_envs.projection_sampling.ProjectionSampler`).
``benchmarks/oracle_sampling.py`` measures it against the alternatives.

The kernel is compiled with the system C compiler (``$CC``, else ``cc``) for
this CPU (``-march=native``) into a cache directory (``$TEXTGAN_CACHE_DIR``,
else ``$XDG_CACHE_HOME/textgan`` or ``~/.cache/textgan``) keyed by the source,
the compiler and the CPU, so it is built once per machine (well under a
second). Where no compiler works, a warning says why and
:mod:`textgan_envs.sampling` keeps its PyTorch path, and it does so too where
``-march=native`` failed and only a baseline build worked (slower than PyTorch's ops);
``TEXTGAN_NATIVE_SAMPLING=0`` selects that path on purpose, ``=1`` the kernel in any build. Which of the two a machine uses decides which
samples a seed gives, as the choice between CPU and GPU does.
"""

from __future__ import annotations

import ctypes
import hashlib
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import warnings
from pathlib import Path

import torch
from torch import Tensor

__all__ = [
    "ARCHES",
    "build_flags",
    "built_for_this_cpu",
    "cpu_summary",
    "has_bf16_dot",
    "native_arch",
    "native_block_size",
    "native_sampling_available",
    "sample_projected",
    "sample_rows",
    "sample_rows_bf16",
    "set_native_arch",
]

SOURCE = Path(__file__).with_name("csrc") / "categorical.c"
_LANES = 16  # classes are padded to multiples of this; every build's vector width divides it
_COMMON_FLAGS = ["-O3", "-std=gnu11", "-shared", "-fPIC"]

_lock = threading.Lock()
_libraries: dict[str, ctypes.CDLL | None] = {}  # per arch; None: the build failed
_failures: dict[str, str] = {}
_build_flags: dict[str, list[str]] = {}
_arch = os.environ.get("TEXTGAN_NATIVE_ARCH", "native")


def _cache_dir() -> Path:
    if os.environ.get("TEXTGAN_CACHE_DIR"):
        return Path(os.environ["TEXTGAN_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "textgan"


def _cpu_signature() -> str:
    """What ``-march=native`` depends on: the CPU's feature flags where Linux lists them."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as info:
            for line in info:
                if line.startswith(("flags", "Features")):
                    return line
    except OSError:
        pass
    return f"{platform.machine()} {platform.processor()}"


ARCHES = ("native", "portable")


RELEVANT_CPU_FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "neon", "asimd")


def cpuinfo_field(name: str) -> str:
    """The first ``name : value`` of ``/proc/cpuinfo`` (e.g. ``"vendor_id"``), or ``""``."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as info:
            for line in info:
                key, _, value = line.partition(":")
                if key.strip() == name:
                    return value.strip()
    except OSError:
        pass
    return ""


def cpu_summary() -> str:
    """The CPU's model name and the flags the kernel's speed depends on, for benchmark
    tables (e.g. ``"AMD EPYC; avx avx2 fma; no avx512f avx512_bf16"``)."""
    model = cpuinfo_field("model name") or platform.processor() or platform.machine()
    flags = set(_cpu_signature().partition(":")[2].split())
    have = [f for f in RELEVANT_CPU_FLAGS if f in flags]
    lack = [f for f in ("avx2", "fma", "avx512f", "avx512_bf16") if f not in flags]
    summary = f"{model}; {' '.join(have) or 'no listed flags'}"
    return summary + (f"; no {' '.join(lack)}" if lack else "")


def cpu_has_bf16_dot_products() -> bool:
    """Whether this CPU computes bfloat16 dot products natively (avx512_bf16, amx_bf16, Arm bf16)."""
    flags = set(_cpu_signature().partition(":")[2].split())
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})  # bf16: Arm


def _flag_sets(arch: str) -> list[list[str]]:
    """Compiler flags to try, fastest first.

    ``arch="native"`` compiles for this CPU (``-march=native``: AVX-512 and its bfloat16
    dot products, AVX2 + FMA, NEON, whatever it has); ``"portable"`` for the compiler's
    baseline target (SSE2 on x86-64), which every CPU of the architecture runs: the
    switch that lets any machine test the kernel's portable code path.

    OpenMP only with GCC on Linux: the object then needs ``libgomp.so.1``, which
    PyTorch's Linux wheels have already loaded, so the kernel shares PyTorch's
    thread pool. (A second OpenMP runtime would fight PyTorch's spinning threads
    for the cores.)
    """
    target = ["-march=native"] if arch == "native" else []
    sets = []
    if sys.platform.startswith("linux") and "OpenMP" in torch.__config__.parallel_info():
        sets.append([*target, "-fopenmp"])
    sets.append(target)
    if arch == "native":
        sets.append([])
    return sets


def _compiler() -> str | None:
    return shutil.which(os.environ.get("CC", "cc"))


def _build_key(compiler: str, flags: list[str]) -> str:
    """Names a build by everything it depends on: source, flags, compiler and CPU."""
    try:
        version = subprocess.run(
            [compiler, "--version"], capture_output=True, text=True, timeout=60
        ).stdout
    except (OSError, subprocess.SubprocessError):
        version = compiler
    key = hashlib.sha256(SOURCE.read_bytes())
    for part in (" ".join(flags), version, _cpu_signature()):
        key.update(part.encode())
    return key.hexdigest()[:16]


def _build(compiler: str, flags: list[str], target: Path) -> None:
    """Compile the kernel to ``target`` atomically; ``RuntimeError`` with the compiler's words."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(dir=target.parent, suffix=".so.partial")
    os.close(handle)
    command = [compiler, *_COMMON_FLAGS, *flags, str(SOURCE), "-o", partial]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed: {done.stderr.strip()[-400:]}")
        os.replace(partial, target)  # concurrent builders each write whole files
    except (OSError, subprocess.SubprocessError) as error:
        raise RuntimeError(f"{' '.join(command)} failed: {error}") from error
    finally:
        if os.path.exists(partial):
            os.unlink(partial)


def _bind(library: ctypes.CDLL) -> ctypes.CDLL:
    pointer, int64, int32, float32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int32, ctypes.c_float
    plain = library.textgan_sample_rows
    plain.argtypes = [
        pointer,
        int64,
        int64,
        int64,
        pointer,
        float32,
        pointer,
        int64,
        int32,
        pointer,
    ]
    plain.restype = int64
    bf16 = library.textgan_sample_rows_bf16
    bf16.argtypes = [pointer, int64, int64, int64, pointer, int64, pointer, pointer, pointer]
    bf16.argtypes += [float32, float32, pointer, int32, int64, int32, pointer]
    bf16.restype = int64
    projected = library.textgan_sample_projected
    projected.argtypes = [pointer, pointer, int64, int64, int64, pointer, pointer, int64, int64]
    projected.argtypes += [pointer, pointer, float32, pointer, int32, int64, int32, pointer]
    projected.restype = int64
    library.textgan_has_bf16_dot.restype = int32
    return library


def _open(compiler: str, flags: list[str], target: Path) -> ctypes.CDLL:
    """Load the cached build at ``target``; build it first if it is missing or unloadable."""
    if not target.is_file():
        _build(compiler, flags, target)
        return _bind(ctypes.CDLL(str(target)))
    try:
        return _bind(ctypes.CDLL(str(target)))
    except (OSError, AttributeError):  # truncated or foreign file: build it again
        target.unlink(missing_ok=True)
        _build(compiler, flags, target)
        return _bind(ctypes.CDLL(str(target)))


def native_arch() -> str:
    """Which build of the kernel is in use: ``"native"`` (the default) or ``"portable"``."""
    return _arch


def set_native_arch(arch: str) -> str:
    """Use the ``"native"`` or the ``"portable"`` build from now on (``TEXTGAN_NATIVE_ARCH``
    sets it at start-up); returns the old value. Both stay loaded once built."""
    global _arch
    if arch not in ARCHES:
        raise ValueError(f"native arch must be one of {ARCHES}, got {arch!r}")
    old, _arch = _arch, arch
    return old


def _load() -> ctypes.CDLL | None:
    """Build (or find in the cache) and load the current build; remember why if that fails."""
    arch = _arch
    if arch not in ARCHES:
        raise ValueError(f"TEXTGAN_NATIVE_ARCH must be one of {ARCHES}, got {arch!r}")
    with _lock:
        if arch in _libraries:
            return _libraries[arch]
        compiler = _compiler()
        errors = []
        if compiler is None:
            errors.append(f"no C compiler found (looked for {os.environ.get('CC', 'cc')!r})")
        else:
            for flags in _flag_sets(arch):
                target = _cache_dir() / f"categorical-{_build_key(compiler, flags)}.so"
                try:
                    _libraries[arch] = _open(compiler, flags, target)
                    _build_flags[arch] = flags
                    return _libraries[arch]
                except (OSError, AttributeError, RuntimeError) as error:
                    errors.append(str(error))
        _libraries[arch] = None
        _failures[arch] = "; ".join(errors)
        warnings.warn(
            "textgan's C sampling kernel is unavailable, so CPU sampling uses the slower "
            f"PyTorch path ({_failures[arch]}). Set TEXTGAN_NATIVE_SAMPLING=0 to silence this.",
            RuntimeWarning,
            stacklevel=3,
        )
        return None


def build_flags() -> list[str] | None:
    """The compiler flags of the build in use (``None`` where it did not build)."""
    return _build_flags.get(_arch) if _load() is not None else None


NATIVE_SAMPLING_SETTINGS = ("auto", "0", "1")
_baseline_warned = False


def _native_sampling_setting() -> str:
    value = os.environ.get("TEXTGAN_NATIVE_SAMPLING", "auto")
    if value not in NATIVE_SAMPLING_SETTINGS:
        raise ValueError(
            f"TEXTGAN_NATIVE_SAMPLING must be one of {NATIVE_SAMPLING_SETTINGS}, got {value!r}"
        )
    return value


def built_for_this_cpu() -> bool:
    """Whether the build in use was compiled for this CPU or for the target the user chose.

    ``False`` when ``-march=native`` was asked for but only the compiler's baseline
    target built: that build measured slower than PyTorch's own ops (2.7 s against
    2.2 s for 10,000 oracle sequences on an AVX2 EPYC, ``benchmarks/oracle_sampling.py``),
    since PyTorch dispatches its own kernels to the CPU's vector units at run time.
    """
    if _load() is None:
        return False
    return _arch == "portable" or "-march=native" in _build_flags.get(_arch, [])


def native_sampling_available() -> bool:
    """Whether CPU sampling goes through the C kernel (building it on first call).

    ``TEXTGAN_NATIVE_SAMPLING``: ``auto`` (the default) uses the kernel where it built for
    this CPU (see :func:`built_for_this_cpu`; one warning otherwise), ``1`` wherever it
    builds, ``0`` never.
    """
    global _baseline_warned
    setting = _native_sampling_setting()
    if setting == "0" or _load() is None:
        return False
    if setting == "1" or built_for_this_cpu():
        return True
    if not _baseline_warned:
        _baseline_warned = True
        warnings.warn(
            "textgan's C sampling kernel did not build for this CPU (-march=native failed), and "
            "its baseline build is slower than PyTorch's ops, so CPU sampling uses PyTorch. "
            "Set TEXTGAN_NATIVE_SAMPLING=1 to use the baseline build anyway.",
            RuntimeWarning,
            stacklevel=2,
        )
    return False


def native_block_size(num_classes: int) -> int:
    """Classes per block: a multiple of the vector width near sqrt(V) (80 for V = 5,000)."""
    return _LANES * max(1, math.ceil(math.sqrt(num_classes) / _LANES))


def _check(name: str, tensor: Tensor, shape: tuple[int, ...], dtype=torch.float32) -> None:
    if tensor.device.type != "cpu" or tensor.dtype != dtype:
        raise ValueError(
            f"{name} must be a {str(dtype).removeprefix('torch.')} CPU tensor, "
            f"got {tensor.dtype} on {tensor.device}"
        )
    if tuple(tensor.shape) != shape:
        raise ValueError(f"{name} must have shape {list(shape)}, got {list(tensor.shape)}")
    if tensor.dim() and tensor.stride(-1) != 1:
        raise ValueError(f"{name} must be contiguous along its last dimension")


def _library_or_raise() -> ctypes.CDLL:
    library = _load()
    if library is None:
        raise RuntimeError(f"the C sampling kernel is unavailable: {_failures.get(_arch)}")
    return library


def _raise_for_bad_rows(out: Tensor, failed: int) -> None:
    """Turn the kernel's negative codes -1 (bad row), -2 (no memory) and -4 (bfloat16
    asked of a build without it) into errors; -3 (all candidates rejected) is the caller's."""
    bad = (out == -1) | (out == -2) | (out == -4)
    if failed and bool(bad.any()):
        row = int(bad.nonzero()[0, 0])
        if int(out[row]) == -2:
            raise MemoryError("the C sampling kernel could not allocate its scratch space")
        if int(out[row]) == -4:
            raise RuntimeError("this build of the C sampling kernel has no bfloat16 dot product")
        raise ValueError(
            f"logits row {row} has a NaN or no finite entry ({int(bad.sum())} such rows); "
            "every row needs a finite maximum"
        )


def sample_rows(
    logits: Tensor, u: Tensor, bias: Tensor | None = None, inv_temperature: float = 1.0
) -> Tensor:
    """One class per row of ``softmax((logits + bias) * inv_temperature)``: ``LongTensor[N]``.

    ``logits`` is float32 ``[N, V]`` on CPU (rows may be strided), ``u`` holds one
    uniform in [0, 1) per row, ``bias`` ``[V]`` or ``None``. ``-inf`` logits are
    never drawn; a row with a NaN, or without a finite maximum, raises
    ``ValueError`` naming it. Needs :func:`native_sampling_available`.
    """
    library = _library_or_raise()
    if logits.dim() != 2 or logits.shape[1] == 0:
        raise ValueError(f"logits must be [N, V] with V >= 1, got shape {list(logits.shape)}")
    n, num_classes = logits.shape
    _check("logits", logits, (n, num_classes))
    _check("u", u, (n,))
    if bias is not None:
        _check("bias", bias, (num_classes,))
    out = torch.empty(n, dtype=torch.long)
    if n == 0:
        return out
    failed = library.textgan_sample_rows(
        logits.data_ptr(),
        n,
        num_classes,
        logits.stride(0),
        None if bias is None else bias.data_ptr(),
        float(inv_temperature),
        u.data_ptr(),
        native_block_size(num_classes),
        torch.get_num_threads(),
        out.data_ptr(),
    )
    _raise_for_bad_rows(out, failed)
    return out


def sample_rows_bf16(
    logits: Tensor,
    features: Tensor,
    class_rows: Tensor,
    bias: Tensor | None,
    eps_base: Tensor,
    output_unit: float,
    u: Tensor,
    inv_temperature: float = 1.0,
) -> tuple[Tensor, Tensor]:
    """Exact draws from ``softmax((features @ W + bias) * inv_temperature)`` given
    bfloat16 logits ``bf16(features @ W)``; ``(LongTensor[N], redraw [N])``.

    ``class_rows`` is ``W`` transposed (``[V, K]``, float32, contiguous), used for
    the float32 logit of each candidate; ``eps_base[i] + output_unit * max_v
    |logits[i, v]|`` must bound ``|features[i] @ W - logits[i]|``
    (:func:`textgan_envs.projection_sampling.logit_error_bound`). ``u`` holds two
    uniforms per candidate ``[N, 2C]``. Rows whose ``C`` candidates were all
    rejected are flagged in ``redraw``: draw them from float32 logits.
    """
    library = _library_or_raise()
    if logits.dim() != 2 or features.dim() != 2 or u.dim() != 2:
        raise ValueError("logits [N, V], features [N, K] and u [N, 2C] must be 2-D")
    (n, num_classes), k = logits.shape, features.shape[1]
    _check("logits", logits, (n, num_classes), torch.bfloat16)
    _check("features", features.contiguous(), (n, k))
    _check("class_rows", class_rows, (num_classes, k))
    _check("eps_base", eps_base, (n,))
    if u.shape[1] % 2 or u.shape[1] == 0:
        raise ValueError(f"u must hold two uniforms per candidate, got shape {list(u.shape)}")
    _check("u", u, (n, u.shape[1]))
    if bias is not None:
        _check("bias", bias, (num_classes,))
    features, u, class_rows = features.contiguous(), u.contiguous(), class_rows.contiguous()
    out = torch.empty(n, dtype=torch.long)
    if n == 0:
        return out, torch.zeros(0, dtype=torch.bool)
    failed = library.textgan_sample_rows_bf16(
        logits.data_ptr(),
        n,
        num_classes,
        logits.stride(0),
        features.data_ptr(),
        k,
        class_rows.data_ptr(),
        None if bias is None else bias.data_ptr(),
        eps_base.data_ptr(),
        float(output_unit),
        float(inv_temperature),
        u.data_ptr(),
        u.shape[1] // 2,
        native_block_size(num_classes),
        torch.get_num_threads(),
        out.data_ptr(),
    )
    _raise_for_bad_rows(out, failed)
    return out, out == -3


def has_bf16_dot() -> bool:
    """Whether the kernel was built with native bfloat16 dot products (avx512_bf16)."""
    library = _load()
    return library is not None and bool(library.textgan_has_bf16_dot())


def sample_projected(
    features: Tensor,
    weight: Tensor,
    bias_padded: Tensor,
    num_classes: int,
    inv_temperature: float,
    u: Tensor,
    pairs: Tensor | None = None,
    class_rows: Tensor | None = None,
    eps_base: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Draws from ``softmax((features @ W + bias) * inv_temperature)`` with the projection
    inside the kernel (no ``[N, V]`` logits tensor); ``(LongTensor[N], redraw [N])``.

    float32: ``weight`` is ``W`` zero-padded to ``[K, Vpad]`` (Vpad a multiple of 16),
    ``u`` one uniform per row ``[N]``; every draw is exact. bfloat16 (``pairs`` given,
    needs :func:`has_bf16_dot`): ``weight`` is the packed bfloat16 layout built by
    :class:`~textgan_envs.projection_sampling.ProjectionSampler`, ``pairs`` the features
    in bfloat16 viewed as int32 ``[N, ceil(K/2)]``, ``u`` two uniforms per candidate
    ``[N, 2C]``, and candidates are accepted against their float32 logits
    (``class_rows`` ``[V, K]``) under the per-row error bound ``eps_base``; rows that
    reject every candidate are flagged in ``redraw``. ``bias_padded`` ``[Vpad]`` is
    ``-inf`` past the last class.
    """
    library = _library_or_raise()
    n, k = features.shape
    vpad = bias_padded.shape[0]
    _check("features", features, (n, k))
    _check("bias_padded", bias_padded, (vpad,))
    if vpad % _LANES or not num_classes <= vpad < num_classes + _LANES:
        raise ValueError(f"bias_padded must have V rounded up to {_LANES} entries, got {vpad}")
    candidates = 0
    if pairs is None:
        _check("weight", weight, (k, vpad))
        _check("u", u, (n,))
    else:
        k2 = pairs.shape[1]
        _check("pairs", pairs, (n, k2), torch.int32)
        _check("weight", weight, (vpad // _LANES, k2, _LANES, 2), torch.bfloat16)
        if class_rows is None or eps_base is None:
            raise ValueError("the bfloat16 path needs class_rows and eps_base")
        _check("class_rows", class_rows, (num_classes, k))
        _check("eps_base", eps_base, (n,))
        candidates = u.shape[1] // 2
        _check("u", u, (n, 2 * candidates))
    out = torch.empty(n, dtype=torch.long)
    if n == 0:
        return out, torch.zeros(0, dtype=torch.bool)
    for name, tensor in (("weight", weight), ("features", features), ("u", u)):
        if not tensor.is_contiguous():
            raise ValueError(f"{name} must be contiguous")
    failed = library.textgan_sample_projected(
        features.data_ptr(),
        None if pairs is None else pairs.data_ptr(),
        n,
        k,
        0 if pairs is None else pairs.shape[1],
        weight.data_ptr(),
        bias_padded.data_ptr(),
        num_classes,
        vpad,
        None if class_rows is None else class_rows.data_ptr(),
        None if eps_base is None else eps_base.data_ptr(),
        float(inv_temperature),
        u.data_ptr(),
        candidates,
        native_block_size(num_classes),
        torch.get_num_threads(),
        out.data_ptr(),
    )
    _raise_for_bad_rows(out, failed)
    return out, out == -3

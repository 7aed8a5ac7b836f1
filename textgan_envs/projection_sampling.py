"""Exact sampling from ``softmax((h @ W + b) / temperature)`` without float32 logits on CPU.

Why: sampling from the SeqGAN oracle or an LSTM generator on CPU is bound by the
output projection (``[N, K] @ [K, V]`` with K = 32 and V = 5,000 writes 5,000
logits per row) and by the softmax pass over them. This module halves the first
and cuts the second to a few multiply-adds per logit:

* **bfloat16 proposal.** The logits ``l_hat`` come from a bfloat16 matmul (twice
  the float32 rate on CPUs with avx512_bf16 or AMX). Their error has a bound per
  row from the measured rounding of ``h`` and ``W`` (:func:`logit_error_bound`):
  ``|l - l_hat| <= eps = ||h_hat|| max_v ||dW_v|| + ||h_hat - h|| max_v ||W_v|| + 1.01 u max_v |l_hat_v|``
  (Cauchy-Schwarz on the input rounding; products and the float32 accumulation
  are exact to 2^-24; u = 2^-8 for the output rounding).
* **Cheap weights.** A class's proposal weight is not ``exp`` but
  :func:`exp_upper_bound`, ``(1 + a + a^2/2)^64`` with ``a = (l_hat - max) / (64 T)``:
  two multiply-adds and six squarings, always at least ``exp`` and within 0.3%
  of it where the mass is.
* **Rejection makes it exact.** A candidate ``v`` drawn with probability
  proportional to its weight ``w_v`` is accepted with probability
  ``exp((l_v - max - eps) / T) / w_v <= 1``, where ``l_v`` is the float32 logit
  of that one class (a K-long dot product). Accepted candidates are distributed
  exactly as ``softmax(l / T)``. Each row draws ``candidates`` proposals at once
  and keeps the first accepted one; a row whose candidates are all rejected
  (3e-5 of rows on the published oracle, ``benchmarks/oracle_sampling.py
  --profile``) is redrawn from its float32 logits, which leaves the
  distribution unchanged.
* **One fused pass for the block masses.** The two-level inverse-CDF sampler of
  :mod:`textgan_envs.sampling` needs the row maximum and the mass of each block of
  about sqrt(V) classes; ``torch.compile`` turns these into one kernel that reads
  the logits in cache and never writes probabilities. Rows go through in chunks
  of one shape (the last one padded), so it compiles once per model shape.

With ``precision="float32"`` the proposal is the float32 logits themselves (only
the weights' overshoot is rejected). Models opt in by providing
:class:`~textgan_envs.sequence_model.ProjectedSequenceModel`'s ``step_features``
and ``output_projection``; with the path switched on (:func:`set_fused_sampling`
or ``TEXTGAN_FUSED_SAMPLING=1``), :mod:`textgan_envs.sampling` uses it on CPUs
with native bfloat16 for large jobs.

Why it is off by default: ``benchmarks/oracle_sampling.py`` measured 10,000
oracle sequences in 0.73-1.12 s this way against 1.23-2.08 s for the plain path
in the same runs (2 threads, :func:`textgan_envs.allocator.retain_freed_memory`
on), while compiling the kernel costs 15-30 s per model shape the first time on
a machine (~4 s from the on-disk cache after that). It pays on long CPU runs, not on one-off draws; and
switching it on changes which samples a seed gives, so it is a setting a run
keeps, never a choice made behind the user's back.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "ProjectionSampler",
    "exp_upper_bound",
    "fused_block_size",
    "fused_sampling_enabled",
    "logit_error_bound",
    "projection_norms",
    "set_fused_sampling",
]

BF16_UNIT_ROUNDOFF = 2.0**-8
# Float32 rounding in the exact logit and the accumulation, with a wide margin.
_FLOAT32_SLACK = 1e-4
# Float32 rounding in exp_upper_bound and its argument (measured 1.5e-5 at worst), with margin.
_EXP_BOUND_SLACK = 1e-4
# Rows per compiled call: 512 x 5,000 bfloat16 logits (5 MB) stay in cache between the
# matmul that writes them and the pass that reads them; every call has the same shape.
CHUNK_ENTRIES = 512 * 5000

_enabled = os.environ.get("TEXTGAN_FUSED_SAMPLING", "0") == "1"


def fused_sampling_enabled() -> bool:
    """Whether :mod:`textgan_envs.sampling` uses this path for models that support it (on CPU)."""
    return _enabled


def set_fused_sampling(enabled: bool) -> bool:
    """Switch the fused path on or off (``TEXTGAN_FUSED_SAMPLING=1`` at start-up); returns the old value."""
    global _enabled
    old, _enabled = _enabled, bool(enabled)
    return old


def cpu_has_fast_bfloat16() -> bool:
    """True where bfloat16 matmuls run natively (avx512_bf16 or AMX); elsewhere they are emulated."""
    cpu = getattr(torch, "cpu", None)
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)


def projection_norms(weight: Tensor) -> Tensor:
    """``[max_v ||W_:v||, max_v ||bf16(W_:v) - W_:v||]`` for ``weight`` ``[K+1, V]``: what
    :func:`logit_error_bound` needs to know about the weights, computed once per sampler."""
    rounding = weight.to(torch.bfloat16).double() - weight.double()
    norms = [torch.linalg.vector_norm(w, dim=0).amax() for w in (weight.double(), rounding)]
    return torch.stack(norms).float() * (1 + 1e-6)  # rounded up past float32's rounding


def logit_error_bound(h: Tensor, weight_norms: Tensor, approx_abs_max: Tensor) -> Tensor:
    """Per-row bound ``[N]`` on ``max_v |l_v - l_hat_v|`` for bfloat16 logits ``l_hat``.

    ``h`` ``[N, K+1]`` (bias feature included), ``weight_norms`` from
    :func:`projection_norms`, ``approx_abs_max`` ``[N]`` = ``max_v |l_hat_v|``.
    With ``h_hat``, ``W_hat`` the bfloat16 roundings, ``l_hat - l`` before output
    rounding is ``h_hat . (W_hat - W)_:v + (h_hat - h) . W_:v``, so by Cauchy-Schwarz
    it is at most ``||h_hat|| max_v ||dW_:v|| + ||h_hat - h|| max_v ||W_:v||``. Both
    rounding norms are measured, not bounded by u = 2^-8: about half the worst case
    on dense features, which halves this term and lifts the acceptance rate. The
    products are exact in float32 and their K-term sum is exact to ``K 2^-24`` of
    ``sum |h_hat_i W_hat_iv|`` (the third term); rounding the sum to bfloat16 moves
    it by at most ``u |l| <= 1.01 u |l_hat|``.
    """
    unit = BF16_UNIT_ROUNDOFF
    rounded = h.to(torch.bfloat16).float()
    rounded_norm = torch.linalg.vector_norm(rounded, dim=-1)
    feature_error = torch.linalg.vector_norm(rounded - h, dim=-1)
    weight_norm, weight_error = weight_norms[0], weight_norms[1]
    products = rounded_norm * weight_error + feature_error * weight_norm
    accumulation = h.shape[-1] * 2.0**-24 * rounded_norm * (weight_norm + weight_error)
    return (products + accumulation) * (1 + 1e-4) + 1.01 * unit * approx_abs_max + _FLOAT32_SLACK


def exp_upper_bound(y: Tensor) -> Tensor:
    """A cheap upper bound on ``exp(y)`` for ``y <= 0``: ``(1 + a + a^2/2)^64``, ``a = y/64``.

    Why: the proposal's block masses need one weight per logit, and this costs
    two multiply-adds and six squarings where ``exp`` costs about twice as many
    vector instructions. For ``a`` in [-1, 0] the Taylor remainder ``a^3 e^xi / 6``
    is negative, so ``1 + a + a^2/2 >= e^a`` and the power is ``>= e^y``; below
    ``y = -64`` the clamp keeps it at ``2^-64 >= e^y``. It overshoots by 0.3% at
    ``y = -4`` and 5% at ``y = -10``, where little mass lies; the rejection step
    divides the overshoot out. ``-inf`` (padding) maps to 0.
    """
    return torch.where(y > float("-inf"), _exp_bound_of_scaled(y * (1.0 / 64.0)), 0.0)


def _exp_bound_of_scaled(a: Tensor) -> Tensor:
    """:func:`exp_upper_bound` of ``64 a``, for callers that fold the 1/64 into another product."""
    a = a.clamp(min=-1.0)
    q = 1.0 + a * (1.0 + 0.5 * a)
    for _ in range(6):
        q = q * q
    return q


def fused_block_size(num_classes: int) -> int:
    """Classes per block for the fused pass: near sqrt(V), and filling 32-wide vectors.

    A divisor of ``V`` (no padding) is preferred; among those near sqrt(V) the one
    that wastes the least of its last 32-lane vector (``V = 5,000``: 125, not 100,
    which runs a 4-lane remainder per block). Without one, sqrt(V) is rounded up
    to a multiple of 32 and the last block padded.
    """
    root = math.sqrt(num_classes)
    divisors = [d for d in range(max(2, int(root / 2)), int(root * 2) + 1) if num_classes % d == 0]
    if divisors:
        return max(divisors, key=lambda d: (d / (32 * math.ceil(d / 32)), -abs(math.log(d / root))))
    return 32 * math.ceil(root / 32)


def _propose(
    features: Tensor,
    proposal_weight: Tensor,
    class_rows: Tensor,
    weight_norms: Tensor,
    u: Tensor,
    inv_temperature: float,
    n_blocks: int,
    block: int,
    vocab_size: int,
    correct: bool,
) -> tuple[Tensor, Tensor]:
    """One class per row ``[N]`` and whether every candidate of that row was rejected ``[N]``.

    ``features`` is ``[N, K]``, ``u`` holds three uniforms per candidate ``[N, 3C]``.
    Written as one function so that ``torch.compile`` fuses it: the block masses
    become one pass over the logits, and the small per-candidate steps do not pay
    eager per-op costs. See the module docstring for why the result is exact.
    """
    n, c = u.shape[0], u.shape[1] // 3
    h = torch.cat([features, torch.ones_like(features[:, :1])], dim=1)  # bias feature: [N, K+1]
    approx = torch.mm(h.to(proposal_weight.dtype), proposal_weight).float()  # [N, V]
    row_max = approx.amax(dim=-1, keepdim=True)  # [N, 1]
    pad = n_blocks * block - vocab_size
    padded = F.pad(approx, (0, pad), value=float("-inf")) if pad else approx
    blocks = padded.view(n, n_blocks, block)
    # (l_hat - max) * (1/(64 T)) rounds to within 2^-23 of its value (the max is subtracted
    # first); padding, -inf, is zeroed only when there is some.
    scale = inv_temperature / 64.0

    def bound(logits: Tensor) -> Tensor:
        weight = _exp_bound_of_scaled((logits - row_max.unsqueeze(-1)) * scale)
        return torch.where(logits > float("-inf"), weight, 0.0) if pad else weight

    masses = bound(blocks).sum(-1)  # [N, nb]

    cdf = masses.cumsum(dim=-1)
    chosen = torch.searchsorted(cdf, u[:, :c] * cdf[:, -1:], right=True)
    chosen = chosen.clamp(max=n_blocks - 1)  # [N, C]
    block_logits = blocks.gather(1, chosen.unsqueeze(-1).expand(n, c, block))  # [N, C, blk]
    weights = bound(block_logits)
    within_cdf = weights.cumsum(dim=-1)
    within = torch.searchsorted(
        within_cdf, u[:, c : 2 * c].unsqueeze(-1) * within_cdf[..., -1:], right=True
    ).clamp(max=block - 1)  # [N, C, 1]
    token = (chosen.unsqueeze(-1) * block + within).squeeze(-1).clamp(max=vocab_size - 1)
    picked_weight = weights.gather(-1, within).squeeze(-1)  # [N, C]
    # Target over proposal: exp(l/T) / bound(exp(l_hat/T)), scaled to at most 1 by the
    # bfloat16 error bound eps and the bound's float32 rounding slack.
    if correct:
        abs_max = torch.maximum(row_max, -approx.amin(dim=-1, keepdim=True)).squeeze(1)
        eps = logit_error_bound(h, weight_norms, abs_max).unsqueeze(1)  # [N, 1]
        exact = (class_rows[token] * h.unsqueeze(1)).sum(-1)  # [N, C] float32 logits
    else:
        eps, exact = torch.zeros_like(row_max), block_logits.gather(-1, within).squeeze(-1)
    target = torch.exp((exact - row_max - eps) * inv_temperature - _EXP_BOUND_SLACK)
    accepted = (u[:, 2 * c :] * picked_weight < target) & (picked_weight > 0)
    first = accepted.to(torch.uint8).argmax(dim=1, keepdim=True)  # first accepted candidate
    return token.gather(1, first).squeeze(1), ~accepted.any(dim=1)


_compiled_propose: Callable[..., tuple[Tensor, Tensor]] | None = None


def _fused_propose(*args: object) -> tuple[Tensor, Tensor]:
    """:func:`_propose` through ``torch.compile`` (once per process); eager if compiling fails."""
    global _compiled_propose
    try:
        with warnings.catch_warnings():  # importing the compiler warns about torch.jit
            warnings.simplefilter("ignore", DeprecationWarning)
            if _compiled_propose is None:
                _compiled_propose = torch.compile(_propose, dynamic=None)
            return _compiled_propose(*args)
    except Exception as error:  # no C++ compiler, unsupported platform, ...
        warnings.warn(
            f"torch.compile of the fused sampler failed ({type(error).__name__}: {error}); "
            "using the eager version, which is slower but gives the same samples.",
            RuntimeWarning,
            stacklevel=2,
        )
        _compiled_propose = _propose
        return _propose(*args)


class ProjectionSampler:
    """Draws one class per row from ``softmax((features @ weight + bias) / temperature)``.

    ``weight`` is ``[K, V]`` and ``bias`` ``[V]`` (``None`` for none); both are
    copied, so build a new sampler after the parameters change (it is cheap).
    ``precision`` is ``"bfloat16"`` (proposal from a bfloat16 matmul, corrected by
    rejection; see the module docstring) or ``"float32"``; ``"auto"`` picks
    bfloat16 where the CPU runs it natively. ``candidates`` proposals are drawn
    per row at once; rows that reject them all are redrawn from float32 logits.
    """

    def __init__(
        self,
        weight: Tensor,
        bias: Tensor | None = None,
        precision: str = "auto",
        candidates: int = 4,
    ) -> None:
        if weight.dim() != 2:
            raise ValueError(f"weight must be [K, V], got shape {tuple(weight.shape)}")
        features, vocab = weight.shape
        if bias is not None and bias.shape != (vocab,):
            raise ValueError(f"bias must have shape [{vocab}], got {tuple(bias.shape)}")
        if precision == "auto":
            precision = "bfloat16" if cpu_has_fast_bfloat16() else "float32"
        if precision not in ("bfloat16", "float32"):
            raise ValueError(
                f"precision must be 'auto', 'bfloat16' or 'float32', got {precision!r}"
            )
        if int(candidates) != candidates or candidates < 1:
            raise ValueError(f"candidates must be a positive integer, got {candidates!r}")
        weight = weight.detach().float()
        bias = torch.zeros(vocab, device=weight.device) if bias is None else bias.detach().float()
        self.vocab_size = vocab
        self.num_features = features
        self.precision = precision
        self.candidates = int(candidates)
        self.block = fused_block_size(vocab)
        self.n_blocks = math.ceil(vocab / self.block)
        self.rows_per_call = max(64, CHUNK_ENTRIES // vocab)
        # The bias rides along as an extra input feature fixed at 1: one matmul, no bias copy.
        self.weight = torch.cat([weight, bias[None]], dim=0).contiguous()  # [K+1, V]
        self.class_rows = self.weight.t().contiguous()  # [V, K+1]: float32 logit of one class
        self.proposal_weight = (
            self.weight.to(torch.bfloat16) if precision == "bfloat16" else self.weight
        )
        # A tensor, not floats: the compiled kernel would be specialised to their values.
        self.weight_norms = projection_norms(self.weight)

    @torch.no_grad()
    def sample(
        self, features: Tensor, generator: torch.Generator | None = None, temperature: float = 1.0
    ) -> Tensor:
        """``LongTensor[N]``: one class per row of ``features`` ``[N, K]``."""
        from textgan_envs.sampling import _check_temperature

        temperature = _check_temperature(temperature)
        if features.dim() != 2 or features.shape[1] != self.num_features:
            raise ValueError(
                f"features must be [N, {self.num_features}], got shape {tuple(features.shape)}"
            )
        features = features.float()
        n, device = features.shape[0], features.device
        u = torch.rand((n, 3 * self.candidates), generator=generator, device=device)
        out = torch.empty(n, dtype=torch.long, device=device)
        rows = self.rows_per_call
        for start in range(0, n, rows):
            out[start : start + rows] = self._sample_chunk(
                features[start : start + rows], u[start : start + rows], generator, temperature
            )
        return out

    def _sample_chunk(
        self, features: Tensor, u: Tensor, generator: torch.Generator | None, temperature: float
    ) -> Tensor:
        """Up to ``rows_per_call`` rows; a short chunk is padded so every compiled call has one shape."""
        n = features.shape[0]
        short = self.rows_per_call - n
        if short > 0:
            features = F.pad(features, (0, 0, 0, short))
            u = F.pad(u, (0, 0, 0, short), value=0.5)
        out, redraw = _fused_propose(
            features,
            self.proposal_weight,
            self.class_rows,
            self.weight_norms,
            u,
            1.0 / temperature,
            self.n_blocks,
            self.block,
            self.vocab_size,
            self.precision == "bfloat16",
        )
        out, redraw = out[:n], redraw[:n]
        if bool(redraw.any()):  # rare: sample those rows from their float32 logits
            from textgan_envs.sampling import sample_categorical_inverse_cdf

            rows = redraw.nonzero().squeeze(1)
            logits = features[rows] @ self.weight[:-1] + self.weight[-1]
            out[rows] = sample_categorical_inverse_cdf(logits, generator, temperature=temperature)
        return out

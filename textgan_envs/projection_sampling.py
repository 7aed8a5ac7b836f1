"""Exact sampling from ``softmax((h @ W + b) / temperature)`` without float32 logits on CPU.

Why: sampling from the SeqGAN oracle or an LSTM generator on CPU is bound by the
output projection (``[N, K] @ [K, V]`` with K = 32 and V = 5,000 writes 5,000
logits per row) and by the softmax pass over them. This module halves the first
and fuses the second:

* **bfloat16 proposal.** The logits ``l_hat`` come from a bfloat16 matmul (twice
  the float32 rate on CPUs with avx512_bf16 or AMX). Their error has an a-priori
  bound per row from bfloat16's unit roundoff u = 2^-8:
  ``|l - l_hat| <= eps = (2u + u^2) * sum_i |h_i| max_v |W_iv|  +  1.01 u max_v |l_hat_v|``
  (input rounding of ``h`` and ``W``; products and the float32 accumulation are
  exact to 2^-24; output rounding to bfloat16).
* **Rejection makes it exact.** A candidate ``v ~ q = softmax(l_hat / T)`` is
  accepted with probability ``exp((l_v - l_hat_v - eps) / T) <= 1``, where ``l_v``
  is the float32 logit of that one class (a K-long dot product). Accepted
  candidates are distributed exactly as ``softmax(l / T)``. Each row draws
  ``candidates`` proposals at once and keeps the first accepted one; a row whose
  candidates are all rejected (about 0.3^4 of rows on the oracle) is redrawn
  from its float32 logits, which leaves the distribution unchanged.
* **One fused pass for the block masses.** The two-level inverse-CDF sampler of
  :mod:`textgan_envs.sampling` needs the row maximum and the mass of each block of
  about sqrt(V) classes; ``torch.compile`` turns these into one kernel that reads
  the logits once and never writes probabilities. Only the chosen block's
  classes are exponentiated again.

With ``precision="float32"`` the proposal is the float32 logits themselves and
every first candidate is accepted (the fused pass still pays). Models opt in by
providing :class:`~textgan_envs.sequence_model.ProjectedSequenceModel`'s
``step_features`` and ``output_projection``; with the path switched on
(:func:`set_fused_sampling` or ``TEXTGAN_FUSED_SAMPLING=1``),
:mod:`textgan_envs.sampling` uses it on CPU for large jobs.

Why it is off by default: ``benchmarks/oracle_sampling.py`` measured 10,000
oracle sequences in 1.15 s this way against 1.45 s for the plain path once
:func:`textgan_envs.allocator.retain_freed_memory` is on, while compiling the
kernel costs ~20 s per shape and dtype the first time on a machine (~2 s from
the on-disk cache after that). It pays on long CPU runs, not on one-off draws.
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
    "fused_sampling_enabled",
    "logit_error_bound",
    "set_fused_sampling",
]

BF16_UNIT_ROUNDOFF = 2.0**-8
# Float32 rounding in the exact logit and the accumulation, with a wide margin.
_FLOAT32_SLACK = 1e-4

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


def logit_error_bound(h: Tensor, column_abs_max: Tensor, approx_abs_max: Tensor) -> Tensor:
    """Per-row bound ``[N]`` on ``max_v |l_v - l_hat_v|`` for bfloat16 logits ``l_hat``.

    ``h`` ``[N, K+1]`` (bias feature included), ``column_abs_max`` ``[K+1]`` =
    ``max_v |W_iv|``, ``approx_abs_max`` ``[N]`` = ``max_v |l_hat_v|``. Rounding
    ``h`` and ``W`` to bfloat16 moves each product by at most ``(2u + u^2)|h_i W_iv|``;
    the products and their float32 sum are exact to 2^-24 (covered by the 1e-3
    factor and the slack); rounding the sum to bfloat16 moves it by at most
    ``u |l| <= 1.01 u |l_hat|``.
    """
    unit = BF16_UNIT_ROUNDOFF
    products = (2 * unit + unit * unit) * (1 + 1e-3) * (h.abs() @ column_abs_max)
    return products + 1.01 * unit * approx_abs_max + _FLOAT32_SLACK


def _propose(
    h: Tensor,
    proposal_weight: Tensor,
    class_rows: Tensor,
    column_abs_max: Tensor,
    u: Tensor,
    inv_temperature: float,
    n_blocks: int,
    block: int,
    vocab_size: int,
    correct: bool,
) -> tuple[Tensor, Tensor]:
    """Candidate classes ``[N, C]`` and whether each is accepted ``[N, C]`` (see the module docstring).

    ``h`` is ``[N, K+1]`` (features and a constant 1 for the bias), ``u`` holds
    three uniforms per candidate ``[N, 3C]``. Written as one function so that
    ``torch.compile`` fuses it: the block masses become one pass over the
    logits, and the small per-candidate steps do not pay eager per-op costs.
    """
    n, c = u.shape[0], u.shape[1] // 3
    approx = torch.mm(h.to(proposal_weight.dtype), proposal_weight).float()  # [N, V]
    row_max = approx.amax(dim=-1, keepdim=True)  # [N, 1]
    pad = n_blocks * block - vocab_size
    padded = F.pad(approx, (0, pad), value=float("-inf")) if pad else approx
    blocks = padded.view(n, n_blocks, block)
    masses = torch.exp((blocks - row_max.unsqueeze(-1)) * inv_temperature).sum(-1)  # [N, nb]

    cdf = masses.cumsum(dim=-1)
    chosen = torch.searchsorted(cdf, u[:, :c] * cdf[:, -1:], right=True)
    chosen = chosen.clamp(max=n_blocks - 1)  # [N, C]
    block_logits = blocks.gather(1, chosen.unsqueeze(-1).expand(n, c, block))  # [N, C, blk]
    weights = torch.exp((block_logits - row_max.unsqueeze(-1)) * inv_temperature)
    within_cdf = weights.cumsum(dim=-1)
    within = torch.searchsorted(
        within_cdf, u[:, c : 2 * c].unsqueeze(-1) * within_cdf[..., -1:], right=True
    ).clamp(max=block - 1)  # [N, C, 1]
    token = (chosen.unsqueeze(-1) * block + within).squeeze(-1).clamp(max=vocab_size - 1)
    on_support = weights.gather(-1, within).squeeze(-1) > 0  # False only after float round-up
    if not correct:
        return token, on_support
    abs_max = torch.maximum(row_max, -approx.amin(dim=-1, keepdim=True)).squeeze(1)
    eps = logit_error_bound(h, column_abs_max, abs_max)  # [N]
    picked_approx = block_logits.gather(-1, within).squeeze(-1)  # [N, C]
    exact = (class_rows[token] * h.unsqueeze(1)).sum(-1)  # [N, C] float32 logits
    accept_prob = torch.exp((exact - picked_approx - eps.unsqueeze(1)) * inv_temperature)
    return token, (u[:, 2 * c :] < accept_prob) & on_support


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
    bfloat16 where the CPU runs it natively.
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
        from textgan_envs.sampling import _block_size  # one block rule for both samplers

        weight = weight.detach().float()
        bias = torch.zeros(vocab, device=weight.device) if bias is None else bias.detach().float()
        self.vocab_size = vocab
        self.precision = precision
        self.candidates = int(candidates) if precision == "bfloat16" else 1
        self.block = _block_size(vocab)
        self.n_blocks = math.ceil(vocab / self.block)
        # The bias rides along as an extra input feature fixed at 1: one matmul, no bias copy.
        self.weight = torch.cat([weight, bias[None]], dim=0).contiguous()  # [K+1, V]
        self.class_rows = self.weight.t().contiguous()  # [V, K+1]: float32 logit of one class
        self.proposal_weight = (
            self.weight.to(torch.bfloat16) if precision == "bfloat16" else self.weight
        )
        self.column_abs_max = self.weight.abs().amax(dim=1)  # [K+1]
        self.num_features = features

    def _with_bias_feature(self, features: Tensor) -> Tensor:
        if features.dim() != 2 or features.shape[1] != self.num_features:
            raise ValueError(
                f"features must be [N, {self.num_features}], got shape {tuple(features.shape)}"
            )
        ones = torch.ones((features.shape[0], 1), dtype=torch.float32, device=features.device)
        return torch.cat([features.float(), ones], dim=1)  # [N, K+1]

    @torch.no_grad()
    def sample(
        self, features: Tensor, generator: torch.Generator | None = None, temperature: float = 1.0
    ) -> Tensor:
        """``LongTensor[N]``: one class per row of ``features`` ``[N, K]``."""
        from textgan_envs.sampling import _check_temperature, sample_categorical_inverse_cdf

        inv_t = 1.0 / _check_temperature(temperature)
        h = self._with_bias_feature(features)  # [N, K+1]
        n, device = h.shape[0], h.device
        if n == 0:
            return torch.empty(0, dtype=torch.long, device=device)
        u = torch.rand((n, 3 * self.candidates), generator=generator, device=device)
        token, accepted = _fused_propose(
            h,
            self.proposal_weight,
            self.class_rows,
            self.column_abs_max,
            u,
            inv_t,
            self.n_blocks,
            self.block,
            self.vocab_size,
            self.precision == "bfloat16",
        )
        first = accepted.to(torch.uint8).argmax(dim=1, keepdim=True)  # first accepted candidate
        out = token.gather(1, first).squeeze(1)
        redraw = ~accepted.any(dim=1)
        if bool(redraw.any()):  # rare: sample those rows from their float32 logits
            rows = redraw.nonzero().squeeze(1)
            logits = h[rows] @ self.weight
            out[rows] = sample_categorical_inverse_cdf(logits, generator, temperature=temperature)
        return out

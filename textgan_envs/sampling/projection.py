"""Exact sampling from ``softmax((h @ W + b) / temperature)`` on CPU, projecting as it samples.

Why: sampling from the SeqGAN oracle or an LSTM generator on CPU is bound by the
output projection (``[N, K] @ [K, V]`` with K = 32 and V = 5,000: 5,000 logits
per row) and by the pass that turns logits into block masses. The C kernel of
:mod:`textgan_envs.native_sampling` does both for 8 rows at a time in a buffer
that stays in cache, so no ``[N, V]`` logits tensor is ever written, and on CPUs
with native bfloat16 (avx512_bf16) it computes the logits with bfloat16 dot
products, at twice the float32 rate:

* **bfloat16 proposal.** The logits ``l_hat`` are float32 sums of exact products
  of the bfloat16 roundings of ``h`` and ``W``. Their error has a bound per row
  from the measured rounding (:func:`logit_error_bound`):
  ``|l - l_hat| <= eps = ||h_hat|| max_v ||dW_v|| + ||h_hat - h|| max_v ||W_v||``
  plus the float32 accumulation (Cauchy-Schwarz on the input rounding). Where
  the build has no bfloat16 dot product, a bfloat16 matmul writes ``l_hat``
  first and the bound gains ``1.01 u max_v |l_hat_v|`` (u = 2^-8) for rounding
  its output.
* **Rejection makes it exact.** A candidate ``v`` drawn with probability
  proportional to ``exp(l_hat_v / T)`` (the two-level inverse CDF) is accepted
  with probability ``exp((l_v - eps - l_hat_v) / T) <= 1``, where ``l_v`` is the
  float32 logit of that one class (a K-long dot product in the kernel).
  Accepted candidates are distributed exactly as ``softmax(l / T)``. Each row
  has ``candidates`` tries; a row that uses them all up (2 in 10^5 on the
  published oracle, ``benchmarks/oracle_sampling.py --profile default``) is
  redrawn from its float32 logits, which leaves the distribution unchanged.

With ``precision="float32"`` the kernel projects in float32 and draws exactly.
The bias is added in float32 in both cases. Models opt in by providing
:class:`~textgan_envs.sequence_model.ProjectedSequenceModel`'s ``step_features``
and ``output_projection``; :func:`~textgan_envs.sampling.next_token.next_token_sampler`
then samples them through this module on CPU, unless switched off
(:func:`set_projection_sampling` or ``TEXTGAN_PROJECTION_SAMPLING=0``; then ``model.step``
and :func:`~textgan_envs.sampling.categorical.sample_categorical`). Which path and precision a
machine takes decides which samples a seed gives, never their distribution.
"""

from __future__ import annotations

import math
import os

import torch
import torch.nn.functional as F
from torch import Tensor

from textgan_envs import native_sampling
from textgan_envs.sampling.categorical import _check_temperature

__all__ = [
    "ProjectionSampler",
    "logit_error_bound",
    "projection_norms",
    "projection_sampling_enabled",
    "set_projection_sampling",
]

BF16_UNIT_ROUNDOFF = 2.0**-8
# Float32 rounding in the exact logit and the accumulation, with a wide margin.
_FLOAT32_SLACK = 1e-4


def _parse_setting(value: str | bool) -> str | bool:
    if isinstance(value, bool) or value == "auto":
        return value
    if value in ("0", "1"):
        return value == "1"
    raise ValueError(f"TEXTGAN_PROJECTION_SAMPLING must be 'auto', '0' or '1', got {value!r}")


_setting: str | bool = _parse_setting(os.environ.get("TEXTGAN_PROJECTION_SAMPLING", "auto"))


def projection_sampling_enabled() -> bool:
    """Whether :mod:`textgan_envs.sampling` samples projected models through this module.

    ``"auto"`` (the default): wherever the C kernel is available. With its vectors as wide
    as the CPU's registers, projecting in the kernel was the fastest route on an AVX2-only
    CPU too (float32; 2.3x PyTorch's own ops side by side, ``benchmarks/oracle_sampling.py``)
    and on one with bfloat16 dot products (bfloat16 + rejection).
    """
    if _setting == "auto":
        return True
    return bool(_setting)


def set_projection_sampling(enabled: bool | str) -> bool | str:
    """Switch the projection path on (``True``), off (``False``) or back to ``"auto"``
    (``TEXTGAN_PROJECTION_SAMPLING=0``/``1``/``auto`` at start-up); returns the old setting."""
    global _setting
    if not isinstance(enabled, bool) and enabled != "auto":
        raise ValueError(f"projection sampling must be True, False or 'auto', got {enabled!r}")
    old, _setting = _setting, enabled
    return old


def projection_norms(weight: Tensor) -> Tensor:
    """``[max_v ||W_:v||, max_v ||bf16(W_:v) - W_:v||]`` for ``weight`` ``[K, V]``: what
    :func:`logit_error_bound` needs to know about the weights, computed once per sampler."""
    rounding = weight.to(torch.bfloat16).double() - weight.double()
    norms = [torch.linalg.vector_norm(w, dim=0).amax() for w in (weight.double(), rounding)]
    return torch.stack(norms).float() * (1 + 1e-6)  # rounded up past float32's rounding


def logit_error_bound(h: Tensor, weight_norms: Tensor, approx_abs_max: Tensor) -> Tensor:
    """Per-row bound ``[N]`` on ``max_v |l_v - l_hat_v|`` for bfloat16 logits ``l_hat``.

    ``h`` ``[N, K]``, ``weight_norms`` from
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


class ProjectionSampler:
    """Draws one class per row from ``softmax((features @ weight + bias) / temperature)``.

    ``weight`` is ``[K, V]`` and ``bias`` ``[V]`` (``None`` for none); both are
    copied, so build a new sampler after the parameters change (it is cheap).
    ``precision`` is ``"bfloat16"`` (proposal from a bfloat16 matmul, corrected by
    rejection; see the module docstring) or ``"float32"``; ``"auto"`` picks
    bfloat16 where the kernel was built with bfloat16 dot products (avx512_bf16). ``candidates`` tries per row before
    a row is redrawn from float32 logits. CPU only; needs the C kernel
    (:func:`~textgan_envs.native_sampling.native_sampling_available`).
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
            precision = "bfloat16" if native_sampling.has_bf16_dot() else "float32"
        if precision not in ("bfloat16", "float32"):
            raise ValueError(
                f"precision must be 'auto', 'bfloat16' or 'float32', got {precision!r}"
            )
        if int(candidates) != candidates or candidates < 1:
            raise ValueError(f"candidates must be a positive integer, got {candidates!r}")
        if weight.device.type != "cpu":
            raise ValueError(f"ProjectionSampler runs on CPU, got weights on {weight.device}")
        self.vocab_size = vocab
        self.num_features = features
        self.precision = precision
        self.candidates = int(candidates)
        self.weight = weight.detach().float().contiguous()  # [K, V]
        self.bias = None if bias is None else bias.detach().float().contiguous()
        # For the kernel that projects as it samples: V padded to whole 16-lane vectors,
        # the padding's bias -inf so it is never drawn.
        vpad = 16 * math.ceil(vocab / 16)
        bias_values = torch.zeros(vocab) if self.bias is None else self.bias
        self.bias_padded = F.pad(bias_values, (0, vpad - vocab), value=float("-inf"))
        # The kernel projects as it samples, except bfloat16 on a build without a native
        # bfloat16 dot product: then a bfloat16 matmul writes the logits first.
        self.fused = precision == "float32" or native_sampling.has_bf16_dot()
        if precision == "float32":
            self.padded_weight = F.pad(self.weight, (0, vpad - vocab)).contiguous()  # [K, Vpad]
        else:
            self.proposal_weight = self.weight.to(torch.bfloat16)
            self.class_rows = self.weight.t().contiguous()  # [V, K]: the float32 logit of a class
            self.weight_norms = projection_norms(self.weight)
            # [Vpad/16, ceil(K/2), 16, 2]: per 16 classes and feature pair p, the lanes'
            # (W[2p, c], W[2p+1, c]), as one bfloat16 dot-product instruction reads them.
            pairs = math.ceil(features / 2)
            padded = F.pad(self.weight, (0, vpad - vocab, 0, 2 * pairs - features))
            self.packed_weight = (
                padded.to(torch.bfloat16).view(pairs, 2, vpad // 16, 16).permute(2, 0, 3, 1)
            ).contiguous()
        self._logits = torch.empty(0)  # reused across calls: no [N, V] allocation per step

    def _logits_buffer(self, rows: int) -> Tensor:
        if self._logits.shape != (rows, self.vocab_size):
            self._logits = torch.empty((rows, self.vocab_size), dtype=torch.bfloat16)
        return self._logits

    @torch.no_grad()
    def sample(
        self, features: Tensor, generator: torch.Generator | None = None, temperature: float = 1.0
    ) -> Tensor:
        """``LongTensor[N]``: one class per row of ``features`` ``[N, K]``."""
        inv_temperature = 1.0 / _check_temperature(temperature)
        if features.dim() != 2 or features.shape[1] != self.num_features:
            raise ValueError(
                f"features must be [N, {self.num_features}], got shape {tuple(features.shape)}"
            )
        features = features.detach().float().contiguous()
        draw = self._sample_fused if self.fused else self._sample_from_bf16_matmul
        tokens, redraw = draw(features, generator, inv_temperature)
        if bool(redraw.any()):  # rare: draw those rows from their float32 logits
            rows = redraw.nonzero().squeeze(1)
            logits = features[rows] @ self.weight
            u = torch.rand(rows.shape[0], generator=generator)
            tokens[rows] = native_sampling.sample_rows(logits, u, self.bias, inv_temperature)
        return tokens

    def _sample_from_bf16_matmul(
        self, features: Tensor, generator: torch.Generator | None, inv_temperature: float
    ) -> tuple[Tensor, Tensor]:
        """bfloat16 logits from a matmul, then the kernel's rejection draw from them."""
        n = features.shape[0]
        approx = self._logits_buffer(n)
        torch.mm(features.to(torch.bfloat16), self.proposal_weight, out=approx)
        # The bound without its output-rounding term, which the kernel adds from max |l_hat|.
        eps_base = logit_error_bound(features, self.weight_norms, torch.zeros(n))
        u = torch.rand((n, 2 * self.candidates), generator=generator)
        return native_sampling.sample_rows_bf16(
            approx,
            features,
            self.class_rows,
            self.bias,
            eps_base,
            1.01 * BF16_UNIT_ROUNDOFF,
            u,
            inv_temperature,
        )

    def _sample_fused(
        self, features: Tensor, generator: torch.Generator | None, inv_temperature: float
    ) -> tuple[Tensor, Tensor]:
        """The kernel projects and samples in one go; the logits stay in its cache."""
        n = features.shape[0]
        if self.precision == "float32":
            u = torch.rand(n, generator=generator)
            return native_sampling.sample_projected(
                features, self.padded_weight, self.bias_padded, self.vocab_size, inv_temperature, u
            )
        pairs = math.ceil(self.num_features / 2)
        rounded = F.pad(features, (0, 2 * pairs - self.num_features)).to(torch.bfloat16)
        # Sums of exact bfloat16 products in float32, with no output rounding.
        eps_base = logit_error_bound(features, self.weight_norms, torch.zeros(n))
        u = torch.rand((n, 2 * self.candidates), generator=generator)
        return native_sampling.sample_projected(
            features,
            self.packed_weight,
            self.bias_padded,
            self.vocab_size,
            inv_temperature,
            u,
            pairs=rounded.contiguous().view(torch.int32),
            class_rows=self.class_rows,
            eps_base=eps_base,
        )

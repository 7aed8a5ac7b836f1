"""SeqGAN's bank of 1-D convolutions with ReLU and max-over-time pooling, as one fused op.

Why: the plain formulation (one ``nn.Conv1d`` per filter width, ``relu``, ``amax``) spends
most of a training step in the backward pass of twelve narrow convolutions and in
``amax``'s tie-splitting backward over ``[B, maps, positions]`` tensors. Here each width is
one GEMM over its unfolded windows (``[B * positions, width * E] x [width * E, maps]``), the
pooling keeps its argmax, and the backward scatters the pooled gradient to those positions
only and runs two GEMMs per width (benchmarks/discriminator_training.py measures it).

The function is the plain one: ``relu(max_t conv(x)) = max_t relu(conv(x))``, and where every
position of a map is <= 0 both formulations pass no gradient (ReLU's derivative is 0 there).
Only where two positions tie exactly for a positive maximum do the gradients differ (the plain
``amax`` splits it, this op gives it to the first), which random float data never hits.
The parameters are the ``nn.Conv1d`` modules' own, so state dicts and optimisers are unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def pad_to_widest(x: Tensor, widest: int) -> Tensor:
    """``x [B, T, E]`` zero-padded at the end of time to at least ``widest`` positions."""
    if x.shape[1] < widest:
        x = F.pad(x, (0, 0, 0, widest - x.shape[1]))
    return x.contiguous()


def flat_filters(conv: nn.Conv1d) -> Tensor:
    """A ``Conv1d`` weight ``[maps, E, width]`` as the GEMM operand ``[maps, width * E]``."""
    weight = conv.weight
    return weight.permute(0, 2, 1).reshape(weight.shape[0], -1)


def windows(x: Tensor, width: int) -> Tensor:
    """Every window of ``width`` positions of ``x [B, T, E]``, as rows ``[B * (T - width + 1), width * E]``.

    A window is a contiguous run of ``x``'s memory, so the copy is a row-wise memcpy.
    """
    batch, length, emb = x.shape
    positions = length - width + 1
    view = x.as_strided((batch, positions, width * emb), (length * emb, emb, 1))
    return view.reshape(batch * positions, width * emb)


def _width_scores(x: Tensor, width: int, filters: Tensor, bias: Tensor) -> tuple[Tensor, Tensor]:
    """Pre-activation conv outputs ``[B, positions, maps]`` of one width, and its windows."""
    rows = windows(x, width)
    scores = torch.addmm(bias, rows, filters.t())
    return scores.view(x.shape[0], -1, filters.shape[0]), rows


def pooled_no_grad(x: Tensor, widths: Sequence[int], filters: Sequence[Tensor], biases: Sequence[Tensor]) -> Tensor:
    """Forward only (scoring): ``relu(max_t conv_w(x))`` for every width, ``[B, sum(maps)]``."""
    pooled = [
        _width_scores(x, w, f, b)[0].amax(dim=1)
        for w, f, b in zip(widths, filters, biases, strict=True)
    ]
    return torch.cat(pooled, dim=1).clamp_min_(0.0)


def _fold_windows(grad_rows: Tensor, grad_x: Tensor, width: int) -> None:
    """Add window gradients ``[B * positions, width * E]`` back onto ``grad_x [B, T, E]``."""
    batch, _, emb = grad_x.shape
    per_tap = grad_rows.view(batch, -1, width, emb)
    positions = per_tap.shape[1]
    for tap in range(width):
        grad_x[:, tap : tap + positions] += per_tap[:, :, tap]


class ConvBankMaxPool(torch.autograd.Function):
    """``apply(x [B, T, E], widths, *filters, *biases) -> relu(max_t conv(x)) [B, sum(maps)]``.

    ``filters`` are :func:`flat_filters` ``[maps, width * E]``; ``T`` must be >= every width.
    """

    @staticmethod
    def forward(ctx, x: Tensor, widths: tuple[int, ...], *params: Tensor) -> Tensor:  # type: ignore[override]
        filters, biases = params[: len(widths)], params[len(widths) :]
        maxima, argmax, rows = [], [], []
        for w, f, b in zip(widths, filters, biases, strict=True):
            scores, windows_w = _width_scores(x, w, f, b)
            value, index = scores.max(dim=1)
            maxima.append(value)
            argmax.append(index)
            rows.append(windows_w)
        pooled = torch.cat(maxima, dim=1).clamp_min_(0.0)
        ctx.widths = widths
        ctx.x_shape = x.shape
        ctx.save_for_backward(pooled, *filters, *argmax, *rows)
        return pooled

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        widths, k = ctx.widths, len(ctx.widths)
        pooled, *saved = ctx.saved_tensors
        filters, argmax, rows = saved[:k], saved[k : 2 * k], saved[2 * k :]
        grad = grad * (pooled > 0)  # ReLU: no gradient where the map's maximum is <= 0
        grad_x = grad.new_zeros(ctx.x_shape)
        grad_filters, grad_biases = [], []
        start = 0
        for w, f, index, windows_w in zip(widths, filters, argmax, rows, strict=True):
            maps = f.shape[0]
            g = grad[:, start : start + maps]
            start += maps
            positions = windows_w.shape[0] // grad.shape[0]
            # The pooled gradient goes to each map's argmax position only.
            dense = g.new_zeros(grad.shape[0], positions, maps)
            dense.scatter_(1, index.unsqueeze(1), g.unsqueeze(1))
            dense = dense.view(-1, maps)
            grad_filters.append(dense.t() @ windows_w)
            grad_biases.append(g.sum(0))
            if ctx.needs_input_grad[0]:
                _fold_windows(dense @ f, grad_x, w)
        return (grad_x if ctx.needs_input_grad[0] else None, None, *grad_filters, *grad_biases)


def conv_bank_max_pool(x: Tensor, convs: Sequence[nn.Conv1d]) -> Tensor:
    """``cat_w relu(max_t conv_w(x))`` for ``x [B, T, E]`` (time-major, not Conv1d's ``[B, E, T]``).

    Pads ``x`` to the widest filter. Uses :class:`ConvBankMaxPool` when gradients are needed
    and the forward-only path otherwise; under CPU/CUDA autocast with gradients it falls back
    to the plain formulation (the fused backward is written for one dtype).
    """
    widths = tuple(int(c.kernel_size[0]) for c in convs)
    x = pad_to_widest(x, max(widths))
    filters = [flat_filters(c) for c in convs]
    biases = [c.bias for c in convs]
    if not torch.is_grad_enabled() or not (
        x.requires_grad or any(p.requires_grad for c in convs for p in c.parameters())
    ):
        return pooled_no_grad(x, widths, filters, biases)
    if torch.is_autocast_enabled(x.device.type):
        return plain_conv_bank_max_pool(x, convs)
    return ConvBankMaxPool.apply(x, widths, *filters, *biases)


def plain_conv_bank_max_pool(x: Tensor, convs: Sequence[nn.Conv1d]) -> Tensor:
    """The reference formulation: one ``Conv1d`` per width, ReLU, ``amax`` over time."""
    widest = max(int(c.kernel_size[0]) for c in convs)
    x = pad_to_widest(x, widest).transpose(1, 2)  # [B, E, T]
    return torch.cat([F.relu(conv(x)).amax(dim=2) for conv in convs], dim=1)

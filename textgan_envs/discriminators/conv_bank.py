"""SeqGAN's bank of 1-D convolutions with ReLU and max-over-time pooling, as one fused op.

Why: the plain formulation (one ``nn.Conv1d`` per filter width, ``relu``, ``amax``) spends
most of a training step in the backward pass of twelve narrow convolutions and in
``amax``'s tie-splitting backward over ``[B, maps, positions]`` tensors. Here each width is
one GEMM over its unfolded windows (``[B * positions, width * E] x [width * E, maps]``) and the
pooling keeps its argmax (``max_pool1d`` with indices). After the pooling each (sequence, map)
sends its gradient to one window, so the backward adds only those windows: through the C
kernel of :mod:`textgan_envs.discriminators.native` on CPU (about a tenth of the dense
flops at T=20), else (no compiler, GPU, other dtypes) by scattering the pooled gradient to
its argmax positions and two GEMMs per width. ``benchmarks/discriminator_training.py``
measures it against the plain loop.

The function is the plain one: ``relu(max_t conv(x)) = max_t relu(conv(x))``, and where every
position of a map is <= 0 both formulations pass no gradient (ReLU's derivative is 0 there).
Only where two positions tie exactly for a positive maximum do the gradients differ (the plain
``amax`` splits it, this op gives it to the first), which random float data never hits.
The parameters are the ``nn.Conv1d`` modules' own, so state dicts and optimisers are unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from textgan_envs.discriminators.cpu_gemm import onednn_linear, uses_onednn


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


def _width_scores(
    x: Tensor, width: int, filters: Tensor, bias: Tensor, onednn: bool = False
) -> tuple[Tensor, Tensor]:
    """Pre-activation conv outputs ``[B, positions, maps]`` of one width, and its windows
    (the GEMM by oneDNN if ``onednn``, else PyTorch's ``addmm``)."""
    rows = windows(x, width)
    scores = onednn_linear(rows, filters, bias) if onednn else torch.addmm(bias, rows, filters.t())
    return scores.view(x.shape[0], -1, filters.shape[0]), rows


def pooled_no_grad(
    x: Tensor, widths: Sequence[int], filters: Sequence[Tensor], biases: Sequence[Tensor]
) -> Tensor:
    """Forward only (scoring): ``relu(max_t conv_w(x))`` for every width, ``[B, sum(maps)]``."""
    onednn = uses_onednn(x)
    pooled = [
        _width_scores(x, w, f, b, onednn)[0].amax(dim=1)
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


@lru_cache(maxsize=16)
def _filter_table(
    widths: tuple[int, ...], maps: tuple[int, ...], emb: int
) -> tuple[Tensor, Tensor]:
    """Per filter: its width and where its packed row starts (int64 ``[sum(maps)]`` each)."""
    width = torch.tensor([w for w, n in zip(widths, maps, strict=True) for _ in range(n)])
    offset = torch.zeros_like(width)
    offset[1:] = (width * emb).cumsum(0)[:-1]
    return width, offset


def _pack(weights: tuple[Tensor, ...], native: bool) -> tuple[Tensor, list[Tensor]]:
    """All ``Conv1d`` weights ``[maps, E, width]`` in one buffer, each as ``[maps, width * E]``."""
    total = sum(w.numel() for w in weights)
    packed = weights[0].new_empty(total)
    views, start = [], 0
    for weight in weights:
        maps, emb, width = weight.shape
        view = packed[start : start + weight.numel()].view(maps, width, emb)
        if native:  # a transpose loop; PyTorch's strided copy took 2 ns a float
            from textgan_envs.discriminators.native import pack_filters

            pack_filters(weight.contiguous(), view)
        else:
            view.copy_(weight.permute(0, 2, 1))
        views.append(view.view(maps, width * emb))
        start += weight.numel()
    return packed, views


def _unpack(packed: Tensor, shapes: list[torch.Size]) -> list[Tensor]:
    """A packed buffer as one ``[maps, width * E]`` view per ``Conv1d`` weight shape ``[maps, E, width]``."""
    views, start = [], 0
    for maps, emb, width in shapes:
        views.append(packed[start : start + maps * width * emb].view(maps, width * emb))
        start += maps * width * emb
    return views


def _dense_backward(
    x: Tensor,
    widths: tuple[int, ...],
    filters: list[Tensor],
    grad: Tensor,
    argmax: Tensor,
    want_x: bool,
) -> tuple[Tensor | None, Tensor]:
    """The PyTorch backward: per width, the pooled gradient scattered to its argmax positions
    and two GEMMs over all positions (any device, any float dtype)."""
    grad_x = torch.zeros_like(x) if want_x else None
    grad_filters, start = [], 0
    for w, f in zip(widths, filters, strict=True):
        maps = f.shape[0]
        rows = windows(x, w)
        g = grad[:, start : start + maps]
        index = argmax[:, start : start + maps]
        start += maps
        dense = g.new_zeros(x.shape[0], rows.shape[0] // x.shape[0], maps)
        dense.scatter_(1, index.unsqueeze(1), g.unsqueeze(1))
        dense = dense.view(-1, maps)
        grad_filters.append((dense.t() @ rows).reshape(-1))
        if grad_x is not None:
            _fold_windows(dense @ f, grad_x, w)
    return grad_x, torch.cat(grad_filters)


def _use_kernel(x: Tensor) -> bool:
    if x.device.type != "cpu" or x.dtype != torch.float32:
        return False
    from textgan_envs.discriminators.native import native_conv_bank_available

    return native_conv_bank_available()


def _pool_widths(
    x: Tensor,
    widths: tuple[int, ...],
    filters: list[Tensor],
    biases: tuple[Tensor, ...],
    native: bool,
) -> tuple[Tensor, Tensor]:
    """``relu(max_t conv_w(x))`` ``[B, sum(maps)]`` and its argmax positions (int64).

    The GEMMs run in ``x``'s dtype, float32 ones through oneDNN where
    :func:`~textgan_envs.discriminators.cpu_gemm.uses_onednn`. ``native`` (float32 or bfloat16
    CPU GEMMs; the maxima come back as float32, bfloat16 ones widened exactly): the C pooling
    writes both straight into their columns, and every width's windows (and, through PyTorch's
    ``addmm``, scores) reuse one buffer each (so they stay in cache instead of streaming 14 MB
    of fresh memory a step at B=64). Else ``max_pool1d``
    with indices per width.
    """
    if not native:
        maxima, argmax = [], []
        for w, f, b in zip(widths, filters, biases, strict=True):
            scores = _width_scores(x, w, f, b, uses_onednn(x))[0]  # [B, positions, maps]
            value, index = F.max_pool1d(
                scores.transpose(1, 2), scores.shape[1], return_indices=True
            )
            maxima.append(value.squeeze(2))
            argmax.append(index.squeeze(2))
        return torch.cat(maxima, dim=1).clamp_min_(0.0), torch.cat(argmax, dim=1)
    from textgan_envs.discriminators.native import pool_scores

    batch, length, emb = x.shape
    onednn = uses_onednn(x)
    sizes = [(length - w + 1, w * emb, f.shape[0]) for w, f in zip(widths, filters, strict=True)]
    rows_buffer = x.new_empty(max(batch * p * k for p, k, _ in sizes))
    scores_buffer = None if onednn else x.new_empty(max(batch * p * n for p, _, n in sizes))
    total = sum(n for _, _, n in sizes)
    pooled = torch.empty(batch, total, device=x.device)
    argmax = torch.empty(batch, total, dtype=torch.int64, device=x.device)
    col = 0
    for (positions, cols, maps), f, b in zip(sizes, filters, biases, strict=True):
        view = x.as_strided((batch, positions, cols), (length * emb, emb, 1))
        rows = rows_buffer[: batch * positions * cols].view(batch, positions, cols)
        rows.copy_(view)
        if onednn:  # no out= in oneDNN's op; the allocator hands back last width's block
            scores = onednn_linear(rows.view(-1, cols), f, b)
        else:
            scores = scores_buffer[: batch * positions * maps].view(batch * positions, maps)
            torch.addmm(b, rows.view(-1, cols), f.t(), out=scores)
        pool_scores(scores.view(batch, positions, maps), pooled, argmax, col)
        col += maps
    return pooled, argmax


class ConvBankMaxPool(torch.autograd.Function):
    """``apply(x [B, T, E], widths, gemm_dtype, *weights, *biases) -> relu(max_t conv(x)) [B, sum(maps)]``.

    ``weights`` are the ``Conv1d`` weights ``[maps, E, width]``; ``T`` must be >= every width.
    ``gemm_dtype`` is the forward GEMMs' dtype: ``x``'s, or ``torch.bfloat16`` (inputs and
    filters rounded to it; the pooled maxima come back in ``x``'s dtype).
    The backward sends each pooled gradient to its argmax window only, in ``x``'s dtype:
    through the C kernel of :mod:`textgan_envs.discriminators.native` on CPU where it builds,
    else two GEMMs per width.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx, x: Tensor, widths: tuple[int, ...], gemm_dtype: torch.dtype, *params: Tensor
    ) -> Tensor:
        weights, biases = params[: len(widths)], params[len(widths) :]
        ctx.native = _use_kernel(x) and all(w.dtype == torch.float32 for w in weights)
        packed, filters = _pack(weights, ctx.native)
        if gemm_dtype != x.dtype:  # one cast of the packed filters; the backward keeps x's dtype
            pooled, argmax = _pool_widths(
                x.to(gemm_dtype),
                widths,
                _unpack(packed.to(gemm_dtype), [w.shape for w in weights]),
                tuple(b.to(gemm_dtype) for b in biases),
                ctx.native,
            )
            pooled = pooled.to(x.dtype)
        else:
            pooled, argmax = _pool_widths(x, widths, filters, biases, ctx.native)
        ctx.widths = widths
        ctx.shapes = [w.shape for w in weights]
        ctx.save_for_backward(x, packed, pooled, argmax)
        return pooled

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        x, packed, pooled, argmax = ctx.saved_tensors
        widths, want_x = ctx.widths, ctx.needs_input_grad[0]
        grad = (grad * (pooled > 0)).contiguous()  # ReLU: none where a map's maximum is <= 0
        shapes = ctx.shapes
        maps = tuple(shape[0] for shape in shapes)
        if ctx.native:
            from textgan_envs.discriminators.native import conv_bank_backward

            width, offset = _filter_table(widths, maps, x.shape[2])
            grad_x, grad_packed = conv_bank_backward(
                x, width, offset, packed, grad, argmax.contiguous(), want_x
            )
            grad_weights = [  # the kernel writes them in Conv1d's layout
                g.view(s) for g, s in zip(_unpack(grad_packed, shapes), shapes, strict=True)
            ]
        else:
            filters = _unpack(packed, shapes)
            grad_x, grad_packed = _dense_backward(x, widths, filters, grad, argmax, want_x)
            grad_weights = [  # [maps, width * E] -> the Conv1d layout [maps, E, width]
                g.view(s[0], s[2], s[1]).permute(0, 2, 1)
                for g, s in zip(_unpack(grad_packed, shapes), shapes, strict=True)
            ]
        grad_biases = grad.sum(0).split(maps)
        return (grad_x, None, None, *grad_weights, *grad_biases)


def conv_bank_max_pool(
    x: Tensor, convs: Sequence[nn.Conv1d], gemm_dtype: torch.dtype | None = None
) -> Tensor:
    """``cat_w relu(max_t conv_w(x))`` for ``x [B, T, E]`` (time-major, not Conv1d's ``[B, E, T]``).

    Pads ``x`` to the widest filter. Uses :class:`ConvBankMaxPool` when gradients are needed
    (its forward GEMMs in ``gemm_dtype``, default ``x``'s) and the forward-only path in
    ``x``'s dtype otherwise; under CPU/CUDA autocast with gradients it falls back to the plain
    formulation (the fused backward is written for one dtype).
    """
    widths = tuple(int(c.kernel_size[0]) for c in convs)
    x = pad_to_widest(x, max(widths))
    biases = [c.bias for c in convs]
    if not torch.is_grad_enabled() or not (
        x.requires_grad or any(p.requires_grad for c in convs for p in c.parameters())
    ):
        return pooled_no_grad(x, widths, [flat_filters(c) for c in convs], biases)
    if torch.is_autocast_enabled(x.device.type):
        return plain_conv_bank_max_pool(x, convs)
    gemm_dtype = x.dtype if gemm_dtype is None else gemm_dtype
    return ConvBankMaxPool.apply(x, widths, gemm_dtype, *(c.weight for c in convs), *biases)


def plain_conv_bank_max_pool(x: Tensor, convs: Sequence[nn.Conv1d]) -> Tensor:
    """The reference formulation: one ``Conv1d`` per width, ReLU, ``amax`` over time."""
    widest = max(int(c.kernel_size[0]) for c in convs)
    x = pad_to_widest(x, widest).transpose(1, 2)  # [B, E, T]
    return torch.cat([F.relu(conv(x)).amax(dim=2) for conv in convs], dim=1)

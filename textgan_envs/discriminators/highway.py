"""SeqGAN's highway layer with a hand-written backward: the same function, a cheaper GEMM layout.

Why: at SeqGAN's size (1,720 features) the layer's six GEMMs were half of a discriminator
training step on CPU, and in a training loop their weights come from DRAM (Adam's pass over
7M parameters has just evicted them). With a batch of 64 rows, ``x W^T`` streams the weight
as MKL's B operand; ``(W x^T)^T`` streams it as the A operand, which measured ~25% faster per
GEMM inside the training step on an AVX2 EPYC (3.5 ms against 4.8 ms). So the backward
computes the input gradient as ``(W^T g^T)^T``. (Both weight gradients from one GEMM into
one buffer measured no faster, cold or warm, than the two GEMMs autograd runs.)

In bfloat16 the other layout wins: ``g W``, the weight as a row-major B operand, measured
about 0.1 ms a GEMM faster than ``W^T`` as a transposed A operand on an avx512_bf16 EPYC
(1.2 against 1.3 ms; 0.4 ms a step inside training). A row-major copy of ``W^T`` is faster
still (0.9 ms), but making it costs more than it saves: 1.9-2.5 ms a weight for PyTorch's
strided copy, 0.45 ms for a tiled C transpose (``benchmarks/highway_parts.py``).

Where float32 GEMMs go through oneDNN (:mod:`~textgan_envs.discriminators.cpu_gemm`: AMD
CPUs with AVX-512), the layouts are oneDNN's best: ``x W^T``, ``g W`` and ``g^T x``, each
transpose read in place, and the two weights run as one: :class:`Highway` keeps them (and
the biases) as the two halves of one tensor (:func:`stacked_view`), so the six GEMMs become
three twice as wide (the gate and the transform from one ``x [W_t; W_g]^T``, the input
gradient from one ``[g_t, g_g] [W_t; W_g]``, both weight gradients from one product): about
1 ms (2-3%) of a training step on an AMD EPYC with AVX-512 (``benchmarks/highway_stacking.py``,
BENCHMARKS.md). Through MKL, one product for both
weight gradients had measured no faster, so the PyTorch route keeps the six.

The forward is ``nn.Linear``'s (the same values as :class:`Highway`'s; computed transposed,
a chunked forward on one thread missed the whole one by just over the 1e-6 + 1e-5 * |y|
that the chunking test allows), and in the backward the two products are plain GEMMs
added afterwards (an ``addmm`` with a ``beta=1`` accumulator rounded differently for
different batch sizes).
The parameters are the :class:`~textgan_envs.discriminators.cnn.Highway` module's own; in
bfloat16 on the CPU the GEMMs read the weights' bfloat16 shadows instead
(:mod:`~textgan_envs.discriminators.bf16_weights`), whose gradients stay bfloat16.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from textgan_envs.discriminators.bf16_weights import shadow_of, shadows_apply
from textgan_envs.discriminators.cpu_gemm import onednn_linear, uses_onednn

#: Rows are padded to a multiple of this before the transposed GEMM, so a row's value does not
#: depend on how many rows share the call (MKL blocks the N dimension; chunked scoring stays exact).
ROW_BLOCK = 16


def _padded_transpose(x: Tensor) -> Tensor:
    """``x [B, F]`` as ``[F, B']`` with ``B'`` the next multiple of :data:`ROW_BLOCK`, zero-filled."""
    rows = x.shape[0]
    xt = x.new_zeros(x.shape[1], -(-rows // ROW_BLOCK) * ROW_BLOCK)
    xt[:, :rows] = x.t()
    return xt


def stacked_view(first: Tensor, second: Tensor) -> Tensor | None:
    """``torch.cat([first, second])`` without a copy, where ``second`` follows ``first`` in
    one storage (as :class:`Highway` keeps its two layers' weights and biases), else ``None``
    (e.g. after ``.to(other_device)`` or ``copy.deepcopy``, which give each its own)."""
    adjacent = (
        first.is_contiguous()
        and second.is_contiguous()
        and first.dtype == second.dtype
        and first.shape[1:] == second.shape[1:]
        and first.untyped_storage().data_ptr() == second.untyped_storage().data_ptr()
        and second.storage_offset() == first.storage_offset() + first.numel()
    )
    if not adjacent:
        return None
    return first.as_strided((first.shape[0] + second.shape[0], *first.shape[1:]), first.stride())


def _onednn_gate_and_transform(
    x: Tensor, wt: Tensor, bt: Tensor, wg: Tensor, bg: Tensor
) -> tuple[Tensor, Tensor]:
    """``sigmoid(x W_g^T + b_g)`` and ``relu(x W_t^T + b_t)`` by oneDNN, in nn.Linear's layout
    (oneDNN reads it in place); one GEMM for both where the weights are stacked."""
    weights, biases = stacked_view(wt, wg), stacked_view(bt, bg)
    if weights is not None and biases is not None:
        both = onednn_linear(x, weights, biases)
        size = wt.shape[0]
        return torch.sigmoid(both[:, size:]), both[:, :size].clamp_min(0)
    t = torch.sigmoid(onednn_linear(x, wg, bg))
    return t, onednn_linear(x, wt, bt).clamp_min_(0)


class HighwayStep(torch.autograd.Function):
    """``apply(x, W_t, b_t, W_g, b_g, gemm_dtype) = t * relu(x W_t^T + b_t) + (1 - t) * x``,
    ``t = sigmoid(x W_g^T + b_g)``.

    ``gemm_dtype``: the six GEMMs' dtype, ``x``'s or ``torch.bfloat16`` (weights, inputs and
    the GEMMs' gradient operands rounded to it; the gates, the residual and every gradient
    returned stay in ``x``'s dtype, except the weights', which take each weight's dtype:
    bfloat16 for a bfloat16 shadow).
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx, x: Tensor, wt: Tensor, bt: Tensor, wg: Tensor, bg: Tensor, gemm_dtype: torch.dtype
    ) -> Tensor:
        low, rows = gemm_dtype, x.shape[0]
        ctx.onednn = low == x.dtype and uses_onednn(x)
        ctx.weight_dtypes = wt.dtype, wg.dtype
        if ctx.onednn:
            t, r = _onednn_gate_and_transform(x, wt, bt, wg, bg)
            ctx.save_for_backward(x, x, wt, wg, t, r)
            return t * r + (1.0 - t) * x
        xt = _padded_transpose(x.to(low))  # W x^T: the weight as the A operand, as in the backward
        wt_low, wg_low = wt.to(low), wg.to(low)  # no copies when low is x's dtype
        gate = torch.addmm(bg.to(low).unsqueeze(1), wg_low, xt)[:, :rows].t()
        t = torch.sigmoid(gate.to(x.dtype))
        r = torch.addmm(bt.to(low).unsqueeze(1), wt_low, xt)[:, :rows].t().to(x.dtype).clamp_min(0)
        ctx.save_for_backward(x, xt, wt_low, wg_low, t, r)
        # Row-major like nn.Linear's output (t and r are transposed views): dropout draws its
        # mask in memory order, so a column-major result would get a different mask.
        return (t * r + (1.0 - t) * x).contiguous()

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        x, xt, wt, wg, t, r = ctx.saved_tensors
        grad_a = grad * t * (r > 0)  # through relu(a)
        grad_s = grad * (r - x) * t * (1.0 - t)  # through the gate's sigmoid
        weights = stacked_view(wt, wg) if ctx.onednn else None
        if weights is not None:  # the three GEMMs of the stacked weights
            size = wt.shape[0]
            grad_both = torch.cat([grad_a, grad_s], dim=1)
            grad_x = None
            if ctx.needs_input_grad[0]:
                grad_x = onednn_linear(grad_both, weights.t())
                grad_x += grad * (1.0 - t)
            grad_w = onednn_linear(grad_both.t(), x.t())
            grad_b = grad_both.sum(0)
            return grad_x, grad_w[:size], grad_b[:size], grad_w[size:], grad_b[size:], None
        if ctx.onednn:  # g W and g^T x with the transposes read in place
            grad_x = None
            if ctx.needs_input_grad[0]:
                grad_x = onednn_linear(grad_a, wt.t())
                grad_x += onednn_linear(grad_s, wg.t())
                grad_x += grad * (1.0 - t)
            grad_wt = onednn_linear(grad_a.t(), x.t())
            grad_wg = onednn_linear(grad_s.t(), x.t())
            return grad_x, grad_wt, grad_a.sum(0), grad_wg, grad_s.sum(0), None
        low, rows = wt.dtype, x.shape[0]
        grad_a_low, grad_s_low = grad_a.to(low), grad_s.to(low)
        grad_x = None
        if ctx.needs_input_grad[0] and low == x.dtype:  # W^T g^T: the weight as the A operand
            product = wt.t() @ grad_a.t() + wg.t() @ grad_s.t()  # [size, B]
            grad_x = product.t() + grad * (1.0 - t)
        elif ctx.needs_input_grad[0]:  # bfloat16: g W, each product widened before the sum
            product = (grad_a_low @ wt).to(x.dtype)
            product += (grad_s_low @ wg).to(x.dtype)
            grad_x = product + grad * (1.0 - t)
        x_low = x if low == x.dtype else xt[:, :rows].t()
        grad_wt = (grad_a_low.t() @ x_low).to(ctx.weight_dtypes[0])
        grad_wg = (grad_s_low.t() @ x_low).to(ctx.weight_dtypes[1])
        return grad_x, grad_wt, grad_a.sum(0), grad_wg, grad_s.sum(0), None


def highway_step(
    layer: nn.Module, x: Tensor, gemm_dtype: torch.dtype | None = None, shadows: bool = True
) -> Tensor:
    """``layer(x)`` for a :class:`~textgan_envs.discriminators.cnn.Highway`: through
    :class:`HighwayStep` when gradients are needed (outside autocast; its GEMMs in
    ``gemm_dtype``, default ``x``'s, reading bfloat16 shadows if ``shadows`` and
    :func:`shadows_apply`), else its own forward in ``x``'s dtype (through oneDNN where
    :func:`~textgan_envs.discriminators.cpu_gemm.uses_onednn`)."""
    needs_grad = torch.is_grad_enabled() and (
        x.requires_grad or any(p.requires_grad for p in layer.parameters())
    )
    if not needs_grad and uses_onednn(x):  # scoring, through the training step's library
        tr, gate = layer.transform, layer.gate
        t, r = _onednn_gate_and_transform(x, tr.weight, tr.bias, gate.weight, gate.bias)
        return t * r + (1.0 - t) * x
    if not needs_grad or torch.is_autocast_enabled(x.device.type):
        return layer(x)
    tr, gate = layer.transform, layer.gate
    gemm_dtype = x.dtype if gemm_dtype is None else gemm_dtype
    wt, wg = tr.weight, gate.weight
    if shadows and shadows_apply(wt, gemm_dtype) and shadows_apply(wg, gemm_dtype):
        wt, wg = shadow_of(wt).current(wt), shadow_of(wg).current(wg)
    return HighwayStep.apply(x, wt, tr.bias, wg, gate.bias, gemm_dtype)

"""SeqGAN's highway layer with a hand-written backward: the same function, a cheaper GEMM layout.

Why: at SeqGAN's size (1,720 features) the layer's six GEMMs were half of a discriminator
training step on CPU, and in a training loop their weights come from DRAM (Adam's pass over
7M parameters has just evicted them). With a batch of 64 rows, ``x W^T`` streams the weight
as MKL's B operand; ``(W x^T)^T`` streams it as the A operand, which measured ~25% faster per
GEMM inside the training step on an AVX2 EPYC (3.5 ms against 4.8 ms). So the backward
computes the input gradient as ``(W^T g^T)^T``. (Both weight gradients from one GEMM into one
buffer measured no faster, cold or warm, than the two GEMMs autograd runs.)

The forward is ``nn.Linear``'s (the same values as :class:`Highway`'s; computed transposed,
a chunked forward on one thread missed the whole one by just over the 1e-6 + 1e-5 * |y|
that the chunking test allows), and in the backward the two products are plain GEMMs
added afterwards (an ``addmm`` with a ``beta=1`` accumulator rounded differently for
different batch sizes).
The parameters are the :class:`~textgan_envs.discriminators.cnn.Highway` module's own.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

#: Rows are padded to a multiple of this before the transposed GEMM, so a row's value does not
#: depend on how many rows share the call (MKL blocks the N dimension; chunked scoring stays exact).
ROW_BLOCK = 16


def _padded_transpose(x: Tensor) -> Tensor:
    """``x [B, F]`` as ``[F, B']`` with ``B'`` the next multiple of :data:`ROW_BLOCK`, zero-filled."""
    rows = x.shape[0]
    xt = x.new_zeros(x.shape[1], -(-rows // ROW_BLOCK) * ROW_BLOCK)
    xt[:, :rows] = x.t()
    return xt


class HighwayStep(torch.autograd.Function):
    """``apply(x, W_t, b_t, W_g, b_g) = t * relu(x W_t^T + b_t) + (1 - t) * x``, ``t = sigmoid(x W_g^T + b_g)``."""

    @staticmethod
    def forward(ctx, x: Tensor, wt: Tensor, bt: Tensor, wg: Tensor, bg: Tensor) -> Tensor:  # type: ignore[override]
        xt = _padded_transpose(x)  # W x^T: the weight as the A operand, as in the backward
        t = torch.sigmoid(torch.addmm(bg.unsqueeze(1), wg, xt)[:, : x.shape[0]].t())
        r = torch.addmm(bt.unsqueeze(1), wt, xt)[:, : x.shape[0]].t().clamp_min(0.0)
        ctx.save_for_backward(x, wt, wg, t, r)
        # Row-major like nn.Linear's output (t and r are transposed views): dropout draws its
        # mask in memory order, so a column-major result would get a different mask.
        return (t * r + (1.0 - t) * x).contiguous()

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        x, wt, wg, t, r = ctx.saved_tensors
        grad_a = grad * t * (r > 0)  # through relu(a)
        grad_s = grad * (r - x) * t * (1.0 - t)  # through the gate's sigmoid
        grad_x = None
        if ctx.needs_input_grad[0]:  # W^T g^T: the weight as the A operand
            product = wt.t() @ grad_a.t() + wg.t() @ grad_s.t()  # [size, B]
            grad_x = product.t() + grad * (1.0 - t)
        return grad_x, grad_a.t() @ x, grad_a.sum(0), grad_s.t() @ x, grad_s.sum(0)


def highway_step(layer: nn.Module, x: Tensor) -> Tensor:
    """``layer(x)`` for a :class:`~textgan_envs.discriminators.cnn.Highway`: through
    :class:`HighwayStep` when gradients are needed (outside autocast), else its own forward."""
    needs_grad = torch.is_grad_enabled() and (
        x.requires_grad or any(p.requires_grad for p in layer.parameters())
    )
    if not needs_grad or torch.is_autocast_enabled(x.device.type):
        return layer(x)
    tr, gate = layer.transform, layer.gate
    return HighwayStep.apply(x, tr.weight, tr.bias, gate.weight, gate.bias)

"""bfloat16 copies ("shadows") of the highway weights that the optimiser keeps current.

Why: in bfloat16 training the highway's GEMMs read each 1720 x 1720 weight in bfloat16 and
produce its gradient in bfloat16. Rounding the float32 weight down in every forward and
widening the gradient in every backward are four passes over 3M elements a step, about
1.8 ms of a 25 ms step on an avx512_bf16 EPYC. Instead each weight keeps a bfloat16 shadow:
the GEMMs read it, autograd accumulates the bfloat16 gradient on it, and the optimiser of
:func:`~textgan_envs.discriminators.training.make_discriminator_optimizer`
(:class:`ShadowedAdam`) updates the float32 weight from that gradient and rewrites the
shadow in the same pass (``csrc/adam_bf16.c``, PyTorch's fused Adam arithmetic).

Everyone else sees PyTorch's semantics:

- a weight that no :class:`ShadowedAdam` holds gets its gradient widened into
  ``weight.grad`` as it arrives, so any optimiser, clipping or inspection works unchanged
  (at the old cost). With a :class:`ShadowedAdam`, a single backward's gradient waits on the
  shadow (:func:`shadow_gradient`; ``weight.grad`` stays ``None``) until ``step`` uses it
  up or ``zero_grad`` drops it; a second backward before the step moves both into
  ``weight.grad`` in float32, so accumulated gradients are summed as PyTorch sums them;
- a weight changed by anything else (``load_state_dict``, ``nn.init``, another optimiser)
  gets a fresh shadow at the next forward: a shadow remembers the weight's version counter
  and storage. Writes through ``weight.data`` bypass the version counter and are not seen,
  and ``Module.zero_grad`` does not reach a waiting gradient (the optimiser's does).

Shadows exist only on the CPU with the native kernels built and outside distributed
training (:func:`shadows_apply`); elsewhere the GEMMs round the float32 weights as before.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable

import torch
from torch import Tensor
from torch.utils.weak import WeakIdKeyDictionary

#: Adam settings the shadow update does not implement (their neutral values).
_NEUTRAL_SETTINGS = {
    "amsgrad": False,
    "maximize": False,
    "weight_decay": 0,
    "differentiable": False,
    "capturable": False,
}


class Bf16Shadow:
    """The bfloat16 copy of one float32 weight, with its gradient and its hand-over rule."""

    def __init__(self, weight: Tensor) -> None:
        self._weight = weakref.ref(weight)  # no strong reference: the registry is keyed by it
        self.low = weight.detach().to(torch.bfloat16).requires_grad_(weight.requires_grad)
        self._stamp = _stamp(weight)
        #: Optimisers that take the bfloat16 gradient themselves (weakly held).
        self.readers: weakref.WeakSet[torch.optim.Optimizer] = weakref.WeakSet()
        #: A backward's bfloat16 gradient waiting for a reader's step, and whether it is the
        #: zeros of ``zero_grad(set_to_none=False)`` (which the next backward replaces).
        self.pending: Tensor | None = None
        self.pending_is_zero = False
        self.low.register_post_accumulate_grad_hook(self._take_gradient)

    def current(self, weight: Tensor) -> Tensor:
        """The shadow of ``weight`` as it is now, refreshed if it changed since the last sync."""
        if self._stamp != _stamp(weight):
            with torch.no_grad():
                self.low.copy_(weight)
            self._stamp = _stamp(weight)
        if self.low.requires_grad != weight.requires_grad:
            self.low.requires_grad_(weight.requires_grad)
        return self.low

    def mark_current(self, weight: Tensor) -> None:
        """Record that ``low`` equals ``weight`` after an update that wrote both."""
        torch.autograd.graph.increment_version([weight, self.low])
        self._stamp = _stamp(weight)

    def _take_gradient(self, low: Tensor) -> None:
        """Keep a backward's gradient for a reader, or widen it into ``weight.grad``: when no
        reader holds the weight, or a gradient is already there to accumulate with."""
        weight, grad = self._weight(), low.grad
        low.grad = None  # each backward's gradient arrives alone: nothing accumulates in bfloat16
        if weight is None or grad is None:
            return
        if self.pending_is_zero:
            self.pending, self.pending_is_zero = None, False
        if len(self.readers) > 0 and weight.grad is None and self.pending is None:
            self.pending = grad
            return
        for part in (self.pending, grad):
            if part is None:
                continue
            if weight.grad is None:
                weight.grad = part.to(weight.dtype)
            else:
                weight.grad.add_(part.to(weight.dtype))
        self.pending = None


def _stamp(weight: Tensor) -> tuple[int, int, torch.device]:
    return weight._version, weight.data_ptr(), weight.device


_SHADOWS: WeakIdKeyDictionary = WeakIdKeyDictionary()


def shadows_apply(weight: Tensor, gemm_dtype: torch.dtype) -> bool:
    """Whether training GEMMs in ``gemm_dtype`` read a shadow of ``weight``: bfloat16 GEMMs
    of a contiguous float32 CPU weight, with the native kernels built, outside
    ``torch.distributed`` (DDP all-reduces ``weight.grad`` as autograd fills it)."""
    if gemm_dtype != torch.bfloat16 or weight.dtype != torch.float32:
        return False
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return False
    if weight.device.type != "cpu" or not weight.is_contiguous():
        return False
    from textgan_envs.discriminators.native import native_conv_bank_available

    return native_conv_bank_available()


def shadow_of(weight: Tensor) -> Bf16Shadow:
    """``weight``'s shadow, made on first use."""
    shadow = _SHADOWS.get(weight)
    if shadow is None:
        shadow = _SHADOWS[weight] = Bf16Shadow(weight)
    return shadow


def shadow_gradient(weight: Tensor) -> Tensor | None:
    """The bfloat16 gradient waiting on ``weight``'s shadow for a :class:`ShadowedAdam`
    (``None`` if there is none: then it is in ``weight.grad``, if anywhere)."""
    shadow = _SHADOWS.get(weight)
    return None if shadow is None else shadow.pending


class ShadowedAdam(torch.optim.Adam):
    """``torch.optim.Adam(fused=True)`` that also updates the shadowed weights from their
    shadows' bfloat16 gradients, one pass per weight that rewrites the shadow.

    The same update, state and ``state_dict`` as Adam's: shadowed weights have no
    ``weight.grad``, so Adam's own step skips them and a step post-hook updates them with
    Adam's arithmetic (``exp_avg``, ``exp_avg_sq`` and a float32 ``step`` per weight).
    """

    def __init__(self, params: Iterable[Tensor], shadowed: Iterable[Tensor], lr: float) -> None:
        super().__init__(params, lr=lr, fused=True)
        self._shadowed = list(shadowed)
        held = {id(p) for group in self.param_groups for p in group["params"]}
        for weight in self._shadowed:
            if id(weight) not in held:
                raise ValueError("ShadowedAdam: a shadowed weight is not among its parameters")
            shadow_of(weight).readers.add(self)
        self.register_step_post_hook(_update_shadowed)

    def zero_grad(self, set_to_none: bool = True) -> None:
        super().zero_grad(set_to_none)
        for weight in self._shadowed:
            shadow = shadow_of(weight)
            if set_to_none:
                shadow.pending, shadow.pending_is_zero = None, False
            elif shadow.pending is not None:  # Adam still steps on a zeroed gradient
                shadow.pending, shadow.pending_is_zero = torch.zeros_like(shadow.low), True


def _update_shadowed(optimizer: torch.optim.Optimizer, _args: object, _kwargs: object) -> None:
    """Adam's update of each weight whose gradient waits on its shadow."""
    from textgan_envs.discriminators.native import adam_step_bf16_grad

    for group in optimizer.param_groups:
        for weight in group["params"]:
            grad = shadow_gradient(weight)
            if grad is None:
                continue
            if weight.grad is not None:
                raise RuntimeError(
                    "a highway weight has both a float32 gradient and one on its bfloat16 "
                    "shadow; set weight.grad only through backward()"
                )
            for name, neutral in _NEUTRAL_SETTINGS.items():
                if group.get(name, neutral) != neutral:
                    raise ValueError(
                        f"make_discriminator_optimizer's bfloat16 update supports Adam without "
                        f"{name} (got {name}={group[name]!r}); build torch.optim.Adam yourself "
                        "for that setting"
                    )
            state = optimizer.state[weight]
            if not state:  # as Adam(fused=True) initialises it
                state["step"] = torch.zeros((), dtype=torch.float32, device=weight.device)
                state["exp_avg"] = torch.zeros_like(weight, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(weight, memory_format=torch.preserve_format)
            state["step"] += 1
            beta1, beta2 = (float(beta) for beta in group["betas"])
            shadow = shadow_of(weight)
            adam_step_bf16_grad(
                weight.detach(), state["exp_avg"], state["exp_avg_sq"], grad,
                shadow.low.detach(), float(state["step"]), float(group["lr"]), beta1, beta2,
                float(group["eps"]),
            )  # fmt: skip
            shadow.mark_current(weight)
            shadow.pending, shadow.pending_is_zero = None, False  # used up

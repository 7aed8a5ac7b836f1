"""Stop a run at the first NaN or inf, before it reaches an optimiser step or a checkpoint."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import Tensor, nn


class NonFiniteError(FloatingPointError):
    """A reward, loss or weight became NaN/inf; the message names the quantity and the step."""


def check_finite(name: str, value: Tensor | float, step: int) -> None:
    """Raise :class:`NonFiniteError` naming ``name`` and ``step`` if ``value`` has NaN or inf.

    Call it on rewards, losses and weights *before* the optimiser step and before any
    checkpoint, so the last good checkpoint on disk is never overwritten by a poisoned state.
    """
    if isinstance(value, Tensor):
        ok = bool(torch.isfinite(value).all())
    else:
        ok = math.isfinite(float(value))
    if not ok:
        raise NonFiniteError(
            f"{name} is not finite (NaN or inf) at step {step}; stopped, the last good "
            f"checkpoint (if any) is left intact"
        )


def grad_global_norm(parameters: Iterable[nn.Parameter]) -> float:
    """Global L2 norm of the gradients (0.0 when none), for logging."""
    norms = [p.grad.detach().norm() for p in parameters if p.grad is not None]
    if not norms:
        return 0.0
    return float(torch.linalg.vector_norm(torch.stack(norms)))

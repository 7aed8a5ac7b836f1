"""What a discriminator hands the envs, checked where it becomes a reward.

Why here: a discriminator is any callable, and a bad output used to surface far from its
cause: NaN became a NaN reward, ``inf`` a reward of exactly 1.0, ``None`` or a wrong shape an
error deep inside torch. Each check names the discriminator (its class) and the bad value.

Cost: the type, shape and dtype checks read tensor metadata only. The finiteness check is one
fused ``isfinite().all()`` per scored batch (once per episode for fixed-length episodes);
reading its result waits for the device, so on an accelerator it runs only for discriminators
from outside :mod:`textgan_envs.discriminators`; on the CPU it always runs. An env built with
``finite_check=False`` skips it: the agents' own env does, since they check the rewards
themselves (``agents.runtime.check_finite``, which names the quantity and the step).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

_BUILT_IN = "textgan_envs.discriminators."


class DiscriminatorOutputError(ValueError):
    """A discriminator returned something that cannot be a reward: not a float tensor, mis-shaped, NaN or inf."""


def _name(discriminator: Any) -> str:
    return type(discriminator).__name__


def _check_finite_here(discriminator: Any, values: Tensor) -> bool:
    """Whether to pay for the finiteness check (see the module docstring)."""
    return values.device.type == "cpu" or not type(discriminator).__module__.startswith(_BUILT_IN)


def _check_tensor(out: Any, discriminator: Any, shape: tuple[int, ...], what: str) -> Tensor:
    if not isinstance(out, Tensor):
        raise DiscriminatorOutputError(
            f"discriminator {_name(discriminator)} returned {type(out).__name__} "
            f"{_short(out)} as {what}, expected a float tensor of shape {list(shape)}"
        )
    if tuple(out.shape) != shape:
        raise DiscriminatorOutputError(
            f"discriminator {_name(discriminator)} returned {what} of shape "
            f"{list(out.shape)}, expected {list(shape)}"
        )
    if not out.dtype.is_floating_point:
        raise DiscriminatorOutputError(
            f"discriminator {_name(discriminator)} returned {what} of dtype {out.dtype}, "
            "expected a floating dtype"
        )
    return out


def check_finite_values(values: Tensor, discriminator: Any, what: str = "logits") -> Tensor:
    """``values`` if every entry is finite; :class:`DiscriminatorOutputError` naming the bad ones otherwise."""
    if _check_finite_here(discriminator, values) and not bool(torch.isfinite(values).all()):
        bad = values[~torch.isfinite(values)]
        shown = ", ".join(str(v) for v in bad[:4].tolist())
        raise DiscriminatorOutputError(
            f"discriminator {_name(discriminator)} returned non-finite {what} ({shown}"
            f"{', ...' if bad.numel() > 4 else ''}) for {bad.numel()} of {values.numel()} "
            "sequences; a reward must be a finite number"
        )
    return values


def check_sequence_logits(out: Any, discriminator: Any, rows: int, finite: bool = True) -> Tensor:
    """A whole-sequence discriminator's output as float logits ``[rows]``, checked.

    A NumPy array is accepted (as a tensor); anything else that is not a tensor is refused.
    ``finite=False`` leaves the values unchecked (type, shape and dtype still are).
    """
    if hasattr(out, "__array__") and not isinstance(out, Tensor):
        out = torch.as_tensor(out)
    logits = _check_tensor(out, discriminator, (rows,), "logits")
    if finite:
        check_finite_values(logits, discriminator)
    return logits.float()


def check_token_logits(out: Any, discriminator: Any, rows: int, seq_len: int) -> Tensor:
    """A per-token discriminator's ``(logits [rows, T], values)`` output: its checked logits.

    Only their shape and dtype are checked here; the caller checks the entries it rewards with
    :func:`check_finite_values`.
    """
    if not isinstance(out, tuple | list) or len(out) != 2:
        raise DiscriminatorOutputError(
            f"discriminator {_name(discriminator)} returned {type(out).__name__} {_short(out)}, "
            f"expected a pair (logits [{rows}, {seq_len}], values)"
        )
    return _check_tensor(out[0], discriminator, (rows, seq_len), "logits")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."

"""Opt-in speed switches for the policy and discriminator: ``torch.compile``, bf16 autocast, pinned copies.

Why switches and not always-on: on a CPU ``torch.compile`` costs tens of seconds of compile
time for little gain on these small recurrent steps, and bf16 on CPU is slower than fp32 on
most chips; on a GPU both pay. So ``"auto"`` means on for CUDA, off elsewhere, and either can
be forced. The switched model keeps the wrapped module's interface (it is an ``nn.Module``
whose parameters are the module's), so it drops into sampling, Monte-Carlo rollouts and the
discriminator routines unchanged. Outputs and recurrent state leave every call as float32, so
samplers and preallocated rollout buffers see the same dtypes either way.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn

__all__ = ["PerfSwitches", "SwitchedModule", "apply_switches", "autocast_context", "to_device"]

Switch = Literal["auto", "on", "off"]

#: Methods whose computation the switches speed up (those the module defines are wrapped).
SWITCHED_METHODS: tuple[str, ...] = ("forward", "step", "teacher_forced_logits")


@dataclass(frozen=True)
class PerfSwitches:
    """Which speed-ups to use; ``"auto"`` enables a switch on CUDA devices only."""

    compile: Switch = "auto"
    """``torch.compile`` the module's ``step``/``forward``/``teacher_forced_logits`` (dynamic shapes)."""
    bf16: Switch = "auto"
    """Run those methods under ``torch.autocast(dtype=bfloat16)``; outputs are cast back to float32."""

    def resolve(self, device: torch.device | str) -> tuple[bool, bool]:
        """``(compile_enabled, bf16_enabled)`` for ``device``."""
        for name, value in (("compile", self.compile), ("bf16", self.bf16)):
            if value not in ("auto", "on", "off"):
                raise ValueError(
                    f"perf switch {name!r} must be 'auto', 'on' or 'off', got {value!r}"
                )
        is_cuda = torch.device(device).type == "cuda"

        def pick(value: Switch, auto: bool) -> bool:
            return auto if value == "auto" else value == "on"

        bf16_auto = is_cuda and torch.cuda.is_bf16_supported()
        return pick(self.compile, is_cuda), pick(self.bf16, bf16_auto)


def autocast_context(device: torch.device | str, enabled: bool):
    """``torch.autocast`` to bfloat16 on ``device``'s type, or a no-op context when disabled."""
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)


def _to_float32(value: Any) -> Any:
    """Floating tensors (also inside tuples/lists) back to float32; everything else unchanged."""
    if isinstance(value, Tensor):
        return (
            value.float() if value.is_floating_point() and value.dtype != torch.float32 else value
        )
    if isinstance(value, tuple | list):
        return type(value)(_to_float32(v) for v in value)
    return value


class SwitchedModule(nn.Module):
    """``module`` with its hot methods compiled and/or autocast; every other attribute passes through."""

    def __init__(self, module: nn.Module, compile_enabled: bool, bf16_enabled: bool) -> None:
        super().__init__()
        self.module = module
        self.__dict__["_bf16"] = bool(bf16_enabled)
        self.__dict__["_compiled"] = bool(compile_enabled)
        fns = {}
        for name in SWITCHED_METHODS:
            fn = getattr(type(module), name, None)
            if fn is None or (name == "forward" and fn is nn.Module.forward):
                continue
            bound = getattr(module, name)
            fns[name] = torch.compile(bound, dynamic=True) if compile_enabled else bound
        self.__dict__["_fns"] = fns

    @property
    def device(self) -> torch.device:
        dev = getattr(self.module, "device", None)
        if isinstance(dev, torch.device):
            return dev
        return next(self.module.parameters()).device

    def _run(self, name: str, *args: Any, **kwargs: Any) -> Any:
        with autocast_context(self.device, self.__dict__["_bf16"]):
            out = self.__dict__["_fns"][name](*args, **kwargs)
        return _to_float32(out)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if "forward" not in self.__dict__["_fns"]:
            raise NotImplementedError(f"{type(self.module).__name__} defines no forward()")
        return self._run("forward", *args, **kwargs)

    def step(self, prev_tokens: Tensor, state: tuple[Tensor, ...]):
        return self._run("step", prev_tokens, state)

    def teacher_forced_logits(self, tokens: Tensor) -> Tensor:
        return self._run("teacher_forced_logits", tokens)

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(super().__getattr__("module"), name)

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return self.module.state_dict(*args, **kwargs)

    def load_state_dict(
        self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False
    ):
        return self.module.load_state_dict(state_dict, strict=strict, assign=assign)

    def __deepcopy__(self, memo: dict[int, Any]) -> SwitchedModule:
        return SwitchedModule(
            copy.deepcopy(self.module, memo), self.__dict__["_compiled"], self.__dict__["_bf16"]
        )


def apply_switches(module: nn.Module, switches: PerfSwitches | None = None) -> nn.Module:
    """``module`` itself when every switch resolves off (the CPU default), else a :class:`SwitchedModule`."""
    switches = switches or PerfSwitches()
    dev = getattr(module, "device", None)
    if not isinstance(dev, torch.device):
        dev = next(module.parameters()).device
    compile_enabled, bf16_enabled = switches.resolve(dev)
    if not (compile_enabled or bf16_enabled):
        return module
    return SwitchedModule(module, compile_enabled, bf16_enabled)


def to_device(tensor: Tensor, device: torch.device | str, non_blocking: bool = True) -> Tensor:
    """Copy a CPU tensor (a corpus, a batch of real data) to ``device``, through pinned memory for CUDA.

    Pinned (page-locked) host memory lets the copy run asynchronously by DMA; on a CPU target
    the tensor is returned as is (no copy, no CUDA call).
    """
    device = torch.device(device)
    if tensor.device == device or (device.type == "cpu" and tensor.device.type == "cpu"):
        return tensor
    if device.type == "cuda" and tensor.device.type == "cpu":
        if not tensor.is_pinned():
            tensor = tensor.pin_memory()
        return tensor.to(device, non_blocking=non_blocking)
    return tensor.to(device)

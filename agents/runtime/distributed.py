"""Data-parallel training on PyTorch's own engine: ``torch.distributed`` + DDP, launched by torchrun.

Wiring a trainer is a few lines::

    ctx = init_distributed()                      # reads torchrun's RANK/WORLD_SIZE/... or runs alone
    torch.manual_seed(shard_seed(cfg.seed, ctx.rank))   # each rank draws its own samples
    policy = wrap_ddp(policy, ctx)                # gradients all-reduced (averaged) by DDP
    ...
    if ctx.is_main:                               # rank 0 alone logs, evaluates, checkpoints
        save(...)
    shutdown(ctx)                                 # barrier, then destroy the process group

Launch (one machine, 2 processes; NCCL on GPUs, gloo on CPU, chosen automatically)::

    python -m torch.distributed.run --nproc_per_node=2 -m agents.train ...

Without torchrun's variables (``WORLD_SIZE`` unset) :func:`init_distributed` returns a
single-process context and :func:`wrap_ddp` returns the module unchanged, so one code path
serves both.

Failure handling (why no rank hangs forever):

* rendezvous: rank 0 (or torchrun's agent) hosts a ``TCPStore`` at ``MASTER_ADDR:MASTER_PORT``;
  connecting is bounded by ``rendezvous_timeout_s`` and a failure raises
  :class:`RendezvousError` naming the address;
* collectives: every collective is bounded by ``timeout_s`` (gloo raises on timeout and raises
  at once when a peer's socket closes; for NCCL ``TORCH_NCCL_ASYNC_ERROR_HANDLING=1`` is set
  so a timed-out collective tears the process down);
* torchrun itself watches its workers: when one exits non-zero it terminates the others and
  exits non-zero (``--max-restarts`` can restart the group, which then resumes from the last
  checkpoint).
"""

from __future__ import annotations

import copy
import functools
import inspect
import os
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from textgan_envs.device import resolve_device

__all__ = [
    "DistContext",
    "DistributedModule",
    "DistributedSetupError",
    "RendezvousError",
    "all_reduce_mean",
    "barrier",
    "broadcast_object",
    "current_context",
    "gather_objects",
    "init_distributed",
    "on_main",
    "read_launch_env",
    "shard_seed",
    "shutdown",
    "unwrap",
    "wrap_ddp",
]

T = TypeVar("T")

#: Methods of a wrapped module that run through DDP (so their gradients are all-reduced).
DEFAULT_DDP_METHODS: tuple[str, ...] = ("forward", "teacher_forced_logits", "log_prob")


class DistributedSetupError(RuntimeError):
    """The launch environment (RANK, WORLD_SIZE, LOCAL_RANK, ...) is inconsistent."""


class RendezvousError(DistributedSetupError):
    """The rendezvous store at ``MASTER_ADDR:MASTER_PORT`` could not be reached in time."""


@dataclass(frozen=True)
class DistContext:
    """Where this process sits in a data-parallel job (``world_size == 1``: running alone)."""

    rank: int = 0
    """Global rank, ``0 <= rank < world_size``."""
    world_size: int = 1
    """Number of processes in the job."""
    local_rank: int = 0
    """Rank on this machine; picks the GPU ``cuda:local_rank``."""
    device: torch.device = torch.device("cpu")
    """This process's compute device."""
    backend: str | None = None
    """``"nccl"`` or ``"gloo"`` when a process group is up, ``None`` when running alone."""

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that logs, evaluates and writes checkpoints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """Whether a process group is initialised (collectives and DDP are live)."""
        return self.backend is not None


@dataclass(frozen=True)
class LaunchEnv:
    """torchrun's variables, parsed and checked."""

    rank: int
    world_size: int
    local_rank: int
    master_addr: str
    master_port: int
    use_agent_store: bool


def _int_var(env: Mapping[str, str], name: str) -> int:
    raw = env.get(name)
    if raw is None:
        raise DistributedSetupError(
            f"WORLD_SIZE is set but {name} is not; launch with torchrun "
            "(python -m torch.distributed.run), which sets RANK, LOCAL_RANK, WORLD_SIZE, "
            "MASTER_ADDR and MASTER_PORT"
        )
    try:
        return int(raw)
    except ValueError:
        raise DistributedSetupError(f"{name}={raw!r} is not an integer") from None


def read_launch_env(env: Mapping[str, str] | None = None) -> LaunchEnv | None:
    """Parse torchrun's variables from ``env`` (default ``os.environ``); ``None`` if not launched.

    Raises :class:`DistributedSetupError` naming the variable when they are inconsistent
    (``WORLD_SIZE < 1``, ``RANK`` outside ``[0, WORLD_SIZE)``, a missing address or port).
    """
    env = os.environ if env is None else env
    if "WORLD_SIZE" not in env:
        return None
    world_size = _int_var(env, "WORLD_SIZE")
    if world_size < 1:
        raise DistributedSetupError(f"WORLD_SIZE must be >= 1, got {world_size}")
    rank = _int_var(env, "RANK")
    if not 0 <= rank < world_size:
        raise DistributedSetupError(f"RANK={rank} is outside [0, WORLD_SIZE={world_size})")
    local_rank = int(env.get("LOCAL_RANK", rank))
    if local_rank < 0:
        raise DistributedSetupError(f"LOCAL_RANK must be >= 0, got {local_rank}")
    addr = env.get("MASTER_ADDR")
    if not addr:
        raise DistributedSetupError(
            "WORLD_SIZE is set but MASTER_ADDR is not; pass torchrun --master-addr "
            "(or --rdzv-endpoint) or export MASTER_ADDR"
        )
    port = _int_var(env, "MASTER_PORT")
    if not 0 < port < 2**16:
        raise DistributedSetupError(f"MASTER_PORT={port} is not a TCP port (1..65535)")
    use_agent_store = env.get("TORCHELASTIC_USE_AGENT_STORE", "").lower() == "true"
    return LaunchEnv(rank, world_size, local_rank, addr, port, use_agent_store)


def _pick_device(device: str | torch.device, local_rank: int) -> torch.device:
    if device == "auto":
        device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    resolved = resolve_device(device)
    if resolved.type == "cuda":
        count = torch.cuda.device_count()
        index = local_rank if resolved.index is None else resolved.index
        if index >= count:
            raise DistributedSetupError(
                f"LOCAL_RANK={local_rank} needs GPU cuda:{index} but only {count} are visible; "
                "use --nproc_per_node <= the number of GPUs"
            )
        resolved = torch.device("cuda", index)
        torch.cuda.set_device(resolved)
    return resolved


def _pick_backend(backend: str, device: torch.device) -> str:
    if backend == "auto":
        return "nccl" if device.type == "cuda" and dist.is_nccl_available() else "gloo"
    if backend not in ("nccl", "gloo"):
        raise ValueError(f"backend must be 'auto', 'nccl' or 'gloo', got {backend!r}")
    if backend == "nccl" and device.type != "cuda":
        raise ValueError("the NCCL backend needs CUDA devices; use backend='gloo' on CPU")
    return backend


def init_distributed(
    backend: str = "auto",
    timeout_s: float = 600.0,
    rendezvous_timeout_s: float = 120.0,
    device: str | torch.device = "auto",
    env: Mapping[str, str] | None = None,
) -> DistContext:
    """Join the job torchrun launched (or return a single-process context when not launched).

    ``backend="auto"`` picks NCCL when this rank's device is a GPU, gloo otherwise.
    ``rendezvous_timeout_s`` bounds reaching ``MASTER_ADDR:MASTER_PORT``;
    ``timeout_s`` bounds every later collective (a hung or dead peer raises instead of hanging).
    """
    if not dist.is_available():
        raise DistributedSetupError("this torch build has no torch.distributed support")
    global _CONTEXT
    launch = read_launch_env(env)
    if launch is None:
        return DistContext(device=_pick_device(device, 0))
    if dist.is_initialized():
        raise DistributedSetupError("a default process group is already initialised")
    dev = _pick_device(device, launch.local_rank)
    chosen = _pick_backend(backend, dev)
    if chosen == "nccl":
        os.environ.setdefault("TORCH_NCCL_ASYNC_ERROR_HANDLING", "1")
    where = f"{launch.master_addr}:{launch.master_port}"
    try:
        store = dist.TCPStore(
            launch.master_addr,
            launch.master_port,
            launch.world_size,
            is_master=launch.rank == 0 and not launch.use_agent_store,
            timeout=timedelta(seconds=rendezvous_timeout_s),
            wait_for_workers=False,
            multi_tenant=True,
        )
    except Exception as exc:  # DistStoreError, RuntimeError, TimeoutError: all mean the same here
        raise RendezvousError(
            f"rank {launch.rank}/{launch.world_size} could not reach the rendezvous at {where} "
            f"within {rendezvous_timeout_s:g} s ({type(exc).__name__}: {exc}); check "
            "MASTER_ADDR/MASTER_PORT (torchrun --master-addr/--master-port or --rdzv-endpoint), "
            "that rank 0 is running and that the port is open between the machines"
        ) from exc
    store.set_timeout(timedelta(seconds=timeout_s))
    try:
        dist.init_process_group(
            chosen,
            store=store,
            rank=launch.rank,
            world_size=launch.world_size,
            timeout=timedelta(seconds=timeout_s),
        )
    except Exception as exc:
        raise RendezvousError(
            f"rank {launch.rank}/{launch.world_size} reached {where} but the {chosen} process "
            f"group did not form within {timeout_s:g} s ({type(exc).__name__}: {exc}); "
            "did every rank start?"
        ) from exc
    _CONTEXT = DistContext(launch.rank, launch.world_size, launch.local_rank, dev, chosen)
    return _CONTEXT


_CONTEXT: DistContext | None = None


def current_context() -> DistContext:
    """The context :func:`init_distributed` set up, or a single-process CPU one.

    Lets deep code (checkpoint writers, loggers) ask "am I rank 0?" without threading the
    context through every signature.
    """
    if _CONTEXT is not None and dist.is_initialized():
        return _CONTEXT
    return DistContext()


def barrier(ctx: DistContext, timeout_s: float | None = None) -> None:
    """Wait for every rank; a no-op when running alone.

    On gloo this is ``monitored_barrier``, whose error names the ranks that did not arrive.
    """
    if not ctx.distributed:
        return
    if ctx.backend == "gloo":
        timeout = None if timeout_s is None else timedelta(seconds=timeout_s)
        dist.monitored_barrier(timeout=timeout, wait_all_ranks=True)
    else:
        dist.barrier(device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)


def shutdown(ctx: DistContext, timeout_s: float | None = None) -> None:
    """Barrier (so no rank tears down while a peer still talks to it), then destroy the group.

    The group is destroyed even when the barrier fails (a peer died), and the error re-raised.
    """
    if not ctx.distributed or not dist.is_initialized():
        return
    global _CONTEXT
    try:
        barrier(ctx, timeout_s)
    finally:
        dist.destroy_process_group()
        _CONTEXT = None


def shard_seed(seed: int, rank: int) -> int:
    """A distinct, reproducible seed per rank; rank 0 keeps ``seed`` (one process = the old run).

    Other ranks hash ``(seed, rank)`` with NumPy's ``SeedSequence`` rather than adding an
    offset, so rank 1 of seed 0 never replays rank 0 of seed 1.
    """
    if rank < 0:
        raise ValueError(f"rank must be >= 0, got {rank}")
    if rank == 0:
        return int(seed)
    words = np.random.SeedSequence([int(seed) % 2**63, int(rank)]).generate_state(2, np.uint32)
    return int((int(words[0]) << 31) ^ int(words[1]))


# --------------------------------------------------------------------------- DDP wrapping


class _MethodRouter(nn.Module):
    """``forward(name, *args)`` calls ``module.<name>(*args)``, so DDP sees calls to any method."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return getattr(self.module, method)(*args, **kwargs)


class DistributedModule(nn.Module):
    """A DDP view of ``module`` that still looks like ``module``.

    Calls of the methods in ``ddp_methods`` (default: ``forward``, ``teacher_forced_logits``,
    ``log_prob``) run through :class:`~torch.nn.parallel.DistributedDataParallel` when grad is
    enabled, so the next ``backward()`` all-reduces (averages) the gradients over ranks. Under
    ``no_grad`` they call the module directly (no collective: rank 0 can evaluate alone). Every
    other attribute (``sample``, ``step``, ``config``, ``vocab_size``, ...) is the module's.
    ``state_dict``/``load_state_dict`` and ``copy.deepcopy`` act on the plain module, so
    checkpoints and delayed rollout copies are the same as in a single-process run.
    """

    def __init__(
        self, module: nn.Module, ddp_methods: Iterable[str] = DEFAULT_DDP_METHODS, **ddp_kwargs: Any
    ) -> None:
        super().__init__()
        self.ddp = DistributedDataParallel(_MethodRouter(module), **ddp_kwargs)
        self.__dict__["_ddp_methods"] = frozenset(ddp_methods)

    @property
    def inner(self) -> nn.Module:
        """The wrapped module itself."""
        return self.ddp.module.module

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        if torch.is_grad_enabled():
            return self.ddp(method, *args, **kwargs)
        return getattr(self.inner, method)(*args, **kwargs)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("forward", *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            pass
        inner = super().__getattr__("ddp").module.module
        if name in self.__dict__["_ddp_methods"]:
            return functools.partial(self._call, name)
        return getattr(inner, name)

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return self.inner.state_dict(*args, **kwargs)

    def load_state_dict(
        self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False
    ):
        return self.inner.load_state_dict(state_dict, strict=strict, assign=assign)

    def __deepcopy__(self, memo: dict[int, Any]) -> nn.Module:
        return copy.deepcopy(self.inner, memo)


def wrap_ddp(
    module: nn.Module,
    ctx: DistContext,
    ddp_methods: Iterable[str] = DEFAULT_DDP_METHODS,
    **ddp_kwargs: Any,
) -> nn.Module:
    """``module`` as a :class:`DistributedModule` in a distributed job, else ``module`` itself.

    DDP broadcasts rank 0's parameters at construction, so every rank starts identical.
    Forward-time buffer sync (``forward_sync_buffers``/``broadcast_buffers``) defaults to ``False`` (our models have no buffers, and a buffer
    broadcast inside a rank-0-only forward would deadlock); pass
    ``find_unused_parameters=True`` for a module part of which gets no gradient in a step.
    """
    if not ctx.distributed:
        return module
    if isinstance(module, DistributedModule):
        raise ValueError("module is already wrapped for DDP")
    module.to(ctx.device)
    if "broadcast_buffers" not in ddp_kwargs:
        # ``forward_sync_buffers`` replaces ``broadcast_buffers`` in newer torch releases.
        params = inspect.signature(DistributedDataParallel.__init__).parameters
        key = "forward_sync_buffers" if "forward_sync_buffers" in params else "broadcast_buffers"
        ddp_kwargs.setdefault(key, False)
    if ctx.device.type == "cuda":
        ddp_kwargs.setdefault("device_ids", [ctx.device.index])
        ddp_kwargs.setdefault("output_device", ctx.device.index)
    return DistributedModule(module, ddp_methods, **ddp_kwargs)


def unwrap(module: nn.Module) -> nn.Module:
    """The plain module inside a :class:`DistributedModule` (or ``module`` itself)."""
    return module.inner if isinstance(module, DistributedModule) else module


# --------------------------------------------------------------------------- rank-0 helpers


def on_main(ctx: DistContext, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
    """Run ``fn`` on rank 0 only, then barrier, so no rank reads a file before it is written.

    Returns ``fn``'s result on rank 0 and ``None`` elsewhere. Use it for checkpoint writes.
    """
    result = fn(*args, **kwargs) if ctx.is_main else None
    barrier(ctx)
    return result


def all_reduce_mean(value: torch.Tensor | float, ctx: DistContext) -> torch.Tensor:
    """The mean of ``value`` over ranks (e.g. a reward to log); ``value`` itself when alone."""
    tensor = torch.as_tensor(value, dtype=torch.float32, device=ctx.device).clone()
    if ctx.distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        tensor /= ctx.world_size
    return tensor


def gather_objects(obj: Any, ctx: DistContext) -> list[Any] | None:
    """Every rank's ``obj`` (picklable) as a list on rank 0, ``None`` elsewhere.

    Used to put each rank's random-generator state into rank 0's checkpoint, so a resumed
    run continues every rank's stream (``saved[ctx.rank]`` on load).
    """
    if not ctx.distributed:
        return [obj]
    out: list[Any] | None = [None] * ctx.world_size if ctx.is_main else None
    dist.gather_object(obj, out, dst=0)
    return out


def broadcast_object(obj: Any, ctx: DistContext) -> Any:
    """Rank 0's ``obj`` on every rank (e.g. optimiser state after rank-0-only pre-training)."""
    if not ctx.distributed:
        return obj
    box = [obj if ctx.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def relaunch_under_torchrun(module: str, nproc: int, argv: list[str]) -> int:
    """Re-run ``python -m module argv`` as ``torchrun --standalone --nproc_per_node=nproc``.

    Backs the ``--nproc-per-node N`` flag of our commands: the flag is dropped from ``argv``
    and ``--distributed`` added, so each worker joins the process group torchrun set up.
    Returns torchrun's exit status (non-zero when any rank failed).
    """
    rest, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc-per-node":
            skip = True
        elif not arg.startswith("--nproc-per-node="):
            rest.append(arg)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    cmd += [f"--nproc_per_node={nproc}", "-m", module, *rest, "--distributed"]
    return subprocess.call(cmd)

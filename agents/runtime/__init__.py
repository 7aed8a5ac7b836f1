"""The shared run layer of every trainer: text agents, BEGAN and PPGN.

One run directory layout, one checkpoint format and resume contract, one metrics logger, one
table of seed streams, one config loader and one data-parallel engine. Nothing here knows
about a particular agent or model; it imports nothing else from ``agents``.

=============================  =============================================================
module                         holds
=============================  =============================================================
``runtime.checkpoint``         atomic checkpoint files, ``weights_only`` loading, data digests
``runtime.run_dir``            the run directory: checks before any write, ``config.json``
``runtime.run_lock``           one writer per run directory (``flock``, released on death)
``runtime.errors``             :class:`RunDirError` and the refusals of a run directory
``runtime.checkpoint_history`` the last K checkpoints of a run (``keep_checkpoints``)
``runtime.run_checkpoint``     :class:`RunState`, the run checkpoint, :func:`resume_or_start`
``runtime.seeding``            named seed streams, global seeding, RNG-state capture
``runtime.guards``             the NaN/inf guard and the gradient norm
``runtime.logging``            CSV + TensorBoard metrics, the null logger, the progress bar
``runtime.config``             dataclass configs from JSON and ``--set``; :class:`ConfigError`
``runtime.distributed``        ``torch.distributed`` + DDP under torchrun
=============================  =============================================================
"""

from agents.runtime.checkpoint import (
    CheckpointError,
    atomic_save,
    cpu_capability,
    load_checkpoint,
    remove_stale_temp_files,
    token_digest,
)
from agents.runtime.checkpoint_history import kept_checkpoints
from agents.runtime.config import (
    ConfigError,
    build_config,
    check_field_types,
    config_fields,
    config_to_dict,
    load_config,
    parse_override,
)
from agents.runtime.distributed import (
    DistContext,
    DistributedSetupError,
    RendezvousError,
    all_reduce_mean,
    barrier,
    broadcast_object,
    current_context,
    gather_objects,
    init_distributed,
    relaunch_under_torchrun,
    shard_seed,
    shutdown,
    unwrap,
    wrap_ddp,
)
from agents.runtime.errors import (
    NoCheckpointError,
    RunDirError,
    RunExistsError,
    RunFinished,
    RunLockedError,
)
from agents.runtime.guards import NonFiniteError, check_finite, grad_global_norm
from agents.runtime.logging import (
    MetricLogger,
    NullLogger,
    main_logger,
    open_logger,
    progress_bar,
)
from agents.runtime.run_checkpoint import (
    CHECKPOINT_FORMAT,
    RunState,
    load_run_checkpoint,
    resume_or_start,
    save_run_checkpoint,
)
from agents.runtime.run_dir import (
    CHECKPOINT_NAME,
    CONFIG_NAME,
    RESUMABLE_CHANGES,
    has_checkpoint,
    has_run_state,
    prepare_run_dir,
    read_run_config,
    release_run_dir,
)
from agents.runtime.run_lock import LOCK_NAME, holds_lock, lock_run_dir, unlock_run_dir
from agents.runtime.seeding import (
    SEED_STREAMS,
    make_generator,
    rng_state,
    seed_everything,
    seed_stream,
    set_rng_state,
    step_seed,
)
from textgan_envs.atomic_files import atomic_write

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_NAME",
    "CONFIG_NAME",
    "LOCK_NAME",
    "RESUMABLE_CHANGES",
    "SEED_STREAMS",
    "CheckpointError",
    "ConfigError",
    "DistContext",
    "DistributedSetupError",
    "MetricLogger",
    "NoCheckpointError",
    "NonFiniteError",
    "NullLogger",
    "RendezvousError",
    "RunDirError",
    "RunExistsError",
    "RunFinished",
    "RunLockedError",
    "RunState",
    "all_reduce_mean",
    "atomic_save",
    "atomic_write",
    "barrier",
    "broadcast_object",
    "build_config",
    "check_field_types",
    "check_finite",
    "cpu_capability",
    "config_fields",
    "config_to_dict",
    "current_context",
    "gather_objects",
    "grad_global_norm",
    "has_checkpoint",
    "has_run_state",
    "holds_lock",
    "init_distributed",
    "kept_checkpoints",
    "load_checkpoint",
    "load_config",
    "load_run_checkpoint",
    "lock_run_dir",
    "main_logger",
    "make_generator",
    "open_logger",
    "parse_override",
    "prepare_run_dir",
    "progress_bar",
    "read_run_config",
    "relaunch_under_torchrun",
    "release_run_dir",
    "remove_stale_temp_files",
    "resume_or_start",
    "rng_state",
    "save_run_checkpoint",
    "seed_everything",
    "seed_stream",
    "set_rng_state",
    "shard_seed",
    "shutdown",
    "step_seed",
    "token_digest",
    "unlock_run_dir",
    "unwrap",
    "wrap_ddp",
]

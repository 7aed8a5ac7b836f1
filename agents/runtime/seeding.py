"""Every random stream of a run, derived from its one seed by name; RNG states for checkpoints.

Why a table: each stream (initial weights, data, sampling, shuffling, ...) needs a seed of its
own, and two streams of one run must never share one. Offsets scattered as ``seed + 10`` hide
collisions and make a stream impossible to find; :data:`SEED_STREAMS` lists them all. The
offsets are fixed forever: changing one changes every result of the trainer that uses it.

Streams of different trainers may share an offset (they never run in the same process), and
trainer-specific names carry the trainer's prefix (``maskgan.``, ``began.``, ``ppgn.``).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from agents.runtime.distributed import current_context, shard_seed

#: name -> offset added to the seed the stream derives from: the run's seed unless noted.
SEED_STREAMS: Mapping[str, int] = {
    # text agents (agents/setup.py, agents/loop.py)
    "oracle_data": 1,
    "policy_init": 2,
    "discriminator_init": 3,
    "pretrain_shuffle": 4,
    "pretrain_sample": 5,
    "eval": 7,  # of step_seed(seed, step): one stream per evaluation
    "sample": 10,
    "shuffle": 11,
    # MLE pre-training (agents/mle.py): its NLL-oracle samples, of the MLE config's seed
    "mle.eval": 1,
    # textgan bench (agents/bench/runners.py)
    "bench.eval": 1,  # of step_seed(., 0): every variant of a seed sees the same draws
    "bench.continued_mle": 20,
    # MaskGAN (agents/maskgan.py, agents/maskgan_metrics.py)
    "maskgan.init": 2,
    "maskgan.batch": 10,
    "maskgan.mask": 11,
    "maskgan.sample": 12,
    "maskgan.eval_masks": 100,
    "maskgan.eval_fill": 1,  # of the evaluator's seed (maskgan.eval_masks)
    # BEGAN (image_samplers/began)
    "began.init": 0,
    "began.z": 1,
    "began.fixed_z": 2,
    "began.eval_fake": 1,  # of `began eval --seed`
    # PPGN (image_samplers/ppgn)
    "ppgn.init": 0,
    "ppgn.evaluator": 101,
    "ppgn.eval_mixing": 1,  # of `ppgn eval --seed`
}

#: Multiplier that spreads a per-step (or per-epoch) stream over the seed space.
STEP_STRIDE = 1_000_003


def seed_stream(seed: int, name: str) -> int:
    """The seed of stream ``name`` of a run seeded with ``seed`` (see :data:`SEED_STREAMS`)."""
    try:
        return int(seed) + SEED_STREAMS[name]
    except KeyError:
        raise KeyError(
            f"unknown seed stream {name!r}; add it to SEED_STREAMS ({', '.join(SEED_STREAMS)})"
        ) from None


def step_seed(seed: int, step: int) -> int:
    """A seed for ``step`` of a per-step stream (an evaluation, an epoch's data order).

    Independent of every other step, so when a stream is drawn (how often a run evaluates)
    never shifts what it draws.
    """
    return int(seed) * STEP_STRIDE + int(step)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch global RNGs (explicit generators are seeded by their owners).

    In a data-parallel run every rank gets its own seed (rank 0 keeps ``seed``).
    """
    seed = shard_seed(seed, current_context().rank)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def make_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded with ``seed`` (one per independent random stream).

    Seeds are sharded per rank in a data-parallel run, so ranks draw different samples; rank 0's
    streams are those of a single-process run. (Weights start identical anyway: DDP broadcasts
    rank 0's.)
    """
    gen = torch.Generator(device=device)
    gen.manual_seed(shard_seed(int(seed), current_context().rank))
    return gen


def rng_state() -> dict[str, Any]:
    """Capture Python, NumPy and torch RNG states as tensors/plain types (``weights_only``-safe)."""
    py_version, py_internal, py_gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state: dict[str, Any] = {
        "python": torch.tensor(py_internal, dtype=torch.int64),
        "python_version": py_version,
        "python_gauss": py_gauss,
        "numpy_keys": torch.from_numpy(np.asarray(np_keys, dtype=np.int64)),
        "numpy_pos": int(np_pos),
        "numpy_has_gauss": int(np_has_gauss),
        "numpy_gauss": float(np_gauss),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    internal = tuple(int(v) for v in state["python"].tolist())
    random.setstate((state["python_version"], internal, state["python_gauss"]))
    np.random.set_state(
        (
            "MT19937",
            state["numpy_keys"].numpy().astype(np.uint32),
            int(state["numpy_pos"]),
            int(state["numpy_has_gauss"]),
            float(state["numpy_gauss"]),
        )
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])

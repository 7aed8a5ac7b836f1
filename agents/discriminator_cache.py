"""A pre-trained discriminator shared by the runs of one seed instead of trained by each.

Discriminator pre-training is deterministic in the seed, the data, the MLE start and the D
schedule, so every agent of a seed would train the same discriminator; with SeqGAN's 50 x 3
epochs on 10,000 + 10,000 sequences that is ~36 min on 2 CPU cores per run. The first run
saves the discriminator, its optimiser state and the global RNG state after pre-training
(dropout draws from it) with an identity record that includes the RNG state before; a later
run whose identity matches loads all three, so it goes on exactly as if it had pre-trained
itself. Any other run recomputes (a stale or corrupt cache is never used).

Pre-training that is stopped part-way keeps its last finished round in a progress file
(:func:`progress_path`: beside the cache, or in the run directory without one), with the
shuffling and sampling generators' states, so a restart goes on from that round and ends with
the discriminator an uninterrupted pre-training would have.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from agents.runtime import CheckpointError, atomic_save, load_checkpoint, token_digest


def parameter_digest(module: nn.Module) -> str:
    """A short SHA-256 of a module's state (names, shapes and values): which MLE start this is."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        array = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}:{tuple(array.shape)}:{array.dtype}".encode())
        digest.update(array.view(torch.uint8).numpy().tobytes() if array.numel() else b"")
    return digest.hexdigest()[:16]


def global_rng_state(device: torch.device) -> dict[str, torch.Tensor]:
    """The global generators dropout draws from: the CPU's, and the device's when it is CUDA."""
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _restore_global_rng(state: dict[str, torch.Tensor], device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def pretraining_identity(
    cfg: Any, policy: nn.Module, real: torch.Tensor, rng_before: dict[str, torch.Tensor]
) -> dict[str, Any]:
    """Everything the pre-trained discriminator depends on (``cfg`` is a ``CommonConfig``)."""
    return {
        "seed": cfg.seed,
        "rounds": cfg.d_pretrain_steps,
        "epochs": cfg.pretrain_epochs,
        "negatives": cfg.pretrain_negatives,
        "batch_size": cfg.d_batch_size,
        "disc": cfg.disc,
        "disc_kwargs": cfg.disc_kwargs,
        "d_lr": cfg.d_lr,
        "real_digest": token_digest(real),
        "generator_digest": parameter_digest(policy),
        "rng_digest": token_digest(*(rng_before[name] for name in sorted(rng_before))),
    }


def _load_matching(
    path: Path, identity: dict[str, Any], keys: list[str], what: str, mismatch: str
) -> dict[str, Any] | None:
    """``path``'s ``keys`` if it was saved for ``identity``; else ``None`` (a warning naming
    ``what`` and ``path`` when it is unreadable, ``mismatch`` when it is another's)."""
    if not path.is_file():
        return None
    try:
        saved = load_checkpoint(path, ["identity", *keys])
    except CheckpointError as exc:
        warnings.warn(f"ignoring {what} {path}: {exc}", stacklevel=3)
        return None
    if json.loads(saved["identity"]) != json.loads(json.dumps(identity)):
        warnings.warn(f"ignoring {what} {path}: {mismatch}", stacklevel=3)
        return None
    return saved


def _restore(
    saved: dict[str, Any], discriminator: nn.Module, optimizer: torch.optim.Optimizer
) -> None:
    """Put a saved discriminator, its Adam state and the global RNG state back."""
    discriminator.load_state_dict(saved["discriminator"])
    optimizer.load_state_dict(saved["optimizer"])
    _restore_global_rng(saved["rng"], next(discriminator.parameters()).device)


def load_pretrained_discriminator(
    path: Path, identity: dict[str, Any], discriminator: nn.Module, optimizer: torch.optim.Optimizer
) -> bool:
    """Load ``path`` into ``discriminator`` and ``optimizer`` if it was saved for ``identity``."""
    saved = _load_matching(
        path,
        identity,
        ["discriminator", "optimizer", "rng"],
        "the discriminator cache",
        "it was pre-trained for another seed, data, MLE start, D schedule or global RNG state; "
        "pre-training anew",
    )
    if saved is None:
        return False
    _restore(saved, discriminator, optimizer)
    return True


def save_pretrained_discriminator(
    path: Path,
    identity: dict[str, Any],
    discriminator: nn.Module,
    optimizer: torch.optim.Optimizer,
    rng_after: dict[str, torch.Tensor],
) -> None:
    atomic_save(
        {
            "identity": json.dumps(identity, sort_keys=True),
            "discriminator": discriminator.state_dict(),
            "optimizer": optimizer.state_dict(),
            "rng": rng_after,
        },
        path,
    )


#: The progress file of a run without a cache, in its run directory.
RUN_PROGRESS_NAME = "d_pretrain_progress.pt"


def progress_path(cache: Path) -> Path:
    """Where an unfinished pre-training for ``cache`` keeps its last finished round."""
    return cache.with_name(f"{cache.stem}.partial{cache.suffix}")


def save_progress(
    path: Path,
    identity: dict[str, Any],
    rounds_done: int,
    discriminator: nn.Module,
    optimizer: torch.optim.Optimizer,
    generators: Mapping[str, torch.Generator],
) -> None:
    """Record pre-training after ``rounds_done`` rounds: everything the next round reads."""
    device = next(discriminator.parameters()).device
    atomic_save(
        {
            "identity": json.dumps(identity, sort_keys=True),
            "rounds_done": rounds_done,
            "discriminator": discriminator.state_dict(),
            "optimizer": optimizer.state_dict(),
            "generators": {name: gen.get_state() for name, gen in generators.items()},
            "rng": global_rng_state(device),
        },
        path,
    )


def load_progress(
    path: Path,
    identity: dict[str, Any],
    discriminator: nn.Module,
    optimizer: torch.optim.Optimizer,
    generators: Mapping[str, torch.Generator],
) -> int:
    """Restore a pre-training recorded for ``identity`` by :func:`save_progress`; its rounds done.

    0 (nothing restored) when ``path`` is absent, unreadable, or from another pre-training; the
    latter two warn, naming the file, and are replaced by the restarted pre-training's own.
    """
    saved = _load_matching(
        path,
        identity,
        ["rounds_done", "discriminator", "optimizer", "generators", "rng"],
        "the pre-training progress",
        "it belongs to another seed, data, MLE start, D schedule or global RNG state; "
        "pre-training from round 0",
    )
    if saved is None:
        return 0
    if sorted(saved["generators"]) != sorted(generators):
        warnings.warn(f"ignoring the pre-training progress {path}: other generators", stacklevel=2)
        return 0
    _restore(saved, discriminator, optimizer)
    for name, gen in generators.items():
        gen.set_state(saved["generators"][name])
    return int(saved["rounds_done"])

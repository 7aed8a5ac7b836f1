"""A pre-trained discriminator shared by the runs of one seed instead of trained by each.

Discriminator pre-training is deterministic in the seed, the data, the MLE start and the D
schedule, so every agent of a seed would train the same discriminator; with SeqGAN's 50 x 3
epochs on 10,000 + 10,000 sequences that is ~36 min on 2 CPU cores per run. The first run
saves the discriminator and its optimiser state with an identity record; a later run whose
identity matches loads it, any other recomputes (a stale or corrupt cache is never used).
"""

from __future__ import annotations

import hashlib
import json
import warnings
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


def pretraining_identity(cfg: Any, policy: nn.Module, real: torch.Tensor) -> dict[str, Any]:
    """Everything the pre-trained discriminator depends on (``cfg`` is a ``CommonConfig``)."""
    return {
        "seed": cfg.seed,
        "rounds": cfg.d_pretrain_steps,
        "epochs": cfg.d_pretrain_epochs or cfg.d_epochs,
        "negatives": cfg.d_pretrain_negatives or cfg.d_negatives,
        "batch_size": cfg.d_batch_size,
        "disc": cfg.disc,
        "disc_kwargs": cfg.disc_kwargs,
        "d_lr": cfg.d_lr,
        "real_digest": token_digest(real),
        "generator_digest": parameter_digest(policy),
    }


def load_pretrained_discriminator(
    path: Path, identity: dict[str, Any], discriminator: nn.Module, optimizer: torch.optim.Optimizer
) -> bool:
    """Load ``path`` into ``discriminator`` and ``optimizer`` if it was saved for ``identity``."""
    if not path.is_file():
        return False
    try:
        saved = load_checkpoint(path, ["identity", "discriminator", "optimizer"])
    except CheckpointError as exc:
        warnings.warn(f"ignoring the discriminator cache {path}: {exc}", stacklevel=2)
        return False
    if json.loads(saved["identity"]) != json.loads(json.dumps(identity)):
        warnings.warn(
            f"ignoring the discriminator cache {path}: it was pre-trained for another "
            "seed, data, MLE start or D schedule; pre-training anew",
            stacklevel=2,
        )
        return False
    discriminator.load_state_dict(saved["discriminator"])
    optimizer.load_state_dict(saved["optimizer"])
    return True


def save_pretrained_discriminator(
    path: Path, identity: dict[str, Any], discriminator: nn.Module, optimizer: torch.optim.Optimizer
) -> None:
    atomic_save(
        {
            "identity": json.dumps(identity, sort_keys=True),
            "discriminator": discriminator.state_dict(),
            "optimizer": optimizer.state_dict(),
        },
        path,
    )

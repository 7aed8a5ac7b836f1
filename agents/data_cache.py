"""A seed's drawn oracle data kept in a file, so a run resumed elsewhere trains on the same tokens.

The portable sampling route draws the same tokens on every machine only up to float rounding:
ATen's AVX2 and AVX-512 kernels round a few probabilities differently, and on SeqGAN's oracle
that moves 2 of 10,000 sequences of a seed. Every cached product of those data (the MLE start,
the pre-trained discriminator, a run's ``config.json``) records their digest and refuses other
data, so a bench moved to a machine with other kernels could not resume. With a data cache
(``CommonConfig.data_cache``; the bench keeps one per seed beside its MLE start) the draw
happens once and every later run reads the tokens instead.

The file is a NumPy ``.npz`` (read with ``allow_pickle=False``) holding ``real``, ``valid`` and
a JSON ``record``: the identity of the draw (seed, sizes, the oracle's parameters), the
tokens' digest, and, for information only, the kernel set and torch version that drew them.
A file whose identity differs from the run's, or whose tokens do not match their digest, is
refused with a :class:`~agents.runtime.ConfigError` naming it; it is never overwritten.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from agents.discriminator_cache import parameter_digest
from agents.runtime import ConfigError, cpu_capability, token_digest
from textgan_envs.atomic_files import WORLD_READABLE, atomic_write

FORMAT = 1


class OtherDrawError(ConfigError):
    """The data cache holds a draw of another identity (another seed, size or oracle)."""


def oracle_data_identity(cfg: Any, oracle: nn.Module) -> dict[str, Any]:
    """What a seed's oracle draw depends on (``cfg`` is a ``CommonConfig``)."""
    return {
        "format": FORMAT,
        "seed": cfg.seed,
        "n_real": cfg.n_real,
        "n_valid": cfg.n_valid,
        "seq_len": cfg.seq_len,
        "oracle": parameter_digest(oracle),
    }


def save_data(
    path: str | os.PathLike[str], identity: dict[str, Any], real: Tensor, valid: Tensor
) -> None:
    """Write the draw atomically (temp file, fsync, rename); tokens as ``uint16`` when they fit."""
    record = {
        "identity": identity,
        "digest": token_digest(real, valid),
        "cpu_capability": cpu_capability(),
        "torch": torch.__version__,
    }
    top = int(max(real.max(), valid.max())) if real.numel() and valid.numel() else 0
    dtype = np.uint16 if top < 2**16 else np.int32
    atomic_write(
        path,
        lambda handle: np.savez_compressed(
            handle,
            real=real.cpu().numpy().astype(dtype),
            valid=valid.cpu().numpy().astype(dtype),
            record=np.array(json.dumps(record, sort_keys=True)),
        ),
        mode=WORLD_READABLE,  # like the run's other records
    )


def load_data(
    path: str | os.PathLike[str], identity: dict[str, Any], vocab_size: int
) -> tuple[Tensor, Tensor] | None:
    """The cached ``(real, valid)`` int64 tokens, or ``None`` when ``path`` does not exist.

    Raises :class:`ConfigError` naming the file when it is unreadable, drawn for another
    identity (:class:`OtherDrawError`, listing the differing keys), or holds tokens that fail their digest or lie
    outside ``[0, vocab_size)``.
    """
    path = Path(path)
    if not path.exists():
        return None
    remedy = "remove it to draw the data again, or point data_cache elsewhere"
    try:
        with np.load(path, allow_pickle=False) as archive:
            real_np, valid_np = archive["real"], archive["valid"]
            record = json.loads(str(archive["record"]))
        saved = record["identity"]
        digest = record["digest"]
    except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError) as exc:
        raise ConfigError(
            f"data cache {path} is not a readable data file ({exc}); {remedy}"
        ) from None
    if saved != identity:
        keys = sorted(k for k in set(saved) | set(identity) if saved.get(k) != identity.get(k))
        details = ", ".join(f"{k}: {saved.get(k)!r} here {identity.get(k)!r}" for k in keys)
        raise OtherDrawError(f"data cache {path} holds another draw ({details}); {remedy}")
    if real_np.dtype.kind not in "iu" or valid_np.dtype.kind not in "iu":
        raise ConfigError(f"data cache {path} holds {real_np.dtype} tokens, not integers; {remedy}")
    real = torch.from_numpy(real_np.astype(np.int64))
    valid = torch.from_numpy(valid_np.astype(np.int64))
    if token_digest(real, valid) != digest:
        raise ConfigError(
            f"data cache {path}: its tokens do not match their digest (corrupt?); {remedy}"
        )
    for name, tokens, rows in (("real", real, "n_real"), ("valid", valid, "n_valid")):
        if tuple(tokens.shape) != (identity[rows], identity["seq_len"]):
            raise ConfigError(
                f"data cache {path}: {name} has shape {tuple(tokens.shape)}, expected "
                f"({identity[rows]}, {identity['seq_len']}); {remedy}"
            )
        if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= vocab_size):
            raise ConfigError(
                f"data cache {path}: {name} holds token ids outside [0, {vocab_size}); {remedy}"
            )
    return real, valid

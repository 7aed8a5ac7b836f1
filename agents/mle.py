"""MLE (teacher-forced) training of the generator: SeqGAN's pre-training and baseline.

Cross-entropy of each real token given the real prefix, Adam, global-norm
gradient clipping, exactly as the SeqGAN reference code pre-trains its
generator. Every epoch ends with an atomic checkpoint (policy, optimizer, RNG
states, history), so a killed run resumes where it stopped and ends identical
to an uninterrupted one. With an oracle, NLL-oracle of the generator's samples
is logged; with held-out data, NLL-test.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from agents.policies import LSTMPolicy
from agents.runtime import (
    CheckpointError,
    MetricLogger,
    atomic_save,
    cpu_capability,
    load_checkpoint,
    rng_state,
    seed_stream,
    set_rng_state,
    token_digest,
)
from textgan_envs.metrics import nll_oracle, nll_test

CHECKPOINT_KEYS = (
    "policy",
    "policy_config",
    "optimizer",
    "epoch",
    "shuffle_rng",
    "rng",
    "history",
    "mle_config",
)


@dataclass
class MLEConfig:
    """Settings of one MLE run (defaults follow SeqGAN's generator pre-training)."""

    epochs: int = 120
    """Total epochs over the training set (SeqGAN pre-trains for 120)."""
    batch_size: int = 64
    """Sequences per Adam step (SeqGAN: 64)."""
    lr: float = 1e-2
    """Adam learning rate (SeqGAN: 0.01)."""
    grad_clip: float = 5.0
    """Clip the global gradient norm to this value (SeqGAN: 5.0); <= 0 disables clipping."""
    seed: int = 0
    """Seeds the batch shuffling and the evaluation samples (local generators)."""
    eval_every: int = 1
    """Evaluate every N epochs (and always before training and after the last epoch)."""
    n_eval_samples: int = 10_000
    """Generator samples scored by the oracle for NLL-oracle (SeqGAN: 10,000)."""
    checkpoint_name: str = "mle_checkpoint.pt"
    """File name of the checkpoint written in ``out_dir`` after every epoch."""
    tensorboard: bool = False
    """Also write TensorBoard scalars under ``out_dir/tensorboard``."""
    progress: bool = True
    """Show a tqdm progress bar over batches."""

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "eval_every", "n_eval_samples"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < (0 if name == "epochs" else 1):
                raise ValueError(f"MLEConfig.{name} must be a positive integer, got {value!r}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"MLEConfig.lr must be positive and finite, got {self.lr!r}")


def pretraining_config(cfg: Any, **overrides: Any) -> MLEConfig:
    """The MLE pre-training of an agent's run config ``cfg`` (a ``CommonConfig``).

    The one place that maps an agent's fields to its pre-training, so an agent's own start and
    the bench's shared start (which passes its own evaluation cadence in ``overrides``) train
    with the same batch size, learning rate, clipping and shuffling seed.
    """
    values: dict[str, Any] = {
        "epochs": cfg.mle_epochs,
        "batch_size": cfg.batch_size,
        "lr": cfg.mle_lr,
        "grad_clip": cfg.grad_clip,
        "seed": cfg.seed,
        "eval_every": max(1, cfg.mle_epochs // 10),
        "n_eval_samples": cfg.eval_samples,
        "tensorboard": cfg.tensorboard,
        "progress": cfg.progress,
    }
    unknown = sorted(set(overrides) - set(values))
    if unknown:
        raise ValueError(f"pretraining_config: unknown MLE setting(s) {', '.join(unknown)}")
    return MLEConfig(**{**values, **overrides})


def mle_loss(policy: LSTMPolicy, tokens: Tensor) -> Tensor:
    """Mean teacher-forced cross-entropy per token (nats) of ``tokens`` ``[B, T]``."""
    logits = policy.teacher_forced_logits(tokens)  # [B, T, V]
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens.reshape(-1))


@torch.no_grad()
def evaluate(
    policy: LSTMPolicy,
    cfg: MLEConfig,
    oracle: Any | None = None,
    valid_tokens: Tensor | None = None,
) -> dict[str, float]:
    """NLL-oracle of fresh samples (same seed every call, so epochs compare fairly) and NLL-test."""
    metrics: dict[str, float] = {}
    was_training = policy.training
    policy.eval()
    if oracle is not None:
        gen = torch.Generator(device=policy.device).manual_seed(seed_stream(cfg.seed, "mle.eval"))
        samples = policy.sample(cfg.n_eval_samples, generator=gen)
        metrics["nll_oracle"] = nll_oracle(oracle, samples)
    if valid_tokens is not None:
        metrics["nll_test"] = nll_test(policy, valid_tokens)
    policy.train(was_training)
    return metrics


def load_mle_checkpoint(
    path: str | Path, device: str | torch.device = "auto"
) -> tuple[LSTMPolicy, dict[str, Any]]:
    """Rebuild the policy from an MLE checkpoint; raises ``CheckpointError`` on a bad file."""
    state = load_checkpoint(path, CHECKPOINT_KEYS)
    try:
        policy = LSTMPolicy.from_state_dict(state["policy"], state["policy_config"], device=device)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {path} holds an unusable policy: {exc}") from exc
    return policy, state


def check_training_data(state: dict[str, Any], digest: str, path: str | Path) -> None:
    """Refuse an MLE checkpoint trained on other tokens than those with ``digest``.

    Checkpoints written before digests were recorded carry none: they pass with a warning,
    since their oracle data may have been drawn by another sampling route.
    """
    saved = state.get("data_digest")
    if saved is None:
        warnings.warn(
            f"checkpoint {path} records no data digest (written by an older version), so it "
            "cannot be checked against this run's data; oracle data drawn by an older version "
            "differ between CPUs: delete it to train again if it came from another machine",
            stacklevel=2,
        )
    elif saved != digest:
        raise CheckpointError(
            f"checkpoint {path} was trained on other data (token digest {saved}) than this run's "
            f"({digest}): the seed's data were drawn by another version, from another corpus, "
            f"or {_capability_hint(state.get('cpu_capability'))}; delete the checkpoint to train "
            "again"
        )


def _capability_hint(saved: str | None) -> str:
    here = cpu_capability()
    if saved is not None and saved != here:
        return (
            f"under other CPU kernels: they were drawn with ATen's {saved} kernels and this process "
            f"runs {here}; rerun with ATEN_CPU_CAPABILITY={saved.lower()} to draw the same data"
        )
    return (
        f"under other CPU kernels (this process runs ATen's {here}; a checkpoint drawn on an "
        "AVX2-only CPU resumes on an AVX-512 one with ATEN_CPU_CAPABILITY=avx2)"
    )


def _check_tokens(tokens: Tensor, policy: LSTMPolicy, name: str) -> None:
    if not isinstance(tokens, Tensor) or tokens.dim() != 2 or tokens.dtype != torch.long:
        raise ValueError(f"{name} must be a 2-D LongTensor [N, T]")
    if tokens.shape[0] == 0:
        raise ValueError(f"{name} is empty")
    if int(tokens.min()) < 0 or int(tokens.max()) >= policy.vocab_size:
        raise ValueError(f"{name} holds ids outside [0, {policy.vocab_size})")


def train_mle(
    policy: LSTMPolicy,
    train_tokens: Tensor,
    cfg: MLEConfig,
    valid_tokens: Tensor | None = None,
    oracle: Any | None = None,
    out_dir: str | Path | None = None,
    resume: bool = False,
) -> list[dict[str, float]]:
    """Teacher-forced MLE training; returns the history (one dict per evaluated epoch).

    Epoch 0 is the evaluation before any update. With ``out_dir``, metrics go to
    ``out_dir/metrics.csv`` and a checkpoint to ``out_dir/cfg.checkpoint_name``
    after every epoch; ``resume=True`` continues from that checkpoint if present.
    A non-finite loss raises ``FloatingPointError`` before the checkpoint is
    overwritten, so the last good one survives.
    """
    _check_tokens(train_tokens, policy, "train_tokens")
    if valid_tokens is not None:
        _check_tokens(valid_tokens, policy, "valid_tokens")
    device = policy.device
    train_tokens = train_tokens.to(device)
    optimizer = torch.optim.Adam(policy.parameters(), lr=cfg.lr)
    shuffle_rng = torch.Generator().manual_seed(cfg.seed)
    history: list[dict[str, float]] = []
    start_epoch = 1
    ckpt_path = Path(out_dir) / cfg.checkpoint_name if out_dir is not None else None
    data_digest = token_digest(train_tokens)

    if resume and ckpt_path is not None and ckpt_path.exists():
        state = load_checkpoint(ckpt_path, CHECKPOINT_KEYS, map_location=device)
        if dict(state["policy_config"]) != policy.config():
            raise CheckpointError(
                f"checkpoint {ckpt_path} was written for policy {state['policy_config']}, "
                f"not {policy.config()}"
            )
        check_training_data(state, data_digest, ckpt_path)
        policy.load_state_dict(state["policy"])
        optimizer.load_state_dict(state["optimizer"])
        shuffle_rng.set_state(state["shuffle_rng"])
        set_rng_state(state["rng"])
        history = [dict(row) for row in state["history"]]
        start_epoch = int(state["epoch"]) + 1

    logger = None
    if out_dir is not None:
        logger = MetricLogger(
            out_dir,
            name="metrics",
            tensorboard=cfg.tensorboard,
            resume_from_step=start_epoch - 1 if start_epoch > 1 else None,
        )
    try:
        if start_epoch == 1:
            row = {"epoch": 0, "seconds": 0.0}
            row.update(evaluate(policy, cfg, oracle, valid_tokens))
            history.append(row)
            if logger is not None:
                logger.log(0, {k: v for k, v in row.items() if k != "epoch"})
        n_batches = math.ceil(train_tokens.shape[0] / cfg.batch_size)
        bar = tqdm(
            total=(cfg.epochs - start_epoch + 1) * n_batches,
            desc="mle",
            disable=not cfg.progress or start_epoch > cfg.epochs,  # no bar for nothing left
            leave=False,
        )
        for epoch in range(start_epoch, cfg.epochs + 1):
            t0 = time.perf_counter()
            policy.train()
            order = torch.randperm(train_tokens.shape[0], generator=shuffle_rng).to(device)
            loss_sum = torch.zeros((), device=device)
            for batch_idx in order.split(cfg.batch_size):
                loss = mle_loss(policy, train_tokens[batch_idx])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(policy.parameters(), cfg.grad_clip)
                optimizer.step()
                loss_sum += loss.detach()
                bar.update(1)
            train_loss = float(loss_sum) / n_batches
            if not math.isfinite(train_loss):
                raise FloatingPointError(
                    f"MLE training loss became {train_loss} in epoch {epoch}; "
                    "the last good checkpoint was kept (lower the learning rate?)"
                )
            row = {"epoch": epoch, "train_loss": train_loss}
            if epoch % cfg.eval_every == 0 or epoch == cfg.epochs:
                row.update(evaluate(policy, cfg, oracle, valid_tokens))
            row["seconds"] = time.perf_counter() - t0
            bar.set_postfix({k: f"{v:.3f}" for k, v in row.items() if k != "epoch"})
            history.append(row)
            if logger is not None:
                logger.log(epoch, {k: v for k, v in row.items() if k != "epoch"})
            if ckpt_path is not None:
                atomic_save(
                    {
                        "policy": policy.state_dict(),
                        "policy_config": policy.config(),
                        "optimizer": optimizer.state_dict(),
                        "epoch": epoch,
                        "shuffle_rng": shuffle_rng.get_state(),
                        "rng": rng_state(),
                        "history": history,
                        "mle_config": asdict(cfg),
                        "data_digest": data_digest,
                        "cpu_capability": cpu_capability(),
                    },
                    ckpt_path,
                )
        bar.close()
    finally:
        if logger is not None:
            logger.close()
    return history

"""Likelihood metrics: NLL-oracle (synthetic data) and NLL-test (real data).

NLL-oracle (SeqGAN) asks how probable the *generator's samples* are under the true data model;
it punishes nonsense but not mode collapse. NLL-test asks how probable *held-out real data* is
under the generator; it punishes dropped modes. Both are reported in nats per token.

The models are duck-typed so this module does not depend on their classes:
``oracle.nll(tokens[B, T]) -> Tensor[B]`` (per-sequence mean per-token NLL) and
``generator.log_prob(tokens[B, T]) -> Tensor[B, T]`` (per-token log-probabilities).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, Protocol

import torch


class SupportsNLL(Protocol):
    def nll(self, tokens: torch.Tensor) -> torch.Tensor: ...


class SupportsLogProb(Protocol):
    def log_prob(self, tokens: torch.Tensor) -> torch.Tensor: ...


@contextlib.contextmanager
def _evaluating(model: Any) -> Iterator[None]:
    """No autograd and eval mode (dropout off) for an ``nn.Module``; its mode is restored after."""
    was_training = isinstance(model, torch.nn.Module) and model.training
    if was_training:
        model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        if was_training:
            model.train()


def _model_device(model: Any) -> torch.device | None:
    device = getattr(model, "device", None)
    if isinstance(device, (str, torch.device)):
        return torch.device(device)
    if isinstance(model, torch.nn.Module):
        param = next(model.parameters(), None)
        if param is not None:
            return param.device
    return None


def _check_tokens(tokens: torch.Tensor, name: str) -> None:
    if not isinstance(tokens, torch.Tensor) or tokens.dtype != torch.long or tokens.ndim != 2:
        got = (
            f"{tokens.dtype} tensor of shape {tuple(tokens.shape)}"
            if isinstance(tokens, torch.Tensor)
            else type(tokens).__name__
        )
        raise ValueError(f"{name} must be a 2-D LongTensor [N, T], got {got}")
    if tokens.shape[0] == 0 or tokens.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {tuple(tokens.shape)})")


def _check_batch_size(batch_size: int) -> None:
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")


def nll_oracle(oracle: SupportsNLL, samples: torch.Tensor, batch_size: int = 1024) -> float:
    """Mean over samples of the oracle's per-token NLL of each sample: ``oracle.nll(samples).mean()``.

    Evaluated in batches of ``batch_size`` without autograd, on the oracle's device.
    """
    _check_tokens(samples, "samples")
    _check_batch_size(batch_size)
    device = _model_device(oracle)
    total = 0.0
    with _evaluating(oracle):
        for batch in samples.split(batch_size):
            if device is not None:
                batch = batch.to(device)
            nll = oracle.nll(batch)
            if nll.shape != (batch.shape[0],):
                raise ValueError(
                    f"oracle.nll must return one value per sequence, shape ({batch.shape[0]},); "
                    f"got {tuple(nll.shape)}"
                )
            total += nll.double().sum().item()
    return total / samples.shape[0]


def nll_test(
    generator: SupportsLogProb,
    real_tokens: torch.Tensor,
    pad_id: int | None = None,
    batch_size: int = 1024,
) -> float:
    """Mean per-token NLL of held-out real sequences under the generator (nats/token).

    Pooled over tokens (a long sentence weighs more than a short one), leaving out positions
    equal to ``pad_id`` when it is given. Evaluated in batches without autograd.
    """
    _check_tokens(real_tokens, "real_tokens")
    _check_batch_size(batch_size)
    device = _model_device(generator)
    total = 0.0
    count = 0
    with _evaluating(generator):
        for batch in real_tokens.split(batch_size):
            if device is not None:
                batch = batch.to(device)
            log_prob = generator.log_prob(batch)
            if log_prob.shape != batch.shape:
                raise ValueError(
                    f"generator.log_prob must return one value per token, shape "
                    f"{tuple(batch.shape)}; got {tuple(log_prob.shape)}"
                )
            log_prob = log_prob.double()
            if pad_id is not None:
                mask = batch != pad_id
                total -= log_prob.masked_fill(~mask, 0.0).sum().item()
                count += int(mask.sum().item())
            else:
                total -= log_prob.sum().item()
                count += batch.numel()
    if count == 0:
        raise ValueError(f"real_tokens contains only padding (pad_id={pad_id}): no token to score")
    return total / count

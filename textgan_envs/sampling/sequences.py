"""Batched sequence sampling, teacher-forced scoring and prefix completion for recurrent models.

Everything here is written once against the :class:`RecurrentSequenceModel`
protocol (``initial_state`` / ``step``), so the oracle, the LSTM generator and any
rollout copy share one sampler, one teacher-forced scorer and one completion loop
(:func:`complete_in_place`, which Monte-Carlo search runs too). Each token comes
from :func:`~textgan_envs.sampling.next_token.next_token_sampler`, which picks the
sampling route for the model and device.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import Tensor

from textgan_envs.sampling.categorical import _check_temperature
from textgan_envs.sampling.next_token import (
    NextToken,
    _uses_projection_path,
    model_device,
    next_token_sampler,
)
from textgan_envs.sequence_model import RecurrentSequenceModel, State

__all__ = [
    "complete_in_place",
    "complete_sequences",
    "consume_prefix",
    "default_batch_rows",
    "prefix_states",
    "sample_sequences",
    "sequence_log_probs",
]

# Logit entries per [B, V] batch when sampling/scoring: on CPU, 512 x 5,000 floats
# (10 MB) stay cache-friendly and measured ~2x faster per row than 2,048 x 5,000;
# GPUs want large batches. Small vocabularies get proportionally more rows.
CPU_BATCH_ENTRIES = 512 * 5000
CUDA_BATCH_ENTRIES = 8192 * 5000
# Rows per batch on the projection path, which keeps no [B, V] tensor: large batches
# spread each step's fixed costs (per-call overhead, thread start-up) over more rows.
PROJECTION_BATCH_ROWS = 16384


def default_batch_rows(device: torch.device | str, vocab_size: int = 5000) -> int:
    """Rows per sampling/scoring batch that run fast on ``device`` for ``vocab_size`` classes."""
    entries = CPU_BATCH_ENTRIES if torch.device(device).type == "cpu" else CUDA_BATCH_ENTRIES
    return max(64, entries // max(int(vocab_size), 1))


def _check_model(model: RecurrentSequenceModel) -> None:
    for attr in ("vocab_size", "seq_len", "start_token", "initial_state", "step"):
        if not hasattr(model, attr):
            raise TypeError(
                f"{type(model).__name__} is not a RecurrentSequenceModel: it lacks {attr!r}"
            )


def _check_tokens(model: RecurrentSequenceModel, tokens: Tensor, name: str = "tokens") -> None:
    if not isinstance(tokens, Tensor) or tokens.dim() != 2:
        shape = tuple(tokens.shape) if isinstance(tokens, Tensor) else type(tokens).__name__
        raise ValueError(f"{name} must be a 2-D LongTensor [B, T], got {shape}")
    if tokens.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8, torch.int8):
        raise ValueError(f"{name} must hold integer token ids, got dtype {tokens.dtype}")
    if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= model.vocab_size):
        raise ValueError(
            f"{name} ids must lie in [0, {model.vocab_size}), "
            f"got range [{int(tokens.min())}, {int(tokens.max())}]"
        )


@torch.no_grad()
def complete_in_place(
    step: NextToken,
    out: Tensor,
    prev: Tensor,
    state: State,
    start: int,
    active_rows: Sequence[int] | None = None,
) -> None:
    """Sample the columns ``start:`` of ``out`` ``[R, T]`` in place, one ``step`` per position.

    ``prev`` ``[R]`` and ``state`` describe every row after its prefix. With
    ``active_rows`` (non-decreasing, one count per position ``start..T-1``) only
    the leading ``active_rows[i]`` rows advance at position ``start + i``: rows
    laid out by prefix length join as the position passes their prefix's end,
    and a leading slice of Python-integer size needs no host sync. Waiting rows
    keep their ``prev``/``state``, which are overwritten in place as rows advance;
    ``None`` advances every row at every position (nothing is overwritten).
    """
    rows, length = out.shape
    counts = [rows] * (length - start) if active_rows is None else [int(a) for a in active_rows]
    if len(counts) != length - start:
        raise ValueError(f"active_rows needs {length - start} counts, got {len(counts)}")
    if any(a > b for a, b in pairwise([0, *counts, rows])):
        raise ValueError(f"active_rows must be non-decreasing counts in [0, {rows}]")
    for p, active in enumerate(counts, start=start):
        if active == rows:
            prev, state = step(prev, state)
            out[:, p] = prev
            continue
        new, advanced = step(prev[:active], tuple(s[:active] for s in state))
        out[:active, p] = new
        prev[:active] = new
        for buf, s in zip(state, advanced, strict=True):
            buf[:active] = s


def prefix_states(model: RecurrentSequenceModel, tokens: Tensor) -> Iterator[tuple[State, Tensor]]:
    """``(state, prev_tokens)`` after each prefix ``tokens[:, :t]``, ``t = 0..T``, one step each.

    Each pair is what a completion starts from: ``model.step(prev_tokens, state)``
    gives ``p(y_{t+1} | y_<=t)`` (``prev_tokens`` is the start token for ``t = 0``).
    Lazy, so a caller can keep the states it needs as they come. No checks.
    """
    batch, length = tokens.shape
    state = model.initial_state(batch)
    prev = torch.full((batch,), int(model.start_token), dtype=torch.long, device=tokens.device)
    yield state, prev
    for t in range(length):
        _, state = model.step(prev, state)  # the state that produced p(y_{t+1} | y_<=t)
        prev = tokens[:, t]
        yield state, prev


@torch.no_grad()
def _sample_batch(
    model: RecurrentSequenceModel,
    out: Tensor,
    temperature: float,
    generator: torch.Generator | None,
    portable: bool = False,
) -> None:
    """Fill the preallocated ``out`` ``[B, T]`` with samples from ``model`` (no host syncs)."""
    batch = out.shape[0]
    state = model.initial_state(batch)
    prev = torch.full((batch,), model.start_token, dtype=torch.long, device=out.device)
    step = next_token_sampler(model, generator, temperature, portable=portable)
    complete_in_place(step, out, prev, state, 0)


def sample_sequences(
    model: RecurrentSequenceModel,
    n: int,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    batch_size: int | None = None,
    portable: bool = False,
) -> Tensor:
    """Sample ``n`` sequences ``LongTensor[n, T]`` from ``model``, ``batch_size`` rows at a time.

    ``batch_size=None`` picks :func:`default_batch_rows` for the model's device
    (bounds the ``[B, V]`` temporaries). ``generator`` (on the model's
    device) makes the draw reproducible without touching the global RNG; ``portable=True``
    makes a CPU model's draw the same on every machine, whatever sampling route the CPU would
    take (see :func:`~textgan_envs.sampling.next_token.next_token_sampler`), for data that
    defines a task (a GPU draw still differs from a CPU one: ``OracleLSTM.sample`` draws
    portably on a CPU copy).
    """
    _check_model(model)
    _check_temperature(temperature)
    if int(n) != n or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    n = int(n)
    device = model_device(model)
    if batch_size is None:
        batch_size = default_batch_rows(device, model.vocab_size)
        if _uses_projection_path(model) and not portable:
            batch_size = max(batch_size, PROJECTION_BATCH_ROWS)
    batch_size = int(batch_size)
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    out = torch.empty((n, model.seq_len), dtype=torch.long, device=device)
    for start in range(0, n, batch_size):
        _sample_batch(model, out[start : start + batch_size], temperature, generator, portable)
    return out


def sequence_log_probs(
    model: RecurrentSequenceModel,
    tokens: Tensor,
    temperature: float = 1.0,
) -> Tensor:
    """Teacher-forced per-token ``log p(y_t | y_<t)`` ``[B, T]`` of ``tokens`` ``[B, T]``.

    Runs ``model.step`` over the sequence (input ``start_token, y_1, ..., y_{T-1}``),
    so it works for any protocol model and is differentiable when grad is
    enabled. ``T`` may be shorter than ``model.seq_len`` (a prefix).
    """
    _check_model(model)
    temperature = _check_temperature(temperature)
    _check_tokens(model, tokens)
    tokens = tokens.to(model_device(model)).long()
    batch, length = tokens.shape
    state = model.initial_state(batch)
    prev = torch.full((batch,), model.start_token, dtype=torch.long, device=tokens.device)
    columns = []
    for t in range(length):
        logits, state = model.step(prev, state)  # [B, V]
        if temperature != 1.0:
            logits = logits / temperature
        # cross_entropy is one fused log-softmax + pick, faster than gather - logsumexp
        columns.append(-F.cross_entropy(logits, tokens[:, t], reduction="none"))  # [B]
        prev = tokens[:, t]
    if not columns:
        return torch.zeros((batch, 0), device=tokens.device)
    return torch.stack(columns, dim=1)


@torch.no_grad()
def consume_prefix(model: RecurrentSequenceModel, prefix_tokens: Tensor) -> tuple[State, Tensor]:
    """``(state, prev_tokens)`` after ``model`` has read ``prefix_tokens`` ``[K, t]``.

    The returned pair is exactly what :func:`complete_sequences` expects: the
    state that produced the logits of ``y_t`` and ``prev_tokens = y_t`` (the
    start token when ``t = 0``), so the next ``step`` gives ``p(y_{t+1} | y_<=t)``.
    """
    _check_model(model)
    _check_tokens(model, prefix_tokens, "prefix_tokens")
    prefix_tokens = prefix_tokens.to(model_device(model)).long()
    *_, last = prefix_states(model, prefix_tokens)
    return last


@torch.no_grad()
def complete_sequences(
    model: RecurrentSequenceModel,
    prefix_tokens: Tensor,
    state: State,
    prev_tokens: Tensor,
    generator: torch.Generator | None = None,
    temperature: float = 1.0,
) -> Tensor:
    """Continue ``K`` prefixes ``[K, t]`` by sampling to full length: ``LongTensor[K, T]``.

    ``state`` and ``prev_tokens`` ``[K]`` describe the model after the prefix (as
    :func:`consume_prefix` returns them, or as saved during sampling): the next
    ``model.step(prev_tokens, state)`` yields ``p(y_{t+1} | y_<=t)``. The first
    ``t`` columns of the result are the prefix, unchanged. Repeat prefixes/states
    ``N`` times along the batch to draw ``N`` completions each.
    """
    _check_model(model)
    _check_temperature(temperature)
    device = model_device(model)
    if prefix_tokens.dim() != 2:
        raise ValueError(f"prefix_tokens must be [K, t], got shape {tuple(prefix_tokens.shape)}")
    k, length = prefix_tokens.shape
    if length > model.seq_len:
        raise ValueError(f"prefix length {length} exceeds the model's seq_len {model.seq_len}")
    if prev_tokens.shape != (k,):
        raise ValueError(f"prev_tokens must have shape [{k}], got {tuple(prev_tokens.shape)}")
    for i, part in enumerate(state):
        if part.shape[0] != k:
            raise ValueError(
                f"state tensor {i} has batch dimension {part.shape[0]}, expected {k} (one per prefix)"
            )
    out = torch.empty((k, model.seq_len), dtype=torch.long, device=device)
    out[:, :length] = prefix_tokens.to(device)
    prev = prev_tokens.to(device).long()
    step = next_token_sampler(model, generator, temperature)
    complete_in_place(step, out, prev, state, length)
    return out

"""The recurrent sequence-model protocol shared by the oracle, generators and rollouts.

Everything that samples token sequences one step at a time (the synthetic oracle,
the LSTM generator, a delayed rollout copy) exposes the same three things, so
sampling, log-likelihoods and Monte-Carlo search are written once against this
protocol instead of once per model:

* ``start_token``: the id fed as input at the first step;
* ``initial_state(batch_size)``: the recurrent state, a tuple of tensors whose
  first dimension is the batch (so states can be indexed, repeated and
  concatenated with plain tensor ops);
* ``step(prev_tokens, state)``: logits over the vocabulary for the next token
  and the next state.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

State = tuple[Tensor, ...]


@runtime_checkable
class RecurrentSequenceModel(Protocol):
    """A model that generates ``seq_len`` tokens from ``vocab_size`` one step at a time."""

    vocab_size: int
    seq_len: int
    start_token: int

    def initial_state(self, batch_size: int) -> State:
        """Zero (or learned) state with the batch as first dimension of each tensor."""
        ...

    def step(self, prev_tokens: Tensor, state: State) -> tuple[Tensor, State]:
        """Next-token logits ``[B, V]`` and the next state, given ``prev_tokens`` ``[B]``."""
        ...

    @property
    def device(self) -> torch.device:  # pragma: no cover - protocol
        ...


@runtime_checkable
class ProjectedSequenceModel(RecurrentSequenceModel, Protocol):
    """A sequence model whose logits are a linear projection of a feature vector.

    Exposing the two halves lets CPU sampling skip float32 logits altogether
    (:mod:`textgan_envs.projection_sampling`); ``step`` must equal
    ``step_features`` followed by ``features @ weight + bias``.
    """

    def step_features(self, prev_tokens: Tensor, state: State) -> tuple[Tensor, State]:
        """Features ``[B, K]`` that the output projection turns into logits, and the next state."""
        ...

    def output_projection(self) -> tuple[Tensor, Tensor | None]:
        """``(weight [K, V], bias [V] or None)`` of the output projection."""
        ...

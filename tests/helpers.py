"""Stand-ins shared by the env, wrapper, rollout and SB3 tests: a fixed discriminator and a
deterministic rollout policy, so expected rewards and Q values can be written down exactly."""

from __future__ import annotations

import torch
from torch import Tensor


class PatternD:
    """Fixed discriminator: logit = scale * (fraction of tokens below ``below``) - scale / 2.

    The logit is 0 at half the tokens and +-scale/2 at the extremes; every call's batch size is
    appended to ``calls`` so tests can check how often, and on how many rows, it was scored.
    """

    def __init__(self, vocab_size: int, below: int = 3, scale: float = 4.0) -> None:
        self.vocab_size = vocab_size
        self.below = below
        self.scale = scale
        self.calls: list[int] = []

    def __call__(self, tokens: Tensor) -> Tensor:
        self.calls.append(len(tokens))
        return self.scale * (tokens < self.below).float().mean(1) - self.scale / 2


class CountingPolicy:
    """Deterministic protocol model: next token = (prev + 1) mod V; counts ``step`` calls and rows.

    ``seq_len`` defaults to a length longer than any test episode, for wrappers that only need
    the policy to continue a prefix.
    """

    start_token = 0

    def __init__(self, vocab_size: int, seq_len: int = 99) -> None:
        self.vocab_size, self.seq_len = vocab_size, seq_len
        self.rows_stepped = 0
        self.calls = 0

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def initial_state(self, batch_size: int) -> tuple[Tensor, ...]:
        return (torch.zeros(batch_size, 2),)

    def step(self, prev: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, tuple[Tensor, ...]]:
        self.calls += 1
        self.rows_stepped += len(prev)
        logits = torch.full((len(prev), self.vocab_size), -1e4)
        logits[torch.arange(len(prev)), (prev + 1) % self.vocab_size] = 0.0
        return logits, (state[0] + 1,)

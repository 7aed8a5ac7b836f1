"""A learned per-token value head ``b_t = V(y_<t)`` for the actor-critic (MaskGAN-style) agent.

The baseline at step ``t`` must not see the action ``y_t`` (that would bias the policy
gradient), so the critic reads the generator's *inputs* ``(start, y_1, ..., y_{T-1})`` and
predicts the return of each position from the prefix before it. One ``nn.LSTM`` call over the
whole sequence keeps it a single fused kernel per update.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from textgan_envs.device import resolve_device


class LSTMCritic(nn.Module):
    """``forward(tokens LongTensor[B, T]) -> values [B, T]`` with ``values[:, t] = b(y_<t)``."""

    def __init__(
        self,
        vocab_size: int,
        emb_dim: int = 32,
        hidden_dim: int = 32,
        start_token: int = 0,
        device: str | torch.device = "cpu",
    ) -> None:
        super().__init__()
        if vocab_size < 1 or emb_dim < 1 or hidden_dim < 1:
            raise ValueError(
                f"vocab_size, emb_dim and hidden_dim must be >= 1, got {vocab_size}, {emb_dim}, {hidden_dim}"
            )
        if not 0 <= start_token < vocab_size:
            raise ValueError(f"start_token {start_token} outside the vocabulary [0, {vocab_size})")
        self.vocab_size = int(vocab_size)
        self.start_token = int(start_token)
        self.embedding = nn.Embedding(vocab_size, emb_dim)
        self.lstm = nn.LSTM(emb_dim, hidden_dim, batch_first=True)
        self.head = nn.Linear(hidden_dim, 1)
        self.to(resolve_device(device))

    @property
    def device(self) -> torch.device:
        return self.embedding.weight.device

    def forward(self, tokens: Tensor) -> Tensor:
        if tokens.dim() != 2:
            raise ValueError(f"tokens must be [B, T], got shape {tuple(tokens.shape)}")
        start = torch.full_like(tokens[:, :1], self.start_token)
        inputs = torch.cat([start, tokens[:, :-1]], dim=1)  # the prefix each position sees
        hidden, _ = self.lstm(self.embedding(inputs))  # [B, T, H]
        return self.head(hidden).squeeze(-1)

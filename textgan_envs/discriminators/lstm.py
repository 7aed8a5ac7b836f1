"""A small LSTM discriminator: a cheaper alternative to SeqGAN's CNN for fast runs."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from textgan_envs.device import resolve_device


class LSTMDiscriminator(nn.Module):
    """Embedding -> LSTM -> max-pooled hidden states -> logit: ``forward(LongTensor[B, T]) -> [B]``.

    Max pooling over time (rather than the last state) lets every position vote,
    which keeps it insensitive to padding at the end of short corpus sentences.
    """

    default_lr: float = 1e-3

    def __init__(
        self,
        vocab_size: int,
        seq_len: int,
        emb_dim: int = 32,
        hidden_dim: int = 64,
        dropout: float = 0.25,
        device: str | torch.device = "cpu",
    ) -> None:
        super().__init__()
        if vocab_size < 1 or seq_len < 1 or emb_dim < 1 or hidden_dim < 1:
            raise ValueError(
                "vocab_size, seq_len, emb_dim and hidden_dim must be >= 1, got "
                f"{vocab_size}, {seq_len}, {emb_dim}, {hidden_dim}"
            )
        self.vocab_size = int(vocab_size)
        self.seq_len = int(seq_len)
        self.embedding = nn.Embedding(vocab_size, emb_dim)
        self.lstm = nn.LSTM(emb_dim, hidden_dim, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(hidden_dim, 1)
        self.to(resolve_device(device))

    @property
    def device(self) -> torch.device:
        return self.embedding.weight.device

    def forward(self, tokens: Tensor) -> Tensor:
        hidden, _ = self.lstm(self.embedding(tokens))  # [B, T, H]
        return self.output(self.dropout(hidden.amax(dim=1))).squeeze(1)

    def regularization(self) -> Tensor:
        """No extra penalty (kept for a uniform training routine)."""
        return self.output.weight.new_zeros(())

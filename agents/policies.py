"""The SeqGAN generator: embedding -> single-layer LSTM -> vocabulary logits.

One set of weights, two code paths: ``step`` (one token at a time, for sampling
and Monte-Carlo rollouts through :mod:`textgan_envs.sampling`) and
``teacher_forced_logits`` (a whole sequence through ``nn.LSTM``, cuDNN on GPU,
for MLE and policy-gradient losses). ``step`` computes the LSTM cell by hand
from the ``nn.LSTM`` weights so both paths provably use the same parameters.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from textgan_envs.device import resolve_device
from textgan_envs.sampling import sample_sequences
from textgan_envs.sequence_model import State

# Sequences scored per chunk in ``log_prob``: bounds the [chunk, T, V] logits tensor
# (on CPU small chunks keep it in cache; on GPU large chunks keep the device busy).
_LOG_PROB_CHUNK = {"cpu": 32, "cuda": 1024}


class LSTMPolicy(nn.Module):
    """Autoregressive LSTM generator over ``vocab_size`` tokens, ``seq_len`` steps."""

    def __init__(
        self,
        vocab_size: int,
        seq_len: int,
        emb_dim: int = 32,
        hidden_dim: int = 32,
        start_token: int = 0,
        device: str | torch.device = "auto",
        init_std: float = 0.1,
    ) -> None:
        super().__init__()
        for name, value in (("vocab_size", vocab_size), ("seq_len", seq_len)):
            if int(value) < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        for name, value in (("emb_dim", emb_dim), ("hidden_dim", hidden_dim)):
            if int(value) < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if not 0 <= int(start_token) < int(vocab_size):
            raise ValueError(f"start_token {start_token} is outside [0, {vocab_size})")
        self.vocab_size = int(vocab_size)
        self.seq_len = int(seq_len)
        self.emb_dim = int(emb_dim)
        self.hidden_dim = int(hidden_dim)
        self.start_token = int(start_token)
        self.init_std = float(init_std)
        self.embedding = nn.Embedding(self.vocab_size, self.emb_dim)
        self.lstm = nn.LSTM(self.emb_dim, self.hidden_dim, batch_first=True)
        self.head = nn.Linear(self.hidden_dim, self.vocab_size)
        self.reset_parameters()
        self.to(resolve_device(device))

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """SeqGAN's initialisation: every parameter (biases too) ~ N(0, init_std)."""
        with torch.no_grad():
            for param in self.parameters():
                noise = torch.randn(param.shape, generator=generator) * self.init_std
                param.copy_(noise)

    # ----------------------------------------------------------------- protocol
    @property
    def device(self) -> torch.device:
        return self.head.weight.device

    def initial_state(self, batch_size: int) -> State:
        zeros = torch.zeros((batch_size, self.hidden_dim), device=self.device)
        return zeros, zeros.clone()  # (h [B, H], c [B, H])

    def step(self, prev_tokens: Tensor, state: State) -> tuple[Tensor, State]:
        h, state = self.step_features(prev_tokens, state)
        return self.head(h), state  # logits [B, V]

    def output_projection(self) -> tuple[Tensor, Tensor | None]:
        """``(weight [H, V], bias [V])`` of the output layer: logits are ``h @ weight + bias``."""
        return self.head.weight.t(), self.head.bias

    def step_features(self, prev_tokens: Tensor, state: State) -> tuple[Tensor, State]:
        """The LSTM step without the output layer: ``(h [B, H], (h, c))``."""
        h, c = state  # [B, H] each
        x = self.embedding(prev_tokens)  # [B, E]
        lstm = self.lstm
        gates = torch.addmm(lstm.bias_ih_l0 + lstm.bias_hh_l0, x, lstm.weight_ih_l0.t())
        gates = gates + h @ lstm.weight_hh_l0.t()  # [B, 4H], PyTorch order i, f, g, o
        i, f, g, o = gates.chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, (h, c)

    # ----------------------------------------------------------------- whole sequences
    def teacher_forced_logits(self, tokens: Tensor) -> Tensor:
        """Logits ``[B, T, V]`` for predicting each ``y_t`` from ``start, y_1..y_{t-1}``."""
        start = torch.full_like(tokens[:, :1], self.start_token)
        inputs = torch.cat([start, tokens[:, :-1]], dim=1)  # [B, T]
        hidden, _ = self.lstm(self.embedding(inputs))  # [B, T, H]
        return self.head(hidden)  # [B, T, V]

    def log_prob(self, tokens: Tensor, temperature: float = 1.0) -> Tensor:
        """Per-token ``log p(y_t | y_<t)`` ``[B, T]``; differentiable when grad is enabled."""
        if tokens.dim() != 2:
            raise ValueError(f"tokens must be [B, T], got shape {tuple(tokens.shape)}")
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        tokens = tokens.to(self.device).long()
        if tokens.shape[1] == 0:
            return torch.zeros(tokens.shape, device=self.device)
        parts = []
        for chunk in tokens.split(_LOG_PROB_CHUNK.get(self.device.type, 1024)):
            logits = self.teacher_forced_logits(chunk)  # [b, T, V]
            if temperature != 1.0:
                logits = logits / temperature
            nll = F.cross_entropy(logits.flatten(0, 1), chunk.flatten(), reduction="none")
            parts.append(-nll.view(chunk.shape))  # [b, T]
        return torch.cat(parts)

    def sample(
        self,
        n: int,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        batch_size: int | None = None,
    ) -> Tensor:
        """``n`` sampled sequences ``LongTensor[n, T]`` (no gradient)."""
        return sample_sequences(
            self, n, temperature=temperature, generator=generator, batch_size=batch_size
        )

    # ----------------------------------------------------------------- checkpoints
    def config(self) -> dict[str, Any]:
        """Constructor arguments, enough to rebuild the module for :meth:`from_state_dict`."""
        return {
            "vocab_size": self.vocab_size,
            "seq_len": self.seq_len,
            "emb_dim": self.emb_dim,
            "hidden_dim": self.hidden_dim,
            "start_token": self.start_token,
            "init_std": self.init_std,
        }

    @classmethod
    def from_state_dict(
        cls,
        state_dict: Mapping[str, Tensor],
        config: Mapping[str, Any],
        device: str | torch.device = "auto",
    ) -> LSTMPolicy:
        """Rebuild a policy from :meth:`config` and ``state_dict()`` (e.g. from a checkpoint)."""
        known = {"vocab_size", "seq_len", "emb_dim", "hidden_dim", "start_token", "init_std"}
        unknown = set(config) - known
        if unknown:
            raise ValueError(f"unknown LSTMPolicy config keys: {', '.join(sorted(unknown))}")
        policy = cls(**dict(config), device=device)
        try:
            policy.load_state_dict(dict(state_dict))
        except RuntimeError as exc:
            raise ValueError(f"state dict does not fit LSTMPolicy{dict(config)}: {exc}") from exc
        return policy

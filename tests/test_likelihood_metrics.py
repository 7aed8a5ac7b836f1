"""NLL-oracle and NLL-test with tiny stand-in models whose answers are known exactly."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from textgan_envs.metrics import nll_oracle, nll_test


class UniformModel(nn.Module):
    """Every token has probability 1/V: per-token NLL is exactly log V."""

    def __init__(self, vocab_size: int) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.dummy = nn.Parameter(torch.zeros(1))
        self.calls: list[int] = []
        self.grad_enabled: list[bool] = []
        self.modes: list[bool] = []

    def _record(self, tokens: torch.Tensor) -> None:
        self.calls.append(tokens.shape[0])
        self.grad_enabled.append(torch.is_grad_enabled())
        self.modes.append(self.training)

    def nll(self, tokens: torch.Tensor) -> torch.Tensor:
        self._record(tokens)
        return torch.full((tokens.shape[0],), math.log(self.vocab_size)) + 0 * self.dummy

    def log_prob(self, tokens: torch.Tensor) -> torch.Tensor:
        self._record(tokens)
        return torch.full(tokens.shape, -math.log(self.vocab_size)) + 0 * self.dummy


class TokenValueModel:
    """Not an nn.Module: NLL of a sequence is the mean of its token ids; log p(token) = -id."""

    def nll(self, tokens: torch.Tensor) -> torch.Tensor:
        return tokens.float().mean(dim=1)

    def log_prob(self, tokens: torch.Tensor) -> torch.Tensor:
        return -tokens.float()


def test_uniform_model_gives_log_v_batched_without_grad() -> None:
    model = UniformModel(vocab_size=37)
    tokens = torch.randint(0, 37, (10, 6), generator=torch.Generator().manual_seed(0))
    assert nll_oracle(model, tokens, batch_size=4) == pytest.approx(math.log(37), abs=1e-6)
    assert model.calls == [4, 4, 2]
    assert model.grad_enabled == [False] * 3
    assert nll_test(model, tokens, batch_size=3) == pytest.approx(math.log(37), abs=1e-6)
    assert model.calls[3:] == [3, 3, 3, 1]
    # evaluated in eval mode, and the training flag is restored afterwards
    assert model.modes == [False] * 7 and model.training


def test_nll_oracle_is_mean_over_sequences() -> None:
    tokens = torch.tensor([[1, 3], [2, 2], [9, 9]])  # sequence NLLs 2, 2, 9
    assert nll_oracle(TokenValueModel(), tokens, batch_size=2) == pytest.approx(13 / 3)


def test_nll_test_pools_tokens_and_skips_padding() -> None:
    pad = 0
    tokens = torch.tensor([[4, 2, 0, 0], [1, 1, 1, 5]])
    model = TokenValueModel()
    # with padding excluded: (4 + 2 + 1 + 1 + 1 + 5) / 6 tokens
    assert nll_test(model, tokens, pad_id=pad, batch_size=1) == pytest.approx(14 / 6)
    # without pad_id every position counts: 14 / 8
    assert nll_test(model, tokens) == pytest.approx(14 / 8)


def test_padding_with_infinite_log_prob_is_ignored() -> None:
    class MasksPad(TokenValueModel):
        def log_prob(self, tokens: torch.Tensor) -> torch.Tensor:
            lp = -tokens.float()
            return lp.masked_fill(tokens == 0, float("-inf"))

    tokens = torch.tensor([[3, 0], [1, 0]])
    assert nll_test(MasksPad(), tokens, pad_id=0) == pytest.approx(2.0)


def test_bad_input() -> None:
    model = TokenValueModel()
    with pytest.raises(ValueError, match="LongTensor"):
        nll_oracle(model, torch.zeros(2, 3))
    with pytest.raises(ValueError, match="LongTensor"):
        nll_test(model, torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="empty"):
        nll_oracle(model, torch.zeros(0, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="only padding"):
        nll_test(model, torch.zeros(2, 3, dtype=torch.long), pad_id=0)
    with pytest.raises(ValueError, match="batch_size"):
        nll_oracle(model, torch.ones(2, 3, dtype=torch.long), batch_size=0)

    class WrongShape(TokenValueModel):
        def nll(self, tokens: torch.Tensor) -> torch.Tensor:
            return tokens.float()

        def log_prob(self, tokens: torch.Tensor) -> torch.Tensor:
            return tokens.float().sum(dim=1)

    with pytest.raises(ValueError, match="one value per sequence"):
        nll_oracle(WrongShape(), torch.ones(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="one value per token"):
        nll_test(WrongShape(), torch.ones(2, 3, dtype=torch.long))

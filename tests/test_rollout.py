"""Monte-Carlo Q: exact on a deterministic policy, unbiased against enumeration, batched layout."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import Tensor

from tests.helpers import CountingPolicy
from textgan_envs.oracle import OracleLSTM
from textgan_envs.rollout import monte_carlo_q


def test_deterministic_policy_gives_exact_q() -> None:
    policy = CountingPolicy(vocab_size=7, seq_len=5)
    tokens = torch.tensor([[3, 3, 3, 3, 3], [6, 0, 2, 2, 5]])
    score = lambda y: y.float().sum(dim=1)  # noqa: E731
    q = monte_carlo_q(policy, score, tokens, n_rollouts=3)
    expected = torch.zeros(2, 5)
    for b in range(2):
        for t in range(5):
            seq = tokens[b, : t + 1].tolist()
            while len(seq) < 5:
                seq.append((seq[-1] + 1) % 7)
            expected[b, t] = sum(seq)
    torch.testing.assert_close(q, expected)


def test_work_is_batched_and_never_wasted() -> None:
    """T-1 teacher-forced steps plus T-1 generation steps; rows only for live prefixes."""
    b, t, n = 4, 6, 5
    policy = CountingPolicy(vocab_size=9, seq_len=t)
    calls: list[int] = []

    def score(y: Tensor) -> Tensor:
        calls.append(len(y))
        return torch.zeros(len(y))

    monte_carlo_q(policy, score, torch.randint(0, 9, (b, t)), n_rollouts=n)
    assert policy.calls == 2 * (t - 1)
    assert policy.rows_stepped == b * (t - 1) + n * b * sum(range(1, t))
    assert calls == [n * b * (t - 1) + b]


def test_matches_exact_expectation_by_enumeration() -> None:
    """Q_t is the expected score of completions: check against all 3^4 sequences."""
    torch.manual_seed(0)
    oracle = OracleLSTM.random(seed=3, vocab_size=3, emb_dim=4, hidden_dim=4, seq_len=4)
    weights = torch.tensor([1.0, -2.0, 0.5])
    score = lambda y: weights[y].cumsum(1).pow(2).sum(1) / 10  # noqa: E731  non-additive score
    all_seqs = torch.tensor(list(itertools.product(range(3), repeat=4)))
    p = oracle.log_prob(all_seqs).sum(1).exp()
    s = score(all_seqs)
    tokens = torch.tensor([[0, 1, 2, 1], [2, 2, 0, 0]])
    q = monte_carlo_q(
        oracle, score, tokens, n_rollouts=4000, generator=torch.Generator().manual_seed(1)
    )
    for b in range(2):
        for t in range(4):
            match = (all_seqs[:, : t + 1] == tokens[b, : t + 1]).all(1)
            exact = float((p[match] * s[match]).sum() / p[match].sum())
            assert abs(float(q[b, t]) - exact) < 0.03, (b, t, float(q[b, t]), exact)


def test_chunking_and_generator_reproducibility() -> None:
    oracle = OracleLSTM.random(seed=0, vocab_size=20, emb_dim=8, hidden_dim=8, seq_len=6)
    tokens = oracle.sample(10, generator=torch.Generator().manual_seed(0))
    score = lambda y: (y == 3).float().mean(1)  # noqa: E731
    a = monte_carlo_q(oracle, score, tokens, 4, generator=torch.Generator().manual_seed(7))
    b = monte_carlo_q(oracle, score, tokens, 4, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(a, b)
    chunked = monte_carlo_q(
        oracle, score, tokens, 4, generator=torch.Generator().manual_seed(7), max_rows=40
    )
    assert chunked.shape == (10, 6)
    torch.testing.assert_close(chunked[:, -1], score(tokens))
    # a different generator draws different completions
    c = monte_carlo_q(oracle, score, tokens, 4, generator=torch.Generator().manual_seed(8))
    assert not torch.equal(a[:, :-1], c[:, :-1])


def test_length_one_and_bad_input() -> None:
    policy = CountingPolicy(5, 1)
    q = monte_carlo_q(policy, lambda y: y.float()[:, 0], torch.tensor([[4], [1]]), 3)
    torch.testing.assert_close(q, torch.tensor([[4.0], [1.0]]))
    with pytest.raises(ValueError, match="n_rollouts"):
        monte_carlo_q(policy, lambda y: y.float()[:, 0], torch.tensor([[4]]), 0)
    with pytest.raises(ValueError, match="LongTensor"):
        monte_carlo_q(policy, lambda y: y[:, 0], torch.tensor([[4.0]]), 1)
    with pytest.raises(ValueError, match="outside the rollout policy's vocabulary"):
        monte_carlo_q(policy, lambda y: y.float()[:, 0], torch.tensor([[5]]), 1)
    with pytest.raises(ValueError, match="score_fn must return shape"):
        monte_carlo_q(CountingPolicy(5, 3), lambda y: torch.zeros(1), torch.tensor([[1, 2, 3]]), 2)


def test_given_final_scores_replace_the_last_column_and_leave_the_others() -> None:
    """An agent hands in the env's terminal reward; the completions' columns are the same draws."""
    torch.manual_seed(0)
    policy = _final_scores_policy()
    tokens = torch.randint(0, policy.vocab_size, (6, policy.seq_len))
    score = lambda y: y.float().mean(dim=1)  # noqa: E731
    plain = monte_carlo_q(policy, score, tokens, 3, generator=torch.Generator().manual_seed(1))
    finals = torch.arange(6.0)
    given = monte_carlo_q(
        policy, score, tokens, 3, generator=torch.Generator().manual_seed(1), final_scores=finals
    )
    torch.testing.assert_close(given[:, :-1], plain[:, :-1], rtol=0, atol=0)
    torch.testing.assert_close(given[:, -1], finals)
    torch.testing.assert_close(plain[:, -1], score(tokens))
    with pytest.raises(ValueError, match=r"final_scores must have shape \[6\]"):
        monte_carlo_q(policy, score, tokens, 3, final_scores=torch.zeros(5))


def _final_scores_policy():
    from agents.policies import LSTMPolicy

    policy = LSTMPolicy(11, 5, 8, 8)
    policy.reset_parameters(torch.Generator().manual_seed(3))
    return policy

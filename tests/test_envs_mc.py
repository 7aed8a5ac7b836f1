"""Monte-Carlo reward wrappers: Q values match monte_carlo_q, returns telescope to D(Y), vector == scalar."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.helpers import CountingPolicy, PatternD
from textgan_envs.envs import (
    CorpusEnv,
    CorpusVectorEnv,
    MonteCarloRewardVectorWrapper,
    MonteCarloRewardWrapper,
    OracleEnv,
    OracleVectorEnv,
)
from textgan_envs.oracle import OracleLSTM
from textgan_envs.rewards import get_reward_fn
from textgan_envs.rollout import monte_carlo_q


@pytest.mark.parametrize("mode", ["prob", "log"])
def test_q_values_equal_monte_carlo_q_and_return_is_terminal_reward(mode: str) -> None:
    V, T = 8, 5
    policy = CountingPolicy(V)
    d = PatternD(V)
    env = MonteCarloRewardWrapper(
        OracleEnv(vocab_size=V, seq_len=T, discriminator=d, reward_mode=mode), policy, 3
    )
    actions = [5, 1, 7, 0, 2]
    env.reset(seed=0)
    rewards, qs = [], []
    for a in actions:
        _, r, terminated, _, info = env.step(a)
        rewards.append(r)
        qs.append(info["q_value"])
    score = lambda y: get_reward_fn(mode)(d(y))  # noqa: E731
    expected = monte_carlo_q(policy, score, torch.tensor([actions]), 3)[0]
    np.testing.assert_allclose(qs, expected.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(info["q_values"], expected.numpy(), rtol=1e-5, atol=1e-6)
    # telescoping: return-to-go from t is Q_T - Q_{t-1}; the episode return is D's terminal reward
    returns_to_go = np.cumsum(rewards[::-1])[::-1]
    q_before = np.concatenate([[0.0], expected.numpy()[:-1]])
    np.testing.assert_allclose(returns_to_go, expected[-1].item() - q_before, atol=1e-5)
    assert terminated


def test_vector_wrapper_matches_scalar_with_eos(tmp_path) -> None:
    path = tmp_path / "c.txt"
    path.write_text("a b c\nb c d e\nc d\n", encoding="utf-8")
    V = CorpusEnv(str(path), seq_len=5, discriminator="lstm").vocab_size
    policy = CountingPolicy(V)
    n = 4
    vec = MonteCarloRewardVectorWrapper(
        CorpusVectorEnv(str(path), num_envs=n, seq_len=5, discriminator=PatternD(V)), policy, 2
    )
    scalars = [
        MonteCarloRewardWrapper(
            CorpusEnv(str(path), seq_len=5, discriminator=PatternD(V)), policy, 2
        )
        for _ in range(n)
    ]
    vec.reset(seed=0)
    for e in scalars:
        e.reset(seed=0)
    rng = np.random.default_rng(1)
    finished = 0
    for _ in range(30):
        actions = np.where(rng.random(n) < 0.25, 2, rng.integers(5, V, size=n))
        sent = actions.copy()
        _, v_rew, v_term, _, v_info = vec.step(actions)
        np.testing.assert_array_equal(actions, sent)  # the caller's array is never written to
        for i, e in enumerate(scalars):
            _, r, term, _, info = e.step(int(actions[i]))
            assert v_rew[i] == pytest.approx(r, abs=1e-5)
            assert v_info["q_value"][i] == pytest.approx(info["q_value"], abs=1e-5)
            assert v_term[i] == term
            if term:
                finished += 1
                np.testing.assert_allclose(v_info["q_values"][i], info["q_values"], atol=1e-5)
                e.reset()
    assert finished >= 10


def test_stochastic_rollouts_are_reproducible_and_unbiased() -> None:
    oracle = OracleLSTM.random(seed=1, vocab_size=6, emb_dim=4, hidden_dim=4, seq_len=4)
    d = PatternD(6)

    def episode(seed: int, n_rollouts: int) -> list[float]:
        env = MonteCarloRewardWrapper(
            OracleEnv(vocab_size=6, seq_len=4, discriminator=d), oracle, n_rollouts
        )
        env.reset(seed=seed)
        return [env.step(a)[4]["q_value"] for a in (0, 4, 1, 5)]

    assert episode(3, 8) == episode(3, 8)
    assert episode(3, 8) != episode(4, 8)
    # with many rollouts Q_1 approaches the exact expectation (enumerate the 6^3 completions)
    import itertools

    tails = torch.tensor(list(itertools.product(range(6), repeat=3)))
    seqs = torch.cat([torch.zeros(len(tails), 1, dtype=torch.long), tails], 1)
    p = oracle.log_prob(seqs)[:, 1:].sum(1).exp()
    exact = float((p * torch.sigmoid(d(seqs))).sum() / p.sum())
    assert episode(0, 4000)[0] == pytest.approx(exact, abs=0.01)


def test_bad_rollout_policy_is_rejected() -> None:
    env = OracleEnv(vocab_size=8, seq_len=3, discriminator=PatternD(8))
    with pytest.raises(ValueError, match="vocabulary mismatch"):
        MonteCarloRewardWrapper(env, CountingPolicy(9), 2)
    with pytest.raises(ValueError, match="n_rollouts"):
        MonteCarloRewardWrapper(env, CountingPolicy(8), 0)
    with pytest.raises(TypeError, match="TextGenerationVectorEnv"):
        MonteCarloRewardVectorWrapper(
            __import__("gymnasium").vector.SyncVectorEnv([lambda: env]), CountingPolicy(8), 2
        )
    venv = OracleVectorEnv(num_envs=2, vocab_size=8, seq_len=3, discriminator=PatternD(8))
    assert isinstance(
        MonteCarloRewardVectorWrapper(venv, CountingPolicy(8), 2).unwrapped, OracleVectorEnv
    )

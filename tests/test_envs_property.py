"""Property tests: >= 1,000 random episodes across envs and wrappers keep every invariant.

Observations always lie in the observation space, rewards are finite, episodes
have the right length (exactly ``T`` tokens, or up to the first EOS for corpus
envs), reward is 0 before the end, and the episode return equals the
transformed discriminator output (wrappers included).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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

EPISODES_PER_EXAMPLE = 10
MAX_EXAMPLES = 110  # 110 x 10 = 1,100 episodes at least


class HashD:
    """Fixed, input-sensitive discriminator with a wide logit range (exercises extreme rewards)."""

    def __init__(self, vocab_size: int, scale: float) -> None:
        self.vocab_size, self.scale = vocab_size, scale

    def __call__(self, tokens: torch.Tensor) -> torch.Tensor:
        w = torch.arange(1, tokens.shape[1] + 1, dtype=torch.float32)
        return self.scale * torch.sin((tokens.float() * w).sum(1))


@pytest.fixture(scope="module")
def corpus_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "c.txt"
    path.write_text("a b c\nb c d e f\nc d\nd a a b\nf\n", encoding="utf-8")
    return path


def build(kind: str, vocab: int, seq_len: int, mode: str, scale: float, corpus: Path, n_envs: int):
    vector = kind.endswith("vector")
    if kind.startswith("corpus"):
        v = CorpusEnv(str(corpus), seq_len=seq_len, discriminator="lstm").vocab_size
        d = HashD(v, scale)
        if vector:
            env = CorpusVectorEnv(
                str(corpus), num_envs=n_envs, seq_len=seq_len, discriminator=d, reward_mode=mode
            )
        else:
            env = CorpusEnv(str(corpus), seq_len=seq_len, discriminator=d, reward_mode=mode)
    else:
        d = HashD(vocab, scale)
        if vector:
            env = OracleVectorEnv(
                num_envs=n_envs,
                vocab_size=vocab,
                seq_len=seq_len,
                discriminator=d,
                reward_mode=mode,
            )
        else:
            env = OracleEnv(vocab_size=vocab, seq_len=seq_len, discriminator=d, reward_mode=mode)
    if "mc" in kind:
        policy = OracleLSTM.random(
            0, vocab_size=env.vocab_size, emb_dim=4, hidden_dim=4, seq_len=seq_len
        )
        wrapper = MonteCarloRewardVectorWrapper if vector else MonteCarloRewardWrapper
        env = wrapper(env, policy, n_rollouts=2)
    return env, d


def expected_length(sequence: np.ndarray, env) -> int:
    core = env.unwrapped.core
    if core.stop_at_eos:
        hits = np.flatnonzero(sequence == core.eos_token)
        if len(hits):
            return int(hits[0]) + 1
    return core.seq_len


KINDS = [
    "oracle",
    "oracle_vector",
    "corpus",
    "corpus_vector",
    "oracle_mc",
    "corpus_mc_vector",
    "oracle_mc_vector",
]


@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    kind=st.sampled_from(KINDS),
    vocab=st.integers(2, 12),
    seq_len=st.integers(1, 6),
    mode=st.sampled_from(["prob", "log", "logit", "bgan"]),
    scale=st.sampled_from([0.5, 50.0, 500.0]),
    n_envs=st.integers(1, 5),
    eos_prob=st.floats(0.0, 0.6),
    seed=st.integers(0, 2**16),
)
def test_random_episodes_keep_invariants(
    corpus_path, kind, vocab, seq_len, mode, scale, n_envs, eos_prob, seed
):
    env, d = build(kind, vocab, seq_len, mode, scale, corpus_path, n_envs)
    rng = np.random.default_rng(seed)
    reward_fn = get_reward_fn(mode)
    shaped = "mc" in kind
    V = env.unwrapped.vocab_size
    eos = 2 if kind.startswith("corpus") else None

    def draw(n: int) -> np.ndarray:
        a = rng.integers(0, V, size=n)
        if eos is not None:
            a = np.where(rng.random(n) < eos_prob, eos, a)
        return a

    if not kind.endswith("vector"):
        obs, _ = env.reset(seed=seed)
        for _ in range(EPISODES_PER_EXAMPLE):
            assert obs in env.observation_space
            total, length = 0.0, 0
            while True:
                obs, reward, terminated, truncated, info = env.step(int(draw(1)[0]))
                length += 1
                assert obs in env.observation_space and np.isfinite(reward) and not truncated
                total += reward
                if not terminated:
                    assert shaped or reward == 0.0
                    assert length < seq_len
                    continue
                seq = info["sequence"]
                assert length == expected_length(seq, env)
                target = float(reward_fn(d(torch.as_tensor(seq)[None]))[0])
                assert total == pytest.approx(target, rel=1e-4, abs=1e-3)
                obs, _ = env.reset()
                break
        return

    obs, _ = env.reset(seed=seed)
    totals, lengths = np.zeros(n_envs), np.zeros(n_envs, dtype=int)
    finished = 0
    while finished < EPISODES_PER_EXAMPLE:
        obs, reward, terminated, truncated, info = env.step(draw(n_envs))
        assert obs in env.observation_space and np.isfinite(reward).all() and not truncated.any()
        lengths += 1
        totals += reward
        assert shaped or (reward[~terminated] == 0).all()
        for i in np.flatnonzero(terminated):
            seq = info["sequence"][i]
            assert lengths[i] == expected_length(seq, env)
            target = float(reward_fn(d(torch.as_tensor(seq)[None]))[0])
            assert totals[i] == pytest.approx(target, rel=1e-4, abs=1e-3)
            assert info["final_obs"][i] in env.unwrapped.single_observation_space
            assert obs[i, -1] == 0  # autoreset (same step)
            totals[i], lengths[i] = 0.0, 0
            finished += 1
        assert (lengths < seq_len).all() or finished >= EPISODES_PER_EXAMPLE

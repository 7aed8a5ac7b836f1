"""SB3SequencePolicy: a trained SB3 PPO policy scored and sampled as a RecurrentSequenceModel."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from stable_baselines3 import PPO

from agents.sb3 import SB3SequencePolicy, SB3VecEnvAdapter, token_policy_kwargs
from textgan_envs.envs import OracleVectorEnv
from textgan_envs.sampling import sample_sequences
from textgan_envs.sequence_model import RecurrentSequenceModel

V, T = 20, 5


class PatternD:
    """Fixed discriminator preferring tokens 0..4."""

    vocab_size = V

    def __call__(self, tokens: torch.Tensor) -> torch.Tensor:
        return 6.0 * (tokens < 5).float().mean(1) - 3.0


@pytest.fixture(scope="module")
def model() -> PPO:
    env = SB3VecEnvAdapter(
        OracleVectorEnv(num_envs=8, vocab_size=V, seq_len=T, discriminator=PatternD())
    )
    ppo = PPO(
        "MlpPolicy",
        env,
        n_steps=T * 4,
        batch_size=40,
        n_epochs=2,
        gamma=1.0,
        seed=0,
        policy_kwargs=token_policy_kwargs(embed_dim=8, features_dim=32),
        device="cpu",
    )
    ppo.learn(total_timesteps=480)
    return ppo


def _env_observations(tokens: np.ndarray) -> list[np.ndarray]:
    """The observations the env itself shows before each token of ``tokens`` [B, T]."""
    env = SB3VecEnvAdapter(
        OracleVectorEnv(num_envs=len(tokens), vocab_size=V, seq_len=T, discriminator=PatternD())
    )
    obs = env.reset()
    out = []
    for t in range(T):
        out.append(obs.copy())
        obs, _, _, _ = env.step(tokens[:, t])
    return out


def test_log_prob_equals_sb3_evaluate_actions_on_env_observations(model: PPO) -> None:
    seq = SB3SequencePolicy(model)
    assert isinstance(seq, RecurrentSequenceModel)
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, V, size=(16, T))
    tokens[:4] = [[1, 2, 3, 4, 0]] * 4  # repeated rows, and tokens the policy learned to favour
    ours = seq.log_prob(torch.as_tensor(tokens))
    assert ours.shape == (16, T)
    expected = torch.zeros(16, T)
    with torch.no_grad():
        for t, obs in enumerate(_env_observations(tokens)):
            obs_t = torch.as_tensor(obs, dtype=torch.float32)
            _, logp, _ = model.policy.evaluate_actions(obs_t, torch.as_tensor(tokens[:, t]))
            expected[:, t] = logp
    torch.testing.assert_close(ours.detach(), expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours.sum(1).detach(), expected.sum(1), atol=1e-5, rtol=1e-5)
    # the policy is not uniform (else any layout bug would go unnoticed)
    assert float((expected + np.log(V)).abs().max()) > 0.05
    # differentiable: the bench and agents may take gradients through it
    assert seq.log_prob(torch.as_tensor(tokens[:2])).sum().requires_grad


def test_samples_in_range_reproducible_and_follow_the_policy(model: PPO) -> None:
    seq = SB3SequencePolicy(model)
    a = seq.sample(400, generator=torch.Generator().manual_seed(3))
    b = sample_sequences(seq, 400, generator=torch.Generator().manual_seed(3))
    assert a.shape == (400, T) and a.dtype == torch.long
    assert int(a.min()) >= 0 and int(a.max()) < V
    assert torch.equal(a, b)
    # the first-token frequencies match the policy's first-step distribution
    probs = torch.softmax(seq.step(torch.zeros(1, dtype=torch.long), seq.initial_state(1))[0], -1)
    freq = torch.bincount(a[:, 0], minlength=V).float() / len(a)
    assert float((freq - probs[0].detach()).abs().max()) < 0.08


def test_rejects_non_textgan_models() -> None:
    with pytest.raises(TypeError, match="get_distribution"):
        SB3SequencePolicy(object())

"""stable-baselines3 integration: extractor, VecEnv adapter, masks, PPO learning, D-update callback."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv, VecMonitor, VecNormalize

import textgan_envs  # noqa: F401  (registers the ids)
from agents.sb3 import (
    DiscriminatorSchedule,
    DiscriminatorUpdateCallback,
    SB3VecEnvAdapter,
    TokenEmbeddingExtractor,
    token_policy_kwargs,
)
from tests.helpers import PatternD
from textgan_envs.adversarial import AdversarialConfig, DiscriminatorTrainer
from textgan_envs.discriminators import build_discriminator
from textgan_envs.envs import CorpusVectorEnv, OracleEnv, OracleVectorEnv


def pattern_d() -> PatternD:
    """Fixed discriminator preferring tokens 0..4: logit = 6 * (their fraction) - 3."""
    return PatternD(50, below=5, scale=6.0)


def test_extractor_embeds_ids_exactly() -> None:
    space = OracleEnv(vocab_size=50, seq_len=4, discriminator=pattern_d()).observation_space
    ext = TokenEmbeddingExtractor(space, embed_dim=8, features_dim=16)
    obs = torch.tensor([[3, 49, 50, 50, 2], [3, 48, 50, 50, 2]], dtype=torch.float32)
    out = ext(obs)
    assert out.shape == (2, 16)
    assert not torch.equal(out[0], out[1])  # one token apart: different features
    assert ext.tokens.num_embeddings == 51 and ext.position.num_embeddings == 5
    with pytest.raises(ValueError, match="observation Box"):
        TokenEmbeddingExtractor(gym.spaces.Box(0, 1, (2, 2)))


@pytest.mark.parametrize(
    ("row", "col"),
    [
        ([3.5, 49, 50, 50, 2], 0),
        ([3, 49, 51, 50, 2], 2),
        ([3, 49, 50, -1, 2], 3),
        ([3, 49, 50, 50, 5], 4),
    ],
)
def test_extractor_refuses_values_that_are_not_token_ids(row: list[float], col: int) -> None:
    """Fractions, ids above V (empty slot) and positions above T are named, never rounded or clamped."""
    space = OracleEnv(vocab_size=50, seq_len=4, discriminator=pattern_d()).observation_space
    ext = TokenEmbeddingExtractor(space, embed_dim=8, features_dim=16)
    good = [3, 49, 50, 50, 2]
    with pytest.raises(
        ValueError, match=rf"observation \[1, {col}\].*VecNormalize\(norm_obs=False\)"
    ):
        ext(torch.tensor([good, row], dtype=torch.float32))
    with pytest.raises(ValueError, match="not a whole number"):
        ext(torch.tensor([[float("nan"), 49, 50, 50, 2]]))


def _normalized_ppo(norm_obs: bool) -> PPO:
    venv = OracleVectorEnv(num_envs=4, vocab_size=50, seq_len=6, discriminator=pattern_d())
    env = VecNormalize(SB3VecEnvAdapter(venv), norm_obs=norm_obs, norm_reward=True)
    return _tiny_ppo(env)


def _tiny_ppo(env) -> PPO:
    """PPO with the token extractor, one 12-step rollout per update, on CPU."""
    return PPO(
        "MlpPolicy",
        env,
        n_steps=12,
        batch_size=48,
        n_epochs=1,
        policy_kwargs=token_policy_kwargs(),
        seed=0,
        device="cpu",
    )


def test_vec_normalize_of_observations_is_refused_with_the_fix_in_the_message() -> None:
    with pytest.raises(ValueError, match=r"use VecNormalize\(norm_obs=False\)"):
        _normalized_ppo(norm_obs=True).learn(96)
    model = _normalized_ppo(norm_obs=False).learn(96)
    assert model.num_timesteps == 96


def test_adapter_matches_dummy_vec_env_over_scalar_envs() -> None:
    n = 4
    adapter = SB3VecEnvAdapter(
        OracleVectorEnv(num_envs=n, vocab_size=50, seq_len=3, discriminator=pattern_d())
    )
    dummy = DummyVecEnv(
        [lambda: OracleEnv(vocab_size=50, seq_len=3, discriminator=pattern_d())] * n
    )
    np.testing.assert_array_equal(adapter.reset(), dummy.reset())
    rng = np.random.default_rng(0)
    for _ in range(7):
        actions = rng.integers(0, 50, size=n)
        a_obs, a_rew, a_done, a_info = adapter.step(actions)
        d_obs, d_rew, d_done, d_info = dummy.step(actions)
        np.testing.assert_array_equal(a_obs, d_obs)
        np.testing.assert_allclose(a_rew, d_rew, atol=1e-6)
        np.testing.assert_array_equal(a_done, d_done)
        for ai, di, done in zip(a_info, d_info, a_done, strict=True):
            if done:
                np.testing.assert_array_equal(
                    ai["terminal_observation"], di["terminal_observation"]
                )
                np.testing.assert_array_equal(ai["sequence"], di["sequence"])
                assert ai["probability"] == pytest.approx(di["probability"], abs=1e-6)
    with pytest.raises(ValueError, match="as_torch"):
        SB3VecEnvAdapter(
            OracleVectorEnv(
                num_envs=2, vocab_size=50, seq_len=3, discriminator=pattern_d(), as_torch=True
            )
        )


def _mean_episode_reward(policy, n_episodes: int = 256) -> float:
    venv = OracleVectorEnv(num_envs=64, vocab_size=50, seq_len=8, discriminator=pattern_d())
    obs, _ = venv.reset(seed=1)
    venv.action_space.seed(1)
    rewards: list[float] = []
    while len(rewards) < n_episodes:
        actions = (
            venv.action_space.sample()
            if policy is None
            else policy.predict(obs, deterministic=False)[0]
        )
        obs, reward, terminated, _, _ = venv.step(actions)
        rewards += reward[terminated].tolist()
    return float(np.mean(rewards))


def test_stock_ppo_learns_the_discriminators_preference() -> None:
    """Random tokens score ~0.09 (sigmoid(6*0.1-3)); PPO must reach well above it in ~10k steps."""
    env = VecMonitor(
        SB3VecEnvAdapter(
            OracleVectorEnv(num_envs=16, vocab_size=50, seq_len=8, discriminator=pattern_d())
        )
    )
    model = PPO(
        "MlpPolicy",
        env,
        n_steps=32,
        batch_size=128,
        n_epochs=4,
        learning_rate=3e-3,
        gamma=1.0,
        policy_kwargs=token_policy_kwargs(net_arch=[64]),
        seed=0,
        device="cpu",
    )
    model.learn(10_000)
    random_score = _mean_episode_reward(None)
    trained_score = _mean_episode_reward(model)
    assert random_score < 0.15
    assert trained_score > 0.6, (random_score, trained_score)


def test_maskable_ppo_never_emits_forbidden_tokens(tmp_path: Path) -> None:
    sb3_contrib = pytest.importorskip("sb3_contrib")
    path = tmp_path / "c.txt"
    path.write_text("a b c\nb c d e\nc d\n", encoding="utf-8")
    venv = CorpusVectorEnv(str(path), num_envs=8, seq_len=5, discriminator="lstm")
    forbidden = np.flatnonzero(~venv.action_masks()[0])
    assert set(forbidden.tolist()) == {0, 1, 4}  # PAD, BOS, MASK
    env = SB3VecEnvAdapter(venv)
    model = sb3_contrib.MaskablePPO(
        "MlpPolicy",
        env,
        n_steps=16,
        batch_size=64,
        policy_kwargs=token_policy_kwargs(),
        seed=0,
        device="cpu",
    )
    model.learn(256)
    obs = env.reset()
    emitted = []
    for _ in range(40):
        actions, _ = model.predict(obs, action_masks=env.action_masks())
        emitted += actions.tolist()
        obs, *_ = env.step(actions)
    assert not set(emitted) & set(forbidden.tolist())


def _learn_with_schedule(
    schedule: DiscriminatorSchedule | None, steps: int = 480
) -> tuple[DiscriminatorTrainer, DiscriminatorUpdateCallback, list[int]]:
    """PPO on 4 envs, T=6, rollouts of 12 steps (8 sequences): 480 steps = 10 rollouts, 80 sequences.

    Returns the trainer, the callback and the optimizer steps taken in each phase.
    """
    d = build_discriminator("lstm", 50, 6, seed=0)
    venv = OracleVectorEnv(num_envs=4, vocab_size=50, seq_len=6, discriminator=d)
    trainer = DiscriminatorTrainer(d, venv.real_data, AdversarialConfig(batch_size=16))
    steps_per_phase: list[int] = []
    optimizer_step = trainer.optimizer.step

    def counting_step(*args, **kwargs):
        steps_per_phase[-1] += 1
        return optimizer_step(*args, **kwargs)

    trainer.optimizer.step = counting_step
    trainer_update = trainer.update

    def counting_update(*args, **kwargs):
        steps_per_phase.append(0)
        return trainer_update(*args, **kwargs)

    trainer.update = counting_update
    model = _tiny_ppo(SB3VecEnvAdapter(venv))
    callback = DiscriminatorUpdateCallback(trainer, schedule)
    model.learn(steps, callback=callback)
    return trainer, callback, steps_per_phase


@pytest.mark.parametrize(
    ("schedule", "phases"),
    [
        (DiscriminatorSchedule(every_rollouts=1), 10),
        (DiscriminatorSchedule(every_rollouts=3), 3),
        (DiscriminatorSchedule(every_sequences=16), 5),
        (DiscriminatorSchedule(every_sequences=12), 6),  # 4 finish together: at 12, 24, ..., 72
        (None, 0),  # the default, every 256 sequences: none in 80
    ],
)
def test_callback_follows_its_schedule(schedule: DiscriminatorSchedule | None, phases: int) -> None:
    trainer, callback, steps = _learn_with_schedule(schedule)
    assert trainer.episodes_seen == 80
    assert trainer.updates == phases and len(steps) == phases
    assert (callback.last_stats is not None) == (phases > 0)


def test_each_phase_runs_d_steps_times_epochs_on_n_samples() -> None:
    """2 d-steps x 3 epochs on 8 generated + 8 real rows, batch 16: 6 optimizer steps a phase."""
    schedule = DiscriminatorSchedule(every_sequences=16, d_steps=2, epochs=3, n_samples=8)
    trainer, _, steps = _learn_with_schedule(schedule)
    assert steps == [6] * 5
    schedule = DiscriminatorSchedule(every_sequences=16, d_steps=1, epochs=2, n_samples=16)
    assert _learn_with_schedule(schedule)[2] == [4] * 5  # 32 rows: 2 batches x 2 epochs


def test_default_schedule_and_bad_schedules() -> None:
    default = DiscriminatorSchedule()
    assert (default.every_rollouts, default.every_sequences) == (None, 256)
    assert (default.d_steps, default.epochs, default.n_samples) == (1, 1, 256)
    assert DiscriminatorSchedule(every_rollouts=2).every_sequences is None
    with pytest.raises(ValueError, match="not both"):
        DiscriminatorSchedule(every_rollouts=1, every_sequences=64)
    with pytest.raises(ValueError, match="d_steps must be an integer >= 1"):
        DiscriminatorSchedule(d_steps=0)


def test_phases_train_against_the_newest_sequences(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not against old ones from the buffer: the generated draws are the last phase's episodes."""
    import textgan_envs.adversarial as adversarial

    seen: list[torch.Tensor] = []

    def spy(disc, optimizer, real, fake, **kwargs):
        seen.append(fake.clone())
        return {"loss": 0.0, "accuracy": 1.0}

    monkeypatch.setattr(adversarial, "train_discriminator", spy)
    d = build_discriminator("lstm", 50, 6, seed=0)
    trainer = DiscriminatorTrainer(d, OracleVectorEnv(1, 50, 6, discriminator=d).real_data)
    for value in range(10):  # 10 batches of 4 sequences, each filled with its batch number
        trainer.add(torch.full((4, 6), value))
    trainer.update(d_steps=1, epochs=1, n_samples=8, newest=8)
    assert sorted(set(seen[-1][:, 0].tolist())) == [8, 9]
    trainer.update(d_steps=1, epochs=1, n_samples=40)  # whole buffer (the trainer's own route)
    assert len(set(seen[-1][:, 0].tolist())) == 10


def test_scalar_env_masks_reach_maskable_ppo_through_gym_make(tmp_path: Path) -> None:
    pytest.importorskip("sb3_contrib")
    from sb3_contrib.common.maskable.utils import get_action_masks, is_masking_supported

    path = tmp_path / "c.txt"
    path.write_text("a b c\n", encoding="utf-8")
    env = gym.make("textgan/Corpus-v0", corpus_path=str(path), seq_len=4, discriminator="lstm")
    assert is_masking_supported(env)
    mask = get_action_masks(env)
    assert mask.shape == (env.action_space.n,) and mask.tolist()[:5] == [
        False,
        False,
        True,
        True,
        False,
    ]
    venv = DummyVecEnv(
        [
            lambda: gym.make(
                "textgan/Corpus-v0", corpus_path=str(path), seq_len=4, discriminator="lstm"
            )
        ]
    )
    assert get_action_masks(venv).shape == (1, env.action_space.n)


def test_make_vec_env_with_its_defaults_builds_envs_that_ppo_trains_on() -> None:
    """SB3 passes render_mode="rgb_array": the env warns (Gymnasium's convention) instead of raising."""
    with pytest.warns(UserWarning, match="render_mode 'rgb_array'"):
        venv = make_vec_env(
            "textgan/Oracle-v0", n_envs=4, env_kwargs=dict(vocab_size=50, seq_len=8)
        )
    assert venv.num_envs == 4 and venv.observation_space.shape == (9,)
    venv.reset()
    assert venv.env_method("render") == [None] * 4
    model = PPO("MlpPolicy", venv, n_steps=64, batch_size=64, n_epochs=2, seed=0, device="cpu")
    model.learn(300)
    assert model.num_timesteps >= 300 and len(model.ep_info_buffer) > 0

"""Adversarial discriminator updates: schedule, in-place effect on env rewards, resumable state."""

from __future__ import annotations

import pytest
import torch

from agents.runtime import atomic_save, load_checkpoint
from textgan_envs.adversarial import AdversarialConfig, DiscriminatorTrainer
from textgan_envs.discriminators import build_discriminator, discriminator_accuracy
from textgan_envs.envs import OracleVectorEnv


def real_sampler(n: int) -> torch.Tensor:
    return torch.randint(0, 5, (n, 6))  # real data: only tokens 0..4


def test_schedule_runs_every_k_episodes() -> None:
    d = build_discriminator("lstm", 20, 6)
    trainer = DiscriminatorTrainer(
        d, real_sampler, AdversarialConfig(update_every=10, d_steps=2, epochs=1)
    )
    fakes = torch.randint(5, 20, (25, 6))
    assert trainer.observe(fakes[:4]) is None
    assert trainer.observe(fakes[4:9]) is None
    stats = trainer.observe(fakes[9:12])  # 12 >= 10: update
    assert stats is not None and stats["updates"] == 1.0 and {"loss", "accuracy"} <= set(stats)
    assert trainer.episodes_since_update == 0 and trainer.episodes_seen == 12
    assert trainer.observe(fakes[12:20]) is None


def test_updates_change_env_rewards_in_place() -> None:
    """Env and trainer share one discriminator: after updates, generated text earns less, real more."""
    d = build_discriminator("lstm", 20, 6, seed=0)
    env = OracleVectorEnv(num_envs=32, vocab_size=20, seq_len=6, discriminator=d)
    trainer = DiscriminatorTrainer(
        d,
        real_sampler,
        AdversarialConfig(update_every=32, d_steps=3, epochs=2, batch_size=32),
        optimizer=torch.optim.Adam(d.parameters(), lr=3e-3),
    )
    fake_actions = torch.Generator().manual_seed(0)

    def play() -> tuple[float, torch.Tensor]:
        env.reset()
        for _ in range(6):
            _, reward, terminated, _, info = env.step(
                torch.randint(5, 20, (32,), generator=fake_actions).numpy()
            )
        assert terminated.all()
        return float(reward.mean()), torch.as_tensor(info["sequence"])

    before, _ = play()
    for _ in range(3):
        _, seqs = play()
        trainer.observe(seqs)
    after, seqs = play()
    assert trainer.updates == 3
    assert after < before - 0.2, (before, after)
    assert discriminator_accuracy(d, real_sampler(200), seqs) > 0.9
    assert not d.training


def test_state_dict_round_trip_via_checkpoint(tmp_path) -> None:
    d = build_discriminator("lstm", 20, 6, seed=1)
    cfg = AdversarialConfig(update_every=5, d_steps=1, epochs=1)
    trainer = DiscriminatorTrainer(d, real_sampler, cfg)
    trainer.observe(torch.randint(5, 20, (7, 6)))
    trainer.observe(torch.randint(5, 20, (3, 6)))
    path = atomic_save(trainer.state_dict(), tmp_path / "adv.pt")
    clone = DiscriminatorTrainer(build_discriminator("lstm", 20, 6, seed=2), real_sampler, cfg)
    clone.load_state_dict(load_checkpoint(path, required_keys=["discriminator", "buffer"]))
    assert (clone.episodes_seen, clone.updates, clone._filled) == (10, 1, 10)
    assert torch.equal(clone._buffer, trainer._buffer)
    for a, b in zip(clone.discriminator.parameters(), d.parameters(), strict=True):
        assert torch.equal(a, b)


def test_bad_input() -> None:
    d = build_discriminator("lstm", 20, 6)
    with pytest.raises(ValueError, match="update_every"):
        AdversarialConfig(update_every=0)
    with pytest.raises(TypeError, match="nn.Module"):
        DiscriminatorTrainer(lambda y: y.float().sum(1), real_sampler)
    trainer = DiscriminatorTrainer(d, real_sampler)
    with pytest.raises(RuntimeError, match="no generated sequences"):
        trainer.update()
    with pytest.raises(ValueError, match="integer ids"):
        trainer.observe(torch.rand(3, 6))

"""Stock stable-baselines3 PPO as a ``textgan bench`` variant (``--agents ...,ppo``).

Why it is shaped like this: the spec asks for unmodified SB3 PPO on the same env, so this
cell trains ``PPO("MlpPolicy")`` with the token-embedding extractor on the seed's own data,
oracle and discriminator (the agents' :func:`agents.training.build_setup`), rewarded by the
same discriminator, which :class:`agents.sb3.DiscriminatorUpdateCallback` keeps training on
SeqGAN's schedule (a :class:`agents.sb3.DiscriminatorSchedule` of one phase per rollout). The trained policy is wrapped by :class:`agents.sb3.SB3SequencePolicy` and
evaluated by exactly the code every other variant gets.

Budget mapping: one bench generator update = one PPO update, i.e. one rollout of ``batch_size``
envs x ``seq_len`` steps (``batch_size`` complete sequences, as many as one generator update of
the other agents) followed by PPO's own epochs of minibatch SGD. So ``budget`` updates are
``budget * batch_size * seq_len`` env steps. After each rollout the discriminator gets
``d_steps`` rounds of ``d_epochs`` epochs on ``d_negatives`` fresh samples of the current
policy (the agents' schedule with ``g_steps = 1``).

Stock PPO cannot start from the MLE-pretrained LSTM generator (its policy is an MLP over the
env's observation, not an LSTM), so this variant starts from scratch: its step-0 row is the
untrained policy, and the discriminator is pre-trained (``d_pretrain_steps`` rounds) against
the agents' untrained LSTM generator, as the other agents' set-up would without MLE.

Resume: the model (``ppo_model.zip``) and the discriminator are saved after every segment and
an interrupted cell continues from its last one; SB3 does not save its sampling RNG, so a
resumed cell is equivalent but not bit-identical to an uninterrupted one.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from agents.bench.evaluate import evaluate, temperature_sweep
from agents.setup import CommonConfig  # noqa: F401  (the cell's config, for the registry)

Row = dict[str, Any]

MODEL_FILE = "ppo_model.zip"
DISC_FILE = "ppo_discriminator.pt"


def ppo_env(setup: Any, num_envs: int) -> Any:
    """The agents' vector env for ``setup`` in numpy mode (SB3's), wrapped for SB3 with episode stats."""
    from stable_baselines3.common.vec_env import VecMonitor

    from agents.sb3 import SB3VecEnvAdapter
    from textgan_envs.envs.sources import CorpusSource, OracleSource
    from textgan_envs.envs.vector_env import TextGenerationVectorEnv

    source: Any = (
        OracleSource(setup.oracle)
        if setup.oracle is not None
        else CorpusSource(setup.real, setup.vocab)
    )
    venv = TextGenerationVectorEnv(
        num_envs,
        setup.policy.vocab_size,
        setup.policy.seq_len,
        discriminator=setup.discriminator,
        reward_mode="prob",
        real_data=source,
        decode=source.decode,
        discriminator_seed=None,
        as_torch=False,
        device=setup.device,
    )
    return VecMonitor(SB3VecEnvAdapter(venv))


def run_ppo_cell(runner: Any, seed: int, budget: int, out_dir: Path) -> list[Row]:
    """Train stock PPO for ``budget`` updates in the bench's segments; metrics rows as other cells."""
    from stable_baselines3 import PPO

    from agents.bench import runners as rn
    from agents.runtime import atomic_save, load_checkpoint
    from agents.sb3 import (
        DiscriminatorSchedule,
        DiscriminatorUpdateCallback,
        SB3SequencePolicy,
        token_policy_kwargs,
    )
    from agents.setup import build_setup
    from textgan_envs.adversarial import AdversarialConfig, DiscriminatorTrainer

    cfg = runner.cfg
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    task = rn.build_task(cfg, seed)
    settings = cfg.eval_settings()
    with tempfile.TemporaryDirectory() as tmp:
        common = rn._common_config(cfg, seed, Path(tmp), mle_epochs=0)
        setup = build_setup(common, Path(tmp), resume=False)
    n_envs, seq_len = common.batch_size, setup.policy.seq_len
    steps_per_update = n_envs * seq_len
    env = ppo_env(setup, n_envs)

    progress_path = out_dir / rn.PROGRESS_FILE
    progress = json.loads(progress_path.read_text()) if progress_path.exists() else None
    model_path, disc_path = out_dir / MODEL_FILE, out_dir / DISC_FILE
    resumed = progress is not None and len(progress["rows"]) > 1 and model_path.exists()
    trained = 0  # updates the saved model has had (may exceed the recorded step if killed)
    if resumed:
        model = PPO.load(model_path, env=env, device=setup.device)
        state = load_checkpoint(disc_path, ["discriminator", "d_optimizer", "step"])
        trained = int(state["step"])
        setup.discriminator.load_state_dict(state["discriminator"])
        setup.d_optimizer.load_state_dict(state["d_optimizer"])
    else:
        model = PPO(
            "MlpPolicy",
            env,
            n_steps=seq_len,
            batch_size=max(d for d in range(1, 65) if steps_per_update % d == 0),
            gamma=1.0,
            seed=seed,
            policy_kwargs=token_policy_kwargs(),
            device=setup.device,
            verbose=0,
        )
    policy = SB3SequencePolicy(model)
    sample_gen = torch.Generator(device=setup.device).manual_seed(seed + 5)
    real_gen = torch.Generator().manual_seed(seed + 4)
    real = setup.real

    def real_sampler(n: int) -> torch.Tensor:
        return real[torch.randint(len(real), (n,), generator=real_gen).to(real.device)]

    def fake_sampler(n: int) -> torch.Tensor:
        with torch.no_grad():
            return policy.sample(n, generator=sample_gen)

    trainer = DiscriminatorTrainer(
        setup.discriminator,
        real_sampler,
        AdversarialConfig(batch_size=common.d_batch_size),
        optimizer=setup.d_optimizer,
        fake_sampler=fake_sampler,
        seed=seed + 4,
    )
    schedule = DiscriminatorSchedule(  # after every rollout: the agents' schedule, g_steps = 1
        every_rollouts=1,
        d_steps=max(1, common.d_steps),
        epochs=common.d_epochs,
        n_samples=common.d_negatives,
    )
    callback = DiscriminatorUpdateCallback(trainer, schedule)

    def record(step: int, elapsed: float, extra: Row) -> None:
        row = evaluate(policy, task.eval_data, settings, 1.0, rn._eval_seed(seed))
        progress["wall"] = elapsed
        progress["rows"].append(
            {"phase": "train", "step": step, "wall_time": elapsed, **extra, **row}
        )
        rn._atomic_json(progress, progress_path)

    if progress is None or not resumed:
        progress = {"rows": [], "wall": 0.0}
        row = evaluate(policy, task.eval_data, settings, 1.0, rn._eval_seed(seed))
        progress["rows"].append({"phase": "train", "step": 0, "wall_time": 0.0, **row})
        rn._atomic_json(progress, progress_path)
    done = progress["rows"][-1]["step"]
    for target in rn._segments(budget, cfg.n_checkpoints):
        if target <= done:
            continue
        start = time.perf_counter()
        if target > trained:  # else killed after this segment trained, before it was recorded
            model.learn(
                total_timesteps=(target - trained) * steps_per_update,
                callback=callback,
                reset_num_timesteps=False,
                progress_bar=False,
            )
            trained = target
            model.save(model_path)
            atomic_save(
                {
                    "discriminator": setup.discriminator.state_dict(),
                    "d_optimizer": setup.d_optimizer.state_dict(),
                    "step": trained,
                },
                disc_path,
            )
        done = target
        elapsed = progress["wall"] + time.perf_counter() - start
        extra: Row = {}
        if callback.last_stats is not None:
            extra["d_accuracy"] = float(callback.last_stats.get("accuracy", float("nan")))
            extra["d_loss"] = float(callback.last_stats.get("loss", float("nan")))
        ep_rew = [ep["r"] for ep in model.ep_info_buffer]
        if ep_rew:
            extra["reward"] = float(sum(ep_rew) / len(ep_rew))
        record(done, elapsed, extra)
    return progress["rows"] + temperature_sweep(
        policy, task.eval_data, settings, rn._eval_seed(seed)
    )

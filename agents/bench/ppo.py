"""Stock stable-baselines3 PPO and A2C as ``textgan bench`` variants (``--agents ...,ppo,a2c``).

Why it is shaped like this: the variants must be stock SB3 algorithms on the same env, and a
fair competitor of our agents. So each cell trains ``PPO`` / ``A2C`` with
:class:`agents.sb3.GeneratorPolicy`: its actor *is* the seed's MLE-pretrained ``LSTMPolicy`` (the
same cached start every other variant gets), its value head a linear layer on the generator's
hidden state. The set-up is the agents' own (:func:`agents.setup.build_setup` on the cached MLE
start: the same data, oracle and discriminator, pre-trained for ``d_pretrain_steps`` rounds
against the MLE generator), rewarded by the same discriminator, which
:class:`agents.sb3.DiscriminatorUpdateCallback` keeps training on the agents' schedule.

Budget mapping: one bench generator update = one SB3 update, i.e. one rollout of ``batch_size``
envs x ``seq_len`` steps (``batch_size`` complete sequences, as many as one generator update of
the other agents) followed by the algorithm's own optimisation (PPO: its epochs of minibatch
SGD; A2C: one step). So ``budget`` updates are ``budget * batch_size * seq_len`` env steps.
After each rollout the discriminator gets ``d_steps`` rounds of ``d_epochs`` epochs on
``d_negatives`` fresh samples of the current policy (the agents' schedule with ``g_steps = 1``).
The trained generator (``model.policy.generator``) is evaluated by exactly the code every
other variant gets.

Resume: the model (``<algo>_model.zip``) and the discriminator are saved after every segment and
an interrupted cell continues from its last one; SB3 does not save its sampling RNG, so a
resumed cell is equivalent but not bit-identical to an uninterrupted one.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch

from agents.bench.evaluate import evaluate, temperature_sweep
from agents.setup import CommonConfig  # noqa: F401  (the cell's config, for the registry)

Row = dict[str, Any]

#: The stock SB3 algorithms a bench can run, by registry name.
ALGORITHMS = ("ppo", "a2c")


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


def _model_files(algo: str, out_dir: Path) -> tuple[Path, Path]:
    return out_dir / f"{algo}_model.zip", out_dir / f"{algo}_discriminator.pt"


def _start_setup(runner: Any, seed: int, pretrained: Path, run_dir: Path) -> Any:
    """The agents' set-up of ``seed`` on the cached MLE start (D pre-trained as theirs is)."""
    from agents.bench import runners as rn
    from agents.runtime import seed_everything
    from agents.setup import build_setup

    mle_dst = run_dir / "mle" / "mle_checkpoint.pt"
    if not mle_dst.exists():
        rn._copy_atomic(pretrained, mle_dst)
    cache = str(rn.discriminator_cache_path(pretrained))
    common = rn._common_config(
        runner.cfg, seed, run_dir, data_cache=rn.data_cache_path(pretrained), d_pretrain_cache=cache
    )
    seed_everything(common.seed)  # as the agents' start_run: the same dropout stream, and D cache
    return common, build_setup(common, run_dir, resume=True)  # reads the MLE sub-run


def _new_model(algo: str, env: Any, setup: Any, steps_per_update: int, seq_len: int, seed: int):
    from stable_baselines3 import A2C, PPO

    from agents.sb3 import GeneratorPolicy, generator_policy_kwargs

    common = dict(
        n_steps=seq_len,
        gamma=1.0,
        seed=seed,
        policy_kwargs=generator_policy_kwargs(setup.policy),
        device=setup.device,
        verbose=0,
    )
    if algo == "ppo":
        batch = max(d for d in range(1, 65) if steps_per_update % d == 0)
        return PPO(GeneratorPolicy, env, batch_size=batch, **common)
    return A2C(GeneratorPolicy, env, **common)


def run_sb3_cell(
    runner: Any, algo: str, seed: int, budget: int, pretrained: Path, out_dir: Path
) -> list[Row]:
    """Train SB3 ``algo`` for ``budget`` updates in the bench's segments; rows as other cells."""
    from stable_baselines3 import A2C, PPO

    from agents.bench import runners as rn
    from agents.runtime import atomic_save, load_checkpoint, seed_stream
    from agents.sb3 import DiscriminatorSchedule, DiscriminatorUpdateCallback
    from textgan_envs.adversarial import AdversarialConfig, DiscriminatorTrainer

    if algo not in ALGORITHMS:
        raise ValueError(f"unknown SB3 algorithm {algo!r}; choose one of {ALGORITHMS}")
    cfg = runner.cfg
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    task = rn.build_task(cfg, seed, data_cache=rn.data_cache_path(pretrained))
    settings = cfg.eval_settings()
    common, setup = _start_setup(runner, seed, pretrained, out_dir / "start")
    n_envs, seq_len = common.batch_size, setup.policy.seq_len
    steps_per_update = n_envs * seq_len
    env = ppo_env(setup, n_envs)

    progress_path = out_dir / rn.PROGRESS_FILE
    progress = json.loads(progress_path.read_text()) if progress_path.exists() else None
    model_path, disc_path = _model_files(algo, out_dir)
    resumed = progress is not None and len(progress["rows"]) > 1 and model_path.exists()
    trained = 0  # updates the saved model has had (may exceed the recorded step if killed)
    if resumed:
        model = {"ppo": PPO, "a2c": A2C}[algo].load(model_path, env=env, device=setup.device)
        state = load_checkpoint(disc_path, ["discriminator", "d_optimizer", "step"])
        trained = int(state["step"])
        setup.discriminator.load_state_dict(state["discriminator"])
        setup.d_optimizer.load_state_dict(state["d_optimizer"])
    else:
        model = _new_model(algo, env, setup, steps_per_update, seq_len, seed)
    policy = model.policy.generator  # the trained LSTMPolicy: evaluated like every variant's
    sample_gen = torch.Generator(device=setup.device).manual_seed(seed_stream(seed, "sample"))
    real_gen = torch.Generator().manual_seed(seed_stream(seed, "shuffle"))
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
        seed=seed_stream(seed, "shuffle"),
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
        if ep_rew:  # the env's prob-mode reward, D(y): the other variants' d_fake
            extra["d_fake"] = float(sum(ep_rew) / len(ep_rew))
        record(done, elapsed, extra)
    return progress["rows"] + temperature_sweep(
        policy, task.eval_data, settings, rn._eval_seed(seed)
    )

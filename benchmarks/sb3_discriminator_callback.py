"""What the discriminator callback costs stock stable-baselines3 PPO, side by side in one run.

PPO trains for the same number of steps on the native oracle vector env (SB3VecEnvAdapter,
token-embedding policy, the env's default SeqGAN CNN discriminator) without the callback,
with :class:`agents.sb3.DiscriminatorUpdateCallback` at its default schedule, with the same
phases every rollout, and (``--previous``) with the schedule the callback used to follow
(the trainer's SeqGAN config: 5 d-steps x 3 epochs on its whole buffer every 64 episodes).
Variants are timed round-robin, ``--repeats`` times each, after one untimed warm-up run; the
table shows the median seconds, the ratio to PPO alone and the discriminator phases run.

    .venv/bin/python benchmarks/sb3_discriminator_callback.py --threads 2 --repeats 3 --previous
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import gymnasium as gym
import torch
from stable_baselines3 import PPO

import textgan_envs  # noqa: F401  (registers the ids)
from agents.sb3 import (
    DiscriminatorSchedule,
    DiscriminatorUpdateCallback,
    SB3VecEnvAdapter,
    token_policy_kwargs,
)
from textgan_envs.adversarial import DiscriminatorTrainer


@dataclass(frozen=True)
class Setting:
    """One benchmark configuration (the same for every variant)."""

    steps: int
    vocab_size: int
    seq_len: int
    num_envs: int
    n_steps: int


Variant = Callable[[DiscriminatorTrainer], DiscriminatorUpdateCallback | None]

VARIANTS: dict[str, Variant] = {
    "PPO alone (no callback)": lambda trainer: None,
    "callback, default schedule": lambda trainer: DiscriminatorUpdateCallback(trainer),
    "callback, every rollout": lambda trainer: DiscriminatorUpdateCallback(
        trainer, DiscriminatorSchedule(every_rollouts=1)
    ),
}
PREVIOUS = "callback, previous schedule (5x3, whole buffer, every 64)"
VARIANTS_PREVIOUS: dict[str, Variant] = {
    PREVIOUS: lambda trainer: DiscriminatorUpdateCallback(
        trainer,
        DiscriminatorSchedule(every_sequences=64, d_steps=5, epochs=3, n_samples=10_000),
    ),
}


def cpu_model() -> str:
    """The CPU's ``model name`` from /proc/cpuinfo (the platform's processor string elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def run(setting: Setting, variant: Variant, seed: int = 0) -> tuple[float, int]:
    """Seconds of ``PPO.learn(steps)`` with the variant's callback, and its discriminator phases."""
    venv = gym.make_vec(
        "textgan/Oracle-v0",
        num_envs=setting.num_envs,
        vectorization_mode="vector_entry_point",
        vocab_size=setting.vocab_size,
        seq_len=setting.seq_len,
    )
    trainer = DiscriminatorTrainer(venv.discriminator, venv.real_data)
    model = PPO(
        "MlpPolicy",
        SB3VecEnvAdapter(venv),
        n_steps=setting.n_steps,
        gamma=1.0,
        policy_kwargs=token_policy_kwargs(),
        seed=seed,
        device="cpu",
    )
    callback = variant(trainer)
    start = time.perf_counter()
    model.learn(setting.steps, callback=callback)
    return time.perf_counter() - start, trainer.updates


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=2000, help="PPO total_timesteps")
    parser.add_argument("--vocab-size", type=int, default=50)
    parser.add_argument("--seq-len", type=int, default=8)
    parser.add_argument("--envs", type=int, default=4, help="vector env size")
    parser.add_argument("--n-steps", type=int, default=128, help="PPO steps per env per rollout")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's)"
    )
    parser.add_argument(
        "--previous", action="store_true", help="also time the callback's previous schedule (slow)"
    )
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    setting = Setting(args.steps, args.vocab_size, args.seq_len, args.envs, args.n_steps)
    variants = {**VARIANTS, **(VARIANTS_PREVIOUS if args.previous else {})}
    rollout = setting.num_envs * setting.n_steps
    print(f"CPU: {cpu_model()}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(
        f"PPO {setting.steps} steps (rollouts of {setting.num_envs} envs x {setting.n_steps} "
        f"steps = {rollout // setting.seq_len} sequences), V={setting.vocab_size}, "
        f"T={setting.seq_len}, CNN discriminator; median of {args.repeats}"
    )
    print(f"default schedule: {DiscriminatorSchedule()}")
    warmup = Setting(
        rollout, setting.vocab_size, setting.seq_len, setting.num_envs, setting.n_steps
    )
    run(warmup, VARIANTS["PPO alone (no callback)"])
    times: dict[str, list[float]] = {name: [] for name in variants}
    phases: dict[str, int] = {}
    for _ in range(args.repeats):
        for name, variant in variants.items():
            seconds, phases[name] = run(setting, variant)
            times[name].append(seconds)
    base = statistics.median(times["PPO alone (no callback)"])
    print()
    print("| variant | s (median) | vs PPO alone | discriminator phases | every run, s |")
    print("|---|---:|---:|---:|---|")
    for name, values in times.items():
        median = statistics.median(values)
        runs = ", ".join(f"{v:.2f}" for v in values)
        print(f"| {name} | {median:.2f} | {median / base:.2f}x | {phases[name]} | {runs} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

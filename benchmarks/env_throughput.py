"""Tokens per second of the native vector env against Gymnasium's SyncVectorEnv of scalar envs.

Both run the same step logic and the same terminal discriminator reward (one
shared discriminator module; the vector env scores a whole batch in one call,
the SyncVectorEnv one sequence per call). Actions are pre-drawn uniformly at
random so only env work is timed. Then the per-step cost of the Monte-Carlo
rollout wrapper (SeqGAN's search: N completions of every prefix, scored by D).

    python benchmarks/env_throughput.py                      # SeqGAN's setting: V=5000, T=20, CNN
    python benchmarks/env_throughput.py --discriminator lstm --envs 1 64 256
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np
import torch

from textgan_envs.discriminators import build_discriminator
from textgan_envs.envs import (
    MonteCarloRewardVectorWrapper,
    TextGenerationEnv,
    TextGenerationVectorEnv,
)
from textgan_envs.oracle import OracleLSTM


def run_episodes(
    env, n_envs: int, seq_len: int, vocab: int, budget_s: float, rng
) -> tuple[float, int]:
    """Whole episodes until ``budget_s`` has passed (at least one); returns (seconds, tokens)."""
    env.reset(seed=0)
    actions = rng.integers(0, vocab, size=(seq_len, n_envs))
    tokens, start = 0, time.perf_counter()
    while True:
        for t in range(seq_len):
            env.step(actions[t])
        tokens += n_envs * seq_len
        elapsed = time.perf_counter() - start
        if elapsed >= budget_s:
            return elapsed, tokens


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--vocab-size", type=int, default=5000)
    parser.add_argument("--seq-len", type=int, default=20)
    parser.add_argument("--discriminator", choices=["cnn", "lstm"], default="cnn")
    parser.add_argument("--envs", type=int, nargs="+", default=[1, 64, 256, 1024])
    parser.add_argument(
        "--budget", type=float, default=3.0, help="seconds per measurement (at least one episode)"
    )
    parser.add_argument(
        "--max-sync-envs", type=int, default=1024, help="skip SyncVectorEnv above this many envs"
    )
    parser.add_argument("--mc-envs", type=int, nargs="*", default=[64, 256])
    parser.add_argument("--mc-rollouts", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    V, T = args.vocab_size, args.seq_len
    disc = build_discriminator(args.discriminator, V, T, seed=0)
    rng = np.random.default_rng(0)
    print(f"V={V} T={T} discriminator={args.discriminator} torch threads={args.threads}")
    print(f"{'envs':>6} {'native tok/s':>14} {'sync tok/s':>12} {'ratio':>8}")
    for n in args.envs:
        native = TextGenerationVectorEnv(n, V, T, discriminator=disc)
        sec, tok = run_episodes(native, n, T, V, args.budget, rng)
        native_rate = tok / sec
        sync_rate = float("nan")
        if n <= args.max_sync_envs:
            sync = gym.vector.SyncVectorEnv(
                [lambda: TextGenerationEnv(V, T, discriminator=disc)] * n,
                autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
            )
            sec, tok = run_episodes(sync, n, T, V, args.budget, rng)
            sync_rate = tok / sec
        print(f"{n:>6} {native_rate:>14,.0f} {sync_rate:>12,.0f} {native_rate / sync_rate:>7.1f}x")

    if args.mc_envs:
        policy = OracleLSTM.random(
            1, vocab_size=V, seq_len=T
        )  # stands in for the rollout generator
        print(
            f"\nMonte-Carlo rollout wrapper: N={args.mc_rollouts} completions per prefix, rollout LSTM 32/32"
        )
        print(f"{'envs':>6} {'plain ms/step':>14} {'MC ms/step':>11} {'MC tok/s':>10}")
        for n in args.mc_envs:
            plain = TextGenerationVectorEnv(n, V, T, discriminator=disc)
            sec, tok = run_episodes(plain, n, T, V, args.budget, rng)
            plain_ms = 1e3 * sec / (tok / n)
            mc = MonteCarloRewardVectorWrapper(
                TextGenerationVectorEnv(n, V, T, discriminator=disc),
                policy,
                n_rollouts=args.mc_rollouts,
            )
            sec, tok = run_episodes(mc, n, T, V, args.budget, rng)
            print(f"{n:>6} {plain_ms:>14.2f} {1e3 * sec / (tok / n):>11.1f} {tok / sec:>10,.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

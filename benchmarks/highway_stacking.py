"""The highway's stacked weights: ``train_discriminator`` steps with three GEMMs vs six, A/B.

Two copies of SeqGAN's CNN with the same weights: the built one, whose highway weights and
biases are halves of one tensor (through oneDNN: three GEMMs twice as wide), and a
``copy.deepcopy`` of it, whose weights have separate storages (six GEMMs). Short epochs of
``--steps`` batches alternate between the two for ``--rounds`` rounds; printed: each one's
median ms a step and the median of the rounds' paired ratios. Only the oneDNN route
(``TEXTGAN_CPU_GEMM=onednn``, the default on AMD CPUs with AVX-512) stacks.

    .venv/bin/python benchmarks/highway_stacking.py [--threads 2] [--rounds 20] [--steps 80]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch

from textgan_envs.discriminators import (
    build_discriminator,
    make_discriminator_optimizer,
    train_discriminator,
)
from textgan_envs.discriminators.cpu_gemm import gemm_library
from textgan_envs.discriminators.highway import stacked_view
from textgan_envs.native_sampling import cpu_summary
from textgan_envs.process_setup import tune_process

V, T, BATCH = 5000, 20, 64


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--steps", type=int, default=80, help="batches of 64 per timed epoch")
    args = parser.parse_args()
    tune_process()
    torch.set_num_threads(args.threads)
    if gemm_library() != "onednn":
        raise SystemExit("the stacked GEMMs run on the oneDNN route only: TEXTGAN_CPU_GEMM=onednn")
    stacked = build_discriminator("cnn", V, T, seed=0)
    separate = copy.deepcopy(stacked)  # its own storage for every weight: the six-GEMM route
    highway = separate.highway
    assert stacked_view(highway.transform.weight, highway.gate.weight) is None
    models = {"three GEMMs (stacked)": stacked, "six GEMMs (separate)": separate}
    optimisers = {name: make_discriminator_optimizer(m) for name, m in models.items()}
    data = torch.Generator().manual_seed(0)
    half = args.steps * BATCH // 2
    real, fake = (torch.randint(0, V, (half, T), generator=data) for _ in range(2))
    for name, model in models.items():
        train_discriminator(model, optimisers[name], real[:320], fake[:320])
    ms: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(args.rounds):
        for name, model in models.items():
            start = time.perf_counter()
            train_discriminator(model, optimisers[name], real, fake)
            ms[name].append((time.perf_counter() - start) / args.steps * 1e3)
    print(
        f"CPU: {cpu_summary()}; {args.threads} threads; {args.rounds} rounds of {args.steps} steps"
    )
    print("\n| highway | ms/step (median) | every round |\n|---|---:|---|")
    for name, values in ms.items():
        rounds = ", ".join(f"{v:.1f}" for v in values)
        print(f"| {name} | {statistics.median(values):.1f} | {rounds} |")
    three, six = ms["three GEMMs (stacked)"], ms["six GEMMs (separate)"]
    paired = statistics.median(s / t for s, t in zip(six, three, strict=True))
    print(f"\nsix / three, median of the rounds' paired ratios: {paired:.3f}")


if __name__ == "__main__":
    main()

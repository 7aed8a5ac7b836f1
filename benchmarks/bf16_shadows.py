"""bfloat16 training of SeqGAN's CNN with and without the highway weights' bfloat16 shadows.

Two bf16 models with the same initial weights, each with its own
``make_discriminator_optimizer`` (a ``ShadowedAdam`` for the default, fused Adam for
``bf16_shadows=False``), train alternately: ``--steps`` batches of 64 each per round,
``--rounds`` rounds, so a busy stretch of a shared machine slows both. Printed: the median
forward (with loss), backward, optimiser and whole-step milliseconds of each, after
``--warmup`` rounds, with the CPU line; and the time of the C Adam pass on one 1720x1720
weight next to PyTorch's fused Adam with and without the two casts it replaces.

    .venv/bin/python benchmarks/bf16_shadows.py [--threads 2] [--rounds 40] [--steps 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections import defaultdict

import torch
import torch.nn.functional as F

from textgan_envs.allocator import retain_freed_memory
from textgan_envs.discriminators import build_discriminator, make_discriminator_optimizer
from textgan_envs.discriminators.native import adam_step_bf16_grad, native_conv_bank_available
from textgan_envs.native_sampling import cpu_summary

V, T, BATCH, SIZE = 5000, 20, 64, 1720
PARTS = ("forward", "backward", "optimiser", "step")


def step_times(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """Median ms of each part of a training step, per variant, round-robin."""
    models = {}
    for name, shadows in (("weights rounded every step", False), ("shadows (default)", True)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # the CPU line names its flags
            disc = build_discriminator("cnn", V, T, seed=0, train_precision="bfloat16")
        disc.bf16_shadows = shadows
        models[name] = (disc.train(), make_discriminator_optimizer(disc))
    gen = torch.Generator().manual_seed(0)
    batches = [torch.randint(0, V, (BATCH, T), generator=gen) for _ in range(16)]
    labels = (torch.rand(BATCH, generator=gen) > 0.5).float()
    times: dict[tuple[str, str], list[float]] = defaultdict(list)
    for round_ in range(args.warmup + args.rounds):
        for name, (disc, optimizer) in models.items():
            for i in range(args.steps):
                tokens = batches[(round_ * args.steps + i) % len(batches)]
                t0 = time.perf_counter()
                loss = F.binary_cross_entropy_with_logits(disc(tokens), labels)
                loss = loss + disc.regularization()
                t1 = time.perf_counter()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                t2 = time.perf_counter()
                optimizer.step()
                t3 = time.perf_counter()
                if round_ >= args.warmup:
                    for part, secs in zip(PARTS, (t1 - t0, t2 - t1, t3 - t2, t3 - t0), strict=True):
                        times[name, part].append(secs)
    return {
        name: {part: 1e3 * statistics.median(times[name, part]) for part in PARTS}
        for name in models
    }


def adam_pass_times(repeats: int = 30) -> dict[str, float]:
    """Median ms of one weight's update: the C pass and fused Adam with and without the casts
    (a 64 MB buffer is touched before each, as Adam's pass over 7M parameters would)."""
    gen = torch.Generator().manual_seed(0)
    start = torch.randn(SIZE * SIZE, generator=gen) * 0.02
    grads = [torch.randn(SIZE * SIZE, generator=gen).bfloat16() for _ in range(4)]
    widened = [g.float() for g in grads]
    reference = start.clone().requires_grad_()
    adam = torch.optim.Adam([reference], lr=1e-4, fused=True)
    param, m, v = start.clone(), torch.zeros_like(start), torch.zeros_like(start)
    low = torch.empty_like(grads[0])
    flush = torch.empty(16 * 1024 * 1024)
    runs: dict[str, list[float]] = defaultdict(list)
    for step in range(1, repeats + 1):
        flush.add_(1.0)
        t0 = time.perf_counter()
        adam_step_bf16_grad(param, m, v, grads[step % 4], low, float(step), 1e-4, 0.9, 0.999, 1e-8)
        runs["C pass (bf16 gradient in, bf16 copy out)"].append(time.perf_counter() - t0)
        flush.add_(1.0)
        reference.grad = widened[step % 4]
        t0 = time.perf_counter()
        adam.step()
        runs["fused Adam alone"].append(time.perf_counter() - t0)
        flush.add_(1.0)
        t0 = time.perf_counter()
        reference.grad = grads[step % 4].float()
        adam.step()
        reference.detach().bfloat16()
        runs["fused Adam + both casts"].append(time.perf_counter() - t0)
    return {name: 1e3 * statistics.median(secs[3:]) for name, secs in runs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--steps", type=int, default=5, help="steps per model per round")
    parser.add_argument("--warmup", type=int, default=4)
    args = parser.parse_args()
    if not native_conv_bank_available():
        raise SystemExit("the native discriminator kernels did not build here: no shadows to time")
    retain_freed_memory()
    torch.set_num_threads(args.threads)
    print(f"CPU: {cpu_summary()}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{args.rounds} rounds of {args.steps} steps per model, batch {BATCH}, median ms\n")
    print("| path | " + " | ".join(PARTS) + " |")
    print("|---|" + "---:|" * len(PARTS))
    for name, parts in step_times(args).items():
        print(f"| {name} | " + " | ".join(f"{parts[p]:.2f}" for p in PARTS) + " |")
    print(f"\n| one {SIZE}x{SIZE} weight's update | ms |\n|---|---:|")
    for name, ms in adam_pass_times().items():
        print(f"| {name} | {ms:.2f} |")


if __name__ == "__main__":
    main()

"""A SeqGAN CNN training step with its float32 GEMMs through each library, A/B in one process.

Two discriminators with the same initial weights train on the same random batches (V=5,000,
T=20, batch 64), one with ``TEXTGAN_CPU_GEMM=aten`` (PyTorch's ``addmm``, MKL on x86) and one
with ``onednn``, alternating ``--steps`` steps each for ``--rounds`` rounds; printed: every
round's ms a step and the median, and the last loss of each (the two agree to float32
rounding). With ``MKL_VERBOSE=1`` / ``ONEDNN_VERBOSE=1`` the libraries print each call's own
time; to hold both to AVX2, ``ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2
ATEN_CPU_CAPABILITY=avx2``.

    .venv/bin/python benchmarks/gemm_library_step.py [--threads 2] [--rounds 6] [--steps 60]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from textgan_envs.discriminators import build_discriminator, make_discriminator_optimizer
from textgan_envs.discriminators.cpu_gemm import gemm_library_set_to, onednn_linear_available
from textgan_envs.native_sampling import cpu_summary
from textgan_envs.process_setup import tune_process

V, T, BATCH, ROWS = 5000, 20, 64, 20000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--steps", type=int, default=60)
    args = parser.parse_args()
    tune_process()
    torch.set_num_threads(args.threads)
    if not onednn_linear_available():
        raise SystemExit("this PyTorch build cannot run float32 linear layers through oneDNN")
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, V, (ROWS, T), generator=gen)
    y = (torch.arange(ROWS) % 2).float()
    libraries = ("aten", "onednn")
    models = {}
    for library in libraries:
        disc = build_discriminator("cnn", V, T, seed=0).train()
        models[library] = (disc, make_discriminator_optimizer(disc))

    def step(library: str, i: int) -> float:
        disc, opt = models[library]
        rows = slice((i * BATCH) % (ROWS - BATCH), (i * BATCH) % (ROWS - BATCH) + BATCH)
        loss = F.binary_cross_entropy_with_logits(disc(x[rows]), y[rows]) + disc.regularization()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return float(loss)

    ms: dict[str, list[float]] = {name: [] for name in libraries}
    last: dict[str, float] = {}
    for round_ in range(args.rounds):
        for library in libraries:
            with gemm_library_set_to(library):
                torch.manual_seed(round_)  # the same dropout masks for both
                start = time.perf_counter()
                for i in range(args.steps):
                    last[library] = step(library, round_ * args.steps + i)
                ms[library].append(1e3 * (time.perf_counter() - start) / args.steps)
    print(f"CPU: {cpu_summary()}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| library | ms a step, every round | median | last loss |")
    print("|---|---|---:|---:|")
    for library in libraries:
        every = ", ".join(f"{v:.1f}" for v in ms[library])
        print(
            f"| {library} | {every} | {statistics.median(ms[library]):.1f} | {last[library]:.6f} |"
        )


if __name__ == "__main__":
    main()

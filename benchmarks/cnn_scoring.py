"""Seconds for SeqGAN's CNN discriminator to score one generator step's Monte-Carlo completions.

64 x 19 x 16 + 64 = 19,520 sequences (T=20, V=5,000), scored the ways a generator step can:
one call with the whole batch, the module's default 1,024-row chunks, the reference loop's
batches of 64, and the default chunks under ``torch.autocast(bfloat16)`` (with how far its
logits and D = sigmoid(logit) move); then the default chunks with the float32 GEMMs forced
through each library (``TEXTGAN_CPU_GEMM``, ``cpu_gemm.py``; the rows above use this CPU's
default). Same weights, same tokens, one process.

    .venv/bin/python benchmarks/cnn_scoring.py [--threads 2] [--repeats 2] [--default-allocator]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from textgan_envs.allocator import retain_freed_memory
from textgan_envs.discriminators import build_discriminator
from textgan_envs.discriminators.cpu_gemm import (
    gemm_library,
    gemm_library_set_to,
    onednn_linear_available,
)
from textgan_envs.native_sampling import cpu_summary

ROWS, T, V = 64 * 19 * 16 + 64, 20, 5000


def seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument(
        "--default-allocator",
        action="store_true",
        help="keep glibc's default malloc thresholds (textgan's commands raise them)",
    )
    args = parser.parse_args()
    if not args.default_allocator:
        retain_freed_memory()
    torch.set_num_threads(args.threads)
    disc = build_discriminator("cnn", V, T, seed=0).eval()
    tokens = torch.randint(0, V, (ROWS, T), generator=torch.Generator().manual_seed(0))

    def one_call() -> torch.Tensor:
        disc.rows_per_chunk = ROWS
        try:
            return disc(tokens)
        finally:
            disc.rows_per_chunk = type(disc).rows_per_chunk

    def bf16() -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return disc(tokens)

    with torch.no_grad():
        rows = [
            ("one call, all rows", seconds(one_call, args.repeats)),
            (f"chunks of {disc.rows_per_chunk} (default)", seconds(lambda: disc(tokens), args.repeats)),
            ("batches of 64 (reference loop)", seconds(lambda: [disc(p) for p in tokens.split(64)], args.repeats)),
            ("default chunks, autocast bfloat16", seconds(bf16, args.repeats)),
        ]  # fmt: skip
        for library in ["aten"] + (["onednn"] if onednn_linear_available() else []):
            with gemm_library_set_to(library):
                secs = seconds(lambda: disc(tokens), args.repeats)
            rows.append((f"default chunks, {library} GEMMs", secs))
        exact, approx = disc(tokens), bf16().float()
    allocator = "glibc default" if args.default_allocator else "retain_freed_memory()"
    print(f"CPU: {cpu_summary()}; torch {torch.__version__}; float32 GEMMs: {gemm_library()}")
    print(f"{ROWS} sequences, T={T}, V={V}, threads={torch.get_num_threads()}, {allocator}")
    print(f"{'scoring':<40} {'seconds':>8}")
    for name, secs in rows:
        print(f"{name:<40} {secs:>8.2f}")
    logit_gap = (approx - exact).abs().max().item()
    d_gap = (approx.sigmoid() - exact.sigmoid()).abs().max().item()
    print(f"bfloat16 vs float32: max |logit| gap {logit_gap:.3f}, max |D| gap {d_gap:.4f}")


if __name__ == "__main__":
    main()

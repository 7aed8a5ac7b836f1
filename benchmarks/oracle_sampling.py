"""Seconds to sample 10,000 oracle sequences with each categorical sampler, and to score them.

Every method runs through the real ``sample_sequences`` code path (with the
projection path switched off, the ``sample_categorical`` that
``textgan_envs.sampling.next_token`` calls is swapped for the method under test; or
the projection sampler is pinned to one precision), on
the same oracle, in the same run. Each method gets a fresh process: the per-step
``[rows, 5000]`` temporaries make timings depend on the allocator's state, which
one method would otherwise leave behind for the next. All rows but one run with
``retain_freed_memory()`` (as the ``textgan`` command does); that row shows
glibc's default for comparison.

    .venv/bin/python benchmarks/oracle_sampling.py [--oracle PATH.npz] [--n 10000] [--threads 2]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import torch

from textgan_envs import native_sampling as N
from textgan_envs import sampling as S
from textgan_envs.allocator import retain_freed_memory
from textgan_envs.oracle import OracleLSTM
from textgan_envs.projection_sampling import ProjectionSampler, set_projection_sampling
from textgan_envs.sampling import next_token

DEFAULT = "default"
METHODS: dict[str, Callable[..., torch.Tensor] | str] = {
    "multinomial (torch.multinomial on softmax)": S.sample_categorical_multinomial,
    "gumbel-max (one uniform per class)": S.sample_categorical_gumbel,
    "inverse-CDF in PyTorch on model.step logits": S.sample_categorical_inverse_cdf,
    "C kernel on model.step logits": S.sample_categorical_native,
    "C kernel on model.step logits, portable build": "portable:logits",
    "projection sampler, float32": "float32",
    "projection sampler, float32, portable build": "portable:float32",
    "projection sampler, bfloat16 + rejection": "bfloat16",
    "default, glibc's default allocator": DEFAULT,
    "default": DEFAULT,
}
# Every row but this one runs with textgan_envs.allocator.retain_freed_memory(), as the
# textgan command does.
DEFAULT_ALLOCATOR_ROW = "default, glibc's default allocator"


@contextlib.contextmanager
def using(method: Callable[..., torch.Tensor] | str) -> Iterator[None]:
    """Route ``sample_sequences`` through one method: the default, a logits sampler after
    ``model.step``, or the projection sampler in one precision."""
    saved = next_token.sample_categorical, next_token._projection_sampler
    if isinstance(method, str) and method.startswith("portable:"):
        N.set_native_arch("portable")
        method = method.removeprefix("portable:")
        if method == "logits":
            method = S.sample_categorical_native
    old = set_projection_sampling("auto" if method == DEFAULT else not callable(method))
    if method in ("float32", "bfloat16"):

        def projection(model: object) -> ProjectionSampler:
            weight, bias = model.output_projection()  # type: ignore[attr-defined]
            return ProjectionSampler(weight, bias, precision=method)

        next_token._projection_sampler = projection
    elif callable(method):
        next_token.sample_categorical = method
    try:
        yield
    finally:
        next_token.sample_categorical, next_token._projection_sampler = saved
        set_projection_sampling(old)
        N.set_native_arch("native")


def default_route(device: str) -> str:
    """What ``oracle.sample`` uses on this machine."""
    oracle = OracleLSTM.random(0, vocab_size=10, emb_dim=2, hidden_dim=2, device=device)
    sampler = next_token._projection_sampler(oracle)
    if sampler is not None:
        return f"projection sampler, {sampler.precision}"
    return "C kernel" if next_token._native_cpu(oracle.device) else "inverse-CDF in PyTorch"


def timed(fn: Callable[[], object]) -> tuple[float, float, object]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def load_oracle(path: str, device: str) -> tuple[OracleLSTM, str]:
    try:
        return OracleLSTM.from_npz(path, device=device), path
    except FileNotFoundError:
        return OracleLSTM.random(88, device=device), "seeded N(0,1) oracle (seed 88)"


def measure(args: argparse.Namespace) -> dict[str, float]:
    """Median wall/CPU seconds of ``args.repeats`` draws of ``args.n`` sequences with one method."""
    if args.only != DEFAULT_ALLOCATOR_ROW:
        retain_freed_memory()
    oracle, _ = load_oracle(args.oracle, args.device)
    method = METHODS[args.only]
    with using(method):  # warm-up: compiles the fused sampler, settles the allocator
        warm_gen = torch.Generator(device=oracle.device).manual_seed(0)
        first, _, _ = timed(lambda: oracle.sample(2500, generator=warm_gen))
        runs = []
        for seed in range(args.repeats):
            gen = torch.Generator(device=oracle.device).manual_seed(seed)
            runs.append(timed(lambda g=gen: oracle.sample(args.n, generator=g)))
    wall = statistics.median(r[0] for r in runs)
    cpu = statistics.median(r[1] for r in runs)
    score_wall, score_cpu, nll = timed(lambda: oracle.nll(runs[-1][2]))
    return {
        "wall": wall,
        "cpu": cpu,
        "nll": nll.mean().item(),
        "score_wall": score_wall,
        "first": first,
    }


def profile(args: argparse.Namespace) -> None:
    """Where one draw of ``args.n`` sequences with ``args.profile`` spends its time.

    For the bfloat16 projection sampler it also counts the rows whose candidates were
    all rejected (redrawn from float32 logits), which tells how tight the error bound is.
    """
    retain_freed_memory()
    oracle, _ = load_oracle(args.oracle, args.device)
    redrawn = [0, 0]
    kernels = {name: getattr(N, name) for name in ("sample_rows_bf16", "sample_projected")}

    def counting(name: str) -> Callable[..., tuple[torch.Tensor, torch.Tensor]]:
        def kernel(*kernel_args: object, **kwargs: object) -> tuple[torch.Tensor, torch.Tensor]:
            tokens, redraw = kernels[name](*kernel_args, **kwargs)
            redrawn[0] += int(redraw.sum())
            redrawn[1] += redraw.numel()
            return tokens, redraw

        return kernel

    with using(METHODS[args.profile]):
        oracle.sample(2500, generator=torch.Generator().manual_seed(0))  # warm-up
        with torch.profiler.profile() as prof:
            oracle.sample(args.n, generator=torch.Generator().manual_seed(1))
        for name in kernels:
            setattr(N, name, counting(name))
        try:
            oracle.sample(args.n, generator=torch.Generator().manual_seed(2))
        finally:
            for name, kernel in kernels.items():
                setattr(N, name, kernel)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))
    print("(the C kernel runs outside torch's operators: it is the wall time the table lacks)")
    if redrawn[1]:
        print(
            f"rows redrawn from float32 logits (all candidates rejected): {redrawn[0]} of "
            f"{redrawn[1]} ({redrawn[0] / redrawn[1]:.1e})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--oracle", default="../shared/data/seqgan_oracle_params.npz")
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3, help="timed draws per method (median)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--only", choices=list(METHODS), help=argparse.SUPPRESS)
    parser.add_argument(
        "--profile",
        choices=list(METHODS),
        help="instead of the table: torch.profiler's top operators for one draw with this method",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.only:  # child process: one method, result as JSON
        print(json.dumps(measure(args)))
        return
    if args.profile:
        profile(args)
        return
    _, source = load_oracle(args.oracle, "cpu")
    print(f"CPU: {N.cpu_summary()}; kernel build flags: {N.build_flags()}")
    print(
        f"oracle: {source}; n={args.n}; torch threads={torch.get_num_threads()}; "
        f"device={args.device}; median of {args.repeats} draws, each method in a fresh process; "
        f"the default here: {default_route(args.device)}"
    )
    results = {}
    for name in METHODS:
        command = [sys.executable, __file__, "--only", name, "--oracle", args.oracle]
        command += ["--n", str(args.n), "--repeats", str(args.repeats), "--device", args.device]
        command += ["--threads", str(torch.get_num_threads())]
        done = subprocess.run(command, check=True, capture_output=True, text=True)
        results[name] = json.loads(done.stdout.strip().splitlines()[-1])
    base = results[next(iter(METHODS))]["wall"]
    default = results["default"]["wall"]
    print(
        f"{'sampler':<50} {'wall s':>8} {'cpu s':>8} {'speed-up':>9} {'vs default':>11} "
        f"{'NLL-oracle':>11} {'first 2,500 s':>14}"
    )
    print("-" * 117)
    for name, r in results.items():
        print(
            f"{name:<50} {r['wall']:>8.2f} {r['cpu']:>8.2f} {base / r['wall']:>8.1f}x "
            f"{r['wall'] / default:>10.2f}x {r['nll']:>11.4f} {r['first']:>14.2f}"
        )
    print(f"scoring the last samples (NLL-oracle, teacher-forced): {r['score_wall']:.2f} s wall")


if __name__ == "__main__":
    main()

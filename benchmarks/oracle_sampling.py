"""Seconds to sample 10,000 oracle sequences with each categorical sampler, and to score them.

Every method runs through the real ``sample_sequences`` code path (the module's
``sample_categorical`` is swapped for the method under test), on the same
oracle, in one process, so the ratios are side by side. Wall and CPU seconds
are both printed: on a shared machine CPU seconds are the steadier figure.

    .venv/bin/python benchmarks/oracle_sampling.py [--oracle PATH.npz] [--n 10000] [--threads 1]
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Callable, Iterator

import torch

from textgan_envs import sampling as S
from textgan_envs.oracle import OracleLSTM
from textgan_envs.projection_sampling import ProjectionSampler, set_fused_sampling

METHODS: dict[str, Callable[..., torch.Tensor] | str] = {
    "multinomial (torch.multinomial on softmax)": S.sample_categorical_multinomial,
    "gumbel-max (one uniform per class)": S.sample_categorical_gumbel,
    "inverse-CDF, two-level, float32 logits": S.sample_categorical_inverse_cdf,
    "fused projection sampler, float32 proposal": "float32",
    "fused projection sampler, bfloat16 + rejection": "bfloat16",
}


@contextlib.contextmanager
def using(method: Callable[..., torch.Tensor] | str) -> Iterator[None]:
    """Route ``sample_sequences`` through one method: a logits sampler, or the fused path."""
    original_sampler, original_projection = S.sample_categorical, S._projection_sampler
    if isinstance(method, str):
        old = set_fused_sampling(True)

        def projection(model: object) -> ProjectionSampler:
            weight, bias = model.output_projection()  # type: ignore[attr-defined]
            return ProjectionSampler(weight, bias, precision=method)

        S._projection_sampler = projection
    else:
        old = set_fused_sampling(False)
        S.sample_categorical = method
    try:
        yield
    finally:
        S.sample_categorical, S._projection_sampler = original_sampler, original_projection
        set_fused_sampling(old)


def timed(fn: Callable[[], object]) -> tuple[float, float, object]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--oracle", default="../shared/data/seqgan_oracle_params.npz")
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        oracle = OracleLSTM.from_npz(args.oracle, device=args.device)
        source = args.oracle
    except FileNotFoundError:
        oracle = OracleLSTM.random(88, device=args.device)
        source = "seeded N(0,1) oracle (seed 88)"
    print(
        f"oracle: {source}; V={oracle.vocab_size}, T={oracle.seq_len}; n={args.n}; "
        f"torch threads={torch.get_num_threads()}; device={oracle.device}"
    )
    for method in METHODS.values():  # warm-up (compiles the fused sampler once)
        with using(method):
            oracle.sample(600, generator=torch.Generator(device=oracle.device).manual_seed(0))
    rows = []
    samples = None
    for name, method in METHODS.items():
        gen = torch.Generator(device=oracle.device).manual_seed(0)
        with using(method):
            wall, cpu, out = timed(lambda g=gen: oracle.sample(args.n, generator=g))
        rows.append((f"sample: {name}", wall, cpu))
        samples = out
    wall, cpu, nll = timed(lambda: oracle.nll(samples))
    rows.append(("NLL-oracle of the samples (scoring)", wall, cpu))
    base = rows[0][2]
    print(f"{'task':<50} {'wall s':>8} {'cpu s':>8} {'cpu speed-up':>14}")
    print("-" * 90)
    for name, wall, cpu in rows:
        ratio = f"{base / cpu:.1f}x" if name.startswith("sample") else ""
        print(f"{name:<50} {wall:>8.2f} {cpu:>8.2f} {ratio:>14}")
    print(f"(NLL-oracle of the last method's samples: {nll.mean().item():.4f} nats/token)")


if __name__ == "__main__":
    main()

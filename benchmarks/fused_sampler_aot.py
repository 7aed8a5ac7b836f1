"""Building the fused sampler's kernel ahead of time (AOTInductor) vs compiling it in-process.

Why: the fused sampler (``textgan_envs.projection_sampling``) is opt-in because its
``torch.compile`` kernel costs seconds to tens of seconds on a process's first draw.
A kernel package built once (say at set-up) and loaded in milliseconds would remove
that cost for the oracle's shape. This measures both routes for one 512-row chunk
of the published oracle (K=32, V=5,000) and checks they pick the same classes.

    .venv/bin/python benchmarks/fused_sampler_aot.py [--threads 2] [--calls 200] [--out DIR]

Run it with ``TORCHINDUCTOR_CACHE_DIR`` set to a new directory to see cold compile times.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

from textgan_envs import projection_sampling as P
from textgan_envs.allocator import retain_freed_memory
from textgan_envs.oracle import OracleLSTM


def seconds(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--oracle", default="../shared/data/seqgan_oracle_params.npz")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--calls", type=int, default=200, help="timed calls per route")
    parser.add_argument("--out", default=None, help="where the package goes (default: a temp dir)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    retain_freed_memory()
    warnings.simplefilter("ignore")  # the compiler's own deprecation chatter
    try:
        oracle = OracleLSTM.from_npz(args.oracle)
    except FileNotFoundError:
        oracle = OracleLSTM.random(88)
    sampler = P.ProjectionSampler(*oracle.output_projection(), precision="bfloat16")
    rows, constants = sampler.rows_per_call, (sampler.n_blocks, sampler.block, sampler.vocab_size)
    gen = torch.Generator().manual_seed(0)
    features = torch.rand(rows, oracle.hidden_dim, generator=gen) * 2 - 1
    u = torch.rand(rows, 3 * sampler.candidates, generator=gen)
    tensors = (features, sampler.proposal_weight, sampler.class_rows, sampler.weight_norms, u)

    class Propose(torch.nn.Module):
        def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return P._propose(*inputs[:4], inputs[4], 1.0, *constants, True)

    jit = torch.compile(Propose())
    jit_first, jit_out = seconds(lambda: jit(*tensors))

    out_dir = Path(args.out or tempfile.mkdtemp(prefix="textgan_aot_"))
    out_dir.mkdir(parents=True, exist_ok=True)
    export_s, exported = seconds(lambda: torch.export.export(Propose(), tensors))
    build_s, package = seconds(
        lambda: torch._inductor.aoti_compile_and_package(
            exported, package_path=str(out_dir / "propose.pt2")
        )
    )
    load_s, aot = seconds(lambda: torch._inductor.aoti_load_package(package))
    aot_first, aot_out = seconds(lambda: aot(*tensors))

    def per_call(fn: Callable[..., object]) -> float:
        fn(*tensors)
        total, _ = seconds(lambda: [fn(*tensors) for _ in range(args.calls)])
        return total / args.calls

    jit_call, aot_call = per_call(jit), per_call(aot)
    same = torch.equal(jit_out[0], aot_out[0]) and torch.equal(jit_out[1], aot_out[1])
    print(
        f"fused proposal kernel, {rows} rows x V={sampler.vocab_size}, "
        f"{torch.get_num_threads()} threads; package: {package}"
    )
    print(f"{'route':<26} {'one-off cost s':>15} {'first call s':>13} {'per call ms':>12}")
    print("-" * 70)
    print(f"{'torch.compile (in-process)':<26} {'':>15} {jit_first:>13.2f} {jit_call * 1e3:>12.3f}")
    print(
        f"{'AOTInductor package':<26} {export_s + build_s:>15.2f} "
        f"{load_s + aot_first:>13.3f} {aot_call * 1e3:>12.3f}"
    )
    print(
        f"(one-off: export {export_s:.1f} s + build {build_s:.1f} s; first call includes the load)"
    )
    print(f"same classes and redraw flags from both routes: {same}")


if __name__ == "__main__":
    main()

"""Where a bfloat16 training step of SeqGAN's highway layer spends its time, line by line.

``HighwayStep`` (1,720 features, batch 64) with ``gemm_dtype=torch.bfloat16``: each of its
operations timed on its own (``time.perf_counter`` around it, median over ``--steps`` steps after
a warm-up), the whole forward and backward through the autograd function for comparison, and
costs next to it: a weight cast into a fresh tensor against a ``copy_`` into a reused one;
dropout's ``bernoulli_`` mask against a ``torch.rand`` draw and the bfloat16 path's
``keep_mask`` (four 16-bit uniforms per 64-bit draw); and the input-gradient GEMM in three
layouts: ``g W`` (what ``HighwayStep`` runs in bfloat16), ``W^T g^T`` with a transposed A operand
(its float32 layout), and ``W^T`` as a row-major copy, next to the copy it would need.

    .venv/bin/python benchmarks/highway_parts.py [--threads 2] [--steps 40]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict

import torch

from textgan_envs.allocator import retain_freed_memory
from textgan_envs.discriminators.dropout import keep_mask
from textgan_envs.discriminators.highway import HighwayStep, _padded_transpose
from textgan_envs.native_sampling import cpu_summary

FEATURES, BATCH, LOW = 1720, 64, torch.bfloat16


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=40)
    args = parser.parse_args()
    retain_freed_memory()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x, grad = torch.randn(BATCH, FEATURES), torch.randn(BATCH, FEATURES)
    wt, wg = (0.02 * torch.randn(FEATURES, FEATURES) for _ in range(2))
    bt, bg = torch.zeros(FEATURES), torch.zeros(FEATURES)
    reused = torch.empty(FEATURES, FEATURES, dtype=LOW)
    times: dict[str, list[float]] = defaultdict(list)

    def timed(name: str, fn):
        start = time.perf_counter()
        out = fn()
        times[name].append(time.perf_counter() - start)
        return out

    def step() -> None:
        xt = timed("x to bf16, padded transpose", lambda: _padded_transpose(x.to(LOW)))
        wt_low, wg_low = timed("both weights to bf16", lambda: (wt.to(LOW), wg.to(LOW)))
        gate = timed("gate GEMM", lambda: torch.addmm(bg.to(LOW).unsqueeze(1), wg_low, xt))
        r = timed("transform GEMM", lambda: torch.addmm(bt.to(LOW).unsqueeze(1), wt_low, xt))
        t = torch.sigmoid(gate[:, :BATCH].t().float())
        r = r[:, :BATCH].t().float().clamp_min(0)
        ga, gs = timed(
            "backward elementwise + casts",
            lambda: ((grad * t * (r > 0)).to(LOW), (grad * (r - x) * t * (1.0 - t)).to(LOW)),
        )
        timed("input-gradient GEMMs (2), g W as in HighwayStep", lambda: (ga @ wt_low, gs @ wg_low))
        x_low = xt[:, :BATCH].t()
        g_wt = timed("weight-gradient GEMM (1 of 2)", lambda: ga.t() @ x_low)
        timed("weight gradient to fp32 (1 of 2)", lambda: g_wt.float())
        timed("cast one weight into a reused buffer", lambda: reused.copy_(wt))
        timed("dropout mask, bernoulli_", lambda: torch.empty_like(x).bernoulli_(0.75))
        timed("dropout mask, torch.rand", lambda: torch.rand_like(x) < 0.75)
        timed("dropout mask, keep_mask (bf16 path)", lambda: keep_mask(x.shape, 0.75, x.device))
        timed("input-gradient GEMM, W^T g^T, transposed A (1 of 2)", lambda: wt_low.t() @ ga.t())
        wt_low_t = timed("W^T as a row-major bf16 copy", lambda: wt_low.t().contiguous())
        timed("input-gradient GEMM, W^T row-major (1 of 2)", lambda: wt_low_t @ ga.t())
        params = [p.clone().requires_grad_() for p in (wt, bt, wg, bg)]
        x_in = x.detach().requires_grad_()
        y = timed("HighwayStep forward (whole)", lambda: HighwayStep.apply(x_in, *params, LOW))
        timed("HighwayStep backward (whole)", lambda: y.backward(grad))

    for _ in range(5):
        step()
    times.clear()
    for _ in range(args.steps):
        step()
    print(f"CPU: {cpu_summary()}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"highway {FEATURES} features, batch {BATCH}, bf16 GEMMs; median of {args.steps} steps\n")
    print("| part | ms |")
    print("|---|---:|")
    for name, secs in times.items():
        print(f"| {name} | {1e3 * statistics.median(secs):.2f} |")


if __name__ == "__main__":
    main()

"""Performance report: each hot path against this machine's measured matmul rate and memory bandwidth.

    .venv/bin/python benchmarks/roofline.py [--device cpu|cuda|auto] [--disc-sequences 20000]

First measures, in the same run, the machine's two ceilings: the fp32 matmul rate (best of a
few large square GEMMs) and the memory bandwidth (best of a few copies of a 256 MB buffer,
read + write counted). Then times each hot path and prints its floating-point work and the
bytes it moves, both counted analytically from the shapes (formulas below and in the table),
as fractions of those ceilings. A roofline bound per row is ``max(FLOP / peak_flops,
bytes / peak_bw)``; the larger term names the limit that binds on paper, and a row far below
both ceilings is bound by neither but by per-operation overhead (small kernels, the Python
per-token loop, launch latency), which is what batching more rows per kernel moves.

Counting conventions (multiply-add = 2 FLOP; elementwise op = 1 FLOP; fp32 = 4 bytes):

* LSTM step, one row: ``2*(E+H)*4H`` (gates) ``+ 12H`` (cell) ``+ 2HV`` (output layer)
  ``+ 4V`` (sampling: max, subtract+exp, block sums); bytes ``5 * 4V``: the ``[B, V]`` logits
  are written once and streamed 4 more times (max, exp read, probabilities write, block sums).
* CNN discriminator (SeqGAN), one sequence: ``sum_w 2*E*w*n_w*(T-w+1)`` (convolutions) ``+
  2 * 2F^2`` (highway, ``F = sum n_w``) ``+ 2F``; activation bytes ``3 * 4 * sum_w n_w (T-w+1)``
  (conv output written, ReLU, max-pool read). Training costs 3x the forward FLOP/bytes (forward +
  backward) plus ``40 P`` bytes of parameter traffic per minibatch (``P`` parameters: forward read,
  backward read, gradient write, Adam reading parameter/gradient/2 moments and writing 3).
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from textgan_envs.device import resolve_device  # noqa: E402

ORACLE_NPZ = ROOT.parent / "shared" / "data" / "seqgan_oracle_params.npz"
V, T, E, H = 5000, 20, 32, 32  # SeqGAN's synthetic set-up


@dataclass
class Row:
    """One hot path: what ran, how long it took, and the work it needs."""

    name: str
    seconds: float
    flops: float
    bytes: float
    unit: str  # throughput description, e.g. "10000 seq"
    formula: str
    cpu_seconds: float = math.nan


# --------------------------------------------------------------------------- timing


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


LAST_CPU_SECONDS = [math.nan]  # process CPU time of the best timed call (contention check)
REPEATS = [2]  # timed calls per row (--repeats)


def best_time(
    fn: Callable[[], object], device: torch.device, repeats: int, warmup: int = 1
) -> float:
    """Minimum wall time of ``repeats`` calls after ``warmup`` calls (the least-disturbed run)."""
    for _ in range(warmup):
        fn()
    _sync(device)
    best = math.inf
    for _ in range(repeats):
        start, cpu = time.perf_counter(), time.process_time()
        fn()
        _sync(device)
        elapsed = time.perf_counter() - start
        if elapsed < best:
            best, LAST_CPU_SECONDS[0] = elapsed, time.process_time() - cpu
    return best


def machine_peaks(device: torch.device, n: int = 2048, mbytes: int = 256) -> tuple[float, float]:
    """``(matmul FLOP/s, memory bytes/s)`` measured now on ``device``."""
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    out = torch.empty(n, n, device=device)
    t_mm = best_time(lambda: torch.mm(a, b, out=out), device, repeats=5)
    src = torch.empty(mbytes * 2**20 // 4, device=device).fill_(1.0)
    dst = torch.empty_like(src)
    t_copy = best_time(lambda: dst.copy_(src), device, repeats=5)
    return 2 * n**3 / t_mm, 2 * src.numel() * 4 / t_copy


# --------------------------------------------------------------------------- analytic counts


def lstm_step_flops(e: int, h: int, v: int, sample: bool = True) -> float:
    return 2 * (e + h) * 4 * h + 12 * h + 2 * h * v + (4 * v if sample else 3 * v)


def lstm_step_bytes(v: int) -> float:
    return 5 * 4 * v


def cnn_counts(disc) -> tuple[float, float, int]:
    """``(forward FLOP, forward activation bytes)`` per sequence and the parameter count ``P``."""
    emb = disc.embedding.embedding_dim
    flops, acts = 0.0, 0.0
    total = 0
    for conv in disc.convs:
        w, n = conv.kernel_size[0], conv.out_channels
        length = max(disc.seq_len, max(disc.filter_sizes)) - w + 1
        flops += 2 * emb * w * n * length
        acts += 3 * 4 * n * length
        total += n
    flops += 2 * 2 * total * total + 2 * total
    acts += 4 * emb * disc.seq_len
    params = sum(p.numel() for p in disc.parameters())
    return flops, acts, params


# --------------------------------------------------------------------------- hot paths


def _oracle(device: torch.device):
    from textgan_envs.oracle import OracleLSTM

    if ORACLE_NPZ.is_file():
        return OracleLSTM.from_npz(ORACLE_NPZ, seq_len=T, device=device)
    return OracleLSTM.random(0, vocab_size=V, seq_len=T, device=device)


def row_oracle_sampling(device: torch.device, n: int = 10_000) -> Row:
    oracle = _oracle(device)
    gen = torch.Generator(device=device).manual_seed(0)
    seconds = best_time(lambda: oracle.sample(n, generator=gen), device, repeats=REPEATS[0])
    e, h, v = oracle.emb_dim, oracle.hidden_dim, oracle.vocab_size
    return Row(
        f"oracle sampling {n} seq",
        seconds,
        n * T * lstm_step_flops(e, h, v),
        n * T * lstm_step_bytes(v),
        f"{n / seconds:,.0f} seq/s",
        "N*T*(LSTM step + 4V)",
    )


def _seqgan_cnn(device: torch.device):
    from textgan_envs.discriminators import build_discriminator

    return build_discriminator("cnn", V, T, seed=0, device=device)


def row_generator_step(device: torch.device, batch: int = 64, rollouts: int = 16) -> Row:
    from agents.policies import LSTMPolicy
    from agents.reinforce import ReinforceConfig, generator_step
    from agents.setup import Setup
    from textgan_envs.discriminators import make_discriminator_optimizer

    policy = LSTMPolicy(V, T, E, H, device=device)
    disc = _seqgan_cnn(device)
    dummy = torch.zeros((1, T), dtype=torch.long, device=device)
    setup = Setup(device, policy, disc, make_discriminator_optimizer(disc), dummy, dummy)
    cfg = ReinforceConfig(batch_size=batch, n_rollouts=rollouts, vocab_size=V, seq_len=T)
    rollout = copy.deepcopy(policy)
    opt = torch.optim.Adam(policy.parameters(), lr=cfg.g_lr)
    gen = torch.Generator(device=device).manual_seed(0)
    seconds = best_time(
        lambda: generator_step(setup, rollout, opt, cfg, None, gen, 1),
        device,
        repeats=REPEATS[0],
        warmup=0,
    )
    rows = batch * rollouts * T * (T - 1) // 2 + batch * (T - 1)  # rollout + teacher-forced steps
    scored = batch * rollouts * (T - 1) + batch
    d_flops, d_bytes, _ = cnn_counts(disc)
    loss = 3 * batch * T * lstm_step_flops(E, H, V, sample=False)  # teacher-forced fwd + bwd
    return Row(
        f"SeqGAN G step (B={batch}, N={rollouts})",
        seconds,
        (rows + batch * T) * lstm_step_flops(E, H, V) + scored * d_flops + loss,
        (rows + batch * T) * lstm_step_bytes(V) + scored * d_bytes + 3 * batch * T * 4 * V * 3,
        f"{scored / seconds:,.0f} scored seq/s",
        "B*N*T(T-1)/2 rollout steps + (B*N*(T-1)+B) D fwd + 3*B*T loss steps",
    )


def row_disc_epoch(device: torch.device, n: int = 20_000, batch: int = 64) -> Row:
    from textgan_envs.discriminators import make_discriminator_optimizer, train_discriminator

    disc = _seqgan_cnn(device)
    opt = make_discriminator_optimizer(disc)
    gen = torch.Generator().manual_seed(0)
    real = torch.randint(0, V, (n // 2, T), generator=gen).to(device)
    fake = torch.randint(0, V, (n // 2, T), generator=gen).to(device)
    shuffle = torch.Generator().manual_seed(1)
    train_discriminator(disc, opt, real[:batch], fake[:batch], batch_size=batch)  # warm-up
    seconds = best_time(
        lambda: train_discriminator(disc, opt, real, fake, batch_size=batch, generator=shuffle),
        device,
        repeats=1,
        warmup=0,
    )
    d_flops, d_bytes, params = cnn_counts(disc)
    steps = math.ceil(n / batch)
    return Row(
        f"D epoch, {n} seq (CNN, batch {batch})",
        seconds,
        3 * n * d_flops,
        3 * n * d_bytes + steps * 40 * params,
        f"{n / seconds:,.0f} seq/s",
        f"3*N*F_D + ceil(N/batch)*40P (P={params / 1e6:.1f}M)",
    )


def row_vector_env(device: torch.device, num_envs: int = 256, episodes: int = 3) -> Row:
    from textgan_envs.envs.vector_env import OracleVectorEnv

    env = OracleVectorEnv(
        num_envs=num_envs,
        oracle_path=str(ORACLE_NPZ) if ORACLE_NPZ.is_file() else None,
        as_torch=True,
        device=device,
    )
    env.reset(seed=0)
    gen = torch.Generator(device=device).manual_seed(0)
    actions = torch.randint(0, V, (episodes * T, num_envs), generator=gen, device=device)

    def run() -> None:
        for a in actions:
            env.step(a)

    seconds = best_time(run, device, repeats=REPEATS[0])
    d_flops, d_bytes, _ = cnn_counts(env.discriminator)
    steps = episodes * T * num_envs
    return Row(
        f"vector env, {num_envs} envs",
        seconds,
        episodes * num_envs * d_flops,
        episodes * num_envs * d_bytes + episodes * T * num_envs * 8 * (T + 1) * 2,
        f"{steps / seconds:,.0f} env-steps/s",
        "per episode: B*F_D (reward at the last token) + obs copies",
    )


def row_began(device: torch.device, batch: int = 64) -> Row:
    """BEGAN generator + discriminator (auto-encoder) training images/s; FLOPs by FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    from image_samplers.began.config import BEGANConfig
    from image_samplers.began.model import Discriminator, Generator

    config = BEGANConfig(image_size=32)

    g, d = Generator(config).to(device), Discriminator(config).to(device)
    z = torch.rand(batch, config.z_dim, device=device) * 2 - 1

    def step() -> None:
        fake = g(z)
        loss = (d(fake) - fake).abs().mean()
        loss.backward()

    counter = FlopCounterMode(display=False)
    with counter:
        step()
    seconds = best_time(step, device, repeats=REPEATS[0])
    params = sum(p.numel() for p in [*g.parameters(), *d.parameters()])
    return Row(
        f"BEGAN G+D fwd/bwd, 32x32, n={config.num_filters}, batch {batch}",
        seconds,
        float(counter.get_total_flops()),
        40.0 * params,
        f"{batch / seconds:,.0f} img/s",
        "FlopCounterMode fwd+bwd; bytes: 40P (activations not counted)",
    )


ROWS: dict[str, Callable[[torch.device], Row]] = {
    "oracle": row_oracle_sampling,
    "gstep": row_generator_step,
    "disc": row_disc_epoch,
    "env": row_vector_env,
    "began": row_began,
}


def verdict(row: Row, peak_flops: float, peak_bw: float) -> str:
    t_compute, t_memory = row.flops / peak_flops, row.bytes / peak_bw
    bound = max(t_compute, t_memory)
    limit = "compute" if t_compute >= t_memory else "memory"
    if bound < 0.3 * row.seconds:
        return f"overhead ({row.seconds / bound:.0f}x the {limit} bound)"
    return f"{limit} ({row.seconds / bound:.1f}x its bound)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rows", default=",".join(ROWS), help=f"subset of {','.join(ROWS)}")
    parser.add_argument("--disc-sequences", type=int, default=20_000)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--repeats", type=int, default=2, help="timed calls per row (best kept)")
    args = parser.parse_args(argv)
    REPEATS[0] = max(1, args.repeats)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    torch.manual_seed(0)
    load = os.getloadavg()
    peak_flops, peak_bw = machine_peaks(device)
    print(
        f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"load average {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f} on {os.cpu_count()} CPUs"
    )
    print(
        f"machine: matmul {peak_flops / 1e9:.1f} GFLOP/s (fp32 2048^3 GEMM), "
        f"memory {peak_bw / 1e9:.1f} GB/s (256 MB copy, read+write)"
    )
    header = (
        "| hot path | time (s) | CPU s | throughput | GFLOP | GB | GFLOP/s | % matmul peak | GB/s "
        "| % bandwidth | binds | work formula |"
    )
    print(header)
    print("|" + "---|" * 12)
    for key in args.rows.split(","):
        fn = ROWS[key]
        try:
            row = fn(device, n=args.disc_sequences) if key == "disc" else fn(device)
            row.cpu_seconds = LAST_CPU_SECONDS[0]
        except RuntimeError as exc:
            print(f"| {key} | skipped: {exc} |")
            continue
        rate, bw = row.flops / row.seconds, row.bytes / row.seconds
        print(
            f"| {row.name} | {row.seconds:.3f} | {row.cpu_seconds:.2f} | {row.unit} | {row.flops / 1e9:.1f} | "
            f"{row.bytes / 1e9:.2f} | {rate / 1e9:.1f} | {100 * rate / peak_flops:.0f}% | "
            f"{bw / 1e9:.1f} | {100 * bw / peak_bw:.0f}% | {verdict(row, peak_flops, peak_bw)} | "
            f"{row.formula} |",
            flush=True,
        )
    load = os.getloadavg()
    print(f"load average at the end {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

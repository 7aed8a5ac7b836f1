"""DDP scaling: SeqGAN REINFORCE steps at 1 vs 2 processes on CPU (gloo), launched by torchrun.

    .venv/bin/python benchmarks/ddp_scaling.py [--nprocs 1 2] [--steps 4] [--batch 16] ...

For each process count the script launches ``python -m torch.distributed.run
--nproc_per_node=N`` on itself (rendezvous on 127.0.0.1, a free port). Every rank runs the real
data-parallel step: it samples ``--batch`` sequences from its own seed stream
(:func:`agents.runtime.shard_seed`), estimates Monte-Carlo Q with ``--rollouts`` completions
scored by the discriminator, takes a REINFORCE step of the DDP-wrapped ``LSTMPolicy``, then a
discriminator step of the DDP-wrapped discriminator on its real/fake shard (gradients
all-reduced by DDP). Per-rank work is fixed (weak scaling), so the ideal is N times the
1-process throughput; efficiency = throughput(N) / (N * throughput(1)). Each rank uses one
intra-op thread, so 2 processes use 2 cores. The table notes the load average: on a shared
machine other jobs take cores away from the ranks.

This file is also a small standalone data-parallel trainer: run the worker directly under
torchrun (``torchrun --nproc_per_node=N benchmarks/ddp_scaling.py --worker --steps 100``).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agents import estimators as est  # noqa: E402
from agents.episodes import policy_log_probs_and_entropy  # noqa: E402
from agents.loop import clip_and_step  # noqa: E402
from agents.runtime import (  # noqa: E402
    all_reduce_mean,
    barrier,
    init_distributed,
    shard_seed,
    shutdown,
    wrap_ddp,
)


def worker(args: argparse.Namespace) -> None:
    """The data-parallel SeqGAN loop of one rank; rank 0 writes the timing as JSON."""
    from agents.policies import LSTMPolicy
    from textgan_envs.discriminators import (
        build_discriminator,
        eval_logits,
        make_discriminator_optimizer,
        train_discriminator,
    )
    from textgan_envs.oracle import OracleLSTM
    from textgan_envs.rollout import monte_carlo_q

    torch.set_num_threads(1)
    ctx = init_distributed(timeout_s=300)
    torch.manual_seed(args.seed)  # identical initial weights (DDP also broadcasts rank 0's)
    oracle = OracleLSTM.random(0, vocab_size=args.vocab, seq_len=args.seq_len, device=ctx.device)
    policy = LSTMPolicy(args.vocab, args.seq_len, 32, 32, device=ctx.device)
    disc = build_discriminator(args.disc, args.vocab, args.seq_len, seed=1, device=ctx.device)
    policy, disc = wrap_ddp(policy, ctx), wrap_ddp(disc, ctx)
    g_opt = torch.optim.Adam(policy.parameters(), lr=1e-2)
    d_opt = make_discriminator_optimizer(disc)
    gen = torch.Generator(device=ctx.device).manual_seed(shard_seed(args.seed, ctx.rank))
    real = oracle.sample(args.batch * (args.steps + 1), generator=gen)

    def step(i: int) -> float:
        tokens = policy.sample(args.batch, generator=gen)
        q = monte_carlo_q(
            policy,
            lambda y: torch.sigmoid(eval_logits(disc, y)),
            tokens,
            args.rollouts,
            generator=gen,
        )
        log_probs, _ = policy_log_probs_and_entropy(policy, tokens)
        loss = est.reinforce_loss(log_probs, est.clipped_advantages(q, 0.0, clip=None))
        g_opt.zero_grad(set_to_none=True)
        loss.backward()  # DDP all-reduces the generator gradients here
        clip_and_step(g_opt, list(policy.parameters()), 5.0)
        rows = real[i * args.batch : (i + 1) * args.batch]
        train_discriminator(disc, d_opt, rows, tokens, batch_size=2 * args.batch, generator=None)
        return float(all_reduce_mean(q[:, -1].mean(), ctx))

    step(args.steps)  # warm-up (allocations, DDP bucket building)
    barrier(ctx)
    start = time.perf_counter()
    for i in range(args.steps):
        reward = step(i)
    barrier(ctx)
    seconds = time.perf_counter() - start
    if ctx.is_main and args.json:
        result = {
            "world_size": ctx.world_size,
            "seconds": seconds,
            "sequences": ctx.world_size * args.batch * args.steps,
            "reward": reward,
        }
        Path(args.json).write_text(json.dumps(result))
    shutdown(ctx)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(nprocs: int, args: argparse.Namespace, out: Path) -> dict:
    """Run the worker under ``torchrun --nproc_per_node=nprocs`` and return rank 0's JSON."""
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes=1",
        f"--nproc_per_node={nprocs}",
        "--master-addr=127.0.0.1",
        f"--master-port={_free_port()}",
        __file__,
        "--worker",
        "--json",
        str(out),
        *_worker_flags(args),
    ]
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=args.timeout)
    if done.returncode != 0:
        raise SystemExit(f"torchrun with {nprocs} processes failed:\n{done.stderr[-3000:]}")
    return json.loads(out.read_text())


def _worker_flags(args: argparse.Namespace) -> list[str]:
    return [
        f"--steps={args.steps}",
        f"--batch={args.batch}",
        f"--rollouts={args.rollouts}",
        f"--vocab={args.vocab}",
        f"--seq-len={args.seq_len}",
        f"--disc={args.disc}",
        f"--seed={args.seed}",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", action="store_true", help="run one rank (under torchrun)")
    parser.add_argument("--json", default=None, help="worker: where rank 0 writes its timing")
    parser.add_argument("--nprocs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--steps", type=int, default=4, help="timed steps per rank")
    parser.add_argument("--batch", type=int, default=16, help="sequences per rank per step")
    parser.add_argument("--rollouts", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=1000)
    parser.add_argument("--seq-len", type=int, default=20)
    parser.add_argument("--disc", choices=["cnn", "lstm"], default="lstm")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per launch")
    args = parser.parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    print(
        f"SeqGAN REINFORCE step under DDP (gloo, CPU, 1 thread per rank): V={args.vocab}, "
        f"T={args.seq_len}, {args.batch} seq/rank/step, {args.rollouts} rollouts, "
        f"{args.disc} discriminator, {args.steps} timed steps"
    )
    print("| processes | time (s) | sequences | seq/s | speed-up | efficiency | load avg (1 min) |")
    print("|---|---|---|---|---|---|---|")
    base = None
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.nprocs:
            load = os.getloadavg()[0]
            res = launch(n, args, Path(tmp) / f"ddp_{n}.json")
            rate = res["sequences"] / res["seconds"]
            base = base or (rate / n)
            print(
                f"| {n} | {res['seconds']:.2f} | {res['sequences']} | {rate:.1f} | "
                f"{rate / base:.2f}x | {100 * rate / (n * base):.0f}% | {load:.1f} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``textgan began {train,sample,interpolate,eval}``: the command line for BEGAN runs."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from agents.runtime import (
    CheckpointError,
    ConfigError,
    RunDirError,
    RunFinished,
    relaunch_under_torchrun,
    seed_stream,
)
from image_samplers.began.config import BEGANConfig
from image_samplers.began.model import sample_z
from image_samplers.began.train import CHECKPOINT, BEGANTrainer, generate, load_generator
from image_samplers.data import DataError, load_dataset, save_image_grid

EVALUATOR = "evaluator.pt"


def _train(args: argparse.Namespace) -> int:
    if args.nproc_per_node is not None:
        if args.nproc_per_node < 1:
            print("began train: --nproc-per-node must be >= 1", file=sys.stderr)
            return 2
        return relaunch_under_torchrun("image_samplers.began.cli", args.nproc_per_node, args.argv)
    ctx = None
    if args.distributed or "WORLD_SIZE" in os.environ:
        from agents.runtime import DistributedSetupError, init_distributed

        try:
            ctx = init_distributed(timeout_s=args.dist_timeout, device=args.device)
        except DistributedSetupError as exc:
            print(f"began train: {exc}", file=sys.stderr)
            return 2
    try:
        return _train_in_context(args, ctx)
    finally:
        if ctx is not None:
            from agents.runtime import shutdown

            shutdown(ctx)


def _train_in_context(args: argparse.Namespace, ctx: Any) -> int:
    out = Path(args.out)
    main = ctx is None or ctx.is_main
    # SIGTERM (e.g. a job scheduler's stop) takes the KeyboardInterrupt path: checkpoint, then exit.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    if args.resume:
        if not (out / CHECKPOINT).is_file():
            print(
                f"began train: --resume given but {out / CHECKPOINT} does not exist",
                file=sys.stderr,
            )
            return 2
        overrides = {"steps": args.steps} if args.steps is not None else {}
        try:
            trainer = BEGANTrainer.resume(out, device=args.device, ctx=ctx, **overrides)
        except RunFinished as exc:  # nothing left to do: nothing written
            if main:
                print(f"began train: {exc}")
            return 0
        if main:
            print(f"resuming {out} at step {trainer.step} of {trainer.config.steps}")
    else:
        values: dict[str, Any] = {
            "data": args.data,
            "image_size": args.image_size,
            "gamma": args.gamma,
            "seed": args.seed,
            "compile": args.compile,
        }
        optional = {
            "steps": args.steps,
            "batch_size": args.batch_size,
            "num_filters": args.num_filters,
            "z_dim": args.z_dim,
            "h_dim": args.h_dim,
            "lr": args.lr,
            "lr_halve_every": args.lr_halve_every,
            "lr_min": args.lr_min,
            "lambda_k": args.lambda_k,
            "beta1": args.beta1,
            "init": args.init,
            "skip": args.skip,
            "log_every": args.log_every,
            "sample_every": args.sample_every,
            "checkpoint_every": args.checkpoint_every,
            "snapshot_every": args.snapshot_every,
        }
        values.update({k: v for k, v in optional.items() if v is not None})
        config = BEGANConfig(**values)
        trainer = BEGANTrainer(config, out_dir=out, device=args.device, ctx=ctx)
    try:
        last = trainer.train(progress=not args.no_progress)
    except KeyboardInterrupt:
        print(
            f"\ninterrupted: checkpoint at step {trainer.step} in {out / CHECKPOINT}",
            file=sys.stderr,
        )
        return 130
    if main:
        trainer.save_samples(out / "samples.png")
        print(json.dumps({"step": trainer.step, **last}))
    return 0


def _sample(args: argparse.Namespace) -> int:
    generator, _, step = load_generator(args.run, device=args.device)
    images = generate(generator, args.n, seed=args.seed)
    out = Path(args.out) if args.out else Path(args.run) / f"sample_step{step}.png"
    save_image_grid(images, out, nrow=args.nrow)
    print(out)
    return 0


@torch.no_grad()
def _interpolate(args: argparse.Namespace) -> int:
    generator, config, step = load_generator(args.run, device=args.device)
    gen = torch.Generator().manual_seed(args.seed)
    ends = sample_z(2 * args.rows, config.z_dim, gen).view(args.rows, 2, config.z_dim)
    alphas = torch.linspace(0.0, 1.0, args.frames)[None, :, None]
    z = (1 - alphas) * ends[:, :1] + alphas * ends[:, 1:]  # [rows, frames, z_dim], linear in z
    device = next(generator.parameters()).device
    images = generator(z.reshape(-1, config.z_dim).to(device)).cpu()
    out = Path(args.out) if args.out else Path(args.run) / f"interpolation_step{step}.png"
    save_image_grid(images, out, nrow=args.frames)
    print(out)
    return 0


def evaluate_run(
    run: Path,
    n: int,
    device: str,
    seed: int = 0,
    checkpoint: Path | None = None,
    evaluator_epochs: int = 5,
) -> dict[str, float]:
    """Metrics of a run's generator against ``n`` real images, on a cached local evaluator."""
    from image_samplers.metrics import Evaluator, evaluate_samples, train_evaluator

    generator, config, step = load_generator(checkpoint or run, device=device)
    data = load_dataset(config.data, config.image_size)
    if n > len(data):
        raise DataError(f"--n {n} exceeds the {len(data)} real images of {config.data}")
    cache = run / EVALUATOR
    evaluator = None
    if cache.is_file():
        evaluator = Evaluator.load(cache, device=device)
        if evaluator.image_size != config.image_size:
            evaluator = None
    if evaluator is None:
        evaluator = train_evaluator(data, epochs=evaluator_epochs, seed=seed, device=device)
        evaluator.save(cache)
    real = data.images[torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:n]]
    fake = generate(generator, n, seed=seed_stream(seed, "began.eval_fake"))
    return {
        "step": float(step),
        "evaluator_test_accuracy": evaluator.test_accuracy,
        **evaluate_samples(evaluator, real, fake, seed=seed),
    }


def logged_at(metrics_csv: Path, steps: list[int], key: str = "m_global") -> list[float]:
    """``key`` from the log window ending at each of ``steps`` (snapshots align with log steps)."""
    import csv

    with metrics_csv.open(newline="") as handle:
        # a resumed run may re-log a step: the last row for a step wins
        table = {int(row["step"]): float(row[key]) for row in csv.DictReader(handle)}
    missing = [s for s in steps if s not in table]
    if missing:
        raise ValueError(
            f"{metrics_csv} has no row for step(s) {missing}; snapshot_every must be a "
            "multiple of log_every"
        )
    return [table[s] for s in steps]


def correlation(xs: list[float], ys: list[float]) -> dict[str, float]:
    """Pearson and Spearman correlation (with p-values) of two equally long series."""
    from scipy.stats import pearsonr, spearmanr

    if len(xs) != len(ys) or len(xs) < 3:
        raise ValueError(f"need >= 3 paired values to correlate, got {len(xs)} and {len(ys)}")
    pearson = pearsonr(xs, ys)
    spearman = spearmanr(xs, ys)
    return {
        "pearson": float(pearson.statistic),
        "pearson_p": float(pearson.pvalue),
        "spearman": float(spearman.statistic),
        "spearman_p": float(spearman.pvalue),
    }


def _eval(args: argparse.Namespace) -> int:
    run = Path(args.run)
    if args.n < 1000:
        print(f"note: --n {args.n} < 1000; FD and KID are biased at small n", file=sys.stderr)
    targets: list[Path | None] = [None]
    if args.snapshots:
        targets = sorted((run / "snapshots").glob("G_*.pt"))
        if not targets:
            print(f"began eval: no snapshots in {run / 'snapshots'}", file=sys.stderr)
            return 2
    rows = []
    for target in targets:
        result = evaluate_run(run, args.n, args.device, args.seed, checkpoint=target)
        rows.append(result)
        print(json.dumps({k: round(v, 5) for k, v in result.items()}))
    name = "eval_snapshots.json" if args.snapshots else "eval.json"
    if args.snapshots and (run / "metrics.csv").is_file():
        steps = [int(row["step"]) for row in rows]
        for key in ("m_global", "k"):
            for row, value in zip(rows, logged_at(run / "metrics.csv", steps, key), strict=True):
                row[key] = value
        if len(rows) >= 3:
            m_global = [row["m_global"] for row in rows]
            fd = [row["fd"] for row in rows]
            summary = {"m_global_vs_fd": correlation(m_global, fd)}
            print(json.dumps({"snapshots": len(rows), **summary}))
            (run / "eval_snapshots_correlation.json").write_text(
                json.dumps(summary, indent=2) + "\n"
            )
    (run / name).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="textgan began", description="BEGAN image sampler")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train (or --resume) a BEGAN run")
    train.add_argument("--data", default="digits", help="digits | mnist:DIR")
    train.add_argument("--image-size", type=int, default=16)
    train.add_argument("--gamma", type=float, default=0.5)
    train.add_argument("--steps", type=int, default=None)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--device", default="auto")
    train.add_argument("--out", required=True, help="run directory, e.g. runs/NAME")
    train.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    train.add_argument("--batch-size", type=int, default=None)
    train.add_argument("--num-filters", type=int, default=None)
    train.add_argument("--z-dim", type=int, default=None)
    train.add_argument("--h-dim", type=int, default=None)
    train.add_argument("--lr", type=float, default=None)
    train.add_argument("--lr-halve-every", type=int, default=None)
    train.add_argument("--lr-min", type=float, default=None)
    train.add_argument("--lambda-k", type=float, default=None)
    train.add_argument("--beta1", type=float, default=None, help="Adam beta1 (default 0.5)")
    train.add_argument(
        "--init", default=None, help="weight initialisation: xavier (default) | default (PyTorch)"
    )
    train.add_argument(
        "--skip",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="the paper's decoder skip connections (default on)",
    )
    train.add_argument("--log-every", type=int, default=None)
    train.add_argument("--sample-every", type=int, default=None)
    train.add_argument("--checkpoint-every", type=int, default=None)
    train.add_argument("--snapshot-every", type=int, default=None)
    train.add_argument("--compile", action="store_true")
    train.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    train.add_argument("--no-progress", action="store_true")
    train.add_argument(
        "--distributed",
        action="store_true",
        help="join the data-parallel job torchrun started (implied when WORLD_SIZE is set)",
    )
    train.add_argument(
        "--nproc-per-node",
        type=int,
        default=None,
        metavar="N",
        help="launch N data-parallel processes here with torchrun; --batch-size is per process",
    )
    train.add_argument(
        "--dist-timeout", type=float, default=1800.0, help="seconds any rank waits in a collective"
    )
    train.set_defaults(func=_train)

    sample = _run_command(sub, "sample", "write a grid of samples as PNG", _sample)
    sample.add_argument("-n", type=int, default=64)
    sample.add_argument("--nrow", type=int, default=8)
    sample.add_argument("--out", default=None)

    interp = _run_command(
        sub, "interpolate", "PNG strips of linear interpolations in z", _interpolate
    )
    interp.add_argument("--rows", type=int, default=8)
    interp.add_argument("--frames", type=int, default=10)
    interp.add_argument("--out", default=None)

    ev = _run_command(sub, "eval", "FD, KID, precision/recall/density/coverage", _eval)
    ev.add_argument("--n", type=int, default=1000)
    ev.add_argument("--snapshots", action="store_true", help="evaluate every snapshots/G_*.pt")
    return parser


def _run_command(
    sub: argparse._SubParsersAction, name: str, help: str, func: Callable[..., int]
) -> argparse.ArgumentParser:
    """A subcommand that reads a finished run: ``--run``, ``--seed``, ``--device``, ``--threads``."""
    command = sub.add_parser(name, help=help)
    command.add_argument("--run", required=True)
    command.add_argument("--seed", type=int, default=0)
    command.add_argument("--device", default="auto")
    command.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    command.set_defaults(func=func)
    return command


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    for name in ("n", "rows", "frames"):
        if getattr(args, name, 1) is not None and getattr(args, name, 1) <= 0:
            print(f"began {args.command}: --{name} must be positive", file=sys.stderr)
            return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        return int(args.func(args))
    except (ConfigError, DataError, CheckpointError, RunDirError, ValueError) as exc:
        print(f"began {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # also how torchrun starts each rank
    from textgan_envs.process_setup import tune_process

    tune_process()
    raise SystemExit(main())

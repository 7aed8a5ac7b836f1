"""``textgan mle``: MLE-train the generator on samples of the synthetic oracle and score it.

The synthetic experiment of SeqGAN in one command: build the oracle (a freshly
seeded one, or the published parameters from an ``.npz``), sample a training
set and a held-out test set from it, train an :class:`LSTMPolicy` by MLE, and
report NLL-oracle and NLL-test before and after, next to the oracle's own NLL
(the floor). Writes ``metrics.csv``, ``learning_curve.png``, ``config.json``
and a resumable checkpoint under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

from agents.mle import MLEConfig, evaluate, train_mle
from agents.policies import LSTMPolicy
from agents.runtime import CheckpointError
from textgan_envs.device import resolve_device
from textgan_envs.metrics import nll_oracle
from textgan_envs.oracle import OracleLSTM

DEFAULT_EPOCHS = 20
# Settings that must match for --resume to continue the same run.
_RUN_IDENTITY = (
    "oracle",
    "oracle_seed",
    "vocab_size",
    "seq_len",
    "n_train",
    "n_test",
    "seed",
    "batch_size",
    "lr",
    "grad_clip",
    "emb_dim",
    "hidden_dim",
    "n_eval_samples",
)


class _Parser(argparse.ArgumentParser):
    """Argparse that raises instead of exiting, so ``main`` can return an exit code."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ValueError(message)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="textgan mle",
        description="MLE-train the generator on samples of the synthetic oracle and score it.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = parser.add_argument
    add(
        "--oracle",
        default="seeded",
        help="'seeded' (a fresh N(0,1) oracle from --oracle-seed) or a path to oracle params .npz",
    )
    add("--oracle-seed", type=int, default=88, help="seed of the 'seeded' oracle")
    add("--n-train", type=_positive_int, default=10_000, help="oracle samples to train on")
    add("--n-test", type=_positive_int, default=2_000, help="held-out oracle samples for NLL-test")
    add("--epochs", type=_non_negative_int, default=DEFAULT_EPOCHS, help="MLE epochs")
    add("--eval-every", type=_positive_int, default=5, help="evaluate every N epochs")
    add(
        "--n-eval-samples",
        type=_positive_int,
        default=10_000,
        help="generator samples scored for NLL-oracle",
    )
    add("--batch-size", type=_positive_int, default=64)
    add("--lr", type=_positive_float, default=1e-2, help="Adam learning rate (SeqGAN: 0.01)")
    add("--grad-clip", type=float, default=5.0, help="global gradient-norm clip; <= 0 disables")
    add("--seed", type=int, default=0, help="seeds the data sample, initialisation and batches")
    add("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    add("--threads", type=_positive_int, default=None, help="torch CPU threads (default: torch's)")
    add("--out", default="results/mle", help="output directory")
    add("--resume", action="store_true", help="continue from the checkpoint in --out")
    add("--tensorboard", action="store_true", help="also write TensorBoard scalars")
    add("--no-progress", action="store_true", help="hide the progress bar")
    # Small-problem knobs for tests and quick experiments (not shown in --help).
    add("--vocab-size", type=_positive_int, default=5000, help=argparse.SUPPRESS)
    add("--seq-len", type=_positive_int, default=20, help=argparse.SUPPRESS)
    add("--emb-dim", type=_positive_int, default=32, help=argparse.SUPPRESS)
    add("--hidden-dim", type=_positive_int, default=32, help=argparse.SUPPRESS)
    return parser


def build_oracle(args: argparse.Namespace, device: torch.device) -> OracleLSTM:
    """The oracle named by ``--oracle``; a clear error for a bad path."""
    if args.oracle == "seeded":
        if args.vocab_size < 2:
            raise ValueError("--vocab-size must be at least 2")
        return OracleLSTM.random(
            args.oracle_seed,
            vocab_size=args.vocab_size,
            emb_dim=args.emb_dim,
            hidden_dim=args.hidden_dim,
            seq_len=args.seq_len,
            device=device,
        )
    path = Path(args.oracle)
    if path.suffix != ".npz":
        raise ValueError(f"--oracle must be 'seeded' or a .npz file, got {args.oracle!r}")
    if not path.is_file():
        raise ValueError(f"--oracle file {path} does not exist")
    return OracleLSTM.from_npz(path, seq_len=args.seq_len, device=device)


def _check_resume_config(out: Path, config: dict[str, Any]) -> None:
    path = out / "config.json"
    if not path.exists():
        return
    saved = json.loads(path.read_text())
    diff = [k for k in _RUN_IDENTITY if saved.get(k) != config.get(k)]
    if diff:
        details = ", ".join(f"{k}: {saved.get(k)!r} -> {config.get(k)!r}" for k in diff)
        raise ValueError(f"--resume with settings different from the run in {out}: {details}")


def plot_learning_curve(history: list[dict[str, float]], floor: float, path: Path) -> Path:
    """NLL-oracle and NLL-test against epoch, with the oracle's own NLL as the floor."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, title in (
        (axes[0], "nll_oracle", "NLL-oracle (generator samples)"),
        (axes[1], "nll_test", "NLL-test (held-out oracle samples)"),
    ):
        rows = [row for row in history if key in row]
        ax.plot([r["epoch"] for r in rows], [r[key] for r in rows], marker="o", label="generator")
        ax.axhline(floor, color="grey", linestyle="--", label=f"oracle's own NLL ({floor:.3f})")
        ax.set_xlabel("epoch")
        ax.set_ylabel("nats / token")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the whole MLE experiment described by ``args``; returns the summary."""
    t_start = time.perf_counter()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    out = Path(args.out)
    oracle = build_oracle(args, device)
    config = {
        k: (str(v) if isinstance(v, Path) else v)
        for k, v in vars(args).items()
        if k not in {"resume", "no_progress", "threads", "out"}
    }
    config["vocab_size"] = oracle.vocab_size
    if args.resume:
        _check_resume_config(out, config)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")

    data_rng = torch.Generator().manual_seed(args.seed)  # portable: the same data everywhere
    train = oracle.sample(args.n_train, generator=data_rng, portable=True)
    test = oracle.sample(args.n_test, generator=data_rng, portable=True)
    floor = nll_oracle(oracle, test)

    policy = LSTMPolicy(
        oracle.vocab_size,
        oracle.seq_len,
        emb_dim=args.emb_dim,
        hidden_dim=args.hidden_dim,
        device=device,
    )
    policy.reset_parameters(torch.Generator().manual_seed(args.seed))
    cfg = MLEConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        grad_clip=args.grad_clip,
        seed=args.seed,
        eval_every=args.eval_every,
        n_eval_samples=args.n_eval_samples,
        tensorboard=args.tensorboard,
        progress=not args.no_progress,
    )
    history = train_mle(
        policy, train, cfg, valid_tokens=test, oracle=oracle, out_dir=out, resume=args.resume
    )
    plot_learning_curve(history, floor, out / "learning_curve.png")
    before, after = history[0], dict(history[-1])
    if "nll_oracle" not in after:  # resumed after a non-evaluated epoch with nothing left to do
        after.update(evaluate(policy, cfg, oracle, test))
    summary = {
        "oracle_floor_nll": floor,
        "nll_oracle_before": before["nll_oracle"],
        "nll_oracle_after": after["nll_oracle"],
        "nll_test_before": before["nll_test"],
        "nll_test_after": after["nll_test"],
        "epochs": int(after["epoch"]),
        "wall_seconds": time.perf_counter() - t_start,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def format_table(summary: dict[str, Any]) -> str:
    rows = [
        ("oracle on its own samples (floor)", summary["oracle_floor_nll"], None),
        ("generator, random init", summary["nll_oracle_before"], summary["nll_test_before"]),
        (
            f"generator after {summary['epochs']} MLE epochs",
            summary["nll_oracle_after"],
            summary["nll_test_after"],
        ),
    ]
    lines = [f"{'model':<36} {'NLL-oracle':>10} {'NLL-test':>10}", "-" * 58]
    for name, oracle_nll, test_nll in rows:
        test_text = f"{test_nll:>10.3f}" if test_nll is not None else f"{'-':>10}"
        lines.append(f"{name:<36} {oracle_nll:>10.3f} {test_text}")
    lines.append("(nats/token; the floor is the oracle's NLL of its own held-out samples)")
    lines.append(f"wall time {summary['wall_seconds']:.1f} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    except ValueError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    try:
        summary = run(args)
    except (ValueError, FileNotFoundError, CheckpointError) as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    print(format_table(summary))
    print(f"wrote {Path(args.out) / 'metrics.csv'}, learning_curve.png, config.json, checkpoint")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

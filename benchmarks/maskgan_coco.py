"""MaskGAN on COCO captions: MaskMLE, discriminator pre-training, actor-critic; curves and a table.

    .venv/bin/python benchmarks/maskgan_coco.py --out runs/maskgan_coco --png docs/img/maskgan_coco.png

Trains (or resumes) one run with :func:`agents.maskgan.train`, then plots ``metrics.csv`` and
prints the evaluation rows (fill perplexity, n-gram fractions, BLEU-4) and a few filled samples.
Extra ``--set key=value`` overrides go to :class:`agents.maskgan.MaskGANConfig`.
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from agents.maskgan import MaskGANConfig, load_run, train  # noqa: E402
from agents.maskgan_metrics import decode_sentences  # noqa: E402
from agents.runtime import build_config  # noqa: E402
from textgan_envs.vocab import Vocabulary  # noqa: E402

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
DEFAULTS = {
    "corpus_path": str(DATA / "image_coco.txt"),
    "test_path": str(DATA / "test_coco.txt"),
    "mask": "contiguous",
    "present_rate": 0.5,
    "seq_len": 16,
    "vocab_size": 2000,
    "emb_dim": 32,
    "hidden_dim": 48,
    "batch_size": 48,
    "n_eval": 500,
    "max_test_sentences": 2000,
    "mle_steps": 1500,
    "mle_lr": 5e-3,
    "d_pretrain_steps": 500,
    "total_steps": 600,
    "d_steps": 1,
    "g_lr": 1e-4,
    "d_lr": 5e-3,
    "critic_lr": 1e-3,
    "eval_every": 250,
    "checkpoint_every": 50,
    "log_every": 5,
    "num_threads": 1,
    "device": "cpu",
    "tensorboard": False,
}


def _series(rows: list[dict[str, str]], key: str) -> tuple[list[int], list[float]]:
    pts = [(int(r["step"]), float(r[key])) for r in rows if r.get(key) not in (None, "")]
    return [p[0] for p in pts], [p[1] for p in pts]


def plot(run_dir: Path, cfg: MaskGANConfig, png: Path) -> None:
    with (run_dir / "metrics.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    fig, axes = plt.subplots(2, 2, figsize=(11, 7))
    bounds = [cfg.mle_steps, cfg.mle_steps + cfg.d_pretrain_steps]
    ax = axes[0, 0]
    ax.plot(*_series(rows, "fill_ppl"), "o-", label="fill perplexity (held out)")
    ax.plot(*_series(rows, "mle_ppl"), alpha=0.4, label="MaskMLE batch perplexity")
    ax.set_yscale("log")
    ax.set_title("fill perplexity of the true missing tokens")
    ax = axes[0, 1]
    ax.plot(*_series(rows, "reward"), alpha=0.7, label="reward: mean log D per filled token")
    ax.plot(*_series(rows, "return_mean"), alpha=0.5, label="mean discounted return")
    ax.set_title("actor-critic: per-token reward")
    ax = axes[1, 0]
    ax.plot(*_series(rows, "d_loss"), alpha=0.7, label="D loss (missing positions)")
    ax.plot(*_series(rows, "d_accuracy"), alpha=0.7, label="D accuracy")
    ax.plot(*_series(rows, "baseline_mse"), alpha=0.5, label="baseline (critic) MSE to returns")
    ax.set_title("discriminator and critic")
    ax = axes[1, 1]
    for key in ("unique_2gram", "unique_4gram", "seen_2gram", "seen_4gram", "bleu4"):
        ax.plot(*_series(rows, key), "o-", label=key)
    ax.set_title("fills: n-gram fractions, BLEU-4 vs test")
    for ax in axes.flat:
        for b in bounds:
            ax.axvline(b, color="grey", lw=0.8, ls="--")
        ax.set_xlabel("step (MaskMLE | D pre-training | adversarial)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=90)
    plt.close(fig)


def report(run_dir: Path) -> None:
    with (run_dir / "metrics.csv").open(newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r.get("fill_ppl")]
    keys = ["fill_ppl", "unique_2gram", "unique_3gram", "unique_4gram", "seen_2gram", "seen_3gram",
            "seen_4gram", "bleu4", "eval_d_fake", "eval_d_real"]  # fmt: skip
    print("| step | " + " | ".join(keys) + " |")
    print("|" + "---|" * (len(keys) + 1))
    for r in rows:
        vals = [f"{float(r[k]):.3f}" if r.get(k) else "" for k in keys]
        print(f"| {r['step']} | " + " | ".join(vals) + " |")
    _, setup, _ = load_run(run_dir, device="cpu")
    ev = setup.evaluator
    gen = torch.Generator().manual_seed(0)
    filled = setup.generator.sample(ev.masked[:6], generator=gen).filled
    for m, f in zip(
        decode_masked(ev.masked[:6], setup), decode_sentences(filled, setup.vocab), strict=True
    ):
        print(f"masked: {m}\nfilled: {' '.join(f)}\n")


def decode_masked(masked: torch.Tensor, setup) -> list[str]:
    out = []
    for row in masked.tolist():
        words = [
            "__" if i == Vocabulary.MASK else setup.vocab.id_to_token(i)
            for i in row
            if i not in (Vocabulary.PAD, Vocabulary.EOS)
        ]
        out.append(" ".join(words))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/maskgan_coco")
    parser.add_argument("--png", default="docs/img/maskgan_coco.png")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()
    cfg = build_config(MaskGANConfig, {**DEFAULTS, "out_dir": args.out}, args.overrides)
    start = time.perf_counter()
    train(cfg, resume=args.resume)
    print(f"wall time: {time.perf_counter() - start:.0f} s")
    plot(Path(args.out), cfg, Path(args.png))
    report(Path(args.out))


if __name__ == "__main__":
    main()

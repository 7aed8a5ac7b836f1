"""Time Self-BLEU and BLEU of COCO captions: textgan_envs.metrics vs nltk's sentence_bleu loop.

Both sides compute the same numbers (checked here to 1e-9); the table gives seconds and the
speed-up measured in the same run. nltk's loop costs O(hypotheses x references) (about 4 minutes
for each of the two default rows on a 2-core machine), so ``--n-refs`` limits the reference set of
the side-by-side BLEU row; a last row times ours alone against the whole test file.

    .venv/bin/python benchmarks/bleu.py --n 1000 --n-refs 1000
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu  # noqa: E402

from textgan_envs.corpus import load_corpus  # noqa: E402
from textgan_envs.metrics import bleu, self_bleu  # noqa: E402


def _nltk_bleu(hyps: list[list[str]], refs: list[list[str]], max_n: int) -> float:
    smooth = SmoothingFunction().method1
    weights = (1 / max_n,) * max_n
    scores = [sentence_bleu(refs, h, weights=weights, smoothing_function=smooth) for h in hyps]
    return sum(scores) / len(scores)


def _nltk_self_bleu(samples: list[list[str]], max_n: int) -> float:
    smooth = SmoothingFunction().method1
    weights = (1 / max_n,) * max_n
    scores = [
        sentence_bleu(samples[:i] + samples[i + 1 :], s, weights=weights, smoothing_function=smooth)
        for i, s in enumerate(samples)
    ]
    return sum(scores) / len(scores)


def _timed(fn: Callable[[], float]) -> tuple[float, float]:
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    data = ROOT.parent / "shared" / "data"
    parser.add_argument("--train", type=Path, default=data / "image_coco.txt")
    parser.add_argument("--test", type=Path, default=data / "test_coco.txt")
    parser.add_argument("--n", type=int, default=1000, help="number of sentences scored")
    parser.add_argument(
        "--n-refs", type=int, default=1000, help="BLEU references compared with nltk"
    )
    parser.add_argument("--max-n", type=int, default=4)
    args = parser.parse_args(argv)

    samples = load_corpus(args.train).sentences[: args.n]
    all_refs = load_corpus(args.test).sentences
    refs = all_refs[: args.n_refs]
    rows = []
    for name, ours, theirs in [
        (
            f"Self-BLEU-{args.max_n}, {len(samples)} samples",
            lambda: self_bleu(samples, args.max_n),
            lambda: _nltk_self_bleu(samples, args.max_n),
        ),
        (
            f"BLEU-{args.max_n}, {len(samples)} hyps vs {len(refs)} refs",
            lambda: bleu(samples, refs, args.max_n),
            lambda: _nltk_bleu(samples, refs, args.max_n),
        ),
    ]:
        v_ours, t_ours = _timed(ours)
        v_nltk, t_nltk = _timed(theirs)
        if abs(v_ours - v_nltk) > 1e-9:
            raise SystemExit(f"{name}: values differ: ours {v_ours!r}, nltk {v_nltk!r}")
        rows.append((name, v_ours, t_ours, t_nltk, t_nltk / t_ours))

    print("| metric | value | ours (s) | nltk loop (s) | speed-up |")
    print("|---|---|---|---|---|")
    for name, value, t_ours, t_nltk, ratio in rows:
        print(f"| {name} | {value:.6f} | {t_ours:.3f} | {t_nltk:.2f} | {ratio:.0f}x |")
    value, t_ours = _timed(lambda: bleu(samples, all_refs, args.max_n))
    name = f"BLEU-{args.max_n}, {len(samples)} hyps vs {len(all_refs)} refs"
    print(f"| {name} | {value:.6f} | {t_ours:.3f} | not run | - |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""How much of a variant's NLL-oracle gain MLE gets by temperature alone: a finer temperature
sweep of each seed's MLE-pretrained start, with the bench's own evaluation (same samples seed,
same held-out data), so its value at temperature 1 is the bench's recorded start.

    python -m agents.bench.start_sweep --out experiments/seqgan-oracle --seeds 0 \
        --temperatures 0.85,0.9,0.95,1.0
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from agents.bench.evaluate import evaluate
from agents.bench.grid import data_cache_path, pretrained_path
from agents.bench.presets import BenchConfig
from agents.bench.runners import _eval_seed, _load_policy, build_task


def start_sweep(out: Path, seed: int, temperatures: list[float]) -> list[dict[str, float]]:
    """Metrics of seed ``seed``'s cached MLE start at each temperature (needs its checkpoint)."""
    out = Path(out)
    cfg = BenchConfig.from_dict(json.loads((out / "config.json").read_text()))
    checkpoint = pretrained_path(out, seed)
    if not checkpoint.is_file():
        raise FileNotFoundError(
            f"{checkpoint} is missing: rerun the bench for seed {seed} to recreate the MLE start"
        )
    task = build_task(cfg, seed, data_cache=data_cache_path(checkpoint))
    policy = _load_policy(checkpoint, cfg.device, task.real)
    settings = cfg.eval_settings()
    return [
        {"seed": seed, **evaluate(policy, task.eval_data, settings, t, _eval_seed(seed))}
        for t in temperatures
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="a bench's output directory")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    parser.add_argument("--temperatures", default="0.85,0.9,0.95,1.0")
    args = parser.parse_args(argv)
    try:
        temperatures = [float(t) for t in args.temperatures.split(",")]
        seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError as exc:
        parser.error(f"--temperatures and --seeds are comma-separated numbers: {exc}")
    if any(t <= 0 for t in temperatures):
        parser.error("temperatures must be > 0")
    print("| seed | temperature | NLL-oracle | NLL-test |\n|---|---|---|---|")
    for seed in seeds:
        for row in start_sweep(Path(args.out), seed, temperatures):
            print(
                f"| {seed} | {row['temperature']:.2f} | {row['nll_oracle']:.3f} | "
                f"{row['nll_test']:.3f} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

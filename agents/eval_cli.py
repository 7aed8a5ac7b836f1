"""``textgan eval --run DIR``: score a run's generator from its checkpoint.

* MaskGAN runs (``agent: maskgan`` in ``config.json``): fill perplexity, unique and seen
  2/3/4-gram fractions of the fills, BLEU-4 against the test sentences, and the discriminator's
  mean probability on real and generated fills, on the run's own fixed held-out rows and masks
  (:class:`agents.maskgan_metrics.FillEvaluator`), so the numbers match the logged ones.
* Runs of the LSTM-policy agents (``reinforce``, ``bgan``, ``actor_critic``, ...): NLL-test on
  the held-out split, NLL-oracle on the synthetic task, BLEU-4 of samples against the held-out
  data and unique n-gram fractions (:func:`agents.bench.evaluate.evaluate`).

Output: one ``metric value`` line each, or a JSON object with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from agents.registry import agent_spec
from agents.runtime import CHECKPOINT_NAME, RunDirError, has_checkpoint, read_run_config
from agents.setup import build_setup


def evaluate_maskgan(run_dir: Path, device: str) -> dict[str, Any]:
    """The MaskGAN metrics of the run's last checkpoint."""
    from agents.maskgan import load_run

    _, setup, step = load_run(run_dir, device=device)
    metrics: dict[str, Any] = {"agent": "maskgan", "step": step}
    metrics.update(setup.evaluator(setup.generator, setup.discriminator))
    return metrics


def _config_class(agent: str) -> type:
    """The config class of the agent that wrote a run, from the agent registry."""
    try:
        return agent_spec(agent).config_class()
    except ValueError as exc:
        raise ValueError(f"run was written by agent {agent!r}: {exc}") from exc


def evaluate_policy_run(
    run_dir: Path, saved: dict[str, Any], device: str, n_samples: int, n_bleu: int, seed: int
) -> dict[str, Any]:
    """NLL-test (and NLL-oracle), BLEU-4 and unique n-grams of an LSTM-policy run's generator."""
    from agents.bench.evaluate import EvalData, EvalSettings, evaluate
    from agents.runtime import build_config, config_fields, load_checkpoint
    from textgan_envs.vocab import Vocabulary

    agent = str(saved["agent"])
    cls = _config_class(agent)
    values = {**config_fields(saved, cls), "device": device, "progress": False}
    cfg = build_config(cls, values)
    if not has_checkpoint(run_dir):
        raise RunDirError(f"{run_dir} has no {CHECKPOINT_NAME} to evaluate")
    setup = build_setup(cfg, run_dir, resume=True)  # with a checkpoint: no pre-training
    ckpt = load_checkpoint(
        run_dir / CHECKPOINT_NAME, ("modules", "step"), map_location=setup.device
    )
    setup.policy.load_state_dict(ckpt["modules"]["policy"])
    if setup.vocab is not None:
        vocab = setup.vocab

        def decode(row: list[int]) -> tuple[str, ...]:
            if Vocabulary.EOS in row:
                row = row[: row.index(Vocabulary.EOS)]
            return tuple(vocab.decode(row, skip_special=True))

        data = EvalData(setup.valid, decode=decode, pad_id=Vocabulary.PAD)
    else:
        data = EvalData(setup.valid, oracle=setup.oracle)
    settings = EvalSettings(
        n_samples=n_samples, n_bleu=min(n_bleu, n_samples), bleu_orders=(4,), temperatures=(1.0,)
    )
    metrics: dict[str, Any] = {"agent": agent, "step": int(ckpt["step"])}
    metrics.update(evaluate(setup.policy, data, settings, temperature=1.0, seed=seed))
    metrics.pop("temperature", None)
    return metrics


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="textgan eval", description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="run directory (config.json + checkpoint.pt)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda[:i]")
    parser.add_argument(
        "--samples", type=int, default=1000, help="generator samples (LSTM-policy runs)"
    )
    parser.add_argument("--bleu-samples", type=int, default=200, help="samples scored by BLEU")
    parser.add_argument("--seed", type=int, default=0, help="seed of the evaluation samples")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    run_dir = Path(args.run)
    try:
        saved = read_run_config(run_dir)
        if saved.get("agent") == "maskgan":
            metrics = evaluate_maskgan(run_dir, args.device)
        else:
            metrics = evaluate_policy_run(
                run_dir, saved, args.device, args.samples, args.bleu_samples, args.seed
            )
    except (RunDirError, ValueError, RuntimeError) as exc:
        print(f"textgan eval: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(metrics, sort_keys=True))
    else:
        for key, value in metrics.items():
            shown = f"{value:.4f}" if isinstance(value, float) and math.isfinite(value) else value
            print(f"{key:<14} {shown}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

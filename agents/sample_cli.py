"""``textgan sample``: print decoded samples from a run's latest checkpoint.

    textgan sample --run runs/NAME -n 100 --temperature 0.8 [--seed 0] [--device auto]

The generator is rebuilt from the checkpoint's ``policy_config`` (loaded with
``weights_only=True``). Corpus runs decode with the run's ``vocab.json`` (special tokens
dropped); oracle runs print the token ids separated by spaces.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from agents.runtime import (
    CHECKPOINT_NAME,
    CheckpointError,
    RunDirError,
    load_checkpoint,
    read_run_config,
)
from textgan_envs.device import resolve_device


def load_policy(run_dir: str | Path, device: str | torch.device = "cpu"):
    """The generator saved in ``run_dir/checkpoint.pt`` (an :class:`agents.policies.LSTMPolicy`)."""
    from agents.policies import LSTMPolicy

    ckpt = load_checkpoint(
        Path(run_dir) / CHECKPOINT_NAME,
        required_keys=("modules", "policy_config"),
        map_location="cpu",
    )
    if "policy" not in ckpt["modules"]:
        raise CheckpointError(f"{run_dir}/{CHECKPOINT_NAME} holds no generator ('policy')")
    policy = LSTMPolicy.from_state_dict(
        ckpt["modules"]["policy"], ckpt["policy_config"], device=device
    )
    return policy.eval()


def decode(tokens: torch.Tensor, vocab, char_level: bool) -> list[str]:
    """Rows of ids -> strings: vocabulary tokens (specials dropped) or the ids themselves."""
    rows = tokens.cpu().tolist()
    if vocab is None:
        return [" ".join(str(i) for i in row) for row in rows]
    sep = "" if char_level else " "
    out = []
    for row in rows:
        if vocab.EOS in row:
            row = row[: row.index(vocab.EOS)]
        out.append(sep.join(vocab.decode(row, skip_special=True)))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="textgan sample", description="print decoded samples from a run"
    )
    parser.add_argument("--run", required=True, help="run directory written by `textgan train`")
    parser.add_argument("-n", "--num", type=int, default=10, help="number of samples")
    parser.add_argument("--temperature", type=float, default=1.0, help="softmax temperature (> 0)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.num < 0:
        print(f"textgan sample: error: -n must be >= 0, got {args.num}", file=sys.stderr)
        return 2
    if not args.temperature > 0:
        print(
            f"textgan sample: error: --temperature must be > 0, got {args.temperature}",
            file=sys.stderr,
        )
        return 2
    try:
        cfg = read_run_config(args.run)
        device = resolve_device(args.device)
        policy = load_policy(args.run, device)
        vocab = None
        vocab_path = Path(args.run) / "vocab.json"
        if vocab_path.exists():
            from textgan_envs.vocab import Vocabulary

            vocab = Vocabulary.load(vocab_path)
    except (RunDirError, CheckpointError, ValueError) as exc:
        print(f"textgan sample: error: {exc}", file=sys.stderr)
        return 1
    generator = torch.Generator(device=device).manual_seed(args.seed)
    tokens = policy.sample(args.num, temperature=args.temperature, generator=generator)
    for line in decode(tokens, vocab, cfg.get("corpus_level") == "char"):
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""examples/custom_reinforce.py: a user's own agent on the public API learns its objective."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "custom_reinforce.py"


def _load_example():
    spec = importlib.util.spec_from_file_location("custom_reinforce", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_custom_reinforce_raises_the_discriminators_reward() -> None:
    example = _load_example()
    args = example.Args(vocab_size=20, seq_len=6, num_envs=32, updates=40, lr=1e-2, d_pretrain=10)
    history = example.train(args)
    first = sum(h["reward"] for h in history[:5]) / 5
    last = sum(h["reward"] for h in history[-5:]) / 5
    # a fixed, pre-trained discriminator: REINFORCE must climb its reward, by a wide margin
    assert last > first + 0.2, (first, last)
    assert all(0.0 <= h["reward"] <= 1.0 and h["nll_oracle"] > 0 for h in history)


def test_the_example_stays_short() -> None:
    code = [line for line in EXAMPLE.read_text().splitlines() if line.strip()]
    assert len(code) <= 90, len(code)

"""The `textgan` command: a thin dispatcher to subcommand modules.

Each subcommand lives next to the code it drives and exposes `main(argv) -> int`;
this file only maps names to those modules, so it is imported lazily and
adding a subcommand never touches another one's code.
"""

from __future__ import annotations

import importlib
import sys

from agents.registry import bench_agents, train_agents

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "mle": (
        "agents.mle_cli",
        "MLE-pretrain the generator on the synthetic oracle and print its scores",
    ),
    "train": ("agents.train", f"train an agent ({', '.join(train_agents())})"),
    "sample": ("agents.sample_cli", "print decoded samples from a run"),
    "eval": ("agents.eval_cli", "evaluate a run's generator"),
    "bench": (
        "agents.bench.cli",
        f"benchmark agents ({', '.join(bench_agents())}) over seeds with IQM and bootstrap CIs",
    ),
    "began": ("image_samplers.began.cli", "BEGAN: train, sample, eval"),
    "ppgn": ("image_samplers.ppgn.cli", "PPGN: train, sample, eval"),
}


def _usage() -> str:
    lines = ["usage: textgan <command> [options]", "", "commands:"]
    lines += [f"  {name:<8} {help_}" for name, (_, help_) in SUBCOMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help"}:
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        print(f"textgan: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    from textgan_envs.process_setup import tune_process

    tune_process()  # before any tensor work: freed memory kept for reuse, denormals flushed
    module = importlib.import_module(SUBCOMMANDS[name][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    raise SystemExit(main())

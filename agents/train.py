"""``textgan train``: run one agent on one data source into a run directory.

    textgan train --agent NAME --env textgan/Oracle-v0 \\
        [--config cfg.json] [--set key=value ...] --out runs/NAME [--resume]

Config precedence: the agent's dataclass defaults < ``--config`` JSON < ``--env``/``--out`` <
``--set`` (left to right). The whole config is checked (unknown key, wrong type, negative count,
cross-field rules) before anything is built or written; errors name the key and exit with 2, as
do a bad data file or ``--out`` path (one line naming it; nothing is created). Run-directory
refusals (a run already there, another process on it, a resume with another config, a corrupt
checkpoint) and a NaN exit with 1; ``--resume`` of a finished run says so and exits 0.
Also runnable as ``python -m agents.train``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import sys
import warnings
from collections.abc import Iterator

from agents import runtime as tr
from agents.registry import AGENTS, agent_spec, train_agents
from agents.runtime import CheckpointError, ConfigError, load_config, relaunch_under_torchrun
from textgan_envs.corpus import CorpusError, CorpusWarning


def _agent_help() -> str:
    return "\n".join(f"  {name:<13} {AGENTS[name].summary}" for name in train_agents())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="textgan train",
        description=__doc__.split("\n\n")[0],
        epilog="agents:\n" + _agent_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--agent", required=True, choices=train_agents())
    parser.add_argument("--env", default=None, help="data source id, e.g. textgan/Oracle-v0")
    parser.add_argument("--config", default=None, help="JSON file of config values")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one config value (repeatable; JSON-parsed when possible)",
    )
    parser.add_argument("--out", default=None, help="run directory (config key out_dir)")
    parser.add_argument(
        "--corpus",
        default=None,
        help="training text file, one sentence per line (config key corpus_path)",
    )
    parser.add_argument("--resume", action="store_true", help="continue from the run's checkpoint")
    parser.add_argument(
        "--print-config", action="store_true", help="print the resolved config and exit"
    )
    parser.add_argument(
        "--distributed",
        action="store_true",
        help="join the data-parallel job torchrun started (implied when WORLD_SIZE is set)",
    )
    parser.add_argument(
        "--nproc-per-node",
        type=int,
        default=None,
        metavar="N",
        help="launch N data-parallel processes on this machine with torchrun (one per GPU)",
    )
    parser.add_argument(
        "--dist-timeout",
        type=float,
        default=1800.0,
        help="seconds any rank waits in a collective (also bounds rank-0-only pre-training)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    if args.nproc_per_node is not None:
        if args.nproc_per_node < 1:
            print("textgan train: error: --nproc-per-node must be >= 1", file=sys.stderr)
            return 2
        return relaunch_under_torchrun("agents.train", args.nproc_per_node, argv)
    try:
        spec = agent_spec(args.agent)
        config_cls, train_fn = spec.config_class(), spec.train_fn()
        names = {f.name for f in dataclasses.fields(config_cls)}
        extra = {}
        for key, value in (
            ("env_id", args.env),
            ("out_dir", args.out),
            ("corpus_path", args.corpus),
        ):
            if value is not None:
                if key not in names:
                    raise ConfigError(f"agent {args.agent!r} has no config key {key!r}")
                extra[key] = value
        cfg = load_config(config_cls, args.config, args.overrides, extra)
    except (ConfigError, ValueError) as exc:
        print(f"textgan train: error: {exc}", file=sys.stderr)
        return 2
    if args.print_config:
        import json

        print(json.dumps(dataclasses.asdict(cfg), indent=2, sort_keys=True))
        return 0
    ctx = None
    if args.distributed or "WORLD_SIZE" in os.environ:
        from agents.runtime import DistributedSetupError, init_distributed

        try:
            ctx = init_distributed(timeout_s=args.dist_timeout)
        except DistributedSetupError as exc:
            print(f"textgan train: error: {exc}", file=sys.stderr)
            return 2
    try:
        with data_warnings_as_lines("textgan train"):
            metrics = train_fn(cfg, resume=args.resume)
    except tr.RunFinished as exc:  # a resume with nothing left to do: nothing written
        if ctx is None or ctx.is_main:
            print(f"textgan train: {exc}")
        metrics = {}
    except (ConfigError, CorpusError) as exc:  # a bad --out or data file: a usage error
        print(f"textgan train: error: {exc}", file=sys.stderr)
        return 2
    except (tr.RunDirError, CheckpointError, tr.NonFiniteError) as exc:
        print(f"textgan train: error: {exc}", file=sys.stderr)
        return 1  # non-zero exit: torchrun then stops the other ranks
    if ctx is not None:
        from agents.runtime import shutdown

        shutdown(ctx)
        if not ctx.is_main:
            return 0
    if metrics:
        summary = ", ".join(f"{k}={v:.4g}" for k, v in metrics.items() if isinstance(v, float))
        print(f"done: {summary}")
    return 0


@contextlib.contextmanager
def data_warnings_as_lines(prog: str) -> Iterator[None]:
    """Show each :class:`CorpusWarning` (lines cut or dropped) as one ``prog: warning:`` line."""
    with warnings.catch_warnings():
        warnings.simplefilter("always", CorpusWarning)
        shown = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None):  # type: ignore[no-untyped-def]
            if issubclass(category, CorpusWarning):
                print(f"{prog}: warning: {message}", file=sys.stderr)
            else:
                shown(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        yield


if __name__ == "__main__":  # also how torchrun starts each rank
    from textgan_envs.process_setup import tune_process

    tune_process()
    raise SystemExit(main())

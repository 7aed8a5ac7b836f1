"""`textgan bench`: compare agents over seeds from one pretrained generator per seed.

    textgan bench --preset quick --out results/quick
    textgan bench --preset paper --oracle ../shared/data/seqgan_oracle_params.npz --out results/paper
    textgan bench --env textgan/Corpus-v0 --corpus image_coco.txt --test-data test_coco.txt ...

Rerunning the same command on the same ``--out`` resumes: finished (agent, seed) cells and
pretrained generators are kept, an interrupted cell continues from its last segment. One bench
at a time per ``--out``: a second one is refused (exit 1) while the first runs (a lock on the
directory, released when that process ends, however it ends).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

from agents.bench.presets import (
    ENVS,
    PRESETS,
    SHARED_DATA_ENV,
    BenchConfig,
    preset,
    published_oracle,
    seqgan_oracle_notes,
)
from agents.registry import AGENTS

ORACLE_METRICS = [
    "nll_oracle",
    "nll_test",
    "bleu2",
    "bleu3",
    "bleu4",
    "bleu5",
    "self_bleu2",
    "self_bleu3",
    "self_bleu4",
    "self_bleu5",
    "unique2",
    "unique3",
    "unique4",
    "d_accuracy",
]
CORPUS_METRICS = [m for m in ORACLE_METRICS if m != "nll_oracle"]


class BenchArgumentError(ValueError):
    """A bad command line or an output directory holding a different bench."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="textgan bench",
        description="Benchmark policy-gradient variants against MLE over seeds "
        "(IQM and 95% stratified-bootstrap CIs, quality-diversity temperature sweep).",
    )
    p.add_argument("--out", required=True, help="output directory (resumed if it exists)")
    p.add_argument("--preset", default="quick", help=f"one of {', '.join(PRESETS)} (default quick)")
    p.add_argument("--env", default="textgan/Oracle-v0", help=f"one of {', '.join(ENVS)}")
    p.add_argument(
        "--agents", help="comma-separated variants (default: the preset's); mle is the baseline"
    )
    p.add_argument("--seeds", type=int, help="number of seeds (0..N-1)")
    p.add_argument(
        "--only-seeds",
        help="run only these seeds' missing units now, e.g. 2 or 1,2 (each in 0..N-1); the "
        "bench keeps all N seeds, and the report covers every finished cell",
    )
    p.add_argument("--budget", type=int, help="generator updates per variant after pretraining")
    p.add_argument("--checkpoints", type=int, help="evaluations during training (besides step 0)")
    p.add_argument(
        "--oracle", help="oracle parameters .npz (default: the preset's seeded random oracle)"
    )
    p.add_argument("--corpus", help="training text file (textgan/Corpus-v0)")
    p.add_argument(
        "--test-data", help="held-out text file for NLL-test and BLEU (textgan/Corpus-v0)"
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a shared agent config field, e.g. --set mle_epochs=60",
    )
    p.add_argument(
        "--agent-set",
        action="append",
        default=[],
        metavar="AGENT.KEY=VALUE",
        help="override one agent's field, e.g. --agent-set reinforce.n_rollouts=16",
    )
    p.add_argument(
        "--eval-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override an evaluation setting, e.g. --eval-set n_samples=10000",
    )
    p.add_argument("--note", action="append", default=[], help="extra line for summary.md")
    p.add_argument("--workers", type=int, help="parallel processes (default: min(cores, seeds))")
    p.add_argument("--launcher", default="process", help="process (default) or ray")
    p.add_argument("--device", default=None, help="cpu, cuda or auto (default cpu)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--report-only",
        action="store_true",
        help="only rewrite the outputs from the cells finished so far (runs nothing)",
    )
    return p


def _pairs(items: list[str], flag: str) -> list[tuple[str, object]]:
    from agents.runtime import ConfigError, parse_override

    out = []
    for item in items:
        try:
            out.append(parse_override(item))
        except ConfigError as exc:
            raise BenchArgumentError(f"{flag} {item!r}: {exc}") from exc
    return out


def config_from_args(args: argparse.Namespace) -> BenchConfig:
    """The bench config: the preset, then the command-line overrides, validated."""
    if args.env not in ENVS:
        raise BenchArgumentError(f"unknown env {args.env!r}; choose one of {', '.join(ENVS)}")
    if args.preset not in PRESETS:
        raise BenchArgumentError(
            f"unknown preset {args.preset!r}; choose one of {', '.join(PRESETS)}"
        )
    cfg = preset(args.preset, args.env).to_dict()
    if args.agents is not None:
        cfg["agents"] = [a.strip() for a in args.agents.split(",") if a.strip()]
    for key, flag in (("seeds", "seeds"), ("budget", "budget"), ("n_checkpoints", "checkpoints")):
        value = getattr(args, flag)
        if value is not None:
            if value < 1:
                raise BenchArgumentError(f"--{flag} must be >= 1, got {value}")
            cfg[key] = value
    if args.oracle:
        if args.env != "textgan/Oracle-v0":
            raise BenchArgumentError("--oracle only applies to textgan/Oracle-v0")
        path = Path(args.oracle)
        if not path.is_file():
            raise BenchArgumentError(f"--oracle {path} does not exist")
        cfg["common"]["oracle_path"] = str(path.resolve())
        cfg["common"].pop("vocab_size", None)  # taken from the file
    if args.preset == "seqgan-oracle" and "oracle_path" not in cfg["common"]:
        raise BenchArgumentError(
            "preset seqgan-oracle needs the published oracle: pass --oracle PATH "
            f"(default {published_oracle()} is missing; {SHARED_DATA_ENV} sets its directory)"
        )
    if args.env == "textgan/Corpus-v0":
        if not args.corpus:
            raise BenchArgumentError("textgan/Corpus-v0 needs --corpus FILE")
        for flag in ("corpus", "test_data"):
            value = getattr(args, flag)
            if value and not Path(value).is_file():
                raise BenchArgumentError(f"--{flag.replace('_', '-')} {value} does not exist")
        cfg["common"]["corpus_path"] = str(Path(args.corpus).resolve())
        if args.test_data:
            cfg["test_path"] = str(Path(args.test_data).resolve())
    elif args.corpus or args.test_data:
        raise BenchArgumentError("--corpus/--test-data only apply to textgan/Corpus-v0")
    for key, value in _pairs(args.set, "--set"):
        cfg["common"][key] = value
    if args.preset == "seqgan-oracle" and args.set:  # its notes state the D schedule that runs
        try:
            cfg["notes"] = seqgan_oracle_notes(cfg["common"])
        except (KeyError, TypeError, ValueError):
            pass  # a malformed value: the config check below names it
    for key, value in _pairs(args.agent_set, "--agent-set"):
        agent, _, field = key.partition(".")
        if not field:
            raise BenchArgumentError(f"--agent-set needs AGENT.KEY=VALUE, got {key!r}")
        cfg["agent_overrides"].setdefault(agent, {})[field] = value
    for key, value in _pairs(args.eval_set, "--eval-set"):
        cfg["eval"][key] = value
    if args.device is not None:
        cfg["device"] = args.device
    changed = [
        f"--{flag.replace('_', '-')} {getattr(args, flag)}"
        for flag in ("agents", "seeds", "budget", "checkpoints", "oracle", "corpus", "test_data")
        if getattr(args, flag) is not None
    ]
    changed += [f"--set {o}" for o in args.set] + [f"--agent-set {o}" for o in args.agent_set]
    changed += [f"--eval-set {o}" for o in args.eval_set]
    if changed:
        cfg["notes"].append(
            f"Changed from preset `{args.preset}` on the command line (these "
            f"take precedence over the line above): {'; '.join(changed)}."
        )
    cfg["notes"] = list(cfg["notes"]) + list(args.note)
    cfg["agent_overrides"] = {a: v for a, v in cfg["agent_overrides"].items() if a in cfg["agents"]}
    try:
        bench = BenchConfig.from_dict(cfg)
    except (TypeError, ValueError) as exc:
        raise BenchArgumentError(str(exc)) from exc
    _check_runnable(bench)
    return bench


def _check_runnable(bench: BenchConfig) -> None:
    """Unknown agents, unavailable agents and bad agent fields fail before any work."""
    from agents.bench.runners import _common_config, agent_config, check_agents, known_agents

    unknown = [a for a in bench.agents if a not in known_agents()]
    if unknown:
        raise BenchArgumentError(
            f"unknown agent(s) {', '.join(unknown)}; known agents: {', '.join(known_agents())}"
        )
    try:
        check_agents(bench.agents)
        common = _common_config(bench, 0, Path("."))
        if common.mle_epochs < 1:
            raise ValueError(
                "mle_epochs must be >= 1: every variant starts from an MLE-pretrained generator"
            )
        for agent in bench.agents:
            if AGENTS[agent].bench != "continued_mle":
                agent_config(bench, agent, 0, Path("."), bench.budget)
    except ValueError as exc:
        raise BenchArgumentError(str(exc)) from exc


def _same_data_file(saved: object, now: object) -> bool:
    """Two recorded data paths name the same data: equal contents where both files exist here,
    else the same file name (a bench moved to another machine or checkout keeps resuming)."""
    if not isinstance(saved, str) or not isinstance(now, str):
        return saved == now
    a, b = Path(saved), Path(now)
    if a.is_file() and b.is_file():
        return a.samefile(b) or _sha256(a) == _sha256(b)
    return a.name == b.name


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _flat_identity(bench: BenchConfig) -> dict[str, object]:
    identity = bench.identity()
    flat = {k: v for k, v in identity.items() if k != "common"}
    flat.update({f"common.{k}": v for k, v in identity["common"].items()})
    return flat


def _check_overrides_of_finished_agents(out: Path, saved: BenchConfig, now: BenchConfig) -> None:
    from agents.bench.grid import cell_agent_names

    finished = cell_agent_names(out) & set(saved.agents) & set(now.agents)
    changed = [
        agent
        for agent in sorted(finished)
        if saved.agent_overrides.get(agent, {}) != now.agent_overrides.get(agent, {})
    ]
    if changed:
        details = "; ".join(
            f"{a}: {saved.agent_overrides.get(a, {})!r} -> {now.agent_overrides.get(a, {})!r}"
            for a in changed
        )
        raise BenchArgumentError(
            f"{out} holds finished cells of {', '.join(changed)} run with other agent settings "
            f"({details}); use another --out, or remove those cells to rerun them"
        )


def check_out_dir(out: Path, bench: BenchConfig) -> None:
    """A resumed bench must have the same identity (agents and seeds may be added).

    Data files (``*_path``) are compared by content, not by where they lie. An agent's
    overrides (``--agent-set``) must match where both benches run it and its cells are finished:
    the resumed bench would otherwise mix cells of two settings in one row.
    """
    path = out / "config.json"
    if not path.exists():
        return
    saved_bench = BenchConfig.from_dict(json.loads(path.read_text()))
    _check_overrides_of_finished_agents(out, saved_bench, bench)
    saved = _flat_identity(saved_bench)
    now = _flat_identity(bench)
    for key in set(saved) & set(now):
        if key.endswith("_path") and _same_data_file(saved[key], now[key]):
            now[key] = saved[key]
    diffs = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))
    if diffs:
        details = "; ".join(f"{k}: {saved.get(k)!r} -> {now.get(k)!r}" for k in diffs)
        raise BenchArgumentError(
            f"{out} holds a bench with a different configuration ({details}); "
            "use another --out or the original options to resume it"
        )


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.report_only:  # the saved config defines the bench; other options are ignored
        saved = Path(args.out) / "config.json"
        if not saved.exists():
            parser.error(f"--report-only: {args.out} holds no bench (no config.json)")
        from agents.bench.grid import load_finished

        bench = BenchConfig.from_dict(json.loads(saved.read_text()))
        return report(bench, Path(args.out), *load_finished(Path(args.out)))
    try:
        bench = config_from_args(args)
        out = Path(args.out)
        if out.exists() and not out.is_dir():
            raise BenchArgumentError(f"--out {out} is an existing file, not a directory")
        check_out_dir(out, bench)
        from agents.bench.grid import check_launcher

        check_launcher(args.launcher)
        run_seeds = seeds_to_run(args.only_seeds, bench.seeds)
        workers = args.workers or max(1, min(os.cpu_count() or 1, len(run_seeds)))
        if workers < 1:
            raise BenchArgumentError(f"--workers must be >= 1, got {workers}")
    except (BenchArgumentError, ValueError) as exc:
        parser.error(str(exc))
    return run(
        bench, out, workers, args.launcher, progress=not args.no_progress, only_seeds=run_seeds
    )


def seeds_to_run(only_seeds: str | None, n_seeds: int) -> list[int]:
    """The seeds this invocation runs: all ``0..n_seeds-1``, or the ``--only-seeds`` subset.

    A subset lets one seed's cells run now (or on another machine sharing ``--out``) while the
    bench's identity, and so its resume check and report, stays that of all ``n_seeds``.
    """
    if only_seeds is None:
        return list(range(n_seeds))
    try:
        chosen = [int(s) for s in only_seeds.split(",") if s.strip()]
    except ValueError as exc:
        raise BenchArgumentError(
            f"--only-seeds {only_seeds!r}: expected comma-separated integers, e.g. 2 or 1,2"
        ) from exc
    outside = [s for s in chosen if not 0 <= s < n_seeds]
    if not chosen or outside:
        raise BenchArgumentError(
            f"--only-seeds {only_seeds!r}: each seed must be in 0..{n_seeds - 1} "
            f"(the bench has --seeds {n_seeds})"
        )
    if len(set(chosen)) != len(chosen):
        raise BenchArgumentError(f"--only-seeds {only_seeds!r}: seeds are repeated")
    return sorted(chosen)


def run(
    bench: BenchConfig,
    out: Path,
    workers: int,
    launcher: str = "process",
    progress: bool = True,
    only_seeds: list[int] | None = None,
) -> int:
    """Run (or resume) the bench in ``out``, write every output, print the summary table.

    ``only_seeds`` restricts which seeds' missing units run now; the report still covers every
    finished cell of the bench's seeds.
    """
    from agents.bench.grid import GridError, run_grid
    from agents.bench.runners import BenchRunner
    from agents.runtime import RunLockedError, lock_run_dir, remove_stale_temp_files, unlock_run_dir

    out.mkdir(parents=True, exist_ok=True)
    try:
        lock_run_dir(out)  # one bench per --out: a second one would write the same cells
    except RunLockedError as exc:
        print(f"textgan bench: error: {exc}", file=sys.stderr)
        return 1
    try:
        remove_stale_temp_files(out)  # of writes a killed bench left in out/, pretrained/, cells/
        (out / "config.json").write_text(json.dumps(bench.to_dict(), indent=2) + "\n")
        # one worker runs the units here, so their own bars can sit below the bench's
        runner = BenchRunner(bench, progress=progress and workers == 1 and launcher == "process")
        seeds = list(range(bench.seeds)) if only_seeds is None else list(only_seeds)
        status = 0
        try:
            pre, cells = run_grid(
                bench.agents,
                seeds,
                runner,
                runner.pretrain,
                out,
                bench.budget,
                workers=workers,
                launcher=launcher,
                progress=progress,
            )
        except GridError as exc:
            print(f"textgan bench: {exc}", file=sys.stderr)
            from agents.bench.grid import load_finished

            pre, cells = load_finished(out)
            status = 1
        return max(status, report(bench, out, pre, cells))
    finally:
        unlock_run_dir(out)


def report(bench: BenchConfig, out: Path, pre: list, cells: list) -> int:
    """Write summary.md, CSVs and plots from the recorded rows; print the main table."""
    from agents.bench.report import write_report

    seeds = list(range(bench.seeds))
    pre = [r for r in pre if r["seed"] in seeds]
    cells = [r for r in cells if r["seed"] in seeds and r["agent"] in bench.agents]
    cells.sort(key=lambda r: bench.agents.index(r["agent"]))  # stable: keeps checkpoint order
    oracle = bench.env == "textgan/Oracle-v0"
    metrics = ORACLE_METRICS if oracle else CORPUS_METRICS
    curves = (["nll_oracle", "nll_test"] if oracle else ["nll_test"]) + [
        "bleu4",
        "self_bleu4",
        "d_accuracy",
    ]
    pairs = ([("nll_oracle", "nll_test")] if oracle else []) + [("bleu4", "self_bleu4")]
    shown = ["nll_oracle", "nll_test", "bleu4", "self_bleu4", "d_accuracy"]
    shown = [m for m in shown if m in metrics]
    table = write_report(out, bench.to_dict(), pre, cells, metrics, curves, pairs, shown)
    print(
        f"\n{table}\n\nfull table, P(improvement over mle) and the temperature sweep: "
        f"{out / 'summary.md'}; also results.csv, sweep.csv, PNG plots"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

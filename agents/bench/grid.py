"""The (agent, seed) grid: cached per-seed pretraining, resumable cells, parallel seeds.

Why a grid runner of its own: a benchmark is many independent runs, and the expensive
failure is losing finished ones. So every finished unit of work is recorded on disk the
moment it ends, and a rerun on the same directory only does what is missing:

* ``pretrained/seed<S>.pt``: the MLE-pretrained generator of seed ``S``, shared by every
  agent of that seed (so all variants start from the same weights);
* ``cells/<agent>__seed<S>.json``: the metric rows of one finished (agent, seed) cell.

Cells only depend on their seed's pretraining, so the scheduler starts a seed's cells as
soon as its pretraining is done. Units run in worker processes (``workers > 1``), in this
process (``workers == 1``, easiest to debug), or on a Ray cluster (``launcher="ray"``).
"""

from __future__ import annotations

import json
import os
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Protocol

from tqdm.auto import tqdm

from textgan_envs.atomic_files import atomic_write_text

Row = dict[str, Any]


class CellRunner(Protocol):
    """Train one agent from a pretrained generator and return its metric rows.

    Rows are flat dicts of plain numbers/strings. ``phase == "train"`` rows are checkpoints
    (with ``step``), ``phase == "sweep"`` rows are the temperature sweep after training.
    The runner must be picklable (a module-level function or a dataclass instance) when
    ``workers > 1``.
    """

    def __call__(
        self, agent: str, seed: int, budget: int, pretrained: Path, out_dir: Path
    ) -> list[Row]: ...


class Pretrainer(Protocol):
    """MLE-pretrain the generator of one seed, save it to ``path`` and return metric rows.

    ``work_dir`` is for its own resumable checkpoints; ``path`` must only appear once the
    pretraining is complete (write it with an atomic save).
    """

    def __call__(self, seed: int, path: Path, work_dir: Path) -> list[Row]: ...


@dataclass(frozen=True)
class Cell:
    """One (agent, seed) run of the grid."""

    agent: str
    seed: int

    @property
    def name(self) -> str:
        return f"{self.agent}__seed{self.seed}"


class GridError(RuntimeError):
    """Some units of the grid failed; finished ones are kept, rerunning retries the rest."""


def pretrained_path(out_dir: Path, seed: int) -> Path:
    return Path(out_dir) / "pretrained" / f"seed{seed}.pt"


def discriminator_cache_path(pretrained: Path) -> Path:
    """The seed's shared pre-trained discriminator beside its MLE start (not committed: ~80 MB)."""
    return Path(pretrained).with_name(f"discriminator_{Path(pretrained).name}")


def data_cache_path(pretrained: Path) -> Path:
    """The seed's drawn oracle data beside its MLE start (committed with it: ~0.7 MB a seed).

    Both are products of the data; keeping the tokens lets the bench resume on a CPU whose
    float rounding would draw a few sequences differently (see :mod:`agents.data_cache`).
    """
    return Path(pretrained).with_name(f"data_{Path(pretrained).stem}.npz")


def cell_path(out_dir: Path, cell: Cell) -> Path:
    return Path(out_dir) / "cells" / f"{cell.name}.json"


def cell_agent_names(out_dir: Path) -> set[str]:
    """The agents with at least one finished cell in ``out_dir``."""
    return {p.name.split("__seed")[0] for p in (Path(out_dir) / "cells").glob("*__seed*.json")}


def _pretrain_rows_path(out_dir: Path, seed: int) -> Path:
    return Path(out_dir) / "pretrained" / f"seed{seed}.json"


def _atomic_write_json(obj: Any, path: Path) -> None:
    atomic_write_text(path, json.dumps(obj, indent=1))


def _init_worker(threads: int) -> None:
    """Keep each worker to its share of the cores (torch defaults to all of them), with the
    process settings of the ``textgan`` command (before any tensor work starts its threads)."""
    import torch

    from textgan_envs.process_setup import tune_process

    tune_process()
    torch.set_num_threads(max(1, threads))


def _run_pretrain(pretrainer: Pretrainer, seed: int, out_dir: Path) -> list[Row]:
    path = pretrained_path(out_dir, seed)
    work = path.parent / f"seed{seed}_work"
    work.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    rows = [{"agent": "pretrain", "seed": seed, **r} for r in pretrainer(seed, path, work)]
    if not path.is_file():
        raise RuntimeError(f"pretrainer for seed {seed} returned without writing {path}")
    _atomic_write_json(
        {"seed": seed, "wall_time": time.perf_counter() - start, "rows": rows},
        _pretrain_rows_path(out_dir, seed),
    )
    return rows


def _run_cell(runner: CellRunner, cell: Cell, budget: int, out_dir: Path) -> list[Row]:
    cell_dir = Path(out_dir) / "runs" / cell.name
    cell_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    raw = runner(cell.agent, cell.seed, budget, pretrained_path(out_dir, cell.seed), cell_dir)
    rows = [{"agent": cell.agent, "seed": cell.seed, **r} for r in raw]
    elapsed = time.perf_counter() - start
    _atomic_write_json(
        {
            "agent": cell.agent,
            "seed": cell.seed,
            "budget": budget,
            "wall_time": elapsed,
            "rows": rows,
        },
        cell_path(out_dir, cell),
    )
    return rows


class _InlineExecutor(Executor):
    """Runs submitted calls one at a time in this process (``workers == 1``), lazily.

    A call runs when :meth:`run_next` is asked for it, so the progress bar moves between
    units instead of everything running inside ``submit``.
    """

    def __init__(self) -> None:
        self._queue: list[tuple[Future[Any], Callable[..., Any], tuple[Any, ...]]] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        self._queue.append((future, fn, args))
        return future

    def run_next(self) -> Future[Any]:
        future, fn, args = self._queue.pop(0)
        try:
            future.set_result(fn(*args))
        except Exception as exc:  # handed to the caller; Ctrl-C still stops the grid
            future.set_exception(exc)
        return future


class _RayExecutor(Executor):
    """Submits calls as Ray tasks; ``ObjectRef.future()`` gives a standard Future."""

    def __init__(self, threads: int) -> None:
        import ray

        if not ray.is_initialized():
            ray.init(address=os.environ.get("RAY_ADDRESS"))
        self._ray = ray
        self._threads = threads

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        remote = self._ray.remote(num_cpus=self._threads)(_call_with_threads)
        return remote.remote(self._threads, fn, *args, **kwargs).future()


def _call_with_threads(threads: int, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    _init_worker(threads)
    return fn(*args, **kwargs)


def check_launcher(launcher: str) -> None:
    """Fail early, with the fix, when a launcher cannot be used here."""
    if launcher not in ("process", "ray"):
        raise ValueError(f"unknown launcher {launcher!r}; choose 'process' or 'ray'")
    if launcher == "ray":
        try:
            import ray  # noqa: F401
        except ImportError as exc:
            raise ValueError(
                "--launcher ray needs Ray, which is not installed; install the optional extra "
                "(pip install 'textgan[ray]') or use the default --launcher process"
            ) from exc


def _make_executor(launcher: str, workers: int, threads: int) -> Executor:
    check_launcher(launcher)
    if launcher == "ray":
        return _RayExecutor(threads)
    if workers == 1:
        return _InlineExecutor()
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=get_context("spawn"),
        initializer=_init_worker,
        initargs=(threads,),
    )


def load_finished(out_dir: Path) -> tuple[list[Row], list[Row]]:
    """All rows recorded so far: (pretraining rows, cell rows)."""
    out_dir = Path(out_dir)
    pre, cells = [], []
    for path in sorted((out_dir / "pretrained").glob("seed*.json")):
        pre += json.loads(path.read_text())["rows"]
    for path in sorted((out_dir / "cells").glob("*.json")):
        cells += json.loads(path.read_text())["rows"]
    return pre, cells


def run_grid(
    agents: Sequence[str],
    seeds: Iterable[int],
    runner: CellRunner,
    pretrainer: Pretrainer,
    out_dir: str | Path,
    budget: int,
    workers: int = 1,
    launcher: str = "process",
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> tuple[list[Row], list[Row]]:
    """Run every missing unit of the grid; return all (pretraining rows, cell rows).

    Finished cells and cached pretrained generators already on disk are skipped. A unit that
    raises is reported (traceback under ``errors/``) while the others go on; a
    :class:`GridError` at the end names the failures, and a rerun retries only them.
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    out_dir = Path(out_dir)
    seeds = list(seeds)
    cells = [Cell(a, s) for s in seeds for a in agents]
    todo = [c for c in cells if not cell_path(out_dir, c).is_file()]
    # A seed's pretraining is redone when its record is missing, or when cells still need its
    # generator and only the record survived (results committed without the checkpoint).
    need_pre = [
        s
        for s in seeds
        if not _pretrain_rows_path(out_dir, s).is_file()
        or (not pretrained_path(out_dir, s).is_file() and any(c.seed == s for c in todo))
    ]
    done = len(cells) - len(todo)
    if done or len(need_pre) < len(seeds):
        log(
            f"resuming {out_dir}: {done}/{len(cells)} cells and "
            f"{len(seeds) - len(need_pre)}/{len(seeds)} pretrained generators already done"
        )
    threads = max(1, (os.cpu_count() or 1) // workers)
    executor = _make_executor(launcher, workers, threads)
    failures: list[str] = []
    bar = tqdm(
        total=len(seeds) + len(cells),
        initial=(len(seeds) - len(need_pre)) + done,
        desc="bench",
        unit="run",
        disable=not progress,
        dynamic_ncols=True,
    )
    pending: dict[Future[Any], tuple[str, Any]] = {}

    def submit_cells(seed: int) -> None:
        for cell in todo:
            if cell.seed == seed:
                fut = executor.submit(_run_cell, runner, cell, budget, out_dir)
                pending[fut] = ("cell", cell)

    # One unit at a time, a seed's cells run right after its pretraining, so an interrupted
    # grid leaves whole seeds finished; worker pools pretrain every seed at once.
    one_at_a_time = isinstance(executor, _InlineExecutor)
    queued_pre = list(need_pre)

    def submit_pretrain() -> None:
        seed = queued_pre.pop(0)
        pending[executor.submit(_run_pretrain, pretrainer, seed, out_dir)] = ("pretrain", seed)

    try:
        for seed in [s for s in seeds if s not in need_pre]:
            submit_cells(seed)
        for _ in range(min(1, len(queued_pre)) if one_at_a_time else len(queued_pre)):
            submit_pretrain()
        while pending:
            if isinstance(executor, _InlineExecutor):
                finished = {executor.run_next()}
            else:
                finished, _ = wait(list(pending), return_when=FIRST_COMPLETED)
            for fut in finished:
                kind, what = pending.pop(fut)
                label = f"pretrain seed {what}" if kind == "pretrain" else what.name
                exc = fut.exception()
                if exc is not None:
                    failures.append(label)
                    _record_error(out_dir, label, exc)
                    skipped = [c.name for c in todo if kind == "pretrain" and c.seed == what]
                    failures += [f"{name} (its pretraining failed)" for name in skipped]
                    bar.update(1 + len(skipped))
                    log(f"FAILED {label}: {type(exc).__name__}: {exc}")
                else:
                    bar.update(1)
                    bar.set_postfix_str(f"done {label}")
                    if kind == "pretrain":
                        submit_cells(what)
                if kind == "pretrain" and queued_pre:  # (one at a time) after this seed's cells
                    submit_pretrain()
    finally:
        bar.close()
        executor.shutdown(wait=True, cancel_futures=True)
    if failures:
        raise GridError(
            f"{len(failures)} unit(s) of the grid failed: {', '.join(failures)}; tracebacks "
            f"in {out_dir / 'errors'}; finished cells are kept, rerun the same command to retry"
        )
    return load_finished(out_dir)


def _record_error(out_dir: Path, label: str, exc: BaseException) -> None:
    path = Path(out_dir) / "errors" / (label.replace(" ", "_") + ".txt")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))

"""The bench grid with fake cell runners of known output: files, resume, failures, parallel seeds."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from agents.bench.grid import GridError, cell_path, check_launcher, run_grid
from agents.bench.report import write_report

AGENT_OFFSET = {"mle": 0.0, "better": -1.0}


def fake_pretrainer(seed: int, path: Path, work_dir: Path) -> list[dict]:
    torch.save({"seed": seed}, path)
    return [
        {"phase": "pretrain", "step": 0, "nll_oracle": 10.0 + seed},
        {"phase": "pretrain", "step": 5, "nll_oracle": 9.0 + seed},
    ]


def fake_runner(agent: str, seed: int, budget: int, pretrained: Path, out_dir: Path) -> list[dict]:
    """NLL-oracle = 9 + seed/10 + offset(agent) - step/budget; BLEU mirrors it."""
    assert torch.load(pretrained)["seed"] == seed  # every cell gets its own seed's generator
    rows = []
    for step in range(0, budget + 1, budget // 2):
        nll = 9.0 + seed / 10 + AGENT_OFFSET[agent] - step / budget
        rows.append(
            {
                "phase": "train",
                "step": step,
                "wall_time": 0.1 * step,
                "nll_oracle": nll,
                "bleu2": 1 / nll,
            }
        )
    for t in (0.5, 1.0, 1.5):
        rows.append({"phase": "sweep", "temperature": t, "nll_oracle": 8 + t, "nll_test": 9 - t})
    return rows


class Recorder:
    """A runner that counts its calls and can stop the grid like Ctrl-C at a given cell."""

    def __init__(self, interrupt_at: str | None = None, fail_at: str | None = None) -> None:
        self.calls: list[str] = []
        self.interrupt_at, self.fail_at = interrupt_at, fail_at

    def __call__(
        self, agent: str, seed: int, budget: int, pretrained: Path, out_dir: Path
    ) -> list[dict]:
        name = f"{agent}__seed{seed}"
        if name == self.interrupt_at:
            raise KeyboardInterrupt
        if name == self.fail_at:
            raise RuntimeError("diverged")
        self.calls.append(name)
        return fake_runner(agent, seed, budget, pretrained, out_dir)


def _report(out: Path, pre, cells) -> str:
    return write_report(
        out,
        {"env": "fake"},
        pre,
        cells,
        ["nll_oracle", "bleu2", "nll_test"],
        ["nll_oracle", "bleu2"],
        [("nll_oracle", "nll_test")],
    )


def test_tiny_grid_writes_every_output_with_known_numbers(tmp_path: Path) -> None:
    pre, cells = run_grid(
        ["mle", "better"],
        [0, 1],
        fake_runner,
        fake_pretrainer,
        tmp_path,
        budget=4,
        progress=False,
        log=lambda _: None,
    )
    main = _report(tmp_path, pre, cells)
    for name in [
        "results.csv",
        "sweep.csv",
        "pretrain.csv",
        "summary.md",
        "learning_curves.png",
        "quality_diversity_nll_oracle_nll_test.png",
    ]:
        assert (tmp_path / name).stat().st_size > 0, name
    with (tmp_path / "results.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 * 2 * 3  # agents x seeds x checkpoints
    # final NLL-oracle: mle seeds 0,1 -> 8.0, 8.1 (IQM 8.05); better -> 7.0, 7.1
    assert "8.050 [8.000, 8.100]" in main and "7.050 [7.000, 7.100]" in main
    text = (tmp_path / "summary.md").read_text()
    assert "random (untrained)" in text and "10.500" in text  # pretrain step 0: 10, 11
    assert "Probability of improving on `mle`" in text
    assert "| better | 1.00 | 1.00 |" in text  # lower NLL and higher BLEU in every pair


def test_a_variant_with_fewer_finished_seeds_is_not_reported_as_all_of_them(
    tmp_path: Path,
) -> None:
    pre, cells = run_grid(
        ["mle", "better"], [0, 1, 2], fake_runner, fake_pretrainer, tmp_path, budget=4,
        progress=False, log=lambda _: None,
    )  # fmt: skip
    partial = [r for r in cells if r["agent"] == "mle" or r["seed"] == 2]
    main = _report(tmp_path, pre, partial)
    rows = {line.split(" | ")[0].strip("| *"): line for line in main.splitlines()[2:]}
    assert rows["mle"].endswith("| 3 |") and rows["better"].endswith("| 1 |")
    assert rows["MLE-pretrained start"].endswith("| 3 |")
    assert "7.200 (1 seed)" in rows["better"]  # seed 2's own value, not a 3-seed IQM
    text = (tmp_path / "summary.md").read_text()
    assert "IQM over 3 seed(s)" not in text
    assert "not every variant has finished every seed: " in text
    assert "`mle` 0, 1, 2" in text and "`better` 2" in text
    _report(tmp_path, pre, cells)
    assert "IQM over 3 seed(s)" in (tmp_path / "summary.md").read_text()


def test_interrupted_grid_resumes_without_redoing_finished_cells(tmp_path: Path) -> None:
    first = Recorder(interrupt_at="better__seed1")
    with pytest.raises(KeyboardInterrupt):
        run_grid(
            ["mle", "better"],
            [0, 1],
            first,
            fake_pretrainer,
            tmp_path,
            budget=4,
            progress=False,
            log=lambda _: None,
        )
    assert first.calls == ["mle__seed0", "better__seed0", "mle__seed1"]
    assert not cell_path(tmp_path, type("C", (), {"name": "better__seed1"})()).exists()
    second = Recorder()
    messages: list[str] = []
    _, cells = run_grid(
        ["mle", "better"],
        [0, 1],
        second,
        fake_pretrainer,
        tmp_path,
        budget=4,
        progress=False,
        log=messages.append,
    )
    assert second.calls == ["better__seed1"]
    assert "3/4 cells" in messages[0]
    assert {(r["agent"], r["seed"]) for r in cells} == {
        (a, s) for a in ("mle", "better") for s in (0, 1)
    }


def test_a_failing_cell_is_reported_and_the_rest_finish(tmp_path: Path) -> None:
    runner = Recorder(fail_at="mle__seed0")
    with pytest.raises(GridError, match="mle__seed0"):
        run_grid(
            ["mle", "better"],
            [0],
            runner,
            fake_pretrainer,
            tmp_path,
            budget=4,
            progress=False,
            log=lambda _: None,
        )
    assert runner.calls == ["better__seed0"]
    assert "diverged" in (tmp_path / "errors" / "mle__seed0.txt").read_text()
    retry = Recorder()
    run_grid(
        ["mle", "better"],
        [0],
        retry,
        fake_pretrainer,
        tmp_path,
        budget=4,
        progress=False,
        log=lambda _: None,
    )
    assert retry.calls == ["mle__seed0"]


def test_seeds_run_in_parallel_processes(tmp_path: Path) -> None:
    pre, cells = run_grid(
        ["mle", "better"],
        [0, 1],
        fake_runner,
        fake_pretrainer,
        tmp_path,
        budget=2,
        workers=2,
        progress=False,
        log=lambda _: None,
    )
    assert len(pre) == 4 and len(cells) == 4 * (3 + 3)  # 3 checkpoints + 3 temperatures
    record = json.loads((tmp_path / "cells" / "better__seed1.json").read_text())
    assert record["rows"][-1]["nll_test"] == pytest.approx(7.5)


def test_ray_launcher_without_ray_is_a_clear_error() -> None:
    try:
        import ray  # noqa: F401
    except ImportError:
        with pytest.raises(ValueError, match="needs Ray"):
            check_launcher("ray")
    with pytest.raises(ValueError, match="unknown launcher"):
        check_launcher("slurm")


def test_a_kept_record_without_its_checkpoint_is_pretrained_again_only_if_cells_need_it(
    tmp_path: Path,
) -> None:
    """Committed results keep the rows, not the checkpoints: a resumed grid re-pretrains a
    seed whose cells are unfinished, and leaves finished seeds alone."""
    run_grid(
        ["mle", "better"],
        [0, 1],
        fake_runner,
        fake_pretrainer,
        tmp_path,
        budget=4,
        progress=False,
        log=lambda _: None,
    )
    for seed in (0, 1):
        (tmp_path / "pretrained" / f"seed{seed}.pt").unlink()
    cell_path(tmp_path, type("C", (), {"name": "better__seed1"})()).unlink()
    pretrained: list[int] = []

    def counting_pretrainer(seed: int, path: Path, work_dir: Path) -> list[dict]:
        pretrained.append(seed)
        return fake_pretrainer(seed, path, work_dir)

    again = Recorder()
    _, cells = run_grid(
        ["mle", "better"],
        [0, 1],
        again,
        counting_pretrainer,
        tmp_path,
        budget=4,
        progress=False,
        log=lambda _: None,
    )
    assert pretrained == [1] and again.calls == ["better__seed1"]
    assert len({(r["agent"], r["seed"]) for r in cells}) == 4


def test_one_worker_finishes_each_seed_before_pretraining_the_next(tmp_path: Path) -> None:
    """An interrupted single-process grid leaves whole seeds done (what a stopped run can commit)."""
    events: list[str] = []

    def pretrainer(seed: int, path: Path, work_dir: Path) -> list[dict]:
        events.append(f"pretrain{seed}")
        return fake_pretrainer(seed, path, work_dir)

    def runner(agent: str, seed: int, budget: int, pretrained: Path, out_dir: Path) -> list[dict]:
        events.append(f"{agent}{seed}")
        return fake_runner(agent, seed, budget, pretrained, out_dir)

    run_grid(
        ["mle", "better"],
        [0, 1, 2],
        runner,
        pretrainer,
        tmp_path,
        budget=4,
        progress=False,
        log=lambda _: None,
    )
    assert events == [
        "pretrain0",
        "mle0",
        "better0",
        "pretrain1",
        "mle1",
        "better1",
        "pretrain2",
        "mle2",
        "better2",
    ]

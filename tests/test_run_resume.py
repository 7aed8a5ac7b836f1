"""``--resume`` is checked against the run before anything in its directory is written: another
config (from config.json, or from the checkpoint when config.json is gone), another agent,
nothing to resume, a finished run; stale temp files of killed writes are cleaned on start."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agents import train as train_cli
from agents.runtime import (
    NoCheckpointError,
    RunState,
    load_checkpoint,
    prepare_run_dir,
    remove_stale_temp_files,
    save_run_checkpoint,
)
from agents.setup import CommonConfig
from tests.test_train_cli import sets


def _argv(out: Path, agent: str = "reinforce", *extra: str) -> list[str]:
    agent_sets = ["n_rollouts=2"] if agent == "reinforce" else ["n_groups=2", "n_samples=4"]
    return ["--agent", agent, "--out", str(out), *sets("total_steps=2", *agent_sets, *extra)]


def _snapshot(run: Path) -> dict[str, bytes]:
    """Every file of a run directory (but its lock) and its bytes."""
    return {
        str(p.relative_to(run)): p.read_bytes()
        for p in sorted(run.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A two-step reinforce run (V=30); tests copy it before touching it."""
    out = tmp_path_factory.mktemp("runs") / "run"
    assert train_cli.main(_argv(out)) == 0
    return out


def _copy(run: Path, to: Path) -> Path:
    import shutil

    shutil.copytree(run, to, ignore=shutil.ignore_patterns(".lock"))
    return to


def test_checkpoints_store_the_run_config(finished_run: Path) -> None:
    ckpt = load_checkpoint(finished_run / "checkpoint.pt")
    assert ckpt["config"] == json.loads((finished_run / "config.json").read_text())


@pytest.mark.parametrize("without_config_json", [False, True])
def test_a_changed_config_is_refused_before_anything_is_written(
    finished_run: Path, tmp_path: Path, capsys, without_config_json: bool
) -> None:
    run = _copy(finished_run, tmp_path / "run")
    if without_config_json:
        (run / "config.json").unlink()
    before = _snapshot(run)
    assert (
        train_cli.main([*_argv(run, "reinforce", "vocab_size=40", "total_steps=3"), "--resume"])
        == 1
    )
    err = capsys.readouterr().err
    against = " than its checkpoint stores" if without_config_json else ""
    assert f"cannot resume {run} with a different config{against} (vocab_size: 30 -> 40)" in err
    assert "size mismatch" not in err and err.count("\n") == 1
    assert _snapshot(run) == before  # config.json not rewritten (or not recreated)
    # so the right command still resumes the run
    assert train_cli.main([*_argv(run, "reinforce", "total_steps=3"), "--resume"]) == 0
    assert load_checkpoint(run / "checkpoint.pt", ["step"])["step"] == 3


@pytest.mark.parametrize("without_config_json", [False, True])
def test_resuming_as_another_agent_names_both(
    finished_run: Path, tmp_path: Path, capsys, without_config_json: bool
) -> None:
    run = _copy(finished_run, tmp_path / "run")
    if without_config_json:
        (run / "config.json").unlink()
    before = _snapshot(run)
    assert train_cli.main([*_argv(run, "bgan", "total_steps=3"), "--resume"]) == 1
    err = capsys.readouterr().err
    assert f"cannot resume {run} as agent 'bgan': it holds a 'reinforce' run" in err
    assert _snapshot(run) == before


@pytest.mark.parametrize("state", ["missing", "empty", "config only"])
def test_resume_with_nothing_to_resume_is_an_error(tmp_path: Path, capsys, state: str) -> None:
    run = tmp_path / "run"
    if state != "missing":
        run.mkdir()
    if state == "config only":  # a start that died before its first checkpoint
        (run / "config.json").write_text("{}")
    assert train_cli.main([*_argv(run), "--resume"]) == 1
    assert f"no checkpoint in {run}; drop --resume to start a new run" in capsys.readouterr().err
    assert run.exists() == (state != "missing")  # nothing was created
    if state == "empty":
        assert list(run.iterdir()) == []
    with pytest.raises(NoCheckpointError):
        prepare_run_dir(run, CommonConfig(out_dir=str(run)), "toy", resume=True)


def test_resuming_a_finished_run_says_so_and_writes_nothing(
    finished_run: Path, tmp_path: Path, capsys
) -> None:
    run = _copy(finished_run, tmp_path / "run")
    before = _snapshot(run)
    assert train_cli.main([*_argv(run), "--resume"]) == 0
    out = capsys.readouterr().out
    assert f"{run} is finished (step 2 of 2); nothing to resume (raise total_steps" in out
    assert _snapshot(run) == before


def test_a_start_killed_during_pretraining_resumes_from_its_mle_checkpoint(
    finished_run: Path, tmp_path: Path
) -> None:
    run = _copy(finished_run, tmp_path / "run")
    (run / "checkpoint.pt").unlink()  # as if killed after MLE pre-training, before step 0
    assert (run / "mle" / "mle_checkpoint.pt").is_file()
    assert train_cli.main(_argv(run)) == 1  # a fresh start would overwrite the pre-training
    assert train_cli.main([*_argv(run), "--resume"]) == 0
    assert load_checkpoint(run / "checkpoint.pt", ["step"])["step"] == 2


def test_stale_temp_files_of_killed_writes_are_removed_on_resume(
    finished_run: Path, tmp_path: Path
) -> None:
    run = _copy(finished_run, tmp_path / "run")
    stale = [
        run / ".checkpoint.pt.k1lled.tmp",  # atomic_save's temp file
        run / "config.json.tmp",
        run / "mle" / ".mle_checkpoint.pt.x9.tmp",
    ]
    for path in stale:
        path.write_bytes(b"half a checkpoint")
    assert train_cli.main([*_argv(run, "reinforce", "total_steps=3"), "--resume"]) == 0
    assert not any(p.exists() for p in stale)


def test_temp_file_cleaning_leaves_other_runs_and_other_files_alone(tmp_path: Path) -> None:
    (tmp_path / "inner").mkdir()
    (tmp_path / "inner" / ".lock").write_text("123\n")  # another run, maybe alive
    kept = [tmp_path / "inner" / ".x.tmp", tmp_path / "notes.txt", tmp_path / "a.tmpl"]
    gone = [tmp_path / ".checkpoint.pt.ab.tmp", tmp_path / "sub" / "y.tmp"]
    (tmp_path / "sub").mkdir()
    for path in kept + gone:
        path.write_text("x")
    assert sorted(remove_stale_temp_files(tmp_path)) == sorted(gone)
    assert all(p.exists() for p in kept)


def test_a_checkpoint_of_another_shape_is_a_clear_error(tmp_path: Path) -> None:
    import torch

    from agents.runtime import CheckpointError, load_run_checkpoint

    small = {"net": torch.nn.Linear(2, 2)}
    save_run_checkpoint(tmp_path, RunState(1), small, {}, {}, "toy")
    with pytest.raises(CheckpointError, match=r"module state 'net' does not fit this run"):
        load_run_checkpoint(tmp_path, {"net": torch.nn.Linear(3, 2)}, {}, {}, agent="toy")


def test_a_run_whose_data_came_out_differently_is_refused(
    finished_run: Path, tmp_path: Path, capsys
) -> None:
    """config.json records the data's digest: the same seed must give the same tokens."""
    run = _copy(finished_run, tmp_path / "run")
    config = json.loads((run / "config.json").read_text())
    assert len(config["data_digest"]) == 16
    config["data_digest"] = "0" * 16
    (run / "config.json").write_text(json.dumps(config))
    before = _snapshot(run)
    assert train_cli.main([*_argv(run, "reinforce", "total_steps=3"), "--resume"]) == 1
    err = capsys.readouterr().err
    assert "data_digest: '0000000000000000' ->" in err and "the data differ" in err
    assert "other CPU float kernels" in err and "data_cache" in err  # the way to resume elsewhere
    assert _snapshot(run) == before

"""One writer per run directory: a second training, bench, BEGAN or PPGN run on a locked
directory fails at once naming it and the holder's pid; a SIGKILLed holder leaves no stale lock."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from agents import train as train_cli
from agents.runtime import (
    LOCK_NAME,
    RunLockedError,
    RunState,
    holds_lock,
    load_checkpoint,
    lock_run_dir,
    prepare_run_dir,
    release_run_dir,
    save_run_checkpoint,
)
from agents.setup import CommonConfig
from tests.test_resume_kill import SETS, command, env

ROOT = Path(__file__).resolve().parents[1]
HOLDER = (
    "import sys; from agents.runtime import lock_run_dir; lock_run_dir(sys.argv[1]); "
    "print('locked', flush=True); sys.stdin.read()"
)


def _hold(run_dir: Path) -> subprocess.Popen:
    """A process that takes the lock of ``run_dir`` and keeps it until killed."""
    run_dir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(run_dir)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "locked"
    return proc


def _kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def test_flock_conflicts_between_two_opens_of_one_process(tmp_path: Path) -> None:
    # The kernel's rule the run lock relies on: locks belong to open file descriptions.
    path = tmp_path / "f"
    first = os.open(path, os.O_RDWR | os.O_CREAT)
    second = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(first, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(BlockingIOError):
            fcntl.flock(second, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.close(first)  # closing the holder's descriptor releases the lock
        fcntl.flock(second, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(second)


def test_the_lock_names_its_holder_and_dies_with_it(tmp_path: Path) -> None:
    run = tmp_path / "run"
    holder = _hold(run)
    try:
        assert (run / LOCK_NAME).read_text().strip() == str(holder.pid)
        with pytest.raises(RunLockedError, match=rf"{run} is in use by process {holder.pid}"):
            lock_run_dir(run)
        cfg = CommonConfig(out_dir=str(run))
        with pytest.raises(RunLockedError):
            prepare_run_dir(run, cfg, "toy", resume=False)
        assert not (run / "config.json").exists()  # refused before writing anything
    finally:
        _kill(holder)
    lock_run_dir(run)  # the SIGKILLed holder left no stale lock
    assert holds_lock(run) and (run / LOCK_NAME).read_text().strip() == str(os.getpid())
    lock_run_dir(run)  # taking it again in the same process is a no-op
    release_run_dir(run)
    assert not holds_lock(run)


def test_a_second_training_on_the_same_out_fails_at_once(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    first = subprocess.Popen(
        [*command(out), "--set", "total_steps=400"],
        cwd=ROOT,
        env=env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while not (out / "checkpoint.pt").exists():
            assert first.poll() is None, first.stderr.read().decode()
            assert time.monotonic() < deadline, "the first training never checkpointed"
            time.sleep(0.05)
        rows_before = (out / "metrics.csv").read_text() if (out / "metrics.csv").exists() else ""
        argv = ["--agent", "reinforce", "--out", str(out)]
        for item in SETS:
            argv += ["--set", item]
        for resume in ([], ["--resume"]):  # started alongside, or resumed while it runs
            assert train_cli.main([*argv, "--set", "total_steps=400", *resume]) == 1
            err = capsys.readouterr().err
            assert f"{out} is in use by process {first.pid}" in err
            assert err.count("\n") == 1  # one line
        now = (out / "metrics.csv").read_text() if (out / "metrics.csv").exists() else ""
        assert now.startswith(rows_before)  # the first run's rows only, still growing
        assert first.poll() is None  # and the first run goes on
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
        first.stderr.close()
    # killed mid-run: the directory is free again and the run resumes
    step = int(load_checkpoint(out / "checkpoint.pt", ["step"])["step"])
    assert train_cli.main([*argv, "--set", f"total_steps={step + 1}", "--resume"]) == 0
    assert int(load_checkpoint(out / "checkpoint.pt", ["step"])["step"]) == step + 1


def test_bench_began_and_ppgn_refuse_a_locked_directory(tmp_path: Path, capsys) -> None:
    from agents.bench import cli as bench_cli
    from image_samplers.began import BEGANConfig
    from image_samplers.began.train import BEGANTrainer
    from image_samplers.data import load_digits
    from image_samplers.ppgn.config import tiny_config
    from image_samplers.ppgn.train import train_ppgn

    bench, began, ppgn = tmp_path / "bench", tmp_path / "began", tmp_path / "ppgn"
    holders = [_hold(d) for d in (bench, began, ppgn)]
    try:
        argv = ["--out", str(bench), "--seeds", "1", "--budget", "2", "--checkpoints", "1"]
        assert bench_cli.main(argv) == 1
        assert f"{bench} is in use by process {holders[0].pid}" in capsys.readouterr().err
        assert not (bench / "config.json").exists()
        data = load_digits(8).subset(torch.arange(16))
        config = BEGANConfig(image_size=8, num_filters=4, z_dim=4, h_dim=4, batch_size=8, steps=2)
        with pytest.raises(RunLockedError, match=f"process {holders[1].pid}"):
            BEGANTrainer(config, out_dir=began, device="cpu", dataset=data)
        digits = load_digits(16)
        with pytest.raises(RunLockedError, match=f"process {holders[2].pid}"):
            train_ppgn(digits, ppgn, tiny_config(), device="cpu", progress=False)
        assert not any((d / "config.json").exists() for d in (began, ppgn))
    finally:
        for proc in holders:
            _kill(proc)


def test_trainers_release_the_lock_when_their_run_ends(tmp_path: Path) -> None:
    from image_samplers.began import BEGANConfig
    from image_samplers.began.train import BEGANTrainer
    from image_samplers.data import load_digits

    data = load_digits(8).subset(torch.arange(16))
    config = BEGANConfig(image_size=8, num_filters=4, z_dim=4, h_dim=4, batch_size=8, steps=2)
    trainer = BEGANTrainer(config, out_dir=tmp_path / "b", device="cpu", dataset=data)
    assert holds_lock(tmp_path / "b")  # from construction ...
    trainer.train(progress=False, tensorboard=False)
    assert not holds_lock(tmp_path / "b")  # ... to the end of training
    cfg = CommonConfig(out_dir=str(tmp_path / "r"))
    prepare_run_dir(tmp_path / "r", cfg, "toy", resume=False)
    save_run_checkpoint(tmp_path / "r", RunState(), {}, {}, {}, "toy")
    release_run_dir(tmp_path / "r")
    assert not holds_lock(tmp_path / "r")

"""A seed's drawn oracle data kept on disk: a resumed run trains on them even where a fresh
draw would come out differently (other float rounding), and a bad file is refused, not used."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from agents.bench import cli, runners
from agents.bench.grid import data_cache_path
from agents.bench.runners import BenchRunner, _common_config, build_task
from agents.runtime import CheckpointError, ConfigError
from agents.setup import load_data
from tests.test_bench_pretrain import SMALL
from textgan_envs.oracle import OracleLSTM


def _bench(tmp_path: Path):
    return cli.config_from_args(cli.build_parser().parse_args(["--out", str(tmp_path), *SMALL]))


def _cfg(tmp_path: Path, **extra):
    return _common_config(_bench(tmp_path), 0, tmp_path / "run", **extra)


def _other_rounding(monkeypatch) -> None:
    """A machine whose portable draws differ from this one's (as AVX2 vs AVX-512 kernels)."""
    draw = OracleLSTM.sample

    def shifted(self, n, *args, **kwargs):
        return (draw(self, n, *args, **kwargs) + 1) % self.vocab_size

    monkeypatch.setattr(OracleLSTM, "sample", shifted)


def test_the_first_draw_is_written_and_a_later_start_reads_it(tmp_path, monkeypatch) -> None:
    path = tmp_path / "data.npz"
    drawn = load_data(_cfg(tmp_path, data_cache=path))
    assert not path.exists()  # written once the run directory is prepared, not by reading
    drawn.keep()
    assert path.is_file()
    with np.load(path, allow_pickle=False) as archive:
        assert archive["real"].dtype == np.uint16  # V=30 fits
    _other_rounding(monkeypatch)
    assert not torch.equal(load_data(_cfg(tmp_path)).real, drawn.real)  # a fresh draw differs
    again = load_data(_cfg(tmp_path, data_cache=path))  # the cache does not
    assert torch.equal(again.real, drawn.real) and torch.equal(again.valid, drawn.valid)
    assert again.real.dtype == torch.int64
    assert again.record()["data_digest"] == drawn.record()["data_digest"]


def test_a_cache_of_another_draw_is_refused_and_kept(tmp_path) -> None:
    path = tmp_path / "data.npz"
    load_data(_cfg(tmp_path, data_cache=path)).keep()
    before = path.read_bytes()
    other = _common_config(_bench(tmp_path), 1, tmp_path / "run", data_cache=path)  # seed 1
    with pytest.raises(ConfigError, match=r"another draw \(seed: 0 here 1\)"):
        load_data(other)
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    "damage, message",
    [
        ("garbage", "not a readable data file"),
        ("tokens", "do not match their digest"),
        ("range", "outside \\[0, 30\\)"),
    ],
)
def test_a_damaged_cache_is_refused_naming_it(tmp_path, damage, message) -> None:
    from agents import data_cache

    path = tmp_path / "data.npz"
    cfg = _cfg(tmp_path, data_cache=path)
    drawn = load_data(cfg)
    drawn.keep()
    if damage == "garbage":
        path.write_bytes(b"not an npz archive")
    else:
        with np.load(path, allow_pickle=False) as archive:
            arrays = dict(archive)
        if damage == "tokens":
            arrays["real"] = (arrays["real"] + 1) % 30  # the record's digest is the old one
            np.savez_compressed(path, **arrays)
        else:  # a consistent file from a larger vocabulary
            identity = data_cache.oracle_data_identity(cfg, drawn.oracle)
            data_cache.save_data(path, identity, drawn.real + 30, drawn.valid)
    with pytest.raises(ConfigError, match=message) as info:
        load_data(cfg)
    assert str(path) in str(info.value)


def test_a_bench_resumes_on_a_machine_that_draws_other_data(tmp_path, monkeypatch) -> None:
    """The seed's tokens are kept beside its MLE start, so its cells run where a fresh draw
    differs; without them the same cell is refused (the start was trained on other data)."""
    bench = _bench(tmp_path)
    start = tmp_path / "pretrained" / "seed0.pt"
    BenchRunner(bench).pretrain(0, start, tmp_path / "work")
    cache = data_cache_path(start)
    assert cache == tmp_path / "pretrained" / "data_seed0.npz" and cache.is_file()
    real = build_task(bench, 0, data_cache=cache).real

    _other_rounding(monkeypatch)
    monkeypatch.setattr(runners, "_TASKS", {})  # a new process: nothing memoised
    (tmp_path / "cell").mkdir()
    rows = BenchRunner(bench)("mle", 0, 2, start, tmp_path / "cell")
    assert [r["step"] for r in rows if r.get("phase") == "train"] == [0, 2]
    assert torch.equal(build_task(bench, 0, data_cache=cache).real, real)

    cache.unlink()
    monkeypatch.setattr(runners, "_TASKS", {})
    (tmp_path / "cell2").mkdir()
    with pytest.raises(CheckpointError, match="trained on other data"):
        BenchRunner(bench)("mle", 0, 2, start, tmp_path / "cell2")


def test_a_run_keeps_its_data_and_resumes_where_a_fresh_draw_differs(
    tmp_path, monkeypatch, capsys
) -> None:
    """The default ``data_cache="auto"`` keeps the draw in the run directory."""
    from agents import train as train_cli
    from tests.test_run_resume import _argv

    run = tmp_path / "run"
    assert train_cli.main(_argv(run, "reinforce")) == 0
    assert (run / "data.npz").is_file()
    _other_rounding(monkeypatch)
    assert train_cli.main([*_argv(run, "reinforce", "total_steps=3"), "--resume"]) == 0
    assert _checkpoint_step(run) == 3
    capsys.readouterr()
    without = _argv(run, "reinforce", "total_steps=4", "data_cache=null")  # drawn here: refused
    assert train_cli.main([*without, "--resume"]) == 1
    assert "the data differ" in capsys.readouterr().err


def test_a_damaged_auto_cache_is_redrawn_with_a_warning_and_rewritten(tmp_path) -> None:
    cfg = _cfg(tmp_path)
    assert cfg.data_cache == "auto"
    first = load_data(cfg)
    first.keep()
    path = tmp_path / "run" / "data.npz"
    path.write_bytes(b"truncated")
    with pytest.warns(RuntimeWarning, match=f"data cache {path} is not a readable.*drawing"):
        again = load_data(cfg)
    assert torch.equal(again.real, first.real)
    again.keep()
    assert torch.equal(load_data(cfg).real, first.real)  # read back without a warning


def _checkpoint_step(run: Path) -> int:
    from agents.runtime import load_checkpoint

    return int(load_checkpoint(run / "checkpoint.pt", ["step"])["step"])

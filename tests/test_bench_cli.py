"""`textgan bench` command line: bad arguments rejected with clear messages, resume checks, a real tiny run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agents.bench import cli
from agents.bench.presets import BenchConfig, preset

TINY = [
    "--seeds", "1", "--budget", "2", "--checkpoints", "1",
    "--set", "vocab_size=30", "--set", "seq_len=6", "--set", "n_real=128", "--set", "n_valid=64",
    "--set", "mle_epochs=1", "--set", "d_negatives=64", "--set", "d_pretrain_steps=1",
    "--eval-set", "n_samples=64", "--eval-set", "n_bleu=16", "--eval-set", "n_refs=64",
    "--eval-set", "temperatures=[0.8,1.2]", "--workers", "1", "--no-progress",
]  # fmt: skip


def _error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--agents", "mle,gpt"], "unknown agent(s) gpt; known agents: mle"),
        (["--env", "textgan/Atari-v0"], "unknown env 'textgan/Atari-v0'"),
        (["--seeds", "0"], "--seeds must be >= 1"),
        (["--budget", "-3"], "--budget must be >= 1"),
        (["--preset", "huge"], "unknown preset 'huge'"),
        (["--env", "textgan/Corpus-v0"], "textgan/Corpus-v0 needs --corpus FILE"),
        (
            ["--oracle", "/nonexistent/oracle.npz"],
            "--oracle /nonexistent/oracle.npz does not exist",
        ),
        (["--launcher", "slurm"], "unknown launcher 'slurm'"),
        (["--set", "mle_epochs=0"], "mle_epochs must be >= 1"),
        (["--set", "vocab_sise=10"], "vocab_sise"),
        (["--agents", "mle,mle"], "agents are repeated"),
        (["--seeds", "2", "--only-seeds", "2"], "each seed must be in 0..1"),
        (["--seeds", "2", "--only-seeds", "one"], "expected comma-separated integers"),
        (["--seeds", "3", "--only-seeds", "1,1"], "seeds are repeated"),
    ],
)
def test_bad_arguments_are_rejected_with_a_clear_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    err = _error(capsys, ["--out", str(tmp_path / "b"), *extra])
    assert message in err
    assert not (tmp_path / "b").exists()  # nothing was started


def test_resuming_with_a_different_configuration_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    saved = preset("quick")
    (tmp_path / "config.json").write_text(json.dumps(saved.to_dict()))
    err = _error(capsys, ["--out", str(tmp_path), "--budget", "7"])
    assert "different configuration" in err and "budget: 50 -> 7" in err
    # more seeds or agents extend the same bench instead
    args = cli.build_parser().parse_args(
        ["--out", str(tmp_path), "--seeds", "5", "--agents", "mle"]
    )
    cli.check_out_dir(tmp_path, cli.config_from_args(args))


def test_resuming_finished_cells_with_other_agent_settings_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    saved = preset("quick")  # reinforce.n_rollouts = 4
    (tmp_path / "config.json").write_text(json.dumps(saved.to_dict()))
    argv = ["--out", str(tmp_path), "--agent-set", "reinforce.n_rollouts=8"]
    cli.check_out_dir(tmp_path, cli.config_from_args(cli.build_parser().parse_args(argv)))
    (tmp_path / "cells").mkdir()
    (tmp_path / "cells" / "reinforce__seed0.json").write_text("{}")
    err = _error(capsys, argv)
    assert "finished cells of reinforce" in err and "{'n_rollouts': 8}" in err
    # other agents' settings may change while reinforce's stay
    other = ["--out", str(tmp_path), "--agent-set", "actor_critic.n_rollouts=8"]
    cli.check_out_dir(tmp_path, cli.config_from_args(cli.build_parser().parse_args(other)))


def test_presets_are_valid_and_state_their_shortcuts() -> None:
    quick = preset("quick")
    paper = preset("paper")
    assert quick.common["vocab_size"] < paper.common["vocab_size"] == 5000
    assert "V=500" in quick.notes[0]
    assert (paper.common["mle_epochs"], paper.budget, paper.common["d_pretrain_steps"]) == (
        120,
        200,
        50,
    )
    assert (paper.common["d_steps"], paper.common["d_epochs"]) == (5, 3)
    assert BenchConfig.from_dict(quick.to_dict()) == quick
    with pytest.raises(ValueError, match="seeds must be an integer >= 1"):
        BenchConfig(seeds=0)
    for name in ("quick", "paper"):  # every agent config of both presets is accepted by the agents
        args = cli.build_parser().parse_args(["--out", "unused", "--preset", name])
        assert cli.config_from_args(args).preset == name


@pytest.mark.slow
def test_tiny_real_bench_end_to_end_and_rerun_is_free(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bench"
    assert cli.main(["--out", str(out), "--agents", "mle,reinforce", *TINY]) == 0
    printed = capsys.readouterr().out
    assert "| mle |" in printed and "| reinforce |" in printed
    for name in [
        "results.csv",
        "sweep.csv",
        "summary.md",
        "config.json",
        "learning_curves.png",
        "quality_diversity_nll_oracle_nll_test.png",
    ]:
        assert (out / name).is_file(), name
    first = (out / "cells" / "reinforce__seed0.json").read_text()
    assert cli.main(["--out", str(out), "--agents", "mle,reinforce", *TINY]) == 0
    assert (out / "cells" / "reinforce__seed0.json").read_text() == first  # not rerun
    # a cell killed after its last segment trained but before it was recorded resumes exactly
    for agent in ("mle", "reinforce"):
        cell = out / "cells" / f"{agent}__seed0.json"
        before = json.loads(cell.read_text())["rows"]
        progress = out / "runs" / f"{agent}__seed0" / "bench_progress.json"
        state = json.loads(progress.read_text())
        state["rows"] = state["rows"][:-1]
        progress.write_text(json.dumps(state))
        cell.unlink()
        assert cli.main(["--out", str(out), "--agents", "mle,reinforce", *TINY]) == 0
        after = json.loads(cell.read_text())["rows"]
        assert [r["nll_oracle"] for r in after] == [r["nll_oracle"] for r in before]


def test_only_seeds_runs_that_seed_now_and_the_rest_later(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bench"
    two_seeds = [*TINY[:1], "2", *TINY[2:]]
    argv = ["--out", str(out), "--agents", "mle,reinforce", *two_seeds]
    assert cli.main([*argv, "--only-seeds", "1"]) == 0
    assert sorted(p.name for p in (out / "cells").iterdir()) == [
        "mle__seed1.json",
        "reinforce__seed1.json",
    ]
    assert not (out / "pretrained" / "seed0.pt").exists()  # seed 0 was not even pretrained
    assert json.loads((out / "config.json").read_text())["seeds"] == 2  # the bench keeps both
    seed1 = (out / "cells" / "reinforce__seed1.json").read_text()
    assert cli.main(argv) == 0  # the rest, later: only seed 0 runs
    assert (out / "cells" / "reinforce__seed0.json").is_file()
    assert (out / "cells" / "reinforce__seed1.json").read_text() == seed1
    rows = [line.split(",") for line in (out / "results.csv").read_text().splitlines()[1:]]
    assert {(r[0], r[1]) for r in rows} == {(a, s) for a in ("mle", "reinforce") for s in "01"}
    capsys.readouterr()


def test_the_seqgan_oracle_preset_is_the_papers_generator_schedule(monkeypatch, tmp_path) -> None:
    from agents.bench import presets

    bench = preset("seqgan-oracle")
    assert (bench.budget, bench.common["mle_epochs"], bench.common["n_real"]) == (200, 120, 10000)
    assert bench.agent_overrides["reinforce"]["n_rollouts"] == 16 and bench.common["disc"] == "cnn"
    assert "Shortened to fit" in bench.notes[0]  # every shortening is stated
    pretrain = [bench.common[f"d_pretrain_{k}"] for k in ("steps", "epochs", "negatives")]
    assert pretrain == [50, 3, 10000] and bench.n_checkpoints == 20  # the paper's D pre-training
    monkeypatch.setenv(presets.SHARED_DATA_ENV, str(tmp_path / "nowhere"))
    argv = ["--preset", "seqgan-oracle", "--out", str(tmp_path / "out")]
    with pytest.raises(cli.BenchArgumentError, match="needs the published oracle"):
        cli.config_from_args(cli.build_parser().parse_args(argv))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "seqgan_oracle_params.npz").write_bytes(b"")
    monkeypatch.setenv(presets.SHARED_DATA_ENV, str(tmp_path / "data"))
    found = preset("seqgan-oracle").common["oracle_path"]
    assert found == str(tmp_path / "data" / "seqgan_oracle_params.npz")


def test_the_seqgan_oracle_summary_states_the_d_schedule_that_runs(tmp_path: Path) -> None:
    """``--set`` on the D schedule rewrites the preset's note: no stale shortening is printed."""
    (tmp_path / "oracle.npz").write_bytes(b"")
    base = ["--preset", "seqgan-oracle", "--oracle", str(tmp_path / "oracle.npz"), "--out", "x"]

    def note(*sets: str) -> str:
        argv = base + [a for s in sets for a in ("--set", s)]
        return cli.config_from_args(cli.build_parser().parse_args(argv)).notes[0]

    preset_note = note()  # the paper's pre-training, shortened per-update rounds
    assert "D pre-training 50 rounds x 3 epochs on 10,000 negatives (as the paper)" in preset_note
    assert "per update 1 round x 1 epoch on 5,000 negatives (paper: 5 x 3" in preset_note
    assert "Shortened to fit" in preset_note
    short = note("d_pretrain_steps=10", "d_pretrain_epochs=1", "d_pretrain_negatives=5000")
    assert "D pre-training 10 rounds x 1 epoch on 5,000 negatives (paper: 50 x 3" in short
    fallback = note("d_pretrain_epochs=null", "d_pretrain_negatives=null")  # the rounds' own
    assert "D pre-training 50 rounds x 1 epoch on 5,000 negatives (paper: 50 x 3" in fallback
    full = note("d_steps=5", "d_epochs=3", "d_negatives=10000")
    assert full.count("(as the paper)") == 2 and "Shortened" not in full
    with pytest.raises(cli.BenchArgumentError, match="d_steps"):
        note('d_steps="many"')  # a malformed value is still named by the config check


def test_a_resumed_bench_compares_its_data_files_by_content(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Committed results resume from another checkout: the oracle file may lie elsewhere."""
    here, there, other = (
        tmp_path / "a" / "oracle.npz",
        tmp_path / "b" / "oracle.npz",
        tmp_path / "c.npz",
    )
    for path, data in ((here, b"weights"), (there, b"weights"), (other, b"changed")):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    out = tmp_path / "bench"
    out.mkdir()
    saved = preset("quick").to_dict()
    saved["common"]["oracle_path"] = str(here)
    del saved["common"]["vocab_size"]  # --oracle takes it from the file
    (out / "config.json").write_text(json.dumps(saved))

    def resume_with(oracle: Path) -> None:
        args = cli.build_parser().parse_args(["--out", str(out), "--oracle", str(oracle)])
        cli.check_out_dir(out, cli.config_from_args(args))

    resume_with(there)  # same bytes, another place
    with pytest.raises(cli.BenchArgumentError, match="common.oracle_path"):
        resume_with(other)
    here.unlink()  # the recorded file is gone (another machine): the file name decides
    resume_with(there)


def test_the_seqgan_oracle_preset_runs_end_to_end_on_a_tiny_schedule(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The preset wires up: the published oracle, SeqGAN's full CNN, its rollout settings, and a
    summary that states the preset's shortenings and every command-line change on top."""
    from tests.conftest import shared_file

    oracle = shared_file("seqgan_oracle_params.npz")
    out = tmp_path / "seqgan"
    argv = [
        "--preset", "seqgan-oracle", "--oracle", str(oracle), "--out", str(out),
        "--seeds", "1", "--budget", "1", "--checkpoints", "1", "--agents", "mle,reinforce,bgan",
        "--set", "n_real=64", "--set", "n_valid=64", "--set", "mle_epochs=1",
        "--set", "d_negatives=64", "--set", "d_pretrain_steps=1",
        "--set", "d_pretrain_epochs=1", "--set", "d_pretrain_negatives=64",
        "--agent-set", "reinforce.n_rollouts=2",
        "--eval-set", "n_samples=64", "--eval-set", "n_bleu=16", "--eval-set", "n_refs=64",
        "--eval-set", "temperatures=[1.0]", "--workers", "1", "--no-progress",
    ]  # fmt: skip
    assert cli.main(argv) == 0
    run = json.loads((out / "runs" / "reinforce__seed0" / "config.json").read_text())
    assert (run["vocab_size"], run["seq_len"], run["disc"], run["disc_kwargs"]) == (
        5000, 20, "cnn", {},  # SeqGAN's published CNN sizes: the CNN's defaults
    )  # fmt: skip
    assert (run["n_rollouts"], run["rollout_update_rate"]) == (2, 0.8)
    for agent in ("mle", "reinforce", "bgan"):
        rows = json.loads((out / "cells" / f"{agent}__seed0.json").read_text())["rows"]
        final = [r for r in rows if r.get("phase") == "train"][-1]
        assert final["step"] == 1 and 5.0 < final["nll_oracle"] < 12.0, agent
    summary = (out / "summary.md").read_text()
    assert "Shortened to fit" in summary and "reinforce.n_rollouts" in summary


def test_the_start_sweep_reproduces_the_recorded_start_at_temperature_one(tmp_path: Path) -> None:
    from agents.bench.start_sweep import start_sweep

    out = tmp_path / "b"
    assert cli.main(["--out", str(out), "--agents", "mle", *TINY]) == 0
    start = json.loads((out / "pretrained" / "seed0.json").read_text())["rows"][-1]
    rows = start_sweep(out, 0, [0.5, 1.0, 2.0])
    assert rows[1]["nll_oracle"] == pytest.approx(start["nll_oracle"], abs=1e-9)
    oracle = [r["nll_oracle"] for r in rows]
    assert oracle[2] > oracle[1] and oracle[0] != oracle[1]  # flatter samples: less likely
    (out / "pretrained" / "seed0.pt").unlink()
    with pytest.raises(FileNotFoundError, match="rerun the bench"):
        start_sweep(out, 0, [1.0])

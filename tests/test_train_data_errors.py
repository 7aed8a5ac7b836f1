"""Corpus and path mistakes end in one line naming the file and the problem (exit 2), and leave
no run directory behind; lines cut or dropped are reported with counts, on stderr and in
config.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agents import train as train_cli
from agents.runtime import ConfigError, prepare_run_dir
from agents.setup import CommonConfig
from tests.test_train_cli import sets

WORDS = ["the", "cat", "sat", "a", "dog", "ran"]


def _argv(corpus: Path, out: Path) -> list[str]:
    argv = ["--agent", "reinforce", "--env", "textgan/Corpus-v0", "--out", str(out)]
    return argv + sets("total_steps=1", "n_rollouts=2", f"corpus_path={corpus}")


def _bad_corpus(tmp_path: Path, kind: str) -> tuple[Path, str]:
    """A broken corpus file and the words its error must contain."""
    path = tmp_path / f"{kind.replace(' ', '_')}.txt"
    if kind == "empty":
        path.write_bytes(b"")
        return path, "is empty"
    if kind == "directory":
        path.mkdir()
        return path, "is a directory, not a file"
    if kind == "missing":
        return path, "does not exist"
    if kind == "one line":
        path.write_text("the cat sat\n")
        return path, "has 1 usable sentence: too few to hold out a validation split"
    if kind == "latin-1":
        path.write_bytes("the cat sat\ncaf\u00e9 au lait\n".encode("latin-1"))
        return path, "line 2: not valid UTF-8"
    if kind == "random bytes":
        path.write_bytes(bytes(range(128, 256)) * 8)
        return path, "line 1: not valid UTF-8"
    if kind == "whitespace":
        path.write_text("   \n\t\n  \n")
        return path, "has no usable sentence (3 lines: 3 empty"
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind",
    ["empty", "directory", "missing", "one line", "latin-1", "random bytes", "whitespace"],
)
def test_a_bad_corpus_is_one_line_exit_2_and_no_run_directory(
    tmp_path: Path, capsys, kind: str
) -> None:
    corpus, words = _bad_corpus(tmp_path, kind)
    out = tmp_path / "run"
    assert train_cli.main(_argv(corpus, out)) == 2
    err = capsys.readouterr().err
    assert err.startswith("textgan train: error: corpus ") and err.count("\n") == 1, err
    assert str(corpus) in err and words in err
    assert not out.exists()  # the data is read before the run directory is made


def test_out_that_is_a_file_is_a_usage_error(tmp_path: Path, capsys) -> None:
    target = tmp_path / "afile"
    target.write_text("not a run")
    argv = ["--agent", "reinforce", "--out", str(target), *sets("total_steps=1", "n_rollouts=2")]
    assert train_cli.main(argv) == 2
    err = capsys.readouterr().err
    assert f"run directory {target} is an existing file, not a directory" in err
    assert err.count("\n") == 1 and target.read_text() == "not a run"
    with pytest.raises(ConfigError, match="existing file"):
        prepare_run_dir(target, CommonConfig(out_dir=str(target)), "toy", resume=False)


def test_cut_lines_are_reported_with_counts(tmp_path: Path, capsys) -> None:
    lines = [" ".join(WORDS[(i + j) % 6] for j in range(4)) for i in range(40)]
    lines[7] = "w" * 1_000_000  # one 1 MB token: kept (seq_len counts tokens)
    lines[9] = " ".join(["x"] * 200_000)  # 200,000 tokens: cut to seq_len
    lines[11] = ""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(lines) + "\n")
    out = tmp_path / "run"
    assert train_cli.main(_argv(corpus, out)) == 0
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if "warning" in line]
    assert warnings == [
        f"textgan train: warning: corpus file {corpus}: 1 cut to their first 6 tokens of 40 "
        "lines, longer than max_len=6 (word tokens; the longest has 200000); 1 empty lines "
        "skipped"
    ]
    recorded = json.loads((out / "config.json").read_text())["corpus"]
    assert recorded == {
        "sentences": 39,
        "lines": 40,
        "empty_skipped": 1,
        "truncated": 1,
        "dropped": 0,
        "max_len": 6,
        "longest_line_tokens": 200_000,
    }

"""One atomic writer for every layer: whole files or the old one, with the permissions asked for."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from textgan_envs.atomic_files import atomic_write, atomic_write_text
from textgan_envs.vocab import Vocabulary


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = atomic_write_text(tmp_path / "record.json", '{"old": 1}')

    def half_then_crash(handle) -> None:
        handle.write(b'{"new":')
        raise KeyboardInterrupt  # a kill mid-write

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, half_then_crash)
    assert json.loads(target.read_text()) == {"old": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["record.json"]


def test_modes_private_by_default_world_readable_for_text(tmp_path: Path) -> None:
    private = atomic_write(tmp_path / "a" / "ckpt.pt", lambda handle: handle.write(b"x"))
    shared = atomic_write_text(tmp_path / "b" / "config.json", "{}")
    assert _mode(private) == 0o600 and _mode(shared) == 0o644
    assert private.read_bytes() == b"x" and shared.read_text() == "{}"


def test_vocabulary_save_goes_through_it(tmp_path: Path, monkeypatch) -> None:
    vocab = Vocabulary.build([["a", "b", "a"]])
    path = tmp_path / "vocab.json"
    vocab.save(path)
    assert Vocabulary.load(path).tokens == vocab.tokens and _mode(path) == 0o644

    def broken_dumps(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("textgan_envs.vocab.json.dumps", broken_dumps)
    with pytest.raises(RuntimeError, match="disk full"):
        Vocabulary.build([["c"]]).save(path)
    assert Vocabulary.load(path).tokens == vocab.tokens  # the saved one is not lost

"""Corpus loading policy, its counts and errors, the seeded split, and padded encoding."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.conftest import shared_file
from textgan_envs.corpus import CorpusError, encode_sentences, load_corpus, train_valid_split
from textgan_envs.vocab import Vocabulary


def _write(tmp_path: Path, data: bytes, name: str = "c.txt") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_word_level_counts_and_policy(tmp_path: Path) -> None:
    path = _write(tmp_path, b"a b c\n\n   \nd  e\r\nf g h i j\nk")
    corpus = load_corpus(path, max_len=3)
    assert corpus.sentences == [["a", "b", "c"], ["d", "e"], ["f", "g", "h"], ["k"]]
    assert (corpus.n_lines, corpus.n_empty_skipped, corpus.n_truncated, corpus.n_dropped) == (
        6,
        2,
        1,
        0,
    )
    assert corpus.level == "word" and corpus.path == path and len(corpus) == 4
    summary = corpus.summary()
    assert "4 sentences" in summary and "2 empty skipped" in summary and "1 truncated" in summary

    dropped = load_corpus(path, max_len=3, overlong="drop")
    assert dropped.sentences == [["a", "b", "c"], ["d", "e"], ["k"]]
    assert (dropped.n_truncated, dropped.n_dropped) == (0, 1)


def test_char_level_keeps_inner_spaces(tmp_path: Path) -> None:
    path = _write(tmp_path, "  hé y \n".encode())
    corpus = load_corpus(path, level="char")
    assert corpus.sentences == [["h", "é", " ", "y"]]


def test_bom_and_unicode(tmp_path: Path) -> None:
    path = _write(tmp_path, "\ufeffcafé au lait\n".encode())
    assert load_corpus(path).sentences == [["café", "au", "lait"]]


def test_bad_files_raise_corpus_error(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="absent.txt.*does not exist"):
        load_corpus(tmp_path / "absent.txt")
    with pytest.raises(CorpusError, match="empty.txt.*empty"):
        load_corpus(_write(tmp_path, b"", "empty.txt"))
    with pytest.raises(CorpusError, match="blank.txt.*no usable sentence"):
        load_corpus(_write(tmp_path, b"\n  \n\t\n", "blank.txt"))
    with pytest.raises(CorpusError, match="long.txt.*no usable sentence"):
        load_corpus(_write(tmp_path, b"a b c\n", "long.txt"), max_len=2, overlong="drop")
    with pytest.raises(CorpusError, match=r"latin1.txt, line 3.*UTF-8"):
        load_corpus(_write(tmp_path, b"ok\nfine\ncaf\xe9\n", "latin1.txt"))
    assert issubclass(CorpusError, ValueError)


def test_bad_arguments(tmp_path: Path) -> None:
    path = _write(tmp_path, b"a\n")
    with pytest.raises(ValueError, match="level"):
        load_corpus(path, level="byte")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="overlong"):
        load_corpus(path, overlong="cut")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_len"):
        load_corpus(path, max_len=0)


def test_split_is_deterministic_and_partitions() -> None:
    sents = [[str(i)] for i in range(100)]
    train, valid = train_valid_split(sents, valid_fraction=0.2, seed=3)
    assert len(valid) == 20 and len(train) == 80
    assert sorted(train + valid) == sorted(sents)
    # original order kept inside each part
    assert train == sorted(train, key=lambda s: int(s[0]))
    assert train_valid_split(sents, 0.2, seed=3) == (train, valid)
    assert train_valid_split(sents, 0.2, seed=4)[1] != valid
    with pytest.raises(ValueError, match="valid_fraction"):
        train_valid_split(sents, 0.0)
    with pytest.raises(ValueError, match="empty"):
        train_valid_split(sents[:3], 0.1)


def test_encode_sentences_eos_pad_and_truncation() -> None:
    vocab = Vocabulary.build([["a", "b", "c"]])  # a=5, b=6, c=7
    out = encode_sentences([["a"], ["a", "b", "c"], ["a", "b", "c", "a"], [], ["zz"]], vocab, 4)
    assert out.dtype == torch.long and out.shape == (5, 4)
    assert out.tolist() == [
        [5, 2, 0, 0],
        [5, 6, 7, 2],  # exactly seq_len - 1 tokens: EOS fits
        [5, 6, 7, 5],  # longer: truncated, no EOS
        [2, 0, 0, 0],
        [3, 2, 0, 0],
    ]
    assert encode_sentences([], vocab, 4).shape == (0, 4)
    with pytest.raises(ValueError, match="seq_len"):
        encode_sentences([["a"]], vocab, 0)
    with pytest.raises(KeyError, match="zz"):
        encode_sentences([["zz"]], vocab, 4, strict=True)


def test_coco_files() -> None:
    train = load_corpus(shared_file("image_coco.txt"))
    test = load_corpus(shared_file("test_coco.txt"))
    for corpus in (train, test):
        # 10,000 captions; the last line has no trailing newline and must still be read
        assert corpus.n_lines == 10_000 and len(corpus) == 10_000
        assert (corpus.n_empty_skipped, corpus.n_truncated, corpus.n_dropped) == (0, 0, 0)
    assert train.sentences[0] == "a bicycle replica with a clock as the front wheel.".split()
    assert train.sentences[-1] == "a bicycle sits next to an empty park bench.".split()
    assert test.sentences[-1][-1] == "ball."
    assert max(map(len, train.sentences)) == 35

    cut = load_corpus(shared_file("image_coco.txt"), max_len=20, overlong="drop")
    assert cut.n_dropped == sum(len(s) > 20 for s in train.sentences) > 0
    assert len(cut) + cut.n_dropped == 10_000

    vocab = Vocabulary.build(train.sentences)
    ids = encode_sentences(train.sentences, vocab, 21)
    lengths = torch.tensor([len(s) for s in train.sentences])
    has_eos = (ids == Vocabulary.EOS).any(dim=1)
    assert torch.equal(has_eos, lengths <= 20)
    row = train.sentences[-1]
    assert vocab.decode(ids[-1], skip_special=True) == row

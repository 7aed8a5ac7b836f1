"""Vocabulary: reserved ids, build order, encode/decode round trips, JSON persistence, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from textgan_envs.vocab import UnknownTokenError, Vocabulary

words = st.text(min_size=1, max_size=6)
sentences = st.lists(st.lists(words, max_size=8), min_size=1, max_size=8)


def test_reserved_ids_are_fixed() -> None:
    v = Vocabulary.build([["hello"]])
    assert (v.PAD, v.BOS, v.EOS, v.UNK, v.MASK) == (0, 1, 2, 3, 4)
    assert [v.id_to_token(i) for i in range(5)] == ["<pad>", "<bos>", "<eos>", "<unk>", "<mask>"]
    assert v.token_to_id("<mask>") == 4


def test_build_orders_by_frequency_then_token() -> None:
    v = Vocabulary.build([["b", "a", "c", "c"], ["d", "c", "b"]])
    # c:3, then b:2, then a and d tie at 1 -> alphabetical
    assert v.tokens[5:] == ["c", "b", "a", "d"]
    # corpus order does not matter
    assert Vocabulary.build([["d", "c", "b"], ["c", "c", "a", "b"]]) == v


def test_build_min_count_and_max_size() -> None:
    data = [["x"] * 3 + ["y"] * 2 + ["z"]]
    assert Vocabulary.build(data, min_count=2).tokens[5:] == ["x", "y"]
    v = Vocabulary.build(data, max_size=6)
    assert len(v) == 6 and v.tokens[5:] == ["x"]
    with pytest.raises(ValueError, match="max_size"):
        Vocabulary.build(data, max_size=4)
    with pytest.raises(ValueError, match="min_count"):
        Vocabulary.build(data, min_count=0)


def test_build_ignores_reserved_strings_and_rejects_raw_strings() -> None:
    v = Vocabulary.build([["<unk>", "a", "<pad>"]])
    assert v.tokens == [*Vocabulary.SPECIAL_TOKENS, "a"]
    with pytest.raises(ValueError, match="tokenised"):
        Vocabulary.build(["a raw sentence"])


def test_encode_unknown_and_strict() -> None:
    v = Vocabulary.build([["a", "b"]])
    assert v.encode(["a", "zzz", "b"]) == [5, Vocabulary.UNK, 6]
    with pytest.raises(KeyError, match="zzz"):
        v.encode(["a", "zzz"], strict=True)
    with pytest.raises(ValueError, match="zzz"):
        v.encode(["zzz"], strict=True)
    assert isinstance(UnknownTokenError("x"), KeyError)
    with pytest.raises(ValueError, match="str"):
        v.encode("ab")


def test_decode_inputs_and_errors() -> None:
    v = Vocabulary.build([["a", "b"]])
    ids = [5, 6, Vocabulary.EOS, Vocabulary.PAD]
    expected = ["a", "b", "<eos>", "<pad>"]
    assert v.decode(ids) == expected
    assert v.decode(np.array(ids)) == expected
    assert v.decode(torch.tensor(ids)) == expected
    assert v.decode([1, 5, 3, 4, 6, 2, 0], skip_special=True) == ["a", "<unk>", "b"]
    with pytest.raises(ValueError, match="7"):
        v.decode([5, 7])
    with pytest.raises(ValueError, match="-1"):
        v.decode([-1])
    with pytest.raises(ValueError, match="1-D"):
        v.decode(torch.zeros(2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="not an integer"):
        v.decode([1.5])
    with pytest.raises(ValueError, match="99"):
        v.id_to_token(99)
    with pytest.raises(KeyError, match="nope"):
        v.token_to_id("nope")


def test_contains_and_len() -> None:
    v = Vocabulary.build([["a", "b", "a"]])
    assert len(v) == 7
    assert "a" in v and "<eos>" in v and "c" not in v


@settings(max_examples=60, deadline=None)
@given(sentences)
def test_encode_decode_round_trip(data: list[list[str]]) -> None:
    v = Vocabulary.build(data)
    for sentence in data:
        ids = v.encode(sentence, strict=True)
        assert all(0 <= i < len(v) for i in ids)
        # reserved strings in the data map onto reserved ids, so compare on decoded strings
        assert v.decode(ids) == sentence
        assert v.decode(torch.tensor(ids, dtype=torch.long)) == sentence


@settings(max_examples=30, deadline=None)
@given(sentences, st.integers(1, 3))
def test_save_load_round_trip(tmp_path_factory, data: list[list[str]], min_count: int) -> None:
    v = Vocabulary.build(data, min_count=min_count)
    path = tmp_path_factory.mktemp("vocab") / "v.json"
    v.save(path)
    loaded = Vocabulary.load(path)
    assert loaded == v and loaded.tokens == v.tokens
    for sentence in data:
        assert loaded.encode(sentence) == v.encode(sentence)


def test_load_errors_name_the_file(tmp_path) -> None:
    bad = tmp_path / "broken.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match=r"broken\.json.*not valid JSON"):
        Vocabulary.load(bad)
    with pytest.raises(ValueError, match="missing.json"):
        Vocabulary.load(tmp_path / "missing.json")
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"tokens": ["a"]}), encoding="utf-8")
    with pytest.raises(ValueError, match="other.json"):
        Vocabulary.load(other)
    dup = tmp_path / "dup.json"
    tokens = [*Vocabulary.SPECIAL_TOKENS, "a", "a"]
    dup.write_text(
        json.dumps({"format": "textgan-vocabulary", "version": 1, "tokens": tokens}),
        encoding="utf-8",
    )
    with pytest.raises(ValueError, match=r"dup\.json.*duplicate"):
        Vocabulary.load(dup)
    no_special = tmp_path / "nospecial.json"
    no_special.write_text(
        json.dumps({"format": "textgan-vocabulary", "version": 1, "tokens": ["a"]}),
        encoding="utf-8",
    )
    with pytest.raises(ValueError, match=r"nospecial\.json.*reserved"):
        Vocabulary.load(no_special)

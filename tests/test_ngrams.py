"""Unique and seen n-gram fractions on hand-computed examples."""

from __future__ import annotations

import pytest
import torch

from textgan_envs.metrics import seen_ngram_fraction, unique_ngram_fraction
from textgan_envs.metrics.ngrams import ngram_counts


def test_ngram_counts() -> None:
    assert ngram_counts(("a", "b", "a", "b"), 2) == {("a", "b"): 2, ("b", "a"): 1}
    assert ngram_counts(("a",), 2) == {}
    assert ngram_counts((1, 1), 1) == {(1,): 2}


def test_unique_fraction_hand_computed() -> None:
    samples = [["a", "b", "c"], ["a", "b", "d"], ["x"]]
    # unigrams: a b c a b d x -> 7 total, 5 distinct
    assert unique_ngram_fraction(samples, 1) == pytest.approx(5 / 7)
    # bigrams: ab bc ab bd -> 4 total, 3 distinct ("x" has none)
    assert unique_ngram_fraction(samples, 2) == pytest.approx(3 / 4)
    # trigrams: abc abd -> all distinct
    assert unique_ngram_fraction(samples, 3) == 1.0
    # a collapsed generator repeating one sentence
    assert unique_ngram_fraction([["a", "b"]] * 4, 2) == pytest.approx(1 / 4)
    # ids and tensors work the same
    assert unique_ngram_fraction([torch.tensor([5, 6, 7]), [5, 6, 8]], 2) == pytest.approx(3 / 4)


def test_seen_fraction_hand_computed() -> None:
    train = [["the", "cat", "sat"], ["a", "dog", "ran"]]
    samples = [["the", "cat", "ran"], ["the", "cat", "sat"]]
    # bigram occurrences: the-cat, cat-ran, the-cat, cat-sat -> 3 of 4 seen
    assert seen_ngram_fraction(samples, train, 2) == pytest.approx(3 / 4)
    # distinct generated bigrams: the-cat, cat-ran, cat-sat -> 2 of 3 seen
    assert seen_ngram_fraction(samples, train, 2, distinct=True) == pytest.approx(2 / 3)
    # unigrams: all 6 occurrences are training words
    assert seen_ngram_fraction(samples, train, 1) == 1.0
    # trigrams: the-cat-ran unseen, the-cat-sat seen
    assert seen_ngram_fraction(samples, train, 3) == pytest.approx(1 / 2)
    assert seen_ngram_fraction([["x", "y"]], train, 2) == 0.0


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="no sample"):
        unique_ngram_fraction([["a"], []], 2)
    with pytest.raises(ValueError, match="no sample"):
        seen_ngram_fraction([["a"]], [["a", "b"]], 2)
    with pytest.raises(ValueError, match="positive"):
        unique_ngram_fraction([["a"]], 0)
    with pytest.raises(ValueError, match="str"):
        unique_ngram_fraction(["a b c"], 1)

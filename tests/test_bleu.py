"""BLEU and Self-BLEU must equal nltk's sentence_bleu loop (method1 smoothing) to 1e-9."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

from tests.conftest import shared_file
from textgan_envs.corpus import load_corpus
from textgan_envs.metrics import BleuScorer, bleu, self_bleu, self_bleu_scores

_METHOD1 = SmoothingFunction().method1
TOL = 1e-9


def nltk_scores(hypotheses, references, max_n=4):
    weights = (1 / max_n,) * max_n
    return [
        sentence_bleu(references, h, weights=weights, smoothing_function=_METHOD1)
        for h in hypotheses
    ]


def nltk_self_scores(samples, max_n=4):
    weights = (1 / max_n,) * max_n
    return [
        sentence_bleu(
            samples[:i] + samples[i + 1 :], s, weights=weights, smoothing_function=_METHOD1
        )
        for i, s in enumerate(samples)
    ]


# small alphabets so that n-gram matches, ties in reference length and repeats are common
tokens = st.sampled_from(["a", "b", "c", "d"]) | st.integers(0, 2)
sentence = st.lists(tokens, max_size=9)
orders = st.integers(1, 5)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(sentence, min_size=1, max_size=6), st.lists(sentence, min_size=1, max_size=6), orders
)
def test_bleu_matches_nltk_random(hyps, refs, max_n) -> None:
    expected = nltk_scores(hyps, refs, max_n)
    got = BleuScorer(refs, max_n).scores(hyps)
    assert got == pytest.approx(expected, abs=TOL, rel=0)
    assert bleu(hyps, refs, max_n) == pytest.approx(sum(expected) / len(expected), abs=TOL)


@settings(max_examples=150, deadline=None)
@given(st.lists(sentence, min_size=2, max_size=8), orders)
def test_self_bleu_matches_nltk_random(samples, max_n) -> None:
    expected = nltk_self_scores(samples, max_n)
    assert self_bleu_scores(samples, max_n) == pytest.approx(expected, abs=TOL, rel=0)
    assert self_bleu(samples, max_n) == pytest.approx(sum(expected) / len(expected), abs=TOL)


def test_edge_cases_against_nltk() -> None:
    refs = [["a", "b", "c", "d"], ["a", "b"], ["x", "y", "z", "w", "v", "u"]]
    cases = [
        [],  # empty hypothesis -> 0
        ["q"],  # no unigram match -> 0 whatever the smoothing
        ["a"],  # shorter than n for n >= 2: smoothed precisions 0.1 / 1
        ["a", "b", "c"],  # length 3 is equally far from 2 and 4: nltk takes the shorter
        ["a", "b", "c", "d", "e"],  # 5 is equally far from 4 and 6
        ["a", "a", "a", "a", "a", "a", "a"],  # clipping
    ]
    got = BleuScorer(refs).scores(cases)
    assert got == pytest.approx(nltk_scores(cases, refs), abs=TOL, rel=0)
    assert got[0] == 0.0 and got[1] == 0.0
    # hand check of ["a"]: p1 = 1, p2..p4 = 0.1 (smoothed), closest ref length 2 -> bp = e^(1-2)
    assert got[2] == pytest.approx(math.exp(-1) * 0.1 ** (3 / 4), abs=1e-12)


def test_identical_samples_self_bleu_is_one() -> None:
    s = ["a", "man", "rides", "a", "horse"]
    assert self_bleu([s, list(s)]) == pytest.approx(1.0, abs=1e-15)
    assert self_bleu([s, list(s), ["q"]]) == pytest.approx(
        nltk_self_scores_mean([s, list(s), ["q"]])
    )


def nltk_self_scores_mean(samples, max_n=4):
    scores = nltk_self_scores(samples, max_n)
    return sum(scores) / len(scores)


def test_accepts_ints_arrays_and_tensors() -> None:
    words = [["a", "b", "c", "a"], ["b", "c", "a"], ["c", "a", "b", "b", "c"]]
    ids = [[{"a": 5, "b": 6, "c": 7}[w] for w in s] for s in words]
    expected = self_bleu(words)
    assert self_bleu(ids) == expected
    assert self_bleu([np.array(s) for s in ids]) == expected
    assert self_bleu([torch.tensor(s) for s in ids]) == expected
    assert bleu(torch.tensor(ids[:1]), ids[1:]) == bleu(words[:1], words[1:])


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="two samples"):
        self_bleu([["a"]])
    with pytest.raises(ValueError, match="reference"):
        bleu([["a"]], [])
    with pytest.raises(ValueError, match="hypothesis"):
        bleu([], [["a"]])
    with pytest.raises(ValueError, match="max_n"):
        bleu([["a"]], [["a"]], max_n=0)
    with pytest.raises(ValueError, match="str"):
        bleu(["a sentence"], [["a"]])


@pytest.fixture(scope="module")
def coco() -> tuple[list[list[str]], list[list[str]]]:
    train = load_corpus(shared_file("image_coco.txt")).sentences
    test = load_corpus(shared_file("test_coco.txt")).sentences
    return train, test


def test_coco_self_bleu_matches_nltk(coco) -> None:
    samples = coco[0][:200]
    for max_n in (2, 4):
        expected = nltk_self_scores(samples, max_n)
        got = self_bleu_scores(samples, max_n)
        assert got == pytest.approx(expected, abs=TOL, rel=0)
        assert self_bleu(samples, max_n) == pytest.approx(np.mean(expected), abs=TOL)
    assert 0.1 < self_bleu(samples) < 0.6  # sanity band for real captions


def test_coco_bleu_matches_nltk(coco) -> None:
    hyps, refs = coco[0][:60], coco[1][:300]
    for max_n in (3, 4):
        expected = nltk_scores(hyps, refs, max_n)
        assert BleuScorer(refs, max_n).scores(hyps) == pytest.approx(expected, abs=TOL, rel=0)
        assert bleu(hyps, refs, max_n) == pytest.approx(np.mean(expected), abs=TOL)


def test_progress_bar_does_not_change_result(coco, capsys) -> None:
    samples = coco[0][:50]
    assert self_bleu(samples, progress=True) == self_bleu(samples)
    assert bleu(samples, coco[1][:50], progress=True) == bleu(samples, coco[1][:50])


def test_package_does_not_import_nltk() -> None:
    import subprocess
    import sys

    code = (
        "import sys, textgan_envs.metrics, textgan_envs.corpus, textgan_envs.vocab; "
        "assert 'nltk' not in sys.modules, 'nltk imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)

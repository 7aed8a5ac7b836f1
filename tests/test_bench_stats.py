"""Statistics of the bench against known cases and a seeded coverage simulation."""

from __future__ import annotations

import numpy as np
import pytest

from agents.bench.stats import aggregate, bootstrap_ci, iqm, mean, probability_of_improvement


def test_iqm_of_known_sample_ignores_the_outer_quartiles() -> None:
    # 8 values: the middle 50% are 3, 4, 5, 6 -> IQM 4.5, whatever the outliers are.
    assert iqm([1, 2, 3, 4, 5, 6, 7, 1000]) == pytest.approx(4.5)
    assert iqm([-1e6, 2, 3, 4, 5, 6, 7, 8]) == pytest.approx(4.5)
    # pooled over runs x tasks
    assert iqm(np.array([[1, 5], [2, 6], [3, 7], [4, 1000]])) == pytest.approx(4.5)


def test_bootstrap_ci_covers_the_true_mean_at_about_the_nominal_rate() -> None:
    rng = np.random.default_rng(123)
    trials, hits, widths = 300, 0, []
    for i in range(trials):
        x = rng.normal(2.0, 1.0, size=20)
        low, high = bootstrap_ci(x, mean, confidence=0.95, n_resamples=1000, seed=i)
        hits += low <= 2.0 <= high
        widths.append(high - low)
    coverage = hits / trials
    # percentile bootstrap with n=20 slightly under-covers; a 68% or a 99.9% CI would miss this
    assert 0.88 <= coverage <= 0.985, coverage
    # width close to the normal-theory 2*1.96*sigma/sqrt(n) = 0.877
    assert 0.7 < float(np.mean(widths)) < 0.95


def test_bootstrap_is_stratified_over_tasks() -> None:
    # Two tasks at very different levels: resampling runs within each task keeps one value
    # of each task per pooled resample, so the mean's CI stays inside [25, 75] and is narrow.
    scores = np.column_stack([np.linspace(0, 1, 10), 100 + np.linspace(0, 1, 10)])
    low, high = bootstrap_ci(scores, mean, n_resamples=1000)
    assert 50.2 < low < 50.5 < high < 50.8


def test_single_or_identical_runs_collapse_the_ci() -> None:
    assert bootstrap_ci([3.0]) == (3.0, 3.0)
    assert bootstrap_ci([2.0, 2.0, 2.0]) == (2.0, 2.0)
    agg = aggregate([9.0])
    assert agg.format() == "9.000 (1 seed)"


def test_probability_of_improvement_respects_direction() -> None:
    x, y = [1.0, 2.0, 3.0], [0.0, 0.5, 4.0]
    # pairs where x > y: (1>0,1>.5),(2>0,2>.5),(3>0,3>.5) = 6 of 9
    assert probability_of_improvement(x, y) == pytest.approx(6 / 9)
    assert probability_of_improvement(x, y, higher_is_better=False) == pytest.approx(3 / 9)
    assert probability_of_improvement(x, x) == 0.5


def test_bad_scores_are_rejected() -> None:
    with pytest.raises(ValueError, match="NaN"):
        iqm([1.0, float("nan")])
    with pytest.raises(ValueError, match="non-empty"):
        iqm([])
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_ci([1.0, 2.0], confidence=95)

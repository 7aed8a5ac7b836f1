"""Statistics across seeds: interquartile mean, stratified-bootstrap CIs, probability of improvement.

Why these: with a handful of seeds a mean is dragged by one bad run and a standard
deviation says nothing about uncertainty in the aggregate, so results follow Agarwal et
al., "Deep RL at the Edge of the Statistical Precipice" (rliable): the IQM (25% trimmed
mean) as point estimate, a 95% percentile bootstrap CI that resamples runs *within* each
task (stratified), and P(X > Y) from the Mann-Whitney U statistic.

The point estimates come from ``rliable.metrics``. ``rliable.library`` (its bootstrap) is
not used: it imports ``arch``, whose 7.x releases fail to import against pandas 3. The
stratified bootstrap is therefore ``scipy.stats.bootstrap`` with one sample per task, which
scipy resamples independently: exactly the stratification rliable performs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.stats

try:  # rliable is the `bench` extra; scipy alone computes the same numbers.
    from rliable import metrics as _rly_metrics
except ImportError:  # pragma: no cover - exercised only without the extra
    _rly_metrics = None


def _as_matrix(scores: np.ndarray | list[float]) -> np.ndarray:
    """Scores as a finite ``(runs, tasks)`` float matrix; a 1-D input is one task."""
    arr = np.asarray(scores, dtype=float)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(
            f"scores must be a non-empty (runs,) or (runs, tasks) array, got shape {arr.shape}"
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError(
            "scores contain NaN or inf; drop failed runs explicitly before aggregating"
        )
    return arr


def iqm(scores: np.ndarray | list[float]) -> float:
    """Interquartile mean: the mean of the middle 50% of all run x task scores."""
    arr = _as_matrix(scores)
    if _rly_metrics is not None:
        return float(_rly_metrics.aggregate_iqm(arr))
    return float(scipy.stats.trim_mean(arr, proportiontocut=0.25, axis=None))


def _flat_iqm(pooled: np.ndarray) -> np.ndarray:
    return scipy.stats.trim_mean(pooled, proportiontocut=0.25, axis=-1)


def mean(scores: np.ndarray | list[float]) -> float:
    """Plain mean over runs and tasks (for comparison with published single numbers)."""
    return float(np.mean(_as_matrix(scores)))


_VECTORIZED: dict[Callable[[np.ndarray], float], Callable[[np.ndarray], np.ndarray]] = {
    iqm: _flat_iqm,
    mean: lambda pooled: np.mean(pooled, axis=-1),
}


def bootstrap_ci(
    scores: np.ndarray | list[float],
    statistic: Callable[[np.ndarray], float] = iqm,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile stratified-bootstrap CI of ``statistic`` over a ``(runs, tasks)`` score matrix.

    Runs are resampled with replacement independently within each task (column). With a
    single run, or identical runs, there is nothing to resample and the CI collapses to the
    point estimate.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n_resamples < 100:
        raise ValueError(f"n_resamples must be >= 100 for a usable CI, got {n_resamples}")
    arr = _as_matrix(scores)
    point = statistic(arr)
    if arr.shape[0] < 2 or np.all(arr == arr[0]):
        return point, point
    columns = tuple(arr[:, j] for j in range(arr.shape[1]))
    flat = _VECTORIZED.get(statistic)
    if flat is not None:
        # Resampled columns arrive as [..., runs]; pool runs x tasks per resample.
        def _stat(*resampled: np.ndarray, axis: int = -1) -> np.ndarray:
            stacked = np.stack([np.moveaxis(r, axis, -1) for r in resampled], axis=-1)
            return flat(stacked.reshape(*stacked.shape[:-2], -1))

    else:

        def _stat(*resampled: np.ndarray, axis: int = -1) -> float:
            return statistic(np.stack(resampled, axis=1))

    result = scipy.stats.bootstrap(
        columns,
        _stat,
        n_resamples=n_resamples,
        confidence_level=confidence,
        method="percentile",
        vectorized=flat is not None,
        paired=False,
        rng=np.random.default_rng(seed),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def probability_of_improvement(
    scores_x: np.ndarray | list[float],
    scores_y: np.ndarray | list[float],
    higher_is_better: bool = True,
) -> float:
    """P(a run of X beats a run of Y), averaged over tasks (ties count one half).

    For metrics where lower is better (NLL) the scores are negated first, so the result
    always reads "probability that X is better than Y".
    """
    x, y = _as_matrix(scores_x), _as_matrix(scores_y)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"X has {x.shape[1]} tasks but Y has {y.shape[1]}")
    if not higher_is_better:
        x, y = -x, -y
    if _rly_metrics is not None:
        return float(_rly_metrics.probability_of_improvement(x, y))
    probs = []
    for j in range(x.shape[1]):
        if np.array_equal(x[:, j], y[:, j]):
            probs.append(0.5)
            continue
        u, _ = scipy.stats.mannwhitneyu(x[:, j], y[:, j], alternative="greater")
        probs.append(u / (x.shape[0] * y.shape[0]))
    return float(np.mean(probs))


@dataclass(frozen=True)
class Aggregate:
    """IQM with its 95% CI over ``n`` runs (and the plain mean, for published comparisons)."""

    iqm: float
    low: float
    high: float
    mean: float
    n: int

    def format(self, digits: int = 3) -> str:
        """``"9.041 [9.012, 9.070]"``; a single run prints without a CI."""
        if self.n < 2:
            return f"{self.iqm:.{digits}f} (1 seed)"
        return f"{self.iqm:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


def aggregate(
    scores: np.ndarray | list[float],
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> Aggregate:
    """IQM, stratified-bootstrap CI and mean of one metric over runs."""
    arr = _as_matrix(scores)
    low, high = bootstrap_ci(arr, iqm, confidence, n_resamples, seed)
    return Aggregate(iqm=iqm(arr), low=low, high=high, mean=mean(arr), n=arr.shape[0])

"""Image metrics: FD/KID sanity, PRDC on a hand-computed toy case, the local evaluator."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import linalg

from image_samplers.data import load_digits
from image_samplers.metrics import (
    Evaluator,
    evaluate_samples,
    frechet_distance,
    inception_score,
    kernel_inception_distance,
    precision_recall_density_coverage,
    train_evaluator,
)


def _scipy_fd(a: np.ndarray, b: np.ndarray) -> float:
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def test_fd_of_set_with_itself_is_zero_and_grows_with_shift() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(500, 8, generator=gen)
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-6)
    # A constant shift keeps covariances equal: FD is exactly |shift|^2 = 8 * c^2.
    fds = [frechet_distance(x, x + c) for c in (0.25, 0.5, 1.0)]
    assert fds == pytest.approx([8 * 0.0625, 8 * 0.25, 8.0], rel=1e-6)


def test_fd_matches_scipy_sqrtm_formula() -> None:
    rng = np.random.default_rng(1)
    a = rng.normal(size=(400, 6))
    b = rng.normal(size=(300, 6)) @ rng.normal(size=(6, 6)) * 0.7 + 0.3
    ours = frechet_distance(torch.from_numpy(a), torch.from_numpy(b))
    assert ours == pytest.approx(_scipy_fd(a, b), rel=1e-6)


def test_kid_near_zero_for_same_distribution_and_grows_with_shift() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(400, 8, generator=gen)
    y = torch.randn(400, 8, generator=gen)
    same, _ = kernel_inception_distance(x, y, subsets=10, subset_size=200)
    small, _ = kernel_inception_distance(x, y + 0.5, subsets=10, subset_size=200)
    large, _ = kernel_inception_distance(x, y + 1.0, subsets=10, subset_size=200)
    assert abs(same) < 0.02
    assert 0.05 < small < large


def test_prdc_hand_computed_toy_case() -> None:
    # 1-D, k = 1. Real radii: 1, 1, 1, 1, 7 (point 10's nearest real is 3).
    # Fake radii: 2, 2, 1, 1. Worked out by hand in the comments below.
    real = torch.tensor([[0.0], [1.0], [2.0], [3.0], [10.0]])
    fake = torch.tensor([[0.5], [2.5], [20.0], [21.0]])
    out = precision_recall_density_coverage(real, fake, k=1)
    # precision: 0.5 and 2.5 lie in real balls; 20, 21 do not (10's ball reaches 17) -> 2/4
    # recall: reals 0..3 lie in fake balls of 0.5 / 2.5; 10 does not -> 4/5
    # density: 0.5 is in the balls of 0 and 1, 2.5 in those of 2 and 3 -> 4 / (1 * 4)
    # coverage: reals 0..3 have a fake within radius 1; 10's nearest fake is 7.5 > 7 -> 4/5
    assert out == pytest.approx({"precision": 0.5, "recall": 0.8, "density": 1.0, "coverage": 0.8})


def test_prdc_matches_brute_force_loops() -> None:
    rng = np.random.default_rng(2)
    real, fake, k = rng.normal(size=(40, 3)), rng.normal(size=(30, 3)) + 0.4, 3

    def radius(s: np.ndarray) -> np.ndarray:
        return np.array([sorted(np.linalg.norm(s - p, axis=1))[k] for p in s])

    rr, fr = radius(real), radius(fake)
    d = np.linalg.norm(real[:, None] - fake[None], axis=2)
    expected = {
        "precision": np.mean([any(d[i, j] <= rr[i] for i in range(40)) for j in range(30)]),
        "recall": np.mean([any(d[i, j] <= fr[j] for j in range(30)) for i in range(40)]),
        "density": sum(d[i, j] <= rr[i] for i in range(40) for j in range(30)) / (k * 30),
        "coverage": np.mean([d[i].min() <= rr[i] for i in range(40)]),
    }
    out = precision_recall_density_coverage(torch.from_numpy(real), torch.from_numpy(fake), k=k)
    assert out == pytest.approx(expected)
    assert 0 < out["precision"] < 1 and 0 < out["recall"] < 1


def test_metric_inputs_are_validated() -> None:
    with pytest.raises(ValueError, match="equal D"):
        frechet_distance(torch.zeros(5, 3), torch.zeros(5, 4))
    with pytest.raises(ValueError, match="at least 6"):
        precision_recall_density_coverage(torch.zeros(5, 2), torch.zeros(9, 2), k=5)


def test_inception_score_bounds() -> None:
    confident_balanced = torch.log(torch.eye(4) * 0.97 + 0.01)
    uniform = torch.full((4, 4), -np.log(4.0))
    assert inception_score(uniform) == pytest.approx(1.0)
    assert inception_score(confident_balanced) > 3.0


@pytest.fixture(scope="module")
def evaluator_and_data() -> tuple[Evaluator, torch.Tensor]:
    data = load_digits(8)
    return train_evaluator(data, epochs=6, seed=0, device="cpu"), data.images


def test_evaluator_learns_digits_and_round_trips(
    evaluator_and_data: tuple[Evaluator, torch.Tensor], tmp_path: Path
) -> None:
    evaluator, images = evaluator_and_data
    assert evaluator.test_accuracy > 0.85
    path = evaluator.save(tmp_path / "evaluator.pt")
    loaded = Evaluator.load(path, device="cpu")
    assert loaded.test_accuracy == evaluator.test_accuracy
    assert torch.equal(loaded.features(images[:10]), evaluator.features(images[:10]))
    with pytest.raises(ValueError, match=r"\[N, 1, 8, 8\]"):
        evaluator.features(torch.zeros(2, 1, 16, 16))


def test_evaluate_samples_ranks_real_above_noise(
    evaluator_and_data: tuple[Evaluator, torch.Tensor],
) -> None:
    evaluator, images = evaluator_and_data
    real, held_out = images[:800], images[800:1600]
    noise = torch.rand(800, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    good = evaluate_samples(evaluator, real, held_out)
    bad = evaluate_samples(evaluator, real, noise)
    assert good["fd"] * 5 < bad["fd"]
    assert good["kid"] < bad["kid"]
    assert good["precision"] > 0.8 and good["recall"] > 0.8 and good["coverage"] > 0.8
    # Noise features sit near the centre of the real cloud, where real k-NN balls are wide, so
    # precision stays high-ish (the outlier sensitivity Naeem et al. point out); density does not.
    assert bad["precision"] < good["precision"] - 0.1
    assert bad["density"] < 0.5 * good["density"]
    assert bad["recall"] < 0.3 and bad["coverage"] < 0.3
    assert good["is_fake"] > bad["is_fake"]

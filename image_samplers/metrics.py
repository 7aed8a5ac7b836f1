"""Sample-quality metrics for the image samplers, on the features of a locally trained CNN.

Why a local evaluator: Inception-v3 weights cannot be downloaded offline and
are a poor fit for 16x16 or 32x32 grey digits anyway. A small classifier
trained on the same data gives penultimate features on which Fréchet
distance (FD), kernel distance (KID) and precision/recall/density/coverage
(PRDC) are computed, and class posteriors for an Inception-style score.
FD and KID use torchmetrics' implementations with an identity "feature
extractor" over precomputed features (no torch-fidelity needed); PRDC
follows Naeem et al. (2020) with exact k-NN distances.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from agents.runtime import atomic_save, load_checkpoint
from image_samplers.data import ImageDataset
from textgan_envs.device import resolve_device

_EVAL_BATCH = 512


class EvaluatorNet(nn.Module):
    """Two conv blocks (3x3 conv + ReLU twice, 2x2 max-pool), a 4x4 adaptive pool and an MLP head.

    Works for any input size >= 8; ``features`` is the ``feature_dim`` penultimate layer.
    """

    def __init__(
        self, num_classes: int = 10, widths: tuple[int, int] = (16, 32), feature_dim: int = 128
    ) -> None:
        super().__init__()
        c1, c2 = widths
        self.body = nn.Sequential(
            nn.Conv2d(1, c1, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(c1, c1, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(c2, c2, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(4),
            nn.Flatten(),
            nn.Linear(c2 * 16, feature_dim),
            nn.ReLU(),
        )
        self.dropout = nn.Dropout(0.3)
        self.head = nn.Linear(feature_dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.body(x)))


class Evaluator:
    """A trained :class:`EvaluatorNet` plus what is needed to reuse it: image size and test accuracy."""

    def __init__(
        self,
        net: EvaluatorNet,
        image_size: int,
        test_accuracy: float,
        widths: tuple[int, int] = (16, 32),
        feature_dim: int = 128,
    ) -> None:
        self.net = net.eval()
        self.image_size = image_size
        self.test_accuracy = test_accuracy
        self.widths = widths
        self.feature_dim = feature_dim

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    def _check(self, x: torch.Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != 1 or x.shape[-1] != self.image_size:
            raise ValueError(
                f"evaluator expects images [N, 1, {self.image_size}, {self.image_size}], "
                f"got {tuple(x.shape)}"
            )

    @torch.no_grad()
    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features ``[N, feature_dim]`` (float32, on CPU), computed in batches."""
        self._check(x)
        out = [
            self.net.body(chunk.to(self.device, torch.float32)).float().cpu()
            for chunk in x.split(_EVAL_BATCH)
        ]
        return torch.cat(out) if out else torch.empty(0, self.feature_dim)

    @torch.no_grad()
    def log_probs(self, x: torch.Tensor) -> torch.Tensor:
        """Class log-posteriors ``[N, num_classes]`` (on CPU)."""
        self._check(x)
        out = [
            F.log_softmax(self.net(chunk.to(self.device, torch.float32)), dim=-1).float().cpu()
            for chunk in x.split(_EVAL_BATCH)
        ]
        return torch.cat(out)

    @torch.no_grad()
    def accuracy(self, dataset: ImageDataset) -> float:
        """Top-1 accuracy on ``dataset``."""
        pred = self.log_probs(dataset.images).argmax(-1)
        return float((pred == dataset.labels).float().mean())

    def save(self, path: str | os.PathLike[str]) -> Path:
        return atomic_save(
            {
                "kind": "image_evaluator",
                "state_dict": self.net.state_dict(),
                "image_size": self.image_size,
                "num_classes": self.net.head.out_features,
                "widths": list(self.widths),
                "feature_dim": self.feature_dim,
                "test_accuracy": self.test_accuracy,
            },
            path,
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str], device: str | torch.device = "auto") -> Evaluator:
        state = load_checkpoint(
            path, required_keys=("state_dict", "image_size", "num_classes", "widths", "feature_dim")
        )
        widths = (int(state["widths"][0]), int(state["widths"][1]))
        net = EvaluatorNet(int(state["num_classes"]), widths, int(state["feature_dim"]))
        net.load_state_dict(state["state_dict"])
        net.to(resolve_device(device))
        return cls(
            net,
            int(state["image_size"]),
            float(state.get("test_accuracy", float("nan"))),
            widths,
            int(state["feature_dim"]),
        )


def train_evaluator(
    dataset: ImageDataset,
    epochs: int = 5,
    seed: int = 0,
    device: str | torch.device = "auto",
    batch_size: int = 64,
    lr: float = 2e-3,
    valid_fraction: float = 0.1,
    widths: tuple[int, int] = (16, 32),
    feature_dim: int = 128,
) -> Evaluator:
    """Train the evaluator classifier on a seeded split; ``test_accuracy`` is on the held-out part."""
    if epochs <= 0:
        raise ValueError(f"epochs must be positive, got {epochs}")
    dev = resolve_device(device)
    train, test = dataset.split(valid_fraction, seed=seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = EvaluatorNet(dataset.num_classes, widths, feature_dim).to(dev)
        opt = torch.optim.Adam(net.parameters(), lr=lr)
        # A little translation augmentation keeps features from keying on exact pixel positions.
        for epoch in range(epochs):
            net.train()
            for x, y in train.loader(batch_size, shuffle=True, seed=seed * 1000 + epoch):
                x, y = x.to(dev), y.to(dev)
                shift = torch.randint(-1, 2, (2,)).tolist()
                x = torch.roll(x, shifts=(shift[0], shift[1]), dims=(2, 3))
                loss = F.cross_entropy(net(x), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
    evaluator = Evaluator(net.eval(), dataset.image_size, float("nan"), widths, feature_dim)
    evaluator.test_accuracy = evaluator.accuracy(test)
    return evaluator


class _PrecomputedFeatures(nn.Module):
    """The identity, so torchmetrics' FID/KID can consume features we already computed."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _check_feats(real: torch.Tensor, fake: torch.Tensor, min_n: int = 2) -> None:
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(
            f"features must be [N, D] with equal D, got {tuple(real.shape)} and {tuple(fake.shape)}"
        )
    if real.shape[0] < min_n or fake.shape[0] < min_n:
        raise ValueError(
            f"need at least {min_n} samples per side, got {real.shape[0]} and {fake.shape[0]}"
        )


def frechet_distance(real_feats: torch.Tensor, fake_feats: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (torchmetrics FID, float64)."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    _check_feats(real_feats, fake_feats)
    metric = FrechetInceptionDistance(feature=_PrecomputedFeatures(real_feats.shape[1]))
    metric.set_dtype(torch.float64)
    metric.update(real_feats.double().cpu(), real=True)
    metric.update(fake_feats.double().cpu(), real=False)
    # eigvals of a product of PSD matrices can carry tiny negative round-off: clamp at 0.
    return max(float(metric.compute()), 0.0)


def kernel_inception_distance(
    real_feats: torch.Tensor,
    fake_feats: torch.Tensor,
    subsets: int = 50,
    subset_size: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """Unbiased polynomial-kernel MMD² (torchmetrics KID): mean and std over random subsets."""
    from torchmetrics.image.kid import KernelInceptionDistance

    _check_feats(real_feats, fake_feats)
    size = min(subset_size, real_feats.shape[0], fake_feats.shape[0])
    with warnings.catch_warnings():  # "will save all extracted features": that is intended here
        warnings.filterwarnings("ignore", message=".*save all extracted features.*")
        metric = KernelInceptionDistance(
            feature=_PrecomputedFeatures(real_feats.shape[1]), subsets=subsets, subset_size=size
        )
    metric.update(real_feats.double().cpu(), real=True)
    metric.update(fake_feats.double().cpu(), real=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mean, std = metric.compute()
    return float(mean), float(std)


def _kth_neighbour_radius(feats: torch.Tensor, k: int) -> torch.Tensor:
    """Distance from each point to its k-th nearest other point in the same set."""
    dist = torch.cdist(feats, feats)
    # Column 0 of the sorted row is the point itself (distance 0), so take index k.
    return dist.kthvalue(k + 1, dim=1).values


def precision_recall_density_coverage(
    real_feats: torch.Tensor, fake_feats: torch.Tensor, k: int = 5
) -> dict[str, float]:
    """Naeem et al. (2020) PRDC with k-NN balls (Euclidean distance, exact).

    precision: share of fakes inside some real k-NN ball; recall: share of reals
    inside some fake k-NN ball; density: mean count of real balls holding each
    fake, over k; coverage: share of real balls holding at least one fake.
    """
    _check_feats(real_feats, fake_feats, min_n=k + 1)
    real = real_feats.double().cpu()
    fake = fake_feats.double().cpu()
    real_radius = _kth_neighbour_radius(real, k)
    fake_radius = _kth_neighbour_radius(fake, k)
    cross = torch.cdist(real, fake)  # [N_real, N_fake]
    in_real_ball = cross <= real_radius[:, None]
    in_fake_ball = cross <= fake_radius[None, :]
    return {
        "precision": float(in_real_ball.any(dim=0).double().mean()),
        "recall": float(in_fake_ball.any(dim=1).double().mean()),
        "density": float(in_real_ball.double().sum(dim=0).mean() / k),
        "coverage": float((cross.min(dim=1).values <= real_radius).double().mean()),
    }


def inception_score(log_probs: torch.Tensor) -> float:
    """exp(E_x KL(p(y|x) || p(y))): high when samples are confidently classified and classes balanced."""
    log_py = torch.logsumexp(log_probs, dim=0) - math.log(log_probs.shape[0])
    kl = (log_probs.exp() * (log_probs - log_py)).sum(dim=1)
    return float(kl.mean().exp())


@dataclass
class _Split:
    feats: torch.Tensor
    log_probs: torch.Tensor


def evaluate_samples(
    evaluator: Evaluator,
    real_images: torch.Tensor,
    fake_images: torch.Tensor,
    k: int = 5,
    seed: int = 0,
) -> dict[str, float]:
    """FD, KID (mean, std), PRDC and Inception-style score of fakes against reals, on evaluator features."""
    real = _Split(evaluator.features(real_images), evaluator.log_probs(real_images))
    fake = _Split(evaluator.features(fake_images), evaluator.log_probs(fake_images))
    kid_mean, kid_std = kernel_inception_distance(real.feats, fake.feats, seed=seed)
    return {
        "n_real": float(real.feats.shape[0]),
        "n_fake": float(fake.feats.shape[0]),
        "fd": frechet_distance(real.feats, fake.feats),
        "kid": kid_mean,
        "kid_std": kid_std,
        **precision_recall_density_coverage(real.feats, fake.feats, k=k),
        "is_fake": inception_score(fake.log_probs),
        "is_real": inception_score(real.log_probs),
    }

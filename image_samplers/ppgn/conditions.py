"""Plug-and-play conditions: anything differentiable that returns log p(condition | x).

Why a Protocol: PPGN's point is that the condition network is replaceable.
The sampler only needs ``condition(x) -> log p [B]`` differentiable in ``x``;
a class of C, a set of classes ("digit is even"), or a separately trained
attribute network ("thick strokes") all fit without touching the sampler.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import nn


class ConditionError(ValueError):
    """A condition was built with bad arguments or returned unusable values."""


@runtime_checkable
class Condition(Protocol):
    """log p(condition | x) for a batch of images.

    ``x`` is ``[B, 1, S, S]`` in [-1, 1]; the result is ``[B]`` log-probabilities
    (<= 0), finite, and differentiable with respect to ``x``. Batched chains may
    carry a different target per row (e.g. one class per chain).
    """

    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...


def _class_tensor(classes: int | Sequence[int] | torch.Tensor, num_classes: int) -> torch.Tensor:
    tensor = torch.as_tensor(classes, dtype=torch.long).reshape(-1)
    if tensor.numel() == 0:
        raise ConditionError("no class ids given")
    bad = tensor[(tensor < 0) | (tensor >= num_classes)]
    if bad.numel():
        raise ConditionError(
            f"unknown class id(s) {sorted(set(bad.tolist()))}: the classifier has "
            f"{num_classes} classes (valid ids 0..{num_classes - 1})"
        )
    return tensor


class ClassCondition:
    """log p(y = c | x) under a classifier returning logits; one class or one per chain."""

    def __init__(
        self,
        classifier: Callable[[torch.Tensor], torch.Tensor],
        classes: int | Sequence[int] | torch.Tensor,
        num_classes: int,
    ) -> None:
        self.classifier = classifier
        self.num_classes = num_classes
        self.classes = _class_tensor(classes, num_classes)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        log_probs = F.log_softmax(self.classifier(x), dim=-1)
        classes = self.classes.to(x.device)
        if classes.numel() == 1:
            classes = classes.expand(x.shape[0])
        elif classes.numel() != x.shape[0]:
            raise ConditionError(
                f"ClassCondition has {classes.numel()} per-chain classes but got a batch of {x.shape[0]}"
            )
        return log_probs.gather(1, classes[:, None]).squeeze(1)


class ClassSetCondition:
    """log p(y in S | x) = logsumexp over the set, e.g. "digit is even" = {0, 2, 4, 6, 8}."""

    def __init__(
        self,
        classifier: Callable[[torch.Tensor], torch.Tensor],
        classes: Iterable[int],
        num_classes: int,
    ) -> None:
        self.classifier = classifier
        self.classes = torch.unique(_class_tensor(list(classes), num_classes))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        log_probs = F.log_softmax(self.classifier(x), dim=-1)
        return torch.logsumexp(log_probs[:, self.classes.to(x.device)], dim=-1)


class AttributeNet(nn.Module):
    """A tiny CNN for one binary image attribute, returning a logit [B]."""

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, width, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(width, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)


class AttributeCondition:
    """log p(attribute = target | x) from a network that returns a binary logit per image."""

    def __init__(
        self, network: Callable[[torch.Tensor], torch.Tensor], target: bool = True
    ) -> None:
        self.network = network
        self.sign = 1.0 if target else -1.0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return F.logsigmoid(self.sign * self.network(x))


class AndCondition:
    """Conjunction of independent conditions: the log-probabilities add."""

    def __init__(self, *conditions: Condition) -> None:
        if not conditions:
            raise ConditionError("AndCondition needs at least one condition")
        self.conditions = conditions

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([c(x) for c in self.conditions]).sum(0)


def ink(x: torch.Tensor) -> torch.Tensor:
    """Fraction of "inked" area per image (pixels mapped from [-1, 1] to [0, 1], then averaged)."""
    return ((x + 1) / 2).clamp(0, 1).flatten(1).mean(1)


def train_thick_stroke_net(
    images: torch.Tensor,
    epochs: int = 3,
    seed: int = 0,
    device: str | torch.device = "cpu",
    batch_size: int = 128,
) -> tuple[AttributeNet, float]:
    """Train an :class:`AttributeNet` for "thick strokes" (ink above the data's median).

    Returns the network (in eval mode) and its training accuracy. The label is a
    simple image statistic, but the condition the sampler sees is a trained
    network over the image, as with any plug-in condition.
    """
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    amount = ink(images)
    labels = (amount > amount.median()).float()
    net = AttributeNet().to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(epochs):
        order = torch.randperm(len(images), generator=gen)
        for start in range(0, len(images), batch_size):
            idx = order[start : start + batch_size]
            loss = F.binary_cross_entropy_with_logits(
                net(images[idx].to(device)), labels[idx].to(device)
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    net.eval()
    with torch.no_grad():
        pred = torch.cat(
            [net(images[i : i + 512].to(device)).cpu() > 0 for i in range(0, len(images), 512)]
        )
    return net, float((pred.float() == labels).float().mean())

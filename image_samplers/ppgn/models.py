"""The PPGN networks: classifier C (with encoders E1, E), generator G, discriminator D, DAEs.

Why these shapes: PPGN uses a classifier's fully connected layer (fc6) as the
code h and a lower layer (pool5) as h1; here C is a two-stage CNN whose second
conv stage is h1 and whose post-ReLU fully connected layer is h. Everything is
size-agnostic for square images whose side is a multiple of 4.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import PPGNConfig


class Classifier(nn.Module):
    """C: conv -> conv (= h1) -> fc + ReLU (= h, the code) -> fc (logits).

    ``lower(x)`` is the encoder E1 (image -> h1), ``code_from_lower`` is E2
    (h1 -> h), ``encode`` is E = E2 o E1 and ``logits_from_code`` the classifier head.
    """

    def __init__(self, config: PPGNConfig) -> None:
        super().__init__()
        w, s = config.width, config.image_size // 4
        self.conv1 = nn.Conv2d(1, w, 3, padding=1)
        self.conv2 = nn.Conv2d(w, 2 * w, 3, padding=1)
        self.fc_code = nn.Linear(2 * w * s * s, config.code_dim)
        self.dropout = nn.Dropout(0.3)
        self.fc_out = nn.Linear(config.code_dim, config.num_classes)

    def lower(self, x: torch.Tensor) -> torch.Tensor:
        """E1: image [B,1,S,S] -> h1 [B, 2w, S/4, S/4]."""
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        return F.max_pool2d(F.relu(self.conv2(x)), 2)

    def code_from_lower(self, h1: torch.Tensor) -> torch.Tensor:
        """E2: h1 -> code h [B, code_dim] (non-negative, like fc6 after ReLU)."""
        return F.relu(self.fc_code(h1.flatten(1)))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """E: image -> code h."""
        return self.code_from_lower(self.lower(x))

    def logits_from_code(self, h: torch.Tensor) -> torch.Tensor:
        return self.fc_out(self.dropout(h))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits [B, num_classes]."""
        return self.logits_from_code(self.encode(x))

    def log_probs(self, x: torch.Tensor) -> torch.Tensor:
        """log p(y | x) for every class, [B, num_classes]."""
        return F.log_softmax(self(x), dim=-1)


class Generator(nn.Module):
    """G: code h -> image in [-1, 1] (fc, then two stride-2 transposed convolutions)."""

    def __init__(self, config: PPGNConfig) -> None:
        super().__init__()
        w, self.s = config.width, config.image_size // 4
        self.w = w
        self.fc = nn.Linear(config.code_dim, 2 * w * self.s * self.s)
        self.net = nn.Sequential(
            nn.LeakyReLU(0.2),
            nn.ConvTranspose2d(2 * w, 2 * w, 4, stride=2, padding=1),
            nn.BatchNorm2d(2 * w),
            nn.LeakyReLU(0.2),
            nn.ConvTranspose2d(2 * w, w, 4, stride=2, padding=1),
            nn.BatchNorm2d(w),
            nn.LeakyReLU(0.2),
            nn.Conv2d(w, 1, 3, padding=1),
            nn.Tanh(),
        )

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(self.fc(h).view(-1, 2 * self.w, self.s, self.s))


class Discriminator(nn.Module):
    """D: image -> real/fake logit."""

    def __init__(self, config: PPGNConfig) -> None:
        super().__init__()
        w, s = config.width, config.image_size // 4
        self.net = nn.Sequential(
            nn.Conv2d(1, w, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(w, 2 * w, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.Flatten(),
            nn.Dropout(0.2),
            nn.Linear(2 * w * s * s, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)


class CodeDAE(nn.Module):
    """R(h): MLP denoising autoencoder on the code; R(h) - h estimates the score of p(h)."""

    def __init__(self, config: PPGNConfig) -> None:
        super().__init__()
        d, k = config.code_dim, config.dae_hidden
        self.net = nn.Sequential(
            nn.Linear(d, k), nn.ELU(), nn.Linear(k, k), nn.ELU(), nn.Linear(k, d)
        )

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h)


class ImageDAE(nn.Module):
    """R(x): small convolutional denoising autoencoder on images (the PPGN-x prior)."""

    def __init__(self, config: PPGNConfig) -> None:
        super().__init__()
        w = config.width
        self.net = nn.Sequential(
            nn.Conv2d(1, w, 3, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(w, 2 * w, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.ConvTranspose2d(2 * w, w, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(w, 1, 3, padding=1),
            nn.Tanh(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class JointPrior(nn.Module):
    """Joint PPGN-h prior: the "upside-down" autoencoder R(h) = E(G(h))."""

    def __init__(self, generator: Generator, classifier: Classifier) -> None:
        super().__init__()
        self.generator = generator
        self.classifier = classifier

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.classifier.encode(self.generator(h))

"""BEGAN networks (paper Fig. 1): a convolutional decoder used as generator and inside the
autoencoder discriminator, and an encoder whose width grows by n per scale.

No batch norm, no dropout, ELU everywhere, nearest-neighbour upsampling, stride-2
convolutions to subsample, linear maps to and from the 8x8 bottleneck.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from image_samplers.began.config import BEGANConfig

BASE = 8  # the decoder starts from, and the encoder ends at, 8x8


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1)


class Decoder(nn.Module):
    """h -> linear to 8x8xn -> per scale [3x3 conv, ELU] x 2 then nearest x2 -> final 3x3 conv.

    With ``skip`` the first 8x8 tensor h0, upsampled by nearest neighbour to the current
    resolution, is concatenated to the input of every scale after the first.
    """

    def __init__(
        self, in_dim: int, image_size: int, channels: int, num_filters: int, skip: bool = True
    ) -> None:
        super().__init__()
        if image_size < BASE or image_size & (image_size - 1):
            raise ValueError(f"image_size must be a power of two >= 8, got {image_size}")
        self.num_filters = num_filters
        self.skip = skip
        self.fc = nn.Linear(in_dim, BASE * BASE * num_filters)
        num_scales = image_size.bit_length() - 3
        self.blocks = nn.ModuleList()
        for scale in range(num_scales):
            cin = 2 * num_filters if (skip and scale > 0) else num_filters
            self.blocks.append(
                nn.Sequential(
                    _conv(cin, num_filters), nn.ELU(), _conv(num_filters, num_filters), nn.ELU()
                )
            )
        self.out = _conv(num_filters, channels)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        h0 = self.fc(h).view(h.shape[0], self.num_filters, BASE, BASE)
        x = h0
        for scale, block in enumerate(self.blocks):
            if scale > 0:
                x = F.interpolate(x, scale_factor=2.0, mode="nearest")
                if self.skip:
                    skip = F.interpolate(h0, scale_factor=float(2**scale), mode="nearest")
                    x = torch.cat([x, skip], dim=1)
            x = block(x)
        return self.out(x)


class Encoder(nn.Module):
    """x -> 3x3 conv to n -> per scale [3x3 conv, ELU] x 2, stride-2 3x3 conv to the next width
    (n, 2n, 3n, ...) -> at 8x8 a linear map to the embedding h."""

    def __init__(self, image_size: int, channels: int, num_filters: int, h_dim: int) -> None:
        super().__init__()
        if image_size < BASE or image_size & (image_size - 1):
            raise ValueError(f"image_size must be a power of two >= 8, got {image_size}")
        num_scales = image_size.bit_length() - 3
        layers: list[nn.Module] = [_conv(channels, num_filters), nn.ELU()]
        for scale in range(num_scales):
            width = num_filters * (scale + 1)
            layers += [_conv(width, width), nn.ELU(), _conv(width, width), nn.ELU()]
            if scale < num_scales - 1:
                layers += [_conv(width, width + num_filters, stride=2), nn.ELU()]
        self.body = nn.Sequential(*layers)
        self.final_width = num_filters * num_scales
        self.fc = nn.Linear(BASE * BASE * self.final_width, h_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # reshape (not view): channels-last activations are not contiguous in NCHW order.
        return self.fc(self.body(x).reshape(x.shape[0], -1))


class Generator(nn.Module):
    """G(z): the decoder architecture with its own weights."""

    def __init__(self, config: BEGANConfig) -> None:
        super().__init__()
        self.z_dim = config.z_dim
        self.decoder = Decoder(
            config.z_dim, config.image_size, config.channels, config.num_filters, config.skip
        )
        initialise(self, config.init)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)


class Discriminator(nn.Module):
    """D(v) = decoder(encoder(v)): an autoencoder whose reconstruction error scores images."""

    def __init__(self, config: BEGANConfig) -> None:
        super().__init__()
        self.encoder = Encoder(config.image_size, config.channels, config.num_filters, config.h_dim)
        self.decoder = Decoder(
            config.h_dim, config.image_size, config.channels, config.num_filters, config.skip
        )
        initialise(self, config.init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


def initialise(module: nn.Module, init: str) -> nn.Module:
    """Re-initialise every conv and linear layer of ``module``.

    ``xavier``: Glorot-uniform weights and zero biases, what tf.contrib.slim layers get in the
    reference implementation; ``default`` keeps PyTorch's own initialisation.
    """
    if init == "default":
        return module
    if init != "xavier":
        raise ValueError(f"unknown init {init!r}; expected 'xavier' or 'default'")
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
    return module


def sample_z(
    n: int, z_dim: int, generator: torch.Generator | None = None, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """z ~ U(-1, 1)^z_dim."""
    return torch.rand(n, z_dim, generator=generator, device=device).mul_(2.0).sub_(1.0)

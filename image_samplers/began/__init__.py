"""BEGAN (Berthelot, Schumm, Metz 2017): an autoencoder discriminator balanced against its generator.

Public API: :class:`BEGANConfig`, :class:`Generator`, :class:`Discriminator`,
the losses in :mod:`.losses`, and :class:`BEGANTrainer` in :mod:`.train`.
"""

from agents.runtime import ConfigError  # the one config error of every trainer
from image_samplers.began.config import BEGANConfig
from image_samplers.began.losses import (
    autoencoder_loss,
    convergence_measure,
    discriminator_loss,
    generator_loss,
    update_k,
)
from image_samplers.began.model import Decoder, Discriminator, Encoder, Generator

__all__ = [
    "BEGANConfig",
    "ConfigError",
    "Decoder",
    "Discriminator",
    "Encoder",
    "Generator",
    "autoencoder_loss",
    "convergence_measure",
    "discriminator_loss",
    "generator_loss",
    "update_k",
]

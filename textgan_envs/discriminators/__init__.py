"""Sequence discriminators (SeqGAN's CNN, a small LSTM) and their shared training routine."""

from textgan_envs.discriminators.cnn import CNNDiscriminator, Highway
from textgan_envs.discriminators.lstm import LSTMDiscriminator
from textgan_envs.discriminators.training import (
    DISCRIMINATOR_KINDS,
    Discriminator,
    build_discriminator,
    discriminator_accuracy,
    discriminator_device,
    eval_logits,
    make_discriminator_optimizer,
    train_discriminator,
)

__all__ = [
    "CNNDiscriminator",
    "DISCRIMINATOR_KINDS",
    "Discriminator",
    "Highway",
    "LSTMDiscriminator",
    "build_discriminator",
    "discriminator_accuracy",
    "discriminator_device",
    "eval_logits",
    "make_discriminator_optimizer",
    "train_discriminator",
]

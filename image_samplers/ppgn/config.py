"""Training configuration for the PPGN components (C, G, D, R_h, R_x).

Why one dataclass: a run directory stores exactly these fields, so resuming or
sampling from a run rebuilds the same networks, and a mismatch is detected by
comparing the fields rather than by a cryptic ``load_state_dict`` failure.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from agents.runtime import ConfigError, check_field_types

#: Fields that fix network shapes: a checkpoint whose values differ cannot be loaded.
SHAPE_FIELDS = ("image_size", "num_classes", "code_dim", "width", "dae_hidden")


@dataclass
class PPGNConfig:
    """Architecture, loss weights and schedule for training every PPGN component."""

    image_size: int = 28
    """Side of the square images (must be divisible by 4: two stride-2 stages)."""
    num_classes: int = 10
    """Number of classes of the classifier C (read from the data set)."""
    code_dim: int = 64
    """Size of the code h: the post-ReLU fully connected layer of C (PPGN's fc6)."""
    width: int = 32
    """Channel width of the first conv stage of every network (second stage doubles it)."""
    dae_hidden: int = 256
    """Hidden units of the MLP denoising autoencoder R(h) on the code."""

    batch_size: int = 64
    """Minibatch size for every component."""
    lr: float = 2e-4
    """Adam learning rate of G and D (betas 0.5, 0.999 as in DCGAN-style training)."""
    classifier_lr: float = 1e-3
    """Adam learning rate of C and the DAEs."""
    classifier_epochs: int = 4
    """Epochs of cross-entropy training for C."""
    generator_epochs: int = 8
    """Epochs for each generator (DGN-AM G, joint G, noiseless joint G)."""
    dae_epochs: int = 8
    """Epochs for the denoising autoencoders R(h) and R(x) (0 leaves them untrained)."""

    image_weight: float = 1.0
    """Weight of the image reconstruction loss ||G(E(x)) - x||^2 (mean over pixels)."""
    feature_weight: float = 1.0
    """Weight of feature matching in the comparator space (C's lower layer h1, mean squared)."""
    adversarial_weight: float = 0.02
    """Weight of the non-saturating adversarial loss of G against D."""
    pause_d_below: float = 0.1
    """Skip D's update when D loss / G adversarial loss falls below this (D far ahead)."""
    pause_g_above: float = 10.0
    """Skip G's adversarial term when D loss / G adversarial loss exceeds this (G far ahead)."""

    joint_h_weight: float = 1.0
    """Joint PPGN-h: weight of reconstructing h through the chain h+noise -> G -> E -> h."""
    joint_h1_weight: float = 1.0
    """Joint PPGN-h: weight of reconstructing the lower layer h1 = E1(x) from G(h+noise)."""
    joint_noise: float = 0.5
    """Joint PPGN-h: std of Gaussian noise on h, relative to the mean std of real codes."""
    train_joint: bool = True
    """Train the (noisy) joint generator; False keeps only what DGN-AM / PPGN-h / PPGN-x need."""
    train_noiseless_joint: bool = True
    """Also train the noiseless joint generator (same losses, joint_noise = 0)."""

    dae_h_noise: float = 0.5
    """PPGN-h: std of the Gaussian noise on h for R(h), relative to the mean std of real codes."""
    dae_x_noise: float = 0.3
    """PPGN-x: std of the Gaussian noise on pixels (images lie in [-1, 1]) for R(x)."""

    valid_fraction: float = 0.2
    """Held-out fraction of the data (used for real-feature statistics in evaluation)."""
    seed: int = 0
    """Seed for the split, initialisation and minibatch order."""
    keep_checkpoints: int = 1
    """Checkpoints kept on disk: 1 keeps only ``checkpoint.pt``; K > 1 also the last K as
    ``checkpoints/step-N.pt`` (one per epoch trained)."""

    def __post_init__(self) -> None:
        check_field_types(self)  # 2.5 epochs or True filters are refused like other bad values
        if self.image_size % 4 != 0 or self.image_size < 8:
            raise ConfigError(f"image_size must be a multiple of 4 and >= 8, got {self.image_size}")
        positive = ("code_dim", "width", "dae_hidden", "batch_size", "num_classes")
        for name in (*positive, "keep_checkpoints"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if self.classifier_epochs < 1:
            raise ConfigError(f"classifier_epochs must be >= 1, got {self.classifier_epochs}")
        if min(self.generator_epochs, self.dae_epochs) < 0:
            raise ConfigError("generator_epochs and dae_epochs must be >= 0 (0 skips the stage)")
        if not 0.0 < self.valid_fraction < 1.0:
            raise ConfigError(f"valid_fraction must lie in (0, 1), got {self.valid_fraction}")

    def to_dict(self) -> dict[str, Any]:
        """Plain-type dict (safe for ``weights_only`` checkpoints)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> PPGNConfig:
        """Rebuild from :meth:`to_dict`, ignoring unknown keys from newer versions."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


def tiny_config(**overrides: Any) -> PPGNConfig:
    """A seconds-scale configuration for tests and smoke runs (digits at 16x16)."""
    base = dict(
        image_size=16,
        code_dim=32,
        width=8,
        dae_hidden=64,
        batch_size=64,
        classifier_epochs=6,
        generator_epochs=6,
        dae_epochs=6,
        lr=1e-3,
    )
    base.update(overrides)
    return PPGNConfig(**base)

"""BEGAN hyper-parameters: one dataclass, validated on construction, stored in every checkpoint."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from agents.runtime import ConfigError, check_field_types

INITS = ("xavier", "default")


@dataclass
class BEGANConfig:
    """Everything that defines a BEGAN run (paper defaults where the paper gives one)."""

    data: str = "digits"
    """Data spec: ``digits`` (scikit-learn 8x8 digits, upscaled) or ``mnist:DIR`` (IDX files)."""
    image_size: int = 16
    """Side of the square images; a power of two >= 8 (the decoder starts from 8x8)."""
    channels: int = 1
    """Image channels (1 for the grey-scale data sets shipped here)."""
    num_filters: int = 32
    """n in the paper: the decoder's width and the encoder's channel increment per scale."""
    z_dim: int = 64
    """Dimension of the generator input z ~ U(-1, 1)."""
    h_dim: int = 64
    """Dimension of the discriminator's embedding h (the autoencoder bottleneck)."""
    skip: bool = True
    """Concatenate the upsampled first 8x8 decoder tensor at every scale (the paper's skip connections)."""
    init: str = "xavier"
    """Weight initialisation: ``xavier`` (Glorot-uniform weights, zero biases: the TF/slim default
    the reference implementation gets) or ``default`` (PyTorch's Kaiming-uniform(a=sqrt(5)),
    a third of Xavier's weight variance for square layers)."""
    gamma: float = 0.5
    """Diversity ratio gamma = E[L(G(z))] / E[L(x)] targeted by the k_t controller; in (0, 1].

    k_t only rises while L(G(z)) < gamma L(x). On the small digit sets here the generator's
    ratio settles at 0.6-0.9 early, so gamma 0.5 (the paper's default) keeps k_t at 0 and the
    generator collapses; gamma 1.0 is what produced digits (RESULTS.md, BEGAN)."""
    lambda_k: float = 0.001
    """Proportional gain of the k_t controller."""
    lr: float = 1e-4
    """Initial Adam learning rate for both networks."""
    lr_halve_every: int = 20_000
    """Halve the learning rate every this many steps (0 disables decay)."""
    lr_min: float = 2e-5
    """Floor for the decayed rate: decaying too far lets long runs collapse."""
    beta1: float = 0.5
    """Adam beta1."""
    beta2: float = 0.999
    """Adam beta2."""
    batch_size: int = 16
    """Real images (and generated images per loss) per step."""
    steps: int = 10_000
    """Total optimisation steps (each = one D step and one G step)."""
    seed: int = 0
    """Seeds initialisation, data order and z draws."""
    log_every: int = 50
    """Steps between scalar logs (the only host syncs in the loop)."""
    sample_every: int = 500
    """Steps between sample-grid PNGs (0 disables)."""
    checkpoint_every: int = 500
    """Steps between atomic checkpoints (the run also checkpoints at its end)."""
    keep_checkpoints: int = 1
    """Checkpoints kept on disk: 1 keeps only ``checkpoint.pt``; K > 1 also the last K as
    ``checkpoints/step-N.pt``."""
    snapshot_every: int = 0
    """Steps between kept generator snapshots ``snapshots/G_<step>.pt`` for later evaluation (0 disables)."""
    channels_last: bool | None = None
    """Channels-last activations; ``None`` picks them on CUDA only. On CPU they measured slower
    on a loaded AMD EPYC and 3-15% faster on a quiet Intel Xeon (BENCHMARKS.md), so the CPU
    default waits for a quiet AMD measurement; ``True`` turns them on."""
    compile: bool = False
    """Wrap both networks in ``torch.compile`` (pays off only on long runs)."""

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> ConfigError:
            return ConfigError(f"BEGANConfig.{name}={getattr(self, name)!r}: {why}")

        check_field_types(self)  # 2.5 steps or True filters are refused like other bad values
        size = self.image_size
        if not isinstance(size, int) or size < 8 or size & (size - 1):
            raise bad("image_size", "must be a power of two >= 8")
        if not 0.0 < self.gamma <= 1.0:
            raise bad("gamma", "must be in (0, 1]")
        if self.init not in INITS:
            raise bad("init", f"must be one of {', '.join(INITS)}")
        if self.lambda_k < 0:
            raise bad("lambda_k", "must be >= 0")
        names = ("channels", "num_filters", "z_dim", "h_dim", "batch_size", "log_every")
        for name in (*names, "keep_checkpoints"):
            if getattr(self, name) <= 0:
                raise bad(name, "must be positive")
        for name in (
            "steps",
            "lr_halve_every",
            "sample_every",
            "checkpoint_every",
            "snapshot_every",
        ):
            if getattr(self, name) < 0:
                raise bad(name, "must be >= 0")
        if not self.lr > 0:
            raise bad("lr", "must be positive")
        if not 0 <= self.lr_min <= self.lr:
            raise bad("lr_min", "must be in [0, lr]")
        for name in ("beta1", "beta2"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise bad(name, "must be in [0, 1)")

    @property
    def num_scales(self) -> int:
        """Resolutions 8, 16, ..., image_size."""
        return self.image_size.bit_length() - 3

    def lr_at(self, step: int) -> float:
        """Learning rate in effect at ``step``: halved every ``lr_halve_every`` steps, floored."""
        if self.lr_halve_every <= 0:
            return self.lr
        return max(self.lr * 0.5 ** (step // self.lr_halve_every), self.lr_min)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> BEGANConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown BEGANConfig fields: {', '.join(unknown)}")
        return cls(**values)

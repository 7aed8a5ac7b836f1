"""Offline image data for the image samplers: scikit-learn digits and MNIST IDX files.

Why a module of its own: BEGAN and PPGN train and evaluate on the same data, so
both read it through one loader that validates files and yields one format:
``float32 [N, 1, S, S]`` in ``[-1, 1]`` (the range of a ``tanh``-free
generator's target) with ``int64`` labels.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

IDX_IMAGES_MAGIC = 2051
IDX_LABELS_MAGIC = 2049


class DataError(ValueError):
    """A data file is missing or malformed, or a data spec / argument is invalid."""


@dataclass
class ImageDataset:
    """Grey-scale images in ``[-1, 1]`` with class labels."""

    images: torch.Tensor
    """``float32 [N, 1, S, S]`` in ``[-1, 1]``."""
    labels: torch.Tensor
    """``int64 [N]`` class ids in ``[0, num_classes)``."""
    num_classes: int
    """Number of classes (10 for digits and MNIST)."""

    def __post_init__(self) -> None:
        if self.images.ndim != 4 or self.images.shape[1] != 1:
            raise DataError(f"images must be [N, 1, S, S], got {tuple(self.images.shape)}")
        if self.labels.shape != (self.images.shape[0],):
            raise DataError(
                f"labels must be [N] with N={self.images.shape[0]}, got {tuple(self.labels.shape)}"
            )

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def image_size(self) -> int:
        return int(self.images.shape[-1])

    def split(
        self, valid_fraction: float = 0.1, seed: int = 0
    ) -> tuple[ImageDataset, ImageDataset]:
        """A seeded random split into ``(train, valid)``; ``valid`` gets ``valid_fraction``."""
        if not 0.0 < valid_fraction < 1.0:
            raise DataError(f"valid_fraction must be in (0, 1), got {valid_fraction}")
        n = len(self)
        n_valid = max(1, int(round(n * valid_fraction)))
        if n_valid >= n:
            raise DataError(f"cannot split {n} images with valid_fraction={valid_fraction}")
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        valid_idx, train_idx = order[:n_valid], order[n_valid:]
        return self.subset(train_idx), self.subset(valid_idx)

    def subset(self, index: torch.Tensor) -> ImageDataset:
        """The images and labels at ``index``."""
        return ImageDataset(self.images[index], self.labels[index], self.num_classes)

    def loader(
        self,
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
    ) -> DataLoader:
        """A ``DataLoader`` over ``(image, label)`` whose order depends only on ``seed``."""
        if batch_size <= 0:
            raise DataError(f"batch_size must be positive, got {batch_size}")
        generator = torch.Generator().manual_seed(seed)
        return DataLoader(
            TensorDataset(self.images, self.labels),
            batch_size=batch_size,
            shuffle=shuffle,
            drop_last=drop_last,
            generator=generator,
        )


def _resize(images: torch.Tensor, image_size: int) -> torch.Tensor:
    """Bilinear resize of ``[N, 1, s, s]`` to ``image_size`` (anti-aliased when shrinking)."""
    if image_size <= 0:
        raise DataError(f"image_size must be positive, got {image_size}")
    if images.shape[-1] == image_size:
        return images
    antialias = image_size < images.shape[-1]
    return F.interpolate(
        images,
        size=(image_size, image_size),
        mode="bilinear",
        align_corners=False,
        antialias=antialias,
    )


def _to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """Map ``[0, 1]`` to ``[-1, 1]`` and clamp away interpolation overshoot."""
    return (images * 2.0 - 1.0).clamp_(-1.0, 1.0)


def load_digits(image_size: int = 16) -> ImageDataset:
    """scikit-learn's embedded 1,797 8x8 digits, upscaled bilinearly to ``image_size``."""
    from sklearn.datasets import load_digits as _sk_load_digits

    bunch = _sk_load_digits()
    images = torch.from_numpy(bunch.images.astype(np.float32) / 16.0).unsqueeze(1)
    images = _to_unit_range(_resize(images, image_size)).contiguous()
    labels = torch.from_numpy(bunch.target.astype(np.int64))
    return ImageDataset(images, labels, num_classes=10)


def _find_idx(directory: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        path = directory / name
        if path.is_file():
            return path
    raise DataError(f"MNIST file {directory / stem}[.gz] not found")


def _read_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as handle:
                return handle.read()
        return path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"MNIST file {path} cannot be read: {exc}") from exc


def _parse_idx(path: Path, magic: int, ndim: int) -> np.ndarray:
    """Parse an unsigned-byte IDX file, checking magic number, dimensions and length."""
    data = _read_bytes(path)
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"MNIST file {path} is truncated: {len(data)} bytes, header needs {header}")
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        raise DataError(f"MNIST file {path} has bad magic number {found}, expected {magic}")
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    expected = int(np.prod(dims)) + header
    if len(data) != expected:
        raise DataError(
            f"MNIST file {path} is {'truncated' if len(data) < expected else 'too long'}: "
            f"{len(data)} bytes, dimensions {dims} need {expected}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def load_mnist(
    directory: str | os.PathLike[str], image_size: int = 28, split: str = "t10k"
) -> ImageDataset:
    """MNIST from standard IDX files ``{split}-images-idx3-ubyte[.gz]`` and ``{split}-labels-idx1-ubyte[.gz]``."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"MNIST directory {directory} does not exist")
    image_path = _find_idx(directory, f"{split}-images-idx3-ubyte")
    label_path = _find_idx(directory, f"{split}-labels-idx1-ubyte")
    raw_images = _parse_idx(image_path, IDX_IMAGES_MAGIC, 3)
    raw_labels = _parse_idx(label_path, IDX_LABELS_MAGIC, 1)
    if raw_images.shape[0] != raw_labels.shape[0]:
        raise DataError(
            f"MNIST count mismatch: {image_path} holds {raw_images.shape[0]} images, "
            f"{label_path} holds {raw_labels.shape[0]} labels"
        )
    if raw_images.shape[1] != raw_images.shape[2]:
        raise DataError(f"MNIST file {image_path} has non-square images {raw_images.shape[1:]}")
    if raw_labels.size and raw_labels.max() > 9:
        raise DataError(f"MNIST file {label_path} has label {raw_labels.max()} outside 0..9")
    images = torch.from_numpy(raw_images.astype(np.float32) / 255.0).unsqueeze(1)
    images = _to_unit_range(_resize(images, image_size)).contiguous()
    labels = torch.from_numpy(raw_labels.astype(np.int64))
    return ImageDataset(images, labels, num_classes=10)


def load_dataset(spec: str, image_size: int) -> ImageDataset:
    """``"digits"`` or ``"mnist:DIR"`` (t10k split) at ``image_size``."""
    if spec == "digits":
        return load_digits(image_size)
    if spec.startswith("mnist:"):
        directory = spec[len("mnist:") :]
        if not directory:
            raise DataError("data spec 'mnist:' needs a directory, e.g. mnist:/path/to/mnist")
        return load_mnist(directory, image_size=image_size)
    raise DataError(f"unknown data spec {spec!r}; expected 'digits' or 'mnist:DIR'")


def image_grid(images: torch.Tensor, nrow: int = 8, padding: int = 1) -> np.ndarray:
    """Tile ``[N, C, H, W]`` images in ``[-1, 1]`` into one ``[H', W']`` (or ``[H', W', 3]``) array in ``[0, 1]``."""
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise DataError(f"images must be [N, 1|3, H, W], got {tuple(images.shape)}")
    if nrow <= 0:
        raise DataError(f"nrow must be positive, got {nrow}")
    x = ((images.detach().float().cpu().clamp(-1, 1) + 1) / 2).numpy()
    n, c, h, w = x.shape
    cols = min(nrow, max(n, 1))
    rows = max(1, -(-n // cols))
    grid = np.ones((c, rows * (h + padding) + padding, cols * (w + padding) + padding), np.float32)
    for i in range(n):
        r, q = divmod(i, cols)
        top, left = padding + r * (h + padding), padding + q * (w + padding)
        grid[:, top : top + h, left : left + w] = x[i]
    return grid[0] if c == 1 else grid.transpose(1, 2, 0)


def save_image_grid(
    images: torch.Tensor, path: str | os.PathLike[str], nrow: int = 8, padding: int = 1
) -> Path:
    """Write images in ``[-1, 1]`` as a PNG grid with ``nrow`` images per row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = image_grid(images, nrow=nrow, padding=padding)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if grid.ndim == 2:
        plt.imsave(path, grid, cmap="gray", vmin=0.0, vmax=1.0, format="png")
    else:
        plt.imsave(path, grid, format="png")
    return path

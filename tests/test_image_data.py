"""Offline image data: digits, MNIST IDX parsing with clear errors, splits, loaders, grids."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from image_samplers.data import (
    DataError,
    ImageDataset,
    image_grid,
    load_dataset,
    load_digits,
    load_mnist,
    save_image_grid,
)
from tests.conftest import shared_file


def _write_idx(
    directory: Path, split: str, images: np.ndarray, labels: np.ndarray, gz: bool
) -> None:
    n, h, w = images.shape
    img_bytes = struct.pack(">IIII", 2051, n, h, w) + images.astype(np.uint8).tobytes()
    lab_bytes = struct.pack(">II", 2049, len(labels)) + labels.astype(np.uint8).tobytes()
    for stem, payload in (
        (f"{split}-images-idx3-ubyte", img_bytes),
        (f"{split}-labels-idx1-ubyte", lab_bytes),
    ):
        if gz:
            with gzip.open(directory / (stem + ".gz"), "wb") as handle:
                handle.write(payload)
        else:
            (directory / stem).write_bytes(payload)


@pytest.fixture
def tiny_mnist(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 28, 28))
    images[0] = 0
    images[1] = 255
    _write_idx(tmp_path, "t10k", images, np.arange(5), gz=False)
    return tmp_path


def test_digits_shape_range_and_labels() -> None:
    data = load_digits(16)
    assert data.images.shape == (1797, 1, 16, 16)
    assert data.images.dtype == torch.float32
    assert data.images.min() == -1.0 and data.images.max() == 1.0
    assert data.labels.dtype == torch.int64
    assert set(data.labels.tolist()) == set(range(10))
    # Background of an 8x8 digit is 0 -> -1 after mapping: the corner pixel is blank.
    assert torch.all(data.images[:, 0, 0, 0] == -1.0)


def test_mnist_roundtrip_plain_and_gzip(
    tiny_mnist: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    data = load_mnist(tiny_mnist, image_size=28)
    assert data.images.shape == (5, 1, 28, 28)
    assert torch.all(data.images[0] == -1.0) and torch.all(data.images[1] == 1.0)
    assert data.labels.tolist() == [0, 1, 2, 3, 4]
    gz_dir = tmp_path_factory.mktemp("gz")
    raw = ((data.images[:, 0].numpy() + 1) / 2 * 255).round().astype(np.uint8)
    _write_idx(gz_dir, "train", raw, np.arange(5), gz=True)
    again = load_mnist(gz_dir, image_size=28, split="train")
    assert torch.allclose(again.images, data.images, atol=1e-6)
    assert load_mnist(gz_dir, image_size=32, split="train").images.shape == (5, 1, 32, 32)


def test_mnist_missing_file_names_it(tiny_mnist: Path) -> None:
    (tiny_mnist / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte"):
        load_mnist(tiny_mnist)
    with pytest.raises(DataError, match="does not exist"):
        load_mnist(tiny_mnist / "nope")


def test_mnist_bad_magic(tiny_mnist: Path) -> None:
    path = tiny_mnist / "t10k-images-idx3-ubyte"
    data = bytearray(path.read_bytes())
    data[3] = 0x01  # 2049 instead of 2051
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match="bad magic number 2049.*expected 2051"):
        load_mnist(tiny_mnist)


def test_mnist_truncated_file(tiny_mnist: Path) -> None:
    path = tiny_mnist / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(DataError, match="truncated"):
        load_mnist(tiny_mnist)
    path.write_bytes(b"\x00\x00")
    with pytest.raises(DataError, match="truncated"):
        load_mnist(tiny_mnist)


def test_mnist_count_mismatch(tmp_path: Path) -> None:
    _write_idx(tmp_path, "t10k", np.zeros((3, 28, 28)), np.arange(4), gz=False)
    with pytest.raises(DataError, match="count mismatch"):
        load_mnist(tmp_path)


def test_corrupt_gzip_is_a_data_error(tiny_mnist: Path) -> None:
    (tiny_mnist / "t10k-images-idx3-ubyte").unlink()
    (tiny_mnist / "t10k-images-idx3-ubyte.gz").write_bytes(b"not a gzip file at all")
    with pytest.raises(DataError, match="cannot be read"):
        load_mnist(tiny_mnist)


def test_shared_mnist_t10k() -> None:
    directory = shared_file("t10k-images-idx3-ubyte.gz").parent
    data = load_dataset(f"mnist:{directory}", 32)
    assert data.images.shape == (10000, 1, 32, 32)
    assert data.labels[:5].tolist() == [7, 2, 1, 0, 4]  # the well-known first MNIST test labels
    assert np.bincount(data.labels.numpy()).min() > 800


def test_load_dataset_rejects_unknown_spec() -> None:
    with pytest.raises(DataError, match="unknown data spec 'cifar'"):
        load_dataset("cifar", 16)
    with pytest.raises(DataError, match="needs a directory"):
        load_dataset("mnist:", 16)


def test_split_is_seeded_and_disjoint() -> None:
    data = ImageDataset(torch.arange(100.0).view(100, 1, 1, 1), torch.arange(100), 100)
    train, valid = data.split(0.2, seed=3)
    assert len(train) == 80 and len(valid) == 20
    assert set(train.labels.tolist()).isdisjoint(valid.labels.tolist())
    assert torch.equal(data.split(0.2, seed=3)[1].labels, valid.labels)
    assert not torch.equal(data.split(0.2, seed=4)[1].labels, valid.labels)
    with pytest.raises(DataError, match="valid_fraction"):
        data.split(1.5)


def test_loader_order_depends_only_on_seed() -> None:
    data = ImageDataset(torch.zeros(10, 1, 2, 2), torch.arange(10), 10)

    def order(seed: int) -> list[int]:
        return [
            y
            for _, ys in data.loader(3, shuffle=True, seed=seed, drop_last=True)
            for y in ys.tolist()
        ]

    assert order(1) == order(1)
    assert order(1) != order(2)
    assert len(order(1)) == 9


def test_dataset_rejects_bad_shapes() -> None:
    with pytest.raises(DataError, match=r"\[N, 1, S, S\]"):
        ImageDataset(torch.zeros(2, 3, 4, 4), torch.zeros(2, dtype=torch.long), 2)


def test_grid_layout_and_png(tmp_path: Path) -> None:
    images = torch.full((3, 1, 2, 2), -1.0)
    images[1] = 1.0
    grid = image_grid(images, nrow=2, padding=1)
    assert grid.shape == (1 + 2 * 3, 1 + 2 * 3)
    assert grid[1, 1] == 0.0 and grid[1, 4] == 1.0 and grid[0, 0] == 1.0
    path = save_image_grid(images, tmp_path / "grid.png", nrow=2)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

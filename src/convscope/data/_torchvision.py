"""torchvision data sets already on a user's disk. Never downloads; torchvision is optional.

MNIST, Fashion-MNIST, KMNIST, CIFAR-10 and CIFAR-100 in torchvision's folder layout are read by
convscope's own IDX and (restricted) CIFAR readers, so they need no torchvision at all and never
unpickle with the standard unpickler. Any other torchvision data set class is used through
torchvision when it imports.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from convscope.data._registry import Dataset
from convscope.errors import DataError

__all__ = ["from_torchvision", "load_torchvision_dataset"]

_KMNIST = ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo")


def load_torchvision_dataset(name: str, root: str | os.PathLike[str], *, train: bool = True, limit: int | None = None) -> Dataset:
    """A torchvision data set from ``root`` (the ``root`` you gave torchvision), never downloading.

    Args:
        name: a torchvision class name: ``"MNIST"``, ``"FashionMNIST"``, ``"KMNIST"``, ``"CIFAR10"``,
            ``"CIFAR100"`` (read without torchvision), or any other ``torchvision.datasets`` class
            that takes ``train=`` or ``split=`` (needs torchvision).
        root: the folder torchvision downloaded into.
        train: the training split, else the test split.
        limit: keep only the first ``limit`` samples.

    Raises:
        DataError: the files are not under ``root``.
        MissingDependencyError: another data set, and torchvision does not import.

    Example:
        >>> ds = load_torchvision_dataset("MNIST", "~/data", train=False)  # doctest: +SKIP
        >>> tuple(ds.images.shape)  # doctest: +SKIP
        (10000, 1, 28, 28)
    """
    from convscope.data._bundled import DIGITS, FASHION
    from convscope.data._files import load_cifar_batches, load_mnist_idx

    base = Path(os.path.expanduser(os.fspath(root)))
    key = name.replace("-", "").replace("_", "").lower()
    idx_sets = {"mnist": ("MNIST", DIGITS), "fashionmnist": ("FashionMNIST", FASHION), "kmnist": ("KMNIST", _KMNIST)}
    if key in idx_sets:
        folder, names = idx_sets[key]
        prefix = "train" if train else "t10k"
        raw = base / folder / "raw"
        images, labels = _first(raw, f"{prefix}-images-idx3-ubyte"), _first(raw, f"{prefix}-labels-idx1-ubyte")
        if images is None or labels is None:
            raise DataError(
                f"no {folder} files under {os.fspath(raw)!r} (expected {prefix}-images-idx3-ubyte[.gz] and "
                f"{prefix}-labels-idx1-ubyte[.gz]); download them once with torchvision.datasets.{folder}(root, download=True)"
            )
        ds = load_mnist_idx(images, labels, class_names=names)
    elif key in ("cifar10", "cifar100"):
        folder_name = "cifar-10-batches-py" if key == "cifar10" else "cifar-100-python"
        batches = base / folder_name
        if not batches.is_dir():
            raise DataError(
                f"no {folder_name} folder under {os.fspath(base)!r}; download it once with "
                f"torchvision.datasets.{name.upper()}(root, download=True) or extract the 'python version' archive there"
            )
        ds = load_cifar_batches(batches, split="train" if train else "test")
    else:
        ds = _through_torchvision(name, base, train=train, limit=limit)
    ds.name = f"{name}[{'train' if train else 'test'}]"
    if limit is not None and limit < len(ds):
        import torch

        ds = ds.subset(torch.arange(limit), suffix=f":{limit}")
    return ds


def _first(folder: Path, stem: str) -> Path | None:
    for suffix in ("", ".gz"):
        if (folder / (stem + suffix)).is_file():
            return folder / (stem + suffix)
    return None


def _through_torchvision(name: str, root: Path, *, train: bool, limit: int | None) -> Dataset:
    from convscope._optional import require

    datasets = require("torchvision.datasets", feature=f"the torchvision data set {name!r}", extra="data", pip_hint="pip install torchvision")
    cls = getattr(datasets, name, None)
    if not isinstance(cls, type):
        raise DataError(f"torchvision.datasets has no data set {name!r}; see torchvision's documentation for the class names")
    attempts: list[dict[str, Any]] = [{"train": train}, {"split": "train" if train else "test"}]
    last: Exception | None = None
    for kwargs in attempts:
        try:
            dataset = cls(os.fspath(root), download=False, **kwargs)
            break
        except TypeError as exc:  # this class takes the other keyword
            last = exc
        except (RuntimeError, OSError, ValueError) as exc:  # torchvision's "Dataset not found"
            raise DataError(
                f"torchvision could not open {name} under {os.fspath(root)!r} ({exc}); convscope never downloads: "
                f"run torchvision.datasets.{name}(root, download=True) once yourself"
            ) from None
    else:
        raise DataError(f"torchvision.datasets.{name} takes neither train= nor split= ({last}); build it yourself and pass it to from_torchvision")
    return from_torchvision(dataset, limit=limit, name=name)


def from_torchvision(dataset: Any, *, limit: int | None = None, name: str | None = None) -> Dataset:
    """Turn any torchvision-style data set (``len`` and ``[i] -> (image, label)``) into a :class:`Dataset`.

    Images may be PIL images, ``C x H x W`` tensors or ``H x W [x C]`` arrays; byte values are
    scaled to ``[0, 1]``. All must have one size (give the data set a resize transform if not).
    ``dataset.classes`` becomes the class names where it exists.

    Example:
        >>> from PIL import Image
        >>> pairs = [(Image.new("L", (28, 28), 255), 3), (Image.new("L", (28, 28), 0), 1)]
        >>> ds = from_torchvision(pairs)
        >>> tuple(ds.images.shape), ds.labels.tolist()
        ((2, 1, 28, 28), [3, 1])
    """
    import numpy as np
    import torch

    n = len(dataset) if limit is None else min(limit, len(dataset))
    if n == 0:
        raise DataError("the data set is empty")
    images, labels = [], []
    for i in range(n):
        item = dataset[i]
        if not isinstance(item, (tuple, list)) or len(item) < 2:
            raise DataError(f"item {i} is a {type(item).__name__}, not an (image, label) pair")
        images.append(_as_chw(item[0], i))
        target = item[1]
        labels.append(int(target) if isinstance(target, (int, np.integer)) or (torch.is_tensor(target) and target.numel() == 1) else -1)
    shapes = {tuple(x.shape) for x in images}
    if len(shapes) > 1:
        raise DataError(f"the images have {len(shapes)} different shapes ({', '.join(map(str, sorted(shapes)[:3]))}); add a resize transform")
    classes: Sequence[Any] | None = getattr(dataset, "classes", None)
    names = tuple(str(c) for c in classes) if classes else tuple(str(i) for i in range(max(labels) + 1)) if max(labels) >= 0 else ()
    return Dataset(images=torch.stack(images), labels=torch.tensor(labels, dtype=torch.int64), class_names=names, name=name or type(dataset).__name__)


def _as_chw(img: Any, index: int) -> Any:
    import numpy as np
    import torch
    from PIL import Image

    if isinstance(img, Image.Image):
        from convscope.data._images import _to_array

        arr = _to_array(img, [], background=0.0)
        t = torch.from_numpy(np.ascontiguousarray(arr))
        return t.unsqueeze(0) if t.dim() == 2 else t.permute(2, 0, 1).contiguous()
    if torch.is_tensor(img):
        t = img.detach().cpu()
        if t.dim() == 2:
            t = t.unsqueeze(0)
    elif isinstance(img, np.ndarray):
        t = torch.from_numpy(np.ascontiguousarray(img))
        t = t.unsqueeze(0) if t.dim() == 2 else t.permute(2, 0, 1) if t.dim() == 3 else t
    else:
        raise DataError(f"item {index}: the image is a {type(img).__name__}; expected a PIL image, tensor or array")
    if t.dim() != 3:
        raise DataError(f"item {index}: image of shape {tuple(t.shape)}; expected C x H x W")
    if t.dtype == torch.uint8:
        return t.to(torch.float32) / 255.0
    return t.to(torch.float32).contiguous()

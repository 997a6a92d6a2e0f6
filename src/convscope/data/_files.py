"""A user's own data files: MNIST IDX, CIFAR batches, folders of images. Nothing executes."""

from __future__ import annotations

import gzip
import io
import os
import pickle
from pathlib import Path
from typing import Any

from convscope.data._registry import Dataset
from convscope.errors import DataError

__all__ = ["load_cifar_batches", "load_image_folder", "load_mnist_idx"]

_IDX_TYPES = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _read(path: str | os.PathLike[str]) -> bytes:
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p} does not exist or is not a file")
    data = p.read_bytes()
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def _idx(path: str | os.PathLike[str]) -> Any:
    import numpy as np

    data = _read(path)
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
        raise DataError(f"{Path(path).name} is not an IDX file (bad magic number)")
    ndim = data[3]
    if ndim < 1 or len(data) < 4 + 4 * ndim:
        raise DataError(f"{Path(path).name}: truncated IDX header")
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    dtype = np.dtype(_IDX_TYPES[data[2]])
    count = int(np.prod(dims))
    body = data[4 + 4 * ndim :]
    if len(body) != count * dtype.itemsize:
        raise DataError(f"{Path(path).name}: IDX header says {dims} ({count * dtype.itemsize} bytes) but {len(body)} follow")
    return np.frombuffer(body, dtype=dtype).reshape(dims)


def load_mnist_idx(images: str | os.PathLike[str], labels: str | os.PathLike[str] | None = None) -> Dataset:
    """MNIST-style IDX files (``train-images-idx3-ubyte[.gz]`` and the labels file).

    Example:
        >>> # load_mnist_idx("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")
    """
    import numpy as np
    import torch

    x = _idx(images)
    if x.ndim != 3:
        raise DataError(f"{Path(images).name}: expected N x H x W images, got {x.shape}")
    scale = 255.0 if x.dtype == np.uint8 else 1.0
    tensor = torch.from_numpy(x.astype(np.float32) / scale).unsqueeze(1)
    if labels is None:
        y = torch.full((x.shape[0],), -1, dtype=torch.int64)
    else:
        lab = _idx(labels)
        if lab.ndim != 1 or lab.shape[0] != x.shape[0]:
            raise DataError(f"{Path(labels).name}: {lab.shape[0]} labels for {x.shape[0]} images")
        y = torch.from_numpy(lab.astype(np.int64))
    return Dataset(images=tensor, labels=y, class_names=tuple(str(i) for i in range(10)), name=Path(images).name)


class _SafeUnpickler(pickle.Unpickler):
    """Only what CIFAR batches hold: dicts, lists, strings, bytes, numbers and numpy arrays."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise DataError(f"refused to unpickle {module}.{name}: a CIFAR batch holds only arrays, lists and labels")


def _cifar_batch(path: Path) -> dict[Any, Any]:
    try:
        obj = _SafeUnpickler(io.BytesIO(path.read_bytes()), encoding="bytes").load()
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"{path.name} is not a readable CIFAR batch ({type(exc).__name__}: {exc})") from None
    if not isinstance(obj, dict):
        raise DataError(f"{path.name} is not a CIFAR batch (a dict of data and labels)")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()}


def load_cifar_batches(path: str | os.PathLike[str]) -> Dataset:
    """CIFAR-10/100 "python version" batches: one batch file, or a folder of ``data_batch_*``/``test_batch``
    (CIFAR-10) or ``train``/``test`` (CIFAR-100). Unpickled with a restricted unpickler: no code runs."""
    import numpy as np
    import torch

    p = Path(path)
    files = [p] if p.is_file() else sorted(f for f in p.glob("*") if f.name.startswith(("data_batch", "test_batch", "train", "test")) and f.is_file())
    if not files:
        raise DataError(f"no CIFAR batch files in {p}")
    xs, ys = [], []
    for f in files:
        batch = _cifar_batch(f)
        data = batch.get("data")
        labels = batch.get("labels", batch.get("fine_labels"))
        if data is None or labels is None:
            raise DataError(f"{f.name}: no 'data' and 'labels' (or 'fine_labels') in the batch")
        data = np.asarray(data, dtype=np.uint8)
        if data.ndim != 2 or data.shape[1] != 3072:
            raise DataError(f"{f.name}: expected N x 3072 pixel rows, got {data.shape}")
        xs.append(data.reshape(-1, 3, 32, 32))
        ys.append(np.asarray(labels, dtype=np.int64))
    x = torch.from_numpy(np.concatenate(xs).astype(np.float32) / 255.0)
    y = torch.from_numpy(np.concatenate(ys))
    from convscope.data._bundled import CIFAR10

    names = CIFAR10 if int(y.max()) < 10 else tuple(str(i) for i in range(100))
    return Dataset(images=x, labels=y, class_names=names, name=p.name)


def load_image_folder(path: str | os.PathLike[str], *, size: tuple[int, int] | None = None) -> Dataset:
    """A folder with one subfolder per class (``root/cat/1.png``), like torchvision's ImageFolder.

    Images of different sizes are resized to ``size`` (default: the first image's size).
    """
    import torch
    import torch.nn.functional as F

    from convscope.data._images import load_image

    root = Path(path)
    if not root.is_dir():
        raise DataError(f"{root} is not a folder")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir())
    if not classes:
        raise DataError(f"{root} has no class subfolders (expected root/<class>/<image>)")
    images, labels = [], []
    for label, name in enumerate(classes):
        for f in sorted((root / name).iterdir()):
            if f.suffix.lower() not in (".png", ".jpg", ".jpeg", ".bmp", ".gif"):
                continue
            x = load_image(f)
            if x.shape[1] == 1:
                x = x.expand(-1, 3, -1, -1)
            target = size or (images[0].shape[-2:] if images else x.shape[-2:])
            if tuple(x.shape[-2:]) != tuple(target):
                x = F.interpolate(x, size=tuple(target), mode="bilinear", antialias=True, align_corners=False)
            images.append(x[0])
            labels.append(label)
    if not images:
        raise DataError(f"no images (.png .jpg .jpeg .bmp .gif) under {root}")
    return Dataset(images=torch.stack(images), labels=torch.tensor(labels), class_names=tuple(classes), name=root.name)

"""A user's own data files: MNIST IDX, CIFAR batches, folders of images. Nothing executes."""

from __future__ import annotations

import gzip
import io
import os
import pickle
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from convscope.data._registry import Dataset
from convscope.errors import DataError

if TYPE_CHECKING:
    import numpy as np

    from convscope.models._spec import InputSpec

__all__ = ["IMAGE_SUFFIXES", "MAX_FILE_BYTES", "load_cifar_batches", "load_image_folder", "load_mnist_idx"]

#: the most bytes one data file may hold after gunzip (full MNIST training images: 47 MB)
MAX_FILE_BYTES = 4 * 1024**3
#: the image files load_image_folder picks up
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")

# IDX type byte -> numpy dtype (big-endian), from the format's description on the MNIST page
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _read(path: str | os.PathLike[str], *, what: str) -> bytes:
    """The file's bytes, gunzipped if it is gzip (recognised by its magic, not its name)."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{what} {os.fspath(p)!r} does not exist or is not a file")
    with p.open("rb") as fh:
        head = fh.read(2)
        fh.seek(0)
        if head != b"\x1f\x8b":
            return fh.read()
        try:
            with gzip.GzipFile(fileobj=fh) as gz:
                data = gz.read(MAX_FILE_BYTES + 1)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{p.name} is a damaged gzip file ({exc}); download it again") from None
    if len(data) > MAX_FILE_BYTES:
        raise DataError(f"{p.name} unpacks to more than {MAX_FILE_BYTES:,} bytes; that is no data file convscope reads")
    return data


def _idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Parse an IDX file: 2 zero bytes, a type byte, a dimension count, big-endian uint32 sizes, data."""
    import numpy as np

    name = Path(path).name
    data = _read(path, what="IDX file")
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
        raise DataError(
            f"{name} is not an IDX file (bad magic number {data[:4].hex() or 'none'}: expected 00 00, a type byte "
            "08/09/0B/0C/0D/0E and a dimension count); MNIST files are named like train-images-idx3-ubyte.gz"
        )
    ndim = data[3]
    if ndim < 1 or len(data) < 4 + 4 * ndim:
        raise DataError(f"{name}: truncated IDX header ({ndim} dimensions, {len(data)} bytes); the file is damaged")
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    dtype = np.dtype(_IDX_TYPES[data[2]])
    expected = int(np.prod(dims, dtype=object)) * dtype.itemsize
    body = memoryview(data)[4 + 4 * ndim :]
    if len(body) != expected:
        raise DataError(
            f"{name}: the IDX header says {' x '.join(map(str, dims))} values ({expected:,} bytes) but {len(body):,} bytes "
            "follow; the file is truncated or damaged"
        )
    return np.frombuffer(body, dtype=dtype).reshape(dims)


def load_mnist_idx(
    images_path: str | os.PathLike[str],
    labels_path: str | os.PathLike[str] | None = None,
    *,
    class_names: Sequence[str] | None = None,
) -> Dataset:
    """MNIST-style IDX files: ``train-images-idx3-ubyte[.gz]`` and its labels file.

    Works for MNIST, Fashion-MNIST and KMNIST files alike (raw or gzip). Images must be
    ``N x H x W`` uint8 (scaled to ``[0, 1]``) or float in ``[0, 1]``; labels ``N`` integers.

    Args:
        images_path: the images file.
        labels_path: the labels file; without it every label is ``-1``.
        class_names: names for the labels (default ``"0"``, ``"1"`` ...; for Fashion-MNIST pass
            ``convscope.data.FASHION``).

    Raises:
        DataError: a missing file, a bad magic number, a header that does not match the data,
            or labels that do not match the images.

    Example:
        >>> ds = load_mnist_idx("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")  # doctest: +SKIP
        >>> tuple(ds.images.shape)  # doctest: +SKIP
        (10000, 1, 28, 28)
    """
    import numpy as np
    import torch

    x = _idx(images_path)
    name = Path(images_path).name
    if x.ndim != 3 or x.shape[0] == 0:
        raise DataError(f"{name}: expected N x H x W images, got {' x '.join(map(str, x.shape))}; is this the labels file?")
    if x.dtype == np.uint8:
        images = torch.from_numpy(x.astype(np.float32) / np.float32(255.0))
    elif x.dtype.kind == "f" and np.isfinite(x).all() and x.min() >= 0.0 and x.max() <= 1.0:
        images = torch.from_numpy(x.astype(np.float32))
    else:
        raise DataError(f"{name}: images must be unsigned bytes (0..255) or floats in [0, 1], got {x.dtype}")
    if labels_path is None:
        y = torch.full((x.shape[0],), -1, dtype=torch.int64)
    else:
        lab = _idx(labels_path)
        lname = Path(labels_path).name
        if lab.ndim != 1 or lab.shape[0] != x.shape[0]:
            raise DataError(f"{lname}: {' x '.join(map(str, lab.shape))} labels for {x.shape[0]} images; pass the matching labels file")
        if lab.dtype.kind == "f" or (lab < 0).any():
            raise DataError(f"{lname}: labels must be non-negative integers")
        y = torch.from_numpy(lab.astype(np.int64))
    n_classes = int(y.max()) + 1 if labels_path is not None else 10
    names = tuple(class_names) if class_names is not None else tuple(str(i) for i in range(max(10, n_classes)))
    if len(names) < n_classes:
        raise DataError(f"{len(names)} class names for labels up to {n_classes - 1}; pass one name per class")
    return Dataset(images=images.unsqueeze(1), labels=y, class_names=names, name=name)


def _safe_globals() -> dict[tuple[str, str], Any]:
    """The only callables a CIFAR batch may name: numpy's array/scalar rebuilders and str.encode."""
    import _codecs

    import numpy as np

    a = np.zeros(1, np.uint8)
    reconstruct, scalar, frombuffer = a.__reduce__()[0], np.uint8(0).__reduce__()[0], a.__reduce_ex__(5)[0]
    table: dict[tuple[str, str], Any] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype, ("_codecs", "encode"): _codecs.encode}
    for core in ("numpy.core", "numpy._core"):  # numpy 1 writes numpy.core, numpy 2 numpy._core
        table[(f"{core}.multiarray", "_reconstruct")] = reconstruct
        table[(f"{core}.multiarray", "scalar")] = scalar
        table[(f"{core}.numeric", "_frombuffer")] = frombuffer
    return table


class _SafeUnpickler(pickle.Unpickler):
    """Rebuilds only dicts, lists, tuples, strings, bytes, numbers and numpy arrays.

    ``find_class`` answers from a fixed table and never imports anything, so a pickle that
    names ``os.system`` or any other global is refused before anything runs.
    """

    def __init__(self, file: io.BytesIO, *, source: str) -> None:
        super().__init__(file, encoding="bytes")
        self._allowed = _safe_globals()
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise DataError(
                f"refused to unpickle {module}.{name} from {self._source}: a CIFAR batch holds only arrays, lists and "
                "labels, and this file would run code; do not use it"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise DataError(f"refused a persistent id in {self._source}: not a CIFAR batch")


def _unpickle(path: Path) -> dict[str, Any]:
    try:
        obj = _SafeUnpickler(io.BytesIO(_read(path, what="CIFAR batch")), source=path.name).load()
    except DataError:
        raise
    except Exception as exc:  # any malformed pickle: the unpickler raises many kinds
        raise DataError(f"{path.name} is not a readable CIFAR batch ({type(exc).__name__}: {exc}); download it again") from None
    if not isinstance(obj, dict):
        raise DataError(f"{path.name} is not a CIFAR batch (expected a dict of data and labels, got {type(obj).__name__})")
    return {k.decode("latin1") if isinstance(k, bytes) else str(k): v for k, v in obj.items()}


_SPLITS = {"train": ("data_batch", "train"), "test": ("test_batch", "test")}


def load_cifar_batches(
    path: str | os.PathLike[str],
    *,
    split: Literal["all", "train", "test"] = "all",
    label_kind: Literal["fine", "coarse"] = "fine",
) -> Dataset:
    """CIFAR-10/100 "python version" batches, read with a restricted unpickler: no code runs.

    Args:
        path: one batch file, or the extracted folder (``cifar-10-batches-py`` with
            ``data_batch_1..5``/``test_batch``, or ``cifar-100-python`` with ``train``/``test``).
        split: from a folder, ``"train"``, ``"test"`` or ``"all"`` (train first).
        label_kind: CIFAR-100's ``"fine"`` (100) or ``"coarse"`` (20) labels.

    Class names come from the folder's ``batches.meta``/``meta`` where present, else CIFAR-10's
    names for 10 classes and indices for CIFAR-100.

    Raises:
        DataError: no batch files, a pickle that names anything but numpy arrays (refused before
            it runs), or batches of the wrong shape.

    Example:
        >>> ds = load_cifar_batches("cifar-10-batches-py", split="test")  # doctest: +SKIP
        >>> tuple(ds.images.shape), ds.class_names[:2]  # doctest: +SKIP
        ((10000, 3, 32, 32), ('airplane', 'automobile'))
    """
    import numpy as np
    import torch

    from convscope.data._bundled import CIFAR10

    if split not in ("all", "train", "test"):
        raise DataError(f"split must be 'all', 'train' or 'test', got {split!r}")
    if label_kind not in ("fine", "coarse"):
        raise DataError(f"label_kind must be 'fine' or 'coarse', got {label_kind!r}")
    p = Path(path)
    if p.is_file():
        files, folder = [p], p.parent
    elif p.is_dir():
        wanted = [_SPLITS["train"], _SPLITS["test"]] if split == "all" else [_SPLITS[split]]
        files = [f for prefixes in wanted for f in sorted(p.iterdir()) if f.is_file() and f.name.startswith(prefixes)]
        folder = p
    else:
        raise DataError(f"{os.fspath(p)!r} does not exist; pass a CIFAR batch file or the extracted cifar-10-batches-py folder")
    if not files:
        raise DataError(f"no CIFAR batch files ({split}) in {os.fspath(p)!r}: expected data_batch_*/test_batch or train/test")
    xs, ys, kind = [], [], None
    for f in files:
        batch = _unpickle(f)
        data = batch.get("data")
        key = "labels" if "labels" in batch else f"{label_kind}_labels"
        labels = batch.get(key)
        if data is None or labels is None:
            raise DataError(f"{f.name}: no 'data' and 'labels' (or 'fine_labels'/'coarse_labels') in the batch; is it a CIFAR batch?")
        data = np.asarray(data)
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
            raise DataError(f"{f.name}: expected N x 3072 uint8 pixel rows, got {data.shape} {data.dtype}")
        labels = np.asarray(labels)
        if labels.ndim != 1 or labels.shape[0] != data.shape[0] or labels.dtype.kind not in "iu" or (labels < 0).any():
            raise DataError(
                f"{f.name}: {' x '.join(map(str, labels.shape))} labels for {data.shape[0]} images; "
                "a batch needs one non-negative integer label per image"
            )
        xs.append(data.reshape(-1, 3, 32, 32))
        ys.append(labels.astype(np.int64))
        kind = kind or key
    x = torch.from_numpy(np.concatenate(xs).astype(np.float32) / np.float32(255.0))
    y = torch.from_numpy(np.concatenate(ys))
    names = _cifar_names(folder, kind or "labels")
    if names is None:
        count = 10 if kind == "labels" else 20 if kind == "coarse_labels" else 100
        names = CIFAR10 if count == 10 else tuple(str(i) for i in range(count))
    if int(y.max()) >= len(names):
        raise DataError(f"labels go up to {int(y.max())} but there are {len(names)} classes; is this a CIFAR batch?")
    return Dataset(images=x, labels=y, class_names=names, name=p.name)


def _cifar_names(folder: Path, kind: str) -> tuple[str, ...] | None:
    """Class names from ``batches.meta`` (CIFAR-10) or ``meta`` (CIFAR-100), if the folder has them."""
    key = {"labels": "label_names", "fine_labels": "fine_label_names", "coarse_labels": "coarse_label_names"}[kind]
    for meta in ("batches.meta", "meta"):
        f = folder / meta
        if f.is_file():
            names = _unpickle(f).get(key)
            if isinstance(names, list) and names:
                return tuple(n.decode("utf-8", "replace") if isinstance(n, bytes) else str(n) for n in names)
    return None


def load_image_folder(
    path: str | os.PathLike[str],
    *,
    spec: InputSpec | tuple[int, ...] | None = None,
    size: tuple[int, int] | None = None,
) -> Dataset:
    """A folder with one subfolder per class (``root/cat/1.png``), like torchvision's ImageFolder.

    Classes are the subfolder names, sorted; images are found at any depth below them
    (``.png .jpg .jpeg .bmp .gif .webp``; hidden files are skipped).

    Args:
        path: the root folder.
        spec: fit every image to a model's input (size and channels, not normalised).
        size: else resize every image to ``(H, W)``; by default to the first image's size.
            Without ``spec`` images are grey if every file is grey, else RGB.

    Example:
        >>> ds = load_image_folder("my_images")  # doctest: +SKIP
        >>> ds.class_names, ds.sample_names[0]  # doctest: +SKIP
        (('cats', 'dogs'), 'cats/1.png')
    """
    import torch

    from convscope.data._images import load_image
    from convscope.data._transforms import fit_to_spec

    root = Path(path)
    if not root.is_dir():
        raise DataError(f"{os.fspath(root)!r} is not a folder; pass a folder with one subfolder per class")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise DataError(f"{os.fspath(root)!r} has no class subfolders: put images in root/<class>/<image>.png")
    files: list[tuple[int, Path]] = []
    for label, cls in enumerate(classes):
        for f in sorted((root / cls).rglob("*")):
            rel = f.relative_to(root / cls)
            if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES and not any(part.startswith(".") for part in rel.parts):
                files.append((label, f))
    if not files:
        raise DataError(f"no images ({' '.join(IMAGE_SUFFIXES)}) under the class subfolders of {os.fspath(root)!r}")
    loaded = [load_image(f, spec=spec) for _, f in files]
    if spec is None:
        channels = 3 if any(x.shape[0] == 3 for x in loaded) else 1
        h, w = size if size is not None else tuple(loaded[0].shape[1:])
        loaded = [fit_to_spec(x, (channels, int(h), int(w)))[0] for x in loaded]
    return Dataset(
        images=torch.stack(loaded),
        labels=torch.tensor([label for label, _ in files], dtype=torch.int64),
        class_names=tuple(classes),
        name=root.name,
        sample_names=tuple(f.relative_to(root).as_posix() for _, f in files),
    )

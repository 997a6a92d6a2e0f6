"""A user's own data files: MNIST IDX, CIFAR batches, folders of images. Nothing executes."""

from __future__ import annotations

import contextlib
import gzip
import io
import math
import os
import pickle
import re
import warnings
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal, cast

from convscope._progress import progress_ticks
from convscope.data._registry import Dataset
from convscope.errors import DataError

if TYPE_CHECKING:
    import numpy as np

    from convscope.models._spec import InputSpec

__all__ = ["IMAGE_SUFFIXES", "MAX_CLASSES", "MAX_FILE_BYTES", "PROGRESS_FROM", "load_cifar_batches", "load_image_folder", "load_mnist_idx"]

#: the most bytes one data file may hold after gunzip (full MNIST training images: 47 MB)
MAX_FILE_BYTES = 4 * 1024**3
#: the image files load_image_folder picks up
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
#: the most classes convscope names ("0", "1" ...) itself; labels beyond mean a damaged file
MAX_CLASSES = 100_000
#: load_image_folder draws a progress bar by itself from this many images on
PROGRESS_FROM = 1000

# how much _read_upto reads at a time
_CHUNK = 1024**2
# IDX type byte -> numpy dtype (big-endian), from the format's description on the MNIST page
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


@contextlib.contextmanager
def _open(path: str | os.PathLike[str], *, what: str) -> Iterator[BinaryIO]:
    """The file as a stream, gunzipped if it is gzip (recognised by its magic, not its name).

    A damaged gzip stream raises :class:`DataError` where it is read, so callers read only what
    they need: a small file that unpacks to gigabytes costs no more than the caller asks for.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{what} {os.fspath(p)!r} does not exist or is not a file")
    with p.open("rb") as fh:
        head = fh.read(2)
        fh.seek(0)
        if head != b"\x1f\x8b":
            yield fh
            return
        try:
            with gzip.GzipFile(fileobj=fh) as gz:
                yield cast("BinaryIO", gz)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{_shown(p.name)} is a damaged gzip file ({exc}); download it again") from None


def _read(path: str | os.PathLike[str], *, what: str) -> bytes:
    """The file's bytes, gunzipped if it is gzip, at most :data:`MAX_FILE_BYTES` of them."""
    with _open(path, what=what) as fh:
        data = _read_upto(fh, MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise DataError(f"{_shown(Path(path).name)} holds more than {MAX_FILE_BYTES:,} bytes; that is no data file convscope reads")
    return data


def _read_upto(fh: BinaryIO, limit: int) -> bytes:
    """Up to ``limit`` bytes, read in pieces: ``read(n)`` sets ``n`` bytes aside before it reads,
    so one read of a limit would ask for gigabytes for every small or lying file."""
    chunks, size = [], 0
    while size < limit and (chunk := fh.read(min(_CHUNK, limit - size))):
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _shown(name: str) -> str:
    """A file name as text that can be printed and sent as JSON.

    On POSIX a name that is not UTF-8 arrives with lone surrogates (``os.fsdecode``), which
    ``print``, ``str.encode`` and JSON responses refuse; its undecodable bytes become U+FFFD.
    """
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Parse an IDX file: 2 zero bytes, a type byte, a dimension count, big-endian uint32 sizes, data.

    The header is read first and then only the bytes it promises (and one more, to tell a longer
    file): neither a lying header nor a gzip bomb makes convscope allocate more than that.
    """
    import numpy as np

    name = _shown(Path(path).name)
    with _open(path, what="IDX file") as fh:
        head = fh.read(4)
        if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] not in _IDX_TYPES:
            raise DataError(
                f"{name} is not an IDX file (bad magic number {head.hex() or 'none'}: expected 00 00, a type byte "
                "08/09/0B/0C/0D/0E and a dimension count); MNIST files are named like train-images-idx3-ubyte.gz"
            )
        ndim = head[3]
        sizes = fh.read(4 * ndim)
        if ndim < 1 or len(sizes) < 4 * ndim:
            raise DataError(f"{name}: truncated IDX header ({ndim} dimensions, {4 + len(sizes)} bytes); the file is damaged")
        dims = [int.from_bytes(sizes[4 * i : 4 + 4 * i], "big") for i in range(ndim)]
        dtype = np.dtype(_IDX_TYPES[head[2]])
        expected = math.prod(dims) * dtype.itemsize
        promised = f"the IDX header says {' x '.join(map(str, dims))} values ({expected:,} bytes)"
        if expected > MAX_FILE_BYTES:
            raise DataError(f"{name}: {promised}, more than any data file convscope reads ({MAX_FILE_BYTES:,}); the header is damaged")
        body = _read_upto(fh, expected + 1)
    if len(body) != expected:
        found = f"{len(body):,} bytes follow" if len(body) < expected else "more bytes follow"
        raise DataError(f"{name}: {promised} but {found}; the file is truncated or damaged")
    return np.frombuffer(body, dtype=dtype).reshape(dims)


def load_mnist_idx(
    images_path: str | os.PathLike[str],
    labels_path: str | os.PathLike[str] | None = None,
    *,
    class_names: Sequence[str] | None = None,
) -> Dataset:
    """MNIST-style IDX files: ``train-images-idx3-ubyte[.gz]`` and its labels file.

    Works for MNIST, Fashion-MNIST and KMNIST files alike (raw or gzip). Images must be
    ``N x H x W`` (grey), ``N x H x W x C`` or ``N x C x H x W`` (``C`` 1 or 3), uint8 (scaled
    to ``[0, 1]``) or float in ``[0, 1]``; labels ``N`` non-negative integers.

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
    name = _shown(Path(images_path).name)
    if x.size == 0:
        raise DataError(f"{name}: the IDX header says {' x '.join(map(str, x.shape))}: no pixels; the file is damaged")
    if x.ndim == 4 and x.shape[3] in (1, 3):
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))  # N x H x W x C: pixel by pixel, as image files store them
    elif x.ndim == 3:
        x = x[:, None]
    elif not (x.ndim == 4 and x.shape[1] in (1, 3)):
        hint = "; is this the labels file?" if x.ndim < 3 else ""
        raise DataError(
            f"{name}: expected N x H x W images (or N x H x W x C, N x C x H x W with 1 or 3 channels), "
            f"got {' x '.join(map(str, x.shape))}{hint}"
        )
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
        lname = _shown(Path(labels_path).name)
        if lab.ndim != 1 or lab.shape[0] != x.shape[0]:
            raise DataError(f"{lname}: {' x '.join(map(str, lab.shape))} labels for {x.shape[0]} images; pass the matching labels file")
        if lab.dtype.kind == "f" or (lab < 0).any():
            raise DataError(f"{lname}: labels must be non-negative integers")
        y = torch.from_numpy(lab.astype(np.int64))
    n_classes = int(y.max()) + 1 if labels_path is not None else 10
    if class_names is None and n_classes > MAX_CLASSES:
        raise DataError(
            f"labels go up to {n_classes - 1:,}: more classes than convscope names by itself ({MAX_CLASSES:,}), "
            "so the labels file is likely damaged; if they are right, pass class_names="
        )
    names = tuple(class_names) if class_names is not None else tuple(str(i) for i in range(max(10, n_classes)))
    if len(names) < n_classes:
        raise DataError(f"{len(names)} class names for labels up to {n_classes - 1}; pass one name per class")
    return Dataset(images=images, labels=y, class_names=names, name=name)


def _safe_globals() -> dict[tuple[str, str], Any]:
    """The only callables a CIFAR batch may name: numpy's array/scalar rebuilders, str.encode, bytes()."""
    import _codecs

    import numpy as np

    a = np.zeros(1, np.uint8)
    reconstruct, scalar, frombuffer = a.__reduce__()[0], np.uint8(0).__reduce__()[0], a.__reduce_ex__(5)[0]
    table: dict[tuple[str, str], Any] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype, ("_codecs", "encode"): _codecs.encode}
    for core in ("numpy.core", "numpy._core"):  # numpy 1 writes numpy.core, numpy 2 numpy._core
        table[(f"{core}.multiarray", "_reconstruct")] = reconstruct
        table[(f"{core}.multiarray", "scalar")] = scalar
        table[(f"{core}.numeric", "_frombuffer")] = frombuffer
    for builtins in ("__builtin__", "builtins"):  # protocol 2 from Python 3 writes b"" as a call of bytes()
        table[(builtins, "bytes")] = _empty_bytes
    return table


def _empty_bytes(*args: Any) -> bytes:
    """``bytes()`` as pickle protocol 2 calls it for ``b""``; with arguments it could allocate at will."""
    if args:
        raise DataError("refused to unpickle bytes(...) with arguments: a CIFAR batch writes only b'' that way")
    return b""


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


# the batch files of each split, by their exact names (CIFAR-10's, then CIFAR-100's)
_SPLITS = {"train": re.compile(r"data_batch_(\d+)|train"), "test": re.compile(r"test_batch|test")}


def _batch_files(folder: Path, split: str) -> list[Path]:
    """The batch files of ``split`` in ``folder``, ``data_batch_2`` before ``data_batch_10``.

    A gap in the numbered batches (an interrupted download or copy) is loaded, with a warning.
    """
    found: list[tuple[int, Path]] = []
    for f in folder.iterdir():
        m = _SPLITS[split].fullmatch(f.name)
        if m and f.is_file():
            found.append((int(m.group(1)) if m.groups() and m.group(1) else 0, f))
    numbers = [n for n, _ in found if n]
    missing = sorted(set(range(1, max(numbers, default=0) + 1)) - set(numbers))
    if missing:
        warnings.warn(
            f"{_shown(folder.name)} has no {', '.join(f'data_batch_{n}' for n in missing)}: only {len(numbers)} of "
            f"{max(numbers)} training batches are loaded; copy the missing ones from the archive again",
            UserWarning,
            stacklevel=3,
        )
    return [f for _, f in sorted(found, key=lambda item: (item[0], item[1].name))]


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
        files = []
        for part in ("train", "test") if split == "all" else (split,):
            files += _batch_files(p, part)
        folder = p
    else:
        raise DataError(f"{os.fspath(p)!r} does not exist; pass a CIFAR batch file or the extracted cifar-10-batches-py folder")
    if not files:
        raise DataError(f"no CIFAR batch files ({split}) in {os.fspath(p)!r}: expected data_batch_1 ... data_batch_5 and test_batch, or train and test")
    xs, ys, kind = [], [], None
    for f in files:
        batch = _unpickle(f)
        data = batch.get("data")
        key = "labels" if "labels" in batch else f"{label_kind}_labels"
        labels = batch.get(key)
        if data is None or labels is None:
            has = [k for k in ("labels", "fine_labels", "coarse_labels") if k in batch]
            if data is not None and has:
                raise DataError(f"{_shown(f.name)}: no {key!r} in the batch, which has {' and '.join(has)}: pass label_kind= to match")
            raise DataError(f"{_shown(f.name)}: no 'data' and 'labels' (or 'fine_labels'/'coarse_labels') in the batch; is it a CIFAR batch?")
        data = np.asarray(data)
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
            raise DataError(f"{_shown(f.name)}: expected N x 3072 uint8 pixel rows (32x32 RGB), got {data.shape} {data.dtype}")
        labels = np.asarray(labels)
        if labels.ndim != 1 or labels.shape[0] != data.shape[0]:
            raise DataError(
                f"{_shown(f.name)}: {' x '.join(map(str, labels.shape))} labels for {data.shape[0]} images; "
                "a batch needs one label per image"
            )
        if labels.size and (labels.dtype.kind not in "iu" or (labels < 0).any()):
            raise DataError(f"{_shown(f.name)}: the labels are {labels.dtype} values; a batch needs non-negative integer labels")
        xs.append(data.reshape(-1, 3, 32, 32))
        ys.append(labels.astype(np.int64))
        kind = kind or key
    x = torch.from_numpy(np.concatenate(xs).astype(np.float32) / np.float32(255.0))
    y = torch.from_numpy(np.concatenate(ys))
    if len(y) == 0:
        raise DataError(f"the CIFAR batches in {_shown(os.fspath(p))!r} hold no images")
    names = _cifar_names(folder, kind or "labels")
    if names is None:
        count = 10 if kind == "labels" else 20 if kind == "coarse_labels" else 100
        names = CIFAR10 if count == 10 else tuple(str(i) for i in range(count))
    if int(y.max()) >= len(names):
        raise DataError(f"labels go up to {int(y.max())} but there are {len(names)} classes; is this a CIFAR batch?")
    return Dataset(images=x, labels=y, class_names=names, name=_shown(p.name))


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
    fit: Literal["stretch", "crop", "pad"] = "stretch",
    background: float = 0.0,
    progress: bool | Callable[[int, int], None] | None = None,
) -> Dataset:
    """A folder with one subfolder per class (``root/cat/1.png``), like torchvision's ImageFolder.

    Classes are the subfolder names, sorted (a class folder without images keeps its label);
    images are found at any depth below them (``.png .jpg .jpeg .bmp .gif .webp``; hidden files
    and folders are skipped, and symbolic links to folders inside a class are not followed).

    Args:
        path: the root folder.
        spec: fit every image to a model's input (size and channels, not normalised).
        size: else resize every image to ``(H, W)``; by default to the first image's size.
            Without ``spec`` images are grey if every file is grey, else RGB.
        fit: how an image of another aspect ratio meets that size: ``"stretch"``, ``"crop"``
            (centre) or ``"pad"`` (with ``background``), as :func:`~convscope.data.load_image`.
        background: grey level of transparent pixels and of ``fit="pad"`` borders.
        progress: ``True`` draws a progress bar on stderr, ``False`` none; ``None`` (default)
            draws one from :data:`PROGRESS_FROM` (1,000) images on; a callable is called with
            ``(images loaded, images in all)`` instead.

    Each image is fitted as soon as it is decoded, so a folder of large photos needs memory for
    the fitted images only, plus one photo.

    Raises:
        DataError: no class subfolders, no images, or a file that is not a readable image (named).

    Example:
        >>> ds = load_image_folder("my_images", spec=(3, 32, 32), fit="crop")  # doctest: +SKIP
        >>> ds.class_names, ds.sample_names[0]  # doctest: +SKIP
        (('cats', 'dogs'), 'cats/1.png')
    """
    import torch

    from convscope.data._images import load_image
    from convscope.data._transforms import FIT_MODES, fit_to_spec

    root = Path(path)
    if not root.is_dir():
        raise DataError(f"{_shown(os.fspath(root))!r} is not a folder; pass a folder with one subfolder per class")
    if fit not in FIT_MODES:
        raise DataError(f"fit must be one of {', '.join(FIT_MODES)}, got {fit!r}")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise DataError(f"{_shown(os.fspath(root))!r} has no class subfolders: put images in root/<class>/<image>.png")
    files: list[tuple[int, Path]] = []
    for label, cls in enumerate(classes):
        for f in sorted((root / cls).rglob("*")):
            rel = f.relative_to(root / cls)
            if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES and not any(part.startswith(".") for part in rel.parts):
                files.append((label, f))
    if not files:
        raise DataError(f"no images ({' '.join(IMAGE_SUFFIXES)}) under the class subfolders of {_shown(os.fspath(root))!r}")
    loaded: list[torch.Tensor] = []
    with progress_ticks(progress, len(files), f"loading {_shown(root.name)}", unit="images", auto_from=PROGRESS_FROM) as tick:
        for _, f in files:
            x = load_image(f, spec=spec, fit=fit, background=background)
            if spec is None:  # fitted now to its own channels, made RGB below if any image is
                h, w = size if size is not None else tuple(loaded[0].shape[1:]) if loaded else tuple(x.shape[1:])
                x = fit_to_spec(x, (int(x.shape[0]), int(h), int(w)), fit=fit, background=background)[0]
            loaded.append(x)
            tick(len(loaded))
    if spec is None and any(x.shape[0] == 3 for x in loaded):
        loaded = [x.expand(3, -1, -1) for x in loaded]
    return Dataset(
        images=torch.stack(loaded),
        labels=torch.tensor([label for label, _ in files], dtype=torch.int64),
        class_names=tuple(_shown(c) for c in classes),
        name=_shown(root.name),
        sample_names=tuple(_shown(f.relative_to(root).as_posix()) for _, f in files),
    )



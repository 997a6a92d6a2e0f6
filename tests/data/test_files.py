"""A user's own files: IDX, CIFAR batches, image folders, torchvision's layouts; nothing unsafe runs."""

from __future__ import annotations

import contextlib
import gzip
import os
import pickle
import struct
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from convscope.data import (
    CIFAR10,
    FASHION,
    from_torchvision,
    load_cifar_batches,
    load_image_folder,
    load_mnist_idx,
    load_torchvision_dataset,
)
from convscope.errors import DataError, MissingDependencyError


def idx_bytes(array: np.ndarray) -> bytes:
    """IDX as the MNIST page describes it: 0, 0, type byte, ndim, big-endian uint32 sizes, big-endian data."""
    code = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(np.int16): 0x0B, np.dtype(np.int32): 0x0C, np.dtype(np.float32): 0x0D, np.dtype(np.float64): 0x0E}[array.dtype]
    head = struct.pack(">BBBB", 0, 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return head + array.astype(array.dtype.newbyteorder(">")).tobytes()


@pytest.fixture
def mnist_files(tmp_path: Path) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (7, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 7, dtype=np.uint8)
    (tmp_path / "img-idx3-ubyte").write_bytes(idx_bytes(images))
    (tmp_path / "lab-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(labels)))
    return tmp_path / "img-idx3-ubyte", tmp_path / "lab-idx1-ubyte.gz", images, labels


def test_mnist_idx_files_round_trip_raw_and_gzip(mnist_files: tuple[Path, Path, np.ndarray, np.ndarray], tmp_path: Path) -> None:
    img_path, lab_path, images, labels = mnist_files
    data = load_mnist_idx(img_path, lab_path)
    assert tuple(data.images.shape) == (7, 1, 28, 28) and data.images.dtype == torch.float32
    np.testing.assert_array_equal((data.images[:, 0] * 255).round().numpy().astype(np.uint8), images)
    assert data.labels.tolist() == labels.tolist() and data.class_names == tuple("0123456789")
    (tmp_path / "img.gz").write_bytes(gzip.compress(img_path.read_bytes()))  # gzip is known by its magic, not its name
    torch.testing.assert_close(load_mnist_idx(tmp_path / "img.gz").images, data.images, rtol=0, atol=0)
    assert load_mnist_idx(img_path).labels.tolist() == [-1] * 7
    fashion = load_mnist_idx(img_path, lab_path, class_names=FASHION)
    assert fashion.class_names[int(fashion.labels[0])] == FASHION[labels[0]]
    floats = np.random.default_rng(1).random((3, 5, 4)).astype(np.float32)  # type byte 0x0D
    (tmp_path / "f.idx").write_bytes(idx_bytes(floats))
    np.testing.assert_array_equal(load_mnist_idx(tmp_path / "f.idx").images[:, 0].numpy(), floats)


def test_bad_idx_files_give_clear_data_errors(mnist_files: tuple[Path, Path, np.ndarray, np.ndarray], tmp_path: Path) -> None:
    img_path, lab_path, images, _ = mnist_files
    good = img_path.read_bytes()
    cases = {
        "truncated.idx": (good[:100], "header says 7 x 28 x 28"),
        "magic.idx": (b"\x01\x02\x03\x04" + good[4:], "bad magic number 01020304"),
        "type.idx": (good[:2] + b"\x07" + good[3:], "bad magic"),
        "header.idx": (good[:10], "truncated IDX header"),
        "empty.idx": (b"", "bad magic number none"),
        "broken.gz": (gzip.compress(good)[:-30], "damaged gzip"),
    }
    for name, (data, message) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(DataError, match=message):
            load_mnist_idx(tmp_path / name)
    with pytest.raises(DataError, match="labels file"):
        load_mnist_idx(lab_path)  # the labels given as images
    (tmp_path / "few.idx").write_bytes(idx_bytes(np.arange(3, dtype=np.uint8)))
    with pytest.raises(DataError, match="3 labels for 7 images"):
        load_mnist_idx(img_path, tmp_path / "few.idx")
    (tmp_path / "wide.idx").write_bytes(idx_bytes(np.full((2, 3, 3), 7, dtype=np.int32)))
    with pytest.raises(DataError, match="unsigned bytes"):
        load_mnist_idx(tmp_path / "wide.idx")
    with pytest.raises(DataError, match="does not exist"):
        load_mnist_idx(tmp_path / "nope")


def _cifar10_folder(root: Path, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A cifar-10-batches-py folder as the real one is: pickles (protocol 2) of dicts with bytes keys."""
    root.mkdir()
    batches = {}
    for name, n in (("data_batch_1", 4), ("data_batch_2", 3), ("test_batch", 2)):
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, n).tolist()
        batch = {b"batch_label": name.encode(), b"labels": labels, b"data": data, b"filenames": [b"x.png"] * n}
        (root / name).write_bytes(pickle.dumps(batch, protocol=2))
        batches[name] = data
        batches[name + ":labels"] = np.array(labels)
    meta = {b"label_names": [n.encode() for n in CIFAR10], b"num_cases_per_batch": 10000, b"num_vis": 3072}
    (root / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    (root / "readme.html").write_text("<html></html>")
    return batches


def test_cifar10_batches_round_trip_with_splits_and_names(tmp_path: Path) -> None:
    batches = _cifar10_folder(tmp_path / "cifar-10-batches-py", np.random.default_rng(0))
    folder = tmp_path / "cifar-10-batches-py"
    train = load_cifar_batches(folder, split="train")
    expected = np.concatenate([batches["data_batch_1"], batches["data_batch_2"]])
    assert tuple(train.images.shape) == (7, 3, 32, 32)
    np.testing.assert_array_equal((train.images * 255).round().numpy().astype(np.uint8).reshape(7, -1), expected)
    assert train.labels.tolist() == batches["data_batch_1:labels"].tolist() + batches["data_batch_2:labels"].tolist()
    assert train.class_names == CIFAR10
    # the pixel layout is CIFAR's: 1024 red values, then green, then blue, each row-major
    first = batches["data_batch_1"][0]
    assert float(train.images[0, 1, 0, 5]) * 255 == pytest.approx(first[1024 + 5])
    assert len(load_cifar_batches(folder, split="test")) == 2 and len(load_cifar_batches(folder)) == 9
    single = load_cifar_batches(folder / "test_batch")
    np.testing.assert_array_equal((single.images * 255).round().numpy().astype(np.uint8).reshape(2, -1), batches["test_batch"])


def test_cifar100_fine_and_coarse_labels_with_names_from_meta(tmp_path: Path) -> None:
    root = tmp_path / "cifar-100-python"
    root.mkdir()
    rng = np.random.default_rng(1)
    data = rng.integers(0, 256, (5, 3072), dtype=np.uint8)
    fine, coarse = [99, 0, 42, 7, 3], [19, 4, 0, 1, 2]
    for split in ("train", "test"):
        batch = {b"data": data, b"fine_labels": fine, b"coarse_labels": coarse, b"filenames": [b"a.png"] * 5}
        (root / split).write_bytes(pickle.dumps(batch, protocol=2))
    fine_names = [f"fine{i}".encode() for i in range(100)]
    coarse_names = [f"coarse{i}".encode() for i in range(20)]
    (root / "meta").write_bytes(pickle.dumps({b"fine_label_names": fine_names, b"coarse_label_names": coarse_names}, protocol=2))
    ds = load_cifar_batches(root, split="test")
    assert ds.labels.tolist() == fine and ds.class_names[99] == "fine99" and len(ds.class_names) == 100
    ds = load_cifar_batches(root, split="train", label_kind="coarse")
    assert ds.labels.tolist() == coarse and ds.class_names[19] == "coarse19"
    (root / "meta").unlink()
    assert load_cifar_batches(root, split="test").class_names == tuple(str(i) for i in range(100))


class _RunsCode:
    """Pickles into a call of ``func(*args)``: what a tampered data file does to pickle.load."""

    def __init__(self, func: object, *args: object) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return (self.func, self.args)


@pytest.mark.parametrize("where", ["data", "labels", "top", "meta"])
@pytest.mark.parametrize("attack", ["os.system", "builtins.exec", "os.mkdir", "numpy.save"])
def test_a_malicious_cifar_pickle_is_refused_and_runs_nothing(tmp_path: Path, where: str, attack: str) -> None:
    marker = tmp_path / "pwned"
    evil = {
        "os.system": _RunsCode(os.system, f"touch {marker}"),
        "builtins.exec": _RunsCode(exec, f"import pathlib; pathlib.Path({str(marker)!r}).touch()"),
        "os.mkdir": _RunsCode(os.mkdir, str(marker)),
        "numpy.save": _RunsCode(np.save, str(marker), np.zeros(1)),
    }[attack]
    good = {b"data": np.zeros((1, 3072), np.uint8), b"labels": [0]}
    folder = tmp_path / "cifar"
    folder.mkdir()
    if where == "meta":
        (folder / "data_batch_1").write_bytes(pickle.dumps(good, protocol=2))
        (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [evil]}, protocol=2))
    else:
        payload = evil if where == "top" else {**good, where.encode(): evil}
        (folder / "data_batch_1").write_bytes(pickle.dumps(payload, protocol=2))
    with pytest.raises(DataError, match="refused to unpickle"):
        load_cifar_batches(folder)
    made = [marker, tmp_path / "pwned.npy"]
    assert not any(m.exists() for m in made)
    # the same file through the standard unpickler does run the attack: the test can tell
    attacked = folder / ("batches.meta" if where == "meta" else "data_batch_1")
    pickle.loads(attacked.read_bytes())  # noqa: S301  (on purpose, in a temporary folder)
    assert any(m.exists() for m in made)


def test_broken_cifar_batches_give_data_errors(tmp_path: Path) -> None:
    good = pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]}, protocol=2)
    cases = {
        "data_batch_1": (good[: len(good) // 2], "not a readable CIFAR batch"),
        "data_batch_2": (pickle.dumps([1, 2, 3], protocol=2), "expected a dict"),
        "data_batch_3": (pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, protocol=2), "3072"),
        "data_batch_4": (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8)}, protocol=2), "no 'data' and 'labels'"),
        "data_batch_5": (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, protocol=2), "1 labels for 2"),
    }
    for name, (blob, message) in cases.items():
        (tmp_path / name).write_bytes(blob)
        with pytest.raises(DataError, match=message):
            load_cifar_batches(tmp_path / name)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no CIFAR batch files"):
        load_cifar_batches(empty)


def test_image_folder_finds_classes_images_and_channels(tmp_path: Path) -> None:
    for cls, colour in (("cats", (255, 0, 0)), ("dogs", (0, 0, 255))):
        (tmp_path / cls / "deep").mkdir(parents=True)
        Image.new("RGB", (16, 16), colour).save(tmp_path / cls / "0.png")
        Image.new("RGB", (24, 16), colour).save(tmp_path / cls / "deep" / "1.jpg", quality=95)
        (tmp_path / cls / "notes.txt").write_text("not an image")
        Image.new("RGB", (16, 16), (0, 255, 0)).save(tmp_path / cls / ".hidden.png")
    ds = load_image_folder(tmp_path)
    assert ds.class_names == ("cats", "dogs") and ds.labels.tolist() == [0, 0, 1, 1]
    assert ds.sample_names == ("cats/0.png", "cats/deep/1.jpg", "dogs/0.png", "dogs/deep/1.jpg")
    assert tuple(ds.images.shape) == (4, 3, 16, 16)  # resized to the first image's size
    torch.testing.assert_close(ds.images[0, :, 8, 8], torch.tensor([1.0, 0.0, 0.0]))
    assert float(ds.images[3, 2].mean()) > 0.95 and float(ds.images[3, 0].mean()) < 0.05
    fitted = load_image_folder(tmp_path, spec=(1, 8, 8))
    assert tuple(fitted.images.shape) == (4, 1, 8, 8)
    assert float(fitted.images[0].mean()) == pytest.approx(0.299, abs=0.01)  # red's luma


def test_grey_folders_stay_grey_and_errors_say_the_layout(tmp_path: Path) -> None:
    for cls in ("a", "b"):
        (tmp_path / "grey" / cls).mkdir(parents=True)
        Image.new("L", (10, 10), 128).save(tmp_path / "grey" / cls / "x.png")
    ds = load_image_folder(tmp_path / "grey", size=(5, 6))
    assert tuple(ds.images.shape) == (2, 1, 5, 6)
    with pytest.raises(DataError, match="no class subfolders"):
        load_image_folder(tmp_path / "grey" / "a")
    (tmp_path / "blank" / "a").mkdir(parents=True)
    with pytest.raises(DataError, match="no images"):
        load_image_folder(tmp_path / "blank")
    with pytest.raises(DataError, match="not a folder"):
        load_image_folder(tmp_path / "missing")


def test_torchvision_layouts_load_without_torchvision(mnist_files: tuple[Path, Path, np.ndarray, np.ndarray], tmp_path: Path) -> None:
    img_path, lab_path, images, labels = mnist_files
    raw = tmp_path / "root" / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "t10k-images-idx3-ubyte").write_bytes(img_path.read_bytes())
    (raw / "t10k-labels-idx1-ubyte.gz").write_bytes(lab_path.read_bytes())
    ds = load_torchvision_dataset("FashionMNIST", tmp_path / "root", train=False, limit=5)
    assert len(ds) == 5 and ds.labels.tolist() == labels[:5].tolist() and ds.class_names == FASHION
    np.testing.assert_array_equal((ds.images[:, 0] * 255).round().numpy().astype(np.uint8), images[:5])
    with pytest.raises(DataError, match="download=True"):
        load_torchvision_dataset("FashionMNIST", tmp_path / "root", train=True)
    _cifar10_folder(tmp_path / "root" / "cifar-10-batches-py", np.random.default_rng(0))
    assert len(load_torchvision_dataset("CIFAR10", tmp_path / "root", train=False)) == 2
    with pytest.raises(DataError, match="cifar-100-python"):
        load_torchvision_dataset("CIFAR100", tmp_path / "root")


def test_other_torchvision_sets_need_torchvision(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "torchvision", None)
    monkeypatch.setitem(sys.modules, "torchvision.datasets", None)
    with pytest.raises(MissingDependencyError, match="torchvision"):
        load_torchvision_dataset("SVHN", tmp_path)


def test_from_torchvision_takes_any_image_label_pairs() -> None:
    class Pairs:
        classes = ["zero", "one", "two"]

        def __init__(self) -> None:
            self.items = [
                (Image.new("RGB", (6, 4), (255, 0, 0)), 2),
                (torch.full((3, 4, 6), 0.5), torch.tensor(1)),
                (np.zeros((4, 6, 3), np.uint8), np.int64(0)),
            ]

        def __len__(self) -> int:
            return len(self.items)

        def __getitem__(self, i: int) -> tuple[object, object]:
            return self.items[i]

    ds = from_torchvision(Pairs())
    assert tuple(ds.images.shape) == (3, 3, 4, 6) and ds.labels.tolist() == [2, 1, 0] and ds.class_names == ("zero", "one", "two")
    torch.testing.assert_close(ds.images[0, :, 0, 0], torch.tensor([1.0, 0.0, 0.0]))
    assert float(ds.images[1].mean()) == 0.5 and float(ds.images[2].max()) == 0.0
    assert len(from_torchvision(Pairs(), limit=2)) == 2
    mixed = [(Image.new("L", (4, 4)), 0), (Image.new("L", (5, 5)), 1)]
    with pytest.raises(DataError, match="resize transform"):
        from_torchvision(mixed)


def test_torchvision_fakedata_when_torchvision_imports() -> None:
    datasets = pytest.importorskip("torchvision.datasets")
    fake = datasets.FakeData(size=4, image_size=(3, 8, 8), num_classes=3)
    ds = from_torchvision(fake)
    assert tuple(ds.images.shape) == (4, 3, 8, 8) and 0 <= int(ds.labels.min()) and int(ds.labels.max()) < 3


def _peak_bytes(fn: Callable[[], object]) -> int:
    """The most memory Python and numpy held while ``fn`` ran (tracemalloc), whatever it raised."""
    import tracemalloc

    tracemalloc.start()
    try:
        with contextlib.suppress(DataError):
            fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_idx_reads_only_the_bytes_its_header_promises(mnist_files: tuple[Path, Path, np.ndarray, np.ndarray], tmp_path: Path) -> None:
    """A small gzip that unpacks to 64 MB behind a 2-image header costs kilobytes, not 64 MB (or 4 GB)."""
    header = idx_bytes(np.zeros((2, 4, 4), np.uint8))
    (tmp_path / "bomb.gz").write_bytes(gzip.compress(header + bytes(64 * 1024**2), compresslevel=1))
    with pytest.raises(DataError, match="header says 2 x 4 x 4 values .* follow"):
        load_mnist_idx(tmp_path / "bomb.gz")
    assert _peak_bytes(lambda: load_mnist_idx(tmp_path / "bomb.gz")) < 8 * 1024**2
    liar = struct.pack(">BBBB", 0, 0, 0x08, 3) + struct.pack(">3I", 60000, 200, 200)  # 2.4 GB promised, 100 bytes there
    for name, blob in (("liar.idx", liar + bytes(100)), ("liar.idx.gz", gzip.compress(liar + bytes(100)))):
        (tmp_path / name).write_bytes(blob)
        with pytest.raises(DataError, match="60000 x 200 x 200 values .* but 100 bytes follow"):
            load_mnist_idx(tmp_path / name)
        assert _peak_bytes(lambda n=name: load_mnist_idx(tmp_path / n)) < 8 * 1024**2, name
    huge = struct.pack(">BBBB", 0, 0, 0x08, 3) + struct.pack(">3I", 2**32 - 1, 2**32 - 1, 2**32 - 1)
    (tmp_path / "huge.idx.gz").write_bytes(gzip.compress(huge + bytes(100)))
    with pytest.raises(DataError, match="more than any data file convscope reads"):
        load_mnist_idx(tmp_path / "huge.idx.gz")
    img_path, lab_path, images, labels = mnist_files  # the honest files still load, raw and gzip
    assert load_mnist_idx(img_path, lab_path).labels.tolist() == labels.tolist()
    assert _peak_bytes(lambda: load_mnist_idx(lab_path)) < 8 * 1024**2  # a small .gz asked for 4 GB before


def test_idx_without_pixels_or_with_absurd_labels_is_refused(mnist_files: tuple[Path, Path, np.ndarray, np.ndarray], tmp_path: Path) -> None:
    for code in (0x08, 0x0D):  # uint8 made an empty data set; float crashed in min()
        (tmp_path / "flat.idx").write_bytes(struct.pack(">BBBB", 0, 0, code, 3) + struct.pack(">3I", 5, 0, 28))
        with pytest.raises(DataError, match="5 x 0 x 28: no pixels"):
            load_mnist_idx(tmp_path / "flat.idx")
    img_path = mnist_files[0]
    (tmp_path / "big-labels.idx").write_bytes(idx_bytes(np.array([0, 1, 2, 3, 4, 5, 10**6], np.int32)))
    with pytest.raises(DataError, match="labels go up to 1,000,000.*damaged.*class_names="):
        load_mnist_idx(img_path, tmp_path / "big-labels.idx")  # one name per class up to 10**6 (or 2**31) before
    names = [str(i) for i in range(10**6 + 1)]
    assert len(load_mnist_idx(img_path, tmp_path / "big-labels.idx", class_names=names).class_names) == 10**6 + 1
    (tmp_path / "wide-labels.idx").write_bytes(idx_bytes(np.arange(7, dtype=np.int16)))
    assert load_mnist_idx(img_path, tmp_path / "wide-labels.idx").labels.tolist() == list(range(7))  # big-endian int16


def test_four_d_idx_images_are_read_channels_last_or_first(tmp_path: Path) -> None:
    rgb = np.random.default_rng(2).integers(0, 256, (3, 5, 6, 3), dtype=np.uint8)  # N x H x W x C
    (tmp_path / "hwc.idx").write_bytes(idx_bytes(rgb))
    hwc = load_mnist_idx(tmp_path / "hwc.idx")
    assert tuple(hwc.images.shape) == (3, 3, 5, 6)
    np.testing.assert_array_equal((hwc.images * 255).round().numpy().astype(np.uint8), rgb.transpose(0, 3, 1, 2))
    (tmp_path / "chw.idx").write_bytes(idx_bytes(np.ascontiguousarray(rgb.transpose(0, 3, 1, 2))))
    torch.testing.assert_close(load_mnist_idx(tmp_path / "chw.idx").images, hwc.images, rtol=0, atol=0)
    (tmp_path / "grey.idx").write_bytes(idx_bytes(rgb[..., :1]))
    assert tuple(load_mnist_idx(tmp_path / "grey.idx").images.shape) == (3, 1, 5, 6)
    (tmp_path / "five.idx").write_bytes(idx_bytes(np.zeros((2, 4, 4, 5), np.uint8)))
    with pytest.raises(DataError, match=r"N x H x W x C.*got 2 x 4 x 4 x 5$"):
        load_mnist_idx(tmp_path / "five.idx")


def test_cifar_batches_pickled_by_python_3_with_protocol_2_are_not_called_attacks(tmp_path: Path) -> None:
    """Protocol 2 from Python 3 writes b"" as a call of bytes(): harmless, and not a reason to cry 'code'."""
    batch = {b"data": np.zeros((2, 3072), np.uint8), b"labels": [3, 4], b"filenames": [b"", b"b.png"]}
    (tmp_path / "test_batch").write_bytes(pickle.dumps(batch, protocol=2))
    assert load_cifar_batches(tmp_path / "test_batch").labels.tolist() == [3, 4]
    (tmp_path / "test_batch.gz").write_bytes(gzip.compress(pickle.dumps(batch, protocol=2)))
    assert _peak_bytes(lambda: load_cifar_batches(tmp_path / "test_batch.gz")) < 8 * 1024**2  # not 4 GB set aside
    (tmp_path / "test_batch").write_bytes(pickle.dumps({b"data": np.zeros((0, 3072), np.uint8), b"labels": []}, protocol=2))
    with pytest.raises(DataError, match="hold no images"):
        load_cifar_batches(tmp_path / "test_batch")
    (tmp_path / "test_batch").write_bytes(pickle.dumps({b"data": _RunsCode(bytes, 10**12), b"labels": [0]}, protocol=2))
    with pytest.raises(DataError, match=r"refused to unpickle bytes\(\.\.\.\) with arguments"):
        load_cifar_batches(tmp_path / "test_batch")  # bytes(n) would allocate what the file asks


def test_cifar_folders_take_only_batch_files_in_number_order_and_warn_of_gaps(tmp_path: Path) -> None:
    folder = tmp_path / "batches"
    folder.mkdir()
    for n in (1, 2, 10):
        batch = {b"data": np.full((1, 3072), n, np.uint8), b"labels": [n % 10]}
        (folder / f"data_batch_{n}").write_bytes(pickle.dumps(batch, protocol=2))
    (folder / "data_batch_1.bak").write_bytes(b"an editor's backup")  # not a batch: was unpickled and failed
    (folder / "test_batch.txt").write_text("notes")
    with pytest.warns(UserWarning, match="no data_batch_3, data_batch_4.*data_batch_9: only 3 of 10"):
        ds = load_cifar_batches(folder, split="train")
    assert (ds.images[:, 0, 0, 0] * 255).round().tolist() == [1, 2, 10]  # 2 before 10, not after
    (folder / "fine").mkdir()
    (folder / "fine" / "test").write_bytes(pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"fine_labels": [7]}, protocol=2))
    with pytest.raises(DataError, match="no 'coarse_labels' in the batch, which has fine_labels: pass label_kind="):
        load_cifar_batches(folder / "fine", label_kind="coarse")


def test_image_folder_fits_mixed_aspect_ratios_as_asked(tmp_path: Path) -> None:
    (tmp_path / "wide").mkdir()
    (tmp_path / "square").mkdir()
    wide = Image.new("RGB", (16, 8), (255, 0, 0))
    wide.paste((0, 0, 255), (0, 0, 4, 8))  # a blue quarter on the left: cropped away by fit="crop"
    wide.save(tmp_path / "wide" / "w.png")
    Image.new("RGB", (8, 8), (0, 255, 0)).save(tmp_path / "square" / "s.png")
    padded = load_image_folder(tmp_path, spec=(3, 8, 8), fit="pad", background=1.0)
    assert padded.sample_names == ("square/s.png", "wide/w.png")
    w = 1
    torch.testing.assert_close(padded.images[w, :, 0, 4], torch.ones(3))  # white bars above and below
    assert float(padded.images[w, 0, 4, 6]) == pytest.approx(1.0) and float(padded.images[w, 1, 4, 6]) == 0.0
    cropped = load_image_folder(tmp_path, spec=(3, 8, 8), fit="crop")
    assert float(cropped.images[w, 2].max()) < 0.05  # no blue left
    stretched = load_image_folder(tmp_path, size=(8, 8))
    assert float(stretched.images[w, 2, :, 0].min()) > 0.95  # the blue quarter squeezed, still there
    with pytest.raises(DataError, match="fit must be one of"):
        load_image_folder(tmp_path, fit="zoom")  # type: ignore[arg-type]


def test_image_folder_decodes_one_large_photo_at_a_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without spec, every photo was held at full size (float32: 144 MB for 12 MP) until all were read."""
    import weakref

    from convscope.data import _images

    rng = np.random.default_rng(3)
    for i in range(6):
        (tmp_path / str(i % 2)).mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(tmp_path / str(i % 2) / f"{i}.png")
    decoded: list[weakref.ref[torch.Tensor]] = []
    most_alive = 0
    real = _images.load_image

    def load_image(*args: object, **kwargs: object) -> torch.Tensor:
        nonlocal most_alive
        most_alive = max(most_alive, sum(ref() is not None for ref in decoded))
        x = real(*args, **kwargs)  # type: ignore[arg-type]
        decoded.append(weakref.ref(x))
        return x

    monkeypatch.setattr(_images, "load_image", load_image)
    ds = load_image_folder(tmp_path, size=(8, 8))
    assert tuple(ds.images.shape) == (6, 3, 8, 8) and len(decoded) == 6
    assert most_alive <= 1  # the one being fitted


def test_image_folder_reports_progress(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for i in range(3):
        (tmp_path / "a").mkdir(exist_ok=True)
        Image.new("L", (4, 4), i).save(tmp_path / "a" / f"{i}.png")
    seen: list[tuple[int, int]] = []
    load_image_folder(tmp_path, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(0, 3), (1, 3), (2, 3), (3, 3)]
    assert len(load_image_folder(tmp_path, progress=True)) == 3  # a rich bar on stderr, gone when done
    capsys.readouterr()


@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="file names there are always valid Unicode")
def test_image_folder_names_that_are_not_utf8_become_printable(tmp_path: Path) -> None:
    import json

    root = os.fsencode(tmp_path)
    try:
        os.makedirs(root + b"/caf\xe9")
    except OSError:
        pytest.skip("this file system refuses names that are not UTF-8")
    Image.new("L", (4, 4)).save(os.fsdecode(root + b"/caf\xe9/\xff1.png"))
    ds = load_image_folder(tmp_path)
    assert ds.class_names == ("caf\ufffd",) and ds.sample_names == ("caf\ufffd/\ufffd1.png",)
    json.dumps([ds.class_names, ds.sample_names], ensure_ascii=False).encode("utf-8")  # as a JSON response does


def test_image_folder_skips_links_to_folders_so_loops_end(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    Image.new("L", (4, 4)).save(tmp_path / "a" / "x.png")
    try:
        os.symlink(tmp_path / "a", tmp_path / "a" / "loop", target_is_directory=True)
        os.symlink(tmp_path, tmp_path / "a" / "up", target_is_directory=True)
    except OSError:
        pytest.skip("symbolic links are not allowed here")
    assert load_image_folder(tmp_path).sample_names == ("a/x.png",)

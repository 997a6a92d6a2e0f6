"""Data loading: bundled sets, user files (IDX, CIFAR batches) and images, each beside a plain baseline.

Run: python benchmarks/bench_data.py [--rounds N]
Prints medians of several rounds on CPU; machines here are shared and noisy, so read the ratios.
Baselines: numpy.frombuffer for IDX, the standard (unsafe) pickle.load for CIFAR batches, and
PIL alone (open, convert, resize) for images.
"""

from __future__ import annotations

import argparse
import gzip
import io
import pickle
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import machine, table, timeit  # noqa: E402

from convscope.data import (  # noqa: E402
    list_datasets,
    load_cifar_batches,
    load_image,
    load_mnist_idx,
)


def _idx(array: np.ndarray) -> bytes:
    return bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape) + array.tobytes()


def _photo(width: int, height: int, fmt: str) -> bytes:
    ys, xs = np.mgrid[0:height, 0:width]
    rng = np.random.default_rng(0)
    arr = np.stack([xs * 255 // width, ys * 255 // height, (xs ^ ys) & 255], axis=-1).astype(np.int16)
    arr = np.clip(arr + rng.integers(-20, 20, arr.shape), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buf.getvalue()


def _pil_only(data: bytes, size: tuple[int, int], mode: str) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert(mode).resize(size, Image.Resampling.BILINEAR), dtype=np.float32) / 255.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    r = args.rounds
    print(f"# data loading ({machine()})\n")

    rows = []
    for info in list_datasets():
        first = timeit(lambda i=info: (i.loader.cache_clear(), i.loader()), rounds=max(2, r // 2), warmup=1)  # type: ignore[attr-defined]
        cached = timeit(info.loader, rounds=r)
        rows.append((info.name, info.size, "x".join(map(str, info.shape)), f"{first['median']:.3f}", f"{cached['median'] * 1e6:.1f}"))
    print("## bundled data sets (first load in a process, then cached)\n")
    print(table(("data set", "images", "shape", "first load s", "cached us"), rows))

    rng = np.random.default_rng(0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        images = rng.integers(0, 256, (60_000, 28, 28), dtype=np.uint8)  # full MNIST training size
        raw = _idx(images)
        (root / "img").write_bytes(raw)
        (root / "img.gz").write_bytes(gzip.compress(raw, compresslevel=6))
        base = timeit(lambda: np.frombuffer((root / "img").read_bytes()[16:], np.uint8).reshape(-1, 28, 28).astype(np.float32) / 255, rounds=r)
        ours = timeit(lambda: load_mnist_idx(root / "img"), rounds=r)
        rows.append(("IDX 60000x28x28 raw", f"{base['median']:.3f}", f"{ours['median']:.3f}", f"{ours['median'] / base['median']:.2f}"))
        base = timeit(lambda: np.frombuffer(gzip.decompress((root / "img.gz").read_bytes())[16:], np.uint8).astype(np.float32) / 255, rounds=r)
        ours = timeit(lambda: load_mnist_idx(root / "img.gz"), rounds=r)
        rows.append(("IDX 60000x28x28 gzip", f"{base['median']:.3f}", f"{ours['median']:.3f}", f"{ours['median'] / base['median']:.2f}"))

        batch = {b"batch_label": b"b", b"labels": rng.integers(0, 10, 10_000).tolist(), b"data": rng.integers(0, 256, (10_000, 3072), dtype=np.uint8)}
        (root / "data_batch_1").write_bytes(pickle.dumps(batch, protocol=2))
        base = timeit(lambda: pickle.loads((root / "data_batch_1").read_bytes(), encoding="bytes"), rounds=r)  # noqa: S301
        unpickle_only = timeit(lambda: _unpickle_only(root / "data_batch_1"), rounds=r)
        ours = timeit(lambda: load_cifar_batches(root / "data_batch_1"), rounds=r)
        rows.append(("CIFAR batch 10000: unpickle only", f"{base['median']:.3f}", f"{unpickle_only['median']:.3f}", f"{unpickle_only['median'] / base['median']:.2f}"))
        rows.append(("CIFAR batch 10000: to float tensor", f"{base['median']:.3f}", f"{ours['median']:.3f}", f"{ours['median'] / base['median']:.2f}"))
    print("\n## a user's files (baseline: numpy / standard pickle, unsafe)\n")
    print(table(("file", "baseline s", "convscope s", "ratio"), rows))

    rows = []
    for label, data, spec, mode in (
        ("PNG 28x28 grey -> 1x28x28", _photo(28, 28, "PNG"), (1, 28, 28), "L"),
        ("PNG 640x480 -> 3x224x224", _photo(640, 480, "PNG"), (3, 224, 224), "RGB"),
        ("JPEG 4000x3000 -> 3x224x224", _photo(4000, 3000, "JPEG"), (3, 224, 224), "RGB"),
    ):
        base = timeit(lambda d=data, s=spec, m=mode: _pil_only(d, (s[2], s[1]), m), rounds=r)
        ours = timeit(lambda d=data, s=spec: load_image(d, spec=s), rounds=r)
        rows.append((label, f"{base['median'] * 1000:.2f}", f"{ours['median'] * 1000:.2f}", f"{ours['median'] / base['median']:.2f}"))
    print("\n## one image to a model's input (baseline: PIL open + convert + bilinear resize)\n")
    print(table(("image", "PIL only ms", "load_image ms", "ratio"), rows))


def _unpickle_only(path: Path) -> object:
    from convscope.data._files import _unpickle

    return _unpickle(path)


if __name__ == "__main__":
    main()

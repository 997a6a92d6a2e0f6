"""Exports of big feature maps: size, write time and load time of CSV, VTP, VTI and npy; ParaView's
load time; and the per-step cost of the Catalyst bridge.

The data: VGG-16's conv1 feature maps (after ReLU) of a batch of 8 real photographs (the bundled
``photos`` data set), 64 maps of 224x224 per sample, 25.7 million values, in two forms:

* ``float32``: the activations themselves (exact);
* ``u8``: what the ``feature_maps`` frame kind holds (each map normalised to 0..255), i.e. what
  ``convscope export`` and the live sinks write: eight frames, one per sample.

Formats: CSV (``CsvWriter``, one row per value: sample, map, row, col, value), VTI (image data,
W x H x 64 maps per sample, binary appended, zlib), VTP (the same values on a point cloud,
points + one point array), npy (``np.save``, a reference with no structure). Loads: pandas
(``read_csv``), VTK's own XML readers (the ``vtk`` wheel), ``np.load``, and ParaView's readers
in ``pvpython`` (the time inside ParaView to open and fetch the data, and the whole process).

Paper (in situ TensorView): CSV 85 MB and 60 s to load in ParaView; VTP 35 MB, 2-3 s.
Targets: VTK export at most 35 MB, loading in ParaView in at most 2 s.

``convscope export`` of a big stored run (``--run-steps``, 10 frames a step: weight grids,
feature maps, distributions, correlations, gradient health and the loss of two layers): the
time and the peak memory of ``export_run``, each in a fresh process (its peak resident set
above what the process held before the export, and its high-water mark in all).

The CRC-32C of TensorBoard's event records (``--only-crc``): MB/s of TensorBoard's pure-Python
``masked_crc32c`` and of convscope's (numpy), medians on 1 MB and 16 MB of random bytes.

Run: python benchmarks/bench_export.py [--rounds 3] [--csv-rounds 1] [--bridge-steps 20]
     python benchmarks/bench_export.py --only-run [--run-steps 2000] [--run-formats csv,vtk]
     python benchmarks/bench_export.py --only-crc [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import machine, table, timeit  # noqa: E402

from convscope.export import CsvWriter, write_vti, write_vtp  # noqa: E402
from convscope.export._scenes import ImageData, PolyData  # noqa: E402
from convscope.frames import Frame  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
READ_BACK = ROOT / "tests" / "paraview" / "pv_read_back.py"


def vgg16_conv1_maps() -> np.ndarray:
    from convscope.data import load_dataset
    from convscope.models.zoo import load_zoo_model

    torch.manual_seed(0)
    lm = load_zoo_model("vgg16", pretrained=False)
    photos = load_dataset("photos", spec=lm.input_spec)
    conv1 = lm.module.features[0]
    with torch.no_grad():
        maps = torch.relu(conv1(photos.images[:8]))
    return maps.numpy().astype(np.float32)  # [8, 64, 224, 224]


def as_u8(maps: np.ndarray) -> np.ndarray:
    lo = maps.min(axis=(2, 3), keepdims=True)
    hi = maps.max(axis=(2, 3), keepdims=True)
    return np.round((maps - lo) / np.where(hi > lo, hi - lo, 1) * 255).astype(np.uint8)


def write_csv(folder: Path, maps: np.ndarray) -> Path:
    w = CsvWriter(folder)
    for i, sample in enumerate(maps):
        w.write(Frame(run="bench", step=0, kind="feature_maps", layer="conv1",
                      payload={"images": sample, "vmin": 0.0, "vmax": 1.0, "normalisation": "per_map", "scale": 1, "sample": i}))
    w.close()
    return w.path("feature_maps", "conv1")


def vti_of(maps: np.ndarray) -> ImageData:
    n, f, h, w = maps.shape
    return ImageData(dimensions=(w, h, n * f), point_data={"activation": maps.reshape(-1)})


def vtp_of(maps: np.ndarray) -> PolyData:
    n, f, h, w = maps.shape
    z, y, x = np.meshgrid(np.arange(n * f, dtype=np.float32), -np.arange(h, dtype=np.float32),
                          np.arange(w, dtype=np.float32), indexing="ij")
    points = np.stack([x.ravel(), y.ravel(), z.ravel()], axis=1)
    return PolyData(points=points, point_data={"activation": maps.reshape(-1)})


def vtk_load(path: Path) -> None:
    from convscope.paraview._vtk import read_vtk

    read_vtk(path)


def paraview_load(path: Path, rounds: int) -> tuple[float | None, float | None]:
    """(median seconds inside ParaView to open + fetch, median seconds of the whole pvpython run)."""
    pv = shutil.which(os.environ.get("CONVSCOPE_PVPYTHON", "pvpython"))
    if pv is None:
        return None, None
    from convscope.paraview import pvpython_env

    inside, whole = [], []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "seen.npz"
            t0 = time.perf_counter()
            subprocess.run([pv, "--no-mpi", str(READ_BACK), str(out), str(path)], env=pvpython_env(), check=True,
                           capture_output=True)
            whole.append(time.perf_counter() - t0)
            inside.append(float(np.load(out)["0/load_s"]))
    return statistics.median(inside), statistics.median(whole)


def bench_formats(maps: np.ndarray, label: str, rounds: int, csv_rounds: int, tmp: Path, *, paraview_csv: bool) -> list[list]:
    import pandas as pd

    rows = []
    folder = tmp / label
    folder.mkdir()
    writers = {
        "npy": (folder / "maps.npy", lambda p: np.save(p, maps), lambda p: np.load(p)),
        "VTI": (folder / "maps.vti", lambda p: write_vti(p, vti_of(maps)), vtk_load),
        "VTP": (folder / "maps.vtp", lambda p: write_vtp(p, vtp_of(maps)), vtk_load),
        "CSV": (folder / "csv" / "feature_maps-conv1.csv", lambda p: write_csv(folder / "csv", maps), lambda p: pd.read_csv(p)),
    }
    for fmt, (path, write, load) in writers.items():
        r = csv_rounds if fmt == "CSV" else rounds
        wt = timeit(lambda w=write, p=path: w(p), rounds=r, warmup=0)
        size = path.stat().st_size
        lt = timeit(lambda ld=load, p=path: ld(p), rounds=r, warmup=0)
        pv_formats = ("VTI", "VTP", "CSV") if paraview_csv else ("VTI", "VTP")
        pv_inside, pv_whole = paraview_load(path, r) if fmt in pv_formats else (None, None)
        rows.append([label, fmt, round(size / 1e6, 1), round(wt["median"], 2), round(lt["median"], 2),
                     "-" if pv_inside is None else round(pv_inside, 2), "-" if pv_whole is None else round(pv_whole, 2)])
        print(" | ".join(map(str, rows[-1])), flush=True)
    return rows


def bench_bridge(steps: int, tmp: Path, png: bool) -> dict[str, float] | None:
    """Median per-step cost of the bridge on a stored LeNet-5 run (data extracts, optionally PNGs)."""
    pv = shutil.which("pvpython")
    if pv is None or (png and shutil.which("xvfb-run") is None):
        return None
    import convscope
    from convscope.data import load_dataset
    from convscope.models.zoo import load_zoo_model
    from convscope.paraview import bridge_command, pvpython_env
    from convscope.server import start_local_server

    logdir = tmp / f"runs-{png}"
    torch.manual_seed(0)
    lm = load_zoo_model("lenet5-simplified", pretrained=False)
    net = lm.module.train()
    data = load_dataset("mnist-5k", spec=lm.input_spec)
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    with convscope.watch(net, optimizer=opt, logdir=logdir, run="bench", every=1, budget=None, layers=["conv2"]) as mon:
        for i in range(steps):
            idx = torch.arange(i * 32, i * 32 + 32)
            loss = torch.nn.functional.cross_entropy(net(data.images[idx]), data.labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            mon.log(loss=loss)
    server = start_local_server(logdir)
    timing = tmp / f"timing-{png}.jsonl"
    try:
        cmd = bridge_command(run="bench", url=server.url, extracts=tmp / f"ext-{png}", png=png, poll=0.1, timing=timing)
        subprocess.run((["xvfb-run", "-a"] if png else []) + cmd + ["--timeout", "300"], env=pvpython_env(), check=True,
                       capture_output=True)
    finally:
        server.stop()
    records = [json.loads(line) for line in timing.read_text().splitlines()]
    later = records[1:]
    return {
        "steps": len(records),
        "first_s": records[0]["coprocess_s"],
        "build_ms": statistics.median(r["build_s"] for r in later) * 1e3,
        "catalyst_ms": statistics.median(r["coprocess_s"] for r in later) * 1e3,
        "fetch_ms": statistics.median(r.get("fetch_s", 0.0) for r in later) * 1e3,
    }


FRAMES_PER_STEP = 10


def synthetic_run(logdir: Path, steps: int) -> str:
    """A stored run of ``steps`` x :data:`FRAMES_PER_STEP` frames, every feature-map frame kept."""
    from convscope.store import RunStore

    rng = np.random.default_rng(0)
    shapes = {"conv1": ((16, 1, 5, 5), (16, 28, 28)), "conv2": ((32, 16, 3, 3), (32, 14, 14))}
    with RunStore(logdir).create_run("big", retention={"feature_maps": steps}) as w:
        for step in range(steps):
            w.write(Frame(run="big", step=step, kind="scalar", payload={"name": "loss", "value": 1.0 / (step + 1)}))
            for layer, (wshape, mshape) in shapes.items():
                weights = rng.normal(size=wshape).astype(np.float32)
                f = wshape[0]
                for kind, payload in (
                    ("weight_grid", {"weights": weights, "vmax": float(np.abs(weights).max())}),
                    ("feature_maps", {"images": rng.integers(0, 255, mshape, dtype=np.uint8), "vmin": 0.0, "vmax": 1.0,
                                      "normalisation": "per_map", "scale": 1.0, "sample": 0}),
                    ("distribution", {"counts": rng.integers(0, 9, (f, 32)).astype(np.int32),
                                      "bins": np.linspace(0, 1, 33, dtype=np.float32), "min": np.zeros(f, np.float32),
                                      "max": np.ones(f, np.float32), "mean": np.full(f, 0.5, np.float32),
                                      "std": np.full(f, 0.1, np.float32)}),
                    ("gradient_health", {"status": "healthy", "grad_norm": float(rng.random()), "update_ratio": 1e-3,
                                         "zero_fraction": 0.0, "dead_fraction": 0.0, "nonfinite": 0}),
                ):
                    w.write(Frame(run="big", step=step, kind=kind, layer=layer, payload=payload, wall_time=1.7e9 + step))
            m = np.corrcoef(rng.normal(size=(16, 20))).astype(np.float32)
            w.write(Frame(run="big", step=step, kind="correlation", layer="conv2", payload={"matrix": m, "dead": np.zeros(16, bool)}))
    return "big"


_EXPORT_CHILD = """
import json, resource, sys, time
from pathlib import Path
from convscope.export import export_run

def hwm_kib():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

logdir, out, formats = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
before = hwm_kib()
try:
    Path("/proc/self/clear_refs").write_text("5")  # the high-water mark restarts from now (Linux)
    reset = True
except OSError:
    reset = False
first = []
t0 = time.perf_counter()
result = export_run(logdir, "big", out=out, formats=formats,
                    progress=lambda done, total: first or first.append(time.perf_counter() - t0))
seconds = time.perf_counter() - t0
print(json.dumps({"frames": result.frames, "seconds": seconds, "first_progress_s": first[0],
                  "peak_mib": (hwm_kib() - before) / 1024 if reset else None, "hwm_mib": hwm_kib() / 1024}))
"""


def bench_export_run(steps: int, formats: str, rounds: int, tmp: Path) -> list[list]:
    """Time and peak memory of ``export_run`` on a synthetic run, each round in a fresh process."""
    logdir = tmp / "runs"
    t0 = time.perf_counter()
    synthetic_run(logdir, steps)
    stored = sum(p.stat().st_size for p in logdir.iterdir()) / 1e6
    print(f"synthetic run: {steps * FRAMES_PER_STEP} frames, {stored:.0f} MB stored ({time.perf_counter() - t0:.0f} s to write)",
          flush=True)
    rows = []
    for i in range(rounds):
        out = tmp / f"export-{i}"
        done = subprocess.run([sys.executable, "-c", _EXPORT_CHILD, str(logdir), str(out), formats],
                              check=True, capture_output=True, text=True)
        r = json.loads(done.stdout.strip().splitlines()[-1])
        rows.append([formats, r["frames"], round(stored), round(r["seconds"], 1), round(r["first_progress_s"] * 1e3),
                     "-" if r["peak_mib"] is None else round(r["peak_mib"]), round(r["hwm_mib"])])
        print(" | ".join(map(str, rows[-1])), flush=True)
        shutil.rmtree(out)
    return rows


def bench_crc(rounds: int) -> list[list]:
    """MB/s of TensorBoard's masked CRC-32C and convscope's on 1 MB and 16 MB (medians)."""
    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c as theirs

    from convscope.export._crc32c import masked_crc32c as ours

    rng = np.random.default_rng(0)
    rows = []
    for mb in (1, 16):
        data = rng.integers(0, 256, mb << 20, dtype=np.uint8).tobytes()
        assert ours(data) == theirs(data)
        old = timeit(lambda d=data: theirs(d), rounds=rounds, warmup=0)["median"]
        new = timeit(lambda d=data: ours(d), rounds=max(rounds, 9))["median"]
        rows.append([mb, round(len(data) / old / 1e6, 2), round(len(data) / new / 1e6), round(old / new)])
        print(" | ".join(map(str, rows[-1])), flush=True)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--csv-rounds", type=int, default=1, help="CSV takes minutes a round at this size")
    p.add_argument("--bridge-steps", type=int, default=20)
    p.add_argument("--skip-float", action="store_true", help="only the u8 frames")
    p.add_argument("--paraview-csv", action="store_true",
                   help="also time ParaView's CSV reader (minutes and ~10 GB of memory for the 780 MB table)")
    p.add_argument("--run-steps", type=int, default=2000, help=f"steps of the exported run ({FRAMES_PER_STEP} frames a step)")
    p.add_argument("--run-formats", default="csv,vtk", help="formats of the run's export (comma-separated)")
    p.add_argument("--only-run", action="store_true", help="only the export of the big run")
    p.add_argument("--only-crc", action="store_true", help="only the CRC-32C of TensorBoard's event records")
    args = p.parse_args()
    print(f"machine: {machine()}")
    if args.only_crc:
        rows = bench_crc(args.rounds)
        print()
        print("CRC-32C of event records (masked), MB/s:")
        print(table(["MB", "tensorboard's (pure Python)", "convscope's (numpy)", "speed-up x"], rows))
        return
    with tempfile.TemporaryDirectory() as tmp_name:
        run_rows = bench_export_run(args.run_steps, args.run_formats, args.rounds, Path(tmp_name))
    print()
    print(f"convscope export of a stored run ({args.run_steps} steps), each round in a fresh process:")
    print(table(["formats", "frames", "run MB", "export s", "first progress ms", "peak MiB (export)", "peak RSS MiB"], run_rows))
    print(flush=True)
    if args.only_run:
        return
    maps = vgg16_conv1_maps()
    print(f"VGG-16 conv1 maps of 8 photos: {maps.shape}, {maps.nbytes / 1e6:.0f} MB as float32, "
          f"{(maps == 0).mean():.0%} zeros after ReLU", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        rows += bench_formats(as_u8(maps), "u8 frames", args.rounds, args.csv_rounds, tmp, paraview_csv=args.paraview_csv)
        if not args.skip_float:
            rows += bench_formats(maps, "float32", args.rounds, args.csv_rounds, tmp, paraview_csv=args.paraview_csv)
        print()
        print(table(["data", "format", "size MB", "write s", "load s (pandas/vtk/numpy)", "ParaView load s", "pvpython run s"], rows))
        print()
        bridge_rows = []
        for png in (False, True):
            r = bench_bridge(args.bridge_steps, tmp, png)
            if r is not None:
                bridge_rows.append(["data + PNG extracts" if png else "data extracts", r["steps"], round(r["first_s"], 2),
                                    round(r["build_ms"], 1), round(r["catalyst_ms"], 1), round(r["fetch_ms"], 1)])
        if bridge_rows:
            print("Catalyst bridge, LeNet-5 conv2 (32 filters of 16x3x3, 4 views a step), medians after the first step:")
            print(table(["bridge", "steps", "first step s", "build ms", "catalyst ms", "fetch ms"], bridge_rows))


if __name__ == "__main__":
    main()

"""The run store and the server's reads, measured side by side.

* write throughput (frames/s, MiB/s of encoded frames) for small frames (scalars) and big ones
  (feature maps 64x56x56 uint8, ~200 KB), store only (frames already encoded) and through
  ``RunWriter.write`` (encoding included), with 16 KiB pages (used) against SQLite's default 4 KiB;
* read latency on a long run (100,000 steps: loss and lr scalars every step, gradient health
  and weight grids every 10 steps, feature maps every 50), through the store and over HTTP
  (``GET /frames?latest=1``), against the plain SQL a store without the per-series summary needs
  (group by over every frame, distinct steps fetched into Python);
* size on disk per frame against the encoded bytes, WAL included, and how retention bounds it;
* the cost of many live viewers: a ``convscope serve`` process with 0 and 50 idle WebSocket
  viewers of one live run: its CPU use, and the time until all 50 have a new frame.

Run: python benchmarks/bench_store.py [--steps 100000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import machine, table, timeit  # noqa: E402

import convscope.store._schema as schema  # noqa: E402
from convscope.frames import Frame, encode  # noqa: E402
from convscope.store import RunStore  # noqa: E402

rng = np.random.default_rng(0)


def scalar(step: int) -> Frame:
    return Frame(run="b", step=step, kind="scalar", payload={"name": "loss", "value": 1.0 / (step + 1)})


def maps(step: int, layer: str = "conv1") -> Frame:
    return Frame(run="b", step=step, kind="feature_maps", layer=layer, payload={
        "images": rng.integers(0, 255, (64, 56, 56), dtype=np.uint8), "vmin": 0.0, "vmax": 1.0,
        "normalisation": "per_map", "scale": 1.0, "sample": 0})


def _disk(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


# --- writes ---------------------------------------------------------------------------------------


def write_rows(rounds: int) -> list[tuple]:
    small = [scalar(s) for s in range(20_000)]
    big = [maps(s) for s in range(150)]
    rows = []
    for label, frames, per_flush in (("scalar", small, 500), ("feature maps 64x56x56 u8", big, 5)):
        encoded = [encode(f) for f in frames]
        nbytes = sum(len(e) for e in encoded)
        for page in (4096, 16384):
            for how in ("store only", "write() incl. encode"):
                if how != "store only" and page == 4096:
                    continue
                times, sizes, wals = [], [], []
                for _ in range(rounds):
                    schema.PAGE_SIZE = page
                    store = RunStore(tempfile.mkdtemp())
                    w = store.create_run("w", retention={})  # no thinning: measure raw appends
                    t = time.perf_counter()
                    for i, f in enumerate(frames):
                        if how == "store only":
                            w.write_encoded(f, encoded[i])
                        else:
                            w.write(f)
                        if i % per_flush == per_flush - 1:
                            w.flush()
                    w.flush()
                    times.append(time.perf_counter() - t)
                    wals.append(Path(str(w.path) + "-wal").stat().st_size)
                    w.close()
                    sizes.append(_disk(w.path))  # what a finished run leaves (the WAL is folded in on close)
                schema.PAGE_SIZE = 16384
                med = statistics.median(times)
                rows.append((label, f"{page // 1024} KiB", how, f"{len(frames) / med:,.0f}", f"{nbytes / med / 2**20:,.0f}",
                             f"{statistics.median(sizes) / nbytes:.2f}", f"{statistics.median(wals) / 2**20:.1f}"))
    return rows


# --- a long run to read -------------------------------------------------------------------------------


def long_run(steps: int) -> tuple[str, str]:
    logdir = tempfile.mkdtemp()
    w = RunStore(logdir).create_run("long", max_images=200)
    wg = rng.normal(size=(16, 1, 3, 3)).astype(np.float32)
    for step in range(1, steps + 1):
        w.write(scalar(step))
        w.write(Frame(run="long", step=step, kind="scalar", payload={"name": "lr", "value": 0.1}))
        if step % 10 == 0:
            for layer in ("conv1", "conv2"):
                w.write(Frame(run="long", step=step, kind="gradient_health", layer=layer, payload={
                    "status": "healthy", "grad_norm": 1.0, "update_ratio": 1e-3, "zero_fraction": 0.0,
                    "dead_fraction": 0.0, "nonfinite": 0}))
                w.write(Frame(run="long", step=step, kind="weight_grid", layer=layer, payload={"weights": wg, "vmax": 3.0}))
        if step % 50 == 0:
            w.write(maps(step))
        if step % 1000 == 0:
            w.flush()
    w.flush()
    return logdir, "long"


def read_rows(logdir: str, run: str, rounds: int) -> list[tuple]:
    import sqlite3

    reader = RunStore(logdir).open_run(run)
    con = sqlite3.connect(reader.path)
    n = reader.info(details=False)["frames"]

    def naive_latest() -> list:
        return con.execute(
            "SELECT f.id, f.data FROM frames f JOIN (SELECT kind, layer, MAX(step) AS s FROM frames GROUP BY kind, layer) m "
            "ON f.kind = m.kind AND f.layer = m.layer AND f.step = m.s ORDER BY f.step, f.id").fetchall()

    def naive_info() -> tuple:
        return (con.execute("SELECT MIN(step), MAX(step), COUNT(*) FROM frames").fetchone(),
                con.execute("SELECT kind, COUNT(*) FROM frames GROUP BY kind").fetchall())

    def naive_thin(m: int = 3000) -> list:
        steps = [r[0] for r in con.execute("SELECT DISTINCT step FROM frames WHERE kind IN ('scalar', 'gradient_health') ORDER BY step")]
        keep = sorted({steps[round(i * (len(steps) - 1) / (m - 1))] for i in range(m)})
        return con.execute(f"SELECT id, data FROM frames WHERE kind IN ('scalar', 'gradient_health') AND step IN ({','.join('?' * len(keep))}) "
                           "ORDER BY step, id", keep).fetchall()

    assert len(naive_latest()) == len(reader.raw_frames(latest=True))
    cases = [
        ("run summary (RunInfo)", lambda: reader.info(details=False), naive_info),
        ("latest frame of every series", lambda: reader.raw_frames(latest=True), naive_latest),
        ("latest at a step (scrubbing)", lambda: reader.raw_frames(latest=True, end=n // 7), None),
        ("timeline, max_points=3000", lambda: reader.raw_frames(kind=["scalar", "gradient_health"], max_points=3000), naive_thin),
        ("live tail: 256 rows after a cursor", lambda: reader.tail(reader.last_id() - 256), None),
    ]
    rows = []
    for label, fast, naive in cases:
        t_fast = timeit(fast, rounds=rounds)["median"]
        t_naive = timeit(naive, rounds=max(3, rounds // 2))["median"] if naive else None
        rows.append((label, f"{t_fast * 1e3:.2f}", f"{t_naive * 1e3:.1f}" if t_naive else "-",
                     f"{t_naive / t_fast:,.0f}x" if t_naive else "-"))
    con.close()
    return rows


def http_rows(logdir: str, run: str, rounds: int) -> list[tuple]:
    import httpx

    from convscope.server import start_local_server

    rows = []
    with start_local_server(logdir) as handle, httpx.Client(base_url=handle.url, timeout=60) as c:
        for label, params in (("GET /frames?latest=1", {"latest": "1"}), ("GET /frames?latest=1&end=N/2", {"latest": "1", "end": 50_000}),
                              ("GET /runs/{run} (details)", None), ("GET /runs", "list")):
            path = "/api/runs" if params == "list" else f"/api/runs/{run}" if params is None else f"/api/runs/{run}/frames"
            q = params if isinstance(params, dict) else None
            times = []
            for _ in range(rounds * 3):
                t = time.perf_counter()
                r = c.get(path, params=q)
                times.append(time.perf_counter() - t)
                assert r.status_code == 200
            rows.append((label, f"{statistics.median(times) * 1e3:.2f}", f"{np.percentile(times, 95) * 1e3:.2f}", f"{len(r.content):,}"))
    return rows


def size_rows(logdir: str, run: str) -> list[tuple]:
    reader = RunStore(logdir).open_run(run)
    series = reader.series()
    stored = sum(s["bytes"] for s in series)
    frames = sum(s["count"] for s in series)
    thinned = sum(s["thinned"] for s in series)
    main = reader.path.stat().st_size
    wal = Path(str(reader.path) + "-wal").stat().st_size
    maps_one = len(encode(maps(0)))
    return [(f"{frames:,}", f"{stored / 2**20:,.1f}", f"{main / 2**20:,.1f}", f"{main / stored:.2f}", f"{wal / 2**20:,.1f}",
             f"{thinned:,} feature maps ({thinned * maps_one / 2**20:,.0f} MiB)")]


# --- live viewers ------------------------------------------------------------------------------------


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _receive(sock, arrivals: list[float]) -> None:
    sock.recv(timeout=10)
    arrivals.append(time.perf_counter())


def viewer_rows(viewers: int, seconds: float = 5.0) -> list[tuple]:
    from websockets.sync.client import connect

    logdir = tempfile.mkdtemp()
    w = RunStore(logdir).create_run("live")
    w.write(scalar(0))
    w.flush()
    proc = subprocess.Popen([sys.executable, "-c", "import sys; from convscope.cli import main; sys.exit(main())",
                             "serve", "--logdir", logdir, "--port", "0"], stdout=subprocess.PIPE, text=True)
    proc.stdout.readline()
    url = proc.stdout.readline().split("open ", 1)[1].strip()
    rows = []
    try:
        for n in (0, viewers):
            stack = contextlib.ExitStack()
            sockets = [stack.enter_context(connect(url.replace("http", "ws") + "api/runs/live/live", open_timeout=30)) for _ in range(n)]
            time.sleep(1.0)
            cpu0, t0 = _cpu_seconds(proc.pid), time.perf_counter()
            time.sleep(seconds)
            cpu = (_cpu_seconds(proc.pid) - cpu0) / (time.perf_counter() - t0)
            delivery = []
            for step in range(1, 6 if n else 1):
                got = []
                threads = [threading.Thread(target=_receive, args=(sock, got)) for sock in sockets]
                for t in threads:
                    t.start()
                t = time.perf_counter()
                w.write(scalar(step))
                w.flush()
                for th in threads:
                    th.join()
                if got:
                    delivery.append(max(got) - t)
            rows.append((n, f"{cpu * 100:.1f}%", f"{statistics.median(delivery) * 1e3:.0f}" if delivery else "-"))
            stack.close()
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()
        w.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--viewers", type=int, default=50)
    args = parser.parse_args()
    print(f"# run store and server reads ({machine()})\n")
    print("## writes (one transaction per flush; file / encoded = finished run's file over the encoded bytes)\n")
    print(table(("frames", "page", "path", "frames/s", "MiB/s", "file / encoded", "WAL while writing, MiB"),
                write_rows(max(3, args.rounds // 2))))
    print(f"\n## reads on a {args.steps:,}-step run (store API, ms; naive = the SQL a store without series summaries needs)\n")
    logdir, run = long_run(args.steps)
    print(table(("query", "convscope ms", "naive SQL ms", "speed-up"), read_rows(logdir, run, args.rounds)))
    print("\n## the same over HTTP (real uvicorn on loopback)\n")
    print(table(("request", "median ms", "p95 ms", "body bytes"), http_rows(logdir, run, args.rounds)))
    print("\n## size on disk of the long run, writer still open (feature maps kept at most 200 per layer)\n")
    print(table(("frames stored", "encoded MiB", "file MiB", "file / encoded", "WAL MiB", "thinned by retention"), size_rows(logdir, run)))
    print("\n## live viewers of one run (a `convscope serve` process: CPU over 5 s idle, then 5 new frames)\n")
    print(table(("idle viewers", "server CPU", "new frame -> every viewer, median ms"), viewer_rows(args.viewers)))


if __name__ == "__main__":
    main()

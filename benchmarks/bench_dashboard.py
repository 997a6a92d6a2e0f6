"""The live path end to end, on localhost: training step -> run store -> server -> browser.

Measures, in one run:
* latency from a frame's creation in the training process to its drawing in the dashboard
  (Chromium, headless), median and p95, while the simplified LeNet-5 trains with every view;
* frames per second the server ingests (POST of encoded frames) and fans out to WebSocket
  viewers, for small (scalar) and big (64 maps of 56x56) frames;
* the time to open a finished 10,000-step run: page load to the first complete render.

Run: python benchmarks/bench_dashboard.py [--viewers 4]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import machine, table  # noqa: E402

import convscope  # noqa: E402
from convscope.frames import Frame, encode  # noqa: E402
from convscope.server import start_local_server  # noqa: E402
from convscope.store import RunStore  # noqa: E402

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run", "--enable-unsafe-swiftshader", "--use-angle=swiftshader"]


def _browser(p):
    return p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)


def latency(seconds: float) -> dict:
    from playwright.sync_api import sync_playwright

    tmp = tempfile.mkdtemp()
    handle = start_local_server(tmp)
    torch.manual_seed(0)
    net = convscope.load_model("lenet5-simplified", pretrained=False).module.train()
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    data = convscope.load_dataset("mnist-5k", spec=convscope.load_model("lenet5-simplified", pretrained=False).input_spec)
    stop = threading.Event()
    ready = threading.Event()

    def train() -> None:
        with convscope.watch(net, optimizer=opt, logdir=tmp, run="latency", every=5, budget=None) as mon:
            step = 0
            while not stop.is_set():
                i = step * 64 % 4900
                loss = torch.nn.functional.cross_entropy(net(data.images[i : i + 64]), data.labels[i : i + 64])
                opt.zero_grad()
                loss.backward()
                opt.step()
                mon.log(loss=loss)
                step += 1
                if step == 5:
                    mon._store.flush()
                    ready.set()
                time.sleep(0.02)  # a training step of ~30 ms in all

    t = threading.Thread(target=train, daemon=True)
    t.start()
    ready.wait(30)
    with sync_playwright() as p:
        b = _browser(p)
        page = b.new_page(viewport={"width": 1400, "height": 1800})
        page.goto(handle.url + "#/runs/latency")
        page.wait_for_function("window.convscopeDashboard && window.convscopeDashboard.firstDrawMs > 0", timeout=30_000)
        page.evaluate("window.convscopeDashboard.latencies.length = 0")
        time.sleep(seconds)
        lat = page.evaluate("window.convscopeDashboard.latencies.slice()")
        b.close()
    stop.set()
    t.join(30)
    handle.stop()
    lat = np.asarray(lat, dtype=float)
    return {"frames": len(lat), "median": float(np.median(lat)), "p95": float(np.percentile(lat, 95))}


def _ingest_one(label: str, make, count: int, batch: int, viewers: int) -> tuple:
    import httpx
    import websockets

    tmp = tempfile.mkdtemp()
    handle = start_local_server(tmp)
    client = httpx.Client(base_url=handle.url, timeout=60)
    run = client.post("/api/runs", json={"name": "ingest"}).json()["id"]
    bodies = [b"".join(encode(make(s)) for s in range(i, i + batch)) for i in range(1, count + 1, batch)]
    received = [0] * viewers
    done = threading.Event()
    url = handle.url.replace("http", "ws") + f"api/runs/{run}/live"

    async def view(k: int) -> None:
        async with websockets.connect(url, max_size=None) as ws:
            while received[k] < count:
                await asyncio.wait_for(ws.recv(), timeout=60)
                received[k] += 1

    async def all_views() -> None:
        await asyncio.gather(*(view(k) for k in range(viewers)))

    vt = threading.Thread(target=lambda: (asyncio.run(all_views()), done.set()), daemon=True)
    vt.start()
    time.sleep(1.0)
    start = time.perf_counter()
    for body in bodies:
        client.post(f"/api/runs/{run}/frames", content=body)
    ingest_s = time.perf_counter() - start
    done.wait(120)
    fanout_s = time.perf_counter() - start
    client.close()
    handle.stop()
    return (label, count, f"{count / ingest_s:,.0f}", f"{sum(len(b) for b in bodies) / ingest_s / 2**20:.1f}",
            viewers, f"{count * viewers / fanout_s:,.0f}", min(received) == count)


def ingest(viewers: int) -> list[tuple]:
    rng = np.random.default_rng(0)

    def scalar(s: int) -> Frame:
        return Frame(run="x", step=s, kind="scalar", payload={"name": "loss", "value": float(s)})

    def maps(s: int) -> Frame:
        return Frame(run="x", step=s, kind="feature_maps", layer="conv1", payload={
            "images": rng.integers(0, 255, (64, 56, 56), dtype=np.uint8), "vmin": 0.0, "vmax": 1.0,
            "normalisation": "per_map", "scale": 1.0, "sample": 0})

    return [_ingest_one("scalar", scalar, 20_000, 500, viewers), _ingest_one("feature maps 64x56x56", maps, 300, 20, viewers)]


def open_long_run(steps: int = 10_000) -> dict:
    from playwright.sync_api import sync_playwright

    from convscope.analysis import FilterGroups  # noqa: F401  (the same frames the monitor writes)

    tmp = tempfile.mkdtemp()
    w = RunStore(tmp).create_run("long", model="SimplifiedLeNet5")
    rng = np.random.default_rng(0)
    for step in range(1, steps + 1):
        w.write(Frame(run="long", step=step, kind="scalar", payload={"name": "loss", "value": float(1 / step)}))
        if step % 10 == 0:
            for layer, (f, c) in (("conv1", (16, 1)), ("conv2", (32, 16))):
                w.write(Frame(run="long", step=step, kind="weight_grid", layer=layer,
                              payload={"weights": rng.normal(size=(f, c, 3, 3)).astype(np.float32), "vmax": 3.0}))
                w.write(Frame(run="long", step=step, kind="gradient_health", layer=layer, payload={
                    "status": "healthy", "grad_norm": 1.0, "update_ratio": 1e-3, "zero_fraction": 0.0,
                    "dead_fraction": 0.0, "nonfinite": 0}))
                w.write(Frame(run="long", step=step, kind="trajectory", layer=layer, payload={
                    "dims": rng.normal(size=3).astype(np.float32), "dim_index": np.arange(3), "pca": rng.normal(size=3).astype(np.float32),
                    "explained_variance": np.ones(3, np.float32) / 3, "shape": [f, c, 3, 3]}))
        if step % 1000 == 0:
            w.flush()
    w.close()
    handle = start_local_server(tmp)
    with sync_playwright() as p:
        b = _browser(p)
        page = b.new_page(viewport={"width": 1400, "height": 1800})
        times = []
        for _ in range(3):
            start = time.perf_counter()
            page.goto(handle.url + "#/runs/long")
            page.wait_for_function("window.convscopeDashboard && window.convscopeDashboard.firstDrawMs > 0", timeout=60_000)
            times.append(time.perf_counter() - start)
            page.goto("about:blank")
        b.close()
    handle.stop()
    return {"steps": steps, "median_s": statistics.median(times), "all": times}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--viewers", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    print(f"# live path on localhost ({machine()})\n")
    lat = latency(args.seconds)
    print(table(("measure", "frames", "median ms", "p95 ms"), [("frame created -> drawn in the dashboard", lat["frames"], f"{lat['median']:.0f}", f"{lat['p95']:.0f}")]))
    print()
    print(table(("frames", "count", "ingest frames/s", "ingest MiB/s", "viewers", "fan-out frames/s", "all delivered"), ingest(args.viewers)))
    print()
    long = open_long_run()
    print(table(("finished run", "open to first render, median s", "all s"), [(f"{long['steps']:,} steps", f"{long['median_s']:.2f}", ", ".join(f"{t:.2f}" for t in long["all"]))]))


if __name__ == "__main__":
    main()

"""Load: one server, several live training runs and several viewers of each, for minutes.

A `convscope serve` process; R producer processes, each training the simplified LeNet-5 with
``convscope.watch(serve=URL)`` (every view every 5 steps, frames shipped over HTTP; each step
is padded to ``--step-ms`` as if the model trained on an accelerator, so R trainings fit on a
small CPU); V WebSocket viewers per run, which join as soon as the run appears, replay it
from its start and then follow it live. Reported:

* frames: made by each monitor, sent by its HTTP sink, dropped by it, held by the server's
  store at the end, and received by each viewer (min over viewers); "lost" is frames made
  but not received by the slowest viewer;
* latency: a frame's creation in the training process to its arrival at a viewer (the
  live part only, not the replay), median, p95 and max over all viewers;
* the server process: resident memory at start, peak and end, and CPU use.

Run: python benchmarks/bench_load.py [--runs 3] [--viewers 4] [--seconds 120]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import machine, table  # noqa: E402


def producer(url: str, name: str, seconds: float, step_ms: float) -> None:
    """One training run shipping its frames to ``url``; prints its figures as JSON at the end."""
    import torch

    import convscope
    from convscope.sinks.http import HttpSink

    torch.set_num_threads(1)
    torch.manual_seed(int(name.rsplit("-", 1)[1]))
    spec = convscope.load_model("lenet5-simplified", pretrained=False).input_spec
    data = convscope.load_dataset("mnist-5k", spec=spec)
    net = convscope.load_model("lenet5-simplified", pretrained=False).module.train()
    opt = torch.optim.SGD(net.parameters(), lr=0.02, momentum=0.9)  # (0.05 diverges for some seeds)
    sink = HttpSink(url, run=name, model="LeNet5Simplified")
    mon = convscope.watch(net, optimizer=opt, logdir=None, sinks=[sink], every=5, budget=None, run=name)
    end = time.monotonic() + seconds
    step = 0
    while time.monotonic() < end:
        t = time.monotonic()
        i = step * 32 % 4900
        loss = torch.nn.functional.cross_entropy(net(data.images[i : i + 32]), data.labels[i : i + 32])
        opt.zero_grad()
        loss.backward()
        opt.step()
        mon.log(loss=loss)
        step += 1
        time.sleep(max(0.0, step_ms / 1000 - (time.monotonic() - t)))
    mon.close()
    print(json.dumps({"name": name, "run": sink.run_id, "steps": step, "frames": mon.stats.frames,
                      "queue_dropped": mon.stats.dropped, "sent": sink.sent, "sink_dropped": sink.dropped}), flush=True)


def _rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Viewers:
    """V WebSocket viewers per run, joining each run as soon as the server announces it."""

    def __init__(self, base: str, per_run: int) -> None:
        self.ws = base.replace("http://", "ws://").rstrip("/")
        self.per_run = per_run
        self.received: dict[str, list[int]] = {}
        self.latency: list[float] = []
        self.tasks: list[asyncio.Task] = []
        self.stop = asyncio.Event()

    async def follow_runs(self) -> None:
        import websockets

        async with websockets.connect(self.ws + "/api/live", max_size=None) as sock:
            while not self.stop.is_set():
                try:
                    msg = json.loads(await asyncio.wait_for(sock.recv(), 0.5))
                except TimeoutError:
                    continue
                run = msg.get("run", {}).get("id")
                if run and run not in self.received:
                    self.received[run] = [0] * self.per_run
                    self.tasks += [asyncio.create_task(self.view(run, i)) for i in range(self.per_run)]

    async def view(self, run: str, i: int) -> None:
        import websockets

        from convscope.frames import decode

        joined = time.time()
        async with websockets.connect(f"{self.ws}/api/runs/{run}/live", max_size=None) as sock:
            await sock.send(json.dumps({"since": -1}))  # "since" is the last step held: -1 replays step 0 too
            while not self.stop.is_set():
                try:
                    data = await asyncio.wait_for(sock.recv(), 0.5)
                except TimeoutError:
                    continue
                if isinstance(data, bytes):
                    self.received[run][i] += 1
                    frame = decode(data, copy=False)
                    if frame.wall_time > joined:  # live, not replayed
                        self.latency.append(time.time() - frame.wall_time)

    async def run(self, until: threading.Event) -> None:
        follower = asyncio.create_task(self.follow_runs())
        while not until.is_set():
            await asyncio.sleep(0.2)
        await asyncio.sleep(3.0)  # the last frames drain
        self.stop.set()
        await asyncio.gather(follower, *self.tasks, return_exceptions=True)


def bench(runs: int, viewers: int, seconds: float, step_ms: float) -> str:
    import urllib.request

    logdir = tempfile.mkdtemp()
    server = subprocess.Popen([sys.executable, "-c", "import sys; from convscope.cli import main; sys.exit(main())",
                               "serve", "--logdir", logdir, "--port", "0"], stdout=subprocess.PIPE, text=True)
    server.stdout.readline()
    url = server.stdout.readline().split("open ", 1)[1].strip()
    rss = [_rss_mib(server.pid)]
    cpu0, t0 = _cpu_seconds(server.pid), time.perf_counter()
    done = threading.Event()
    view = Viewers(url, viewers)
    watcher = threading.Thread(target=lambda: asyncio.run(view.run(done)), daemon=True)
    watcher.start()
    time.sleep(1.0)
    procs = [subprocess.Popen([sys.executable, __file__, "--producer", url, "--name", f"load-{k}", "--seconds", str(seconds),
                               "--step-ms", str(step_ms)], stdout=subprocess.PIPE, text=True) for k in range(runs)]
    while any(p.poll() is None for p in procs):
        rss.append(_rss_mib(server.pid))
        time.sleep(1.0)
    made = [json.loads(p.stdout.read().strip().splitlines()[-1]) for p in procs]
    done.set()
    watcher.join(60)
    rss.append(_rss_mib(server.pid))
    cpu = (_cpu_seconds(server.pid) - cpu0) / (time.perf_counter() - t0)
    with urllib.request.urlopen(url.rstrip("/") + "/api/runs", timeout=30) as r:
        stored = {info["id"]: info for info in json.loads(r.read())}
    server.terminate()
    server.wait(10)
    server.stdout.close()

    rows = []
    for m in made:
        got = view.received.get(m["run"], [0])
        rows.append((m["name"], m["steps"], m["frames"], m["sent"], m["sink_dropped"] + m["queue_dropped"],
                     stored.get(m["run"], {}).get("frames", "?"), min(got), m["frames"] - min(got)))
    lat = sorted(view.latency)
    p95 = lat[int(0.95 * (len(lat) - 1))] if lat else float("nan")
    return (
        f"## {runs} live runs x {viewers} viewers each, {seconds:.0f} s of training (steps padded to {step_ms:.0f} ms)\n\n"
        + table(("run", "steps", "frames made", "sent", "dropped by sink", "stored", "received (slowest viewer)", "lost"), rows)
        + "\n\n"
        + table(("latency to viewers (live frames)", "median ms", "p95 ms", "max ms", "frames timed"),
                [("creation -> WebSocket arrival", f"{statistics.median(lat) * 1e3:.1f}" if lat else "-",
                  f"{p95 * 1e3:.1f}", f"{max(lat) * 1e3:.1f}" if lat else "-", len(lat))])
        + "\n\n"
        + table(("server process", "value"),
                [("resident memory at start, MiB", f"{rss[0]:.0f}"), ("peak, MiB", f"{max(rss):.0f}"),
                 ("at the end, MiB", f"{rss[-1]:.0f}"), ("CPU (share of one core)", f"{cpu * 100:.0f}%")])
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--viewers", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--step-ms", type=float, default=50.0, help="pad each training step to this long")
    parser.add_argument("--producer", help=argparse.SUPPRESS)
    parser.add_argument("--name", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.producer:
        producer(args.producer, args.name, args.seconds, args.step_ms)
        return
    print(f"# load: several live runs and viewers on one server ({machine()})\n")
    print(bench(args.runs, args.viewers, args.seconds, args.step_ms))


if __name__ == "__main__":
    main()

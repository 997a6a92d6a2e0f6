"""How the in situ monitor's cost grows with the number of filters and of layers.

Two families of plain conv nets (3x3 convs, ReLU, 32x32 RGB inputs, batch 16, SGD), each watched
with every view at every step (``budget=None``) into an in-memory sink:

* one conv layer of F filters after a 16-filter stem, F = 16 ... 512 (the correlation matrix
  and the filter groups grow with F squared);
* L conv layers of 32 filters, L = 2 ... 16 (everything per layer grows with L).

Per recording step: CPU seconds of the background thread (analysis, encoding, sink), seconds
on the training thread (hooks, device-side reductions, copies), and the bytes of frames made;
and the plain training step for scale. Medians over the recorded steps of several rounds.

Run: python benchmarks/bench_scaling.py [--steps 12] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import machine, table  # noqa: E402

import convscope  # noqa: E402
from convscope.frames import encode  # noqa: E402
from convscope.sinks.memory import MemorySink  # noqa: E402


def _net(widths: list[int]) -> torch.nn.Module:
    layers: list[torch.nn.Module] = []
    c = 3
    for w in widths:
        layers += [torch.nn.Conv2d(c, w, 3, padding=1), torch.nn.ReLU()]
        c = w
    return torch.nn.Sequential(*layers, torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(c, 10))


def measure(widths: list[int], steps: int, rounds: int) -> dict[str, float]:
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(16, 3, 32, 32, generator=gen), torch.randint(0, 10, (16,), generator=gen)
    plain, worker, hooks, size = [], [], [], []
    for r in range(rounds):
        torch.manual_seed(r)
        net = _net(widths)
        opt = torch.optim.SGD(net.parameters(), lr=0.01)
        for _ in range(steps):  # plain steps, for scale
            t = time.perf_counter()
            loss = torch.nn.functional.cross_entropy(net(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            plain.append(time.perf_counter() - t)
        sink = MemorySink(maxlen=100_000)
        with convscope.watch(net, optimizer=opt, logdir=None, sinks=[sink], every=1, budget=None) as mon:
            for _ in range(steps):
                loss = torch.nn.functional.cross_entropy(net(x), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
        recorded = max(mon.stats.recorded_steps, 1)
        worker.append(mon._pipeline.stats.cpu_seconds / recorded)
        hooks.append(mon.stats.seconds_in_step_hooks / recorded)
        size.append(sum(len(encode(f)) for f in sink.frames) / recorded)
    return {"plain": statistics.median(plain), "worker": statistics.median(worker), "hooks": statistics.median(hooks),
            "bytes": statistics.median(size)}


def _rows(configs: list[tuple[str, list[int]]], steps: int, rounds: int) -> list[tuple]:
    rows = []
    for label, widths in configs:
        m = measure(widths, steps, rounds)
        rows.append((label, f"{m['plain'] * 1e3:.1f}", f"{m['worker'] * 1e3:.1f}", f"{m['hooks'] * 1e3:.2f}",
                     f"{m['bytes'] / 1024:.0f}", f"{m['worker'] / m['plain']:.2f}"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    headers = ("network", "plain step ms", "background CPU ms / recording", "training-thread ms / recording",
               "frames KiB / recording", "background / plain step")
    print(f"# in situ cost against network size ({machine()})\n")
    print("## filters: a 16-filter stem and one conv layer of F filters (32x32, batch 16)\n")
    print(table(headers, _rows([(f"F = {f}", [16, f]) for f in (16, 64, 128, 256, 512)], args.steps, args.rounds)))
    print("\n## layers: L conv layers of 32 filters (32x32, batch 16)\n")
    print(table(headers, _rows([(f"L = {n}", [32] * n) for n in (2, 4, 8, 16)], args.steps, args.rounds)))
    print("\nEvery view at every step, no overhead budget: the cost of one full recording. With"
          " `every=10` a recording's background CPU is spread over 10 training steps.")


if __name__ == "__main__":
    main()

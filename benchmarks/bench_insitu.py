"""Overhead of watching training in situ, measured side by side in one run.

Trains the simplified LeNet-5 (batch 64, SGD) on the bundled MNIST digits and times steps/s:
plain; convscope.watch at every=10 (the default views) and every=1 (everything, every step),
into the run store and into memory; and, for comparison, TensorBoard's SummaryWriter writing
histograms of every parameter and gradient every 10 steps (what people do today).
Configurations are interleaved over rounds so machine noise hits them alike; medians shown.

Run: python benchmarks/bench_insitu.py [--steps 200] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import machine, table  # noqa: E402

import convscope  # noqa: E402
from convscope.data import load_dataset  # noqa: E402
from convscope.models.zoo import load_zoo_model  # noqa: E402


def _setup():
    torch.manual_seed(0)
    loaded = load_zoo_model("lenet5-simplified", pretrained=False)
    model = loaded.module.train()
    return model, torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)


def _loop(model, opt, data, steps, *, after=None):
    images, labels = data
    start = time.perf_counter()
    for step in range(steps):
        i = step * 64 % (len(images) - 64)
        x, y = images[i : i + 64], labels[i : i + 64]
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if after is not None:
            after(step, model, loss)
    return time.perf_counter() - start


def run_plain(data, steps, _tmp):
    model, opt = _setup()
    return _loop(model, opt, data, steps), None


def _watch(every, *, store):
    def run(data, steps, tmp):
        model, opt = _setup()
        kwargs = {"logdir": tmp if store else None}
        if not store:
            from convscope.sinks.memory import MemorySink

            kwargs["sinks"] = [MemorySink(maxlen=1000)]
        mon = convscope.watch(model, optimizer=opt, every=every, **kwargs)
        seconds = _loop(model, opt, data, steps, after=lambda s, m, loss: mon.log(loss=loss))
        t = time.perf_counter()
        mon.close()
        return seconds, {"close_s": time.perf_counter() - t, "frames": mon.stats.frames, "dropped": mon.stats.dropped}

    return run


def run_tensorboard(data, steps, tmp):
    from torch.utils.tensorboard import SummaryWriter

    model, opt = _setup()
    writer = SummaryWriter(tmp)

    def after(step, m, loss):
        writer.add_scalar("loss", loss.item(), step)
        if step % 10 == 0:
            for name, p in m.named_parameters():
                writer.add_histogram(name, p, step)
                writer.add_histogram(name + ".grad", p.grad, step)

    seconds = _loop(model, opt, data, steps, after=after)
    writer.close()
    return seconds, None


CONFIGS = {
    "plain": run_plain,
    "convscope every=10 (store)": _watch(10, store=True),
    "convscope every=10 (memory)": _watch(10, store=False),
    "convscope every=1 (store)": _watch(1, store=True),
    "tensorboard histograms every=10": run_tensorboard,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    spec = load_zoo_model("lenet5-simplified", pretrained=False).input_spec
    ds = load_dataset("mnist-5k", spec=spec)
    order = torch.randperm(len(ds), generator=torch.Generator().manual_seed(0))
    data = (ds.images[order], ds.labels[order])
    print(f"# in situ overhead: simplified LeNet-5, batch 64, {args.steps} steps ({machine()})\n")
    times: dict[str, list[float]] = {k: [] for k in CONFIGS}
    extra: dict[str, dict] = {}
    for _ in range(args.rounds):
        for name, fn in CONFIGS.items():
            with tempfile.TemporaryDirectory() as tmp:
                seconds, info = fn(data, args.steps, tmp)
            times[name].append(seconds)
            if info:
                extra[name] = info
    base = statistics.median(times["plain"])
    rows = []
    for name, ts in times.items():
        med = statistics.median(ts)
        info = extra.get(name, {})
        rows.append((name, f"{args.steps / med:.1f}", f"{med / base:.3f}", info.get("frames", ""), info.get("dropped", ""),
                     f"{info['close_s']:.2f}" if "close_s" in info else ""))
    print(table(("configuration", "steps/s (median)", "time vs plain", "frames", "dropped", "close s"), rows))


if __name__ == "__main__":
    main()

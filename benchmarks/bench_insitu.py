"""Overhead of watching training in situ, measured side by side in one run.

Two workloads: the simplified LeNet-5 (batch 64, SGD) on the bundled MNIST digits, and a
VGG-16-sized first block (conv 3->64->64 on 224x224 RGB, batch 8, global pooling and a dense
layer). For each, steps/s of: plain training; convscope.watch with every view every 10 steps
and every step (into the run store), with its default overhead budget and without one
(``budget=None``: every asked-for recording is made, whatever it costs), and once more without
the batching (convscope gathers up to 2 s of recordings and works through them view by view;
"one recording at a time" turns that off), and once with the analysis on the background thread
where the default here (training's threads fill the cores) runs it on the training thread
(``analysis_thread=``); TensorBoard's SummaryWriter with
histograms of every parameter and gradient every 10 steps and every step (what people do today).
Configurations are interleaved over rounds so machine noise hits them alike. Each run first
trains ``--warmup`` steps that are not timed (first-call allocations, the model graph, imports,
the store: a one-time start-up, reported in its own column), then times ``--steps`` steps: the
steady state that a long training run sees; the time ``close()`` takes to finish the analysis
still queued is added to the timed part. Overheads are the median over rounds of each run's
time against the plain run of the same round (paired, so slow drifts of a shared machine
cancel), with the interquartile range of those ratios.

Separate runs of a few seconds still differ by several percent on a shared machine, and two
instances of the same model by a percent or two. So LeNet-5 is also measured in one process,
on one training: it takes turns of ``--block`` steps, watched and not (``monitor.pause()``),
``--pairs`` times; a watched turn ends when its analysis is done. Turns still meet the
machine at different moments, and a turn ends with the analysis of its last batch done while
training waits, which a long training pays once. So LeNet-5 is measured a third way too,
watched without a pause for ``--within`` steps, each step timed: the quiet steps (no recording,
no analysis, no frames) stand for plain training, and the others' excess over them is the cost.
That reading misses what every step pays (torch's hook machinery, ``log()``, the background
thread's wakes), which the quiet steps carry too. The fourth measure, the one to decide by,
misses nothing: two trainings in one process, plain and watched, take a step each in turn for
``--paired`` steps, every step timed; the background thread's share of the plain steps is moved
to the watched side, and two plain trainings side by side give the measure's own error. It
also runs with one torch thread fewer than the cores for both trainings: a core to spare for
convscope's background thread, the case of training on a GPU. The
VGG block gets the same measure (``--vgg-paired`` steps), and the no-pause one (``--vgg-within``
steps): its separate rounds hold one recording each and cannot tell a few percent, and its
steps' times wander by a third over minutes, which the no-pause measure, setting each step
against its neighbours, cancels best.

Run: python benchmarks/bench_insitu.py [--steps 300] [--rounds 5] [--workload lenet|vgg|both] [--vgg-rounds 3]
     [--block 400] [--pairs 12] [--within 3000] [--within-runs 3] [--paired 2000] [--paired-runs 3]
     [--vgg-paired 60] [--vgg-paired-runs 1] [--vgg-within 100] [--vgg-within-runs 1] (0 rounds or steps: skip that one)
     [--attribution 3] (LeNet-5's step-by-step measure without each part in turn: what each costs)
     [--collections 8000] (Python's garbage collections in LeNet-5 steps, plain and watched, the heap frozen or not)
     [--configs 'every=10'] (a subset, for a quick look)
     [--paired-only 'no budget' 'nothing due'] (only those rows of LeNet-5's step-by-step measure: minutes, not an hour)
     [--parts 2000] (only the timers of where a LeNet-5 recording's time goes: a minute)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import machine, table  # noqa: E402

import convscope  # noqa: E402
from convscope.data import load_dataset  # noqa: E402
from convscope.insitu._budget import SlowdownMeter  # noqa: E402
from convscope.models.zoo import load_zoo_model  # noqa: E402

WORKLOAD = {"name": "lenet", "batch": 64, "device": "cpu", "warmup": 50}
#: each workload's batch (``--lenet-batch`` sets LeNet-5's)
BATCH = {"lenet": 64, "vgg": 8}


def _vgg_block() -> torch.nn.Module:
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(3, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(2), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10),
    )


def _setup():
    torch.manual_seed(0)
    if WORKLOAD["name"] == "vgg":
        model = _vgg_block().train()
    else:
        model = load_zoo_model("lenet5-simplified", pretrained=False).module.train()
    model = model.to(WORKLOAD["device"])
    return model, torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)


def _train_step(model, opt, data, step):
    """One SGD step on the ``step``-th batch of ``data``; the loss."""
    images, labels = data
    batch = WORKLOAD["batch"]
    i = step * batch % (len(images) - batch)
    loss = torch.nn.functional.cross_entropy(model(images[i : i + batch]), labels[i : i + batch])
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss


def _log_tensorboard(writer, model, loss, step, every):
    """What people do today: the loss, and histograms of every parameter and gradient every ``every`` steps."""
    writer.add_scalar("loss", loss.item(), step)
    if step % every == 0:
        for name, p in model.named_parameters():
            writer.add_histogram(name, p, step)
            writer.add_histogram(name + ".grad", p.grad, step)


def _loop(model, opt, data, steps, *, after=None):
    """Train ``warmup + steps`` steps; return the seconds of the timed ``steps``."""
    warmup = WORKLOAD["warmup"]
    start = time.perf_counter()
    for step in range(warmup + steps):
        if step == warmup:
            _sync()
            start = time.perf_counter()
        loss = _train_step(model, opt, data, step)
        if after is not None:
            after(step, model, loss)
    _sync()
    return time.perf_counter() - start


def _sync() -> None:
    if WORKLOAD["device"].startswith("cuda"):
        torch.cuda.synchronize()


def run_plain(data, steps, _tmp):
    begin = time.perf_counter()
    model, opt = _setup()
    seconds = _loop(model, opt, data, steps)
    return seconds, {"startup": time.perf_counter() - begin - seconds}


def _watch(every, *, store, budget="default", nice=None, batch_window=None, analysis_thread=None):
    def run(data, steps, tmp):
        model, opt = _setup()
        kwargs = {"logdir": tmp if store else None}
        if not store:
            from convscope.sinks.memory import MemorySink

            kwargs["sinks"] = [MemorySink(maxlen=1000)]
        if budget != "default":
            kwargs["budget"] = budget
        if nice is not None:
            kwargs["worker_nice"] = nice
        if batch_window is not None:
            kwargs["batch_window"] = batch_window
        if analysis_thread is not None:
            kwargs["analysis_thread"] = analysis_thread
        begin = time.perf_counter()
        mon = convscope.watch(model, optimizer=opt, every=every, **kwargs)
        seconds = _loop(model, opt, data, steps, after=lambda s, m, loss: mon.log(loss=loss))
        startup = time.perf_counter() - begin - seconds
        t = time.perf_counter()
        mon.close()  # what the analysis still has to do counts: it is part of the cost
        close = time.perf_counter() - t
        seconds += close
        return seconds, {
            "close_s": close, "frames": mon.stats.frames, "dropped": mon.stats.dropped,
            "startup": startup,
            "recorded": f"{mon.stats.recorded_steps} of {(WORKLOAD['warmup'] + steps) // every}",
            "cpu": f"{mon.stats.analysis_cpu_seconds / seconds * 100:.1f}%",
        }

    return run


def _tensorboard(every):
    def run(data, steps, tmp):
        from torch.utils.tensorboard import SummaryWriter

        begin = time.perf_counter()
        model, opt = _setup()
        writer = SummaryWriter(tmp)

        seconds = _loop(model, opt, data, steps, after=lambda step, m, loss: _log_tensorboard(writer, m, loss, step, every))
        startup = time.perf_counter() - begin - seconds
        t = time.perf_counter()
        writer.close()
        return seconds + time.perf_counter() - t, {"startup": startup}

    return run


#: watch() options of the one-process measures (bench_interleaved, bench_within, bench_paired)
_ONE_PROCESS = {
    "convscope every=10": {"every": 10},
    "convscope every=10, batching window 0.5 s": {"every": 10, "batch_window": 0.5},
    "convscope every=10, no budget": {"every": 10, "budget": None},
    "convscope every=10, no budget, one recording at a time": {"every": 10, "budget": None, "batch_window": 0.0},
    "convscope every=10, no budget, analysis in the background": {"every": 10, "budget": None, "analysis_thread": "background"},
    # the configuration (b) as it reads: the views every 10 steps and no log() (``log``: not
    # a watch() option; False leaves log(loss=...) out of the loop), to set beside the rows that log
    "convscope every=10, no budget, views only (no log())": {"every": 10, "budget": None, "log": False},
    # what watching costs where nothing is recorded: the step hooks and log(loss=...) at every
    # step, whose values travel as frames (one per value) to the run store
    "convscope, nothing due, log() every step": {"every": 10**6, "budget": None},
}


def _spare_core() -> dict[str, dict]:
    """bench_paired's rows where both trainings use one torch thread fewer than now
    (``torch_threads``; ``plain``: the measure's own error there), so that convscope's background
    thread has a core of its own, as beside a GPU; none with one thread."""
    n = torch.get_num_threads() - 1
    if n < 1:
        return {}
    label = f"{n} torch thread{'s' if n > 1 else ''}, a core to spare"
    return {
        f"plain beside plain, {label}": {"plain": True, "torch_threads": n},
        f"convscope every=10, no budget, {label}": {"every": 10, "budget": None, "torch_threads": n},
        f"convscope every=10, {label}": {"every": 10, "torch_threads": n},
    }


def _configs(*names: str) -> dict[str, dict]:
    return {name: _ONE_PROCESS[name] for name in names}


def _workload(name: str) -> tuple[Any, int, int, str]:
    """Set the workload up for a one-process measure: its data, untimed first steps, steps per
    resampled block and title (see ``_PAIRED``)."""
    WORKLOAD.update(name=name, batch=BATCH[name], warmup=0)
    warm, block, title = _PAIRED[name]
    return _data(name), warm, block, title.format(batch=BATCH[name])


CONFIGS = {
    "plain": run_plain,
    "convscope every=10": _watch(10, store=True),
    "convscope every=10, worker_nice=19": _watch(10, store=True, nice=19),
    "convscope every=10, no budget": _watch(10, store=True, budget=None),
    "convscope every=10, no budget, one recording at a time": _watch(10, store=True, budget=None, batch_window=0.0),
    "convscope every=10, no budget, analysis in the background": _watch(10, store=True, budget=None, analysis_thread="background"),
    "tensorboard histograms every=10": _tensorboard(10),
    "convscope every=1": _watch(1, store=True),
    "convscope every=1, no budget": _watch(1, store=True, budget=None),
    "tensorboard histograms every=1": _tensorboard(1),
}


def _data(name: str):
    if name == "vgg":
        gen = torch.Generator().manual_seed(0)
        images, labels = torch.rand(64, 3, 224, 224, generator=gen), torch.randint(0, 10, (64,), generator=gen)
        return images.to(WORKLOAD["device"]), labels.to(WORKLOAD["device"])
    spec = load_zoo_model("lenet5-simplified", pretrained=False).input_spec
    ds = load_dataset("mnist-5k", spec=spec)
    order = torch.randperm(len(ds), generator=torch.Generator().manual_seed(0))
    return ds.images[order].to(WORKLOAD["device"]), ds.labels[order].to(WORKLOAD["device"])


def _quartiles(ratios: list[float]) -> tuple[float, float]:
    """The first and third quartiles of ``ratios`` (both the one value, where there is only one)."""
    if len(ratios) < 2:
        return ratios[0], ratios[0]
    q1, _, q3 = statistics.quantiles(ratios, n=4)
    return q1, q3


def bench(name: str, steps: int, rounds: int, warmup: int) -> str:
    WORKLOAD.update(name=name, batch=BATCH[name], warmup=0)
    _setup()  # warm up the process (first-call allocations, kernels) before anything is timed
    run_plain(_data(name), 3, None)
    WORKLOAD["warmup"] = warmup
    data = _data(name)
    times: dict[str, list[float]] = {k: [] for k in CONFIGS}
    startups: dict[str, list[float]] = {k: [] for k in CONFIGS}
    extra: dict[str, dict] = {}
    for _ in range(rounds):
        for config, fn in CONFIGS.items():
            with tempfile.TemporaryDirectory() as tmp:
                seconds, info = fn(data, steps, tmp)
            times[config].append(seconds)
            startups[config].append(info.pop("startup"))
            if info:
                extra[config] = info
    base = statistics.median(startups["plain"])
    rows = []
    for config, ts in times.items():
        ratios = sorted(t / p for t, p in zip(ts, times["plain"], strict=True))
        q1, q3 = _quartiles(ratios)
        info = extra.get(config, {})
        rows.append((
            config, f"{steps / statistics.median(ts):.2f}",
            "" if config == "plain" else f"{(statistics.median(ratios) - 1) * 100:+.1f}%",
            "" if config == "plain" else f"{(q1 - 1) * 100:+.1f} .. {(q3 - 1) * 100:+.1f}%",
            f"{statistics.median(startups[config]) - base:+.2f}" if config != "plain" else f"({base:.2f})",
            info.get("recorded", ""), info.get("frames", ""), info.get("dropped", ""), info.get("cpu", ""),
        ))
    title = _PAIRED[name][2].format(batch=BATCH[name])
    return f"## {title}, {warmup} + {steps} steps, {rounds} rounds\n\n" + table(
        ("configuration", "steps/s", "overhead (median)", "overhead (IQR)", "start-up s",
         "recording steps", "frames", "dropped", "convscope CPU / wall"), rows
    ) + (
        f"\n\nThe first {warmup} steps of each run are not timed; 'start-up s' is the extra time\n"
        "they took against plain training (plain's own in brackets): watch() itself, the model graph,\n"
        "first imports and the run store, paid once per run. The timed part ends when close()\n"
        "has finished the analysis still queued. 'overhead' is paired per round.\n"
        "convscope rows use the default overhead budget (3%) unless they say 'no budget';\n"
        "'recording steps' shows how many of the asked-for recordings it made (the rest were\n"
        "deferred to stay within the budget; the last round's figures, warm-up included)."
    )


class _Blocks:
    """One training of the LeNet-5 workload, run ``n`` steps at a time, watched or not.

    Unwatched turns pause the monitor (nothing is recorded, its budget's clock stops; its hooks
    stay and return at once) or skip the TensorBoard logging, so both kinds of turn train the
    same model on the same memory: no difference between two model instances enters the ratio.
    """

    def __init__(self, data, watch: dict | None = None, tensorboard: str | None = None, bare: bool = False) -> None:
        self.model, self.opt = _setup()
        self.data, self.pos = data, 0
        watch = None if watch is None else dict(watch)
        self.logs = watch is None or watch.pop("log", True)  # (log(loss=...) at every step)
        self.mon = convscope.watch(self.model, optimizer=self.opt, **watch) if watch is not None else None
        #: ``bare``: the least a watcher can do at every step, to set convscope's quiet steps against:
        #: an optimizer post-step hook that only counts, and each loss read (``item()``) into a list
        self.losses: list[float] | None = None
        if bare:
            self.losses, self.hooked = [], 0
            self.opt.register_step_post_hook(self._bare_hook)
        self.writer = None
        if tensorboard is not None:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(tensorboard)

    def step(self, *, watched: bool = True) -> float:
        """One training step, with the monitor's ``log()`` or TensorBoard's logging; its seconds."""
        start = time.perf_counter()
        loss = _train_step(self.model, self.opt, self.data, self.pos)
        if self.mon is not None and self.logs:
            self.mon.log(loss=loss)
        if self.losses is not None:
            self.losses.append(loss.item())
        if self.writer is not None and watched:
            _log_tensorboard(self.writer, self.model, loss, self.pos, 10)
        self.pos += 1
        return time.perf_counter() - start

    def _bare_hook(self, *_) -> None:
        self.hooked += 1

    def run(self, n: int, *, watched: bool = True) -> float:
        """Seconds for ``n`` steps, and for whatever the monitor or writer still has to do for them."""
        if self.mon is not None and not watched:
            self.mon.pause()
        start = time.perf_counter()
        for _ in range(n):
            self.step(watched=watched)
        if self.mon is not None:
            self.mon._pipeline.drain()  # the turn's analysis, done
        if self.writer is not None:
            self.writer.flush()
        _sync()
        seconds = time.perf_counter() - start
        if self.mon is not None:
            self.mon.resume()
        return seconds

    def cpu(self) -> float:
        """convscope's CPU seconds so far: the background thread and the hooks on the training thread."""
        if self.mon is None:
            return 0.0
        return self.mon._pipeline.stats.cpu_seconds + self.mon.stats.seconds_in_step_hooks

    def close(self) -> None:
        if self.mon is not None:
            self.mon.close()
        if self.writer is not None:
            self.writer.close()


def bench_interleaved(block: int, pairs: int) -> str:
    """LeNet-5 in one process, one training that takes turns of ``block`` steps watched and not.

    Watched and unwatched turns meet the same moments of a shared machine and train the same
    model (a watched turn ends when its analysis is done), so the paired ratios are far less
    noisy than separate runs. The budget counts only the watched turns (paused in between).
    """
    data = _workload("lenet")[0]
    configs = {
        **_ONE_PROCESS,
        # what the views cost apart: the light ones, then the three costly analyses
        "convscope every=10, no budget, weights, gradients, lr, images": {
            "every": 10, "budget": None, "record": ["weights", "gradients", "lr", "feature_maps"]},
        "convscope every=10, no budget, trajectory, distribution, correlation": {
            "every": 10, "budget": None, "record": ["trajectory", "distribution", "correlation"]},
        "tensorboard histograms every=10": "tensorboard",
    }
    rows = []
    for name, config in configs.items():
        with tempfile.TemporaryDirectory() as tmp:
            if config == "tensorboard":
                training = _Blocks(data, tensorboard=tmp)
            else:
                training = _Blocks(data, watch={"logdir": tmp, **config})
            training.run(50, watched=False)
            training.run(50)  # first calls, imports, the graph: not timed
            cpu0 = training.cpu()
            asked = recorded0 = 0
            if training.mon is not None:
                recorded0 = training.mon.stats.recorded_steps
            ratios, wall = [], 0.0
            for k in range(pairs):
                if k % 2:  # each kind of turn goes first half of the time
                    w = training.run(block)
                    p = training.run(block, watched=False)
                else:
                    p = training.run(block, watched=False)
                    w = training.run(block)
                ratios.append(w / p)
                wall += w
                asked += block // 10
            mon = training.mon
            cpu = recorded = estimate = ""
            if mon is not None:
                cpu = f"{(training.cpu() - cpu0) / wall * 100:.1f}%"
                recorded = f"{mon.stats.recorded_steps - recorded0} of {asked}"
            training.close()
            if mon is not None:
                estimate = f"{mon.stats.overhead_estimate * 100:.1f}% (x{mon.stats.slowdown_factor:.2f})"
        q1, q3 = _quartiles(ratios)
        rows.append((
            name, f"{(statistics.median(ratios) - 1) * 100:+.1f}%", f"{(q1 - 1) * 100:+.1f} .. {(q3 - 1) * 100:+.1f}%",
            recorded, cpu, estimate,
        ))
    return f"## simplified LeNet-5 in one process, watched and unwatched turns of {block} steps, {pairs} pairs\n\n" + table(
        ("configuration", "overhead (median)", "overhead (IQR)", "recording steps", "convscope CPU / wall",
         "convscope's own estimate (slowdown factor)"), rows
    ) + (
        "\n\nOne training takes turns, a block of steps watched and a block not (the monitor paused,\n"
        "or TensorBoard not called). A watched block ends when its analysis is done. Both kinds of\n"
        "turn train the same model at the same moments of the shared machine, so the paired ratios\n"
        "spread far less than those of separate runs above. The budget counts the watched turns only.\n"
        "The last column is what the monitor measured itself: the hooks' time, its background CPU\n"
        "times the slowdown factor fitted from the steps, and what the steps its work touched took\n"
        "beyond the others, as a share of training's own time (all watched turns, warm-up included)."
    )


def bench_within(steps: int, runs: int, workload: str = "lenet") -> str:
    """A model watched for ``steps`` steps without a pause: every step timed, and the cost read off
    the steps themselves. Most steps are quiet (no recording, no analysis on either thread, no
    frames written): the mean of those within ``_WITHIN_WINDOW`` steps of a step, less the hooks'
    own time in them, stands for that step trained plainly, and the run's time over the sum of
    those is what convscope cost. Quiet and busy steps alternate within seconds, and each step is
    set against its neighbours, so the machine's slow drifts cancel far better than between turns
    (a VGG step's time wanders by a third over minutes here)."""
    data, warm, _, title = _workload(workload)
    if workload == "vgg":  # (minutes per run: the configurations that decide), and past step 10:
        warm = 12  # its first recording makes the first copies of its large maps
        configs = _configs("convscope every=10, no budget", "convscope every=10")
    else:
        configs = _configs("convscope every=10, no budget", "convscope every=10, no budget, analysis in the background", "convscope every=10")
    found: dict[str, list[tuple[float, float, str, str]]] = {name: [] for name in configs}
    for _ in range(runs):
        for name, config in configs.items():
            with tempfile.TemporaryDirectory() as tmp:
                training = _Blocks(data, watch={"logdir": tmp, **config})
                training.run(warm)  # first calls, imports, the graph: not timed
                mon, pipe = training.mon, training.mon._pipeline
                durations, quiet, hook_time = [], [], []
                cpu0, hooks0, recorded0 = pipe.worker_cpu(), mon.stats.seconds_in_step_hooks, mon.stats.recorded_steps
                last = time.perf_counter()
                for _ in range(steps):
                    training.step()
                    now, cpu, hooks = time.perf_counter(), pipe.worker_cpu(), mon.stats.seconds_in_step_hooks
                    durations.append(now - last)
                    hook_time.append(hooks - hooks0)
                    # (the steps on either side of a recording step carry its hooks)
                    quiet.append(cpu - cpu0 < 2e-4 and hooks - hooks0 < 2e-4 and training.pos % 10 not in (0, 1))
                    last, cpu0, hooks0 = now, cpu, hooks
                start = time.perf_counter()
                pipe.drain()  # what the analysis still had to do counts too
                tail = time.perf_counter() - start
                recorded = mon.stats.recorded_steps - recorded0
                training.close()
            d, q, h = np.array(durations), np.array(quiet), np.array(hook_time)
            found[name].append((
                (d.sum() + tail) / _local_plain(d - h, q).sum() - 1, q.mean(), f"{recorded} of {steps // 10}", mon.analysis_thread,
            ))
    rows = []
    for name, results in found.items():
        costs = sorted(r[0] for r in results)
        rows.append((
            name, results[-1][3], f"{statistics.median(costs) * 100:+.1f}%",
            " ".join(f"{c * 100:+.1f}%" for c in costs), f"{statistics.median(r[1] for r in results) * 100:.0f}%", results[-1][2],
        ))
    return f"## {title}, watched without a pause, {steps} steps, every step timed, {runs} runs\n\n" + table(
        ("configuration", "analysis on", "overhead (median)", "each run", "quiet steps", "recording steps"), rows
    ) + (
        "\n\nEvery step is timed. A quiet step is one in which convscope recorded nothing, analysed\n"
        "nothing and wrote no frames (and not the step before or after a recording step); the mean of\n"
        f"those within {_WITHIN_WINDOW} steps of a step, less the hooks' own time in them, stands for that step\n"
        "trained plainly. 'overhead' is the whole run's time (and the analysis left at its end) against\n"
        "the sum of those."
    )


#: steps on either side of a step whose quiet steps stand for it trained plainly (bench_within)
_WITHIN_WINDOW = 10


def _local_plain(seconds: np.ndarray, quiet: np.ndarray) -> np.ndarray:
    """Each step's plain time: the mean of ``seconds`` over the quiet steps within
    ``_WITHIN_WINDOW`` steps of it (over every quiet step where none is that near)."""
    kernel = np.ones(2 * _WITHIN_WINDOW + 1)
    total = np.convolve(np.where(quiet, seconds, 0.0), kernel, mode="same")
    count = np.convolve(quiet.astype(float), kernel, mode="same")
    overall = seconds[quiet].mean()
    return np.where(count > 0, total / np.maximum(count, 1), overall)


def _threads_cpu(since: dict[int, float] | None = None):
    """CPU seconds of every Python thread but this one, by thread; with ``since`` (an earlier
    reading), the seconds used since then by the threads in both (the background threads of
    convscope or TensorBoard; torch's own compute threads are not Python threads)."""
    now = {}
    for thread in threading.enumerate():
        if thread is threading.current_thread() or thread.ident is None:
            continue
        try:
            now[thread.ident] = time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
        except (OSError, AttributeError):  # ended meanwhile, or no per-thread clocks here
            continue
    if since is None:
        return now
    return sum(max(0.0, t - since[k]) for k, t in now.items() if k in since)


#: per workload of the step-by-step measurement: untimed first steps, steps per resampled block
#: (a few recordings' worth: the cost comes in bursts), and the table's title
_PAIRED = {
    "lenet": (200, 100, "simplified LeNet-5, batch {batch}"),
    "vgg": (6, 10, "VGG-16 first block (3->64->64, 224x224), batch {batch}"),
}


def _beside(mon, seconds: float) -> None:
    """A plain step of ``seconds`` has run between two watched ones: the monitor counts the
    watched training's time alone, as in a process that trains one model. Its budget's clock and
    the step its slowdown meter measures next move on by that much, and so does its batching
    window (``batch_window=``): the recordings waiting are put that much later, so a batch
    gathers as many as alone (measured wall-clock, the window held half as many, about 9 LeNet-5
    recordings instead of 19 at a 12 ms step; the overhead read the same either way within the
    measure's spread, six runs of each in turn on 2026-12-07)."""
    if mon is None:
        return
    if mon._t0 is not None:
        mon._t0 += seconds
    mon._meter.skip(seconds)
    pipe = mon._pipeline
    with pipe._cond:
        queue = pipe._queue
        for i, entry in enumerate(queue):
            queue[i] = entry._replace(submitted=entry.submitted + seconds)
        if 0.0 < pipe.due_at < float("inf"):  # (0: a full batch, due now; inf: nothing queued)
            pipe.due_at += seconds


def _paired_run(
    config: dict | None, data, warm: int, steps: int, block: int
) -> tuple[float, tuple[float, float], str, str, float, float, float]:
    """One run of :func:`bench_paired`: a plain training and one watched as ``config`` says
    (``None``: plain too; ``{"tensorboard": True}``: TensorBoard's histograms; ``{"bare": True}``: a
    no-op optimizer hook and the loss read every step) a step each in turn.
    Its overhead, the overhead's 95% interval, the recordings, where the analysis ran, the
    leaked share, the slowdown fitted, and the plain training's mean step in seconds."""
    with tempfile.TemporaryDirectory() as tmp:
        plain = _Blocks(data)
        if config is not None and config.get("tensorboard"):
            other = _Blocks(data, tensorboard=tmp)
        elif config is not None and config.get("bare"):
            other = _Blocks(data, bare=True)
        else:
            other = _Blocks(data, watch=None if config is None else {"logdir": tmp, **config})
        mon = other.mon
        times = np.zeros((steps, 2))
        leaks = np.zeros(steps)  # the other side's background threads' CPU in each plain step
        for _ in range(warm):  # first calls, imports, the graph: not timed
            _beside(mon, plain.step()), other.step()
        recorded0 = 0 if mon is None else mon.stats.recorded_steps
        for i in range(steps):
            if i % 2 == 0:
                times[i, 1] = other.step()
            cpu = _threads_cpu()
            times[i, 0] = plain.step()
            leaks[i] = _threads_cpu(cpu)
            _beside(mon, times[i, 0])
            if i % 2:
                times[i, 1] = other.step()
        start = time.perf_counter()
        if mon is not None:
            mon._pipeline.drain()  # what the analysis still had to do counts too
        if other.writer is not None:
            other.writer.flush()
        tail = time.perf_counter() - start
        recorded = "" if mon is None else f"{mon.stats.recorded_steps - recorded0} of {steps // 10}"
        where = "" if mon is None else mon.analysis_thread
        other.close()
    factor = 0.0
    if leaks.any():  # the fit the monitor's budget makes: from 1, as far as the steps tell
        meter = SlowdownMeter()
        for seconds, cpu in zip(times[:, 0].tolist(), leaks.tolist(), strict=True):
            meter.add(seconds, cpu)
        factor = meter.factor
    moved = factor * leaks  # seconds of each plain step that were the watcher's
    times[:, 0] -= moved
    times[:, 1] += moved
    blocks = times.reshape(-1, block, 2).sum(axis=1)  # the cost comes in bursts: resampled by blocks
    gen = np.random.default_rng(0)
    picks = gen.integers(0, len(blocks), (2000, len(blocks)))
    boot = blocks[picks].sum(axis=1)
    ci = np.percentile((boot[:, 1] + tail) / boot[:, 0] - 1, [2.5, 97.5])
    cost = (times[:, 1].sum() + tail) / times[:, 0].sum() - 1
    return cost, (ci[0], ci[1]), recorded, where, moved.sum() / times[:, 0].sum(), factor, times[:, 0].mean()


def _paired_rows(*words: str) -> dict[str, dict | None]:
    """The rows of LeNet-5's step-by-step measure; with ``words``, those whose names hold one of
    them, and the measure's own error beside them."""
    rows = {
        "plain beside plain": None,
        **_configs(
            "convscope every=10, no budget", "convscope every=10, no budget, views only (no log())",
            "convscope every=10, no budget, analysis in the background", "convscope every=10", "convscope, nothing due, log() every step",
        ),
        "tensorboard histograms every=10": {"tensorboard": True},
        **_spare_core(),
    }
    if not words:
        return rows
    return {name: c for name, c in rows.items() if name == "plain beside plain" or any(w in name for w in words)}


def bench_paired(
    steps: int, runs: int, configs: dict[str, dict | None] | None = None, workload: str = "lenet", *, what: str = ""
) -> str:
    """A model trained twice in one process, a plain training and a watched one, a step of each
    in turn (which goes first alternates), every step timed: the plain steps are measured at the
    same moments of the machine as the watched ones, and everything watching costs counts, the
    hooks, torch's hook machinery, ``log()``, the background thread's share of the cores and the
    analysis left at the end. Two plain trainings side by side ("plain beside plain") show what
    the measure reads where nothing differs.

    Background threads (convscope's, TensorBoard's event writer) also run during plain steps,
    and slow them: their CPU in them is measured, the plain steps' slowdown per CPU second
    fitted (least squares), and that much time moved from the plain training's side to the
    watched one's ("leaked")."""
    data, warm, block, title = _workload(workload)
    steps = max(block, steps // block * block)
    configs = configs or _paired_rows()
    # per run: overhead, its 95% interval, recordings, analysis thread, leaked share, slowdown, plain step s
    found: dict[str, list[tuple[float, tuple[float, float], str, str, float, float, float]]] = {name: [] for name in configs}
    threads = torch.get_num_threads()
    try:
        for _ in range(runs):
            for name, config in configs.items():
                config = None if config is None else dict(config)
                # both trainings of a run with this many torch threads (a core left to convscope)
                torch.set_num_threads((config or {}).pop("torch_threads", threads))
                if config is not None and config.pop("plain", False):
                    config = None
                found[name].append(_paired_run(config, data, warm, steps, block))
    finally:  # (the caller's thread count, whatever happened)
        torch.set_num_threads(threads)
    rows = []
    for name, results in found.items():
        costs = [r[0] for r in results]
        rows.append((
            name, results[-1][3], f"{statistics.median(costs) * 100:+.1f}%",
            " ".join(f"{r[0] * 100:+.1f}% ({r[1][0] * 100:+.1f}..{r[1][1] * 100:+.1f})" for r in results), results[-1][2],
            " ".join(f"{r[4] * 100:.1f}% (x{r[5]:.2f})" for r in results), f"{statistics.median(r[6] for r in results) * 1e3:.2f}",
        ))
    return f"## {what}{title}, plain and watched trainings step by step in turn, {steps} steps each, {runs} runs\n\n" + table(
        # (the overhead first: report.py plots a table's first measured column)
        ("configuration", "analysis on", "overhead (median)", "each run (95% interval)", "recording steps", "leaked (slowdown)", "plain step ms"),
        rows,
    ) + (
        "\n\nTwo trainings of the same model in one process take a step each in turn, every step timed. "
        "'overhead' is\nthe watched training's time (and the analysis left at its end) against the plain one's; the\n"
        f"interval resamples blocks of {block} steps. 'plain beside plain' is the measure's own error. 'leaked': the\n"
        "share of the plain steps' time that the other side's background threads took (convscope's, or\n"
        "TensorBoard's event writer: their CPU in the plain steps times the slowdown per CPU second fitted\n"
        "on them, from 1 as far as the steps tell, as the budget fits it), moved to the watched side. The budget's clock and the batching window count the\n"
        "watched steps alone, as in a process that trains one model. 'plain step ms': the plain training's mean step. Rows that say 'a core to spare'\n"
        "train both models with one torch thread fewer than the others, so convscope's background thread has a core of\n"
        "its own, as beside a GPU."
    )


def bench_attribution(steps: int, runs: int) -> str:
    """What each part of a LeNet-5 recording costs: the step-by-step measure of the full watch
    (every view every 10 steps, no budget) beside the same watch without one part at a time.
    A part's cost is the full overhead minus the overhead without it."""
    from convscope.insitu._monitor import VIEWS

    def without(*views: str) -> dict:
        return {"every": 10, "budget": None, "record": [v for v in VIEWS if v not in views]}

    configs = {
        "plain beside plain": None,
        **_configs("convscope every=10, no budget"),
        "without the trajectory": without("trajectory"),
        "without distribution and correlation (and groups)": without("distribution", "correlation"),
        "without the feature-map images": without("feature_maps"),
        "without gradient health": without("gradients"),
        "without the run store (no sink: frames made, never encoded or stored)": {"every": 10, "budget": None, "logdir": None},
        "weights only": {"every": 10, "budget": None, "record": ["weights"]},
        **_configs("convscope, nothing due, log() every step"),
        "the least a watcher costs: a no-op optimizer hook, and loss.item() every step": {"bare": True},
    }
    return bench_paired(steps, runs, configs, what="What each part costs: ")


def bench_collections(steps: int, runs: int) -> str:
    """Python's garbage collections during ``steps`` LeNet-5 steps (after untimed first ones):
    plain training, and watched (every view every 10 steps, no budget) with the objects alive at
    the start frozen (``gc_freeze=True``, the default) and not. A full collection goes through
    every tracked object (about 300,000 with torch imported), on the thread that set it off:
    with the analysis on the training thread (the default on a CPU), mostly that one."""
    import gc

    data = _data("lenet")
    configs: dict[str, dict | None] = {
        "plain": None,
        "convscope every=10, no budget, heap not frozen": {"every": 10, "budget": None, "gc_freeze": False},
        "convscope every=10, no budget (heap frozen, the default)": {"every": 10, "budget": None},
    }
    found: dict[str, list[tuple[list[int], list[float]]]] = {name: [] for name in configs}
    counts, seconds, started = [0, 0, 0], [0.0, 0.0, 0.0], [0.0]

    def count(phase: str, info: dict) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            counts[info["generation"]] += 1
            seconds[info["generation"]] += time.perf_counter() - started[0]

    for _ in range(runs):
        for name, config in configs.items():
            with tempfile.TemporaryDirectory() as tmp:
                training = _Blocks(data, watch=None if config is None else {"logdir": tmp, **config})
                training.run(300)  # first calls, imports, the graph: not counted
                counts[:], seconds[:] = [0, 0, 0], [0.0, 0.0, 0.0]
                gc.callbacks.append(count)
                try:
                    training.run(steps)
                finally:
                    gc.callbacks.remove(count)
                found[name].append((list(counts), list(seconds)))
                training.close()
    rows = []
    for name, results in found.items():
        per_step = [sum(t) / steps for _, t in results]
        full = [c[2] for c, _ in results]
        full_ms = [t[2] / c[2] * 1e3 for c, t in results if c[2]]
        rows.append((
            name, " ".join("/".join(map(str, c)) for c, _ in results), " ".join(str(n) for n in full),
            f"{statistics.median(full_ms):.0f}" if full_ms else "-",
            f"{statistics.median(per_step) * 1e6:.1f}", " ".join(f"{x * 1e6:.1f}" for x in per_step),
        ))
    return f"## Python's garbage collections in {steps} LeNet-5 steps, batch {BATCH['lenet']}, {runs} runs\n\n" + table(
        ("configuration", "collections (young/middle/full) each run", "full ones", "ms a full one", "us a step collecting (median)", "each run"),
        rows,
    ) + (
        "\n\nEvery collection in the process, on whichever thread set it off (with the analysis on the training\n"
        "thread, mostly that one), timed through gc.callbacks. A full collection goes through every object the\n"
        "process tracks; with the heap frozen (gc.freeze), those alive when watching started are left out."
    )


#: bench_parts' timers: (where, module, class or "", function, label), in the order of the table;
#: a label's time includes those of the indented rows under it
_PARTS = (
    ("training thread", "convscope.insitu._monitor", "Monitor", "_arm", "hooks attached and taken off (the step before, and the recording step)"),
    ("training thread", "convscope.insitu._monitor", "_LayerState", "activations", "activation copies (forward hooks)"),
    ("training thread", "convscope.insitu._monitor", "_LayerState", "weight", "weight copies (before the update, in the forward hooks; after it, in the row below)"),
    ("training thread", "convscope.insitu._monitor", "Monitor", "_record", "the recording's snapshots and work items (after the step)"),
    ("training thread", "convscope.insitu._monitor", "_LayerState", "grad", "  gradient copies"),
    ("analysis", "convscope.insitu._pipeline", "FramePipeline", "analyse_due", "the gathered recordings' analysis (a batch)"),
    ("analysis", "convscope.insitu._reduce", "", "_activation_frames", "  distribution, correlation and groups"),
    ("analysis", "convscope.insitu._reduce", "", "_trajectory_frames", "  trajectory"),
    ("analysis", "convscope.insitu._reduce", "", "_health_frames", "  gradient health"),
    ("analysis", "convscope.insitu._reduce", "", "_images_frame", "  feature-map images"),
    ("analysis", "convscope.insitu._reduce", "", "_weight_frames", "  weight grid"),
    ("analysis", "convscope.insitu._pipeline", "", "_encode_ahead", "  encoding the frames"),
)


def bench_parts(steps: int) -> str:
    """Where a LeNet-5 recording's time goes: every view every 10 steps, no budget, no ``log()``,
    the analysis where ``"auto"`` puts it, with a timer around each part (the functions of
    ``_PARTS``, wrapped for this measure alone). Times are per recording, taken in place, right
    after training steps evicted the caches: several times what the same calls take in a loop.
    Set beside ten plain steps, they say what share of training each part takes."""
    import importlib

    data = _data("lenet")
    spent: dict[str, float] = dict.fromkeys((label for *_, label in _PARTS), 0.0)
    calls: dict[str, int] = dict.fromkeys(spent, 0)
    undo = []

    def timed(fn, label):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[label] += time.perf_counter() - start
                calls[label] += 1

        return wrapper

    for _, module, cls, name, label in _PARTS:
        owner = importlib.import_module(module)
        owner = getattr(owner, cls) if cls else owner
        undo.append((owner, name, owner.__dict__[name]))
        setattr(owner, name, timed(owner.__dict__[name], label))
    try:
        plain = _Blocks(data)
        plain.run(200)
        plain_s = plain.run(steps) / steps
        plain.close()
        with tempfile.TemporaryDirectory() as tmp:
            watched = _Blocks(data, watch={"logdir": tmp, "every": 10, "budget": None, "log": False})
            watched.run(200)  # first calls, imports, the graph: not counted
            spent.update(dict.fromkeys(spent, 0.0))
            calls.update(dict.fromkeys(calls, 0))
            recorded = watched.mon.stats.recorded_steps
            watched_s = watched.run(steps) / steps
            recorded = watched.mon.stats.recorded_steps - recorded
            where = watched.mon.analysis_thread
            watched.close()
    finally:
        for owner, name, fn in undo:
            setattr(owner, name, fn)
    ten = 10 * plain_s
    rows = [
        (place, label, f"{spent[label] / recorded * 1e6:.0f}", str(calls[label]), f"{spent[label] / recorded / ten * 100:.2f}%")
        for place, *_, label in _PARTS
    ]
    return f"## Where a LeNet-5 recording's time goes, {recorded} recordings in {steps} steps (analysis on the {where} thread)\n\n" + table(
        ("where", "part", "us a recording", "calls", "share of 10 plain steps"), rows
    ) + (
        f"\n\nA plain step took {plain_s * 1e3:.2f} ms and a watched one {watched_s * 1e3:.2f} ms here (one after the other, not side\n"
        "by side: the step-by-step measure is the one to judge the overhead by). Indented rows are parts of the row\n"
        "above them. What no timer sees is missing: torch's hook machinery in a recording step's forward pass, the\n"
        "quiet steps' own few microseconds, the background thread's writing, and the steps that run slower on caches\n"
        "that convscope's work evicted."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--vgg-steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=50, help="untimed steps at the start of every LeNet-5 run")
    parser.add_argument("--vgg-warmup", type=int, default=10, help="untimed steps at the start of every VGG run")
    parser.add_argument("--vgg-rounds", type=int, default=3)
    parser.add_argument("--workload", choices=("lenet", "vgg", "both"), default="both")
    parser.add_argument("--device", default="cpu", help="where the model trains: cpu, cuda ...")
    parser.add_argument(
        "--lenet-batch", type=int, default=64, metavar="N",
        help="LeNet-5's batch (default 64). A smaller one shortens the plain step as a faster CPU does, while a "
        "recording's work stays about the same (the activation views read at most 8 samples): the share a "
        "recording takes of a faster machine's steps, measured on this one",
    )
    parser.add_argument("--block", type=int, default=400, help="steps per turn in the one-process comparison (0: skip it)")
    parser.add_argument("--pairs", type=int, default=16, help="pairs of turns in the one-process comparison")
    parser.add_argument("--within", type=int, default=3000, help="steps of each run in the no-pause measurement (0: skip it)")
    parser.add_argument("--within-runs", type=int, default=3, help="runs of each configuration in the no-pause measurement")
    parser.add_argument("--paired", type=int, default=2000, help="steps of each training in the step-by-step measurement (0: skip it)")
    parser.add_argument("--paired-runs", type=int, default=3, help="runs of each configuration in the step-by-step measurement (0: skip it)")
    parser.add_argument("--vgg-paired", type=int, default=60, help="steps of each VGG training in the step-by-step measurement (0: skip it)")
    parser.add_argument("--vgg-paired-runs", type=int, default=1, help="runs of each configuration in the VGG step-by-step measurement")
    parser.add_argument("--vgg-within", type=int, default=100, help="steps of each VGG run in the no-pause measurement (0: skip it)")
    parser.add_argument("--vgg-within-runs", type=int, default=1, help="runs of each configuration in the VGG no-pause measurement")
    parser.add_argument(
        "--attribution", type=int, default=0, metavar="RUNS",
        help="also run the step-by-step measure of LeNet-5 without each part in turn, this many runs (0: skip it)",
    )
    parser.add_argument(
        "--collections", type=int, default=8000, metavar="STEPS",
        help="steps of each run counting Python's garbage collections, plain and watched (0: skip it)",
    )
    parser.add_argument("--collections-runs", type=int, default=2, help="runs of each configuration counting collections")
    parser.add_argument(
        "--parts", type=int, default=0, metavar="STEPS",
        help="run only the timers of where a LeNet-5 recording's time goes, over this many watched steps (0: skip it)",
    )
    parser.add_argument(
        "--paired-only", nargs="+", metavar="WORD",
        help="run only LeNet-5's step-by-step measure, its rows whose names hold one of these words "
        "(and 'plain beside plain'), e.g. --paired-only 'no budget' 'nothing due'",
    )
    parser.add_argument(
        "--configs", nargs="+", metavar="NAME",
        help="run only the configurations whose names contain one of these words (plain always runs)",
    )
    args = parser.parse_args()
    if args.configs:
        for name in [n for n in CONFIGS if n != "plain" and not any(w in n for w in args.configs)]:
            del CONFIGS[name]
    WORKLOAD["device"] = args.device
    if args.lenet_batch < 1:
        parser.error("--lenet-batch must be at least 1")
    BATCH["lenet"] = args.lenet_batch
    warnings.filterwarnings("ignore")
    where = args.device if args.device == "cpu" else f"{args.device} ({torch.cuda.get_device_name()})"
    print(f"# in situ overhead, training on {where} ({machine()})\n")
    if args.parts > 0:
        print(bench_parts(args.parts) + "\n")
        return
    if args.paired_only:
        rows = _paired_rows(*args.paired_only)
        if len(rows) < 2:
            parser.error(f"--paired-only {args.paired_only} names none of the rows: {', '.join(_paired_rows())}")
        print(bench_paired(args.paired, args.paired_runs, rows) + "\n")
        return
    if args.workload in ("lenet", "both"):
        if args.rounds > 0:
            print(bench("lenet", args.steps, args.rounds, args.warmup) + "\n")
        if args.block > 0 and args.pairs > 0 and not args.configs:
            print(bench_interleaved(args.block, args.pairs) + "\n")
        if args.within > 0 and not args.configs:
            print(bench_within(args.within, args.within_runs) + "\n")
        if args.paired > 0 and args.paired_runs > 0 and not args.configs:
            print(bench_paired(args.paired, args.paired_runs) + "\n")
        if args.attribution > 0 and args.paired > 0 and not args.configs:
            print(bench_attribution(args.paired, args.attribution) + "\n")
        if args.collections > 0 and args.collections_runs > 0 and not args.configs:
            print(bench_collections(args.collections, args.collections_runs) + "\n")
    if args.workload in ("vgg", "both"):
        if args.vgg_rounds > 0:
            print(bench("vgg", args.vgg_steps, args.vgg_rounds, args.vgg_warmup) + "\n")
        if args.vgg_within > 0 and not args.configs:
            print(bench_within(args.vgg_within, args.vgg_within_runs, workload="vgg") + "\n")
        if args.vgg_paired > 0 and not args.configs:
            # (the three rows that matter there: a VGG step takes seconds)
            vgg_configs = {"plain beside plain": None, **_configs("convscope every=10, no budget", "convscope every=10")}
            print(bench_paired(args.vgg_paired, args.vgg_paired_runs, vgg_configs, workload="vgg") + "\n")


if __name__ == "__main__":
    main()

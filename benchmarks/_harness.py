"""Tiny shared helpers for the benchmark scripts: repeated timing, medians, tables."""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any


def timeit(fn: Callable[[], Any], *, rounds: int = 5, warmup: int = 1) -> dict[str, float]:
    """Run ``fn`` ``warmup`` + ``rounds`` times; return median, min and max seconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return {"median": statistics.median(times), "min": min(times), "max": max(times), "rounds": rounds}


def cpu() -> str:
    """The CPU as /proc/cpuinfo names it, with its family and model numbers (a shared cloud
    machine's name, "AMD EPYC", hides its generation) and the widest vector instructions torch's
    kernels use on it: "AMD EPYC (family 25, model 1), AVX2". Two machines of one name can run
    convolutions at twice each other's speed, which moves every overhead ratio."""
    name, ids = platform.processor() or platform.machine(), {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name":
                    name = value.strip()
                elif key in ("cpu family", "model") and key not in ids:
                    ids[key] = value.strip()
                elif not line.strip():
                    break  # (the first processor's fields only)
    except OSError:
        pass
    if ids:
        name += f" (family {ids.get('cpu family', '?')}, model {ids.get('model', '?')})"
    try:
        import torch

        name += f", {torch.backends.cpu.get_cpu_capability()}"
    except (ImportError, AttributeError):
        pass
    return name


def machine() -> str:
    import torch

    return (
        f"{cpu()}; {platform.machine()}, {platform.python_implementation()} "
        f"{platform.python_version()}, torch {torch.__version__}, {torch.get_num_threads()} threads"
    )


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table (readable in a terminal too)."""
    cells = [[str(c) for c in headers]] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)

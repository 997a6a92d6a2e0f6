"""Realistic frames of every kind, for the store and server tests."""

from __future__ import annotations

import numpy as np

from convscope.frames import KINDS, Frame


def payload(kind: str, step: int) -> dict:
    """A payload like the monitor's for ``kind`` (arrays vary with ``step``)."""
    rng = np.random.default_rng(step)
    if kind == "scalar":
        return {"name": "loss", "value": 1.0 / (step + 1)}
    if kind == "scalars":  # (the monitor's batches of logged values)
        return {"name": "acc", "steps": np.array([step], np.int64), "values": np.array([step / 10]), "wall_times": np.array([1.7e9 + step])}
    if kind == "histogram":
        return {"name": "conv1.weight", "edges": np.linspace(-1, 1, 9, dtype=np.float32), "counts": rng.integers(0, 50, 8).astype(np.int64)}
    if kind == "weight_grid":
        w = rng.normal(size=(4, 1, 3, 3)).astype(np.float32)
        return {"weights": w, "vmax": float(np.abs(w).max())}
    if kind == "trajectory":
        return {"dims": rng.normal(size=3).astype(np.float32), "dim_index": np.array([0, 5, 9]),
                "pca": rng.normal(size=2).astype(np.float32), "explained_variance": np.array([0.7, 0.2], np.float32)}
    if kind == "distribution":
        return {"counts": rng.integers(0, 9, (4, 16)).astype(np.int32), "bins": np.linspace(0, 1, 17, dtype=np.float32),
                "min": np.zeros(4, np.float32), "max": np.ones(4, np.float32), "mean": np.full(4, 0.5, np.float32),
                "std": np.full(4, 0.1, np.float32)}
    if kind == "feature_maps":
        return {"images": rng.integers(0, 255, (4, 8, 8), dtype=np.uint8), "vmin": 0.0, "vmax": 1.0,
                "normalisation": "per_map", "scale": 1.0, "sample": 0}
    if kind == "correlation":
        m = np.corrcoef(rng.normal(size=(4, 20))).astype(np.float32)  # (4 filters, as the other kinds)
        return {"matrix": m, "dead": np.zeros(4, bool)}
    if kind == "groups":
        return {"labels": np.array([0, 0, 1, 2]), "threshold": 0.9, "method": "pearson", "events": [{"type": "merge", "groups": [0, 1]}]}
    if kind == "gradient_health":
        return {"status": "healthy", "grad_norm": float(rng.random()), "update_ratio": 1e-3, "zero_fraction": 0.0,
                "dead_fraction": 0.0, "nonfinite": 0}
    if kind == "pruning":
        return {"removed": [1, 3], "kept": [0, 2], "before": 4, "after": 2, "reason": "redundant", "params_before": 40, "params_after": 20}
    if kind == "dropped":
        return {"count": step, "sink": "queue"}
    if kind == "run_meta":
        return {"event": "start", "config": {"lr": 0.1}, "graph": {"layers": [{"id": "conv1"}]}}
    raise AssertionError(f"no sample for {kind}")


RUN_LEVEL = {"scalar", "scalars", "dropped", "run_meta", "pruning"}


def frame(kind: str, step: int, *, run: str = "r", layer: str | None = None) -> Frame:
    if layer is None:
        layer = "" if kind in RUN_LEVEL else "conv1"
    return Frame(run=run, step=step, kind=kind, layer=layer, payload=payload(kind, step), wall_time=1000.0 + step)


def every_kind(step: int, *, run: str = "r") -> list[Frame]:
    return [frame(kind, step, run=run) for kind in KINDS]


def exported_trajectory(out: object, count: int) -> list[Frame]:
    """``count`` trajectory frames of one layer, 10 steps apart, written by a VTK writer into ``out``."""
    from convscope.export import VtkWriter

    frames = [frame("trajectory", 10 * i) for i in range(count)]
    writer = VtkWriter(out, kinds=["trajectory"])
    for f in frames:
        writer.write(f)
    writer.close()
    return frames


def same_frame(a: Frame, b: Frame) -> bool:
    """Equal in every field and payload value (arrays: dtype, shape and values)."""
    if (a.run, a.step, a.kind, a.layer, a.wall_time) != (b.run, b.step, b.kind, b.layer, b.wall_time):
        return False
    return _same(dict(a.payload), dict(b.payload))


def _same(x: object, y: object) -> bool:
    if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
        return isinstance(x, np.ndarray) and isinstance(y, np.ndarray) and x.dtype == y.dtype and np.array_equal(x, y)
    if isinstance(x, dict) and isinstance(y, dict):
        return x.keys() == y.keys() and all(_same(x[k], y[k]) for k in x)
    if isinstance(x, list | tuple) and isinstance(y, list | tuple):
        return len(x) == len(y) and all(_same(u, v) for u, v in zip(x, y, strict=True))
    return x == y

"""Which frames an exporter writes: its kinds and layers, with batched scalars as single values."""

from __future__ import annotations

from collections.abc import Set

from convscope.frames import Frame, expand_scalars


def selected(frame: Frame, kinds: Set[str] | None, layers: Set[str] | None) -> list[Frame]:
    """``frame`` (a ``scalars`` frame: one ``scalar`` frame per value) if its kind is among
    ``kinds`` and its layer among ``layers`` (``None``: any); run-level frames pass any layer filter.

    Example:
        >>> import numpy as np
        >>> f = Frame(run="r", step=2, kind="scalars", payload={"name": "loss", "steps": np.array([1, 2]), "values": np.array([0.5, 0.4])})
        >>> [(g.step, g.payload["value"]) for g in selected(f, {"scalar"}, {"conv1"})]
        [(1, 0.5), (2, 0.4)]
    """
    if layers is not None and frame.layer and frame.layer not in layers:
        return []
    return [f for f in expand_scalars(frame) if kinds is None or frame.kind in kinds or f.kind in kinds]

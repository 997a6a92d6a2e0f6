"""Which frames an exporter writes: its kinds and layers, with batched scalars as single values."""

from __future__ import annotations

from collections.abc import Iterable, Set

from convscope.errors import DataError
from convscope.frames import Frame, check_kinds, expand_scalars


def choice(kinds: str | Iterable[str] | None, layers: str | Iterable[str] | None) -> tuple[set[str] | None, set[str] | None]:
    """An exporter's kinds and layers as sets (``None``: all; one name alone is one), with a
    clear error for a kind that no frame has (it would export nothing, silently). ``scalars``
    (the monitor's batches of logged values) brings ``scalar`` with it: a writer is handed a
    batch as single values (:func:`selected`), which a filter of ``scalars`` alone dropped.

    Example:
        >>> kinds, layers = choice("weight_grid", ["conv2", "conv1"])
        >>> kinds, sorted(layers)
        ({'weight_grid'}, ['conv1', 'conv2'])
        >>> sorted(choice("scalars", None)[0])
        ['scalar', 'scalars']
    """
    k = None if kinds is None else {kinds} if isinstance(kinds, str) else set(kinds)
    if k is not None:
        check_kinds(sorted(k), DataError)
        if "scalars" in k:
            k.add("scalar")
    return k, None if layers is None else {layers} if isinstance(layers, str) else set(layers)


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

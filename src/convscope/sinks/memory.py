"""Keep frames in memory: for notebooks, scripts that post-process a run, and tests."""

from __future__ import annotations

import threading
from collections import deque
from typing import TYPE_CHECKING

from convscope.frames import expand_scalars
from convscope.sinks._base import Sink, register_sink

if TYPE_CHECKING:
    from convscope.frames import Frame

__all__ = ["MemorySink"]


@register_sink("memory")
class MemorySink(Sink):
    """Holds the last ``maxlen`` frames (all of them when ``None``), thread-safe.

    Example:
        >>> sink = MemorySink()
        >>> # convscope.watch(model, optimizer=opt, logdir=None, sinks=[sink])
        >>> sink.select(kind="scalar")
        []
    """

    name = "memory"

    def __init__(self, *, maxlen: int | None = None) -> None:
        self._frames: deque[Frame] = deque(maxlen=maxlen)
        self._lock = threading.Lock()
        self.closed_with: str | None = None

    def write(self, frame: Frame) -> None:
        with self._lock:
            self._frames.append(frame)

    def close(self, *, status: str = "finished") -> None:
        self.closed_with = status

    @property
    def frames(self) -> list[Frame]:
        with self._lock:
            return list(self._frames)

    def select(self, *, kind: str | None = None, layer: str | None = None, name: str | None = None) -> list[Frame]:
        """Frames of one kind / layer (and, for scalars, one name), in arrival order.

        ``kind="scalar"`` also gives the values of ``scalars`` frames (the monitor's batches of
        logged values), one ``scalar`` frame each (:func:`~convscope.frames.expand_scalars`).
        """
        frames = self.frames
        if kind == "scalar":
            frames = [g for f in frames for g in expand_scalars(f)]
        return [
            f
            for f in frames
            if (kind is None or f.kind == kind)
            and (layer is None or f.layer == layer)
            and (name is None or f.payload.get("name") == name)
        ]

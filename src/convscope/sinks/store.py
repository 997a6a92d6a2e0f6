"""The run store as a sink: what ``convscope.watch(logdir=...)`` writes to."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from convscope.sinks._base import Sink, register_sink
from convscope.store import RunStore
from convscope.store._schema import slug

if TYPE_CHECKING:
    from convscope.frames import Frame

__all__ = ["StoreSink"]


@register_sink("store")
class StoreSink(Sink):
    """Writes every frame to a new run in ``logdir`` (with ``resume``, to the run named ``run``
    where it exists: see :meth:`RunStore.resume_run`); commits on each periodic flush.

    ``write`` only encodes and buffers; ``flush`` (called by the monitor's pipeline a few
    times a second) commits the buffer in one transaction, or just refreshes the run's
    heartbeat when nothing came. A commit that fails raises (the monitor warns once and goes
    on); its frames are counted in :attr:`dropped`, and in the run itself once a commit succeeds
    again (a ``dropped`` frame, sink ``store``). ``retention``/``max_images``: see :meth:`RunStore.create_run`.

    Example:
        >>> import tempfile
        >>> sink = StoreSink(tempfile.mkdtemp(), run="my-run")
        >>> sink.run_id
        'my-run'
        >>> sink.close()
    """

    name = "store"
    encodes = True

    def __init__(
        self,
        logdir: str | os.PathLike[str],
        *,
        run: str | None = None,
        model: str | None = None,
        config: Mapping[str, Any] | None = None,
        retention: Mapping[str, int] | None = None,
        max_images: int | None = None,
        resume: bool = False,
    ) -> None:
        self.store = RunStore(logdir)
        run_id = None if run is None else slug(run)
        if resume and run_id is not None and self.store.path(run_id).is_file():
            self.writer = self.store.resume_run(run_id, retention=retention, max_images=max_images)
        else:
            self.writer = self.store.create_run(run, model=model, config=config, retention=retention, max_images=max_images)
        self.run_id = self.writer.run_id
        #: with ``resume``: the run's last step before this sink (``None`` for a new run)
        self.resumed_from = self.writer.resumed_from

    @property
    def dropped(self) -> int:
        """Frames lost in commits that failed (a full disk, the run file removed ...) by this
        sink: the monitor reports them to its other sinks as ``dropped`` frames (sink ``store``),
        and the run records them itself (with those lost before a resume: the run's total)."""
        return self.writer.lost

    def write(self, frame: Frame) -> None:
        self.writer.write(frame)

    def write_many(self, frames: Iterable[Frame]) -> None:
        """All of ``frames`` or, raising, none (see :class:`~convscope.sinks.Sink`)."""
        self.writer.write_many(frames)

    def flush(self) -> None:
        self.writer.flush()

    def close(self, *, status: str = "finished") -> None:
        self.writer.close(status=status)

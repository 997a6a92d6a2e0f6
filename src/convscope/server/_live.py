"""Live streams: one store poller per followed run, fanned out to every viewer of it.

A run written by another process (a training script's store sink) is seen by polling its file
with a row-id cursor (:meth:`RunReader.tail`: one primary-key seek, however long the run);
frames ingested by this server wake the poller at once (:meth:`LiveHub.poke`). However many
browsers follow a run, the store is read once per poll, and a slow browser never holds the
others up: each viewer has its own queue, bounded in bytes; one that falls too far behind is
disconnected (code 1013) and catches up on reconnection with ``{"since": step}``.

A page that read the run first (GET /api/runs/{run}/frames, which names the last row it read in
``X-Convscope-Cursor``) follows on from exactly there with ``{"after": row id}``: a viewer joins at
the newest row stored when it subscribes, which is past anything that page read, so no row comes
to it both in that read and live; the rows between are replayed (:func:`replay`).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

from convscope.errors import NotFoundError, StoreError
from convscope.frames import decode
from convscope.store import RunReader, RunStore

#: rows read from the store per poll (a poll that gets this many polls again at once)
BATCH = 512
#: a viewer whose unsent frames exceed this many bytes is disconnected (it reconnects and replays)
VIEWER_MAX_BYTES = 128 << 20
#: the largest row id or step SQLite holds (a client's bigger number asks for nothing)
_LARGEST = (1 << 63) - 1


@dataclass(eq=False)
class Viewer:
    """One WebSocket following one run: its filters and its queue of messages to send."""

    run: str
    kinds: frozenset[str] | None = None
    layers: frozenset[str] | None = None
    queue: asyncio.Queue[tuple[Any, ...] | None] = field(default_factory=asyncio.Queue)
    pending_bytes: int = 0
    overflowed: bool = False
    #: ``(row id, kinds, layers)``: the rows after that id were offered under those filters (the
    #: first entry is where the viewer joined): what a ``since`` replay must not send again
    offered: list[tuple[int, frozenset[str] | None, frozenset[str] | None]] = field(default_factory=list)

    @property
    def joined(self) -> int:
        """The row id it joined at: no row up to it comes live."""
        return self.offered[0][0] if self.offered else 0

    def wants(self, kind: str, layer: str) -> bool:
        return (self.kinds is None or kind in self.kinds) and (self.layers is None or layer in self.layers)

    def set_filters(self, *, after: int, kinds: frozenset[str] | None, layers: frozenset[str] | None) -> None:
        """Offer the rows after ``after`` filtered by ``kinds`` and ``layers`` (``None``: all)."""
        self.kinds, self.layers = kinds, layers
        while self.offered and self.offered[-1][0] >= after and len(self.offered) > 1:
            self.offered.pop()  # superseded before any row came under it
        self.offered.append((after, kinds, layers))

    def was_offered(self, row_id: int, kind: str, layer: str) -> bool:
        """Whether row ``row_id`` went into this viewer's live queue (and so out before a replay)."""
        for after, kinds, layers in reversed(self.offered):
            if row_id > after:
                return (kinds is None or kind in kinds) and (layers is None or layer in layers)
        return False

    def offer(self, row_id: int, kind: str, layer: str, data: bytes) -> None:
        # (the run's poller may not have reached the row it joined at yet: those rows are not live)
        if self.overflowed or row_id <= self.joined or not self.wants(kind, layer):
            return
        if self.pending_bytes + len(data) > VIEWER_MAX_BYTES:
            self.overflowed = True
            self.queue.put_nowait(None)
            return
        self.pending_bytes += len(data)
        self.queue.put_nowait(("frame", row_id, data))


class _Tail:
    """Follows one run file for all its viewers."""

    def __init__(self, hub: LiveHub, run: str, reader: RunReader) -> None:
        self.hub = hub
        self.run = run
        self.reader = reader
        self.cursor = reader.last_id()
        self.status = reader.status()
        self.viewers: set[Viewer] = set()
        self.wake = asyncio.Event()
        self.loop = asyncio.get_running_loop()
        self.stopping = False
        self.task: asyncio.Task[None] | None = None

    def _poll(self) -> tuple[list[tuple[int, str, str, bytes]], str]:
        # the status first: a run that ends between the two reads has its last frames among the
        # rows read after it, so they go out before the status that says it ended (read the
        # other way round, they came after it, and a client that stops reading there lost them)
        status = self.reader.status()
        return self.reader.tail(self.cursor, limit=BATCH), status

    async def run_loop(self) -> None:
        try:
            while not self.stopping:
                try:
                    rows, status = await asyncio.to_thread(self._poll)
                except (StoreError, OSError) as exc:
                    for viewer in list(self.viewers):
                        viewer.queue.put_nowait(("error", str(exc)))
                    return
                for row_id, kind, layer, data in rows:
                    for viewer in list(self.viewers):
                        viewer.offer(row_id, kind, layer, data)
                if rows:
                    self.cursor = rows[-1][0]
                    if len(rows) == BATCH:
                        continue
                if status != self.status:
                    self.status = status
                    for viewer in list(self.viewers):
                        viewer.queue.put_nowait(("status", status))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), timeout=self.hub.poll_seconds)
                self.wake.clear()
        finally:
            # closed here, by the task that used it: never while a poll runs in its thread
            self.reader.close()
            if self.hub.tails.get(self.run) is self:
                del self.hub.tails[self.run]


class LiveHub:
    """The server's live followers, one :class:`_Tail` per run that someone watches."""

    def __init__(self, store: RunStore, *, poll_seconds: float) -> None:
        self.store = store
        self.poll_seconds = poll_seconds
        self.tails: dict[str, _Tail] = {}

    async def subscribe(self, run: str) -> Viewer:
        """Follow ``run`` from now on: the rows stored after the newest one now (raises
        NotFoundError / StoreError for a bad run).

        From the store's newest row, not the poller's (which may lag it by a poll): a client
        that read the run before subscribing must not get what it read again live."""
        reader = await asyncio.to_thread(self.store.open_run, run)
        try:
            newest = await asyncio.to_thread(reader.last_id)
        except BaseException:
            reader.close()
            raise
        tail = self.tails.get(run)  # another viewer may have started one while we read
        if tail is None or tail.stopping:
            tail = _Tail(self, run, reader)
            self.tails[run] = tail
            tail.task = asyncio.create_task(tail.run_loop(), name=f"convscope-tail-{run}")
        else:
            reader.close()
        viewer = Viewer(run)
        viewer.set_filters(after=max(newest, tail.cursor), kinds=None, layers=None)
        tail.viewers.add(viewer)
        return viewer

    def unsubscribe(self, viewer: Viewer) -> None:
        tail = self.tails.get(viewer.run)
        if tail is None:
            return
        tail.viewers.discard(viewer)
        if not tail.viewers:
            tail.stopping = True
            tail.wake.set()

    def cursor(self, viewer: Viewer) -> int:
        """The newest row the viewer's live stream is past: what comes after it comes live."""
        tail = self.tails.get(viewer.run)
        return max(tail.cursor if tail is not None else 0, viewer.joined)

    def poke(self, run: str) -> None:
        """New frames were committed to ``run`` by this process: poll it now. Any thread may call it."""
        tail = self.tails.get(run)
        if tail is not None:
            _wake(tail.loop, tail.wake)

    async def close(self) -> None:
        tails = list(self.tails.values())
        for tail in tails:
            tail.stopping = True
            tail.wake.set()
        await asyncio.gather(*(t.task for t in tails if t.task is not None), return_exceptions=True)


class RunsWatch:
    """Polls the run list (while anyone listens) and tells every listener what changed."""

    def __init__(self, store: RunStore, *, poll_seconds: float) -> None:
        self.store = store
        self.poll_seconds = poll_seconds
        self.listeners: set[asyncio.Queue[dict[str, Any] | None]] = set()
        self.seen: dict[str, tuple[Any, ...]] = {}
        self.task: asyncio.Task[None] | None = None
        self.wake: asyncio.Event | None = None  # made on the serving loop, with the task
        self.loop: asyncio.AbstractEventLoop | None = None

    @staticmethod
    def key(info: dict[str, Any]) -> tuple[Any, ...]:
        """What a listener hears of when it changes (the summary too: where retention thins as many
        frames as a commit brings, of steps before the last, the count and the steps stay as they were)."""
        return (info["status"], info["last_step"], info["frames"], info["name"], info.get("summary"))

    def listen(self) -> asyncio.Queue[dict[str, Any] | None]:
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self.listeners.add(queue)
        if self.task is None or self.task.done():
            self.wake = asyncio.Event()
            self.loop = asyncio.get_running_loop()
            self.task = asyncio.create_task(self._loop(self.wake), name="convscope-runs-watch")
        return queue

    def unlisten(self, queue: asyncio.Queue[dict[str, Any] | None]) -> None:
        self.listeners.discard(queue)
        if not self.listeners:
            self.poke()

    def poke(self) -> None:
        """Something changed (a run was created or closed here): look now. Any thread may call it."""
        if self.wake is not None and self.loop is not None:
            _wake(self.loop, self.wake)

    async def _loop(self, wake: asyncio.Event) -> None:
        while self.listeners:
            try:
                runs = await asyncio.to_thread(self.store.list_runs)
            except (StoreError, NotFoundError, OSError):
                runs = []
            for info in runs:
                key = self.key(info)
                if self.seen.get(info["id"]) != key:
                    self.seen[info["id"]] = key
                    for queue in list(self.listeners):
                        queue.put_nowait(info)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=self.poll_seconds)
            wake.clear()

    async def close(self) -> None:
        for queue in list(self.listeners):
            queue.put_nowait(None)
        self.listeners.clear()
        self.poke()
        if self.task is not None:
            await asyncio.gather(self.task, return_exceptions=True)


async def replay(store: RunStore, viewer: Viewer, *, upto: int, since: int | None = None, after: int | None = None) -> list[bytes]:
    """Frames of the viewer's run stored at or before row ``upto`` that pass its filters and were
    not sent to it live already (frames that came live before the client's request must not come
    twice): with ``since``, those of steps after it, by step (a client that reconnects asks for
    what it missed); with ``after``, those stored after that row, in the order stored (a client
    that read the run up to that row asks for the rest)."""
    start = None if since is None or since < 0 else since + 1
    if (after is not None and after >= upto) or (start is not None and start > _LARGEST):
        return []  # (none: every row after upto comes live; and a huge number never reaches SQLite)
    offered = Viewer(viewer.run, offered=list(viewer.offered))  # as it stands now, read in a thread

    def sent(row_id: int, data: bytes) -> bool:
        if row_id <= offered.joined:
            return False
        frame = decode(data, copy=False)
        return offered.was_offered(row_id, frame.kind, frame.layer)

    kinds = None if viewer.kinds is None else sorted(viewer.kinds)
    layers = None if viewer.layers is None else sorted(viewer.layers)

    def read() -> list[bytes]:
        with store.open_run(viewer.run) as reader:
            rows = reader.raw_frames(kind=kinds, layer=layers, start=start, after_id=after)
        return [data for row_id, data in rows if row_id <= upto and not sent(row_id, data)]

    return await asyncio.to_thread(read)


def _wake(loop: asyncio.AbstractEventLoop, event: asyncio.Event) -> None:
    # asyncio events are not thread-safe: from a worker thread, set it on its own loop
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        event.set()
    else:
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is waiting
            loop.call_soon_threadsafe(event.set)

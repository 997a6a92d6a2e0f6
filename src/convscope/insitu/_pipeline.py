"""The non-blocking path from the training thread to the sinks.

The training thread only ``submit``s small, already-reduced work items; a daemon thread turns
them into frames and hands each frame to every sink. The queue is bounded and drops the
oldest item when full (counted), so a slow sink can never grow memory or stall training, and
a sink that raises is isolated: counted, warned about once, and retried on later frames.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from convscope.frames import Frame, encode, forget_encoding, kept_encoding

if TYPE_CHECKING:
    from convscope.sinks import Sink

__all__ = ["FramePipeline", "GroupItem", "PipelineStats"]

_log = logging.getLogger("convscope")

WorkItem = Callable[[], Iterable["Frame"]]


class GroupItem:
    """A work item that the worker may run together with the other items of its ``group`` in
    one batch: ``run(args)`` takes a list of the items' ``args`` and returns one list of frames
    for each, in order (one analysis over a stack of recordings, say, where the count of
    operations costs more than the data). Called alone, it runs its own ``args``.

    ``run`` raises only before it has changed any state (the worker then runs each item alone);
    once it has, an item that fails gets its exception in its place in the returned list.
    """

    __slots__ = ("args", "group", "run")

    def __init__(self, group: object, run: Callable[[list[Any]], Sequence[list[Frame] | Exception]], args: Any) -> None:
        self.group = group
        self.run = run
        self.args = args

    def __call__(self) -> list[Frame]:
        result = self.run([self.args])[0]
        if isinstance(result, Exception):
            raise result
        return result


class _Entry(NamedTuple):
    item: WorkItem
    nbytes: int
    key: int
    submitted: float  # time.monotonic()


@dataclass
class PipelineStats:
    submitted: int = 0
    dropped: int = 0
    frames: int = 0
    sink_failures: dict[str, int] = field(default_factory=dict)
    max_queue: int = 0
    #: CPU seconds the worker thread has used (analysis, encoding, sinks), read by the
    #: monitor's overhead budget
    cpu_seconds: float = 0.0
    #: work items whose frames were built and handed to the sinks (or whose analysis failed)
    delivered: int = 0

    @property
    def completed(self) -> int:
        """Work items finished, delivered or dropped: ``submitted - completed`` are pending."""
        return self.delivered + self.dropped


class FramePipeline:
    """A bounded, drop-oldest queue drained by one daemon thread.

    Args:
        sinks: where frames go.
        maxsize: most pending work items; beyond it the oldest is dropped and counted.
        max_bytes: most bytes of tensor snapshots held by pending items (as declared by
            ``submit(..., nbytes=)``); beyond it the oldest items are dropped too. With
            ``inline``, the frames analysed and waiting for the worker to hand them to the sinks
            are held to as many bytes again (their arrays, and their encoded bytes where they
            are kept): a slow sink of big frames (a large model's feature-map images) does not
            make them pile up to ``maxsize`` items.
        flush_interval: at least this many seconds between two ``Sink.flush`` calls while frames
            flow (the run store commits then); a batch of frames that comes later than that is
            flushed at once, in the same wake of the worker.
        idle_interval: seconds between ``Sink.flush`` calls while no frames come (the sinks'
            heartbeats: the run store's last-update time, an HTTP sink's empty batch). Each time
            the worker thread wakes costs training far more than its CPU where training's threads
            fill the cores (about 2 ms of a LeNet-5 step's time per wake, on two cores: the
            thread that gives up its core holds up its parallel region), so it wakes only for
            work, at most once per ``flush_interval`` to flush, and every ``idle_interval`` when idle.
        nice: how much lower than training the worker thread is scheduled (Linux ``nice``
            increment for this thread alone; 0 keeps it equal).
        linger: seconds the worker may wait after an item arrives, so that it works through
            several recordings in one go rather than one at a time (0: each item at once).
            A batch runs sorted by the items' ``key`` (stable: items of one key keep their
            order), so the same analysis runs back to back on the caches the previous run
            warmed: on a CPU that costs about a third less than one recording after another
            between training steps, which evict the caches (measured on LeNet-5). Within a
            key, the :class:`GroupItem` of one group run together, in one call.
        linger_bytes: the worker stops lingering once the queued items hold this many bytes,
            and takes about this much into one batch: memory held back on purpose stays small.
            It stops at half of ``maxsize`` items too, and at ``first_batch`` items for the
            first batch: the first frames come soon, and so does what a recording costs (the
            in situ monitor's overhead budget lends only a small allowance until it knows).
        on_dropped: builds a frame that reports drops: ``on_dropped(count)`` for work items
            dropped from the queue, ``on_dropped(count, sink=name)`` for frames a sink says it
            dropped (its ``dropped`` attribute, as :class:`~convscope.sinks.http.HttpSink` keeps
            it), which goes to the other sinks.
        inline: the work items are run by the thread that submits them, in batches, when it calls
            :meth:`analyse_due` (the monitor does after each training step); the worker thread
            then only hands their frames to the sinks, so a slow sink still never holds the
            caller up. Where training's threads keep every core busy, a second thread that
            computes takes its cycles from them and slows the steps by more than the CPU it uses
            (about 1.2x measured on LeNet-5); on the training thread the same work costs its own
            time, and torch's intra-op threads share it.
    """

    def __init__(
        self,
        sinks: Sequence[Sink],
        *,
        maxsize: int = 256,
        max_bytes: int = 512 << 20,
        flush_interval: float = 1.0,
        idle_interval: float = 5.0,
        nice: int = 0,
        linger: float = 0.0,
        linger_bytes: int = 16 << 20,
        first_batch: int = 128,
        on_dropped: Callable[..., Frame | None] | None = None,
        inline: bool = False,
    ) -> None:
        self.sinks = list(sinks)
        #: the sinks that encode each frame (``Sink.encodes``): the frames are encoded once for all
        #: of them, inline on the thread that analyses (see :meth:`analyse_due`)
        self._encoders = sum(1 for sink in self.sinks if getattr(sink, "encodes", False))
        self.maxsize = maxsize
        self.max_bytes = max_bytes
        self.nice = nice
        #: whether the worker runs at a lower priority than training (Linux only)
        self.lowered = bool(nice) and sys.platform.startswith("linux")
        self._bytes = 0
        self.flush_interval = flush_interval
        self.idle_interval = max(flush_interval, idle_interval)
        self.linger = max(0.0, float(linger))
        self.linger_bytes = linger_bytes
        self.first_batch = max(1, first_batch)
        self.stats = PipelineStats()
        self._on_dropped = on_dropped
        self._queue: deque[_Entry] = deque()
        #: inline: the ``time.monotonic()`` from which the gathered items are due (infinity while
        #: nothing is queued, 0 once the batch is full), kept up to date under the lock so that
        #: the submitting thread's check at every step is one comparison, without the lock
        self.due_at = float("inf")
        self.inline = inline
        # inline: each run item's frames, waiting for the worker to hand them to the sinks, and
        # the bytes they hold (see _held_bytes), in all
        self._ready: deque[tuple[list[Frame], int]] = deque()
        self._ready_bytes = 0
        #: work items that have left the queue (taken to run, or dropped): those submitted before
        #: that count are being analysed or delivered, or are done
        self.left_queue = 0
        self._analysing = threading.Lock()  # inline: one thread at a time runs items (trackers have state)
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._warned: set[str] = set()
        self._reported_drops = 0
        self._sink_drops: dict[int, int] = {}  # each sink's dropped count as last reported, by id()
        self._busy = False
        self._hurry = 0  # drain() calls waiting: no lingering while any is
        self._cpu_clock: tuple[int, float] | None = None  # the worker's CPU clock and its reading at start
        # bumped by the worker before and after each round of work (odd while it works): while it
        # stays the same and even, the worker has used no CPU, and worker_cpu() answers from its
        # last reading (no system call)
        self._activity = 0
        #: whether the worker is holding queued items back on purpose (``linger``)
        self.lingering = False

    # --- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="convscope-frames", daemon=True)
        self._thread.start()

    def close(self, *, timeout: float = 10.0, status: str = "finished") -> None:
        """Finish what is queued (for up to ``timeout`` s), then flush and close every sink.

        The worker stops after the item in hand and this thread delivers the rest itself, in one
        batch (by key, a group's items together, as :meth:`analyse_due` runs them): a worker at
        a lowered priority (``nice``) must not make ``close()`` slow (or lose frames) on a busy
        machine. Items not run by the deadline are dropped and counted.
        """
        thread = self._thread
        if thread is None:
            return
        deadline = time.monotonic() + timeout
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        thread.join(timeout=max(0.1, timeout))
        self._thread = None
        if thread.is_alive():  # stuck in a sink or a reduction: leave the queue to it
            self._warn_once("close", f"convscope's frame thread did not stop within {timeout:g} s; frames may be lost")
        else:
            while self._ready:
                self._write(self._ready.popleft()[0])
            self._ready_bytes = 0
            late = 0  # items taken but not run by the deadline: dropped, and counted
            with self._analysing:
                # in one batch, as the worker or analyse_due() takes them (a group's items in one
                # call): item by item, 40 LeNet-5 recordings left at close() took 49 ms against 26
                with self._cond:
                    batch = self._take_batch(everything=True)
                for items in _runs(batch):
                    if time.monotonic() >= deadline:
                        late += len(items)
                        continue
                    for frames in self._analyse(items):
                        self._write(frames)
            with self._cond:
                self.stats.dropped += len(self._queue) + late
                self._queue.clear()
                self._bytes = 0
                self._update_due()
        for sink in self.sinks:
            self._guard(sink, lambda s=sink: s.flush(), lost=False)
        # the last sinks close first, and what each dropped on closing (frames a dead server
        # never got) is reported to those still open: the run store comes first and closes last
        still_open = list(self.sinks)
        for sink in reversed(self.sinks):
            self._report_drops(still_open)
            self._guard(sink, lambda s=sink: s.close(status=status), lost=False)
            still_open.remove(sink)

    def drain(self, *, timeout: float = 10.0) -> bool:
        """Wait until the queue is empty and the worker idle; False if it timed out."""
        deadline = time.monotonic() + timeout
        if self.inline:
            self.analyse_due(force=True)
        with self._cond:
            self._hurry += 1
            self._cond.notify_all()
            try:
                while self._ready or (self._queue and not self.inline) or self._busy:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                    self._cond.wait(timeout=min(left, 0.05))
            finally:
                self._hurry -= 1
        return True

    # --- training thread ----------------------------------------------------------------------
    def submit(self, item: WorkItem, *, nbytes: int = 0, key: int = 0) -> None:
        """Queue a work item without ever blocking; drop the oldest if the queue is full.

        ``nbytes`` declares how much memory the item holds (tensor snapshots), so that the
        queue stays within ``max_bytes`` as well as ``maxsize`` items. ``key`` orders the items
        of one batch when the worker lingers (see the class).
        """
        self.submit_many([(item, nbytes, key)])

    def submit_many(self, items: Sequence[tuple[WorkItem, int, int]]) -> None:
        """:meth:`submit` of several ``(item, nbytes, key)`` in order, under one lock (a recording's items)."""
        if not items:
            return
        with self._cond:
            now = time.monotonic()
            queue = self._queue
            for item, nbytes, key in items:
                while queue and (len(queue) >= self.maxsize or self._bytes + nbytes > self.max_bytes):
                    old = queue.popleft()
                    self._bytes -= old.nbytes
                    self.stats.dropped += 1
                    self.left_queue += 1
                queue.append(_Entry(item, nbytes, key, now))
                self._bytes += nbytes
            self.stats.submitted += len(items)
            self.stats.max_queue = max(self.stats.max_queue, len(queue))
            self._update_due()
            # a lingering worker wakes at its deadline anyway, and only a full batch cuts it short;
            # inline, the worker has nothing to do with the item (the submitting thread runs it)
            if not self.inline and (not self.lingering or self._batch_full()):
                self._cond.notify()

    # --- worker thread ------------------------------------------------------------------------
    def _run(self) -> None:
        # One compute thread for this worker: OpenMP gives every thread that calls into it a
        # team of its own, and a second full team spinning beside training's slows every
        # training step (measured in benchmarks/bench_insitu.py). The setting is per thread.
        torch = sys.modules.get("torch")
        if torch is not None:
            torch.set_num_threads(1)
        # and a lower scheduling priority (Linux threads have their own): when the cores are
        # busy, training goes first and this thread takes the slack; if it falls behind, the
        # queue drops its oldest items rather than training slowing down. Elsewhere the call
        # would renice the whole process (or another one), so it is Linux only.
        if self.lowered:
            try:
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self.nice)
            except OSError:
                self.lowered = False
        last_flush = time.monotonic()
        written = False  # frames written since the last flush
        cpu_start = time.thread_time()
        if hasattr(time, "pthread_getcpuclockid"):  # so that other threads can read it at any moment
            self._cpu_clock = (time.pthread_getcpuclockid(threading.get_ident()), cpu_start)
        while True:
            with self._cond:
                while not self._has_work() and not self._stop.is_set():
                    wait = last_flush + self._flush_every(written) - time.monotonic()
                    if wait <= 0:
                        break  # time to flush
                    self._cond.wait(timeout=wait)
                if self._queue and self.linger > 0 and not self.inline:
                    self._linger()
                if self._stop.is_set():
                    self._cpu_clock = None
                    return  # close() delivers what is left, on its own thread
                batch = [] if self.inline else self._take_batch()
                ready, self._ready = [frames for frames, _ in self._ready], deque()
                self._ready_bytes = 0
                self._busy = bool(batch or ready)
                self._activity += 1
            try:
                # the frames of all the items at hand in one write: a call per item cost about
                # a tenth of the writing (LeNet-5, a dozen small frames a recording)
                if ready:
                    self._write([f for frames in ready for f in frames], items=len(ready))
                made: list[Frame] = []
                for items in _runs(batch):
                    for frames in self._analyse(items):
                        made.extend(frames)
                    self.stats.cpu_seconds = time.thread_time() - cpu_start
                if batch:
                    self._write(made, items=len(batch))
                written = written or bool(ready or batch)
                if time.monotonic() - last_flush >= self._flush_every(written):
                    for sink in self.sinks:
                        self._guard(sink, lambda s=sink: s.flush(), lost=False)
                    self._report_drops(self.sinks)
                    last_flush = time.monotonic()
                    written = False
            finally:
                self.stats.cpu_seconds = time.thread_time() - cpu_start
                with self._cond:
                    self._activity += 1
                    self._busy = False
                    self._cond.notify_all()

    def _flush_every(self, written: bool) -> float:
        """Seconds between flushes: ``flush_interval`` with frames written since the last one, else ``idle_interval``."""
        return self.flush_interval if written else self.idle_interval

    def worker_cpu(self) -> float:
        """CPU seconds the worker thread has used so far, read now (from another thread too).

        While the worker is idle, the figure it read of its own clock at the end of its last round
        of work (``stats.cpu_seconds``); the same where the platform has no per-thread CPU clock
        for other threads, as of the worker's last finished item.
        """
        clock = self._cpu_clock
        if clock is not None and self._thread is not None and self._activity & 1:  # (at work: its clock, read now)
            try:
                return time.clock_gettime(clock[0]) - clock[1]
            except OSError:  # the thread has just ended
                self._cpu_clock = None
        return self.stats.cpu_seconds

    @property
    def holding(self) -> bool:
        """Whether the queued items wait on purpose, to be worked through together: the worker
        lingers, or (``inline``) the submitting thread runs them when due."""
        return self.lingering or self.inline

    def _has_work(self) -> bool:
        return bool(self._ready) or (bool(self._queue) and not self.inline)

    def analyse_due(self, *, force: bool = False) -> bool:
        """With ``inline``: run a batch of the queued work items on this thread if one is due
        (the oldest has waited ``linger`` s, the batch is full, or ``force``), and pass their
        frames to the worker for the sinks. Whether it ran one."""
        if not self._batch_due(force):  # (the common cases, nothing gathered or nothing due yet, without a lock)
            return False
        with self._analysing:
            with self._cond:
                if not self._batch_due(force):
                    return False
                batch = self._take_batch(everything=True)
            results = []
            for items in _runs(batch):
                results.extend(self._analyse(items))
        if self._encoders:
            # encoded here too, on frames still in the caches: on the worker, where training's
            # threads fill the cores, the same CPU comes off training's share anyway, on frames
            # made a while before. CPU work, no I/O: the sinks write and commit on the worker.
            # (LeNet-5, every view every 10 steps, no budget, 14 pairs run in turn: the overhead
            # about 0.15 points lower in median, a difference within the pairs' own scatter.)
            _encode_ahead(f for frames in results for f in frames)
        sized = [(frames, _held_bytes(frames)) for frames in results]
        with self._cond:
            self._ready.extend(sized)
            self._ready_bytes += sum(n for _, n in sized)
            # a slow sink: the oldest frames go, counted (the newest item's stay, whatever its size)
            while len(self._ready) > self.maxsize or (self._ready_bytes > self.max_bytes and len(self._ready) > 1):
                self._ready_bytes -= self._ready.popleft()[1]
                self.stats.dropped += 1
            self.stats.max_queue = max(self.stats.max_queue, len(self._ready))
            self._cond.notify()
        return True

    def _batch_due(self, force: bool) -> bool:
        """Inline: whether items are gathered and due (``force``, a full batch, or the oldest ``linger`` s old)."""
        return time.monotonic() >= self.due_at or (force and bool(self._queue))

    def _update_due(self) -> None:
        """``due_at`` for the queue as it is now (called holding the lock, after each change);
        infinity unless ``inline`` (the worker takes the items itself)."""
        if not self.inline:
            return
        queue = self._queue
        self.due_at = float("inf") if not queue else 0.0 if self._batch_full() else queue[0].submitted + self.linger

    def _linger(self) -> None:
        """Wait (holding the condition) until the oldest item is ``linger`` s old, the batch is
        full (``linger_bytes``, half of ``maxsize`` items, or ``first_batch``), or someone drains
        or closes."""
        self.lingering = True
        try:
            while not self._stop.is_set() and not self._hurry and self._queue:
                if self._batch_full():
                    return
                left = self._queue[0].submitted + self.linger - time.monotonic()
                if left <= 0:
                    return
                self._cond.wait(timeout=left)
        finally:
            self.lingering = False

    def _batch_full(self) -> bool:
        items = self.maxsize // 2 if self.left_queue else min(self.maxsize // 2, self.first_batch)
        return self._bytes >= self.linger_bytes or len(self._queue) >= items

    def _take_batch(self, *, everything: bool = False) -> list[WorkItem]:
        """The items to deliver next: the oldest alone, or, when lingering is on, the queue's
        oldest items up to about ``linger_bytes`` (``everything``: all of them), sorted by key
        (stable)."""
        if not self._queue:
            return []
        if self.linger <= 0 and not everything:
            return [self._take()]
        entries: list[_Entry] = []
        held = 0
        while self._queue and (everything or not entries or held + self._queue[0].nbytes <= self.linger_bytes):
            entry = self._queue.popleft()
            self._bytes -= entry.nbytes
            held += entry.nbytes
            entries.append(entry)
        self.left_queue += len(entries)
        self._update_due()
        groups: dict[object, int] = {}

        def order(e: _Entry) -> tuple[int, int]:  # by key, then a group's items together
            if not isinstance(e.item, GroupItem):
                return e.key, -1
            return e.key, groups.setdefault(e.item.group, len(groups))

        entries.sort(key=order)
        return [e.item for e in entries]

    def _take(self) -> WorkItem:
        entry = self._queue.popleft()
        self._bytes -= entry.nbytes
        self.left_queue += 1
        self._update_due()
        return entry.item

    def _frames_of(self, item: WorkItem) -> list[Frame]:
        try:
            return list(item())
        except Exception as exc:  # a bug in a reduction must not kill the worker
            self._failed(exc)
            return []

    def _failed(self, exc: Exception) -> None:
        """A work item whose analysis raised: counted, and said once for each kind of error (a
        diverged training's NaN weights, said at every recording, do not hide another)."""
        self._warn_once(f"analysis {type(exc).__name__}", f"convscope could not build frames ({type(exc).__name__}: {exc}); training goes on")
        self.stats.sink_failures["analysis"] = self.stats.sink_failures.get("analysis", 0) + 1

    def _analyse(self, items: list[Any]) -> list[list[Frame]]:
        """The frames of each item of a run (see :func:`_runs`): the items of one group together;
        if that fails, one at a time, so that only the items that fail alone are lost (and
        counted, with no frames)."""
        if len(items) == 1:
            return [self._frames_of(items[0])]
        try:
            results = items[0].run([item.args for item in items])
            if len(results) != len(items):
                raise RuntimeError(f"a group of {len(items)} items gave {len(results)} results")
        except Exception:  # noqa: BLE001  (each item again, alone: its own error is reported)
            return [self._frames_of(item) for item in items]
        out: list[list[Frame]] = []
        for frames in results:
            if isinstance(frames, Exception):
                self._failed(frames)
                out.append([])
            else:
                out.append(list(frames))
        return out

    def _write(self, frames: list[Frame], *, items: int = 1) -> None:
        """The frames of ``items`` work items to every sink: at once to a sink that takes several
        (its ``write_many`` writes all or, raising, none of them), else, and then, one by one."""
        self.stats.frames += len(frames)
        if self._encoders > 1:  # each frame encoded once for all of them (a no-op for those encoded ahead)
            _encode_ahead(frames)
        for sink in self.sinks:
            many = getattr(sink, "write_many", None) if len(frames) > 1 else None
            if many is not None:
                try:
                    many(frames)
                    continue
                except Exception:  # noqa: BLE001  (one by one: only what fails alone is lost, and counted)
                    pass
            for frame in frames:
                self._guard(sink, lambda s=sink, f=frame: s.write(f))
        if self._encoders:  # every sink has them: a frame a sink keeps (the memory sink) keeps no bytes
            for frame in frames:
                forget_encoding(frame)
        self.stats.delivered += items

    def _report_drops(self, to: Sequence[Sink]) -> None:
        """``dropped`` frames for what was lost since the last report, written to the sinks in
        ``to``: the queue's dropped work items (to all of them), and each sink's own count of
        dropped frames where it keeps one (to the others)."""
        if self._on_dropped is None:
            return
        reports: list[tuple[Sink | None, int, dict[str, str]]] = []
        if self.stats.dropped > self._reported_drops:
            self._reported_drops = self.stats.dropped
            reports.append((None, self.stats.dropped, {}))
        for sink in self.sinks:
            count = getattr(sink, "dropped", None)
            if isinstance(count, bool) or not isinstance(count, int) or count <= self._sink_drops.get(id(sink), 0):
                continue
            self._sink_drops[id(sink)] = count
            reports.append((sink, count, {"sink": getattr(sink, "name", type(sink).__name__)}))
        for source, count, named in reports:
            try:
                frame = self._on_dropped(count, **named)
            except Exception:  # noqa: BLE001  (a report must never stop the frames)
                continue
            if frame is not None:
                for other in to:
                    if other is not source:
                        self._guard(other, lambda s=other, f=frame: s.write(f))

    def _guard(self, sink: Sink, action: Callable[..., object], *, lost: bool = True) -> None:
        """``action`` on ``sink``, whose failure is counted and said once; ``lost``: the frame it
        was given is lost (a ``write``), not kept by the sink for its next try (a ``flush``: the
        HTTP sink keeps its frames while the server is away)."""
        # ``action`` is called with no arguments, but typed ``...``: the callers' lambdas bind their
        # loop variables as defaults, and mypy cannot infer such a lambda against ``Callable[[], ...]``
        try:
            action()
        except Exception as exc:
            name = getattr(sink, "name", type(sink).__name__)
            self.stats.sink_failures[name] = self.stats.sink_failures.get(name, 0) + 1
            self._warn_once(
                name,
                f"convscope sink {name!r} failed ({type(exc).__name__}: {exc}); training goes on"
                + (", its frames are dropped and counted" if lost else ""),
            )

    def _warn_once(self, key: str, message: str) -> None:
        if key in self._warned:
            return
        self._warned.add(key)
        _log.warning(message)
        try:
            warnings.warn(message, RuntimeWarning, stacklevel=2)
        except Exception:  # warnings turned into errors must not kill the worker thread
            pass


def _encode_ahead(frames: Iterable[Frame]) -> None:
    """Each frame encoded and its bytes kept with it (``encode(keep=True)``) for the sinks that
    encode; a frame that cannot be is left alone: each sink's own ``encode`` raises and counts it."""
    for frame in frames:
        try:
            encode(frame, keep=True)
        except Exception:  # noqa: BLE001, S112
            continue


def _held_bytes(frames: list[Frame]) -> int:
    """About the memory a work item's analysed frames hold: their arrays, and their encoded
    bytes where :func:`_encode_ahead` kept them (then the arrays are about as large: twice that,
    without walking the payloads on the thread that analyses). Anything but a frame counts 0."""
    total = 0
    for frame in frames:
        if not isinstance(frame, Frame):
            continue
        kept = kept_encoding(frame)
        total += frame.nbytes() if kept is None else 2 * len(kept)
    return total


def _runs(batch: list[WorkItem]) -> Iterable[list[Any]]:
    """The batch cut into runs: consecutive :class:`GroupItem` of one group together, others alone."""
    i = 0
    while i < len(batch):
        item = batch[i]
        j = i + 1
        if isinstance(item, GroupItem):
            while j < len(batch) and isinstance(nxt := batch[j], GroupItem) and nxt.group == item.group:
                j += 1
        yield batch[i:j]
        i = j

"""The frame pipeline never blocks the producer, bounds memory and isolates failing sinks."""

from __future__ import annotations

import threading
import time

import pytest

from convscope.insitu._pipeline import FramePipeline
from convscope.sinks import Sink


class ListSink(Sink):
    name = "list"

    def __init__(self, delay: float = 0.0) -> None:
        self.frames: list[object] = []
        self.closed_with: str | None = None
        self.delay = delay
        self.flushes = 0

    def write(self, frame: object) -> None:  # type: ignore[override]
        if self.delay:
            time.sleep(self.delay)
        self.frames.append(frame)

    def flush(self) -> None:
        self.flushes += 1

    def close(self, *, status: str = "finished") -> None:
        self.closed_with = status


class RaisingSink(Sink):
    name = "broken"

    def write(self, frame: object) -> None:  # type: ignore[override]
        raise OSError("disk full")


def test_frames_reach_every_sink_in_order_and_sinks_are_closed() -> None:
    a, b = ListSink(), ListSink()
    p = FramePipeline([a, b])
    p.start()
    for i in range(50):
        p.submit(lambda i=i: [i, i + 1000])
    p.close(status="finished")
    assert a.frames == b.frames == [x for i in range(50) for x in (i, i + 1000)]
    assert a.closed_with == "finished" and a.flushes >= 1
    assert p.stats.frames == 100 and p.stats.dropped == 0


def test_a_raising_sink_warns_once_and_the_others_still_get_everything() -> None:
    good = ListSink()
    p = FramePipeline([RaisingSink(), good])
    p.start()
    with pytest.warns(RuntimeWarning, match=r"sink 'broken' failed \(OSError: disk full\); training goes on") as rec:
        for i in range(20):
            p.submit(lambda i=i: [i])
        p.close()
    assert len([w for w in rec if "broken" in str(w.message)]) == 1
    assert good.frames == list(range(20))
    assert p.stats.sink_failures["broken"] == 20


def test_slow_sink_bounds_the_queue_and_counts_drops_without_blocking() -> None:
    slow = ListSink(delay=0.01)
    dropped_reports: list[int] = []
    p = FramePipeline([slow], maxsize=8, on_dropped=lambda n: dropped_reports.append(n) or None)
    p.start()
    start = time.perf_counter()
    for i in range(500):
        p.submit(lambda i=i: [i])
    submit_seconds = time.perf_counter() - start
    assert p.stats.max_queue <= 8
    p.close(timeout=5)
    assert submit_seconds < 0.5  # 500 submits never waited on the 10 ms sink
    assert p.stats.dropped > 400
    assert len(slow.frames) + p.stats.dropped == 500
    assert slow.frames == sorted(slow.frames)  # drop-oldest keeps the newest, in order
    assert slow.frames[-1] == 499
    assert dropped_reports and dropped_reports[-1] == p.stats.dropped


def test_several_items_submitted_at_once_keep_their_order_and_the_bounds() -> None:
    # (a recording's items, under one lock): the oldest go first when the items or their
    # bytes pass the bounds, as item by item
    sink = ListSink()
    p = FramePipeline([sink], maxsize=8, max_bytes=100)
    p.submit_many([(lambda i=i: [i], 0, 0) for i in range(12)])
    assert p.stats.submitted == 12 and p.stats.dropped == 4 and p.left_queue == 4
    assert [e.item()[0] for e in p._queue] == list(range(4, 12))
    # 60 bytes: one goes for the item count; 60 more: everything older goes, "big" last
    p.submit_many([(lambda: ["big"], 60, 0), (lambda: ["bigger"], 60, 0)])
    assert p.stats.dropped == 4 + 1 + 8 and p.stats.max_queue == 8
    p.submit_many([])
    p.start()
    p.close()
    assert sink.frames == ["bigger"]


def test_a_failing_work_item_does_not_kill_the_worker() -> None:
    sink = ListSink()
    p = FramePipeline([sink])
    p.start()
    with pytest.warns(RuntimeWarning, match="could not build frames") as said:
        p.submit(lambda: [1 / 0])
        p.submit(lambda: ["after"])
        p.submit(lambda: [1 / 0])  # the same error again: said once
        p.submit(lambda: [[][1]])  # another kind of error: said too
        p.close()
    assert sink.frames == ["after"] and p.stats.sink_failures["analysis"] == 3
    assert [str(w.message).split(":")[0] for w in said] == ["convscope could not build frames (ZeroDivisionError", "convscope could not build frames (IndexError"]


def test_start_and_close_are_idempotent_and_the_thread_ends() -> None:
    p = FramePipeline([ListSink()])
    p.start()
    p.start()
    p.close()
    p.close()
    assert not [t for t in threading.enumerate() if t.name == "convscope-frames"]


def test_the_workers_cpu_can_be_read_from_another_thread_while_it_works() -> None:
    # the slowdown meter reads it at every training step, in the middle of the worker's items
    p = FramePipeline([ListSink()])
    assert p.worker_cpu() == 0.0  # before the worker starts
    p.start()
    started, release = threading.Event(), threading.Event()

    def busy() -> list:
        started.set()
        end = time.thread_time() + 0.05
        while time.thread_time() < end or not release.is_set():
            pass
        return []

    p.submit(busy)
    assert started.wait(5)
    time.sleep(0.02)
    during = p.worker_cpu()
    if hasattr(time, "pthread_getcpuclockid"):  # the live clock, not the last finished item's figure
        assert during > 0.005 and p.stats.cpu_seconds < during
        time.sleep(0.02)  # and read again in the same item: still live, not the first reading kept
        assert p.worker_cpu() > during
    release.set()
    assert p.drain()
    after = p.worker_cpu()
    assert after >= 0.05 and after >= during
    # an idle worker is not asked again (the reading stands), and work since then shows
    assert p.worker_cpu() == after
    p.submit(lambda: [sum(range(200_000))])
    assert p.drain()
    assert p.worker_cpu() > after
    p.close()
    assert p.worker_cpu() == p.stats.cpu_seconds  # after the thread has ended: its last figure


def test_a_lingering_worker_runs_a_batch_view_by_view_in_submission_order_per_view() -> None:
    # Three "recordings" of three views each arrive within the linger time: the worker waits,
    # then runs them view by view (key order), each view's items in the order they came.
    sink = ListSink()
    p = FramePipeline([sink], linger=5.0)
    p.start()
    t0 = time.monotonic()
    for rec in range(3):
        for key, view in ((3, "c"), (1, "a"), (2, "b")):
            p.submit(lambda rec=rec, view=view: [f"{view}{rec}"], key=key)
    assert _wait_for(lambda: p.lingering)
    assert sink.frames == []  # held back on purpose: nothing delivered yet
    assert p.drain(timeout=2.0)  # draining cuts the wait short
    assert time.monotonic() - t0 < 2.0
    assert sink.frames == ["a0", "a1", "a2", "b0", "b1", "b2", "c0", "c1", "c2"]
    p.close()
    assert p.stats.dropped == 0 and p.stats.delivered == 9


def test_lingering_ends_at_its_time_or_at_the_byte_bound_and_a_batch_holds_about_that_much() -> None:
    sink = ListSink()
    p = FramePipeline([sink], linger=0.15)
    p.start()
    t0 = time.monotonic()
    p.submit(lambda: ["late"])
    assert _wait_for(lambda: sink.frames)
    assert 0.12 <= time.monotonic() - t0 < 2.0  # delivered once the oldest item was 0.15 s old
    p.close()

    sink = ListSink()
    p = FramePipeline([sink], linger=30.0, linger_bytes=1000)
    p.start()
    for i in range(5):  # 400 bytes each: the third item passes the bound and ends the wait
        p.submit(lambda i=i: [i], nbytes=400)
    # batches of two (a third item would pass 1000 bytes) until what is left is under the bound:
    # the last item waits for more company, not the 30 s
    assert _wait_for(lambda: len(sink.frames) >= 4 and p.lingering)
    time.sleep(0.05)
    assert sink.frames == [0, 1, 2, 3]
    assert p.drain(timeout=2.0) and sink.frames == [0, 1, 2, 3, 4]
    p.close()
    assert p.stats.dropped == 0


def _wait_for(condition, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


def test_items_of_one_group_run_together_in_order_and_a_failing_group_runs_them_alone() -> None:
    from convscope.insitu._pipeline import GroupItem

    calls: list[list[object]] = []

    def run(args: list[object]) -> list[list[object]]:
        calls.append(list(args))
        if "bad" in args:
            raise ValueError("bad recording")
        return [[f"{a}!"] for a in args]

    sink = ListSink()
    p = FramePipeline([sink], linger=5.0)
    p.start()
    for rec in range(3):  # two layers' items of one view, interleaved, and a plain item of another
        p.submit(GroupItem("conv1", run, f"a{rec}"), key=2)
        p.submit(GroupItem("conv2", run, f"b{rec}"), key=2)
        p.submit(lambda rec=rec: [f"plain{rec}"], key=1)
    assert p.drain(timeout=2.0)
    # one call per group, in submission order within it; the view of key 1 first
    assert calls == [["a0", "a1", "a2"], ["b0", "b1", "b2"]]
    assert sink.frames == ["plain0", "plain1", "plain2", "a0!", "a1!", "a2!", "b0!", "b1!", "b2!"]

    calls.clear()
    for name in ("c0", "bad", "c2"):
        p.submit(GroupItem("conv3", run, name), key=2)
    with pytest.warns(RuntimeWarning, match="could not build frames"):
        assert p.drain(timeout=2.0)
    # the group failed together, then each item ran alone: only the bad one is lost, and counted
    assert calls == [["c0", "bad", "c2"], ["c0"], ["bad"], ["c2"]]
    assert sink.frames[-2:] == ["c0!", "c2!"]
    assert p.stats.sink_failures["analysis"] == 1 and p.stats.delivered == 12
    # alone (no lingering), an item runs its own arguments
    assert GroupItem("x", run, "solo")() == ["solo!"]
    p.close()


class BatchSink(ListSink):
    """Takes a work item's frames at once, all or none, like the run store."""

    name = "batch"

    def __init__(self) -> None:
        super().__init__()
        self.batches = 0

    def write(self, frame: object) -> None:  # type: ignore[override]
        if frame == "bad":
            raise ValueError("cannot encode")
        super().write(frame)

    def write_many(self, frames: list[object]) -> None:
        if "bad" in frames:
            raise ValueError("cannot encode")
        self.batches += 1
        self.frames.extend(frames)


def test_a_sink_that_takes_several_frames_gets_each_items_frames_at_once_and_one_by_one_after_a_failure() -> None:
    sink, plain = BatchSink(), ListSink()
    p = FramePipeline([sink, plain])
    p.start()
    p.submit(lambda: ["a", "b", "c"])
    p.submit(lambda: ["d", "bad", "e"])
    with pytest.warns(RuntimeWarning, match="sink 'batch' failed"):
        assert p.drain(timeout=2.0)
    assert sink.frames == ["a", "b", "c", "d", "e"] and sink.batches == 1
    assert plain.frames == ["a", "b", "c", "d", "bad", "e"]
    assert p.stats.sink_failures == {"batch": 1} and p.stats.frames == 6
    p.close()


def test_inline_items_run_on_the_thread_that_asks_when_due_and_the_worker_only_delivers() -> None:
    from convscope.insitu._pipeline import GroupItem

    sink = ListSink()
    p = FramePipeline([sink], linger=0.2, inline=True)
    p.start()
    ran: list[tuple[str, object]] = []

    def item(name):
        def run():
            ran.append((threading.current_thread().name, name))
            if name == "bad":
                raise ValueError("a broken reduction")
            return [name]

        return run

    def group(args):
        ran.append((threading.current_thread().name, tuple(args)))
        return [[f"g{a}"] for a in args]

    for i, name in enumerate(["a", "bad", "b"]):
        p.submit(item(name), key=2)
        p.submit(GroupItem("g", group, i), key=1)
    time.sleep(0.05)
    assert not ran and not p.analyse_due()  # not due yet, and the worker leaves them alone
    time.sleep(0.2)
    with pytest.warns(RuntimeWarning, match="a broken reduction"):
        assert p.analyse_due()
    me = threading.current_thread().name
    # by key, the group's three items in one call, the others in submission order, all here
    assert ran == [(me, (0, 1, 2)), (me, "a"), (me, "bad"), (me, "b")]
    assert p.drain()
    assert sink.frames == ["g0", "g1", "g2", "a", "b"]
    assert p.stats.delivered == 6 and p.stats.sink_failures == {"analysis": 1}
    p.submit(item("c"))
    assert p.drain()  # drain() analyses what is queued itself
    assert sink.frames[-1] == "c" and ran[-1] == (me, "c")
    p.submit(item("d"))
    p.close()  # and so does close()
    assert sink.frames[-1] == "d"


def test_close_runs_what_is_queued_as_one_batch_and_counts_what_misses_its_deadline() -> None:
    from convscope.insitu._pipeline import GroupItem

    calls: list[tuple[object, ...]] = []

    def group(args):
        calls.append(tuple(args))
        return [[f"g{a}"] for a in args]

    for inline in (True, False):
        calls.clear()
        sink = ListSink()
        p = FramePipeline([sink], linger=30.0, inline=inline)
        p.start()
        for i in range(3):
            p.submit(GroupItem("g", group, i), key=2)
            p.submit(lambda i=i: [f"p{i}"], key=1)
        p.close()
        # the group's three items in one call (not three), the other view first, nothing lost
        assert calls == [(0, 1, 2)]
        assert sink.frames == ["p0", "p1", "p2", "g0", "g1", "g2"] and p.stats.dropped == 0
        assert sink.closed_with == "finished"

    sink = ListSink()
    p = FramePipeline([sink], linger=30.0, inline=True)
    p.start()
    for i in range(4):
        p.submit(GroupItem("g", group, i), key=2)
    p.close(timeout=0)  # the deadline has passed before anything runs: every item dropped, counted
    assert sink.frames == [] and p.stats.dropped == 4 and sink.closed_with == "finished"


def test_the_first_batch_is_full_at_first_batch_items_and_later_ones_at_half_the_queue() -> None:
    # The first batch is cut early (its frames come soon, and the monitor's budget learns what a
    # recording costs); after it, a batch gathers up to half of maxsize items or its time.
    sink = ListSink()
    p = FramePipeline([sink], maxsize=20, linger=30.0, first_batch=3, inline=True)
    p.start()
    try:
        for i in range(2):
            p.submit(lambda i=i: [i])
        assert not p.analyse_due()  # 2 of 3: it waits (for 30 s)
        p.submit(lambda: [2])
        assert p.analyse_due()  # full at 3
        for i in range(3, 12):
            p.submit(lambda i=i: [i])
            assert p.due_at > 0 and not p.analyse_due()  # later batches wait for 10 (maxsize // 2)
        p.submit(lambda: [12])
        assert p.analyse_due()
        assert p.drain() and sink.frames == list(range(13))
    finally:
        p.close()


def test_the_worker_flushes_once_per_batch_and_rarely_when_idle() -> None:
    # Each wake of the worker costs training far more than its CPU on a busy machine: frames are
    # flushed in the wake that writes them (at most once per flush_interval), and an idle worker
    # wakes only every idle_interval for the sinks' heartbeats.
    sink = ListSink()
    p = FramePipeline([sink], flush_interval=0.05, idle_interval=0.6)
    p.start()
    try:
        time.sleep(0.1)
        p.submit(lambda: [1, 2])
        deadline = time.monotonic() + 5
        while sink.flushes == 0 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert sink.frames == [1, 2] and sink.flushes == 1  # written and flushed together
        time.sleep(0.45)
        assert sink.flushes == 1  # idle: no wake before idle_interval
        time.sleep(0.6)
        assert 2 <= sink.flushes <= 3  # then a heartbeat flush
    finally:
        p.close()


class BytesSink(Sink):
    """A sink that encodes each frame, as the run store and the live server's sink do."""

    name = "bytes"
    encodes = True

    def __init__(self) -> None:
        self.data: list[bytes] = []

    def write(self, frame: object) -> None:  # type: ignore[override]
        from convscope.frames import encode

        self.data.append(encode(frame))  # type: ignore[arg-type]


@pytest.mark.parametrize("inline", [True, False])
def test_each_frame_is_encoded_once_for_every_sink_that_encodes_inline_on_the_thread_that_analyses(
    tmp_path, monkeypatch, inline: bool
) -> None:
    import numpy as np

    import convscope.frames as frames_module
    from convscope.errors import FrameError
    from convscope.frames import Frame, decode, encode
    from convscope.sinks.memory import MemorySink
    from convscope.sinks.store import StoreSink
    from convscope.store import RunStore

    encoded: list[tuple[int, str]] = []  # (step, thread) of each time a frame is encoded
    real = frames_module._encode

    def counting(frame, *, check):
        encoded.append((frame.step, threading.current_thread().name))
        return real(frame, check=check)

    monkeypatch.setattr(frames_module, "_encode", counting)
    store, other, memory = StoreSink(tmp_path, run="r"), BytesSink(), MemorySink()
    p = FramePipeline([store, other, memory], linger=30.0, inline=inline)
    p.start()

    def frame(step: int, value: object = None) -> Frame:
        return Frame(run="r", step=step, kind="scalar", payload={"name": "loss", "value": float(step) if value is None else value})

    for step in range(6):  # the frame of step 3 cannot be encoded (a set is no payload value)
        p.submit(lambda step=step: [frame(step, {1} if step == 3 else None)])
    if inline:
        assert p.analyse_due(force=True)
        # all encoded here, before the worker hands them to the sinks (step 3 tried, and left)
        assert sorted(encoded) == [(s, threading.current_thread().name) for s in range(6)]
    with pytest.warns(RuntimeWarning, match="cannot be encoded"):
        assert p.drain()
    good = [0, 1, 2, 4, 5]
    # once each for both sinks (inline: on this thread, above); only the frame that cannot be is tried again
    assert sorted(s for s, _ in encoded if s != 3) == good
    if not inline:
        assert {thread for _, thread in encoded} == {"convscope-frames"}
    assert p.stats.sink_failures == {"store": 1, "bytes": 1}
    p.close()
    stored = RunStore(tmp_path).open_run(store.run_id).frames(kind="scalar")
    assert [f.step for f in stored] == good == [decode(d).step for d in other.data]
    assert [f.payload["value"] for f in stored] == [float(s) for s in good]
    # the bytes are not kept with the frames once every sink has them: the memory sink's frames
    # are encoded anew when asked
    assert [f.step for f in memory.frames] == list(range(6))
    before = len(encoded)
    assert decode(encode(memory.frames[0])).payload == {"name": "loss", "value": 0.0}
    assert len(encoded) == before + 1
    with pytest.raises(FrameError):
        encode(frame(7, np))


def test_analysed_frames_waiting_for_a_stuck_sink_are_held_to_max_bytes_the_newest_kept() -> None:
    # inline, the training thread analyses and the worker hands the frames to the sinks: a sink
    # that is stuck must not let big frames (a large model's images) pile up to maxsize items
    import numpy as np

    from convscope.frames import Frame

    entered, gate = threading.Event(), threading.Event()

    class StuckSink(ListSink):
        encodes = True  # the frames are encoded ahead, and their bytes kept with them

        def write(self, frame: object) -> None:  # type: ignore[override]
            entered.set()
            gate.wait(10)
            super().write(frame)

    def item(i: int):
        weights = np.full(1 << 18, i, dtype=np.float32)  # 1 MiB
        return lambda: [Frame(run="r", step=i, kind="weight_grid", layer="conv1", payload={"weights": weights, "vmax": 1.0})]

    sink = StuckSink()
    p = FramePipeline([sink], inline=True, maxsize=1000, max_bytes=5 << 20)
    p.start()
    p.submit(item(0))
    assert p.analyse_due(force=True)
    assert entered.wait(5)  # the worker holds frame 0, stuck in the sink
    for i in range(1, 21):
        p.submit(item(i))
        assert p.analyse_due(force=True)
        # each waiting frame holds its 1 MiB array and its encoded bytes: two of them fit in 5 MiB
        assert len(p._ready) <= 2 and p._ready_bytes <= 5 << 20
    assert p.stats.dropped == 18 and p.stats.max_queue <= 3
    gate.set()
    p.close()
    assert [f.step for f in sink.frames] == [0, 19, 20]
    assert all(f.payload["weights"][0] == f.step for f in sink.frames)

"""Live WebSockets: frames from other writers and processes, filters, replay, status, many viewers, refusals."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from samples import frame
from starlette.websockets import WebSocketDisconnect
from websockets.sync.client import connect

from convscope.frames import Frame, decode, encode
from convscope.server import create_app, start_local_server
from convscope.server._live import RunsWatch
from convscope.store import RunStore

FRAMES = "application/x-convscope-frames"


def _run(logdir: Path, name: str = "r") -> object:
    w = RunStore(logdir).create_run(name)
    w.write(frame("scalar", 0, run=name))
    w.flush()
    return w


def _wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.01)


def test_frames_filters_replay_and_status_over_testclient(tmp_path: Path) -> None:
    w = _run(tmp_path)
    app = create_app(tmp_path, poll_seconds=0.02)
    with TestClient(app) as c, c.websocket_connect("/api/runs/r/live") as ws:
        _wait_for(lambda: "r" in app.state.hub.tails)
        for step in (1, 2):
            w.write(frame("scalar", step))
            w.write(frame("correlation", step))
        w.flush()
        got = [decode(ws.receive_bytes()) for _ in range(4)]
        assert [(f.kind, f.step) for f in got] == [("scalar", 1), ("correlation", 1), ("scalar", 2), ("correlation", 2)]
        ws.send_text(json.dumps({"kinds": ["correlation"], "layers": ["conv1"]}))
        time.sleep(0.1)  # the filter applies to what comes after it
        for step in (3, 4):
            w.write(frame("scalar", step))
            w.write(frame("correlation", step))
            w.write(frame("correlation", step, layer="conv2"))
        w.flush()
        assert [(f.kind, f.layer, f.step) for f in (decode(ws.receive_bytes()) for _ in range(2))] == [
            ("correlation", "conv1", 3), ("correlation", "conv1", 4)]
        # a client that reconnects asks for what it missed: frames after a step, in step order, filtered
        # (scalar 2 came live before the filter, 3 and 4 did not)
        ws.send_text(json.dumps({"kinds": ["scalar"], "layers": None, "since": 1}))
        assert [decode(ws.receive_bytes()).step for _ in range(2)] == [3, 4]
        w.write(frame("scalar", 5))
        w.flush()
        assert decode(ws.receive_bytes()).step == 5  # live again, nothing twice
        ws.send_text("not json")
        ws.send_bytes(b"\x00binary")  # ignored too
        w.close()
        assert json.loads(ws.receive_text()) == {"type": "status", "status": "finished"}
    _wait_for(lambda: not app.state.hub.tails)  # the last viewer left: the run is no longer polled


def test_a_reconnecting_viewer_catches_up_without_getting_frames_twice(tmp_path: Path) -> None:
    """The dashboard reconnects (the server restarted, the network dropped) and sends
    ``{"since": last step it has}`` once open; frames that reach it live before that message
    is read must not come again in the replay (pruning events, health strips would double)."""
    w = _run(tmp_path)
    for step in (1, 2):
        w.write(frame("scalar", step))
    w.flush()
    app = create_app(tmp_path, poll_seconds=0.02)
    with TestClient(app) as c, c.websocket_connect("/api/runs/r/live") as ws:
        _wait_for(lambda: "r" in app.state.hub.tails)
        for step in (3, 4):  # training goes on while the client's message is on its way
            w.write(frame("scalar", step))
            w.write(frame("pruning", step, layer="conv1"))
        w.flush()
        live = [decode(ws.receive_bytes()) for _ in range(4)]
        assert [(f.kind, f.step) for f in live] == [("scalar", 3), ("pruning", 3), ("scalar", 4), ("pruning", 4)]
        ws.send_text(json.dumps({"since": 1}))  # what the client had before it reconnected
        assert decode(ws.receive_bytes()).step == 2  # the one frame it missed
        w.write(frame("scalar", 5))
        w.flush()
        assert decode(ws.receive_bytes()).step == 5  # and then live again, nothing twice
        w.close()
        assert json.loads(ws.receive_text()) == {"type": "status", "status": "finished"}


def _received(ws, count: int) -> list[tuple[str, str, int]]:
    return [(f.kind, f.layer, f.step) for f in (decode(ws.receive_bytes()) for _ in range(count))]


def _until_closed(ws) -> list[tuple[str, str, int]]:
    """The frames a stream sends until it says its run is finished (so a test that expects more
    than comes fails instead of waiting for ever)."""
    got = []
    while "bytes" in (msg := ws.receive()) and msg["bytes"] is not None:
        f = decode(msg["bytes"])
        got.append((f.kind, f.layer, f.step))
    assert json.loads(msg["text"]) == {"type": "status", "status": "finished"}
    return got


def test_a_page_that_read_the_run_follows_on_from_the_cursor_of_its_read_each_frame_once(tmp_path: Path) -> None:
    """The dashboard reads a run's history, then follows it: ``{"after": cursor}`` (the row the
    read names in X-Convscope-Cursor) gives exactly the frames written in between, filtered, in
    the order stored; then live ones, none of them twice (a pruning counted twice is a wrong
    filter numbering)."""
    w = _run(tmp_path)
    for f in (frame("scalar", 1), frame("pruning", 1), frame("correlation", 1)):
        w.write(f)
    w.flush()
    app = create_app(tmp_path, poll_seconds=0.02)
    with TestClient(app) as c:
        got = c.get("/api/runs/r/frames", params={"kind": ["scalar", "pruning"], "max_points": 3000})
        cursor = int(got.headers["X-Convscope-Cursor"])
        assert int(got.headers["X-Frame-Count"]) == 3
        with RunStore(tmp_path).open_run("r") as reader:
            assert cursor == reader.last_id() == 4  # (filtered or not: the whole run was read up to here)
        assert c.get("/api/runs/r/frames").headers["X-Convscope-Cursor"] == str(cursor)
        # the gap: written after the read, before the stream joins (a frame of the read's last step among them)
        for f in (frame("groups", 1), frame("scalar", 2), frame("correlation", 2), frame("pruning", 2)):
            w.write(f)
        w.flush()
        with c.websocket_connect("/api/runs/r/live") as ws:
            ws.send_text(json.dumps({"kinds": ["scalar", "pruning", "groups"], "after": cursor}))
            time.sleep(0.2)  # (the message is read: what is written from now on comes after the replay)
            for f in (frame("scalar", 3), frame("correlation", 3), frame("pruning", 3)):
                w.write(f)
            w.close()
            assert _until_closed(ws) == [("groups", "conv1", 1), ("scalar", "", 2), ("pruning", "", 2),  # the gap
                                         ("scalar", "", 3), ("pruning", "", 3)]  # live, and nothing twice


def test_a_stream_joins_past_what_its_client_read_even_where_the_poller_lags(tmp_path: Path) -> None:
    """Another viewer already follows the run, its poller not yet at the newest rows (it polls
    every 30 s here, woken only by pokes): a page that read those rows and then follows the run
    from its cursor must not get them again live."""
    w = _run(tmp_path)
    app = create_app(tmp_path, poll_seconds=30.0)
    hub = app.state.hub
    with TestClient(app) as c, c.websocket_connect("/api/runs/r/live") as first:
        _wait_for(lambda: "r" in hub.tails)
        time.sleep(0.3)  # (its poller's first look is over: it waits for a poke now)
        for f in (frame("pruning", 2), frame("scalar", 2)):
            w.write(f)
        w.flush()  # (not polled yet)
        got = c.get("/api/runs/r/frames")
        cursor = int(got.headers["X-Convscope-Cursor"])
        assert int(got.headers["X-Frame-Count"]) == 3 and cursor > hub.tails["r"].cursor
        with c.websocket_connect("/api/runs/r/live") as ws:
            ws.send_text(json.dumps({"after": cursor}))
            _wait_for(lambda: len(hub.tails["r"].viewers) == 2)
            time.sleep(0.1)  # (the message is read)
            hub.poke("r")
            assert _received(first, 2) == [("pruning", "", 2), ("scalar", "", 2)]
            w.write(frame("scalar", 3))
            w.flush()
            hub.poke("r")
            assert _received(ws, 1) == [("scalar", "", 3)]  # the first thing it gets: nothing it read
            assert _received(first, 1) == [("scalar", "", 3)]


def test_a_read_of_the_frames_and_its_cursor_see_the_same_rows(tmp_path: Path, monkeypatch) -> None:
    """A frame committed while GET /frames reads (between its cursor and its frames) is in neither
    the answer nor before the cursor: it comes after, once."""
    from convscope.store import RunReader

    w = _run(tmp_path)
    read = RunReader.raw_frames

    def writing_meanwhile(self, **filters):
        w.write(frame("pruning", 1))
        w.flush()
        return read(self, **filters)

    monkeypatch.setattr(RunReader, "raw_frames", writing_meanwhile)
    with TestClient(create_app(tmp_path)) as c:
        got = c.get("/api/runs/r/frames")
    monkeypatch.undo()
    with RunStore(tmp_path).open_run("r") as reader:
        assert reader.last_id() == 2
    assert got.headers["X-Convscope-Cursor"] == "1" and got.headers["X-Frame-Count"] == "1"
    assert [f.kind for f in _decode_all(got.content)] == ["scalar"]


def _decode_all(body: bytes) -> list[Frame]:
    from convscope.frames import decode_stream

    return list(decode_stream(body))


def test_bad_cursors_and_steps_are_ignored(tmp_path: Path) -> None:
    w = _run(tmp_path)
    w.write(frame("scalar", 1))
    w.flush()
    app = create_app(tmp_path, poll_seconds=0.02)
    with TestClient(app) as c, c.websocket_connect("/api/runs/r/live") as ws:
        for bad in ("0", True, -1, 1.5, None, [0], {"row": 0}, 10**30):
            ws.send_text(json.dumps({"after": bad}))
        ws.send_text(json.dumps({"since": 10**30}))  # (a step past any SQLite holds: no frame, and no error)
        time.sleep(0.2)
        w.write(frame("scalar", 2))
        w.flush()
        assert _received(ws, 1) == [("scalar", "", 2)]  # nothing replayed, the stream still up
        ws.send_text(json.dumps({"after": 0}))  # (a good one: everything before it joined)
        time.sleep(0.2)
        w.close()
        assert _until_closed(ws) == [("scalar", "", 0), ("scalar", "", 1)]


def test_refusals_close_with_clear_codes(tmp_path: Path) -> None:
    _run(tmp_path, "r").close()
    with TestClient(create_app(tmp_path, token="t0k")) as c:
        for path in ("/api/runs/r/live", "/api/live"):
            with pytest.raises(WebSocketDisconnect) as exc, c.websocket_connect(path):
                pass
            assert exc.value.code == 4401
        with pytest.raises(WebSocketDisconnect) as exc, c.websocket_connect("/api/runs/nope/live?token=t0k"):
            pass
        assert exc.value.code == 4404
        with pytest.raises(WebSocketDisconnect) as exc, c.websocket_connect("/api/runs/..%2Fx/live?token=t0k"):
            pass
        assert exc.value.code in (4404, 1000)
        # a page from another site may not open a stream, even on a token-less loopback server
    with TestClient(create_app(tmp_path)) as c:
        with pytest.raises(WebSocketDisconnect) as exc, c.websocket_connect("/api/live", headers={"Origin": "http://evil.example"}):
            pass
        assert exc.value.code == 4403
        with c.websocket_connect("/api/live", headers={"Origin": "http://testserver"}) as ws:  # our own page
            assert json.loads(ws.receive_text())["run"]["id"] == "r"


def test_the_runs_list_sends_a_runs_summary_as_it_changes(tmp_path: Path) -> None:
    # The Runs page's row of a training run follows its summary: the list's stream sends the run
    # again, with its new summary, when a commit changes it.
    w = _run(tmp_path)
    app = create_app(tmp_path, poll_seconds=0.02)
    with TestClient(app) as c, c.websocket_connect("/api/live") as ws:
        first = json.loads(ws.receive_text())["run"]
        assert first["id"] == "r" and first["summary"] == {"scalars": {"loss": {"value": 1.0, "step": 0}}, "health": {}, "filters": {}}
        w.write(Frame(run="r", step=1, kind="gradient_health", layer="conv2", payload={
            "status": "vanishing", "grad_norm": 1e-9, "update_ratio": 0.0, "zero_fraction": 0.0, "dead_fraction": 0.0, "nonfinite": 0}))
        w.write(Frame(run="r", step=1, kind="scalar", payload={"name": "loss", "value": 0.25}))
        w.flush()
        while (run := json.loads(ws.receive_text())["run"])["summary"] == first["summary"]:
            pass
        assert run["summary"] == {"scalars": {"loss": {"value": 0.25, "step": 1}},
                                  "health": {"conv2": {"status": "vanishing", "step": 1, "flagged": 1, "checks": 1}}, "filters": {}}
        w.close()
        while json.loads(ws.receive_text())["run"]["status"] != "finished":
            pass
    # (a change of the summary alone is news too: where retention thins as many frames as a commit brings)
    assert RunsWatch.key(run) != RunsWatch.key({**run, "summary": first["summary"]})


LIVE_WRITER = textwrap.dedent(
    """
    import sys, time
    from convscope.frames import Frame
    from convscope.store import RunStore
    w = RunStore(sys.argv[1]).create_run("other-process")
    w.flush()
    print("ready", flush=True)
    sys.stdin.readline()
    for step in range(1, 201):
        w.write(Frame(run=w.run_id, step=step, kind="scalar", payload={"name": "loss", "value": float(step)}))
        if step % 10 == 0:
            w.flush()
            time.sleep(0.01)
    w.close()
    """
)


def test_many_viewers_follow_a_run_written_by_another_process(server) -> None:
    proc = subprocess.Popen([sys.executable, "-c", LIVE_WRITER, server.logdir], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    viewers = 6
    results: list[list] = [[] for _ in range(viewers)]
    connected = threading.Barrier(viewers + 1, timeout=30)
    url = server.url.replace("http", "ws") + "api/runs/other-process/live"

    def follow(k: int) -> None:
        with connect(url, open_timeout=10) as ws:
            connected.wait()
            while True:
                msg = ws.recv(timeout=20)
                if isinstance(msg, str):
                    results[k].append(json.loads(msg))
                    return
                results[k].append(decode(msg).step)

    try:
        assert proc.stdout.readline().strip() == "ready"
        threads = [threading.Thread(target=follow, args=(k,)) for k in range(viewers)]
        for t in threads:
            t.start()
        connected.wait()
        hub = server.app.state.hub
        assert len(hub.tails) == 1 and len(hub.tails["other-process"].viewers) == viewers  # one poller for all
        proc.stdin.write("go\n")
        proc.stdin.flush()
        for t in threads:
            t.join(30)
        assert proc.wait(10) == 0
    finally:
        proc.kill()
        proc.stdin.close()
        proc.stdout.close()
    for got in results:
        assert got == list(range(1, 201)) + [{"type": "status", "status": "finished"}]


def test_ingested_frames_reach_viewers_at_once_and_runs_page_hears_of_runs(tmp_path: Path) -> None:
    # a slow poll: ingested frames must not wait for it
    with start_local_server(tmp_path, poll_seconds=5.0) as handle, httpx.Client(base_url=handle.url, timeout=10) as c:
        base = handle.url.replace("http", "ws")
        with connect(base + "api/live", open_timeout=10) as runs_ws:
            run = c.post("/api/runs", json={"name": "pushed"}).json()["id"]
            msg = json.loads(runs_ws.recv(timeout=10))
            assert msg["type"] == "run" and msg["run"]["id"] == run and msg["run"]["status"] == "live"
            with connect(base + f"api/runs/{run}/live", open_timeout=10) as ws:
                time.sleep(0.2)
                body = encode(Frame(run=run, step=7, kind="weight_grid", layer="conv1",
                                    payload={"weights": np.arange(18, dtype=np.float32).reshape(2, 1, 3, 3), "vmax": 17.0}))
                t = time.perf_counter()
                assert c.post(f"/api/runs/{run}/frames", content=body, headers={"content-type": FRAMES}).json() == {"accepted": 1}
                got = decode(ws.recv(timeout=4))
                assert time.perf_counter() - t < 2.0  # well before the 5 s poll
                np.testing.assert_array_equal(got.payload["weights"], np.arange(18, dtype=np.float32).reshape(2, 1, 3, 3))
                c.post(f"/api/runs/{run}/close", json={"status": "failed"})
                assert json.loads(ws.recv(timeout=4)) == {"type": "status", "status": "failed"}
            while (msg := json.loads(runs_ws.recv(timeout=10)))["run"]["status"] != "failed":
                pass
            assert msg["run"]["id"] == run and msg["run"]["frames"] == 1


def test_a_viewer_that_falls_too_far_behind_is_cut_loose(monkeypatch) -> None:
    import convscope.server._live as live

    monkeypatch.setattr(live, "VIEWER_MAX_BYTES", 1000)
    v = live.Viewer("r", kinds=frozenset({"scalar"}))
    v.offer(1, "scalar", "", b"x" * 400)
    v.offer(2, "histogram", "", b"x" * 900)  # filtered out: costs nothing
    v.offer(3, "scalar", "", b"x" * 400)
    v.offer(4, "scalar", "", b"x" * 400)  # would leave more than 1000 bytes unsent
    v.offer(5, "scalar", "", b"x" * 10)
    items = [v.queue.get_nowait() for _ in range(v.queue.qsize())]
    assert [i[1] if i else None for i in items] == [1, 3, None] and v.overflowed  # the sender closes with 1013


def test_a_runs_last_frames_come_before_its_end_is_said(tmp_path: Path, monkeypatch) -> None:
    """The run's last frames and its end are committed between two reads of one poll: the stream
    must still send every frame before the status that says the run has ended (a client may
    stop reading there). Made certain by closing the run inside the poll's read of the rows."""
    from convscope.store import RunReader

    w = _run(tmp_path)
    app = create_app(tmp_path, poll_seconds=0.02)
    tail = RunReader.tail
    closing = threading.Event()

    def tail_then_close(self, after_id: int, *, limit: int = 256):
        rows = tail(self, after_id, limit=limit)
        if closing.is_set() and not w._closed:  # (the writer ends the run right after this read)
            w.write(frame("scalar", 99))
            w.close()
        return rows

    monkeypatch.setattr(RunReader, "tail", tail_then_close)
    with TestClient(app) as c, c.websocket_connect("/api/runs/r/live") as ws:
        _wait_for(lambda: "r" in app.state.hub.tails)
        w.write(frame("scalar", 1))
        w.flush()
        assert decode(ws.receive_bytes()).step == 1
        closing.set()
        got = []
        while True:
            message = ws.receive()
            if message.get("text"):
                assert json.loads(message["text"]) == {"type": "status", "status": "finished"}
                break
            got.append(decode(message["bytes"]).step)
        assert got == [99]


def _messages(ws, until_cursor: bool = True) -> list:
    """What the stream sends up to and with its next cursor: frames as (kind, step), the cursor as
    ("cursor", row)."""
    out = []
    while True:
        message = ws.receive()
        if message.get("bytes") is not None:
            f = decode(message["bytes"])
            out.append((f.kind, f.step))
            continue
        msg = json.loads(message["text"])
        if msg["type"] == "cursor":
            out.append(("cursor", msg["row"]))
            if until_cursor:
                return out


def test_a_stream_with_cursors_goes_on_after_a_dropped_connection_with_each_frame_once(tmp_path: Path) -> None:
    """A client that asks for cursors is told, whenever the stream has caught up, the row up to
    which it has every frame; connecting again from there gives it exactly what it missed."""
    w = _run(tmp_path)  # (row 1: step 0)
    app = create_app(tmp_path, poll_seconds=0.02)

    def last() -> int:
        with RunStore(tmp_path).open_run("r") as reader:
            return reader.last_id()

    with TestClient(app) as c:
        read = c.get("/api/runs/r/frames")
        cursor = int(read.headers["x-convscope-cursor"])
        w.write(frame("scalar", 1))  # (written between the read and the stream)
        w.flush()
        with c.websocket_connect("/api/runs/r/live") as ws:
            ws.send_text(json.dumps({"after": cursor, "cursors": True}))
            assert _messages(ws) == [("scalar", 1), ("cursor", 2)]  # the gap, then where it stands
            for step in (2, 3):
                w.write(frame("scalar", step))
            w.flush()
            assert _messages(ws) == [("scalar", 2), ("scalar", 3), ("cursor", 4)]
            row = 4
        for step in (4, 5, 6):  # (while it is away)
            w.write(frame("scalar", step))
        w.write(frame("correlation", 6))
        w.flush()
        with c.websocket_connect("/api/runs/r/live") as ws:
            ws.send_text(json.dumps({"after": row, "cursors": True, "kinds": ["scalar"]}))
            assert _messages(ws) == [("scalar", 4), ("scalar", 5), ("scalar", 6), ("cursor", last())]
            w.write(frame("scalar", 7))
            w.flush()
            assert _messages(ws) == [("scalar", 7), ("cursor", last())]
        with c.websocket_connect("/api/runs/r/live") as ws:  # (without cursors: frames only, as before)
            ws.send_text(json.dumps({"since": 6}))
            assert decode(ws.receive_bytes()).step == 7
    w.close()

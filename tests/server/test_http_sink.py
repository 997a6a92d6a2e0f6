"""HttpSink against a real server: delivery, limits, restarts, heartbeats, dead and silent servers."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from samples import every_kind, same_frame
from websockets.sync.client import ClientConnection, connect

import convscope
from convscope.errors import ServerError
from convscope.frames import Frame, decode, decode_stream, encode
from convscope.server import start_local_server
from convscope.sinks import create_sink
from convscope.sinks.http import HttpSink
from convscope.store import RunStore


def _frames(url: str, run: str, **params) -> list[Frame]:
    return list(decode_stream(httpx.get(f"{url}api/runs/{run}/frames", params=params, timeout=10).content))


def test_frames_of_every_kind_arrive_intact(server) -> None:
    sink = create_sink("http", url=server.url, run="shipped", model="Net", config={"lr": 0.1})
    written = [f for step in range(1, 4) for f in every_kind(step, run="shipped")]
    for f in written:
        sink.write(f)
    # (not flush(): under load the sink's first short try to start the run may give up, and a
    # flush in the back-off after it sends nothing; close() sends what is left, for up to 10 s)
    sink.close()
    assert (sink.run_ids, sink.pending, sink.sent, sink.dropped) == (["shipped"], 0, len(written), 0)
    info = httpx.get(server.url + "api/runs/shipped", timeout=10).json()
    assert (info["status"], info["frames"], info["model"], info["meta"]["config"]) == ("finished", len(written), "Net", {"lr": 0.1})
    back = _frames(server.url, "shipped")
    order = sorted(written, key=lambda f: f.step)
    assert all(same_frame(a, b) for a, b in zip(order, back, strict=True))


@pytest.mark.parametrize("knows_limit", [True, False])
def test_batches_stay_under_the_servers_limit_and_giants_are_dropped(tmp_path: Path, knows_limit: bool) -> None:
    with start_local_server(tmp_path, max_upload_bytes=60_000) as handle:
        sink = HttpSink(handle.url, run="split", batch_bytes=1 << 20)
        if knows_limit:
            assert sink.max_upload_bytes == 60_000 and sink.batch_bytes == 60_000  # the server said so
        else:  # a server (or a proxy) that does not say: refusals teach the sink
            sink.max_upload_bytes, sink.batch_bytes = 1 << 62, 1 << 20
        for step in range(1, 21):
            sink.write(Frame(run="split", step=step, kind="weight_grid", layer="conv1",
                             payload={"weights": np.full((10, 10, 5, 5), step, np.float32), "vmax": 1.0}))  # ~10 KB each
        sink.write(Frame(run="split", step=21, kind="weight_grid", layer="conv1",
                         payload={"weights": np.zeros((100, 100, 3, 3), np.float32), "vmax": 1.0}))  # 360 KB: never fits
        sink.write(Frame(run="split", step=22, kind="scalar", payload={"name": "loss", "value": 1.0}))
        for _attempt in range(12):
            try:
                sink.flush(budget=10)
            except ServerError:
                time.sleep(max(0.0, sink._retry_at - time.monotonic()) + 0.01)  # the back-off
            if not sink.pending:
                break
        assert sink.pending == 0 and sink.dropped == 1 and sink.sent == 21
        sink.close()
        frames = _frames(handle.url, "split")
        assert [f.step for f in frames] == list(range(1, 21)) + [22]
        np.testing.assert_array_equal(frames[19].payload["weights"], np.full((10, 10, 5, 5), 20, np.float32))


def _scalar(run: str, step: int) -> Frame:
    return Frame(run=run, step=step, kind="scalar", payload={"name": "loss", "value": float(step)})


def test_a_run_whose_start_was_not_answered_in_time_is_started_once(server, monkeypatch) -> None:
    # before: under load the server took longer to start the run than the sink's first try
    # waits (1 s); the server started it all the same, and the sink's next try started another
    # ("slow-2"), leaving an empty run behind that went on to show as crashed
    store = server.app.state.store
    create = store.create_run

    def slow_create(*args, **kwargs):
        time.sleep(1.5)
        return create(*args, **kwargs)

    monkeypatch.setattr(store, "create_run", slow_create)
    sink = HttpSink(server.url, run="slow")
    assert sink.run_id is None  # (its first try gave up)
    sink.write(_scalar("slow", 1))
    sink.close()
    assert (sink.run_ids, sink.sent, sink.dropped) == (["slow"], 1, 0)
    runs = httpx.get(server.url + "api/runs", timeout=10).json()
    assert [(r["id"], r["status"], r["frames"]) for r in runs] == [("slow", "finished", 1)]


@contextlib.contextmanager
def _dashboard(url: str, run: str, *, since: int) -> Iterator[ClientConnection]:
    """A dashboard tab following ``run``: open, it asks for what came after the last step it has."""
    with connect(url.replace("http", "ws") + f"api/runs/{run}/live", open_timeout=10) as ws:
        ws.send(json.dumps({"since": since}))
        yield ws


def _steps_received(ws: ClientConnection, n: int) -> list[int]:
    out: list[int] = []
    while len(out) < n:
        msg = ws.recv(timeout=10)
        if isinstance(msg, bytes):
            out.append(decode(msg).step)
    return out


def test_a_server_restarted_on_its_log_directory_goes_on_with_the_run(tmp_path: Path) -> None:
    """The server restarts (same log directory) while a monitor streams: the sink goes on in the
    same run, and a dashboard tab on that run, reconnecting, catches up and follows it live, with
    every step once."""
    first = start_local_server(tmp_path, poll_seconds=0.05)
    port = first.port
    sink = HttpSink(first.url, run="survivor", timeout=1.0)
    sink.write(_scalar("survivor", 1))
    sink.flush()
    with _dashboard(first.url, "survivor", since=0) as tab:
        assert _steps_received(tab, 1) == [1]
        first.stop()
    assert RunStore(tmp_path).open_run("survivor").status() == "interrupted"  # its server stopped while it was open
    sink.write(_scalar("survivor", 2))
    with pytest.raises(ServerError, match="could not send"):
        sink.flush()
    assert sink.pending == 1  # kept for later
    second = start_local_server(tmp_path, port=port, poll_seconds=0.05)
    try:
        sink.write(_scalar("survivor", 3))
        time.sleep(0.6)  # the back-off after the failure
        sink.flush()  # 404 for its run: the sink asks to go on with it
        assert sink.run_ids == ["survivor"] and sink.pending == 0 and sink.dropped == 0
        assert httpx.get(second.url + "api/runs/survivor", timeout=10).json()["status"] == "live"
        with _dashboard(second.url, "survivor", since=1) as tab:  # the tab reconnects with the last step it has
            assert _steps_received(tab, 2) == [2, 3]
            sink.write(_scalar("survivor", 4))
            sink.flush()
            assert _steps_received(tab, 1) == [4]  # and follows the run live again
            sink.close()
            assert json.loads(tab.recv(timeout=10)) == {"type": "status", "status": "finished"}
        runs = {r["id"]: r for r in httpx.get(second.url + "api/runs", timeout=10).json()}
        assert list(runs) == ["survivor"] and (runs["survivor"]["status"], runs["survivor"]["frames"]) == ("finished", 4)
        assert [f.step for f in _frames(second.url, "survivor")] == [1, 2, 3, 4]  # none lost, none twice
    finally:
        second.stop()


def test_an_idle_sink_goes_on_with_its_run_after_a_restart_and_ends_it(tmp_path: Path) -> None:
    """The server restarts while the monitor is idle: its heartbeat (or its close) finds the
    run forgotten, and goes on with it instead of leaving it interrupted or starting an empty one."""
    first = start_local_server(tmp_path)
    sink = HttpSink(first.url, run="quiet", timeout=1.0, heartbeat=0.0)
    sink.write(_scalar("quiet", 1))
    sink.flush()
    first.stop()
    with start_local_server(tmp_path, port=first.port) as second:
        sink.flush()  # a heartbeat only: 404, then the run goes on
        assert sink.run_ids == ["quiet"] and httpx.get(second.url + "api/runs/quiet", timeout=10).json()["status"] == "live"
    assert RunStore(tmp_path).open_run("quiet").status() == "interrupted"
    with start_local_server(tmp_path, port=first.port) as third:
        sink.close()  # its close finds the run forgotten: it goes on with it to end it
        info = httpx.get(third.url + "api/runs/quiet", timeout=10).json()
        assert (sink.run_ids, info["status"], info["frames"]) == (["quiet"], "finished", 1)


def test_a_server_without_the_run_gets_a_new_one_and_no_one_elses_run_is_taken(tmp_path: Path) -> None:
    """Restarted on another log directory, the server has no such run: a new run, named alike.
    Where a run of that id is there but is not this sink's (another monitor's, a local
    training's, a finished one), it is left alone: a new run again."""
    first = start_local_server(tmp_path / "a")
    sink = HttpSink(first.url, run="moved", timeout=5.0)  # (a flush sends for at most that: a fresh server on a busy machine may take over 1 s)
    sink.write(_scalar("moved", 1))
    sink.flush()
    first.stop()
    key = sink._key
    with start_local_server(tmp_path / "b", port=first.port) as second:
        sink.write(_scalar("moved", 2))
        sink.flush()
        assert sink.run_ids == ["moved"]  # the name was free there: a new run of that id, in the new directory
        assert [f.step for f in _frames(second.url, "moved")] == [2]
    # a log directory where "moved" is someone else's run: a local training's, another monitor's, one that finished
    theirs = {"local": tmp_path / "c", "ingested": tmp_path / "d", "finished": tmp_path / "e"}
    RunStore(theirs["local"]).create_run("moved").close(status="failed")
    for case in ("ingested", "finished"):
        with start_local_server(theirs[case]) as other:
            other_sink = HttpSink(other.url, run="moved")
            other_sink.write(_scalar("moved", 7))
            other_sink.flush()
            if case == "finished":
                other_sink.close()
    for case, logdir in theirs.items():
        with start_local_server(logdir, port=first.port) as third:
            status = RunStore(logdir).open_run("moved").status()
            sink.write(_scalar("moved", 3))
            sink._retry_at = 0.0
            sink.flush()
            assert sink.run_id == "moved-2", case
            assert [f.step for f in _frames(third.url, "moved-2")] == [3], case
            assert RunStore(logdir).open_run("moved").status() == status, case  # left as it was
            assert sink.pending == 0 and sink.dropped == 0
            sink.close()
            assert RunStore(logdir).open_run("moved-2").status() == "finished"
            sink.run_id, sink._key, sink._forgotten = "moved", key, None  # (this sink's run again, for the next case)


@pytest.mark.slow
def test_heartbeats_keep_an_idle_run_live(tmp_path: Path, monkeypatch) -> None:
    import convscope.server._app as app_module

    monkeypatch.setattr(app_module, "INGEST_STALE_SECONDS", 1.5)
    with start_local_server(tmp_path) as handle:
        sink = HttpSink(handle.url, run="idle", heartbeat=0.3)
        status = lambda: httpx.get(handle.url + "api/runs/idle", timeout=10).json()["status"]  # noqa: E731
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:  # the monitor's pipeline flushes every few tens of ms
            sink.flush()
            time.sleep(0.05)
        assert status() == "live"
        time.sleep(2.0)  # the training process hangs: no more heartbeats
        assert status() == "crashed"
        sink.close()
        assert status() == "finished"


def test_a_dead_server_never_holds_training_up() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]  # nothing listens here once closed
    t = time.perf_counter()
    sink = HttpSink(f"http://127.0.0.1:{dead_port}", timeout=0.5, max_buffer_bytes=2_000)
    for step in range(30):
        sink.write(Frame(run="x", step=step, kind="scalar", payload={"name": "a", "value": 1.0}))
    assert sink.run_id is None and sink.dropped > 0 and sink.pending < 30  # bounded: the oldest went
    sink.flush()  # backing off after the failed start: returns at once
    time.sleep(0.6)
    with pytest.raises(ServerError, match="could not send"):
        sink.flush()
    sink.flush()
    assert time.perf_counter() - t < 2.5
    assert sink.pending > 0


def test_a_server_that_never_answers_costs_one_timeout_per_flush() -> None:
    with socket.socket() as hole:
        hole.bind(("127.0.0.1", 0))
        hole.listen(16)  # accepts connections into its backlog, never answers
        t = time.perf_counter()
        sink = HttpSink(f"http://127.0.0.1:{hole.getsockname()[1]}", timeout=0.4)
        assert time.perf_counter() - t < 1.0 and sink.run_id is None
        sink.write(Frame(run="x", step=1, kind="scalar", payload={"name": "a", "value": 1.0}))
        time.sleep(0.5)
        t = time.perf_counter()
        with pytest.raises(ServerError):
            sink.flush()
        assert time.perf_counter() - t < 1.0


def test_a_token_server_needs_the_token(tmp_path: Path) -> None:
    with start_local_server(tmp_path, token="k3y") as handle:
        sink = HttpSink(handle.url, run="guarded")
        sink.write(Frame(run="g", step=1, kind="scalar", payload={"name": "a", "value": 1.0}))
        time.sleep(0.6)
        with pytest.raises(ServerError, match="needs a token"):
            sink.flush()
        ok = HttpSink(handle.url, run="guarded", token="k3y")
        ok.write(Frame(run="g", step=1, kind="scalar", payload={"name": "a", "value": 1.0}))
        ok.close()
        assert RunStore(tmp_path).open_run("guarded").info()["frames"] == 1


def test_the_printed_address_with_its_token_is_a_url_the_sink_takes(tmp_path: Path) -> None:
    """``convscope serve --host 0.0.0.0`` prints ``http://host:port/?token=...``; pasted into
    ``watch(serve=...)`` (which has no token= of its own) it must ship the frames."""
    with start_local_server(tmp_path / "served", token="k3y") as handle:
        printed = handle.url_with_token()
        assert printed.endswith("/?token=k3y")
        sink = HttpSink(printed, run="pasted")
        assert (sink.run_id, sink.url, sink.token) == ("pasted", handle.url.rstrip("/"), "k3y")
        sink.write(Frame(run="pasted", step=1, kind="scalar", payload={"name": "a", "value": 1.0}))
        sink.close()
        net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3))
        with convscope.watch(net, logdir=None, serve=printed, every=1, run="watched", budget=None) as mon:
            net(torch.randn(2, 1, 8, 8))
            mon.step()
        # the dashboard's address keeps the token where the browser reads it, before the page's route
        assert mon.server_url == printed + "#/runs/watched"
        assert httpx.get(mon.server_url.split("#")[0].replace("/?", "/api/runs?"), timeout=10).status_code == 200
        store = RunStore(tmp_path / "served")
        assert store.open_run("pasted").info()["frames"] == 1
        assert store.open_run("watched").info()["status"] == "finished"
    dead = HttpSink(printed, run="late", timeout=0.2)  # the server is gone: the token stays out of messages
    dead.write(Frame(run="late", step=1, kind="scalar", payload={"name": "a", "value": 1.0}))
    dead._retry_at = 0.0
    with pytest.raises(ServerError) as exc:
        dead.flush()
    assert "k3y" not in str(exc.value)


def test_watch_streams_to_a_live_server(server) -> None:
    torch.manual_seed(0)
    net = convscope.load_model("lenet5-simplified", pretrained=False).module.train()
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    mon = convscope.watch(net, optimizer=opt, logdir=None, serve=server.url, every=2, run="remote", budget=None)
    # (the run's page where the server answered the sink's first short try; on a busy machine
    # the run starts at a later flush, and the URL is the server's)
    assert mon.server_url in (server.url.rstrip("/") + "/#/runs/remote", server.url)
    for _ in range(6):
        loss = net(torch.randn(8, 1, 28, 28)).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        mon.log(loss=loss)
    mon.close()
    runs = httpx.get(server.url + "api/runs", timeout=10).json()
    assert [(r["id"], r["status"], r["last_step"]) for r in runs] == [("remote", "finished", 6)]
    frames = _frames(server.url, "remote", kind="weight_grid", layer="conv1")
    assert [f.step for f in frames] == [2, 4, 6]
    np.testing.assert_allclose(frames[-1].payload["weights"], net.conv1.weight.detach().numpy(), rtol=1e-6)


def test_server_killed_mid_training_does_not_stop_training(tmp_path: Path) -> None:
    handle = start_local_server(tmp_path / "server-runs")
    torch.manual_seed(0)
    net = convscope.load_model("lenet5-simplified", pretrained=False).module.train()
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    with pytest.warns(RuntimeWarning, match="http"):
        mon = convscope.watch(net, optimizer=opt, logdir=tmp_path / "local", serve=handle.url, every=1, run="survivor", budget=None)
        for step in range(40):
            loss = net(torch.randn(8, 1, 28, 28)).square().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            mon.log(loss=loss)
            if step == 10:
                assert mon._pipeline.drain(timeout=10)
                deadline = time.monotonic() + 10  # let a flush (once a second while frames flow) reach the server
                while time.monotonic() < deadline and not _served_steps(tmp_path / "server-runs", "survivor"):
                    time.sleep(0.1)
                handle.stop()
        mon.close()
    assert mon.step_count == 40
    assert mon.stats.sink_failures.get("http", 0) > 0  # counted, and training went on
    local = RunStore(tmp_path / "local").open_run(mon.run_id)
    assert local.info()["status"] == "finished" and local.info()["last_step"] == 40
    served = RunStore(tmp_path / "server-runs").open_run("survivor")
    assert 1 <= served.info()["last_step"] < 40  # what reached the server before it died is intact
    assert served.info()["status"] == "interrupted"  # not failed: the training went on
    # the frames the dead server never got are counted, and the run store says how many
    http = next(s for s in mon._pipeline.sinks if s.name == "http")
    assert http.dropped > 0 and http.pending == 0
    reports = [f.payload["count"] for f in local.frames(kind="dropped") if f.payload["sink"] == "http"]
    assert reports and max(reports) == http.dropped, (reports, http.dropped)
    # every frame the store has, the http sink either sent or counted as dropped
    assert http.sent + http.dropped >= mon.stats.frames


def _served_steps(logdir: Path, run: str) -> int:
    try:
        return RunStore(logdir).open_run(run).info()["last_step"] or 0
    except Exception:  # noqa: BLE001  (not created yet)
        return 0


def test_encode_is_what_travels() -> None:
    """The sink sends exactly the frame encoding (what the server stores and serves)."""
    f = Frame(run="x", step=3, kind="scalar", payload={"name": "a", "value": 2.0})
    sink = HttpSink("http://127.0.0.1:9", timeout=0.1)
    sink.write(f)
    assert list(sink._buffer) == [(1, encode(f))]  # (numbered: the server stores a frame sent again once)


class _AnswerLosingProxy:
    """A proxy in front of a server (on ``127.0.0.1:port``, which may restart) that passes
    every request on and, for the next ``lose`` frame batches, loses the server's answer once
    the server has sent it: it closes the connection unanswered, or (``late=``) answers only
    after that many seconds. ``seqs`` lists the ``X-Convscope-Seq`` of every batch it saw
    (``None``: not numbered)."""

    def __init__(self, port: int, *, late: float | None = None) -> None:
        self.port, self.late = port, late
        self.lose = self.lost = 0
        self.seqs: list[str | None] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}/"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = self._listener.accept()
                threading.Thread(target=self._relay, args=(conn,), daemon=True).start()

    def _relay(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            conn.settimeout(10)
            request = b""
            while b"\r\n\r\n" not in request:
                request += conn.recv(65536)
            head = request.split(b"\r\n\r\n", 1)[0].decode("latin-1").lower().split("\r\n")
            fields = dict(line.split(": ", 1) for line in head[1:])
            while len(request) - len(request.split(b"\r\n\r\n", 1)[0]) - 4 < int(fields.get("content-length", 0)):
                request += conn.recv(65536)
            batch = "/frames " in head[0] and int(fields.get("content-length", 0)) > 0  # (not a heartbeat)
            if batch:
                self.seqs.append(fields.get("x-convscope-seq"))
            with socket.create_connection(("127.0.0.1", self.port), timeout=10) as upstream:
                upstream.sendall(request)  # (urllib asks for Connection: close: the answer ends with the connection)
                answer = b"".join(iter(lambda: upstream.recv(65536), b""))
            if batch and self.lose:
                self.lose -= 1
                self.lost += 1
                if self.late is None:
                    return  # stored by the server; the answer never comes
                time.sleep(self.late)
            conn.sendall(answer)

    def close(self) -> None:
        self._listener.close()


def _send_all(sink: HttpSink) -> None:
    """Flush until nothing is pending, waiting out the back-off before each try."""
    for _attempt in range(20):
        if not sink.pending:
            return
        time.sleep(max(0.0, sink._retry_at - time.monotonic()))
        with contextlib.suppress(ServerError):
            sink.flush(budget=10)
    raise AssertionError(f"{sink.pending} frames still pending")


def _stored_steps(url: str, run: str) -> list[int]:
    return [f.step for f in _frames(url, run)]


@pytest.mark.parametrize("answer", ["lost", "late"])
def test_a_batch_whose_answer_was_lost_is_stored_once(tmp_path: Path, answer: str) -> None:
    """The server stores a batch, but its answer is lost (the connection drops) or comes after
    the sink's timeout (a loaded server): the sink sends the batch again (here split in two,
    as it does after a dropped connection) with newer frames behind it, and every step is
    stored once."""
    with start_local_server(tmp_path) as handle:
        proxy = _AnswerLosingProxy(handle.port, late=None if answer == "lost" else 1.0)
        try:
            sink = HttpSink(proxy.url, run="once", timeout=0.5)
            for step in range(1, 301):
                sink.write(_scalar("once", step))
            proxy.lose = 1
            with pytest.raises(ServerError, match="could not send"):
                sink.flush()
            assert (proxy.lost, sink.pending, sink.sent) == (1, 300, 0)  # the sink could not know ...
            assert _stored_steps(handle.url, "once") == list(range(1, 301))  # ... that the server stored them
            for step in range(301, 321):
                sink.write(_scalar("once", step))
            _send_all(sink)
            assert (sink.sent, sink.dropped) == (320, 0)
            sink.close()
        finally:
            proxy.close()
        assert _stored_steps(handle.url, "once") == list(range(1, 321))  # every step once
        assert httpx.get(handle.url + "api/runs/once", timeout=10).json()["frames"] == 320
        assert proxy.seqs[0] == proxy.seqs[1] == "1"  # sent again, numbered as before


def test_a_batch_sent_again_with_newer_frames_stores_only_the_new_ones(tmp_path: Path) -> None:
    """A one-frame batch whose answer was lost goes again at the head of a bigger batch."""
    with start_local_server(tmp_path) as handle:
        proxy = _AnswerLosingProxy(handle.port)
        try:
            sink = HttpSink(proxy.url, run="grown", timeout=0.5)
            sink.write(_scalar("grown", 1))
            proxy.lose = 1
            with pytest.raises(ServerError):
                sink.flush()
            for step in range(2, 41):
                sink.write(_scalar("grown", step))
            _send_all(sink)
            sink.close()
        finally:
            proxy.close()
        assert _stored_steps(handle.url, "grown") == list(range(1, 41))
        assert proxy.seqs == ["1", "1"]  # one batch again: the lost frame and 39 new ones


def test_a_batch_stored_just_before_a_restart_is_not_sent_again(tmp_path: Path) -> None:
    """The server stores a batch and restarts before its answer arrives: going on with the run,
    the sink learns which frames the run has, and sends only the rest."""
    first = start_local_server(tmp_path)
    proxy = _AnswerLosingProxy(first.port)
    second = None
    try:
        sink = HttpSink(proxy.url, run="restarted", timeout=0.5)
        for step in range(1, 51):
            sink.write(_scalar("restarted", step))
        proxy.lose = 1
        with pytest.raises(ServerError):
            sink.flush()
        first.stop()
        second = start_local_server(tmp_path, port=first.port)
        time.sleep(max(0.0, sink._retry_at - time.monotonic()) + 0.01)
        sink.flush()  # its batch gets 404, the run goes on, and its answer says frames 1-50 are stored
        sink.write(_scalar("restarted", 51))
        sink.close()
        assert _stored_steps(second.url, "restarted") == list(range(1, 52))
        assert (sink.run_ids, sink.sent, sink.dropped) == (["restarted"], 51, 0)
        assert proxy.seqs == ["1", "1", "51"]  # lost, refused (404), then only the new frame
    finally:
        proxy.close()
        if second is not None:
            second.stop()

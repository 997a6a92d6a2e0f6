"""A server that stops while monitors stream runs into it leaves those runs ``interrupted``
(not failed: their training goes on); a restarted server lists them so, and a monitor that
reconnects makes its run live again and can finish it."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from convscope.errors import ServerError
from convscope.frames import Frame, decode_stream, encode
from convscope.server import start_local_server
from convscope.sinks.http import HttpSink
from convscope.store import RunStore

FRAMES = "application/x-convscope-frames"


def _scalar(run: str, step: int) -> Frame:
    return Frame(run=run, step=step, kind="scalar", payload={"name": "loss", "value": float(step)})


def test_a_stopped_servers_ingested_run_reads_interrupted_in_the_store_and_on_a_new_server(tmp_path: Path) -> None:
    first = start_local_server(tmp_path)
    with httpx.Client(base_url=first.url, timeout=10) as c:
        for name in ("streaming", "done", "broke"):
            assert c.post("/api/runs", json={"name": name}).status_code == 201
            r = c.post(f"/api/runs/{name}/frames", content=encode(_scalar(name, 1)), headers={"content-type": FRAMES})
            assert r.json() == {"accepted": 1}
        assert c.post("/api/runs/done/close", json={"status": "finished"}).status_code == 200
        assert c.post("/api/runs/broke/close", json={"status": "failed"}).status_code == 200
        # a monitor ends its run finished or failed; "interrupted" is the server's word, not a monitor's
        r = c.post("/api/runs/streaming/close", json={"status": "interrupted"})
        assert r.status_code == 422 and "'finished' or 'failed'" in r.json()["detail"]
        assert c.get("/api/runs/streaming").json()["status"] == "live"
    first.stop()

    store = RunStore(tmp_path)
    with store.open_run("streaming") as reader:
        assert reader.status() == "interrupted" and reader.info()["last_step"] == 1
    statuses = {"streaming": "interrupted", "done": "finished", "broke": "failed"}  # only the open one changed
    assert {r["id"]: r["status"] for r in store.list_runs()} == statuses
    with start_local_server(tmp_path) as second, httpx.Client(base_url=second.url, timeout=10) as c:
        assert {r["id"]: r["status"] for r in c.get("/api/runs").json()} == statuses
        detail = c.get("/api/runs/streaming").json()
        assert (detail["status"], detail["last_step"], detail["frames"]) == ("interrupted", 1, 1)


def test_a_monitor_reconnecting_makes_its_interrupted_run_live_and_finishes_it(tmp_path: Path) -> None:
    first = start_local_server(tmp_path)
    sink = HttpSink(first.url, run="survivor", timeout=1.0)
    sink.write(_scalar("survivor", 1))
    sink.flush()
    first.stop()
    assert RunStore(tmp_path).open_run("survivor").status() == "interrupted"
    sink.write(_scalar("survivor", 2))  # training goes on while the server is down
    with pytest.raises(ServerError, match="could not send"):
        sink.flush()
    with start_local_server(tmp_path, port=first.port) as second:
        url = second.url + "api/runs/survivor"
        assert httpx.get(url, timeout=10).json()["status"] == "interrupted"
        time.sleep(0.6)  # the sink's back-off after the failure
        sink.write(_scalar("survivor", 3))
        sink.flush()  # 404 for its run: the sink resumes it
        assert sink.run_ids == ["survivor"] and sink.pending == 0 and sink.dropped == 0
        assert httpx.get(url, timeout=10).json()["status"] == "live"
        sink.close()
        info = httpx.get(url, timeout=10).json()
        assert (info["status"], info["last_step"], info["frames"]) == ("finished", 3, 3)
        steps = [f.step for f in decode_stream(httpx.get(url + "/frames", timeout=10).content)]
        assert steps == [1, 2, 3]  # step 2 waited in the sink's buffer: nothing lost, nothing twice
    assert RunStore(tmp_path).open_run("survivor").status() == "finished"  # closed by its monitor: stays finished


def test_an_interrupted_run_is_resumed_with_its_key_and_refused_once_finished(tmp_path: Path) -> None:
    first = start_local_server(tmp_path, token="t0k")
    auth = {"Authorization": "Bearer t0k"}
    with httpx.Client(base_url=first.url, timeout=10, headers=auth) as c:
        key = c.post("/api/runs", json={"name": "cut"}).json()["key"]
        c.post("/api/runs/cut/frames", content=encode(_scalar("cut", 4)), headers={"content-type": FRAMES, "X-Convscope-Seq": "1"})
    first.stop()
    with start_local_server(tmp_path, token="t0k") as second, httpx.Client(base_url=second.url, timeout=10, headers=auth) as c:
        assert c.get("/api/runs/cut").json()["status"] == "interrupted"
        r = c.post("/api/runs/cut/resume", json={"key": key})
        assert r.status_code == 200 and (r.json()["last_step"], r.json()["last_seq"]) == (4, 1)
        assert c.get("/api/runs/cut").json()["status"] == "live"
        c.post("/api/runs/cut/frames", content=encode(_scalar("cut", 5)), headers={"content-type": FRAMES, "X-Convscope-Seq": "2"})
        assert c.post("/api/runs/cut/close", json={"status": "finished"}).json() == {"id": "cut", "status": "finished"}
        assert (c.get("/api/runs/cut").json()["status"], c.get("/api/runs/cut/steps").json()["steps"]) == ("finished", [4, 5])
        assert c.post("/api/runs/cut/resume", json={"key": key}).status_code == 409  # finished: not reopened


def test_a_resume_whose_read_fails_leaves_the_run_as_it_was_for_its_monitor_to_try_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from convscope.store import RunReader

    first = start_local_server(tmp_path)
    with httpx.Client(base_url=first.url, timeout=10) as c:
        key = c.post("/api/runs", json={"name": "cut"}).json()["key"]
        c.post("/api/runs/cut/frames", content=encode(_scalar("cut", 4)), headers={"content-type": FRAMES})
    first.stop()
    info = RunReader.info

    def unreadable(self: RunReader, *args: object, **kwargs: object) -> object:
        raise OSError("the disk went away")

    with start_local_server(tmp_path) as second, httpx.Client(base_url=second.url, timeout=10) as c:
        monkeypatch.setattr(RunReader, "info", unreadable)  # (the read right after the resume)
        assert c.post("/api/runs/cut/resume", json={"key": key}).status_code == 500
        monkeypatch.setattr(RunReader, "info", info)
    with start_local_server(tmp_path) as third, httpx.Client(base_url=third.url, timeout=10) as c:
        assert c.get("/api/runs/cut").json()["status"] == "interrupted"  # not "failed": training goes on
        r = c.post("/api/runs/cut/resume", json={"key": key})
        assert r.status_code == 200 and r.json()["last_step"] == 4
        assert c.get("/api/runs/cut").json()["status"] == "live"

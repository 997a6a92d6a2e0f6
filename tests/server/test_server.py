"""The server's REST API over real HTTP (uvicorn) and Starlette's TestClient: runs, frames, ingest, auth."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from samples import every_kind, frame, same_frame

import convscope
from convscope.frames import KINDS, Frame, decode_stream, encode
from convscope.server import create_app, serve, start_local_server
from convscope.store import RunStore

FRAMES = "application/x-convscope-frames"


def _write_run(logdir: Path, name: str = "r", steps: int = 30):
    w = RunStore(logdir).create_run(name, model="LeNet", config={"lr": 0.1})
    for step in range(1, steps + 1):
        w.write(Frame(run=w.run_id, step=step, kind="scalar", payload={"name": "loss", "value": 1.0 / step}))
        if step % 5 == 0:
            w.write(Frame(run=w.run_id, step=step, kind="correlation", layer="conv1",
                          payload={"matrix": np.full((2, 2), step, np.float32), "dead": np.zeros(2, bool)}))
    w.flush()
    return w


def test_rest_lists_runs_and_serves_binary_frames(server) -> None:
    w = _write_run(Path(server.logdir))
    with httpx.Client(base_url=server.url, timeout=10) as c:
        assert c.get("/api/health").json() == {"status": "ok", "version": convscope.__version__}
        runs = c.get("/api/runs").json()
        assert [(r["id"], r["status"], r["first_step"], r["last_step"], r["frames"], r["model"]) for r in runs] == [
            (w.run_id, "live", 1, 30, 36, "LeNet")]
        detail = c.get(f"/api/runs/{w.run_id}").json()
        assert detail["kinds"] == {"correlation": 6, "scalar": 30} and detail["layers"] == ["conv1"]
        assert detail["meta"]["config"] == {"lr": 0.1} and detail["thinned"] == {}
        assert detail["counts"] == {"correlation:conv1": 6, "scalar:": 30}
        r = c.get(f"/api/runs/{w.run_id}/frames", params={"kind": "correlation", "start": 10, "end": 20})
        assert r.headers["content-type"] == FRAMES and r.headers["x-frame-count"] == "3"
        frames = list(decode_stream(r.content))
        assert [f.step for f in frames] == [10, 15, 20]
        np.testing.assert_array_equal(frames[-1].payload["matrix"], np.full((2, 2), 20, np.float32))
        thin = list(decode_stream(c.get(f"/api/runs/{w.run_id}/frames", params={"kind": "scalar", "max_points": 4}).content))
        assert [f.step for f in thin] == [1, 10, 20, 30]  # marks at 1, 10.67, 20.33 and the last step
        latest = list(decode_stream(c.get(f"/api/runs/{w.run_id}/frames", params={"latest": "1", "end": 12}).content))
        assert {(f.kind, f.step) for f in latest} == {("scalar", 12), ("correlation", 10)}
        both = c.get(f"/api/runs/{w.run_id}/frames", params=[("kind", "scalar"), ("kind", "correlation"), ("end", 5)])
        assert [(f.kind, f.step) for f in decode_stream(both.content)] == [("scalar", s) for s in range(1, 6)] + [("correlation", 5)]
        assert c.get(f"/api/runs/{w.run_id}/steps", params={"kind": "correlation"}).json() == {"steps": [5, 10, 15, 20, 25, 30]}
        assert c.get(f"/api/runs/{w.run_id}/frames", params={"limit": 2}).headers["x-frame-count"] == "2"
        assert "convscope" in c.get("/").text
    w.close()


def test_frames_of_every_kind_come_back_bit_exact(tmp_path: Path) -> None:
    written = [f for step in range(1, 4) for f in every_kind(step, run="all")]
    with RunStore(tmp_path).create_run("all") as w:
        w.write_many(written)
    with TestClient(create_app(tmp_path)) as c:
        body = c.get("/api/runs/all/frames").content
        assert body == b"".join(encode(f) for f in sorted(written, key=lambda f: f.step))  # bytes as stored, not re-encoded
        back = list(decode_stream(body))
        assert all(same_frame(a, b) for a, b in zip(sorted(written, key=lambda f: f.step), back, strict=True))
        assert c.get("/api/runs/all").json()["kinds"] == dict.fromkeys(sorted(KINDS), 3)


@pytest.mark.parametrize("bad", ["nope", "..", "..%2F..%2Fetc%2Fpasswd", "%2Fetc%2Fpasswd", "a%00b", ".hidden", "x" * 200,
                                 "..%5C..%5Cwindows", "r%2F..%2Fr"])
def test_unknown_or_hostile_run_ids_are_404(server, bad: str) -> None:
    _write_run(Path(server.logdir), "r", steps=1).close()
    for suffix in ("", "/frames", "/steps"):
        r = httpx.get(f"{server.url}api/runs/{bad}{suffix}", timeout=10)
        assert r.status_code in (400, 404) and r.json()["detail"], (bad, suffix)
    assert sorted(p.name for p in Path(server.logdir).iterdir() if p.name.endswith(".db")) == ["r.convscope.db"]


@pytest.mark.parametrize("path,params,needle", [
    ("api/runs/nope", {}, "no run"),
    ("api/runs/nope/frames", {}, "no run"),
    ("api/runs/r/frames", {"start": "-5"}, "greater than or equal"),
    ("api/runs/r/frames", {"start": str(2**63)}, "less than or equal"),  # past SQLite's 64-bit integers
    ("api/runs/r/frames", {"end": "9" * 30}, "less than or equal"),
    ("api/runs/r/frames", {"end": "x"}, "integer"),
    ("api/runs/r/frames", {"max_points": "0"}, "greater than or equal"),
    ("api/runs/r/frames", {"limit": "10000000000"}, "less than or equal"),
    ("api/runs/r/frames", {"latest": "maybe"}, "boolean"),
    ("api/runs/r/frames", {"kind": "weights"}, "unknown frame kinds ['weights']; the kinds are scalar"),
    ("api/runs/r/steps", {"kind": "weigth_grid"}, "unknown frame kinds ['weigth_grid']"),
])
def test_bad_requests_get_4xx_with_a_message(tmp_path: Path, path: str, params: dict, needle: str) -> None:
    _write_run(tmp_path, "r", steps=3).close()
    with TestClient(create_app(tmp_path)) as c:
        r = c.get(path, params=params)
        assert 400 <= r.status_code < 500 and needle in str(r.json()["detail"])
        assert c.get("api/health").status_code == 200


def test_the_runs_listing_says_what_each_run_lost_by_cause(tmp_path: Path) -> None:
    # The Runs page marks runs with gaps from the listing alone: each run's drop totals by cause
    # (running totals, so the largest of each), "budget" among them, and {} for a clean run.
    _write_run(tmp_path, "clean", steps=3).close()
    with _write_run(tmp_path, "lossy", steps=3) as w:
        for step, count, sink in [(1, 500, "queue"), (2, 1500, "queue"), (2, 20, "http"), (3, 86, "budget")]:
            w.write(Frame(run=w.run_id, step=step, kind="dropped", payload={"count": count, "sink": sink}))
    with TestClient(create_app(tmp_path)) as c:
        listed = {r["id"]: r["dropped"] for r in c.get("/api/runs").json()}
        assert listed == {"clean": {}, "lossy": {"budget": 86, "http": 20, "queue": 1500}}
        assert c.get("/api/runs/lossy").json()["dropped"] == listed["lossy"]  # the run view says the same


def test_the_runs_listing_and_each_run_carry_its_summary(tmp_path: Path) -> None:
    # The Runs page's columns come from the listing alone: each scalar's last value (one that is
    # not finite as a string: JSON has no NaN), each layer's gradient health, each pruned layer's filters.
    with _write_run(tmp_path, "pruned", steps=3) as w:
        w.write(Frame(run=w.run_id, step=4, kind="scalar", payload={"name": "loss", "value": float("nan")}))
        for step, status in [(1, "healthy"), (2, "stalled"), (3, "stalled")]:
            w.write(Frame(run=w.run_id, step=step, kind="gradient_health", layer="conv1", payload={
                "status": status, "grad_norm": 1e-9, "update_ratio": 0.0, "zero_fraction": 0.0, "dead_fraction": 0.0, "nonfinite": 0}))
        w.write(Frame(run=w.run_id, step=2, kind="pruning", layer="conv1", payload={
            "removed": [0, 1], "kept": [2, 3], "before": 4, "after": 2, "reason": "", "params_before": 40, "params_after": 20}))
    _write_run(tmp_path, "plain", steps=3).close()
    summary = {
        "scalars": {"loss": {"value": "nan", "step": 4}},
        "health": {"conv1": {"status": "stalled", "step": 3, "flagged": 2, "checks": 3}},
        "filters": {"conv1": {"before": 4, "after": 2, "prunings": 1, "first_step": 2, "step": 2}},
    }
    with TestClient(create_app(tmp_path)) as c:
        listed = {r["id"]: r["summary"] for r in c.get("/api/runs").json()}
        assert listed == {"pruned": summary, "plain": {"scalars": {"loss": {"value": 1 / 3, "step": 3}}, "health": {}, "filters": {}}}
        assert c.get("/api/runs/pruned").json()["summary"] == summary
        schemas = c.get("/openapi.json").json()["components"]["schemas"]
        assert schemas["RunInfo"]["properties"]["summary"]["$ref"] == "#/components/schemas/RunSummary"
        assert "not healthy" in schemas["LayerHealth"]["properties"]["flagged"]["description"]
        assert "before its first pruning" in schemas["LayerFilters"]["properties"]["before"]["description"]


def test_an_ingested_run_keeps_its_summary_and_goes_on_with_it_when_resumed(tmp_path: Path) -> None:
    def health(run: str, step: int, status: str) -> bytes:
        return encode(Frame(run=run, step=step, kind="gradient_health", layer="conv1", payload={
            "status": status, "grad_norm": 1e3, "update_ratio": 0.0, "zero_fraction": 0.0, "dead_fraction": 0.0, "nonfinite": 0}))

    def loss(run: str, step: int, value: float) -> bytes:
        return encode(Frame(run=run, step=step, kind="scalars", payload={
            "name": "loss", "steps": np.array([step]), "values": np.array([value]), "wall_times": np.array([1.7e9])}))

    with TestClient(create_app(tmp_path)) as c:
        made = c.post("/api/runs", json={"name": "remote"}).json()
        run = made["id"]
        body = loss(run, 1, 2.0) + health(run, 1, "exploding") + health(run, 2, "healthy") + loss(run, 2, 1.0)
        assert c.post(f"/api/runs/{run}/frames", content=body, headers={"content-type": FRAMES}).json() == {"accepted": 4}
        first = c.get(f"/api/runs/{run}").json()["summary"]
        assert first == {"scalars": {"loss": {"value": 1.0, "step": 2}},
                         "health": {"conv1": {"status": "healthy", "step": 2, "flagged": 1, "checks": 2}}, "filters": {}}
    # the server stopped (the run is interrupted); a new one on the log directory goes on with it
    with TestClient(create_app(tmp_path)) as c:
        assert c.post(f"/api/runs/{run}/resume", json={"key": made["key"]}).json()["last_step"] == 2
        body = health(run, 3, "exploding") + loss(run, 3, float("inf"))
        assert c.post(f"/api/runs/{run}/frames", content=body, headers={"content-type": FRAMES}).json() == {"accepted": 2}
        assert c.post(f"/api/runs/{run}/close", json={"status": "failed"}).status_code == 200
        assert c.get("/api/runs").json()[0]["summary"] == {
            "scalars": {"loss": {"value": "inf", "step": 3}},
            "health": {"conv1": {"status": "exploding", "step": 3, "flagged": 2, "checks": 3}}, "filters": {}}


def test_a_corrupt_run_file_is_a_422_not_a_crash(tmp_path: Path) -> None:
    (tmp_path / "junk.convscope.db").write_bytes(b"garbage" * 500)
    _write_run(tmp_path, "good", steps=2).close()
    with TestClient(create_app(tmp_path)) as c:
        assert [r["id"] for r in c.get("/api/runs").json()] == ["good"]
        r = c.get("/api/runs/junk")
        assert r.status_code == 422 and "not a readable convscope run" in r.json()["detail"]


def test_ingest_round_trip_limits_and_malformed_bodies(tmp_path: Path) -> None:
    with TestClient(create_app(tmp_path, max_upload_bytes=10_000)) as c:
        r = c.post("/api/runs", json={"name": "ing", "model": "Net", "config": {"lr": 0.5}})
        assert r.status_code == 201
        run = r.json()["id"]
        frames = [frame("scalar", s, run="client-side-name") for s in range(1, 4)]
        body = b"".join(encode(f) for f in frames)
        assert c.post(f"/api/runs/{run}/frames", content=body, headers={"content-type": FRAMES}).json() == {"accepted": 3}
        assert c.post(f"/api/runs/{run}/frames", content=b"", headers={"content-type": FRAMES}).json() == {"accepted": 0}
        big = encode(Frame(run=run, step=9, kind="scalar", payload={"name": "a", "value": 1.0, "x": np.zeros(20_000, np.uint8)}))
        r = c.post(f"/api/runs/{run}/frames", content=big, headers={"content-type": FRAMES})
        assert r.status_code == 413 and "limit of 10,000 bytes" in r.json()["detail"]
        r = c.post("/api/runs", json={"name": "x" * 20, "config": {"blob": "y" * 20_000}})
        assert r.status_code == 413  # every body is bounded, JSON too
        r = c.post(f"/api/runs/{run}/frames", content=body + b"CSFR" + b"\0" * 40, headers={"content-type": FRAMES})
        assert r.status_code == 422 and "malformed" in r.json()["detail"] and "nothing of this body was stored" in r.json()["detail"]
        r = c.post(f"/api/runs/{run}/frames", content=body, headers={"content-type": "text/plain"})
        assert r.status_code == 415 and FRAMES in r.json()["detail"]
        assert c.post(f"/api/runs/{run}/frames", content=encode(frames[0])).json() == {"accepted": 1}  # no type: fine
        # a web page on another site cannot write here, even to a token-less loopback server
        for path, kwargs in ((f"/api/runs/{run}/frames", {"content": body}), ("/api/runs", {"json": {}}),
                             (f"/api/runs/{run}/close", {"json": {"status": "failed"}})):
            r = c.post(path, headers={"Origin": "http://evil.example"}, **kwargs)
            assert r.status_code == 403 and "allow_origins" in r.json()["detail"], path
        assert c.post("/api/runs", json={"name": "own-page"}, headers={"Origin": "http://testserver"}).status_code == 201
        assert c.post("/api/runs/unknown/frames", content=body, headers={"content-type": FRAMES}).status_code == 404
        assert c.post(f"/api/runs/{run}/close", json={"status": "weird"}).status_code == 422
        assert c.post(f"/api/runs/{run}/close", json={"status": "finished"}).json() == {"id": run, "status": "finished"}
        assert c.post(f"/api/runs/{run}/frames", content=body, headers={"content-type": FRAMES}).status_code == 404  # closed
        info = c.get(f"/api/runs/{run}").json()
        assert (info["status"], info["frames"], info["model"], info["meta"]["config"]) == ("finished", 4, "Net", {"lr": 0.5})
        stored = list(decode_stream(c.get(f"/api/runs/{run}/frames").content))
        assert all(same_frame(a, b) for a, b in zip([frames[0], *frames], stored, strict=True))  # by step


def test_ingested_frames_the_store_cannot_hold_are_refused_and_the_run_goes_on(tmp_path: Path) -> None:
    """A client that is not a monitor sends a frame with a step past 64 bits (or no real time):
    a 422 before anything is stored, and the next batch of the run is stored as usual."""

    def crafted(step: object = 1, wall_time: object = 1.0) -> bytes:
        raw = encode(frame("scalar", 1))
        hlen = int.from_bytes(raw[8:12], "little")
        header = json.loads(raw[24 : 24 + hlen])
        header.update(step=step, wall_time=wall_time)
        head = json.dumps(header).encode()
        head += b" " * (-len(head) % 8)
        return raw[:8] + len(head).to_bytes(4, "little") + raw[12:24] + head + raw[24 + hlen :]

    with TestClient(create_app(tmp_path)) as c:
        run = c.post("/api/runs", json={"name": "victim"}).json()["id"]
        for bad in (crafted(step=2**64), crafted(step=2**63), crafted(wall_time=float("nan")), crafted(wall_time=float("inf"))):
            r = c.post(f"/api/runs/{run}/frames", content=encode(frame("scalar", 2)) + bad, headers={"content-type": FRAMES})
            assert r.status_code == 422 and "nothing of this body was stored" in r.json()["detail"], r.text
        assert c.post(f"/api/runs/{run}/frames", content=crafted(step=2**63 - 1), headers={"content-type": FRAMES}).json() == {"accepted": 1}
        assert c.post(f"/api/runs/{run}/frames", content=crafted(step=3), headers={"content-type": FRAMES}).json() == {"accepted": 1}
        assert [f.step for f in decode_stream(c.get(f"/api/runs/{run}/frames").content)] == [3, 2**63 - 1]


def test_numbered_frames_sent_again_are_answered_but_stored_once(tmp_path: Path) -> None:
    """``X-Convscope-Seq`` numbers a body's frames; the run keeps the last number it stored
    (committed with the frames, so it outlives the server), and frames numbered up to it are
    answered as accepted without being stored again. Bodies without a number are stored as
    they come, as before."""

    def post(c: TestClient, run: str, steps: range, seq: object = None) -> httpx.Response:
        body = b"".join(encode(frame("scalar", s, run=run)) for s in steps)
        headers = {"content-type": FRAMES} if seq is None else {"content-type": FRAMES, "X-Convscope-Seq": seq if isinstance(seq, bytes) else str(seq)}
        return c.post(f"/api/runs/{run}/frames", content=body, headers=headers)

    with TestClient(create_app(tmp_path)) as c:
        made = c.post("/api/runs", json={"name": "numbered"}).json()
        run = made["id"]
        assert post(c, run, range(1, 4), seq=1).json() == {"accepted": 3, "duplicates": 0}
        assert post(c, run, range(1, 4), seq=1).json() == {"accepted": 3, "duplicates": 3}  # its answer was lost
        assert post(c, run, range(1, 2), seq=1).json() == {"accepted": 1, "duplicates": 1}  # a part of it (a split)
        assert post(c, run, range(2, 6), seq=2).json() == {"accepted": 4, "duplicates": 2}  # with newer frames behind
        assert post(c, run, range(9, 10), seq=9).json() == {"accepted": 1, "duplicates": 0}  # frames 6-8 were dropped
        assert post(c, run, range(0), seq=10).json() == {"accepted": 0, "duplicates": 0}  # a heartbeat: takes no number
        assert post(c, run, range(10, 11), seq=10).json() == {"accepted": 1, "duplicates": 0}
        assert post(c, run, range(1, 3)).json() == {"accepted": 2}  # not numbered (an older sink): stored again
        for bad in ("0", "-1", "abc", "1.5", " ", str(2**63), "1" * 40, b"\xb2"):  # (the last: '²', a digit to str.isdigit)
            r = post(c, run, range(11, 12), seq=bad)
            assert r.status_code == 422 and "X-Convscope-Seq" in r.json()["detail"], bad
        r = post(c, run, range(11, 13), seq=2**63 - 1)  # numbers past 64 bits
        assert r.status_code == 422 and "nothing of this body was stored" in r.json()["detail"]
        assert [f.step for f in decode_stream(c.get(f"/api/runs/{run}/frames").content)] == [1, 1, 2, 2, 3, 4, 5, 9, 10]
        assert RunStore(tmp_path).open_run(run).state("ingest-last-seq") == b"10"
    # a new server on the log directory: the run goes on, and still knows what it stored
    with TestClient(create_app(tmp_path)) as c:
        r = c.post(f"/api/runs/{run}/resume", json={"key": made["key"]})
        assert r.json()["last_seq"] == 10
        assert post(c, run, range(9, 12), seq=9).json() == {"accepted": 3, "duplicates": 2}
        assert c.post(f"/api/runs/{run}/resume", json={"key": made["key"]}).json()["last_seq"] == 11  # open here: the same
        assert [f.step for f in decode_stream(c.get(f"/api/runs/{run}/frames").content)] == [1, 1, 2, 2, 3, 4, 5, 9, 10, 11]


def test_a_numbered_body_sent_again_while_it_is_being_stored_is_stored_once(server) -> None:
    """A sink that timed out sends again while the server still stores the first send: the two
    are stored one after the other, and the second finds its frames stored."""
    with httpx.Client(base_url=server.url, timeout=30) as c:
        run = c.post("/api/runs", json={"name": "racing"}).json()["id"]
        body = b"".join(encode(frame("weight_grid", s, run=run)) for s in range(1, 201))
        headers = {"content-type": FRAMES, "X-Convscope-Seq": "1"}
        answers: list[dict] = []
        barrier = threading.Barrier(6)

        def send() -> None:
            barrier.wait()
            answers.append(httpx.post(f"{server.url}api/runs/{run}/frames", content=body, headers=headers, timeout=30).json())

        threads = [threading.Thread(target=send) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(a["duplicates"] for a in answers) == [0, 200, 200, 200, 200, 200] and all(a["accepted"] == 200 for a in answers)
        assert [f.step for f in decode_stream(c.get(f"/api/runs/{run}/frames").content)] == list(range(1, 201))


def test_an_ingested_run_whose_monitor_goes_silent_is_crashed(tmp_path: Path, monkeypatch) -> None:
    import convscope.server._app as app_module

    monkeypatch.setattr(app_module, "INGEST_STALE_SECONDS", 0.5)
    with TestClient(create_app(tmp_path)) as c:
        run = c.post("/api/runs", json={"name": "quiet"}).json()["id"]
        assert c.get(f"/api/runs/{run}").json()["status"] == "live"
        time.sleep(0.7)
        assert c.get(f"/api/runs/{run}").json()["status"] == "crashed"
        time.sleep(0.5)  # heartbeats are committed at most once a second
        c.post(f"/api/runs/{run}/frames", content=b"", headers={"content-type": FRAMES})  # a heartbeat
        assert c.get(f"/api/runs/{run}").json()["status"] == "live"
    assert RunStore(tmp_path).open_run(run).status() == "interrupted"  # the server stopped while it was open


def test_only_the_monitor_that_started_a_run_goes_on_with_it_and_never_after_it_finished(tmp_path: Path) -> None:
    """``POST /api/runs/{run}/resume``: the key that ``POST /api/runs`` gave, and only for a run
    that has not finished and that no other writer still writes."""
    _write_run(tmp_path, "local", steps=2).close(status="failed")  # a local training's run: no key
    first = start_local_server(tmp_path, token="t0k")
    with httpx.Client(base_url=first.url, timeout=10, headers={"Authorization": "Bearer t0k"}) as c:
        made = {name: c.post("/api/runs", json={"name": name}).json() for name in ("open", "done")}
        assert made["open"]["key"] != made["done"]["key"] and len(made["open"]["key"]) >= 32
        key = {name: m["key"] for name, m in made.items()}
        for name in made:
            c.post(f"/api/runs/{name}/frames", content=encode(frame("scalar", 1, run=name)), headers={"content-type": FRAMES})
        assert c.post("/api/runs/done/close", json={"status": "finished"}).status_code == 200
        # open here: the same run again (an answer lost on its way, asked again)
        r = c.post("/api/runs/open/resume", json={"key": key["open"]})
        assert r.status_code == 200 and r.json() == {"id": "open", "max_upload_bytes": 64 << 20, "last_step": 1, "last_seq": 0}
        # written by another server on this log directory: refused while its writer runs
        with start_local_server(tmp_path, token="t0k") as other:
            r = httpx.post(other.url + "api/runs/open/resume", json={"key": key["open"]}, headers={"Authorization": "Bearer t0k"}, timeout=10)
            assert r.status_code == 409 and "is live" in r.json()["detail"]
    first.stop()
    second = start_local_server(tmp_path, token="t0k", port=first.port)
    try:
        with httpx.Client(base_url=second.url, timeout=10, headers={"Authorization": "Bearer t0k"}) as c:
            assert c.post("/api/runs/open/frames", content=b"").status_code == 404  # forgotten by the restart
            assert httpx.post(second.url + "api/runs/open/resume", json={"key": key["open"]}, timeout=10).status_code == 401
            for run, body, code, needle in [
                ("open", {"key": key["done"]}, 403, "not started by the monitor holding this key"),
                ("open", {"key": ""}, 403, "not started by the monitor"),
                ("open", {}, 422, "key"),
                ("local", {"key": key["open"]}, 403, "not started by the monitor"),  # no key at all: never ingested
                ("done", {"key": key["done"]}, 409, "has finished"),
                ("nope", {"key": key["open"]}, 404, "no run 'nope'"),
                (".hidden", {"key": key["open"]}, 404, "run ids are letters"),
            ]:
                r = c.post(f"/api/runs/{run}/resume", json=body)
                assert r.status_code == code and needle in str(r.json()["detail"]), (run, body, r.text)
            assert {r["id"]: r["status"] for r in c.get("/api/runs").json()} == {"open": "interrupted", "done": "finished", "local": "failed"}
            r = c.post("/api/runs/open/resume", json={"key": key["open"]})
            assert r.status_code == 200 and r.json()["last_step"] == 1
            assert c.post("/api/runs/open/frames", content=encode(frame("scalar", 2, run="open")), headers={"content-type": FRAMES}).json() == {"accepted": 1}
            assert c.post("/api/runs/open/close", json={"status": "finished"}).status_code == 200
            assert (c.get("/api/runs/open").json()["status"], c.get("/api/runs/open/steps").json()["steps"]) == ("finished", [1, 2])
            assert c.post("/api/runs/open/resume", json={"key": key["open"]}).status_code == 409  # finished now
    finally:
        second.stop()


def test_a_token_guards_every_endpoint(tmp_path: Path) -> None:
    _write_run(tmp_path, "r", steps=2).close()
    with TestClient(create_app(tmp_path, token="s3cret")) as c:
        for method, path in [("GET", "/api/runs"), ("GET", "/api/runs/r"), ("GET", "/api/runs/r/frames"),
                             ("GET", "/api/runs/r/steps"), ("POST", "/api/runs"), ("POST", "/api/runs/r/frames"),
                             ("POST", "/api/runs/r/close"), ("POST", "/api/runs/r/resume")]:
            r = c.request(method, path, json={} if method == "POST" else None)
            assert r.status_code == 401 and "token" in r.json()["detail"], path
            assert r.headers["www-authenticate"] == "Bearer"
        assert c.get("/api/runs", params={"token": "wrong"}).status_code == 401
        assert c.get("/api/runs", headers={"Authorization": "Bearer s3cre"}).status_code == 401
        assert [r["id"] for r in c.get("/api/runs", params={"token": "s3cret"}).json()] == ["r"]
        assert c.get("/api/runs", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert c.get("/api/health").status_code == 200  # health and the page itself stay open
        assert c.get("/").status_code == 200


@pytest.mark.parametrize("token", [None, "s3cret"])
def test_head_answers_as_get_without_the_body(tmp_path: Path, token: str | None) -> None:
    """HEAD of an API route (a link checker, a proxy's health check, ``curl -I``) gets GET's
    status and headers and no body; the static UI mounted at ``/`` no longer takes it for a
    missing file. What guards the GET guards the HEAD: the token, the run's existence."""
    _write_run(tmp_path, "r", steps=3).close()
    with start_local_server(tmp_path, token=token) as handle, httpx.Client(base_url=handle.url, timeout=10) as c:
        auth = {"Authorization": f"Bearer {token}"} if token else {}
        for path in ("/api/runs", "/api/runs/r", "/api/runs/r/frames", "/api/runs/r/steps", "/api/health", "/openapi.json", "/"):
            get, head = c.get(path, headers=auth), c.head(path, headers=auth)
            assert (head.status_code, head.content) == (200, b""), path
            for name in ("content-type", "content-length", "x-frame-count"):
                assert head.headers.get(name) == get.headers.get(name), (path, name)
        for path in ("/api/runs/nope", "/api/runs/nope/frames", "/api/nothing", "/no-such-page.html"):
            assert c.head(path, headers=auth).status_code == 404, path
        if token:
            assert c.head("/api/runs").status_code == 401
            assert c.head("/api/runs/r", params={"token": "wrong"}).status_code == 401
            assert c.head("/api/runs/r", params={"token": token}).status_code == 200


def test_loopback_without_token_refuses_foreign_host_names(server) -> None:
    """DNS rebinding: a web page on evil.example resolving to 127.0.0.1 must not read the runs."""
    assert httpx.get(server.url + "api/runs", timeout=10).status_code == 200
    r = httpx.get(server.url + "api/runs", headers={"Host": "evil.example"}, timeout=10)
    assert r.status_code == 400 and "Host" in r.json()["detail"]
    assert httpx.get(f"http://localhost:{server.port}/api/runs", timeout=10).status_code == 200


def test_non_loopback_bind_always_gets_a_token_and_prints_it(tmp_path: Path, capsys) -> None:
    handle = serve(tmp_path, host="0.0.0.0", port=0, block=False)
    try:
        out = capsys.readouterr().out
        assert handle.token and len(handle.token) >= 24
        assert f"token={handle.token}" in out and "reachable from other machines" in out
        url = f"http://127.0.0.1:{handle.port}/api/runs"
        assert httpx.get(url, timeout=10).status_code == 401
        assert httpx.get(url, params={"token": handle.token}, timeout=10).json() == []
        # every address of the machine: the address to open is one a browser can (not 0.0.0.0), and
        # others are told the machine's name
        opened = next(line for line in out.splitlines() if line.startswith("convscope: open ")).split()[-1]
        assert opened == f"http://127.0.0.1:{handle.port}/?token={handle.token}" and "0.0.0.0" not in out
        assert f"from other machines: http://{socket.gethostname()}:{handle.port}/?token={handle.token}" in out
        assert httpx.get(opened, timeout=10).status_code == 200
    finally:
        handle.stop()


def test_cors_is_off_by_default_and_never_a_wildcard(tmp_path: Path) -> None:
    with TestClient(create_app(tmp_path)) as c:
        r = c.get("/api/runs", headers={"Origin": "http://evil.example"})
        assert "access-control-allow-origin" not in r.headers
    with TestClient(create_app(tmp_path, allow_origins=("http://lab.example",))) as c:
        r = c.get("/api/runs", headers={"Origin": "http://lab.example"})
        assert r.headers["access-control-allow-origin"] == "http://lab.example"
        assert "access-control-allow-origin" not in c.get("/api/runs", headers={"Origin": "http://evil.example"}).headers
    with pytest.raises(convscope.errors.ServerError, match="refused"):
        create_app(tmp_path, allow_origins=("*",))


def test_openapi_documents_every_route(tmp_path: Path) -> None:
    with TestClient(create_app(tmp_path)) as c:
        spec = c.get("/openapi.json").json()
    ops = [(path, method, op) for path, item in spec["paths"].items() for method, op in item.items()]
    assert {p for p, _m, _o in ops} >= {"/api/health", "/api/runs", "/api/runs/{run}", "/api/runs/{run}/steps",
                                         "/api/runs/{run}/frames", "/api/runs/{run}/close"}
    for path, method, op in ops:
        assert op.get("tags") and op.get("summary"), (path, method)
    assert {"RunInfo", "RunDetails", "Steps", "CreatedRun", "Accepted", "Detail"} <= set(spec["components"]["schemas"])
    frames_get = spec["paths"]["/api/runs/{run}/frames"]["get"]
    assert FRAMES in frames_get["responses"]["200"]["content"]
    assert {p["name"] for p in frames_get["parameters"]} == {"run", "kind", "layer", "start", "end", "limit", "max_points", "latest"}


def test_without_a_built_ui_the_root_page_says_so(tmp_path: Path, monkeypatch) -> None:
    import convscope.server._app as app_module

    monkeypatch.setattr(app_module, "STATIC_DIR", tmp_path / "nowhere")
    with TestClient(create_app(tmp_path / "runs")) as c:
        page = c.get("/")
        assert page.status_code == 200 and "not built" in page.text and "pip install -e ." in page.text
        assert c.get("/api/health").status_code == 200


def test_cli_serve_prints_its_address_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    _write_run(tmp_path / "logs", "cli", steps=2).close()
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; from convscope.cli import main; sys.exit(main())",
         "serve", "--logdir", str(tmp_path / "logs"), "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = [proc.stdout.readline(), proc.stdout.readline()]
        assert str(tmp_path / "logs") in lines[0]
        url = lines[1].split("open ", 1)[1].strip()
        assert url.startswith("http://127.0.0.1:") and "token" not in url
        assert [r["id"] for r in httpx.get(url + "api/runs", timeout=10).json()] == ["cli"]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0
    finally:
        proc.kill()
        proc.stdout.close()
        proc.stderr.close()


def test_the_printed_address_takes_connections_before_the_server_runs(tmp_path: Path) -> None:
    """The address is printed before uvicorn starts: a client that connects at once (a script
    reading it, the browser that --open starts, a loaded machine) must wait for the server, not
    be refused. Seen as a refused connection in the test above on a busy machine."""
    from convscope.server._run import _prepare

    server, handle = _prepare(str(tmp_path), "127.0.0.1", 0, None)
    try:
        with socket.create_connection(("127.0.0.1", handle.port), timeout=5) as early:  # (queued, not refused)
            early.sendall(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            runner = threading.Thread(target=server.run, kwargs={"sockets": [handle._socket]}, daemon=True)
            runner.start()
            early.settimeout(20)
            answer = b""
            while chunk := early.recv(4096):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 200") and b'"status":"ok"' in answer, answer[:200]
    finally:
        server.should_exit = True
        if "runner" in locals():
            runner.join(timeout=15)
        handle.stop()


def test_kill_9_writer_run_is_listed_and_served(server) -> None:
    code = (
        "import sys\nfrom convscope.frames import Frame\nfrom convscope.store import RunStore\n"
        "w = RunStore(sys.argv[1]).create_run('killed')\n"
        "for s in range(1, 10**9):\n"
        "    w.write(Frame(run=w.run_id, step=s, kind='scalar', payload={'name': 'loss', 'value': float(s)}))\n"
        "    if s % 100 == 0:\n        w.flush(); print(s, flush=True)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, server.logdir], stdout=subprocess.PIPE, text=True)
    try:
        while int(proc.stdout.readline()) < 1000:
            pass
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        proc.kill()
        proc.stdout.close()
    runs = httpx.get(server.url + "api/runs", timeout=10).json()
    assert [(r["id"], r["status"]) for r in runs] == [("killed", "crashed")]
    frames = list(decode_stream(httpx.get(server.url + "api/runs/killed/frames", params={"kind": "scalar"}, timeout=10).content))
    assert len(frames) >= 1000 and [f.step for f in frames] == list(range(1, len(frames) + 1))


def test_watch_serve_true_starts_a_local_dashboard(tmp_path: Path, capsys) -> None:
    net = convscope.load_model("lenet5-simplified", pretrained=False).module.train()
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    mon = convscope.watch(net, optimizer=opt, logdir=tmp_path, serve=True, every=1, run="local", budget=None)
    try:
        loss = net(torch.randn(4, 1, 28, 28)).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        assert mon._pipeline.drain(timeout=10)
        mon._store.flush()
        url = mon.server_url
        assert url and url.startswith("http://127.0.0.1:") and url.endswith("/#/runs/local")
        assert url in capsys.readouterr().out
        runs = httpx.get(url.split("#")[0] + "api/runs", timeout=10).json()
        assert [(r["id"], r["status"], r["last_step"]) for r in runs] == [("local", "live", 1)]
    finally:
        mon.close()
        mon.server.stop()


def test_start_local_server_reports_a_port_in_use(tmp_path: Path) -> None:
    with start_local_server(tmp_path) as first:
        with pytest.raises(convscope.errors.ServerError, match="cannot listen"):
            start_local_server(tmp_path, port=first.port)


def test_a_watch_whose_dashboard_port_is_taken_leaves_no_empty_run(tmp_path: Path) -> None:
    """The start fails before any training: no "failed" run with no frames on the Runs page for
    each try (a resumed run, which holds training, stays)."""
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3))
    logdir = tmp_path / "runs"
    with convscope.watch(net, logdir=logdir, run="kept") as mon:
        net(torch.randn(2, 1, 8, 8))
        mon.step()
    with start_local_server(tmp_path / "other") as first:
        for _ in range(2):
            with pytest.raises(convscope.errors.ServerError, match="cannot listen"):
                convscope.watch(net, logdir=logdir, run="demo", serve=True, serve_port=first.port).start()
        assert RunStore(logdir).run_ids() == ["kept"]
        with pytest.raises(convscope.errors.ServerError, match="cannot listen"):
            convscope.watch(net, logdir=logdir, run="kept", resume=True, serve=True, serve_port=first.port).start()
    assert RunStore(logdir).run_ids() == ["kept"] and RunStore(logdir).list_runs()[0]["last_step"] == 1
    assert sorted(p.name for p in logdir.iterdir()) == ["kept.convscope.db"]


_FULL_DISK_INGEST = """
import json, resource, signal, sys
from fastapi.testclient import TestClient
from convscope.frames import Frame, encode
from convscope.server import create_app
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG), as on a full disk
def body(first, n):
    return b"".join(encode(Frame(run="r", step=s, kind="scalar", payload={"name": "loss", "value": float(s)})) for s in range(first, first + n))
answers = []
with TestClient(create_app(sys.argv[1])) as c:
    run = c.post("/api/runs", json={"name": "full"}).json()["id"]
    post = lambda first, n: c.post(f"/api/runs/{run}/frames", content=body(first, n), headers={"X-Convscope-Seq": str(first)})
    answers.append(post(1, 50).status_code)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1, hard))  # no room left
    r = post(51, 50)
    answers.append([r.status_code, r.json()["detail"]])
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))  # room again: the sender sends them again
    answers.append(post(51, 50).json())
    c.post(f"/api/runs/{run}/close", json={"status": "finished"})
print(json.dumps({"run": run, "answers": answers}))
"""


def test_a_commit_that_fails_is_answered_503_and_the_frames_sent_again_are_stored_once_and_not_called_lost(tmp_path: Path) -> None:
    # a server whose disk is full for a moment: the sender still has the frames, so they are not
    # lost (the old answer, 422, told the sink to drop them, and the run counted them lost)
    out = subprocess.run([sys.executable, "-c", _FULL_DISK_INGEST, str(tmp_path)], capture_output=True, text=True, timeout=120, check=True)
    said = json.loads(out.stdout.strip().splitlines()[-1])
    first, failed, again = said["answers"]
    assert first == 200 and failed[0] == 503 and "send them again later" in failed[1]
    assert again == {"accepted": 50, "duplicates": 0}
    with RunStore(tmp_path).open_run(said["run"]) as r:
        assert [f.step for f in r.frames(kind="scalar")] == list(range(1, 101))
        assert r.dropped() == {} and r.status() == "finished"

"""The server over real HTTP and WebSockets: runs, binary frames, live streams, ingest and auth."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
import websockets
from aio_helpers import run_async

import convscope
from convscope.frames import Frame, decode, decode_stream, encode
from convscope.server import start_local_server
from convscope.sinks.http import HttpSink
from convscope.store import RunStore


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
        assert c.get("/api/health").json()["status"] == "ok"
        runs = c.get("/api/runs").json()
        assert [(r["id"], r["status"], r["last_step"]) for r in runs] == [(w.run_id, "live", 30)]
        detail = c.get(f"/api/runs/{w.run_id}").json()
        assert detail["kinds"] == {"correlation": 6, "scalar": 30} and detail["layers"] == ["conv1"]
        assert detail["meta"]["config"] == {"lr": 0.1}
        r = c.get(f"/api/runs/{w.run_id}/frames", params={"kind": "correlation", "start": 10, "end": 20})
        assert r.headers["content-type"] == "application/x-convscope-frames"
        frames = list(decode_stream(r.content))
        assert [f.step for f in frames] == [10, 15, 20]
        np.testing.assert_array_equal(frames[-1].payload["matrix"], np.full((2, 2), 20, np.float32))
        thin = list(decode_stream(c.get(f"/api/runs/{w.run_id}/frames", params={"kind": "scalar", "max_points": 4}).content))
        assert [f.step for f in thin] == [1, 11, 20, 30]
        latest = list(decode_stream(c.get(f"/api/runs/{w.run_id}/frames", params={"latest": "true", "end": 12}).content))
        assert {(f.kind, f.step) for f in latest} == {("scalar", 12), ("correlation", 10)}
        assert c.get(f"/api/runs/{w.run_id}/steps", params={"kind": "correlation"}).json() == {"steps": [5, 10, 15, 20, 25, 30]}
        assert "/api/runs/{run}/frames" in c.get("/openapi.json").json()["paths"]
        assert "convscope" in c.get("/").text
    w.close()


@pytest.mark.parametrize("bad", ["nope", "..", "..%2F..%2Fetc%2Fpasswd", "%2Fetc%2Fpasswd", "a%00b"])
def test_unknown_or_hostile_run_ids_are_404(server, bad: str) -> None:
    r = httpx.get(f"{server.url}api/runs/{bad}", timeout=10)
    assert r.status_code == 404 and "detail" in r.json()


def test_live_websocket_delivers_frames_written_by_another_writer(server) -> None:
    w = _write_run(Path(server.logdir), steps=3)

    async def follow() -> list:
        got = []
        url = server.url.replace("http", "ws") + f"api/runs/{w.run_id}/live"
        async with websockets.connect(url) as ws:
            await ws.send(json.dumps({"kinds": ["scalar"]}))
            await asyncio.sleep(0.2)
            for step in range(4, 9):
                w.write(Frame(run=w.run_id, step=step, kind="scalar", payload={"name": "loss", "value": float(step)}))
                w.write(Frame(run=w.run_id, step=step, kind="correlation", layer="conv1",
                              payload={"matrix": np.eye(2, dtype=np.float32), "dead": np.zeros(2, bool)}))
                await asyncio.to_thread(w.flush)
            while len(got) < 5:
                got.append(decode(await asyncio.wait_for(ws.recv(), timeout=10)))
            await asyncio.to_thread(w.close)
            status = json.loads(await asyncio.wait_for(ws.recv(), timeout=10))
            return got + [status]

    *frames, status = run_async(follow)
    assert [(f.kind, f.step, f.payload["value"]) for f in frames] == [("scalar", s, float(s)) for s in range(4, 9)]
    assert status == {"type": "status", "status": "finished"}


def test_runs_websocket_announces_new_runs(server) -> None:
    async def follow() -> dict:
        async with websockets.connect(server.url.replace("http", "ws") + "api/live") as ws:
            await asyncio.sleep(0.1)
            await asyncio.to_thread(_write_run, Path(server.logdir), "announced", 2)
            while True:
                msg = json.loads(await asyncio.wait_for(ws.recv(), timeout=10))
                if msg["run"]["id"] == "announced":
                    return msg

    assert run_async(follow)["run"]["status"] == "live"


def test_http_sink_and_watch_stream_to_a_live_server(server) -> None:
    torch.manual_seed(0)
    net = convscope.load_model("lenet5-simplified", pretrained=False).module.train()
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    mon = convscope.watch(net, optimizer=opt, logdir=None, serve=server.url, every=2, run="remote")
    for _ in range(6):
        loss = net(torch.randn(8, 1, 28, 28)).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        mon.log(loss=loss)
    mon.close()
    runs = httpx.get(server.url + "api/runs", timeout=10).json()
    assert [(r["id"], r["status"], r["last_step"]) for r in runs] == [("remote", "finished", 6)]
    frames = list(decode_stream(httpx.get(server.url + "api/runs/remote/frames", params={"kind": "weight_grid", "layer": "conv1"}, timeout=10).content))
    assert [f.step for f in frames] == [2, 4, 6]
    np.testing.assert_allclose(frames[-1].payload["weights"], net.conv1.weight.detach().numpy(), rtol=1e-6)


def test_http_sink_survives_a_dead_server() -> None:
    sink = HttpSink("http://127.0.0.1:9", timeout=0.5)
    sink.write(Frame(run="x", step=1, kind="scalar", payload={"name": "a", "value": 1.0}))
    t = time.perf_counter()
    with pytest.raises(convscope.errors.ServerError):
        sink.flush()
    sink.flush()  # backing off: returns at once, keeps the frame
    assert time.perf_counter() - t < 2 and len(sink._buffer) == 1


def test_ingest_limits_and_malformed_bodies(tmp_path: Path) -> None:
    handle = start_local_server(tmp_path, max_upload_bytes=10_000)
    try:
        with httpx.Client(base_url=handle.url, timeout=10) as c:
            run = c.post("/api/runs", json={"name": "ing"}).json()["id"]
            frame = encode(Frame(run=run, step=1, kind="scalar", payload={"name": "a", "value": 1.0}))
            assert c.post(f"/api/runs/{run}/frames", content=frame * 3).json() == {"accepted": 3}
            big = encode(Frame(run=run, step=2, kind="scalar", payload={"name": "a", "value": 1.0, "x": np.zeros(20_000, np.uint8)}))
            r = c.post(f"/api/runs/{run}/frames", content=big)
            assert r.status_code == 413 and "limit" in r.json()["detail"]
            r = c.post(f"/api/runs/{run}/frames", content=b"CSFR" + b"\0" * 40)
            assert r.status_code == 422 and "malformed" in r.json()["detail"]
            assert c.post("/api/runs/unknown/frames", content=frame).status_code == 404
            assert c.post(f"/api/runs/{run}/close", json={"status": "weird"}).status_code == 422
            assert c.post(f"/api/runs/{run}/close", json={"status": "finished"}).json()["status"] == "finished"
            assert c.get(f"/api/runs/{run}").json()["frames"] == 3
    finally:
        handle.stop()


def test_a_token_guards_every_endpoint(tmp_path: Path) -> None:
    handle = start_local_server(tmp_path, token="s3cret")
    try:
        assert httpx.get(handle.url + "api/runs", timeout=10).status_code == 401
        assert httpx.get(handle.url + "api/runs", params={"token": "wrong"}, timeout=10).status_code == 401
        assert httpx.get(handle.url + "api/runs", params={"token": "s3cret"}, timeout=10).json() == []
        assert httpx.get(handle.url + "api/runs", headers={"Authorization": "Bearer s3cret"}, timeout=10).status_code == 200
        assert httpx.post(handle.url + "api/runs", json={}, timeout=10).status_code == 401

        async def ws(token: str) -> str:
            url = handle.url.replace("http", "ws") + "api/live" + (f"?token={token}" if token else "")
            try:
                async with websockets.connect(url):
                    return "open"
            except websockets.exceptions.ConnectionClosed as exc:
                return f"closed {exc.rcvd.code if exc.rcvd else ''}"
            except websockets.exceptions.InvalidStatus as exc:
                return f"refused {exc.response.status_code}"

        assert run_async(ws, "s3cret") == "open"
        assert run_async(ws, "") != "open"
    finally:
        handle.stop()


def test_non_loopback_bind_always_gets_a_token(tmp_path: Path) -> None:
    from convscope.server._run import _prepare

    _server, handle = _prepare(str(tmp_path), "0.0.0.0", 0, None)
    assert handle.token and len(handle.token) >= 24 and "token=" in handle.url_with_token()


def test_watch_serve_true_starts_a_local_dashboard(tmp_path: Path, capsys) -> None:
    net = convscope.load_model("lenet5-simplified", pretrained=False).module.train()
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    mon = convscope.watch(net, optimizer=opt, logdir=tmp_path, serve=True, every=1, run="local")
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


def test_server_killed_mid_training_does_not_stop_training(tmp_path: Path) -> None:
    handle = start_local_server(tmp_path / "server-runs")
    torch.manual_seed(0)
    net = convscope.load_model("lenet5-simplified", pretrained=False).module.train()
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    with pytest.warns(RuntimeWarning, match="http"):
        mon = convscope.watch(net, optimizer=opt, logdir=tmp_path / "local", serve=handle.url, every=1, run="survivor")
        for step in range(40):
            loss = net(torch.randn(8, 1, 28, 28)).square().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            mon.log(loss=loss)
            if step == 10:
                assert mon._pipeline.drain(timeout=10)
                time.sleep(0.5)  # let a flush reach the server
                handle.stop()
        mon.close()
    assert mon.step_count == 40
    assert mon.stats.sink_failures.get("http", 0) > 0  # counted, and training went on
    local = RunStore(tmp_path / "local").open_run(mon.run_id)
    assert local.info()["status"] == "finished" and local.info()["last_step"] == 40
    served = RunStore(tmp_path / "server-runs").open_run("survivor")
    assert 1 <= served.info()["last_step"] < 40  # what reached the server before it died is intact


def test_kill_9_writer_run_is_listed_and_served(server) -> None:
    import signal
    import subprocess
    import sys

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


@pytest.mark.parametrize("path,params", [
    ("api/runs/nope", {}),
    ("api/runs/nope/frames", {}),
    ("api/runs/r/frames", {"start": "-5"}),
    ("api/runs/r/frames", {"end": "x"}),
    ("api/runs/r/frames", {"max_points": "0"}),
    ("api/runs/r/frames", {"limit": "10000000000"}),
    ("api/runs/r/frames", {"latest": "maybe"}),
])
def test_bad_requests_get_4xx_with_a_message(server, path: str, params: dict) -> None:
    w = _write_run(Path(server.logdir), "r", steps=3)
    r = httpx.get(server.url + path, params=params, timeout=10)
    assert 400 <= r.status_code < 500 and r.json()["detail"]
    assert httpx.get(server.url + "api/health", timeout=10).status_code == 200
    w.close()

"""Crash safety and concurrency for real: kill -9 mid-write, readers in other processes, status rules."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from samples import frame

from convscope.frames import decode
from convscope.sinks import create_sink, list_sinks
from convscope.store import RunStore

WRITER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from convscope.frames import Frame
    from convscope.store import RunStore
    w = RunStore(sys.argv[1]).create_run("victim", max_images=50)
    step = 0
    while True:
        step += 1
        w.write(Frame(run=w.run_id, step=step, kind="scalar", payload={"name": "loss", "value": float(step)}))
        w.write(Frame(run=w.run_id, step=step, kind="feature_maps", layer="conv1", payload={
            "images": np.full((16, 28, 28), step % 251, np.uint8), "vmin": 0.0, "vmax": 1.0,
            "normalisation": "per_map", "scale": 1.0, "sample": 0}))
        if step % 50 == 0:
            w.flush()
            print(step, flush=True)
    """
)


def _kill_writer(logdir: Path, after: int, while_live=None) -> int:
    """Run WRITER in another process and kill -9 it once it has committed ``after`` steps (mid-write:
    it never stops on its own); ``while_live(committed)`` runs before the kill. The steps committed."""
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(logdir)], stdout=subprocess.PIPE, text=True)
    try:
        committed = 0
        while committed < after:
            committed = int(proc.stdout.readline())
        if while_live is not None:
            while_live(committed)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        proc.kill()
        proc.stdout.close()
    return committed


def test_kill_9_mid_run_leaves_every_committed_frame_readable(tmp_path: Path) -> None:
    def read_while_it_writes(committed: int) -> None:  # a reader in this process while the writer writes and thins
        with RunStore(tmp_path).open_run("victim") as r:
            assert r.status() == "live"
            assert r.info(details=False)["last_step"] >= committed

    committed = _kill_writer(tmp_path, 1500, read_while_it_writes)
    store = RunStore(tmp_path)
    assert [(r["id"], r["status"]) for r in store.list_runs()] == [("victim", "crashed")]
    with store.open_run("victim") as r:
        assert r._con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        steps = r.steps(kind="scalar")
        assert steps == list(range(1, len(steps) + 1)) and len(steps) >= committed and len(steps) % 50 == 0  # whole flushes only
        assert r.frames(kind="scalar", latest=True)[0].payload["value"] == float(steps[-1])
        maps = r.frames(kind="feature_maps")
        assert 2 <= len(maps) <= 50 + 50 // 4 and maps[-1].step == steps[-1]  # never trimmed by a last flush
        assert all(int(m.payload["images"][0, 0, 0]) == m.step % 251 for m in maps)
        info = r.info()
        assert info["frames"] == len(steps) + len(maps) == sum(info["kinds"].values())
        assert info["thinned"]["feature_maps:conv1"] == len(steps) - len(maps)


READER = textwrap.dedent(
    """
    import sys, time
    from convscope.frames import decode
    from convscope.store import RunStore
    store = RunStore(sys.argv[1])
    while True:
        try:
            r = store.open_run("shared")
            break
        except Exception:
            time.sleep(0.01)
    cursor, seen = 0, []
    deadline = time.time() + 60
    while time.time() < deadline:
        for row_id, kind, layer, data in r.tail(cursor):
            cursor = row_id
            seen.append(decode(data).step)
        if seen and seen[-1] == int(sys.argv[2]):
            break
        time.sleep(0.005)
    print(",".join(map(str, seen)), flush=True)
    """
)


def test_a_reader_in_another_process_tails_a_run_while_it_is_written(tmp_path: Path) -> None:
    total = 3000
    w = RunStore(tmp_path).create_run("shared")
    reader = subprocess.Popen([sys.executable, "-c", READER, str(tmp_path), str(total)], stdout=subprocess.PIPE, text=True)
    try:
        for step in range(1, total + 1):
            w.write(frame("scalar", step, run="shared"))
            if step % 25 == 0:
                w.flush()
                time.sleep(0.001)
        out, _ = reader.communicate(timeout=60)
    finally:
        reader.kill()
    seen = [int(s) for s in out.strip().split(",")]
    assert seen == list(range(seen[0], total + 1))  # no gap, no duplicate, in order
    assert seen[0] <= 26
    w.close()


def _meta(path: Path, **values: object) -> None:
    con = sqlite3.connect(path)
    con.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", [(k, json.dumps(v)) for k, v in values.items()])
    con.commit()
    con.close()


def test_status_rules(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    # a live writer in this process
    w = store.create_run("here")
    assert store.open_run("here").status() == "live"
    # a remote monitor fed through the server's ingest: crashed once its heartbeats stop
    ingest = store.create_run("ingest", stale_after=0.3)
    assert store.open_run("ingest").status() == "live"
    time.sleep(0.4)
    assert store.open_run("ingest").status() == "crashed"
    ingest.heartbeat()
    assert store.open_run("ingest").status() == "live"
    # a writer on another machine: judged by its heartbeat alone
    _meta(store.path("here"), host="elsewhere", updated=time.time())
    assert store.open_run("here").status() == "live"
    _meta(store.path("here"), updated=time.time() - 3600)
    assert store.open_run("here").status() == "crashed"
    # a pid that a new process took over after the writer died
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        _meta(store.path("here"), host=socket.gethostname(), pid=sleeper.pid, pid_start=1, updated=time.time())
        assert store.open_run("here").status() == "crashed"
        from convscope.store._schema import process_start

        _meta(store.path("here"), pid_start=process_start(sleeper.pid))
        assert store.open_run("here").status() == "live"
    finally:
        sleeper.kill()
        sleeper.wait()
    assert store.open_run("here").status() == "crashed"  # the process is gone
    w.close()
    ingest.close()
    assert {r["id"]: r["status"] for r in store.list_runs()} == {"here": "finished", "ingest": "finished"}


def test_store_sink_is_registered_and_commits_on_flush(tmp_path: Path) -> None:
    assert {"store", "http"} <= set(list_sinks())
    sink = create_sink("store", logdir=tmp_path, run="sunk", model="Net", config={"a": 1}, max_images=5)
    assert sink.run_id == "sunk"
    reader = RunStore(tmp_path).open_run("sunk")
    for step in range(1, 21):
        sink.write(frame("feature_maps", step, run="sunk"))
    assert reader.info()["frames"] == 0  # buffered, not committed
    sink.flush()
    assert len(reader.frames(kind="feature_maps")) <= 5 and reader.frames(kind="feature_maps")[-1].step == 20
    sink.close(status="failed")
    info = reader.info()
    assert (info["status"], info["model"], info["meta"]["config"]) == ("failed", "Net", {"a": 1})
    assert decode(reader.raw_frames(latest=True)[0][1]).step == 20


@pytest.mark.parametrize("status", ["finished", "failed"])
def test_context_manager_marks_the_end(tmp_path: Path, status: str) -> None:
    store = RunStore(tmp_path)
    try:
        with store.create_run("ctx") as w:
            w.write(frame("scalar", 1, run="ctx"))
            if status == "failed":
                raise KeyError("boom")
    except KeyError:
        pass
    info = store.open_run("ctx").info()
    assert (info["status"], info["frames"]) == (status, 1)


def test_a_run_is_never_seen_half_made(tmp_path: Path) -> None:
    import threading

    store = RunStore(tmp_path)
    done = threading.Event()
    writers = []

    def create() -> None:
        for i in range(40):
            writers.append(RunStore(tmp_path).create_run(f"new-{i}"))
        done.set()

    t = threading.Thread(target=create)
    t.start()
    seen: set = set()
    while not done.is_set():
        for info in store.list_runs():
            seen.add((info["id"], info["status"], info["name"]))
    t.join()
    assert seen and all(status == "live" and name == run_id for run_id, status, name in seen)
    for w in writers:
        w.close()


def test_a_killed_run_resumed_keeps_its_frames_and_spreads_its_images_over_both_parts(tmp_path: Path) -> None:
    committed = _kill_writer(tmp_path, 600)
    store = RunStore(tmp_path)
    with store.open_run("victim") as r:
        before = r.info(details=False)
        started = r.meta()["started"]
        assert before["status"] == "crashed"
    w = store.resume_run("victim")
    last = w.resumed_from
    assert last == before["last_step"] >= committed
    for step in range(last + 1, last + 601):
        w.write(frame("scalar", step, run="victim"))
        w.write(frame("feature_maps", step, run="victim"))
        if step % 50 == 0:
            w.flush()
    w.close()
    assert [(r["id"], r["status"]) for r in store.list_runs()] == [("victim", "finished")]
    with store.open_run("victim") as r:
        assert r.meta()["started"] == started and r.meta()["retention"] == {"feature_maps": 50}
        assert r.steps(kind="scalar") == list(range(1, last + 601))  # nothing lost, nothing twice
        steps = r.steps(kind="feature_maps", layer="conv1")
        assert 25 <= len(steps) <= 50  # the run's own retention goes on over both parts
        assert steps[0] == 1 and steps[-1] == last + 600
        gaps = np.diff(steps[:-1])
        assert gaps.max() <= 2 * gaps.min()  # spread over the whole run, not crowded into its second part
        assert r.info()["thinned"]["feature_maps:conv1"] == last + 600 - len(steps)

"""The run store in trouble: commits that fail, a run file removed while written, two processes
resuming one run, a directory it may not write, damaged or newer files."""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from samples import frame

from convscope.errors import StoreError
from convscope.server import start_local_server
from convscope.sinks.store import StoreSink
from convscope.store import RunStore
from convscope.store._schema import status_of

FULL = textwrap.dedent(
    """
    import json, resource, signal, sys
    import numpy as np
    from convscope.errors import StoreError
    from convscope.frames import Frame
    from convscope.sinks.store import StoreSink
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG), as on a full disk
    sink = StoreSink(sys.argv[1], run="full", max_images=10)
    step = 0
    def flush_five():
        global step
        for _ in range(5):
            step += 1
            sink.write(Frame(run="full", step=step, kind="feature_maps", layer="conv1", payload={
                "images": np.full((4, 28, 28), step % 251, np.uint8), "vmin": 0.0, "vmax": 1.0,
                "normalisation": "per_map", "scale": 1.0, "sample": 0}))
        sink.flush()
    for _ in range(20):
        flush_five()
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1, hard))  # no room left
    try:
        flush_five()
        failed = None
    except StoreError as exc:
        failed = str(exc)
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))  # room again
    for _ in range(200):
        flush_five()
    sink.close()
    print(json.dumps({"failed": failed, "dropped": getattr(sink, "dropped", None), "last": step}))
    """
)


def test_a_commit_that_fails_loses_only_its_frames_counted_and_retention_goes_on(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-c", FULL, str(tmp_path)], capture_output=True, text=True, timeout=120, check=True)
    result = json.loads(out.stdout)
    lost = set(range(101, 106))
    with RunStore(tmp_path).open_run("full") as r:
        assert r._con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        steps = r.steps(kind="feature_maps")
        info = r.info()
    # the frames kept before the failure are still thinned: the run holds its budget, spread evenly
    assert 5 <= len(steps) <= 10 and steps[0] == 1 and steps[-1] == result["last"] and not lost & set(steps)
    gaps = np.diff(steps[:-1])
    assert gaps.max() <= 2 * gaps.min()
    assert info["thinned"]["feature_maps:conv1"] == result["last"] - len(lost) - len(steps)
    assert result["failed"] is not None and "they are lost" in result["failed"]
    assert result["dropped"] == 5  # said and counted: the monitor reports it as a `dropped` frame


LOSES = textwrap.dedent(
    """
    import json, resource, signal, sys
    from convscope.errors import StoreError
    from convscope.frames import Frame
    from convscope.sinks.store import StoreSink
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG), as on a full disk
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)

    def write(sink, steps, *, full=False):
        for step in steps:
            sink.write(Frame(run="lossy", step=step, kind="scalar", payload={"name": "loss", "value": float(step)}))
        if full:
            resource.setrlimit(resource.RLIMIT_FSIZE, (1, hard))  # no room left
        try:
            sink.flush()
        except StoreError:
            pass
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))  # room again

    sink = StoreSink(sys.argv[1], run="lossy")
    write(sink, range(1, 6))
    write(sink, range(6, 11), full=True)  # lost
    write(sink, range(11, 16))
    sink.close()
    first = sink.dropped
    again = StoreSink(sys.argv[1], run="lossy", resume=True)  # (the monitor's watch(resume=True))
    before = again.writer.dropped_totals()  # what the monitor adds to this process's counts
    write(again, range(16, 19), full=True)  # lost
    write(again, range(19, 21))
    again.close()
    print(json.dumps({"first": first, "second": again.dropped, "before": before}))
    """
)


def test_frames_a_commit_lost_are_counted_in_the_run_itself(tmp_path: Path) -> None:
    """Whoever opens the run afterwards (RunReader, the API's run details, the dashboard's note
    under the run's title) sees how many frames its commits lost: the writer records its own
    count as a ``dropped`` frame (sink ``store``) in the next commit that succeeds, a resumed run
    going on from the total so far."""
    out = subprocess.run([sys.executable, "-c", LOSES, str(tmp_path)], capture_output=True, text=True, timeout=120, check=True)
    result = json.loads(out.stdout)
    assert (result["first"], result["second"], result["before"]) == (5, 3, {"store": 5})
    with RunStore(tmp_path).open_run("lossy") as r:
        assert r.steps(kind="scalar") == [*range(1, 6), *range(11, 16), 19, 20]
        reports = [(f.step, f.payload) for f in r.frames(kind="dropped")]
        assert reports == [(10, {"count": 5, "sink": "store"}), (18, {"count": 8, "sink": "store"})]  # at the last lost step
        assert r.dropped() == r.info()["dropped"] == {"store": 8}
        assert r.info()["status"] == "finished"


def test_a_run_file_removed_while_written_is_said_not_written_into_the_void(tmp_path: Path) -> None:
    logdir = tmp_path / "logs"
    sink = StoreSink(logdir, run="gone")
    for step in range(1, 11):
        sink.write(frame("scalar", step, run="gone"))
    sink.flush()
    shutil.rmtree(logdir)  # (someone cleans up the log directory while training runs)
    for step in range(11, 21):
        sink.write(frame("scalar", step, run="gone"))
    with pytest.raises(StoreError, match="removed or replaced"):
        sink.flush()
    assert sink.dropped == 10
    # a new run of that name made meanwhile is not written into by the old writer either
    other = RunStore(logdir).create_run("gone")
    sink.write(frame("scalar", 21, run="gone"))
    with pytest.raises(StoreError, match="removed or replaced"):
        sink.flush()
    assert sink.dropped == 11
    sink.close()
    other.close()
    with RunStore(logdir).open_run("gone") as r:
        assert r.info()["frames"] == 0


RESUMER = textwrap.dedent(
    """
    import sys
    from convscope.store import RunStore
    store = RunStore(sys.argv[1])
    print("ready", flush=True)
    try:
        w = store.resume_run("twice")
    except Exception as exc:
        print("refused", exc, flush=True)
        sys.exit(0)
    print("resumed", flush=True)
    sys.stdin.read()  # writes until told to stop
    w.close()
    """
)


def test_two_processes_resuming_one_run_at_once_one_is_refused(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    with store.create_run("twice") as w:
        w.write(frame("scalar", 1, run="twice"))
    # Hold the run's write lock so that both resumers get past their first look (the run is
    # finished) before either can take the run: the race of two jobs restarted at once.
    lock = sqlite3.connect(store.path("twice"), isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")
    procs = [
        subprocess.Popen([sys.executable, "-c", RESUMER, str(tmp_path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    try:
        assert [p.stdout.readline().strip() for p in procs] == ["ready", "ready"]
        time.sleep(1.0)
        lock.execute("ROLLBACK")
        said = [p.stdout.readline().strip() for p in procs]
        assert sorted(s.split()[0] for s in said) == ["refused", "resumed"], said
        assert "is live" in next(s for s in said if s.startswith("refused"))
        winner = procs[[s.split()[0] for s in said].index("resumed")]
        with store.open_run("twice") as r:
            assert r.status() == "live" and r.meta()["pid"] == winner.pid
        for p in procs:
            p.communicate("", timeout=30)
    finally:
        lock.close()
        for p in procs:
            p.kill()
    assert store.open_run("twice").status() == "finished"


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root may write any directory")
def test_a_directory_it_may_not_write(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    with store.create_run("done") as w:
        w.write(frame("scalar", 1, run="done"))
    assert not Path(f"{store.path('done')}-wal").exists()
    tmp_path.chmod(0o555)  # (a read-only mount, another user's runs)
    try:
        assert [(r["id"], r["status"], r["frames"]) for r in store.list_runs()] == [("done", "finished", 1)]
        with store.open_run("done") as r:
            assert r.frames()[0].payload["value"] == 0.5
        with pytest.raises(StoreError, match="cannot create a run file"):
            store.create_run("new")
    finally:
        tmp_path.chmod(0o755)


def test_damaged_and_newer_files_are_said_and_never_break_the_listing(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    for run_id in ("good", "odd-start", "bad-json", "newer"):
        with store.create_run(run_id) as w:
            w.write(frame("scalar", 1, run=run_id))

    def meta(run_id: str, key: str, value: str) -> None:
        con = sqlite3.connect(store.path(run_id))
        con.execute("UPDATE meta SET value = ? WHERE key = ?", (value, key))
        con.commit()
        con.close()

    meta("odd-start", "started", '"yesterday"')
    meta("bad-json", "name", "{not json")
    meta("newer", "format", "99")
    assert [r["id"] for r in store.list_runs()] == ["good", "odd-start"]  # (the CLI names the others)
    with pytest.raises(StoreError, match="metadata is damaged"):
        store.open_run("bad-json").info()
    with pytest.raises(StoreError, match="newer convscope .*format 99"):
        store.open_run("newer")


def test_a_heartbeat_that_is_not_a_number_counts_as_missing_and_never_breaks_the_listing(tmp_path: Path) -> None:
    """Damaged or hand-edited metadata: an ``updated`` or ``stale_after`` that is not a number
    is treated as missing (a live run whose heartbeat cannot be read is crashed)."""
    now, here, me = time.time(), socket.gethostname(), os.getpid()
    cases = [
        ({"status": "live", "host": "elsewhere", "updated": "yesterday"}, "crashed"),
        ({"status": "live", "host": "elsewhere", "updated": [now]}, "crashed"),
        ({"status": "live", "host": "elsewhere", "updated": now, "stale_after": "soon"}, "live"),  # the default 30 s
        ({"status": "live", "host": "elsewhere", "updated": now, "stale_after": float("nan")}, "live"),
        ({"status": "live", "host": here, "pid": me, "updated": {"t": now}, "stale_after": 30}, "crashed"),
        ({"status": "live", "host": here, "pid": me, "updated": now, "stale_after": [30]}, "live"),  # its writer runs
        ({"status": "live", "host": here, "pid": 1 << 70, "updated": now}, "live"),  # no such pid: judged by its heartbeat
        ({"status": "finished", "updated": "yesterday", "stale_after": "soon"}, "finished"),
    ]
    assert [status_of(meta) for meta, _ in cases] == [status for _, status in cases]

    store = RunStore(tmp_path)
    damaged = {"no-beat": ('"yesterday"', "null"), "list-beat": ("[1]", "null"), "odd-stale": (json.dumps(now + 3600), '{"s": 1}')}
    for run_id, (updated, stale_after) in damaged.items():
        with store.create_run(run_id) as w:
            w.write(frame("scalar", 1, run=run_id))
        con = sqlite3.connect(store.path(run_id))
        con.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                        [("status", '"live"'), ("host", '"elsewhere"'), ("updated", updated), ("stale_after", stale_after)])
        con.commit()
        con.close()
    expected = {"no-beat": "crashed", "list-beat": "crashed", "odd-stale": "live"}
    assert {r["id"]: r["status"] for r in store.list_runs()} == expected
    with start_local_server(tmp_path) as handle:  # the Runs page and `GET /api/runs/{id}` too
        listed = httpx.get(handle.url + "api/runs", timeout=10)
        assert listed.status_code == 200 and {r["id"]: (r["status"], r["updated"]) for r in listed.json()} == {
            "no-beat": ("crashed", None), "list-beat": ("crashed", None), "odd-stale": ("live", now + 3600)}
        one = httpx.get(handle.url + "api/runs/no-beat", timeout=10)
        assert one.status_code == 200 and one.json()["status"] == "crashed"

"""The run store: exact round trips, queries, retention, readers beside a writer, and kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from convscope.errors import NotFoundError, StoreError
from convscope.frames import Frame
from convscope.store import RunStore, valid_run_id


def _scalar(run: str, step: int, value: float, name: str = "loss") -> Frame:
    return Frame(run=run, step=step, kind="scalar", payload={"name": name, "value": value})


def _images(run: str, step: int, layer: str = "conv1") -> Frame:
    rng = np.random.default_rng(step)
    return Frame(run=run, step=step, kind="feature_maps", layer=layer, payload={
        "images": rng.integers(0, 255, (4, 8, 8), dtype=np.uint8), "vmin": 0.0, "vmax": 1.0,
        "normalisation": "per_map", "scale": 1.0, "sample": 0})


def test_round_trip_and_queries(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    w = store.create_run("my run/../x", model="LeNet", config={"lr": 0.1})
    assert valid_run_id(w.run_id) and "/" not in w.run_id
    corr = np.random.default_rng(0).normal(size=(3, 3)).astype(np.float32)
    for step in range(1, 101):
        w.write(_scalar(w.run_id, step, 1.0 / step))
        if step % 10 == 0:
            w.write(Frame(run=w.run_id, step=step, kind="correlation", layer="conv1",
                          payload={"matrix": corr * step, "dead": np.zeros(3, bool)}))
    w.flush()
    r = store.open_run(w.run_id)
    info = r.info()
    assert info["status"] == "live" and info["model"] == "LeNet" and info["meta"]["config"] == {"lr": 0.1}
    assert (info["first_step"], info["last_step"], info["frames"]) == (1, 100, 110)
    assert info["kinds"] == {"correlation": 10, "scalar": 100} and info["layers"] == ["conv1"]
    loss = r.frames(kind="scalar", start=10, end=20)
    assert [f.step for f in loss] == list(range(10, 21))
    assert loss[0].payload["value"] == pytest.approx(0.1)
    np.testing.assert_array_equal(r.frames(kind="correlation", layer="conv1", end=35)[-1].payload["matrix"], corr * 30)
    thin = r.frames(kind="scalar", max_points=11)
    assert [f.step for f in thin] == [1, 11, 21, 31, 41, 51, 60, 70, 80, 90, 100]
    latest = r.frames(latest=True, end=55)
    assert {(f.kind, f.step) for f in latest} == {("scalar", 55), ("correlation", 50)}
    assert r.steps(kind="correlation", layer="conv1") == list(range(10, 101, 10))
    assert len(r.raw_frames(after_id=105)) == 5
    w.close()
    assert store.open_run(w.run_id).info()["status"] == "finished"
    assert [x["id"] for x in store.list_runs()] == [w.run_id]


def test_names_never_become_paths(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "logs")
    for bad in ("../etc/passwd", "a/b", "", "..", ".hidden", "x" * 200):
        with pytest.raises(NotFoundError):
            store.open_run(bad)
    a = store.create_run("same")
    b = store.create_run("same")
    assert (a.run_id, b.run_id) == ("same", "same-2")
    assert sorted(p.name for p in (tmp_path / "logs").iterdir() if p.suffix == ".db") == ["same-2.convscope.db", "same.convscope.db"]


def test_image_retention_keeps_an_even_spread_and_says_what_it_dropped(tmp_path: Path) -> None:
    w = RunStore(tmp_path).create_run("long", max_images=20)
    for step in range(1, 201):
        w.write(_images(w.run_id, step))
        w.write(_scalar(w.run_id, step, 0.0))
        if step % 10 == 0:
            w.flush()
    w.close()
    r = RunStore(tmp_path).open_run("long")
    steps = r.steps(kind="feature_maps")
    assert 10 <= len(steps) <= 20
    assert steps[0] == 1 and steps[-1] == 200
    gaps = np.diff(steps)
    assert gaps.max() <= 4 * np.median(gaps)  # spread over the whole run, not only the recent end
    info = r.info()
    assert info["thinned"]["feature_maps:conv1"] == 200 - len(steps)
    assert info["kinds"]["scalar"] == 200  # small frames are never thinned


def test_corrupt_file_gives_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "bad.convscope.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="not a readable"):
        RunStore(tmp_path).open_run("bad")
    assert RunStore(tmp_path).list_runs() == []


WRITER = textwrap.dedent(
    """
    import sys, time
    from convscope.frames import Frame
    from convscope.store import RunStore
    w = RunStore(sys.argv[1]).create_run("victim")
    step = 0
    while True:
        step += 1
        w.write(Frame(run=w.run_id, step=step, kind="scalar", payload={"name": "loss", "value": float(step)}))
        if step % 50 == 0:
            w.flush()
            print(step, flush=True)
    """
)


def test_kill_9_mid_run_leaves_a_readable_run(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        committed = 0
        while committed < 2000:
            committed = int(proc.stdout.readline())
        # a reader in this process while the writer keeps writing
        r = RunStore(tmp_path).open_run("victim")
        assert r.info()["status"] == "live"
        assert r.info(details=False)["frames"] >= 2000
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        proc.kill()
        proc.stdout.close()
    time.sleep(0.1)
    r = RunStore(tmp_path).open_run("victim")
    info = r.info()
    assert info["status"] == "crashed"
    steps = r.steps(kind="scalar")
    assert steps == list(range(1, len(steps) + 1)) and len(steps) >= committed
    assert r.frames(kind="scalar", latest=True)[0].payload["value"] == float(steps[-1])

"""Each run's summary (the Runs page's columns): each scalar's last value, each layer's gradient
health and each pruned layer's filters, kept by the writer with the frames as running totals."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from convscope.errors import StoreError
from convscope.frames import Frame
from convscope.store import RunStore


def scalars(run: str, name: str, steps: list[int], values: list[float]) -> Frame:
    """One ``scalars`` frame, as the monitor batches what ``log()`` gets: stored at its last step."""
    s = np.array(steps, np.int64)
    return Frame(run=run, step=int(s.max()), kind="scalars",
                 payload={"name": name, "steps": s, "values": np.array(values, np.float64), "wall_times": 1.7e9 + s})


def check(run: str, step: int, layer: str, status: str) -> Frame:
    return Frame(run=run, step=step, kind="gradient_health", layer=layer, payload={
        "status": status, "grad_norm": 0.5, "update_ratio": 1e-3, "zero_fraction": 0.0, "dead_fraction": 0.0, "nonfinite": 0,
        "reasons": [] if status == "healthy" else [f"{status} for 3 of 3 checks"], "raw_status": "healthy"})


def pruning(run: str, step: int, layer: str, before: int, after: int) -> Frame:
    removed = list(range(after, before))
    return Frame(run=run, step=step, kind="pruning", layer=layer, payload={
        "removed": removed, "kept": list(range(after)), "before": before, "after": after, "reason": "correlation >= 0.9",
        "params_before": 10 * before, "params_after": 10 * after})


def write_lenet_like(w) -> None:
    """Loss and accuracy logged (a batch of an earlier step written after a later one among them),
    a learning rate as legacy ``scalar`` frames, conv1 stalled for 3 checks of 8, conv2 healthy,
    conv1 pruned twice and fc1 once."""
    run = w.run_id
    w.write(scalars(run, "loss", [1, 2, 3], [2.3, 1.9, 1.5]))
    w.write(scalars(run, "acc", [1, 2, 3], [0.11, 0.2, 0.31]))
    for step in range(1, 9):
        w.write(check(run, step, "conv1", "stalled" if step in (3, 4, 5) else "healthy"))
        w.write(check(run, step, "conv2", "healthy"))
    w.write(pruning(run, 4, "conv1", 6, 4))
    w.flush()
    w.write(scalars(run, "loss", [7, 8], [0.9, 0.8123456]))
    w.write(scalars(run, "loss", [5, 6], [1.2, 1.0]))  # (an earlier batch that came late: replaces nothing)
    w.write(Frame(run=run, step=8, kind="scalar", payload={"name": "lr", "value": 0.05}))
    w.write(Frame(run=run, step=2, kind="scalar", payload={"name": "lr", "value": 0.1}))
    w.write(pruning(run, 7, "conv1", 4, 3))
    w.write(pruning(run, 6, "fc1", 120, 100))
    w.write(scalars(run, "acc", [8], [0.9]))


LENET_LIKE = {
    "scalars": {"loss": {"value": 0.8123456, "step": 8}, "acc": {"value": 0.9, "step": 8}, "lr": {"value": 0.05, "step": 8}},
    "health": {"conv1": {"status": "healthy", "step": 8, "flagged": 3, "checks": 8},
               "conv2": {"status": "healthy", "step": 8, "flagged": 0, "checks": 8}},
    "filters": {"conv1": {"before": 6, "after": 3, "prunings": 2, "first_step": 4, "step": 7},
                "fc1": {"before": 120, "after": 100, "prunings": 1, "first_step": 6, "step": 6}},
}


def test_the_summary_says_each_scalars_last_value_each_layers_health_and_its_prunings(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    w = store.create_run("lenet")
    with store.open_run("lenet") as r:
        assert r.summary() == {"scalars": {}, "health": {}, "filters": {}}  # (nothing yet)
    write_lenet_like(w)
    w.flush()
    assert w.summary() == LENET_LIKE
    w.write(check("lenet", 9, "conv1", "exploding"))
    w.write(check("lenet", 6, "conv1", "vanishing"))  # (an earlier check that came late: counted, not the last)
    w.write(scalars("lenet", "loss", [9], [float("nan")]))
    w.close()
    expected = {**LENET_LIKE, "scalars": {**LENET_LIKE["scalars"], "loss": {"value": "nan", "step": 9}},
                "health": {**LENET_LIKE["health"], "conv1": {"status": "exploding", "step": 9, "flagged": 5, "checks": 10}}}
    store = RunStore(tmp_path)  # (opened afresh: read from the file)
    with store.open_run("lenet") as r:
        assert r.summary() == expected
        assert r.info()["summary"] == r.info(details=False)["summary"] == expected
    assert store.list_runs()[0]["summary"] == expected
    assert w.summary() == expected  # (what the writer held, as committed)


def test_a_commit_that_fails_adds_nothing_to_the_summary(tmp_path: Path) -> None:
    # The frames of a commit that fails are lost (counted): what they would have added to the
    # summary must not be in it either, then or at the next commit.
    store = RunStore(tmp_path)
    w = store.create_run("lossy")
    w.write(scalars("lossy", "loss", [1], [1.0]))
    w.write(check("lossy", 1, "conv1", "healthy"))
    w.flush()
    con = sqlite3.connect(store.path("lossy"))
    con.execute("CREATE TRIGGER full BEFORE INSERT ON frames WHEN NEW.step = 2 BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END")
    con.commit()
    w.write(scalars("lossy", "loss", [2], [0.5]))
    w.write(check("lossy", 2, "conv1", "exploding"))
    w.write(pruning("lossy", 2, "conv1", 8, 4))
    with pytest.raises(StoreError, match="they are lost"):
        w.flush()
    con.execute("DROP TRIGGER full")
    con.commit()
    con.close()
    w.write(check("lossy", 3, "conv1", "healthy"))
    w.close()
    with store.open_run("lossy") as r:
        assert r.summary() == {
            "scalars": {"loss": {"value": 1.0, "step": 1}},
            "health": {"conv1": {"status": "healthy", "step": 3, "flagged": 0, "checks": 2}},
            "filters": {},
        }
        assert r.dropped() == {"store": 3}


def test_frames_retention_thins_still_count(tmp_path: Path) -> None:
    # retention keeps a few gradient checks of each layer; the summary counted every one of them
    store = RunStore(tmp_path)
    with store.create_run("long", retention={"gradient_health": 4, "scalars": 4}) as w:
        for step in range(1, 201):
            w.write(check("long", step, "conv1", "stalled" if step % 10 == 0 else "healthy"))
            w.write(scalars("long", "loss", [step], [1 / step]))
            if step % 20 == 0:
                w.flush()
    with store.open_run("long") as r:
        info = r.info()
        assert info["counts"]["gradient_health:conv1"] <= 4 and info["thinned"]["gradient_health:conv1"] >= 196
        assert info["summary"]["health"] == {"conv1": {"status": "stalled", "step": 200, "flagged": 20, "checks": 200}}
        assert info["summary"]["scalars"] == {"loss": {"value": 1 / 200, "step": 200}}


def _forget_summary(path: Path, *, drop_table: bool = False) -> None:
    """Make the run as an older convscope wrote it: no summary kept (or no state table at all)."""
    con = sqlite3.connect(path)
    con.execute("DROP TABLE state" if drop_table else "DELETE FROM state WHERE key = 'run-summary'")
    con.commit()
    con.close()


def test_a_run_written_before_runs_kept_a_summary_has_it_from_its_frames(tmp_path: Path, monkeypatch) -> None:
    import convscope.store._summary as summary_module

    store = RunStore(tmp_path)
    with store.create_run("old") as w:
        write_lenet_like(w)
        for step in range(9, 309):  # a longer run: the names are read in SQL, not by decoding every frame
            w.write(scalars("old", "loss", [step], [1 / step]))
            w.write(scalars("old", "acc", [step], [step / 400]))
            w.write(Frame(run="old", step=step, kind="scalar", payload={"name": "lr", "value": 0.01}))
    _forget_summary(store.path("old"))
    expected = {**LENET_LIKE, "scalars": {"loss": {"value": 1 / 308, "step": 308}, "acc": {"value": 308 / 400, "step": 308},
                                          "lr": {"value": 0.01, "step": 308}}}
    decoded = []
    real_decode = summary_module.decode
    monkeypatch.setattr(summary_module, "decode", lambda data: decoded.append(1) or real_decode(data))
    with store.open_run("old") as r:
        assert r.state("run-summary") is None
        assert r.summary() == expected and r.info(details=False)["summary"] == expected
    # per read: the three frames of the last step (once for all names), each layer's last check, the three prunings
    assert len(decoded) == 2 * (3 + 2 + 3), len(decoded)
    assert store.list_runs()[0]["summary"] == expected
    _forget_summary(store.path("old"), drop_table=True)  # (older still: no state table)
    with store.open_run("old") as r:
        assert r.summary() == expected


def test_a_run_keeps_its_summary_row_from_its_first_frames_whatever_their_kinds(tmp_path: Path, monkeypatch) -> None:
    """A run whose frames add nothing to its summary yet (only weight grids, say) keeps the row all
    the same: listing it never sums it from its frames, which is only for runs written before."""
    import convscope.store._reader as reader_module

    store = RunStore(tmp_path)
    with store.create_run("views") as w:
        w.write(Frame(run="views", step=10, kind="weight_grid", layer="conv1", payload={"weights": np.zeros((2, 1, 3, 3), np.float32), "vmax": 1.0}))
        w.flush()
        monkeypatch.setattr(reader_module, "summary_from_frames", lambda *_: pytest.fail("summed from its frames"))
        with store.open_run("views") as r:
            assert r.state("run-summary") is not None
            assert r.summary() == {"scalars": {}, "health": {}, "filters": {}}


def test_names_the_headers_do_not_say_plainly_are_read_by_decoding(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    with store.create_run("odd") as w:
        w.write(Frame(run="odd", step=1, kind="scalar", payload={"name": 'val "acc"', "value": 0.5}))
        w.write(Frame(run="odd", step=2, kind="scalar", payload={"name": 'val "acc2"', "value": 0.6}))
        w.write(Frame(run="odd", step=3, kind="scalar", payload={"value": 0.7, "name": "lr"}))  # (laid out otherwise)
        w.write(Frame(run="odd", step=1, kind="scalar", payload={"name": "überloss", "value": float("inf")}))
        w.write(Frame(run="odd", step=4, kind="scalar", payload={"name": "bad", "value": "n/a"}))  # (no number: left out)
    with store.open_run("odd") as r:
        kept = r.summary()
    _forget_summary(store.path("odd"))
    with store.open_run("odd") as r:
        assert r.summary() == kept == {"scalars": {'val "acc"': {"value": 0.5, "step": 1}, 'val "acc2"': {"value": 0.6, "step": 2},
                                                   "lr": {"value": 0.7, "step": 3}, "überloss": {"value": "inf", "step": 1}},
                                       "health": {}, "filters": {}}


def test_a_resumed_run_goes_on_from_its_summary(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    with store.create_run("job") as w:
        write_lenet_like(w)
    for forget in (False, True):  # kept, or (a run of an older convscope) worked out from its frames
        if forget:
            _forget_summary(store.path("job"))
        w = store.resume_run("job")
        assert w.summary() == LENET_LIKE
        w.close()
    with store.resume_run("job") as w:
        w.write(scalars("job", "loss", [6], [5.0]))  # (a step before the last: replaces nothing)
        w.write(scalars("job", "loss", [9], [0.7]))
        w.write(check("job", 9, "conv1", "stalled"))
        w.write(pruning("job", 9, "conv1", 3, 2))
    with store.open_run("job") as r:
        assert r.summary() == {
            **LENET_LIKE,
            "scalars": {**LENET_LIKE["scalars"], "loss": {"value": 0.7, "step": 9}},
            "health": {**LENET_LIKE["health"], "conv1": {"status": "stalled", "step": 9, "flagged": 4, "checks": 9}},
            "filters": {**LENET_LIKE["filters"], "conv1": {"before": 6, "after": 2, "prunings": 3, "first_step": 4, "step": 9}},
        }


def test_a_damaged_summary_is_worked_out_again_from_the_frames(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    with store.create_run("hurt") as w:
        write_lenet_like(w)
    for damage in (b"{not json", b'{"scalars": {"loss": {"value": [1], "step": 3}}, "health": {}, "filters": {}}', b"[]"):
        con = sqlite3.connect(store.path("hurt"))
        con.execute("UPDATE state SET data = ? WHERE key = 'run-summary'", (damage,))
        con.commit()
        con.close()
        with store.open_run("hurt") as r:
            assert r.summary() == LENET_LIKE


KILLED = textwrap.dedent(
    """
    import sys
    import numpy as np
    from convscope.frames import Frame
    from convscope.store import RunStore
    w = RunStore(sys.argv[1]).create_run("victim", retention={"gradient_health": 8})
    step = 0
    while True:
        step += 1
        w.write(Frame(run=w.run_id, step=step, kind="scalars", payload={
            "name": "loss", "steps": np.array([step]), "values": np.array([float(step)]), "wall_times": np.array([0.0])}))
        w.write(Frame(run=w.run_id, step=step, kind="gradient_health", layer="conv1", payload={
            "status": "stalled" if step % 7 == 0 else "healthy", "grad_norm": 1.0, "update_ratio": 0.0,
            "zero_fraction": 0.0, "dead_fraction": 0.0, "nonfinite": 0}))
        if step % 100 == 0:
            w.write(Frame(run=w.run_id, step=step, kind="pruning", layer="conv1", payload={
                "removed": [0], "kept": [], "before": 1000 - step // 100, "after": 999 - step // 100, "reason": "",
                "params_before": 0, "params_after": 0}))
        if step % 50 == 0:
            w.flush()
            print(step, flush=True)
    """
)


def test_a_writer_killed_mid_run_leaves_the_summary_of_its_committed_frames(tmp_path: Path) -> None:
    from convscope.store._summary import summary_from_frames

    proc = subprocess.Popen([sys.executable, "-c", KILLED, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        committed = 0
        while committed < 1000:
            committed = int(proc.stdout.readline())
        os.kill(proc.pid, signal.SIGKILL)  # mid-write: it never stops on its own
        proc.wait(timeout=10)
    finally:
        proc.kill()
        proc.stdout.close()
    with RunStore(tmp_path).open_run("victim") as r:
        assert r.status() == "crashed"
        last = r.steps(kind="scalars")[-1]
        assert last >= committed and last % 50 == 0  # whole flushes only
        assert r.summary() == {
            "scalars": {"loss": {"value": float(last), "step": last}},
            "health": {"conv1": {"status": "stalled" if last % 7 == 0 else "healthy", "step": last, "flagged": last // 7, "checks": last}},
            "filters": {"conv1": {"before": 999, "after": 999 - last // 100, "prunings": last // 100, "first_step": 100, "step": last // 100 * 100}},
        }
        # (its frames say the same where retention left them whole)
        assert summary_from_frames(r._query).to_json()["scalars"] == r.summary()["scalars"]

"""The command line: help everywhere, the summary main job, clear errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from convscope.cli import main


@pytest.mark.parametrize("argv", [["--help"], ["summary", "--help"], ["zoo", "--help"], ["zoo", "train", "--help"], ["data", "--help"], ["runs", "--help"]])
def test_help_everywhere(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "usage: convscope" in out


def test_summary_prints_structure_and_prediction(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["summary", "lenet5-simplified"]) == 0
    out = capsys.readouterr().out
    for text in ("conv1", "16x26x26", "fc1", "420,042", "prediction for the first sample of bundled 'mnist-5k'"):
        assert text in out
    # The bundled digit is a 0 and the trained model says so first.
    first = [line for line in out.splitlines() if "%" in line][0]
    assert first.split()[0] == "0"


def test_summary_json_is_the_graph(capsys: pytest.CaptureFixture[str]) -> None:
    from convscope.models import ModelGraph

    assert main(["summary", "lenet5", "--untrained", "--json"]) == 0
    g = ModelGraph.from_json(capsys.readouterr().out)
    assert g.layer("conv1").attributes["filters"] == 6


def test_errors_exit_2_with_a_message(capsys: pytest.CaptureFixture[str], tmp_path) -> None:
    assert main(["summary", "lenet7"]) == 2
    assert "zoo models are" in capsys.readouterr().err
    bad = tmp_path / "m.xyz"
    bad.write_bytes(b"junk")
    assert main(["summary", str(bad)]) == 2
    assert "unknown model file extension" in capsys.readouterr().err


def test_zoo_and_data_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["zoo"]) == 0
    assert "lenet5-simplified" in capsys.readouterr().out
    assert main(["data"]) == 0
    assert "mnist-5k" in capsys.readouterr().out


def test_console_script_entry_point() -> None:
    proc = subprocess.run([sys.executable, "-m", "convscope.cli", "zoo"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "vgg16" in proc.stdout


def test_demo_trains_prunes_and_writes_a_run(tmp_path, capsys) -> None:
    from convscope.cli import main
    from convscope.store import RunStore

    assert main(["demo", "--steps", "120", "--every", "10", "--logdir", str(tmp_path), "--no-serve"]) == 0
    out = capsys.readouterr().out
    assert "test accuracy" in out and "convscope serve --logdir" in out
    runs = RunStore(tmp_path).list_runs()
    assert len(runs) == 1 and runs[0]["status"] == "finished" and runs[0]["last_step"] == 120
    kinds = RunStore(tmp_path).open_run(runs[0]["id"]).kinds()
    for kind in ("weight_grid", "trajectory", "distribution", "feature_maps", "correlation", "groups", "gradient_health", "scalars"):
        assert kinds.get(kind, 0) > 0, kind



def test_the_demo_without_pruning_is_a_run_of_its_own_name_to_compare_with(tmp_path, capsys) -> None:
    # before: both were "lenet5-simplified-demo" (the second "-2"), told apart on the compare
    # page only by which was made first
    from convscope.cli import main
    from convscope.store import RunStore

    for flags in ([], ["--no-prune"]):
        assert main(["demo", "--steps", "60", "--every", "10", "--logdir", str(tmp_path), "--no-serve", *flags]) == 0
    assert "pruned nothing" in capsys.readouterr().out
    store = RunStore(tmp_path)
    assert store.run_ids() == ["lenet5-simplified-demo", "lenet5-simplified-demo-no-prune"]
    with store.open_run("lenet5-simplified-demo-no-prune") as run:
        assert run.meta()["config"]["prune"] is False and run.kinds().get("pruning", 0) == 0

def test_the_demos_probe_spans_the_classes() -> None:
    """The probe the demo's activation views see is digits of every class, not the first 16 of
    a set sorted by class (all zeros)."""
    from convscope.data import load_dataset
    from convscope.insitu.demo import probe_indices

    test = load_dataset("mnist-5k", split="test")
    assert test.labels[:16].unique().numel() == 1  # (why it matters: the set is sorted)
    picked = probe_indices(len(test))
    assert len(picked) == 16 and test.labels[picked].unique().numel() >= 9


def test_serve_help_mentions_the_token() -> None:
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "convscope.cli", "serve", "--help"], capture_output=True, text=True, check=True).stdout
    assert "--token" in out and "127.0.0.1" in out


def test_runs_lists_each_run_with_its_status_newest_first(tmp_path, capsys, monkeypatch) -> None:
    import json
    import time

    from convscope.frames import Frame
    from convscope.store import RunStore

    logdir = tmp_path / "logs"
    assert main(["runs", "--logdir", str(logdir)]) == 2  # no such directory: said, not an empty table
    assert "does not exist" in " ".join(capsys.readouterr().err.split())  # (rich wraps at the terminal's width)
    store = RunStore(logdir)
    done = store.create_run("a-finished-run-with-a-rather-long-name", model="SimplifiedLeNet5")
    for step in (10, 20, 30):
        done.write(Frame(run=done.run_id, step=step, kind="scalar", payload={"name": "loss", "value": 1.0 / step}))
    done.close()
    time.sleep(0.01)
    live = store.create_run("still-training", stale_after=0.2)  # a remote writer whose heartbeats stop: crashed
    live.write(Frame(run=live.run_id, step=5, kind="scalar", payload={"name": "loss", "value": 0.5}))
    live.flush()
    time.sleep(0.3)
    assert main(["runs", "--logdir", str(logdir), "--json"]) == 0
    runs = json.loads(capsys.readouterr().out)
    assert [(r["id"], r["status"], r["first_step"], r["last_step"], r["frames"]) for r in runs] == [
        ("still-training", "crashed", 5, 5, 1),
        ("a-finished-run-with-a-rather-long-name", "finished", 10, 30, 3),
    ]
    monkeypatch.setenv("COLUMNS", "80")  # a narrow terminal still shows every id whole
    assert main(["runs", "--logdir", str(logdir)]) == 0
    out = capsys.readouterr().out
    lines = [line.split() for line in out.splitlines() if "-" in line and "ago" in line]
    assert [line[:4] for line in lines] == [["still-training", "crashed", "5-5", "1"], ["a-finished-run-with-a-rather-long-name", "finished", "10-30", "3"]]
    live.close()


def test_runs_says_what_each_run_lost_and_apart_what_its_budget_deferred(tmp_path, capsys, monkeypatch) -> None:
    # (a run's dropped frames were in the run file, but `convscope runs` showed no sign of them)
    import json

    from convscope.frames import Frame
    from convscope.store import RunStore

    def listed() -> tuple[list[str], dict[str, str], str]:
        """The table's column names, its lines by run id, and all it said."""
        assert main(["runs", "--logdir", str(tmp_path)]) == 0
        out = capsys.readouterr().out
        [head] = [line for line in out.splitlines() if line.split()[:2] == ["run", "status"]]
        lines = {line.split()[0]: line for line in out.splitlines() if line.split() and line.split()[0] in ("clean", "lossy", "busy-cpu")}
        return head.split(), lines | {"": head}, " ".join(out.split())

    monkeypatch.setenv("COLUMNS", "150")
    store = RunStore(tmp_path)
    with store.create_run("clean") as w:
        w.write(Frame(run=w.run_id, step=1, kind="scalar", payload={"name": "loss", "value": 1.0}))
    columns, _lines, said = listed()
    assert columns == ["run", "status", "steps", "frames", "updated", "model"]  # nothing dropped: the table as before
    assert "lost:" not in said and "deferred:" not in said

    def dropped(w, step: int, count: int, sink: str) -> None:  # (each holds its cause's running total, as the monitor writes)
        w.write(Frame(run=w.run_id, step=step, kind="dropped", payload={"count": count, "sink": sink}))

    with store.create_run("lossy") as w:
        for step, count, sink in ((5, 2, "queue"), (6, 1, "budget"), (9, 1500, "queue"), (9, 3, "http"), (12, 4, "budget"), (13, 1, "store")):
            dropped(w, step, count, sink)
    with store.create_run("busy-cpu") as w:
        dropped(w, 3, 7, "budget")
    assert main(["runs", "--logdir", str(tmp_path), "--json"]) == 0
    assert {r["id"]: r["dropped"] for r in json.loads(capsys.readouterr().out)} == {
        "busy-cpu": {"budget": 7}, "lossy": {"budget": 4, "http": 3, "queue": 1500, "store": 1}, "clean": {}}
    columns, lines, said = listed()
    assert columns == ["run", "status", "steps", "frames", "lost", "deferred", "updated", "model"]
    lost, deferred, updated = (lines[""].index(col) for col in ("lost", "deferred", "updated"))  # (both left-justified)
    cells = {run: (line.split()[1:4], line[lost:deferred].strip(), line[deferred:updated].strip()) for run, line in lines.items() if run}
    assert cells == {
        "busy-cpu": (["finished", "3-3", "1"], "", "7"),  # deferred only: nothing said lost
        "lossy": (["finished", "5-13", "6"], "http 3, queue 1,500, store 1", "4"),
        "clean": (["finished", "1-1", "1"], "", ""),
    }
    assert "lost: frames dropped by the monitor's full queue or a sink" in said
    assert "deferred: recording steps the overhead budget skipped on purpose" in said


def test_runs_says_which_files_of_the_logdir_are_not_readable_runs(tmp_path, capsys) -> None:
    # (a broken or foreign .convscope.db was left out silently: "no runs in DIR")
    import json
    import sqlite3

    from convscope.store import RunStore

    RunStore(tmp_path).create_run("good").close()
    (tmp_path / "empty.convscope.db").write_bytes(b"")
    (tmp_path / "noise.convscope.db").write_bytes(bytes(range(256)) * 20)
    with sqlite3.connect(tmp_path / "other.convscope.db") as db:
        db.execute("CREATE TABLE foo (a)")
    assert main(["runs", "--logdir", str(tmp_path), "--json"]) == 0
    captured = capsys.readouterr()
    assert [r["id"] for r in json.loads(captured.out)] == ["good"]  # stdout stays one list
    err = " ".join(captured.err.split())
    assert "left out 3 files" in err and "empty.convscope.db, noise.convscope.db, other.convscope.db" in err
    assert main(["export", str(tmp_path / "noise.convscope.db"), "--out", str(tmp_path / "x")]) == 2
    assert "not a readable convscope run" in " ".join(capsys.readouterr().err.split())


def test_a_missing_run_is_said_with_the_closest_ids_before_any_progress(tmp_path, capsys) -> None:
    from convscope.errors import NotFoundError
    from convscope.store import RunStore

    store = RunStore(tmp_path)
    with pytest.raises(NotFoundError, match="holds no runs"):
        store.open_run("lenet")
    for name in ("lenet5-demo", "vgg-block", "resnet"):
        store.create_run(name).close()
    with pytest.raises(NotFoundError, match="did you mean 'lenet5-demo'"):
        store.open_run("lenet5-dmeo")
    with pytest.raises(NotFoundError, match="it holds lenet5-demo, resnet, vgg-block"):
        store.open_run("zzz")
    assert main(["export", "lenet5-dmeo", "--logdir", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "did you mean 'lenet5-demo'" in err and "exporting" not in err
    assert not (tmp_path / "out").exists()

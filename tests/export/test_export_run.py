"""``export_run`` and ``convscope export`` on stored runs; the writers as live sinks of ``watch``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from samples import every_kind, frame

from convscope.cli import main
from convscope.errors import DataError, LayerNotFoundError
from convscope.export import export_run
from convscope.export._cli import parse_steps
from convscope.frames import KINDS, Frame
from convscope.sinks import create_sink
from convscope.store import RunStore

pytest.importorskip("vtkmodules.vtkIOXML", reason="pip install 'convscope[vtk]'")
from convscope.paraview._vtk import read_vtk  # noqa: E402


@pytest.fixture
def stored(tmp_path):
    logdir = tmp_path / "runs"
    with RunStore(logdir).create_run("r") as w:
        for s in range(5):
            for f in every_kind(s):
                w.write(f)
    return logdir


def test_export_run_writes_csv_and_vtk_of_the_stored_frames(stored, tmp_path) -> None:
    seen = []
    result = export_run(stored, "r", out=tmp_path / "x", progress=lambda done, total: seen.append((done, total)))
    assert result.frames == 5 * len(KINDS) and seen[-1] == (5 * len(KINDS),) * 2
    assert set(result.folders) == {"csv", "vtk"}
    with RunStore(stored).open_run("r") as reader:
        grid = reader.frames(kind="weight_grid")[-1]
    d = read_vtk(tmp_path / "x" / "vtk" / "weights-conv1" / "weights-conv1_00000004.vtp")
    assert np.array_equal(d["cell_data"]["value"][::6], grid.payload["weights"].ravel())
    t = pd.read_csv(tmp_path / "x" / "csv" / "weight_grid-conv1.csv")
    assert np.array_equal(t[t.step == 4]["value"].to_numpy().astype(np.float32), grid.payload["weights"].ravel())


def test_one_format_kind_or_layer_alone_is_one_and_an_unknown_kind_is_said(stored, tmp_path, capsys) -> None:
    # (a str was read as one-letter names: formats "c", "s", "v", or kinds that export nothing)
    result = export_run(stored, "r", out=tmp_path / "one", formats="csv", kinds="weight_grid", layers="conv1")
    assert set(result.folders) == {"csv"} and result.frames == 5
    assert [p.name for p in (tmp_path / "one" / "csv").iterdir()] == ["weight_grid-conv1.csv"]
    with pytest.raises(DataError, match=r"unknown frame kinds \['weights'\]; the kinds are .*weight_grid"):
        export_run(stored, "r", out=tmp_path / "none", kinds=["weights"])
    assert not (tmp_path / "none").exists()  # said before anything is read or written
    assert main(["export", "r", "--logdir", str(stored), "--out", str(tmp_path / "cli"), "--kind", "weights", "--quiet"]) != 0
    assert "unknown frame kinds ['weights']" in capsys.readouterr().err


def test_cli_export_with_filters(stored, tmp_path, capsys) -> None:
    out = tmp_path / "cli"
    rc = main(["export", "r", "--logdir", str(stored), "--out", str(out), "--format", "vtk", "--format", "csv",
               "--kind", "weight_grid", "--kind", "scalar", "--steps", "1:3", "--quiet"])
    assert rc == 0
    # weight grids, scalars and batches of scalars of steps 1 to 3, and the batch after them
    assert "exported 10 frames of run r" in capsys.readouterr().out
    assert sorted(p.name for p in (out / "csv").iterdir()) == ["scalar.csv", "weight_grid-conv1.csv"]
    scalars = pd.read_csv(out / "csv" / "scalar.csv")
    assert sorted(zip(scalars["name"], scalars["step"], strict=True)) == [("acc", 1), ("acc", 2), ("acc", 3), ("loss", 1), ("loss", 2), ("loss", 3)]
    assert [p.name for p in (out / "vtk").glob("*.pvd")] == ["weights-conv1.pvd"]


def test_a_batch_of_logged_values_is_exported_within_the_steps_asked_for(tmp_path) -> None:
    logdir = tmp_path / "runs"
    with RunStore(logdir).create_run("b") as w:
        for last in (3, 6, 9):  # batches of three values, each stored at its last step
            steps = np.arange(last - 2, last + 1)
            w.write(Frame(run="b", step=last, kind="scalars", payload={"name": "loss", "steps": steps, "values": steps / 10,
                                                                       "wall_times": 1.7e9 + steps}))
    export_run(logdir, "b", out=tmp_path / "o", formats=["csv"], kinds=["scalar"], start=2, end=7)
    t = pd.read_csv(tmp_path / "o" / "csv" / "scalar.csv")
    assert list(t["step"]) == [2, 3, 4, 5, 6, 7]
    assert np.allclose(t["value"], t["step"] / 10) and np.array_equal(t["wall_time"], 1.7e9 + t["step"])


def test_cli_export_by_file_path_and_errors(stored, tmp_path, capsys) -> None:
    db = next(stored.glob("r.*"))
    assert main(["export", str(db), "--out", str(tmp_path / "o"), "--format", "csv", "--quiet"]) == 0
    assert (tmp_path / "o" / "csv" / "scalar.csv").is_file()
    assert main(["export", "nope", "--logdir", str(stored), "--out", str(tmp_path / "n"), "--quiet"]) == 2
    assert "nope" in capsys.readouterr().err
    with pytest.raises(DataError, match="100:500"):
        parse_steps("5-9")
    with pytest.raises(DataError, match="after the last"):
        parse_steps("9:5")
    assert parse_steps(":7") == (None, 7)
    with pytest.raises(DataError, match="unknown export format 'xls'"):
        export_run(stored, "r", out=tmp_path / "e", formats=["xls"])


def test_a_selection_that_holds_no_frame_is_said_not_exported_as_nothing(stored, tmp_path, capsys) -> None:
    # (it exported 0 frames, or only the run-level values of a misspelt layer, with exit status 0,
    # and listed folders it never made)
    out = tmp_path / "o"
    assert main(["export", "r", "--logdir", str(stored), "--out", str(out), "--steps", "100:200", "--quiet"]) == 2
    err = " ".join(capsys.readouterr().err.split())  # (rich wraps long lines)
    assert "no frames in steps 100:200 in run 'r'" in err and "steps 0 to 4" in err and "Traceback" not in err
    assert main(["export", "r", "--logdir", str(stored), "--out", str(out), "--layer", "conv9", "--quiet"]) == 2
    assert "layer 'conv9' not found in run 'r'; it has conv1" in " ".join(capsys.readouterr().err.split())
    assert not out.exists()
    with pytest.raises(LayerNotFoundError, match="'conv2' not found"):
        export_run(stored, "r", out=out, layers=["conv1", "conv2"])
    with pytest.raises(DataError, match="no frames of kind histogram of layer conv1 in steps 7:"):
        export_run(stored, "r", out=out, kinds="histogram", layers="conv1", start=7)
    logdir = tmp_path / "empty"
    RunStore(logdir).create_run("e").close()
    with pytest.raises(DataError, match="run 'e' has no frames yet"):
        export_run(logdir, "e", out=out)
    # a layer filter reads that layer's frames and the run-level ones, and counts only those
    assert export_run(stored, "r", out=out, formats="csv", layers="conv1").frames == 5 * len(KINDS)


def test_an_out_that_is_a_file_is_a_one_line_error(stored, tmp_path, capsys) -> None:
    (tmp_path / "f").write_text("not a folder")
    for out in (tmp_path / "f", tmp_path / "f" / "sub"):
        assert main(["export", "r", "--logdir", str(stored), "--out", str(out), "--quiet"]) == 2
        err = " ".join(capsys.readouterr().err.split())  # (rich wraps long lines)
        assert err.startswith("error: cannot write the csv export to") and "Not a directory" in err
    assert main(["export", "r", "--logdir", str(stored), "--out", str(tmp_path / "x"), "--format", "csv",
                 "--tensorboard-dir", str(tmp_path / "f"), "--format", "tensorboard", "--quiet"]) == 2
    assert "cannot write the tensorboard export" in capsys.readouterr().err


def test_the_progress_bar_shows_the_frames_and_never_comes_before_an_error(stored, tmp_path, capsys) -> None:
    assert main(["export", "r", "--logdir", str(stored), "--out", str(tmp_path / "o"), "--kind", "weights"]) == 2
    assert capsys.readouterr().err.startswith("error: unknown frame kinds ['weights']")
    assert main(["export", "r", "--logdir", str(stored), "--out", str(tmp_path / "o"), "--layer", "conv9"]) == 2
    assert capsys.readouterr().err.startswith("error: layer 'conv9' not found")
    assert main(["export", "r", "--logdir", str(stored), "--out", str(tmp_path / "o"), "--format", "csv"]) == 0
    err = capsys.readouterr().err
    assert "exporting r" in err and f"{5 * len(KINDS)}/{5 * len(KINDS)} frames" in err


def test_the_writers_follow_a_real_training_run(tmp_path, train_watched) -> None:
    net = train_watched([create_sink("csv", out=tmp_path / "csv"), create_sink("vtk", out=tmp_path / "vtk")])
    final = net.conv1.weight.detach().numpy()
    grids = pd.read_csv(tmp_path / "csv" / "weight_grid-conv1.csv")
    last = grids[grids.step == grids.step.max()]
    assert len(last) == final.size
    vtk_steps = sorted(int(p.stem.rsplit("_", 1)[1]) for p in (tmp_path / "vtk" / "weights-conv1").glob("*.vtp"))
    assert vtk_steps == sorted(set(grids.step))
    d = read_vtk(tmp_path / "vtk" / "weights-conv1" / f"weights-conv1_{vtk_steps[-1]:08d}.vtp")
    assert np.array_equal(d["cell_data"]["value"][::6], last["value"].to_numpy().astype(np.float32))
    if vtk_steps[-1] == 4:  # recorded after the last optimizer step: the model's weights now
        assert np.array_equal(d["cell_data"]["value"][::6], final.ravel())


def test_a_big_run_is_read_a_batch_at_a_time_and_written_as_it_is_read(tmp_path, monkeypatch) -> None:
    # (every selected frame was read into memory before the first was written: memory grew with
    # the run, and the bar stood at 0 while it read)
    import tracemalloc

    import convscope.export._run as run_module

    logdir = tmp_path / "runs"
    maps = np.random.default_rng(0).integers(0, 255, (50, 128, 128), dtype=np.uint8)  # 800 KiB a frame
    with RunStore(logdir).create_run("big") as w:
        for step in range(40):
            w.write(Frame(run="big", step=step, kind="feature_maps", layer="conv1", payload={
                "images": maps, "vmin": 0.0, "vmax": 1.0, "normalisation": "per_map", "scale": 1.0, "sample": step}))
    stored = 40 * maps.nbytes
    monkeypatch.setattr(run_module, "READ_BYTES", 1 << 20, raising=False)
    folder = tmp_path / "o" / "vtk" / "feature_maps-conv1"
    seen = []

    def progress(done: int, total: int) -> None:
        # each frame counted once it is written: its file is there
        seen.append((done, total, len(list(folder.glob("*.vti"))) if folder.is_dir() else 0))

    tracemalloc.start()
    try:
        result = export_run(logdir, "big", out=tmp_path / "o", formats="vtk", progress=progress)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result.frames == 40 and seen == [(done, 40, done) for done in range(41)]
    assert peak < stored / 4, f"the export held {peak / 2**20:.0f} MiB of a {stored / 2**20:.0f} MiB run at once"


def test_re_exporting_into_the_same_out_leaves_no_stale_step_files(stored, tmp_path) -> None:
    # (the .pvd listed the new steps, but the step files of the earlier export stayed beside them)
    out = tmp_path / "o"
    export_run(stored, "r", out=out, formats="vtk")
    series = out / "vtk" / "weights-conv1"
    assert len(list(series.glob("*.vtp"))) == 5
    (series / "my-notes.txt").write_text("mine")
    (series / "weights-conv1_mine.vtp").write_text("mine too")
    export_run(stored, "r", out=out, formats="vtk", start=3)
    assert sorted(p.name for p in series.iterdir()) == [
        "my-notes.txt", "weights-conv1_00000003.vtp", "weights-conv1_00000004.vtp", "weights-conv1_mine.vtp"]
    assert [Path(line.split('file="')[1].split('"')[0]).name for line in (out / "vtk" / "weights-conv1.pvd").read_text().splitlines()
            if "file=" in line] == ["weights-conv1_00000003.vtp", "weights-conv1_00000004.vtp"]
    # series the new export does not write are left whole, .pvd and files alike
    export_run(stored, "r", out=out, formats="vtk", kinds="weight_grid", end=0)
    assert len(list((out / "vtk" / "correlation-conv1").glob("*.vti"))) == 2
    assert [p.name for p in series.glob("*_0*.vtp")] == ["weights-conv1_00000000.vtp"]
    # a live VTK sink (watch) never removes files
    from convscope.export import VtkWriter

    sink = VtkWriter(out / "vtk")
    sink.write(next(f for f in every_kind(9) if f.kind == "weight_grid"))
    sink.close()
    assert len(list(series.glob("*_0*.vtp"))) == 2


def test_exporting_a_run_still_being_written_says_it_is_a_partial_snapshot(tmp_path, capsys) -> None:
    logdir = tmp_path / "runs"
    w = RunStore(logdir).create_run("live")
    try:
        for s in range(3):
            w.write_many(every_kind(s, run="live"))
        w.flush()
        late = []

        def progress(done: int, total: int) -> None:
            if done == 1:  # the run goes on while it is exported: the export is what was stored when it began
                w.write_many(every_kind(3, run="live"))
                late.append(w.flush())

        result = export_run(logdir, "live", out=tmp_path / "o", formats="csv", progress=progress)
        assert late and result.partial and result.frames == 3 * len(KINDS) and result.last_step == 2
        assert main(["export", "live", "--logdir", str(logdir), "--out", str(tmp_path / "c"), "--format", "csv", "--quiet"]) == 0
        said = " ".join(capsys.readouterr().out.split())
        assert f"exported {4 * len(KINDS)} frames of run live:" in said
        assert "run live is still being written: this is a partial snapshot of what it had stored (up to step 3)" in said
    finally:
        w.close()
    result = export_run(logdir, "live", out=tmp_path / "d", formats="csv")
    assert not result.partial and result.frames == 4 * len(KINDS)
    assert main(["export", "live", "--logdir", str(logdir), "--out", str(tmp_path / "e"), "--format", "csv", "--quiet"]) == 0
    assert "partial" not in capsys.readouterr().out


_KILLED = """
import sys
from convscope.export import VtkWriter, export_run
from samples import frame
import convscope.export._vtk as vtk

vtk.PVD_SECONDS = 0.05  # (the test cannot wait seconds for each rewrite)
logdir, out, how = sys.argv[1:]
if how == "export":
    export_run(logdir, "big", out=out, formats="vtk")
else:  # a live sink, written as a run goes on
    sink = VtkWriter(out + "/vtk")
    for step in range(10**6):
        for kind in ("feature_maps", "weight_grid"):
            sink.write(frame(kind, step, run="big"))
"""


@pytest.mark.slow
@pytest.mark.parametrize("how", ["export", "live"])
def test_a_vtk_export_killed_midway_leaves_collections_of_the_whole_files_it_wrote(tmp_path, how) -> None:
    # (an export wrote each .pvd once, at its end: killed outright, it left step files and no .pvd)
    logdir, out, steps = tmp_path / "runs", tmp_path / "o", 2000
    if how == "export":
        with RunStore(logdir).create_run("big", retention={"feature_maps": steps}) as w:
            for step in range(steps):
                w.write_many([frame(kind, step, run="big") for kind in ("feature_maps", "weight_grid")])
    folder = out / "vtk" / "feature_maps-conv1"
    samples = str(Path(__file__).resolve().parents[1] / "store")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [samples, os.environ.get("PYTHONPATH")]))}
    child = subprocess.Popen([sys.executable, "-c", _KILLED, str(logdir), str(out), how], env=env)
    try:
        deadline = time.monotonic() + 120
        while not folder.is_dir() or len(list(folder.iterdir())) < steps // 4:
            assert child.poll() is None, "the export ended before it could be killed midway: give the run more steps"
            assert time.monotonic() < deadline, "the export wrote too little in two minutes"
            time.sleep(0.01)
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == -signal.SIGKILL
    assert len(list(folder.glob("*.vti"))) < steps  # (killed midway)
    for series in ("feature_maps-conv1", "weights-conv1"):
        listed = [(float(d.get("timestep")), d.get("file")) for d in ET.parse(out / "vtk" / f"{series}.pvd").getroot().iter("DataSet")]
        assert len(listed) > 1, "the .pvd lists only the first step: it was not rewritten as the export went"
        assert [t for t, _ in listed] == [float(s) for s in range(len(listed))]  # the steps written so far, in order
        for step, file in listed:  # each there and whole: VTK's own reader reads it
            assert read_vtk(out / "vtk" / file)["field_data"]["step"].tolist() == [step]


@pytest.mark.parametrize("kind", ["scalars", "scalar"])
def test_logged_values_are_exported_by_either_kind_name(tmp_path, kind) -> None:
    # (the monitor stores log()'s values in batches, kind "scalars"; every writer is handed them
    # one by one, kind "scalar": a filter of "scalars" alone dropped all of them)
    logdir = tmp_path / "runs"
    with RunStore(logdir).create_run("b") as w:
        steps = np.arange(1, 4)
        w.write(Frame(run="b", step=3, kind="scalars", payload={"name": "loss", "steps": steps, "values": steps / 10}))
    result = export_run(logdir, "b", out=tmp_path / "o", formats=["csv", "tensorboard"], kinds=[kind])
    assert result.frames == 1  # (the stored frames: one batch)
    t = pd.read_csv(tmp_path / "o" / "csv" / "scalar.csv")
    assert list(t["step"]) == [1, 2, 3] and np.allclose(t["value"], [0.1, 0.2, 0.3])
    assert len(list((tmp_path / "o" / "tensorboard").iterdir())) == 1

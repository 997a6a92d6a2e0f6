"""Commands and environment for ParaView's Python; the torch-free import; the exports script's picture."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from convscope.cli import main
from convscope.errors import MissingDependencyError
from convscope.paraview import (
    bridge_command,
    find_paraview,
    find_pvpython,
    open_exports_command,
    pvpython_env,
    script_path,
)


def test_bridge_command_always_passes_no_mpi() -> None:
    cmd = bridge_command(run="my run", url="http://127.0.0.1:9", live=22222, extracts="out", png=False,
                         layer="conv1", token="t", max_steps=3, pvpython="/opt/pv/bin/pvpython")
    assert cmd[:3] == ["/opt/pv/bin/pvpython", "--no-mpi", str(script_path("bridge"))]
    assert cmd[cmd.index("--run") + 1] == "my run" and cmd[cmd.index("--live") + 1] == "22222"
    assert {"--no-png", "--extracts", "--layer", "--token", "--max-steps"} <= set(cmd)
    shot = open_exports_command("vtk", screenshot="a.png", size=(800, 600), pvpython="pvpython")
    assert shot[1] == "--no-mpi" and shot[shot.index("--size") + 1] == "800x600"


def test_shipped_scripts_exist_and_the_pipeline_is_version_2() -> None:
    for name in ("bridge", "pipeline", "open_exports", "looks"):
        assert script_path(name).is_file()
    # without this first line Catalyst treats it as a legacy script and fails to show anything
    assert script_path("pipeline").read_text().splitlines()[0] == "# script-version: 2"


def test_missing_pvpython_says_what_to_install(monkeypatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("CONVSCOPE_PVPYTHON", raising=False)
    with pytest.raises(MissingDependencyError, match="apt-get install paraview python3-paraview"):
        find_pvpython()
    with pytest.raises(MissingDependencyError, match="not an executable"):
        find_pvpython("/nonexistent/pvpython")
    with pytest.raises(MissingDependencyError, match=r"GUI \(paraview\) was not found on PATH.*or pass --screenshot PNG"):
        find_paraview()


def test_pvpython_env_exposes_only_this_convscope(tmp_path) -> None:
    env = pvpython_env({"PYTHONPATH": "/elsewhere"})
    first = Path(env["PYTHONPATH"].split(os.pathsep)[0])
    assert [p.name for p in first.iterdir()] == ["convscope"]
    assert (first / "convscope" / "frames").resolve() == Path(__file__).resolve().parents[2] / "src" / "convscope" / "frames"
    assert env["PYTHONPATH"].endswith("/elsewhere")


def test_cli_paraview_needs_a_run_and_a_destination(capsys) -> None:
    assert main(["paraview", "--live", "22222"]) == 2
    assert "--run RUN" in capsys.readouterr().err
    assert main(["paraview", "--run", "r"]) == 2
    assert "--live PORT" in capsys.readouterr().err


def _exports(folder: Path, *layers: str) -> Path:
    """A `convscope export --format vtk` folder with a weight grid of each layer (numpy only)."""
    from samples import frame

    from convscope.export import VtkWriter

    w = VtkWriter(folder)
    for layer in layers:
        w.write(frame("weight_grid", 1, layer=layer))
    w.close()
    return folder


def _err(capsys) -> str:
    return " ".join(capsys.readouterr().err.split())  # (rich wraps long lines)


def test_cli_paraview_open_says_what_is_wrong_before_paraview_starts(tmp_path, capsys) -> None:
    # (ParaView started for seconds and said "no weights-*.pvd in DIR" whatever was wrong; a
    # screenshot it could not write was reported "saved" with exit status 0)
    vtk = _exports(tmp_path / "exports" / "vtk", "conv1", "conv2")
    (tmp_path / "file").write_text("x")
    for folder, said in ((tmp_path / "nope", "does not exist"), (tmp_path / "file", "is not a folder"),
                         (tmp_path, "no weight grids (weights-*.pvd)"), (tmp_path / "exports", f"did you mean {vtk}?")):
        assert main(["paraview", "--open", str(folder), "--pvpython", "/nonexistent"]) == 2
        assert said in _err(capsys)
    assert main(["paraview", "--open", str(vtk), "--layer", "conv9", "--pvpython", "/nonexistent"]) == 2
    err = _err(capsys)
    assert "layer 'conv9' has no weight grid in" in err and "it has conv1, conv2 — pass one of these to --layer" in err
    assert main(["paraview", "--open", str(vtk), "--screenshot", str(tmp_path / "nodir" / "v.png"), "--pvpython", "/nonexistent"]) == 2
    assert "cannot save the screenshot" in _err(capsys)
    assert main(["paraview", "--run", "r", "--extracts", str(tmp_path / "x"), "--screenshot", "v.png"]) == 2
    assert "--screenshot goes with --open" in _err(capsys)


def test_cli_paraview_with_a_pvpython_that_is_not_one_is_a_one_line_error(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("DISPLAY", ":0")
    vtk = _exports(tmp_path / "vtk", "conv1")
    shot = ["--screenshot", str(tmp_path / "v.png")]
    for gui in (False, True):  # (--open starts the paraview beside the --pvpython given; --screenshot, pvpython)
        assert main(["paraview", "--open", str(vtk), *([] if gui else shot), "--pvpython", str(tmp_path / "nowhere" / "pvpython")]) == 2
        assert "is not an executable pvpython" in _err(capsys)
    fake = tmp_path / "pvpython"
    fake.write_text("not a program")
    fake.chmod(0o755)
    assert main(["paraview", "--open", str(vtk), *shot, "--pvpython", str(fake)]) == 2
    assert "could not be started (Exec format error)" in _err(capsys)
    # the GUI is the one beside that pvpython, not another ParaView's on PATH
    assert main(["paraview", "--open", str(vtk), "--pvpython", str(fake)]) == 2
    assert f"there is no ParaView GUI (paraview) beside {fake}; pass --screenshot PNG" in _err(capsys)
    assert main(["paraview", "--run", "r", "--extracts", "x", "--pvpython", str(fake)]) == 2
    assert "could not be started" in _err(capsys)


def test_cli_paraview_open_finds_a_layer_by_the_name_its_files_have(tmp_path, capsys) -> None:
    # layer names are made file-safe in the exports (block/conv 1 -> weights-block%2Fconv%201.pvd)
    vtk = _exports(tmp_path / "vtk", "block/conv 1")
    args = tmp_path / "args.txt"
    fake = tmp_path / "pvpython"
    fake.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {args}\n')
    fake.chmod(0o755)
    assert main(["paraview", "--open", str(vtk), "--layer", "block/conv 1", "--screenshot", str(tmp_path / "v.png"), "--pvpython", str(fake)]) == 0
    passed = args.read_text().splitlines()
    assert passed[passed.index("--layer") + 1] == "block%2Fconv%201" and (vtk / "weights-block%2Fconv%201.pvd").is_file()


@pytest.mark.paraview
@pytest.mark.slow
def test_open_exports_fails_when_the_screenshot_is_not_written(tmp_path, pvrun) -> None:
    vtk = _exports(tmp_path / "vtk", "conv1")
    shot = tmp_path / "nodir" / "views.png"  # (the command line of the script itself: no CLI check before it)
    proc = pvrun(*open_exports_command(vtk, screenshot=shot, size=(300, 200))[2:], xvfb=True, check=False)
    assert proc.returncode == 1 and "saved" not in proc.stdout
    assert f"could not save {shot}" in proc.stderr and not shot.exists()


def test_convscope_imports_without_torch() -> None:
    # ParaView's own Python has no torch: frames, store, export and the bridge's parts must import
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import convscope, convscope.frames, convscope.export, convscope.store, convscope.export._vtk\n"
        "from convscope.export._scenes import weight_grid_blocks\n"
        "assert 'torch' not in [m for m in sys.modules if sys.modules[m] is not None]\n"
        "try:\n    convscope.watch\nexcept convscope.errors.MissingDependencyError as e:\n    print('ok', e)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ok convscope.watch needs torch")


@pytest.mark.paraview
def test_convscope_imports_in_paraviews_python(tmp_path, pvrun) -> None:
    script = tmp_path / "probe.py"
    script.write_text(
        "import sys, convscope, convscope.frames, convscope.export\n"
        "from convscope.paraview import _vtk\n"
        "print(convscope.__file__, 'torch' in sys.modules, _vtk.vtk_version())\n"
    )
    out = pvrun(str(script)).stdout.split()
    assert out[0].endswith("convscope/__init__.py") and out[1] == "False" and out[2].startswith("9.")


@pytest.mark.paraview
@pytest.mark.slow
def test_open_exports_draws_the_views_with_the_papers_colours(tmp_path, pvrun) -> None:
    from samples import frame

    from convscope.export import VtkWriter
    from convscope.frames import Frame

    w = VtkWriter(tmp_path / "vtk")
    weights = np.zeros((8, 3, 3, 3), np.float32)
    weights[:4] = 0.8  # four filters of positive weights (red), four negative (blue)
    weights[4:] = -0.8
    for s in (0, 5):
        w.write(Frame(run="r", step=s, kind="weight_grid", layer="conv1", payload={"weights": weights, "vmax": 0.8}))
        for kind in ("distribution", "feature_maps"):
            w.write(frame(kind, s))
        # a path of the usual shape: long along the first axis, short along the others
        t = np.linspace(0, 1, 6, dtype=np.float32)[:, None]
        path = t * np.array([0.35, 0.07, 0.01], np.float32) - np.array([0.25, 0.05, 0.0], np.float32)
        w.write(Frame(run="r", step=s, kind="trajectory", layer="conv1", payload={
            **frame("trajectory", s).payload, "pca_path": path, "path_steps": np.arange(6, dtype=np.int64) * 10}))
    w.close()
    shot = tmp_path / "views.png"
    proc = pvrun(*open_exports_command(tmp_path / "vtk", screenshot=shot, size=(900, 600))[2:], xvfb=True)
    assert "saved" in proc.stdout
    rgb = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert rgb.shape == (600, 900, 3)
    red = (rgb[..., 0] > 120) & (rgb[..., 2] < 90)
    blue = (rgb[..., 2] > 120) & (rgb[..., 0] < 90)
    assert red.sum() > 2000 and blue.sum() > 2000  # the two halves of the grid, each in its colour
    # red filters are on the left of the blue ones, as the grid is laid out
    assert np.nonzero(red)[1].mean() < np.nonzero(blue)[1].mean()
    # the trajectory's view (on the right) holds its path and its axes' labels whole: nothing
    # drawn at the picture's right edge (the camera fitted the path alone, cutting labels off)
    edge = rgb[:, -3:]
    assert (np.abs(edge - rgb[0, -1]).sum(axis=-1) < 30).all(), "the trajectory view is cut off at its right edge"


def _fake_paraview(folder: Path) -> tuple[Path, Path]:
    """A pvpython and a paraview side by side that write their arguments and environment to a file."""
    said = folder / "said.txt"
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("pvpython", "paraview"):
        fake = folder / name
        fake.write_text(f'#!/bin/sh\n{{ echo "{name}"; printf "%s\\n" "$@"; echo "exports=$CONVSCOPE_EXPORTS"; '
                        f'echo "layer=$CONVSCOPE_LAYER"; }} > {said}\n')
        fake.chmod(0o755)
    return folder / "pvpython", said


def test_cli_paraview_open_starts_the_paraview_gui_with_the_views(tmp_path, monkeypatch, capsys) -> None:
    # (it ran pvpython, which drew the views in a window and ended at once: nothing stayed open to
    # look at, and with Xvfb it ended with exit status 1 and a GLXBadContext error)
    vtk = _exports(tmp_path / "exports" / "vtk", "conv1", "block/conv 2")
    pvpython, said = _fake_paraview(tmp_path / "bin")
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.chdir(tmp_path)
    assert main(["paraview", "--open", "exports/vtk", "--layer", "block/conv 2", "--pvpython", str(pvpython)]) == 0
    lines = said.read_text().splitlines()
    assert lines[:3] == ["paraview", "--no-mpi", f"--script={script_path('open_exports')}"]
    assert f"exports={vtk}" in lines and "layer=block%2Fconv%202" in lines
    # a picture still comes from pvpython, with the folder and layer as arguments
    assert main(["paraview", "--open", "exports/vtk", "--screenshot", "v.png", "--pvpython", str(pvpython)]) == 0
    assert said.read_text().splitlines()[0] == "pvpython"


def test_cli_paraview_open_without_a_display_says_how_to_get_a_picture(tmp_path, monkeypatch, capsys) -> None:
    vtk = _exports(tmp_path / "vtk", "conv1")
    pvpython, said = _fake_paraview(tmp_path / "bin")
    for name in ("DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    assert main(["paraview", "--open", str(vtk), "--pvpython", str(pvpython)]) == 2
    err = _err(capsys)
    assert "no display (DISPLAY is not set)" in err and "xvfb-run -a convscope paraview --open DIR --screenshot views.png" in err
    assert not said.exists()  # (said before ParaView starts)


def test_ctrl_c_gives_paraview_time_to_stop_by_itself(tmp_path, monkeypatch) -> None:
    # (subprocess.call killed the bridge at once on Ctrl-C: it could not close its Catalyst
    # pipeline nor say what it had shown)
    import convscope.paraview._cli as cli

    seen: list[str] = []

    class Bridge:
        def __init__(self, cmd, **kwargs) -> None:
            self.waits = 0

        def wait(self, timeout=None) -> int:
            self.waits += 1
            seen.append(f"wait {timeout}")
            if self.waits == 1:
                raise KeyboardInterrupt  # (the Ctrl-C reached both processes)
            return 130

        def kill(self) -> None:
            seen.append("kill")

        def __enter__(self):
            return self

        def __exit__(self, *exc) -> None:
            pass

    monkeypatch.setattr(subprocess, "Popen", Bridge)
    assert main(["paraview", "--run", "r", "--extracts", str(tmp_path / "x"), "--no-png", "--pvpython", sys.executable]) == 130
    assert seen == ["wait None", f"wait {cli.STOP_SECONDS}"]


@pytest.mark.paraview
@pytest.mark.slow
def test_open_exports_in_the_gui_stays_open_and_lays_out_the_whole_run(tmp_path, pvrun, monkeypatch) -> None:
    import json

    from samples import frame

    from convscope.export import VtkWriter
    from convscope.frames import Frame

    w = VtkWriter(tmp_path / "vtk")
    rng = np.random.default_rng(0)
    for step, filters in ((0, 16), (5, 12)):  # a layer pruned from 16 filters (4 x 4 windows) to 12 (3 x 4)
        weights = rng.normal(0, 0.2, (filters, 1, 3, 3)).astype(np.float32)
        weights[0, 0, 0, 0] = 0.7
        w.write(Frame(run="r", step=step, kind="weight_grid", layer="conv1", payload={"weights": weights, "vmax": 0.7}))
        for kind in ("distribution", "feature_maps"):
            w.write(frame(kind, step))
    w.write(frame("weight_grid", 5, layer="a0"))  # (first by name: opened unless CONVSCOPE_LAYER says conv1)
    w.close()
    monkeypatch.setenv("CONVSCOPE_EXPORTS", str(tmp_path / "vtk"))
    monkeypatch.setenv("CONVSCOPE_LAYER", "conv1")
    pvrun(str(Path(__file__).parent / "pv_open_exports_gui.py"), str(tmp_path / "said.json"), xvfb=True)
    said = json.loads((tmp_path / "said.json").read_text())
    # (it called sys.exit(0), which in the GUI closes ParaView as soon as the views are drawn)
    assert said["exit"] is None and said["layer"] == "conv1"
    # the feature map sits under the grid at every step, the first's larger one included (it was
    # placed under the last step's grid, and covered the first steps' last row of filters)
    first, last = said["grid_first"], said["grid_last"]
    assert first[2] < last[2]
    assert said["maps_position"][1] < first[2]
    # its row 0 at the top: the file turns y over (row 0 at y = 0, the others below), so the display does not
    assert said["maps_bounds"][2:4] == [-7.0, 0.0] and said["maps_scale"][1] > 0
    # the distribution is as tall as the grid at its largest, to its right
    assert said["dist_position"][0] > first[1] and said["dist_position"][1] == pytest.approx(first[3])
    # the legend's ends read as its other labels do (they said "7.0e-01")
    assert said["range_label"] == "0.7"


def _pruned_run_with_correlations(folder: Path, *, trajectory: str = "pca", second: int = 9) -> None:
    """A layer pruned from 16 filters to 12 between steps 0 and 5, with every view of it: its
    correlation matrices (row and column 0 all -1, the others 0 but the diagonal's 1) and groups
    (filters 0-2: group 0, 3-4: group ``second``, 6-8: group 2, the others none). ``trajectory``:
    which path the folder holds (``dims`` alone, as an export of a run whose PCA is not there)."""
    import shutil

    from samples import frame

    from convscope.export import VtkWriter
    from convscope.frames import Frame

    w = VtkWriter(folder)
    for step, filters in ((0, 16), (5, 12)):
        weights = np.full((filters, 1, 3, 3), 0.5, np.float32)  # (all red: blue is the correlation's -1)
        w.write(Frame(run="r", step=step, kind="weight_grid", layer="conv1", payload={"weights": weights, "vmax": 0.5}))
        dist = frame("distribution", step)
        dist.payload["counts"][:] = 1  # (every bin its row's peak: the distribution is all yellow)
        maps = frame("feature_maps", step)
        maps.payload["images"][:] = 0
        maps.payload["images"][:, 0] = 128  # row 0 grey, the others black
        matrix = np.eye(filters, dtype=np.float32)
        matrix[0, 1:] = matrix[1:, 0] = -1.0
        labels = np.full(filters, -1, np.int32)
        labels[:3], labels[3:5], labels[6:9] = 0, second, 2
        for f in (dist, maps, frame("trajectory", step),
                  Frame(run="r", step=step, kind="correlation", layer="conv1", payload={"matrix": matrix, "dead": np.zeros(filters, bool)}),
                  Frame(run="r", step=step, kind="groups", layer="conv1",
                        payload={"labels": labels, "threshold": 0.9, "method": "union", "events": []})):
            w.write(f)
    w.close()
    if trajectory == "dims":
        shutil.rmtree(folder / "trajectory-pca-conv1")
        (folder / "trajectory-pca-conv1.pvd").unlink()


@pytest.mark.paraview
@pytest.mark.slow
def test_open_exports_shows_the_correlation_matrix_with_its_groups_clear_of_the_other_views(tmp_path, pvrun, monkeypatch) -> None:
    # (--open showed the weight grid, the distribution, the feature map and the trajectory, not
    # the correlation between the layer's filters that the export writes with its groups)
    import json

    from convscope.paraview.looks import DIVERGING

    _pruned_run_with_correlations(tmp_path / "vtk")
    monkeypatch.setenv("CONVSCOPE_EXPORTS", str(tmp_path / "vtk"))
    pvrun(str(Path(__file__).parent / "pv_open_exports_gui.py"), str(tmp_path / "said.json"), xvfb=True)
    said = json.loads((tmp_path / "said.json").read_text())
    # blue-white-red over -1..1 whatever the step, with its own legend below the weights'
    assert said["corr_colours"] == [-1.0, *DIVERGING[1:4], 0.0, *DIVERGING[5:8], 1.0, *DIVERGING[9:]]
    assert said["corr_legend"] == ["filter correlation", 1, "Lower Right Corner"] and said["weights_legend"] == "Upper Right Corner"

    def box(position, scale, bounds, half=0.0):  # where a display puts its data: [left, right, bottom, top]
        xs = sorted(position[0] + scale[0] * (b + d) for b, d in ((bounds[0], -half), (bounds[1], half)))
        ys = sorted(position[1] + scale[1] * (b + d) for b, d in ((bounds[2], -half), (bounds[3], half)))
        return [*xs, *ys]

    def apart(a, b):
        return a[1] <= b[0] or b[1] <= a[0] or a[3] <= b[2] or b[3] <= a[2]

    corr = {key: box(said["corr_position"], said["corr_scale"], said[key], 0.5) for key in ("corr_first", "corr_last")}
    assert said["corr_first"][:4] == [0, 15, -15, 0] and said["corr_last"][:4] == [0, 11, -11, 0]  # row 0 at the top
    grid = said["grid_first"]  # (the larger, as the first steps show it)
    maps = box(said["maps_position"], said["maps_scale"], said["maps_bounds"])
    dist = box(said["dist_position"], said["dist_scale"], said["dist_bounds"])
    for matrix in corr.values():  # the 16 x 16 matrix and the pruned 12 x 12 one
        assert apart(matrix, grid) and apart(matrix, maps) and apart(matrix, dist)
        assert matrix[3] < grid[2] and matrix[0] > maps[1]  # under the grid, right of the feature map
    assert corr["corr_first"][0] == corr["corr_last"][0] and corr["corr_first"][3] == corr["corr_last"][3]  # it shrinks to its top left
    # large enough to read: at its largest, half as wide as the grid (it was a third of the grid's
    # width, strips included), its right edge the distribution's
    assert corr["corr_first"][1] - corr["corr_first"][0] > 0.4 * (grid[1] - grid[0])
    assert corr["corr_first"][1] == pytest.approx(dist[1])
    # the groups as a strip along the matrix's top edge and one down its left edge, cell for cell
    (top_name, top), (left_name, left) = sorted(said["strips"].items())
    assert left_name.endswith("down") and left["orientation"] == [0.0, 0.0, -90.0] and top["orientation"] == [0.0, 0.0, 0.0]
    cell, thick = said["corr_scale"][0], top["thick"]
    assert top["scale"][0] == left["scale"][0] == cell and thick >= 1
    assert top["position"][0] == said["corr_position"][0] and left["position"][1] == said["corr_position"][1]
    assert corr["corr_first"][3] <= top["position"][1] - cell * thick / 2 and top["position"][1] + cell * thick / 2 < grid[2]
    assert left["position"][0] + cell * thick / 2 <= corr["corr_first"][0] and left["position"][0] - cell * thick / 2 > maps[1]
    # the groups' key (the filters' indices along the matrix, the groups' lines between the map and
    # the matrix) in the matrix's cells, under the grid and the distribution, right of the map
    key = said["key_display"]
    assert key["visible"] == 1 and key["position"] == said["corr_position"] and key["scale"] == [cell, cell, 1.0]
    shown = box(key["position"], key["scale"], key["bounds"])
    assert shown[3] < grid[2] and shown[0] > maps[1] and shown[1] <= dist[1] + 1e-9


def _entries(lines: list[str], swatches: list[int]) -> list[tuple[int, str]]:
    """The key's lines as its entries: each line with a swatch and the lines that go on from it."""
    out: list[tuple[int, str]] = []
    for line, swatch in zip(lines, swatches, strict=True):
        if swatch == -2 and line.startswith(" ") and out:
            out[-1] = (out[-1][0], f"{out[-1][1]} {line.strip()}")
        elif swatch != -2:
            out.append((swatch, line))
    return out


@pytest.mark.paraview
@pytest.mark.slow
def test_open_exports_says_which_colour_is_which_group_and_which_filters_it_holds(tmp_path, pvrun, monkeypatch) -> None:
    # (the strips coloured each group by its id modulo 8, so groups 0 and 8 had one colour, and
    # nothing said which colour was which group, which filters it held, nor what the grey was)
    import json

    from convscope.paraview.looks import GROUP_COLOURS

    _pruned_run_with_correlations(tmp_path / "vtk", second=8)
    monkeypatch.setenv("CONVSCOPE_EXPORTS", str(tmp_path / "vtk"))
    pvrun(str(Path(__file__).parent / "pv_open_exports_gui.py"), str(tmp_path / "said.json"), xvfb=True)
    said = json.loads((tmp_path / "said.json").read_text())
    # at the last step (12 filters): groups 0 (0-2), 8 (3-4) and 2 (6-8); 8 moves to the next free
    # colour, as group 0 (older: its id is smaller) has the colour of 8 modulo 8
    assert said["strip_colours"] == [0, 0, 0, 1, 1, -1, 2, 2, 2, -1, -1, -1]
    assert len(GROUP_COLOURS) == 8
    lines, swatches = said["key"], said["key_swatch"]
    assert " ".join(lines[: swatches.index(0)]).split() == ["filter", "groups", "(threshold", "0.9)"]
    # each group's swatch in its strip's colour, its id and its filters; then the grey of no group
    assert _entries(lines, swatches) == [(0, "group 0: filters 0-2"), (2, "group 2: filters 6-8"), (1, "group 8: filters 3, 4"),
                                         (-1, "no group: filters 5, 9-11")]
    # the filters' indices along the matrix: every one or every other, from 0
    assert said["ticks"][0] == 0 and said["ticks"] == list(range(0, 12, said["ticks"][1])) and said["ticks"][1] <= 2


@pytest.mark.paraview
@pytest.mark.slow
def test_the_key_of_the_groups_does_not_change_the_scripts_builtins(tmp_path, pvrun) -> None:
    # (ParaView's Programmable Filter runs `from numpy import *` in __main__ before its script:
    # numpy's min took the place of Python's in the bridge, whose min of a generator then failed)
    script = tmp_path / "builtins.py"
    script.write_text(
        "import builtins, os\n"
        "import numpy as np\n"
        "import paraview.simple as simple\n"
        "from vtkmodules.vtkCommonDataModel import vtkImageData\n"
        "from vtkmodules.util.numpy_support import numpy_to_vtk\n"
        "from convscope.paraview import looks\n"
        "image = vtkImageData()\n"
        "image.SetDimensions(4, 1, 1)\n"
        "group = numpy_to_vtk(np.array([0, 0, 8, -1], np.int32), deep=True)\n"
        "group.SetName('group')\n"
        "image.GetPointData().AddArray(group)\n"
        "groups = simple.TrivialProducer()\n"
        "groups.GetClientSideObject().SetOutput(image)\n"
        "key = looks.group_key(looks.group_strip(groups))\n"
        "key.UpdatePipeline()\n"
        "print('shadowed', sorted(n for n in ('min', 'max', 'abs', 'sum', 'any', 'all', 'divmod') if n in globals()))\n"
        "print('min', min(k for k in (3, 1, 2)))\n"
        "os._exit(0)\n"
    )
    proc = pvrun(str(script))
    assert "shadowed []" in proc.stdout and "min 1" in proc.stdout, proc.stdout + proc.stderr


@pytest.mark.paraview
@pytest.mark.slow
def test_open_exports_titles_the_axes_of_a_path_of_chosen_weights_by_their_indices(tmp_path, pvrun, monkeypatch) -> None:
    # (the trajectory's axes said "PC 1..3" also when there was no PCA and it showed the path of
    # the three chosen weights, whose flat indices the file carries)
    import json

    for trajectory, titles in (("dims", ["weight 0", "weight 5", "weight 9"]), ("pca", ["PC 1", "PC 2", "PC 3"])):
        _pruned_run_with_correlations(tmp_path / trajectory, trajectory=trajectory)
        monkeypatch.setenv("CONVSCOPE_EXPORTS", str(tmp_path / trajectory))
        pvrun(str(Path(__file__).parent / "pv_open_exports_gui.py"), str(tmp_path / "said.json"), xvfb=True)
        assert json.loads((tmp_path / "said.json").read_text())["trajectory_titles"] == titles


@pytest.mark.paraview
@pytest.mark.slow
def test_open_exports_draws_images_and_the_correlation_with_row_0_at_the_top(tmp_path, pvrun) -> None:
    _pruned_run_with_correlations(tmp_path / "vtk")
    shot = tmp_path / "views.png"
    pvrun(*open_exports_command(tmp_path / "vtk", screenshot=shot, size=(1200, 800))[2:], xvfb=True)
    rgb = np.asarray(Image.open(shot).convert("RGB")).astype(int)[:, : int(1200 * 0.68 * 0.84)]  # (the left view, less its legends)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    yellow = (r > 180) & (g > 180) & (b < 120)  # the distribution
    yellow &= yellow.sum(axis=1, keepdims=True) > 10  # (less a stray pixel where two colours meet)
    rows, cols = np.nonzero(yellow)
    below = np.zeros_like(yellow)
    below[rows.max() + 1 :] = True  # under the grid and the distribution: the feature map, the groups' key, the correlation
    blue = (b > 120) & (r < 90) & below
    red = (r > 120) & (g < 90) & (b < 90) & below
    orange = (r > 200) & (g > 90) & (g < 160) & (b < 60) & below  # group 0's strips and its swatch in the key
    assert blue.sum() > 300 and red.sum() > 100 and orange.sum() > 50
    # the matrix's row 0 (all blue) is its top row: the row of most blue pixels is the blue's first
    blue_rows, blue_cols = np.nonzero(blue.any(axis=1))[0], np.nonzero(blue.any(axis=0))[0]
    widest = int(np.argmax(blue.sum(axis=1)))
    cell = blue.sum(axis=1).max() / 11  # (at the last step, row 0 holds 11 blue cells)
    assert widest - blue_rows.min() < cell, "the correlation matrix's row 0 is not at its top"
    # the groups' strips are above the matrix and left of it (the key's swatch further left)
    strips = orange.copy()
    strips[:, : int(blue_cols.min() - 3 * cell)] = False
    orange_rows, orange_cols = np.nonzero(strips)
    assert orange_rows.min() < blue_rows.min() and orange_cols.min() < blue_cols.min()
    # the feature map's row 0 (grey) is above its other rows (black), under the grid, left of the key
    left = np.zeros_like(yellow)
    left[rows.max() + 1 :, : np.nonzero(orange.any(axis=0))[0].min() - 2] = True
    grey = (abs(r - g) < 8) & (abs(g - b) < 8) & (r > 100) & (r < 160) & left
    black = (r < 30) & (g < 30) & (b < 30) & left
    assert grey.sum() > 50 and black.sum() > 500
    assert np.nonzero(grey)[0].mean() < np.nonzero(black)[0].min() + 0.2 * np.ptp(np.nonzero(black)[0]), "the feature map's row 0 is not at its top"


@pytest.mark.paraview
@pytest.mark.slow
def test_open_exports_draws_the_correlation_large_with_the_groups_key_beside_it(tmp_path, pvrun) -> None:
    # (the matrix took an eighth of the view's width, a third of the grid's; the groups' colours had no key)
    _pruned_run_with_correlations(tmp_path / "vtk")
    shot = tmp_path / "views.png"
    pvrun(*open_exports_command(tmp_path / "vtk", screenshot=shot, size=(1200, 800))[2:], "--step", "0", xvfb=True)
    view = int(1200 * 0.68)  # (the left view)
    rgb = np.asarray(Image.open(shot).convert("RGB")).astype(int)[:, :view]
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    blue = (b > 120) & (r < 90)
    red = (r > 120) & (g < 90) & (b < 90)
    weights = red & (np.arange(800) < 400)[:, None]  # (the grid: all red, in the upper half)
    weights[:, int(view * 0.84) :] = False  # (less the colour legends)
    # the matrix's row 0 (blue but its first cell) is its widest blue row: 15 of its 16 cells
    row0 = int(np.argmax(blue.sum(axis=1)))
    cols = np.nonzero(blue[row0])[0]
    width = (cols.max() - cols.min() + 1) * 16 / 15
    grid_cols = np.nonzero(weights.any(axis=0))[0]
    assert width > 0.22 * view, f"the correlation matrix is {width:.0f} pixels wide of the view's {view}"
    assert width > 0.4 * (grid_cols.max() - grid_cols.min()), "the correlation matrix is small beside the grid"
    # the key: group 0's orange swatch left of the matrix's strips, among dark letters
    orange = (r > 200) & (g > 90) & (g < 160) & (b < 60)
    strip = cols.min() - width / 16 * 3  # (left of the strip down the matrix's left edge and the indices beside it)
    swatch = orange[:, : int(strip)]
    assert swatch.sum() > 20, "no swatch of group 0 left of the matrix"
    rows = np.nonzero(swatch.any(axis=1))[0]
    dark = (r < 90) & (g < 90) & (b < 90) & (abs(r - b) < 20)
    letters = dark[rows.min() - 40 : rows.max() + 40, np.nonzero(swatch.any(axis=0))[0].max() : int(strip)]
    assert letters.sum() > 100, "no words beside the swatch"

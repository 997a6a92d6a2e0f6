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
    assert said["maps_position"][1] < first[2] and said["maps_scale"][1] < 0
    # the distribution is as tall as the grid at its largest, to its right
    assert said["dist_position"][0] > first[1] and said["dist_position"][1] == pytest.approx(first[3])
    # the legend's ends read as its other labels do (they said "7.0e-01")
    assert said["range_label"] == "0.7"

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
from convscope.paraview import bridge_command, find_pvpython, open_exports_command, pvpython_env, script_path


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


def test_cli_paraview_with_a_pvpython_that_is_not_one_is_a_one_line_error(tmp_path, capsys) -> None:
    vtk = _exports(tmp_path / "vtk", "conv1")
    assert main(["paraview", "--open", str(vtk), "--pvpython", str(tmp_path / "nowhere" / "pvpython")]) == 2
    assert "is not an executable pvpython" in _err(capsys)
    fake = tmp_path / "pvpython"
    fake.write_text("not a program")
    fake.chmod(0o755)
    assert main(["paraview", "--open", str(vtk), "--pvpython", str(fake)]) == 2
    assert "could not be started (Exec format error)" in _err(capsys)
    assert main(["paraview", "--run", "r", "--extracts", "x", "--pvpython", str(fake)]) == 2
    assert "could not be started" in _err(capsys)


def test_cli_paraview_open_finds_a_layer_by_the_name_its_files_have(tmp_path, capsys) -> None:
    # layer names are made file-safe in the exports (block/conv 1 -> weights-block%2Fconv%201.pvd)
    vtk = _exports(tmp_path / "vtk", "block/conv 1")
    args = tmp_path / "args.txt"
    fake = tmp_path / "pvpython"
    fake.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {args}\n')
    fake.chmod(0o755)
    assert main(["paraview", "--open", str(vtk), "--layer", "block/conv 1", "--pvpython", str(fake)]) == 0
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

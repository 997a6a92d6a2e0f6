"""Our VTK files as ParaView's own readers see them (pvpython in a subprocess): exact values, time steps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from samples import exported_trajectory, frame

from convscope.export import VtkWriter
from convscope.frames import Frame

HERE = Path(__file__).resolve().parent
pytestmark = pytest.mark.paraview


def test_paraview_reads_every_view_exactly(tmp_path, pvrun) -> None:
    rng = np.random.default_rng(3)
    weights = (rng.normal(size=(4, 3, 3, 3)) / 7).astype(np.float32)
    weights[0, 0, 0, 0] = np.float32(0.1)
    frames = [Frame(run="r", step=s, kind="weight_grid", layer="conv1",
                    payload={"weights": weights * (s + 1), "vmax": float(np.abs(weights).max() * (s + 1))}) for s in (0, 10, 20)]
    frames += [frame("trajectory", s) for s in (0, 10, 20)] + [frame("feature_maps", 20), frame("distribution", 20)]
    w = VtkWriter(tmp_path)
    for f in frames:
        w.write(f)
    w.close()
    files = [tmp_path / "weights-conv1.pvd", tmp_path / "trajectory-dims-conv1.pvd",
             tmp_path / "feature_maps-conv1" / "feature_maps-conv1_00000020.vti",
             tmp_path / "distribution-conv1" / "distribution-conv1_00000020.vtp"]
    out = tmp_path / "seen.npz"
    pvrun(str(HERE / "pv_read_back.py"), str(out), *map(str, files))
    seen = np.load(out)
    # weights: the .pvd's time steps are the recorded steps; at the last one, the last weights
    assert str(seen["0/reader"]) == "PVDReader" and seen["0/times"].tolist() == [0.0, 10.0, 20.0]
    assert np.array_equal(seen["0/cell/value"][::6].view(np.uint32), (weights * 21).ravel().view(np.uint32))
    assert np.array_equal(seen["0/cell/sign"][::6], np.sign(weights.ravel()).astype(np.int8))
    assert seen["0/field/step"].tolist() == [20]
    # the trajectory up to step 20, a step array on its points
    assert seen["1/point/step"].tolist() == [0, 10, 20]
    assert np.array_equal(seen["1/points"], np.stack([f.payload["dims"] for f in frames[3:6]]))
    # feature maps as image data, exact pixels
    images = frames[6].payload["images"]
    assert str(seen["2/reader"]) == "XMLImageDataReader"
    assert seen["2/dimensions"].tolist() == [images.shape[2], images.shape[1], images.shape[0]]
    assert np.array_equal(seen["2/point/activation"].reshape(images.shape), images)
    counts = frames[7].payload["counts"]
    assert np.array_equal(seen["3/cell/count"].reshape(counts.shape), counts)


def test_paraview_reads_a_thinned_dims_path(tmp_path, pvrun, monkeypatch) -> None:
    import convscope.export._vtk as vtk

    monkeypatch.setattr(vtk, "DIMS_PATH_POINTS", 8)
    frames = exported_trajectory(tmp_path, 30)
    out = tmp_path / "seen.npz"
    pvrun(str(HERE / "pv_read_back.py"), str(out), str(tmp_path / "trajectory-dims-conv1.pvd"))
    seen = np.load(out)
    # every recorded step is a time step; at the last, every 8th recording from the first, and the newest
    assert str(seen["0/reader"]) == "PVDReader" and seen["0/times"].tolist() == [float(f.step) for f in frames]
    steps = [0, 80, 160, 240, 290]
    assert seen["0/point/step"].tolist() == steps
    assert np.array_equal(seen["0/points"], np.stack([frames[s // 10].payload["dims"] for s in steps]))
    assert seen["0/point/index"].tolist() == [[0, 5, 9]] * len(steps)


def test_paraview_places_an_images_first_row_at_the_top(tmp_path, pvrun) -> None:
    # (image data puts its row j at y = j: feature maps and correlation matrices opened by hand
    # in ParaView showed their first row at the bottom; the files now turn y over)
    maps, corr = frame("feature_maps", 2), frame("correlation", 2)
    w = VtkWriter(tmp_path)
    w.write(maps)
    w.write(corr)
    w.close()
    out = tmp_path / "seen.npz"
    pvrun(str(HERE / "pv_read_back.py"), str(out), str(tmp_path / "feature_maps-conv1.pvd"), str(tmp_path / "correlation-conv1.pvd"))
    seen = np.load(out)
    for i, name, values in ((0, "activation", maps.payload["images"]), (1, "r", corr.payload["matrix"][None])):
        depth, rows, cols = values.shape
        assert np.array_equal(seen[f"{i}/point/{name}"].reshape(values.shape), values)  # the values as written
        k, y, x = np.meshgrid(np.arange(depth), np.arange(rows), np.arange(cols), indexing="ij")
        # value [k, i, j] at x = j, y = -i: row 0 at the top (y = 0), the last row at the bottom
        assert np.array_equal(seen[f"{i}/image_points"], np.stack([x.ravel(), -y.ravel(), k.ravel()], axis=1))
        assert seen[f"{i}/bounds"][2:4].tolist() == [-(rows - 1), 0]

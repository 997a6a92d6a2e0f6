"""VTK XML files: read back exactly by VTK's own readers (the PyPI ``vtk`` wheel), .pvd collections."""

from __future__ import annotations

import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

import numpy as np
import pytest
from samples import exported_trajectory, frame

from convscope.export import VtkWriter, write_vti, write_vtp
from convscope.export._scenes import FACES_PER_BLOCK, ImageData, PolyData, weight_grid_blocks
from convscope.export._vtkxml import BLOCK_SIZE
from convscope.frames import Frame

pytest.importorskip("vtkmodules.vtkIOXML", reason="the PyPI vtk wheel reads the files back: pip install 'convscope[vtk]'")
from convscope.paraview._vtk import read_vtk  # noqa: E402


def _series(out, name):
    root = ET.parse(out / f"{name}.pvd").getroot()
    return [(float(d.get("timestep")), d.get("file")) for d in root.iter("DataSet")]


def test_weight_grid_blocks_read_back_exactly(tmp_path, weight_frame: Frame, awkward_weights) -> None:
    w = VtkWriter(tmp_path)
    w.write(weight_frame)
    w.close()
    [(time, rel)] = _series(tmp_path, "weights-features.0")
    assert time == 7.0 and rel == "weights-features.0/weights-features.0_00000007.vtp"
    d = read_vtk(tmp_path / rel)
    n = awkward_weights.size
    value = d["cell_data"]["value"]
    assert value.dtype == np.float32 and len(value) == n * FACES_PER_BLOCK
    assert np.array_equal(value[::FACES_PER_BLOCK].view(np.uint32), awkward_weights.ravel().view(np.uint32))
    assert np.array_equal(d["cell_data"]["sign"][::6], np.sign(awkward_weights.ravel()).astype(np.int8))
    f, c, _, _ = np.unravel_index(np.arange(n), awkward_weights.shape)
    assert np.array_equal(d["cell_data"]["filter"][::6], f) and np.array_equal(d["cell_data"]["channel"][::6], c)
    rgb = d["cell_data"]["rgb"][::6]
    assert rgb.shape == (n, 3)
    assert (rgb[awkward_weights.ravel() > 0] == [178, 24, 43]).all() and (rgb[awkward_weights.ravel() < 0] == [33, 102, 172]).all()
    # 8 corners a block, 6 quads; the top of each block is at value / vmax (negative: below 0)
    assert d["points"].shape == (n * 8, 3)
    conn, offsets = d["cells"]["polys"]
    assert len(offsets) == n * 6 and np.array_equal(np.diff(offsets), np.full(n * 6 - 1, 4))
    tops = d["points"].reshape(n, 8, 3)[:, 4:, 2]
    vmax = np.float32(weight_frame.payload["vmax"])
    assert np.array_equal(tops, np.repeat((awkward_weights.ravel() / vmax)[:, None], 4, axis=1))
    assert d["field_data"]["step"].tolist() == [7]
    assert d["field_data"]["shape"].tolist() == [3, 2, 3, 3]


def test_feature_maps_are_image_data_with_exact_pixels(tmp_path) -> None:
    fr = frame("feature_maps", 4)
    w = VtkWriter(tmp_path)
    w.write(fr)
    w.close()
    d = read_vtk(tmp_path / "feature_maps-conv1" / "feature_maps-conv1_00000004.vti")
    images = fr.payload["images"]  # [F, H, W]
    assert d["dimensions"] == (images.shape[2], images.shape[1], images.shape[0])
    act = d["point_data"]["activation"]
    assert act.dtype == np.uint8
    assert np.array_equal(act.reshape(images.shape), images)  # x (columns) fastest, then rows, then maps


def test_trajectories_are_polylines_with_a_step_array(tmp_path) -> None:
    w = VtkWriter(tmp_path)
    frames = [frame("trajectory", s) for s in (0, 10, 20)]
    for f in frames:
        w.write(f)
    w.close()
    assert [t for t, _ in _series(tmp_path, "trajectory-dims-conv1")] == [0.0, 10.0, 20.0]
    d = read_vtk(tmp_path / "trajectory-dims-conv1" / "trajectory-dims-conv1_00000020.vtp")
    assert np.array_equal(d["points"], np.stack([f.payload["dims"] for f in frames]))
    assert d["point_data"]["step"].tolist() == [0, 10, 20]
    conn, offsets = d["cells"]["lines"]
    assert conn.tolist() == [0, 1, 2] and offsets.tolist() == [3]  # one polyline through every point
    assert d["point_data"]["index"].tolist() == [[0, 5, 9]] * 3
    pca = read_vtk(tmp_path / "trajectory-pca-conv1" / "trajectory-pca-conv1_00000020.vtp")
    assert np.array_equal(pca["points"][0, :2], frames[-1].payload["pca"])
    assert np.array_equal(pca["field_data"]["explained_variance"], frames[-1].payload["explained_variance"])


def test_a_new_weight_shape_after_pruning_starts_a_new_path(tmp_path) -> None:
    w = VtkWriter(tmp_path, kinds=["trajectory"])
    for s, shape in ((0, [4, 1, 3, 3]), (1, [4, 1, 3, 3]), (2, [3, 1, 3, 3]), (3, [3, 1, 3, 3])):
        f = frame("trajectory", s)
        w.write(Frame(run="r", step=s, kind="trajectory", layer="conv1", payload={**f.payload, "shape": shape}))
    w.close()
    d = read_vtk(tmp_path / "trajectory-dims-conv1" / "trajectory-dims-conv1_00000003.vtp")
    assert d["point_data"]["step"].tolist() == [2, 3]


def _dims_steps(out: Path, step: int) -> list[int]:
    return read_vtk(out / "trajectory-dims-conv1" / f"trajectory-dims-conv1_{step:08d}.vtp")["point_data"]["step"].tolist()


def test_dims_paths_are_thinned_evenly_and_an_export_grows_linearly(tmp_path, monkeypatch) -> None:
    # (each step file held the whole path so far: an export grew with the square of the recordings)
    import convscope.export._vtk as vtk

    monkeypatch.setattr(vtk, "DIMS_PATH_POINTS", 8)
    frames = exported_trajectory(tmp_path, 100)
    assert [t for t, _ in _series(tmp_path, "trajectory-dims-conv1")] == [float(f.step) for f in frames]
    dims = {f.step: f.payload["dims"] for f in frames}
    total, last_stride = 0, 1
    for i, f in enumerate(frames):
        d = read_vtk(tmp_path / "trajectory-dims-conv1" / f"trajectory-dims-conv1_{f.step:08d}.vtp")
        steps = d["point_data"]["step"].tolist()
        total += len(steps)
        assert min(i + 1, 8 // 2) <= len(steps) <= 8, (f.step, steps)
        # the path's first recording, then every stride-th one, then this step's (a real weight point each)
        assert steps[0] == 0 and steps[-1] == f.step
        assert np.array_equal(d["points"], np.stack([dims[s] for s in steps]))
        assert d["cells"]["lines"][1].tolist() == [len(steps)] and d["point_data"]["index"].tolist() == [[0, 5, 9]] * len(steps)
        kept = steps if len(steps) < 3 else steps[:-1]
        stride = (kept[1] - kept[0]) // 10 if len(kept) > 1 else 1
        assert stride & (stride - 1) == 0 and stride >= last_stride  # a power of two, which only grows
        assert kept == list(range(0, 10 * stride * len(kept), 10 * stride)), (f.step, steps)
        assert 0 < steps[-1] - kept[-1] <= 10 * stride or steps == kept  # the newest no more than a stride on
        last_stride = stride
    assert last_stride > 1 and total <= 8 * len(frames)


def test_dims_paths_hold_bounded_memory(monkeypatch) -> None:
    import convscope.export._vtk as vtk

    def points_held(obj: object) -> int:  # (whatever the layout: rows of 2-D arrays, single 1-D points)
        if isinstance(obj, np.ndarray):
            return len(obj) if obj.ndim > 1 else int(obj.ndim == 1)
        if isinstance(obj, dict):
            return sum(points_held(v) for v in obj.values())
        if isinstance(obj, list | tuple):
            return sum(points_held(v) for v in obj)
        return points_held(vars(obj)) if hasattr(obj, "__dict__") else 0

    monkeypatch.setattr(vtk, "DIMS_PATH_POINTS", 8)
    trajectories = vtk._Trajectories()
    payload = frame("trajectory", 0).payload
    for step in range(10_000):
        points, steps = trajectories.add(Frame(run="r", step=step, kind="trajectory", layer="conv1", payload=payload))
        assert len(points) == len(steps) <= 8
        if step % 1000 == 999:
            assert points_held(trajectories) <= 8 + 1, step


def test_a_thinned_dims_path_restarts_on_a_new_shape_and_replaces_a_repeated_step(tmp_path, monkeypatch) -> None:
    import convscope.export._vtk as vtk

    monkeypatch.setattr(vtk, "DIMS_PATH_POINTS", 8)
    w = VtkWriter(tmp_path, kinds=["trajectory"])

    def write(step: int, shape: list[int], seed: int | None = None) -> None:
        f = frame("trajectory", step if seed is None else seed)
        w.write(Frame(run="r", step=step, kind="trajectory", layer="conv1", payload={**f.payload, "shape": shape}))

    for s in range(20):  # thinned twice: every 4th recording is kept, and the newest
        write(s, [4, 1, 3, 3])
    assert _dims_steps(tmp_path, 19) == [0, 4, 8, 12, 16, 19]
    write(19, [4, 1, 3, 3], seed=1000)  # the newest, which the path does not keep, again
    d = read_vtk(tmp_path / "trajectory-dims-conv1" / "trajectory-dims-conv1_00000019.vtp")
    assert d["point_data"]["step"].tolist() == [0, 4, 8, 12, 16, 19]
    assert np.array_equal(d["points"][-1], frame("trajectory", 1000).payload["dims"])
    for s in range(20, 25):
        write(s, [4, 1, 3, 3])
    write(24, [4, 1, 3, 3], seed=2000)  # a kept one again: the path keeps the new point
    write(25, [4, 1, 3, 3])
    d = read_vtk(tmp_path / "trajectory-dims-conv1" / "trajectory-dims-conv1_00000025.vtp")
    assert d["point_data"]["step"].tolist() == [0, 4, 8, 12, 16, 20, 24, 25]
    assert np.array_equal(d["points"][6], frame("trajectory", 2000).payload["dims"])
    write(26, [3, 1, 3, 3])  # pruned: a new path
    write(27, [3, 1, 3, 3])
    assert _dims_steps(tmp_path, 26) == [26] and _dims_steps(tmp_path, 27) == [26, 27]
    w.close()


def test_distribution_and_correlation(tmp_path) -> None:
    dist, corr = frame("distribution", 1), frame("correlation", 1)
    w = VtkWriter(tmp_path)
    w.write(dist)
    w.write(corr)
    w.close()
    d = read_vtk(tmp_path / "distribution-conv1" / "distribution-conv1_00000001.vtp")
    counts = dist.payload["counts"]
    assert np.array_equal(d["cell_data"]["count"].reshape(counts.shape), counts)
    c32 = counts.astype(np.float32)
    assert np.array_equal(d["cell_data"]["density"].reshape(counts.shape), c32 / c32.max(axis=1, keepdims=True))
    assert np.array_equal(d["field_data"]["mean"], dist.payload["mean"])
    c = read_vtk(tmp_path / "correlation-conv1" / "correlation-conv1_00000001.vti")
    m = corr.payload["matrix"]
    assert c["dimensions"] == (m.shape[1], m.shape[0], 1)
    assert np.array_equal(c["point_data"]["r"].reshape(m.shape), m)


def test_images_put_their_first_row_at_the_top(tmp_path) -> None:
    # (image data puts index j along y at y = j: opened by hand in ParaView, a feature map or a
    # correlation matrix showed its first row at the bottom, upside down)
    from vtkmodules.vtkIOXML import vtkXMLImageDataReader

    maps, corr = frame("feature_maps", 2), frame("correlation", 2)
    w = VtkWriter(tmp_path)
    w.write(maps)
    w.write(corr)
    w.close()
    for series, name, values in (("feature_maps-conv1", "activation", maps.payload["images"]),
                                 ("correlation-conv1", "r", corr.payload["matrix"][None])):
        path = tmp_path / series / f"{series}_00000002.vti"
        d = read_vtk(path)
        assert d["direction"] == (1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)
        assert np.array_equal(d["point_data"][name].reshape(values.shape), values)  # the values' order as before
        reader = vtkXMLImageDataReader()  # where VTK's own reader places them
        reader.SetFileName(str(path))
        reader.Update()
        image = reader.GetOutput()
        depth, rows, cols = values.shape
        for k, i, j in ((0, 0, 0), (0, 1, 0), (0, rows - 1, cols - 1), (depth - 1, rows - 1, 1)):
            point = (k * rows + i) * cols + j  # value [k, i, j]: x = column, y = -row (row 0 at the top)
            assert image.GetPoint(point) == (float(j), -float(i), float(k))
        assert image.GetBounds()[2:4] == (-(rows - 1.0), 0.0)
    groups = read_vtk(_write_groups(tmp_path))  # a row of points: nothing to turn over
    assert groups["direction"] == (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


def _write_groups(out: Path) -> Path:
    w = VtkWriter(out)
    w.write(frame("groups", 2))
    w.close()
    return out / "groups-conv1" / "groups-conv1_00000002.vti"


def test_filter_groups_are_a_row_of_labelled_points(tmp_path) -> None:
    groups = Frame(run="r", step=3, kind="groups", layer="conv1", payload={
        "labels": np.array([0, -1, 0, 1, 1], np.int32), "threshold": 0.85, "method": "union", "events": []})
    w = VtkWriter(tmp_path)
    w.write(groups)
    w.close()
    [(time, rel)] = _series(tmp_path, "groups-conv1")
    g = read_vtk(tmp_path / rel)
    assert time == 3.0 and g["dimensions"] == (5, 1, 1)
    assert g["point_data"]["group"].tolist() == [0, -1, 0, 1, 1] and g["point_data"]["filter"].tolist() == [0, 1, 2, 3, 4]
    assert g["field_data"]["threshold"].tolist() == [0.85] and g["field_data"]["step"].tolist() == [3]


def test_files_are_binary_appended_and_compressed(tmp_path) -> None:
    rng = np.random.default_rng(0)
    # more than one compression block, and a length that leaves a short last block
    values = rng.integers(0, 4, BLOCK_SIZE // 4 * 2 + 1001).astype(np.float32)
    n = len(values)
    img = ImageData(dimensions=(n, 1, 1), point_data={"v": values, "i64": np.arange(n, dtype=np.int64)})
    size = write_vti(tmp_path / "big.vti", img)
    raw = (tmp_path / "big.vti").read_bytes()
    assert size == len(raw) < values.nbytes  # compressed below the float32 payload alone
    head = raw[: raw.index(b"<AppendedData")].decode()
    assert 'compressor="vtkZLibDataCompressor"' in head and 'header_type="UInt64"' in head
    assert 'format="appended"' in head and raw[len(head) :].startswith(b'<AppendedData encoding="raw">\n_')
    # the first array's header: 3 blocks of BLOCK_SIZE, the last one short
    start = raw.index(b"_", raw.index(b"<AppendedData")) + 1
    nblocks, block, last = np.frombuffer(raw[start : start + 24], "<u8")
    assert (nblocks, block, last) == (3, BLOCK_SIZE, values.nbytes - 2 * BLOCK_SIZE)
    first_len = int(np.frombuffer(raw[start + 24 : start + 32], "<u8")[0])
    first = zlib.decompress(raw[start + 48 : start + 48 + first_len])
    assert first == values.tobytes()[:BLOCK_SIZE]
    d = read_vtk(tmp_path / "big.vti")
    assert np.array_equal(d["point_data"]["v"], values) and np.array_equal(d["point_data"]["i64"], np.arange(n))


def test_empty_and_odd_polydata(tmp_path) -> None:
    poly = PolyData(points=np.zeros((0, 3), np.float32))
    write_vtp(tmp_path / "empty.vtp", poly)
    assert read_vtk(tmp_path / "empty.vtp")["points"].shape == (0, 3)
    blocks = weight_grid_blocks(np.array([[0.5, -0.25]], np.float32))  # a dense layer [F=1, C=2]
    write_vtp(tmp_path / "dense.vtp", blocks)
    d = read_vtk(tmp_path / "dense.vtp")
    assert d["cell_data"]["value"][::6].tolist() == [0.5, -0.25]
    assert d["field_data"]["vmax"].tolist() == [0.5]


def test_collection_lists_steps_in_order_and_rewrites_a_step(tmp_path, weight_frame) -> None:
    w = VtkWriter(tmp_path)
    for step in (30, 10, 20, 10):
        w.write(Frame(run="r", step=step, kind="weight_grid", layer="conv1", payload=weight_frame.payload))
    listed = [t for t, _ in _series(tmp_path, "weights-conv1")]  # readable at once, while the run goes on
    assert 30.0 in listed and listed == sorted(set(listed))
    w.close()
    assert [t for t, _ in _series(tmp_path, "weights-conv1")] == [10.0, 20.0, 30.0]
    assert w.collections() == [tmp_path / "weights-conv1.pvd"]
    assert not list(tmp_path.rglob("*.part"))  # written whole and renamed


def test_a_live_sink_rewrites_its_collections_every_few_seconds_not_after_every_frame(tmp_path, weight_frame, monkeypatch) -> None:
    # (the live sink rewrote each .pvd after every frame: time in the square of a series' steps)
    import time

    import convscope.export._vtk as vtk

    rewrites: list[int] = []

    def write_pvd(path, entries) -> None:
        rewrites.append(len(entries))
        for _time, rel in entries:  # a .pvd only ever lists step files that are there whole
            assert (Path(path).parent / rel).is_file()
        real_write_pvd(path, entries)

    real_write_pvd = vtk.write_pvd
    monkeypatch.setattr(vtk, "write_pvd", write_pvd)
    w = VtkWriter(tmp_path)
    started = time.monotonic()
    for step in range(300):
        w.write(Frame(run="r", step=step, kind="weight_grid", layer="conv1", payload=weight_frame.payload))
        if step == 0:  # a new series is listed with its first step: ParaView can open it at once
            assert _series(tmp_path, "weights-conv1") == [(0.0, "weights-conv1/weights-conv1_00000000.vtp")]
    assert len(rewrites) <= 1 + (time.monotonic() - started) / vtk.PVD_SECONDS, rewrites
    # the monitor flushes its sinks about once a second: a run that pauses (an evaluation, a
    # checkpoint) shows ParaView its latest steps without waiting for another frame
    w.flush()
    assert [t for t, _ in _series(tmp_path, "weights-conv1")] == [float(s) for s in range(300)]
    w.write(Frame(run="r", step=300, kind="weight_grid", layer="conv1", payload=weight_frame.payload))
    w.close()
    assert rewrites[-1] == 301 and len(rewrites) <= 3 + (time.monotonic() - started) / vtk.PVD_SECONDS


def test_kinds_without_a_scene_and_filters_are_skipped(tmp_path) -> None:
    w = VtkWriter(tmp_path, layers=["conv2"])
    w.write(frame("scalar", 1))
    w.write(frame("weight_grid", 1))  # conv1: filtered out
    w.write(frame("weight_grid", 1, layer="conv2"))
    w.close()
    assert [p.name for p in tmp_path.glob("*.pvd")] == ["weights-conv2.pvd"]


def test_weight_blocks_of_one_input_channel_wrap_like_the_dashboard() -> None:
    import torch

    from convscope.analysis import grid_layout

    w = np.random.default_rng(0).standard_normal((16, 1, 3, 3)).astype(np.float32)
    blocks = weight_grid_blocks(w, vmax=float(np.abs(w).max()))
    corners = blocks.points.reshape(16 * 9, 8, 3)
    x, y = corners[:, 0, 0], corners[:, 0, 1]  # each block's lower-left corner
    assert x.max() - x.min() == 14 and y.max() - y.min() == 14  # a 4 x 4 block of 3 x 3 windows, gap 1
    # the same cells as the 2-D layout: x is the column, -y - 1 the row
    lay = grid_layout(torch.from_numpy(w), gap=1)
    np.testing.assert_array_equal(x, lay.centres.reshape(-1, 2)[:, 0] - 0.5)
    np.testing.assert_array_equal(-y - 1, lay.centres.reshape(-1, 2)[:, 1] - 0.5)

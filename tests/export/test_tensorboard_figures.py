"""TensorBoard event files read by TensorBoard's own EventAccumulator; PNG and SVG figures."""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from PIL import Image
from samples import every_kind, frame

from convscope.export import FigureWriter, TensorBoardWriter, export_run
from convscope.export._scenes import diverging_rgb, tile_maps
from convscope.frames import Frame
from convscope.store import RunStore

pytest.importorskip("tensorboard", reason="TensorBoard export needs pip install 'convscope[tensorboard]'")


def _accumulator(logdir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(str(logdir), size_guidance={"scalars": 0, "histograms": 0, "images": 0})
    ea.Reload()
    return ea


def test_scalars_histograms_and_images_read_by_tensorboard(tmp_path) -> None:
    w = TensorBoardWriter(tmp_path)
    sent = {s: every_kind(s) for s in range(3)}
    for frames in sent.values():
        for f in frames:
            w.write(f)
    w.close()
    ea = _accumulator(tmp_path)
    tags = ea.Tags()
    assert {"loss", "conv1/grad_norm", "conv1/explained_variance_0", "filters"} <= set(tags["scalars"])
    loss = ea.Scalars("loss")
    assert [(e.step, e.value, e.wall_time) for e in loss] == [(s, np.float32(1 / (s + 1)), 1000.0 + s) for s in range(3)]
    grad = [e.value for e in ea.Scalars("conv1/grad_norm")]
    assert grad == [np.float32(next(f for f in sent[s] if f.kind == "gradient_health").payload["grad_norm"]) for s in range(3)]
    # the correlation groups as counts: filters in a group less one per group, and the groups
    labels = next(f for f in sent[0] if f.kind == "groups").payload["labels"].tolist()
    assert labels == [0, 0, 1, 2]
    assert [(e.step, e.value) for e in ea.Scalars("conv1/redundant_filters")] == [(s, 1.0) for s in range(3)]
    assert [e.value for e in ea.Scalars("conv1/filter_groups")] == [3.0] * 3
    # histogram frames keep their own bins: TensorBoard's bucket i is (limit[i-1], limit[i]]
    h = ea.Histograms("conv1/conv1.weight")[2].histogram_value
    hist = next(f for f in sent[2] if f.kind == "histogram").payload
    assert list(h.bucket_limit) == hist["edges"][1:].astype(np.float64).tolist()
    assert list(h.bucket) == hist["counts"].tolist()
    assert h.min == -1.0 and h.num == hist["counts"].sum()
    # weight grids become a histogram of the weights
    wh = ea.Histograms("conv1/weights")[0].histogram_value
    weights = next(f for f in sent[0] if f.kind == "weight_grid").payload["weights"]
    assert wh.num == weights.size and wh.min == pytest.approx(float(weights.min())) and wh.max == pytest.approx(float(weights.max()))
    # images: the feature maps tiled (grey), the correlation in blue-white-red
    maps = ea.Images("conv1/feature_maps")
    assert [e.step for e in maps] == [0, 1, 2]
    img = np.asarray(Image.open(io.BytesIO(maps[1].encoded_image_string)).convert("L"))
    assert np.array_equal(img, tile_maps(next(f for f in sent[1] if f.kind == "feature_maps").payload["images"]))
    corr = ea.Images("conv1/correlation")[0]
    rgb = np.asarray(Image.open(io.BytesIO(corr.encoded_image_string)).convert("RGB"))
    m = next(f for f in sent[0] if f.kind == "correlation").payload["matrix"]
    assert np.array_equal(rgb, diverging_rgb(m, vmax=1.0))


def test_redundant_filters_and_groups_of_each_recording(tmp_path) -> None:
    """Each groups frame's labels (-1: in no group) as TensorBoard scalars: the filters a pruning of
    its groups could remove (grouped, less one per group) and how many groups there are."""
    cases = {0: [-1] * 6, 1: [3, 3, -1, 3, 8, 8], 2: [5, 5, 5, 5, 5, 5], 3: [-1, 0, 1, 2, 2, 4]}
    w = TensorBoardWriter(tmp_path)
    for step, labels in cases.items():
        payload = {**frame("groups", step).payload, "labels": np.asarray(labels, np.int32)}
        w.write(Frame(run="r", step=step, kind="groups", layer="conv2", payload=payload))
    w.close()
    ea = _accumulator(tmp_path)
    assert [(e.step, e.value) for e in ea.Scalars("conv2/redundant_filters")] == [(0, 0.0), (1, 3.0), (2, 5.0), (3, 1.0)]
    assert [(e.step, e.value) for e in ea.Scalars("conv2/filter_groups")] == [(0, 0.0), (1, 2.0), (2, 1.0), (3, 4.0)]


def test_re_exporting_a_run_replaces_its_event_files_and_no_others(tmp_path) -> None:
    # (each export added an event file beside the earlier ones: TensorBoard showed each point twice)
    from torch.utils.tensorboard import SummaryWriter

    logdir, tb = tmp_path / "runs", tmp_path / "tb"
    for run in ("r", "other"):
        with RunStore(logdir).create_run(run) as w:
            for s in range(5):
                w.write_many(every_kind(s, run=run))
    export_run(logdir, "r", out=tmp_path / "o", formats="tensorboard", tensorboard_logdir=tmp_path / "alone")
    export_run(logdir, "r", out=tmp_path / "o", formats="tensorboard", tensorboard_logdir=tmp_path / "alone")
    assert [e.step for e in _accumulator(tmp_path / "alone").Scalars("loss")] == [0, 1, 2, 3, 4]
    assert len(_accumulator(tmp_path / "alone").Images("conv1/feature_maps")) == 5
    # beside another run's export and the user's own files, which stay
    tb.mkdir()
    (tb / "notes.txt").write_text("mine")
    with SummaryWriter(tb) as mine:
        mine.add_scalar("mine", 1.0, 0)
    export_run(logdir, "other", out=tmp_path / "o", formats="tensorboard", tensorboard_logdir=tb)
    for _ in range(2):
        export_run(logdir, "r", out=tmp_path / "o", formats="tensorboard", tensorboard_logdir=tb)
    assert _steps(tb, "loss") == sorted([*range(5), *range(5)])  # r's once and other's once
    assert _steps(tb, "mine") == [0] and (tb / "notes.txt").read_text() == "mine"
    # a live sink's events (it may still be writing them) are not an export's: neither removes the other's
    live = TensorBoardWriter(tb)
    live.write(frame("scalar", 9))
    live.close()
    export_run(logdir, "r", out=tmp_path / "o", formats="tensorboard", tensorboard_logdir=tb)
    assert _steps(tb, "loss") == sorted([*range(5), *range(5), 9])


def _steps(logdir, tag) -> list[int]:
    """The steps of every point of ``tag`` in ``logdir``'s event files, read one file at a time."""
    steps = []
    for path in logdir.glob("*tfevents*"):
        ea = _accumulator(path)
        if tag in ea.Tags()["scalars"]:
            steps += [e.step for e in ea.Scalars(tag)]
    return sorted(steps)


def test_missing_tensorboard_names_the_extra(monkeypatch, tmp_path) -> None:
    import sys

    from convscope.errors import MissingDependencyError

    monkeypatch.setitem(sys.modules, "tensorboard", None)
    with pytest.raises(MissingDependencyError, match=r"convscope\[tensorboard\]"):
        TensorBoardWriter(tmp_path)


def test_figures_png_and_svg_of_every_view(tmp_path) -> None:
    pytest.importorskip("matplotlib", reason="figures need pip install 'convscope[export]'")
    w = FigureWriter(tmp_path)
    for s in range(3):
        for f in every_kind(s):
            w.write(f)
    w.close()
    stems = {p.stem for p in w.files}
    assert stems == {"scalars", "gradient_health", *(f"{k}-conv1" for k in
                     ("weight_grid", "trajectory", "distribution", "feature_maps", "correlation", "groups"))}
    for stem in stems:
        png = Image.open(tmp_path / f"{stem}.png")
        assert png.size[0] > 300 and png.size[1] > 200
        colours = np.asarray(png.convert("RGB")).reshape(-1, 3)
        assert len(np.unique(colours, axis=0)) > 20  # something is drawn
        assert ET.parse(tmp_path / f"{stem}.svg").getroot().tag.endswith("svg")
    # the weight grid is drawn blue-white-red: a strongly negative and a strongly positive colour
    rgb = np.asarray(Image.open(tmp_path / "weight_grid-conv1.png").convert("RGB")).astype(int)
    assert ((rgb[..., 2] - rgb[..., 0]) > 100).any() and ((rgb[..., 0] - rgb[..., 2]) > 100).any()


def test_figures_draw_the_newest_frame(tmp_path) -> None:
    pytest.importorskip("matplotlib")
    w = FigureWriter(tmp_path, formats=("svg",))
    for s in (5, 9):
        w.write(frame("weight_grid", s))
    w.write(Frame(run="r", step=3, kind="run_meta", payload={"event": "start"}))  # no figure
    w.close()
    assert [p.name for p in w.files] == ["weight_grid-conv1.svg"]
    assert "step 9" in (tmp_path / "weight_grid-conv1.svg").read_text()


def test_a_trajectory_with_fewer_than_three_axes_is_drawn(tmp_path) -> None:
    # (a run's first recordings, and those after a pruning, have NaN for the axes it lacks:
    # the figure drew no path at all, and bars at -0.4..0.4 for the explained variance)
    pytest.importorskip("matplotlib")
    w = FigureWriter(tmp_path, formats=("svg",))
    nan = np.nan
    path = np.array([[nan, nan, nan], [0.1, nan, nan], [0.2, nan, nan], [0.4, nan, nan]], np.float32)
    w.write(Frame(run="r", step=4, kind="trajectory", layer="conv1", payload={
        "dims": np.zeros(3, np.float32), "dim_index": np.array([0, 1, 2]), "pca": path[-1],
        "explained_variance": np.array([1.0, nan, nan], np.float32), "path_steps": np.arange(1, 5), "pca_path": path}))
    w.close()
    svg = (tmp_path / "trajectory-conv1.svg").read_text()
    # the path's line: a drawn polyline through the three points that have an axis
    lines = re.findall(r'<path[^>]* d="([^"]*)"[^>]*style="fill: none; stroke: #1f77b4', svg)
    assert lines and max(line.count("L") for line in lines) == 2
    assert "PC 1" in svg and "PC 3" in svg


def test_the_weight_grid_figure_numbers_filters_and_channels_not_pixels(tmp_path) -> None:
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    from convscope.export._figures import _draw

    w = np.random.default_rng(0).normal(size=(32, 8, 3, 3)).astype(np.float32)
    fig = _draw(plt, Frame(run="r", step=1, kind="weight_grid", layer="conv2", payload={"weights": w, "vmax": 3.0}))
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "5", "10", "15", "20", "25", "30"]
    assert [t.get_text() for t in ax.get_yticklabels()] == [str(c) for c in range(8)]
    # each tick in the middle of its window: 3 pixels and a 1-pixel gap a window
    assert list(ax.get_xticks()) == [1.0, 21.0, 41.0, 61.0, 81.0, 101.0, 121.0]
    assert list(ax.get_yticks()) == [1.0 + 4 * c for c in range(8)]
    plt.close(fig)


def test_a_one_channel_layer_is_wrapped_into_the_block_the_dashboard_and_vtk_draw(tmp_path) -> None:
    # (conv1, 1 input channel and 16 filters, was a 1 x 16 strip; the dashboard and the VTK blocks
    # wrap it into 4 x 4)
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    from convscope.export._figures import _draw
    from convscope.export._scenes import weight_grid_blocks

    w = np.random.default_rng(1).normal(size=(16, 1, 5, 5)).astype(np.float32)
    fig = _draw(plt, Frame(run="r", step=1, kind="weight_grid", layer="conv1", payload={"weights": w, "vmax": 3.0}))
    ax = fig.axes[0]
    image = np.asarray(ax.images[0].get_array())
    assert image.shape == (4 * 6 - 1, 4 * 6 - 1)
    # every filter's window where the VTK file puts that filter's blocks (x across, y down from 0)
    blocks = weight_grid_blocks(w, vmax=3.0)
    corners = blocks.points.reshape(-1, 8, 3)
    for i in range(16):
        mine = corners[blocks.cell_data["filter"][::6] == i]
        x0, y0 = int(mine[:, :, 0].min()), int(-mine[:, :, 1].max())
        assert np.array_equal(image[y0 : y0 + 5, x0 : x0 + 5], w[i, 0]), i
    assert [t.get_text() for t in ax.get_yticklabels()] == ["0", "4", "8", "12"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["+0", "+1", "+2", "+3"]
    assert "1 input channel" in ax.get_ylabel()
    plt.close(fig)
    # 20 filters: rows of 5, the last full (as the dashboard's grid)
    fig = _draw(plt, Frame(run="r", step=1, kind="weight_grid", layer="conv1",
                           payload={"weights": np.ones((20, 1, 3, 3), np.float32), "vmax": 1.0}))
    assert np.asarray(fig.axes[0].images[0].get_array()).shape == (4 * 4 - 1, 5 * 4 - 1)
    plt.close(fig)

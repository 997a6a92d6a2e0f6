"""A TensorBoard export's event files: one per layer and kind, so that exporting a run again
replaces exactly what it writes again. Read back by TensorBoard's own EventAccumulator, which
reads a folder's files as TensorBoard does: a point written twice shows twice."""

from __future__ import annotations

import re
import shutil
import struct
import tempfile

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from samples import every_kind, frame

from convscope.cli import main
from convscope.export import TensorBoardWriter, export_run
from convscope.frames import Frame
from convscope.store import RunStore

pytest.importorskip("tensorboard", reason="TensorBoard export needs pip install 'convscope[tensorboard]'")
from convscope.export._files import LAYER_CHARS, layer_token  # noqa: E402

#: the kinds of a layer that TensorBoard shows, and their tags under ``<layer>/``
LAYER_KINDS = {
    "gradient_health": ["grad_norm", "update_ratio", "zero_fraction", "dead_fraction"],
    "trajectory": ["explained_variance_0", "explained_variance_1"],
    "histogram": ["conv1.weight"],
    "weight_grid": ["weights"],
    "feature_maps": ["feature_maps"],
    "correlation": ["correlation"],
    "groups": ["redundant_filters", "filter_groups"],
}
RUN_TAGS = ["loss", "acc"]  # a scalar frame's and a batch of logged values' (scalars)


def _store(logdir, run="r", layers=("conv1", "conv2"), kinds=(*LAYER_KINDS, "distribution"), steps=range(5)):
    """A run of ``layers`` with frames of ``kinds`` (distributions: TensorBoard shows none) and run-level values."""
    with RunStore(logdir).create_run(run) as w:
        for s in steps:
            w.write_many([frame("scalar", s, run=run), frame("scalars", s, run=run)]
                         + [frame(k, s, run=run, layer=layer) for layer in layers for k in kinds])
    return logdir


def _tags(layers, kinds=tuple(LAYER_KINDS)) -> list[str]:
    return sorted(f"{layer}/{t}" for layer in layers for k in kinds for t in LAYER_KINDS[k])


def _points(folder) -> dict[str, list[int]]:
    """The steps of each tag's points (scalars, histograms, images) in ``folder``, as TensorBoard reads it."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(str(folder), size_guidance={"scalars": 0, "histograms": 0, "images": 0})
    ea.Reload()
    tags = ea.Tags()
    out = {t: [e.step for e in ea.Scalars(t)] for t in tags["scalars"]}
    out |= {t: [e.step for e in ea.Histograms(t)] for t in tags["histograms"]}
    out |= {t: [e.step for e in ea.Images(t)] for t in tags["images"]}
    return {t: sorted(steps) for t, steps in out.items()}


def _files(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file() and not p.is_symlink()}


def _old_export(logdir, tb, run="r"):
    """What an export of ``run`` by an earlier version left: the whole run in one event file,
    ``….convscope-export@<run>`` (the events the live sink writes into its one file)."""
    with RunStore(logdir).open_run(run) as reader:
        frames = reader.frames()
    live = TensorBoardWriter(tb / "old", run=run)
    for f in frames:
        live.write(f)
    live.close()
    [path] = (tb / "old").iterdir()
    old = path.rename(tb / path.name.replace(f".convscope@{run}", f".convscope-export@{run}"))
    (tb / "old").rmdir()
    return old


def test_re_exporting_one_layer_keeps_the_other_layers_points_once(tmp_path) -> None:
    # (an export wrote the whole run into one file and an export of conv2 alone replaced it:
    # conv1's points were gone)
    logdir, tb = _store(tmp_path / "runs"), tmp_path / "tb"
    everything = {t: list(range(5)) for t in [*RUN_TAGS, *_tags(["conv1", "conv2"])]}
    export_run(logdir, "r", out=tmp_path / "o", formats="tensorboard", tensorboard_logdir=tb)
    assert _points(tb) == everything
    assert main(["export", "r", "--logdir", str(logdir), "--out", str(tmp_path / "o"), "--format", "tensorboard",
                 "--tensorboard-dir", str(tb), "--layer", "conv2", "--steps", "3:", "--quiet"]) == 0
    # conv2's points are the new export's, and the run-level values (they pass any layer filter) too
    assert _points(tb) == everything | {t: [3, 4] for t in [*RUN_TAGS, *_tags(["conv2"])]}
    export_run(logdir, "r", out=tmp_path / "o", formats="tensorboard", tensorboard_logdir=tb, layers="conv2")
    assert _points(tb) == everything


def test_re_exporting_some_kinds_of_a_layer_keeps_its_other_kinds(tmp_path) -> None:
    logdir, tb = _store(tmp_path / "runs"), tmp_path / "tb"
    everything = {t: list(range(5)) for t in [*RUN_TAGS, *_tags(["conv1", "conv2"])]}
    export_run(logdir, "r", out=tmp_path / "o", formats="tensorboard", tensorboard_logdir=tb)
    export_run(logdir, "r", out=tmp_path / "o", formats="tensorboard", tensorboard_logdir=tb,
               kinds=["weight_grid", "correlation"], layers="conv1", start=3)
    assert _points(tb) == everything | {"conv1/weights": [3, 4], "conv1/correlation": [3, 4]}
    # a kind of which TensorBoard shows nothing writes no file and removes none
    before = _files(tb)
    export_run(logdir, "r", out=tmp_path / "o", formats="tensorboard", tensorboard_logdir=tb, kinds="distribution")
    assert _files(tb) == before


def test_a_full_re_export_shows_each_point_once_in_a_file_per_layer_and_kind(tmp_path) -> None:
    logdir, tb = _store(tmp_path / "runs"), tmp_path / "tb"
    for _ in range(3):
        export_run(logdir, "r", out=tmp_path / "o", formats="tensorboard", tensorboard_logdir=tb)
    assert _points(tb) == {t: list(range(5)) for t in [*RUN_TAGS, *_tags(["conv1", "conv2"])]}
    # batched logged values are written as scalar frames: one run-level file holds both
    suffixes = sorted(name.split(".convscope-export@", 1)[1] for name in _files(tb))
    assert suffixes == sorted(["r@scalar", *(f"r@{layer}@{k}" for layer in ("conv1", "conv2") for k in LAYER_KINDS)])
    for name in _files(tb):  # (each tag in one file: the file's own points are the tag's only ones)
        own = _points_of_file(tb / name)
        assert own and all(_points(tb)[t] == steps for t, steps in own.items()), name


def _points_of_file(path) -> dict[str, list[int]]:
    """What ``_points`` reads in the one file ``path``."""
    with tempfile.TemporaryDirectory() as alone:
        shutil.copy(path, alone)
        return _points(alone)


def test_an_earlier_versions_whole_run_file_keeps_only_what_is_not_exported_again(tmp_path) -> None:
    logdir, tb = _store(tmp_path / "runs"), tmp_path / "tb"
    tb.mkdir()
    old = _old_export(logdir, tb)
    everything = {t: list(range(5)) for t in [*RUN_TAGS, *_tags(["conv1", "conv2"])]}
    assert _points(tb) == everything
    # (one cut short, as by an export killed midway: TensorBoard reads up to the cut)
    old.write_bytes(old.read_bytes() + old.read_bytes()[:20])
    assert _points(tb) == everything
    # a filtered export: what it wrote again leaves the old file, the rest stays in it
    export_run(logdir, "r", out=tmp_path / "o", formats="tensorboard", tensorboard_logdir=tb,
               layers="conv2", kinds="gradient_health", start=3)
    again = _tags(["conv2"], ["gradient_health"])
    assert _points(tb) == everything | dict.fromkeys(again, [3, 4])
    assert sorted(_points_of_file(old)) == sorted(set(everything) - set(again))
    # an export that stops midway has replaced what it wrote, in the old file as in its own
    w = TensorBoardWriter(tb, run="r", layers="conv1", kinds="weight_grid", export=True)
    w.write(frame("weight_grid", 0, layer="conv1"))
    w.close(status="failed")
    assert _points(tb) == everything | dict.fromkeys(again, [3, 4]) | {"conv1/weights": [0]}
    # an export that writes none of its tags again leaves it byte for byte
    before = old.read_bytes()
    export_run(logdir, "r", out=tmp_path / "o", formats="tensorboard", tensorboard_logdir=tb, kinds="distribution")
    assert old.read_bytes() == before
    # a re-export of everything leaves nothing in it: it goes
    export_run(logdir, "r", out=tmp_path / "o", formats="tensorboard", tensorboard_logdir=tb)
    assert not old.exists() and _points(tb) == everything
    assert all("convscope-export@r@" in name for name in _files(tb))


def test_other_runs_live_sinks_and_foreign_files_are_never_touched(tmp_path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    logdir, tb = tmp_path / "runs", tmp_path / "tb"
    for run in ("r", "r2", "r.1"):
        _store(logdir, run=run)
    tb.mkdir()
    _old_export(logdir, tb, run="r2")
    export_run(logdir, "r.1", out=tmp_path / "o", formats="tensorboard", tensorboard_logdir=tb)
    live = TensorBoardWriter(tb, run="r")  # (a live sink of the same run: it may still be writing)
    live.write(frame("scalar", 9))
    live.close()
    with SummaryWriter(tb) as mine:
        mine.add_scalar("mine", 1.0, 0)
    (tb / "notes.txt").write_text("mine")
    (tb / "events.out.tfevents.1.h.2.3.convscope-export@r@conv1@weight_grid.bak").write_text("mine too")
    others = _files(tb)
    target = tmp_path / "elsewhere.convscope-export@r@conv1@weight_grid"
    target.write_text("linked")
    (tb / "events.out.tfevents.1.h.2.4.convscope-export@r@conv1@weight_grid").symlink_to(target)
    for filters in ({}, {"layers": "conv1"}, {"kinds": "weight_grid"}, {}):
        export_run(logdir, "r", out=tmp_path / "o", formats="tensorboard", tensorboard_logdir=tb, **filters)
    assert {name: data for name, data in _files(tb).items() if name in others} == others
    assert target.read_text() == "linked"
    points = _points(tb)
    assert points["loss"] == sorted([*range(5)] * 3 + [9])  # r's, r2's and r.1's exports, r's live sink
    assert points["conv1/weights"] == sorted([*range(5)] * 3)


ODD = ["a.b", "a_b", "a/b", "a%2Fb", "block/conv 1", "ß.ü", "x.", "@", ".", "a" * 300 + "1", "a" * 300 + "2"]


def test_odd_layer_names_get_files_of_their_own(tmp_path) -> None:
    kinds = ("gradient_health", "weight_grid")
    logdir, tb = _store(tmp_path / "runs", layers=ODD, kinds=kinds), tmp_path / "tb"
    everything = {t: list(range(5)) for t in [*RUN_TAGS, *_tags(ODD, kinds)]}
    export_run(logdir, "r", out=tmp_path / "o", formats="tensorboard", tensorboard_logdir=tb)
    assert _points(tb) == everything
    names = list(_files(tb))
    assert len(names) == 1 + len(ODD) * len(kinds)
    assert all(len(name.encode()) <= 255 and re.fullmatch(r"[\w.%~@-]+", name, re.ASCII) for name in names)
    for layer in ("a.b", "a/b", "x.", ".", "a" * 300 + "1"):
        export_run(logdir, "r", out=tmp_path / "o", formats="tensorboard", tensorboard_logdir=tb, layers=layer, start=3)
        everything |= {t: [3, 4] for t in [*RUN_TAGS, *_tags([layer], kinds)]}
        assert _points(tb) == everything, layer


@given(st.text(max_size=80), st.text(max_size=80))
def test_two_layers_never_share_a_token(a: str, b: str) -> None:
    for name in (a, b, "n" * 60 + a, "n" * 60 + b):
        assert re.fullmatch(r"[A-Za-z0-9_.%~-]*", layer_token(name)) and len(layer_token(name)) <= LAYER_CHARS
    if a != b:
        assert layer_token(a) != layer_token(b)
        assert layer_token("n" * 60 + a) != layer_token("n" * 60 + b)


def test_a_deep_model_holds_few_files_open(tmp_path, monkeypatch) -> None:
    # (one open file per layer and kind: hundreds for a deep model, past the process's limit)
    import convscope.export._tensorboard as tb_module

    monkeypatch.setattr(tb_module, "OPEN_FILES", 3)
    layers = [f"features.{i}" for i in range(8)]
    w = TensorBoardWriter(tmp_path, run="r", export=True)
    for s in range(4):
        for layer in layers:
            for kind in ("gradient_health", "weight_grid"):
                w.write(frame(kind, s, layer=layer))
                assert sum(f._handle is not None for f in w._files.values()) <= 3
    w.close()
    assert _points(tmp_path) == {t: list(range(4)) for t in _tags(layers, ("gradient_health", "weight_grid"))}


def test_weight_histograms_are_the_ones_summarywriter_makes(tmp_path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from torch.utils.tensorboard import SummaryWriter

    f = frame("weight_grid", 3)
    w = TensorBoardWriter(tmp_path / "ours", run="r", export=True)
    w.write(f)
    w.close()
    with SummaryWriter(tmp_path / "theirs") as theirs:
        theirs.add_histogram("conv1/weights", f.payload["weights"].ravel(), 3, walltime=f.wall_time)
    got = []
    for folder in ("ours", "theirs"):
        ea = EventAccumulator(str(tmp_path / folder))
        ea.Reload()
        got.append(ea.Histograms("conv1/weights"))
    assert got[0] == got[1] and len(got[0][0].histogram_value.bucket_limit) > 10


def test_the_live_sink_writes_one_file_as_a_run_trains(tmp_path, train_watched) -> None:
    from convscope.sinks import create_sink

    sink = create_sink("tensorboard", logdir=tmp_path / "tb")
    train_watched([sink])
    [path] = (tmp_path / "tb").iterdir()
    assert path.name.endswith(f".convscope@{sink.run}")
    points = _points(tmp_path / "tb")
    assert points["loss"] == [1, 2, 3, 4]
    assert {"conv1/grad_norm", "conv1/weights"} <= set(points)
    assert all(steps == sorted(set(steps)) for steps in points.values())
    assert np.all(np.diff(points["conv1/grad_norm"]) > 0)


def test_event_files_are_byte_for_byte_those_tensorboards_checksum_made(tmp_path, monkeypatch) -> None:
    # (the records' checksums: convscope's CRC-32C in place of TensorBoard's pure-Python one)
    from types import SimpleNamespace

    from tensorboard.compat.tensorflow_stub import pywrap_tensorflow

    import convscope.export._tensorboard as tb_module

    monkeypatch.setattr(tb_module, "time", SimpleNamespace(time=lambda: 1.7e9))  # (in names and first events)
    rng = np.random.default_rng(0)
    big = Frame(run="r", step=9, kind="feature_maps", layer="conv1", wall_time=1009.0,  # (a PNG of 330 kB: numpy's path)
                payload={"images": rng.integers(0, 256, (64, 72, 72), dtype=np.uint8), "vmin": 0.0, "vmax": 1.0,
                         "normalisation": "per_map", "scale": 1.0, "sample": 0})
    frames = [*(f for s in range(3) for f in every_kind(s)), big]
    files = {}
    for name, crc in (("theirs", pywrap_tensorflow.masked_crc32c), ("ours", tb_module.masked_crc32c)):
        monkeypatch.setattr(tb_module, "masked_crc32c", crc)
        for export in (False, True):  # (a live sink's one file; an export's file per layer and kind)
            w = TensorBoardWriter(tmp_path / name / str(export), run="r", export=export)
            for f in frames:
                w.write(f)
            w.close()
        files[name] = {f"{p.parent.name}/{p.name.split('.convscope', 1)[1]}": p.read_bytes()
                       for p in (tmp_path / name).rglob("*") if p.is_file()}
    assert files["ours"] == files["theirs"]
    kinds = ["correlation", "feature_maps", "gradient_health", "groups", "histogram", "trajectory", "weight_grid"]
    assert sorted(files["ours"]) == sorted(["False/@r", *(f"True/-export@r@{k}" for k in ("dropped", "pruning", "scalar")),
                                            *(f"True/-export@r@conv1@{k}" for k in kinds)])
    assert max(map(len, files["ours"].values())) > 330_000
    assert _points(tmp_path / "ours" / "True")["conv1/feature_maps"] == [0, 1, 2, 9]


def test_a_damaged_record_in_an_earlier_versions_file_ends_what_is_kept_of_it(tmp_path) -> None:
    # (TensorBoard reads a file up to its first record whose data fails its checksum; taking that
    # record's tags out and keeping what follows it showed points TensorBoard had not shown)
    from tensorboard.compat.proto.event_pb2 import Event

    logdir, tb = _store(tmp_path / "runs"), tmp_path / "tb"
    tb.mkdir()
    old = _old_export(logdir, tb)
    data, at = bytearray(old.read_bytes()), 0
    while True:
        (length,) = struct.unpack_from("<Q", data, at)
        event = Event.FromString(bytes(data[at + 12:at + 12 + length]))
        if event.step == 2 and [v.tag for v in event.summary.value] == ["conv2/grad_norm"]:
            break
        at += 16 + length
    data[at + 12 + length - 2] ^= 1  # (in the value's float: it still reads as an event)
    assert Event.FromString(bytes(data[at + 12:at + 12 + length])).summary.value[0].tag == "conv2/grad_norm"
    old.write_bytes(bytes(data))
    before = _points(tb)
    assert before["loss"] == [0, 1, 2] and before["conv2/weights"] == [0, 1]
    export_run(logdir, "r", out=tmp_path / "o", formats="tensorboard", tensorboard_logdir=tb,
               layers="conv2", kinds="gradient_health")
    again = _tags(["conv2"], ["gradient_health"])
    assert _points(tb) == {t: steps for t, steps in before.items() if t not in again} | dict.fromkeys(again, list(range(5)))


def test_dropped_counts_are_scalars_by_sink(tmp_path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logdir, tb = tmp_path / "runs", tmp_path / "tb"
    with RunStore(logdir).create_run("r") as w:
        for s in range(3):
            w.write_many([frame("scalar", s), Frame(run="r", step=s, kind="dropped", payload={"count": 2 * s, "sink": "queue"},
                                                    wall_time=1000.0 + s)])
        w.write(Frame(run="r", step=2, kind="dropped", payload={"count": 7, "sink": "tensorboard"}, wall_time=1002.5))
    export_run(logdir, "r", out=tmp_path / "o", formats="tensorboard", tensorboard_logdir=tb)
    ea = EventAccumulator(str(tb), size_guidance={"scalars": 0})
    ea.Reload()
    assert sorted(ea.Tags()["scalars"]) == ["dropped/queue", "dropped/tensorboard", "loss"]
    assert [(e.step, e.value, e.wall_time) for e in ea.Scalars("dropped/queue")] == [(0, 0, 1000.0), (1, 2, 1001.0), (2, 4, 1002.0)]
    assert [(e.step, e.value) for e in ea.Scalars("dropped/tensorboard")] == [(2, 7)]
    assert sorted(name.split(".convscope-export@", 1)[1] for name in _files(tb)) == ["r@dropped", "r@scalar"]
    # (a kind of its own: exported alone, it replaces its file and keeps the loss)
    export_run(logdir, "r", out=tmp_path / "o", formats="tensorboard", tensorboard_logdir=tb, kinds="dropped", start=1)
    assert _points(tb) == {"loss": [0, 1, 2], "dropped/queue": [1, 2], "dropped/tensorboard": [2]}

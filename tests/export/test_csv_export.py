"""CSV tables: documented columns, every kind, exact float32 read back by pandas and csv."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from samples import every_kind, frame

from convscope.export import COLUMNS, CsvWriter
from convscope.export._csv import read_table
from convscope.export._files import layer_token
from convscope.frames import KINDS, Frame
from convscope.sinks import create_sink, list_sinks


def test_the_columns_table_of_the_docs_names_every_column() -> None:
    # (the gradient_health table's reasons column was missing from docs/exports.md)
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "exports.md").read_text()
    rows = dict(re.findall(r"^\| `(\w+)` \| (.*) \|$", doc.split("## CSV", 1)[1].split("## VTK", 1)[0], re.M))
    assert set(rows) == set(COLUMNS)
    for kind, columns in COLUMNS.items():
        documented = set(re.findall(r"\w+", rows[kind]))
        # dim0..2 stands for dim0, dim1, dim2
        missing = [c for c in columns if c not in documented and re.sub(r"\d$", "0", c) not in documented]
        assert not missing, f"docs/exports.md does not name the {kind} columns {missing}"


def test_every_kind_but_run_meta_has_a_table_with_its_documented_columns(tmp_path) -> None:
    w = CsvWriter(tmp_path)
    for step in range(3):
        for f in every_kind(step):
            w.write(f)
    w.close()
    assert set(COLUMNS) == set(KINDS) - {"run_meta", "scalars"}  # (a batch of scalars: a row per value in scalar.csv)
    for kind, columns in COLUMNS.items():
        layer = "" if kind in {"scalar", "dropped", "pruning"} else "conv1"
        table = pd.read_csv(w.path(kind, layer), keep_default_na=False)
        assert tuple(table.columns) == columns, kind
        assert sorted(set(table["step"])) == [0, 1, 2], kind


def test_float32_weights_read_back_exactly_by_pandas(tmp_path, weight_frame: Frame, awkward_weights) -> None:
    w = CsvWriter(tmp_path)
    w.write(weight_frame)
    w.close()
    table = pd.read_csv(w.path("weight_grid", "features.0"))  # pandas 3 parses floats exactly by default
    assert len(table) == awkward_weights.size
    got = table["value"].to_numpy(np.float64).astype(np.float32)
    assert np.array_equal(got.view(np.uint32), awkward_weights.ravel().view(np.uint32))  # bit for bit, zeros' signs too
    f, c, r, k = np.unravel_index(np.arange(awkward_weights.size), awkward_weights.shape)
    assert np.array_equal(table[["filter", "channel", "row", "col"]].to_numpy(), np.stack([f, c, r, k], 1))
    assert set(table["step"]) == {7} and set(table["layer"]) == {"features.0"}


def test_float64_scalars_and_wall_times_are_exact(tmp_path) -> None:
    w = CsvWriter(tmp_path)
    values = [0.1, 1 / 3, 2.0**-1074, 1e300, -0.0]
    for i, v in enumerate(values):
        w.write(Frame(run="r", step=i, kind="scalar", payload={"name": "loss", "value": v}, wall_time=1.7e9 + i / 3))
    w.close()
    rows = read_table(w.path("scalar"))
    assert rows["value"] == values
    assert rows["wall_time"] == [1.7e9 + i / 3 for i in range(len(values))]
    assert rows["name"] == ["loss"] * len(values)


def test_feature_maps_rows_and_a_column_layout_pandas_can_pivot(tmp_path) -> None:
    fr = frame("feature_maps", 3)
    w = CsvWriter(tmp_path)
    w.write(fr)
    w.close()
    t = pd.read_csv(w.path("feature_maps", "conv1"))
    images = fr.payload["images"]
    assert len(t) == images.size
    back = t.sort_values(["map", "row", "col"])["value"].to_numpy().reshape(images.shape)
    assert np.array_equal(back, images)


def test_correlation_histogram_distribution_values(tmp_path) -> None:
    w = CsvWriter(tmp_path)
    frames = {k: frame(k, 2) for k in ("correlation", "histogram", "distribution", "trajectory")}
    for f in frames.values():
        w.write(f)
    w.close()
    corr = pd.read_csv(w.path("correlation", "conv1"))
    m = frames["correlation"].payload["matrix"]
    assert np.array_equal(corr["r"].to_numpy().astype(np.float32).reshape(m.shape), m)
    hist = pd.read_csv(w.path("histogram", "conv1"))
    edges = frames["histogram"].payload["edges"]
    assert np.array_equal(hist["left"].to_numpy().astype(np.float32), edges[:-1])
    assert np.array_equal(hist["count"].to_numpy(), frames["histogram"].payload["counts"])
    dist = pd.read_csv(w.path("distribution", "conv1"))
    assert np.array_equal(dist["count"].to_numpy().reshape(4, 16), frames["distribution"].payload["counts"])
    traj = pd.read_csv(w.path("trajectory", "conv1"))
    p = frames["trajectory"].payload
    assert np.array_equal(traj[["dim0", "dim1", "dim2"]].to_numpy()[0].astype(np.float32), p["dims"])
    assert traj[["index0", "index1", "index2"]].to_numpy()[0].tolist() == [0, 5, 9]
    assert np.isnan(traj["pca2"][0])  # two principal axes only: the third column is empty (NaN)


def test_text_with_commas_and_quotes_is_quoted(tmp_path) -> None:
    w = CsvWriter(tmp_path)
    w.write(Frame(run="r", step=1, kind="pruning", payload={"removed": [1], "kept": [0, 2], "before": 3, "after": 2,
                                                             "reason": 'too "similar", r=0.99', "params_before": 9, "params_after": 6}))
    w.close()
    t = pd.read_csv(w.path("pruning"))
    assert t["reason"][0] == 'too "similar", r=0.99'
    assert t["kept"][0] == "0 2"


def test_layer_names_become_safe_file_names_of_their_own(tmp_path) -> None:
    assert layer_token("features.0") == "features.0"
    assert layer_token("block/conv 1") == "block%2Fconv%201"
    w = CsvWriter(tmp_path, kinds=["groups"])
    # (a/b and a_b were both written to groups-a_b.csv, one layer's rows among the other's)
    for i, layer in enumerate(["block/conv 1", "a/b", "a_b"]):
        w.write(frame("groups", i, layer=layer))
    w.write(frame("scalar", 1))  # filtered out by kinds
    w.close()
    assert sorted(p.name for p in w.files()) == ["groups-a%2Fb.csv", "groups-a_b.csv", "groups-block%2Fconv%201.csv"]
    assert [sorted(set(pd.read_csv(w.path("groups", layer))["layer"])) for layer in ("a/b", "a_b")] == [["a/b"], ["a_b"]]


def test_registered_as_a_live_sink(tmp_path) -> None:
    assert {"csv", "vtk", "tensorboard"} <= set(list_sinks())
    sink = create_sink("csv", out=tmp_path / "live")
    sink.write(frame("scalar", 1))
    sink.flush()  # visible while the run goes on
    assert (tmp_path / "live" / "scalar.csv").read_text().splitlines()[1].startswith("1,1001.0,loss,")
    sink.close()


@pytest.mark.parametrize("kind", ["weight_grid", "feature_maps"])
def test_big_tables_are_written_in_chunks(tmp_path, kind, monkeypatch) -> None:
    import convscope.export._csv as csv_mod

    monkeypatch.setattr(csv_mod, "_ROWS_PER_CHUNK", 7)  # several chunks, the last one short
    fr = frame(kind, 1)
    w = CsvWriter(tmp_path)
    w.write(fr)
    w.close()
    t = pd.read_csv(w.path(kind, "conv1"))
    data = fr.payload["weights" if kind == "weight_grid" else "images"]
    assert np.array_equal(t["value"].to_numpy().astype(data.dtype), data.ravel())


def test_create_sink_says_which_sinks_there_are_and_what_options_one_takes(tmp_path) -> None:
    from convscope.errors import DataError, NotFoundError

    with pytest.raises(NotFoundError, match="sink 'parquet' does not exist; choose one of csv, http, memory"):
        create_sink("parquet")
    with pytest.raises(DataError, match=r"sink 'csv' takes out=\.\.\., kinds=None, layers=None; missing a required argument: 'out'"):
        create_sink("csv")
    with pytest.raises(DataError, match=r"sink 'tensorboard' takes logdir=\.\.\., .*unexpected keyword argument 'out'"):
        create_sink("tensorboard", logdir=tmp_path, out=tmp_path)
    assert create_sink("csv", out=tmp_path, kinds="scalar").kinds == {"scalar"}

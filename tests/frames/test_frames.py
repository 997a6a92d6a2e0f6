"""The frame encoding: exact round trips for every kind, and clean errors on malformed bytes."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from convscope.errors import FrameError
from convscope.frames import (
    KINDS,
    SCHEMA,
    Frame,
    decode,
    decode_stream,
    encode,
    encoded_size,
    expand_scalars,
    to_jsonable,
)


def _payload(kind: str, rng: np.random.Generator) -> dict:
    p: dict = {k: float(rng.normal()) for k in SCHEMA[kind]}
    if kind == "correlation":
        p = {"matrix": rng.normal(size=(5, 5)).astype(np.float32), "dead": np.array([0, 1, 0, 0, 0], bool)}
    if kind == "groups":
        p = {"labels": np.array([0, 0, 1, -1], np.int32), "threshold": 0.8, "method": "pairs",
             "events": [{"type": "split", "ids": [3, 4], "from": [1]}]}
    if kind == "feature_maps":
        p.update(images=rng.integers(0, 255, size=(3, 7, 9), dtype=np.uint8), normalisation="shared")
    if kind == "pruning":
        p.update(removed={"conv1": [1, 2]}, kept={"conv1": [0, 3]})
    return p


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_round_trips_exactly(kind: str) -> None:
    rng = np.random.default_rng(0)
    f = Frame(run="run-1", step=12, kind=kind, layer="features.0", payload=_payload(kind, rng), wall_time=1.5)
    g = decode(encode(f))
    assert (g.run, g.step, g.kind, g.layer, g.wall_time) == ("run-1", 12, kind, "features.0", 1.5)
    assert set(g.payload) == set(f.payload)
    for key, value in f.payload.items():
        if isinstance(value, np.ndarray):
            assert g.payload[key].dtype == value.dtype
            np.testing.assert_array_equal(g.payload[key], value)
        else:
            assert g.payload[key] == value


@settings(max_examples=60, deadline=None)
@given(
    arrays=st.lists(
        hnp.arrays(
            dtype=st.sampled_from([np.float32, np.float64, np.int8, np.int32, np.int64, np.uint8, np.bool_, np.float16]),
            shape=hnp.array_shapes(min_dims=0, max_dims=4, max_side=5),
        ),
        max_size=4,
    ),
    step=st.integers(0, 2**62),
)
def test_arbitrary_arrays_round_trip_bit_exact(arrays: list[np.ndarray], step: int) -> None:
    payload = {"name": "x", "value": 1.0, "extra": {f"a{i}": a for i, a in enumerate(arrays)}}
    g = decode(encode(Frame(run="r", step=step, kind="scalar", payload=payload)))
    assert g.step == step
    for i, a in enumerate(arrays):
        b = g.payload["extra"][f"a{i}"]
        assert b.dtype == a.dtype and b.shape == a.shape
        assert a.tobytes() == b.tobytes()


def test_arrays_are_8_byte_aligned_and_big_endian_is_normalised() -> None:
    a = np.arange(3, dtype=np.uint8)
    b = np.arange(4, dtype=">f8")
    data = encode(Frame(run="r", step=0, kind="scalar", payload={"name": "n", "value": 0, "a": a, "b": b}))
    assert len(data) % 8 == 0
    g = decode(data)
    assert g.payload["b"].dtype == np.dtype("<f8")
    np.testing.assert_array_equal(g.payload["b"], b)


def test_stream_of_concatenated_frames() -> None:
    frames = [Frame(run="r", step=i, kind="scalar", payload={"name": "loss", "value": 1.0 / (i + 1)}) for i in range(5)]
    blob = b"".join(encode(f) for f in frames)
    back = list(decode_stream(blob))
    assert [f.step for f in back] == list(range(5))
    assert back[3].payload["value"] == pytest.approx(0.25)
    assert encoded_size(blob) == len(encode(frames[0]))


def test_a_batch_of_scalars_expands_to_one_scalar_frame_per_value() -> None:
    steps = np.array([4, 5, 7])
    f = decode(encode(Frame(run="r", step=7, kind="scalars", wall_time=12.0,
                            payload={"name": "acc", "steps": steps, "values": np.array([0.5, np.nan, 1.0])})))
    got = expand_scalars(f)
    assert [(g.kind, g.step, g.wall_time, g.payload["name"]) for g in got] == [("scalar", s, 12.0, "acc") for s in (4, 5, 7)]
    assert np.array_equal([g.payload["value"] for g in got], [0.5, np.nan, 1.0], equal_nan=True)
    timed = Frame(run="r", step=5, kind="scalars", payload={"name": "l", "steps": steps[:2], "values": np.zeros(2), "wall_times": np.array([1.5, 2.5])})
    assert [g.wall_time for g in expand_scalars(timed)] == [1.5, 2.5]
    other = Frame(run="r", step=1, kind="scalar", payload={"name": "l", "value": 1.0})
    assert expand_scalars(other) == [other]
    with pytest.raises(FrameError, match="3 steps, 2 values"):
        expand_scalars(Frame(run="r", step=7, kind="scalars", payload={"name": "l", "steps": steps, "values": np.zeros(2)}))


def test_unknown_kind_and_missing_keys_are_refused() -> None:
    with pytest.raises(FrameError, match="unknown frame kind"):
        encode(Frame(run="r", step=0, kind="nope", payload={}))
    with pytest.raises(FrameError, match="lacks payload keys"):
        encode(Frame(run="r", step=0, kind="correlation", payload={"matrix": np.zeros((2, 2))}))


def test_non_encodable_values_give_clear_errors() -> None:
    with pytest.raises(FrameError, match="cannot be encoded"):
        encode(Frame(run="r", step=0, kind="scalar", payload={"name": "x", "value": object()}))
    with pytest.raises(FrameError, match="dtype"):
        encode(Frame(run="r", step=0, kind="scalar", payload={"name": "x", "value": np.array(["a"])}))


def test_nan_and_inf_survive_and_json_view_is_strict_json() -> None:
    import json

    f = Frame(run="r", step=0, kind="scalar", payload={"name": "loss", "value": float("nan"), "a": np.array([np.inf])})
    g = decode(encode(f))
    assert np.isnan(g.payload["value"]) and np.isinf(g.payload["a"][0])
    json.dumps(to_jsonable(g.payload), allow_nan=False)


def _valid() -> bytes:
    return encode(Frame(run="r", step=1, kind="correlation", payload={
        "matrix": np.ones((3, 3), np.float32), "dead": np.zeros(3, bool)}))


@pytest.mark.parametrize("cut", [0, 3, 23, 24, 40, -1])
def test_truncated_frames(cut: int) -> None:
    data = _valid()
    with pytest.raises(FrameError):
        decode(data[:cut] if cut >= 0 else data[:-8])


def test_lying_header_lengths_and_array_specs() -> None:
    data = bytearray(_valid())
    bad = bytearray(data)
    struct.pack_into("<Q", bad, 16, 1 << 40)
    with pytest.raises(FrameError):
        decode(bytes(bad))
    head_len = struct.unpack_from("<I", data, 8)[0]
    header = bytes(data[24 : 24 + head_len]).replace(b'"shape":[3,3]', b'"shape":[9,9]')
    with pytest.raises(FrameError, match="runs past"):
        decode(bytes(data[:24]) + header + bytes(data[24 + head_len :]))
    header = bytes(data[24 : 24 + head_len]).replace(b'"<f4"', b'"|O8"')
    with pytest.raises(FrameError, match="dtype"):
        decode(bytes(data[:24]) + header + bytes(data[24 + head_len :]))


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=200), flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=6))
def test_fuzzed_bytes_raise_only_frame_errors(data: bytes, flips: list[tuple[int, int]]) -> None:
    for blob in (data, b"CSFR" + data):
        try:
            list(decode_stream(blob))
        except FrameError:
            pass
    mutated = bytearray(_valid())
    for pos, val in flips:
        mutated[pos % len(mutated)] = val
    try:
        decode(bytes(mutated))
    except FrameError:
        pass


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(_JSON_VALUES)
def test_the_header_is_the_json_that_json_module_writes_compact(value: object) -> None:
    import json

    import convscope.frames as frames_module

    header = {"run": "r", "step": 1, "payload": {"value": value}, "arrays": []}
    # (the encoder made once must write what a compact JSONEncoder writes: ASCII, NaN allowed)
    assert frames_module._header_json(header) == json.JSONEncoder(separators=(",", ":"), allow_nan=True).encode(header)

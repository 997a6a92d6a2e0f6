"""Frames: every observation of a run, and their one binary encoding.

A :class:`Frame` is one typed, timestamped observation ``(run, step, wall_time, layer, kind,
payload)``. ``kind`` is one of :data:`KINDS`; the payload is a dict of numpy arrays, numbers,
strings, lists and dicts whose keys for each kind are listed in :data:`SCHEMA` (and documented
in ``docs/frames.md``). This module depends on numpy only, never on torch.

The encoding (version 1) is self-delimiting, so frames can be concatenated in a file or an
HTTP body and read back one after another::

    offset  size  field
    0       4     magic b"CSFR"
    4       2     version (u16, little-endian)
    6       2     flags (u16, 0)
    8       4     header length H (u32)
    12      4     reserved (0)
    16      8     blob length B (u64)
    24      H     JSON header (UTF-8), padded with spaces to a multiple of 8
    24+H'   B     array blob: each array's raw little-endian bytes at an 8-byte aligned offset

The header holds run, step, wall_time, layer, kind and the payload with every array replaced
by ``{"__array__": i}``; ``arrays[i]`` gives its dtype, shape and offset in the blob. Nothing
is ever unpickled: decoding only parses JSON and copies bytes into numpy arrays of a short list
of plain dtypes, and checks every length against the buffer.

Example:
    >>> import numpy as np
    >>> f = Frame(run="r1", step=3, kind="correlation", layer="conv1",
    ...           payload={"matrix": np.eye(2, dtype=np.float32), "dead": np.zeros(2, bool)})
    >>> g = decode(encode(f))
    >>> g.step, g.payload["matrix"].shape
    (3, (2, 2))
"""

from __future__ import annotations

import json
import math
import struct
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from convscope.errors import FrameError

__all__ = [
    "Frame",
    "KINDS",
    "SCHEMA",
    "VERSION",
    "MAX_FRAME_BYTES",
    "encode",
    "forget_encoding",
    "kept_encoding",
    "check_kinds",
    "decode",
    "decode_stream",
    "encoded_size",
    "expand_scalars",
    "validate",
    "to_jsonable",
]

VERSION = 1
MAGIC = b"CSFR"
_PREFIX = struct.Struct("<4sHHIIQ")  # 24 bytes
MAX_FRAME_BYTES = 1 << 30  # 1 GiB: a decoder refuses anything larger
MAX_HEADER_BYTES = 16 << 20
MAX_DIMS = 8

#: Required payload keys of each kind (extra keys are allowed and kept).
SCHEMA: dict[str, tuple[str, ...]] = {
    "scalar": ("name", "value"),
    "scalars": ("name", "steps", "values"),
    "histogram": ("name", "edges", "counts"),
    "weight_grid": ("weights", "vmax"),
    "trajectory": ("dims", "dim_index", "pca", "explained_variance"),
    "distribution": ("counts", "bins", "min", "max", "mean", "std"),
    "feature_maps": ("images", "vmin", "vmax", "normalisation", "scale", "sample"),
    "correlation": ("matrix", "dead"),
    "groups": ("labels", "threshold", "method", "events"),
    "gradient_health": ("status", "grad_norm", "update_ratio", "zero_fraction", "dead_fraction", "nonfinite"),
    "pruning": ("removed", "kept", "before", "after", "reason", "params_before", "params_after"),
    "dropped": ("count", "sink"),
    "run_meta": ("event",),
}
KINDS: tuple[str, ...] = tuple(SCHEMA)

# dtype strings accepted on the wire (numpy's, little-endian or byte-order free)
_DTYPES = {"<f4", "<f8", "<f2", "|i1", "<i2", "<i4", "<i8", "|u1", "<u2", "<u4", "<u8", "|b1"}


@dataclass(frozen=True)
class Frame:
    """One observation of one run.

    Attributes:
        run: the run's id.
        step: the training step (or any monotonically increasing counter).
        kind: one of :data:`KINDS`.
        payload: the kind's data (see :data:`SCHEMA`); arrays are numpy arrays.
        layer: the layer it describes (graph layer id), ``""`` for run-level frames.
        wall_time: seconds since the epoch when it was observed.
    """

    run: str
    step: int
    kind: str
    payload: Mapping[str, Any]
    layer: str = ""
    wall_time: float = field(default_factory=time.time)

    def nbytes(self) -> int:
        """Bytes of array data in the payload (a cheap size estimate)."""
        return sum(a.nbytes for a in _iter_arrays(self.payload))


def check_kinds(names: Iterable[str], error: type[Exception] = FrameError) -> None:
    """Raise ``error`` naming those of ``names`` that no frame has (a misspelt kind in a filter
    would otherwise select nothing, silently).

    Example:
        >>> check_kinds(["weight_grid", "weights"])
        Traceback (most recent call last):
        ...
        convscope.errors.FrameError: unknown frame kinds ['weights']; the kinds are scalar, scalars, ...
    """
    unknown = [k for k in names if k not in SCHEMA]
    if unknown:
        raise error(f"unknown frame kinds {unknown}; the kinds are {', '.join(KINDS)}")


def validate(frame: Frame) -> None:
    """Raise :class:`FrameError` unless ``frame`` has a known kind and its required keys."""
    if frame.kind not in SCHEMA:
        raise FrameError(f"unknown frame kind {frame.kind!r}; expected one of {', '.join(KINDS)}")
    if not isinstance(frame.step, int | np.integer) or frame.step < 0:
        raise FrameError(f"frame step must be a non-negative integer, got {frame.step!r}")
    if not isinstance(frame.run, str) or not frame.run:
        raise FrameError("frame run must be a non-empty string")
    missing = [k for k in SCHEMA[frame.kind] if k not in frame.payload]
    if missing:
        raise FrameError(f"{frame.kind} frame for layer {frame.layer!r} lacks payload keys {missing}")


def encode(frame: Frame, *, check: bool = True, keep: bool = False) -> bytes:
    """Encode one frame (see the module docstring for the layout).

    ``keep=True`` keeps the bytes with the frame, and later calls return them without encoding
    again (a frame is not changed once made), until :func:`forget_encoding`: the in situ
    monitor encodes each frame once, on the thread that analyses, for every sink that encodes.
    """
    kept = frame.__dict__.get(_KEPT)
    if kept is not None:
        return kept
    data = _encode(frame, check=check)
    if keep:
        object.__setattr__(frame, _KEPT, data)  # (not a field: equality and repr ignore it)
    return data


def forget_encoding(frame: Frame) -> None:
    """Drop the bytes that ``encode(frame, keep=True)`` kept (once every sink has them)."""
    frame.__dict__.pop(_KEPT, None)


def kept_encoding(frame: Frame) -> bytes | None:
    """The bytes that ``encode(frame, keep=True)`` kept, or ``None``."""
    return frame.__dict__.get(_KEPT)


#: where ``encode(keep=True)`` keeps a frame's bytes (an attribute outside the dataclass's fields)
_KEPT = "_encoded"


def _encode(frame: Frame, *, check: bool) -> bytes:
    if check:
        validate(frame)
    arrays: list[np.ndarray] = []
    payload = _strip_arrays(frame.payload, arrays)
    # the arrays' specs written straight as JSON (dtype names and integers only: nothing to
    # escape) after the rest of the header, the same bytes as the encoder's: without its walk
    # over their dicts a trajectory frame (six arrays) took 13.7 us to encode against 15.6
    specs = []
    offset = 0
    for a in arrays:
        spec = _SPECS.get((a.dtype, a.shape))  # (frames of a kind repeat their arrays' shapes)
        if spec is None:
            spec = _spec(a)
        specs.append(f"{spec}{offset}}}")
        offset += (a.nbytes + 7) & ~7
    header = {
        "run": frame.run,
        "step": int(frame.step),
        "wall_time": float(frame.wall_time),
        "layer": frame.layer,
        "kind": frame.kind,
        "payload": payload,
    }
    head = f'{_header_json(header)[:-1]},"arrays":[{",".join(specs)}]}}'.encode()
    pad = _pad8(len(head)) - len(head)
    parts: list[bytes | memoryview] = [_PREFIX.pack(MAGIC, VERSION, 0, len(head) + pad, 0, offset), head, b" " * pad]
    for a in arrays:
        parts.append(a.data if a.ndim else a.tobytes())  # the buffer itself: join copies it once
        if a.nbytes % 8:
            parts.append(_ZEROS[a.nbytes % 8])
    return b"".join(parts)


def encoded_size(data: bytes | memoryview, offset: int = 0) -> int:
    """The total length of the frame that starts at ``offset`` (reads only its prefix)."""
    view = memoryview(data)
    if len(view) - offset < _PREFIX.size:
        raise FrameError("truncated frame: fewer bytes than the 24-byte prefix")
    magic, version, _flags, hlen, _res, blen = _PREFIX.unpack_from(view, offset)
    if magic != MAGIC:
        raise FrameError("not a convscope frame (bad magic bytes)")
    if version != VERSION:
        raise FrameError(f"frame encoding version {version} is not supported (this convscope reads {VERSION})")
    if hlen > MAX_HEADER_BYTES or hlen % 8:
        raise FrameError(f"corrupt frame: header length {hlen}")
    total = _PREFIX.size + hlen + blen
    if total > MAX_FRAME_BYTES:
        raise FrameError(f"frame of {total} bytes exceeds the limit of {MAX_FRAME_BYTES}")
    return total


def decode(data: bytes | bytearray | memoryview, *, copy: bool = True) -> Frame:
    """Decode exactly one frame; raise :class:`FrameError` on anything malformed.

    With ``copy=False`` arrays are read-only views into ``data`` (faster for big frames).
    """
    view = memoryview(data)
    total = encoded_size(view)
    if total != len(view):
        if total > len(view):
            raise FrameError(f"truncated frame: {len(view)} bytes of {total}")
        raise FrameError(f"trailing bytes after frame: {len(view) - total}; use decode_stream for several")
    return _decode_at(view, 0, total, copy=copy)


def decode_stream(data: bytes | bytearray | memoryview, *, copy: bool = True) -> Iterator[Frame]:
    """Decode concatenated frames, one after another."""
    view = memoryview(data)
    pos = 0
    while pos < len(view):
        total = encoded_size(view, pos)
        if pos + total > len(view):
            raise FrameError(f"truncated frame at byte {pos}: {len(view) - pos} bytes of {total}")
        yield _decode_at(view, pos, total, copy=copy)
        pos += total


def expand_scalars(frame: Frame) -> list[Frame]:
    """A ``scalars`` frame (one name's values over several steps, as the monitor batches what
    ``log()`` gets) as one ``scalar`` frame per value; any other frame alone.

    ``wall_times`` (when the payload has it) gives each value's time, else the frame's.

    Example:
        >>> f = Frame(run="r", step=3, kind="scalars", payload={
        ...     "name": "loss", "steps": np.array([1, 2, 3]), "values": np.array([0.9, 0.5, 0.4])})
        >>> [(g.kind, g.step, g.payload["value"]) for g in expand_scalars(f)]
        [('scalar', 1, 0.9), ('scalar', 2, 0.5), ('scalar', 3, 0.4)]
    """
    if frame.kind != "scalars":
        return [frame]
    p = frame.payload
    steps = np.asarray(p["steps"]).reshape(-1).tolist()
    values = np.asarray(p["values"], dtype=np.float64).reshape(-1).tolist()
    times = p.get("wall_times")
    walls = [frame.wall_time] * len(steps) if times is None else np.asarray(times, dtype=np.float64).reshape(-1).tolist()
    if not len(steps) == len(values) == len(walls):
        raise FrameError(f"scalars frame {p.get('name')!r}: {len(steps)} steps, {len(values)} values, {len(walls)} wall times")
    name = p["name"]
    return [
        Frame(run=frame.run, step=int(s), kind="scalar", layer=frame.layer, wall_time=float(t), payload={"name": name, "value": v})
        for s, v, t in zip(steps, values, walls, strict=True)
    ]


def to_jsonable(value: Any, *, max_array: int | None = None) -> Any:
    """The payload (or any value) with arrays as nested lists and NaN/inf as strings, for JSON/CSV."""
    if isinstance(value, np.ndarray):
        if max_array is not None and value.size > max_array:
            return {"dtype": value.dtype.str, "shape": list(value.shape), "omitted": True}
        return to_jsonable(value.tolist())
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v, max_array=max_array) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v, max_array=max_array) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


# ---------------------------------------------------------------------------------------------


_PLAIN = frozenset((bool, int, float, str))
#: one encoder for every header (``json.dumps`` with options builds a new one per call)
_JSON = json.JSONEncoder(separators=(",", ":"), allow_nan=True)
#: and json's C encoder behind it, made once: ``JSONEncoder.encode`` makes one at every call, a
#: quarter of a small header's encoding (6.5 against 4.8 us). Without the circular-reference
#: check: a header's payload is the one _strip_arrays has just built, which has no cycles.
_C_ENCODER = getattr(json.encoder, "c_make_encoder", None)
_HEADER = None if _C_ENCODER is None else _C_ENCODER(None, _JSON.default, json.encoder.encode_basestring_ascii, None, ":", ",", False, False, True)
_ZEROS = {k: b"\0" * (8 - k) for k in range(1, 8)}
#: the wire name of each dtype encoded as it is (native little-endian or byte-order free)
_WIRE = {np.dtype(d): d for d in _DTYPES}


#: the start of an array's spec in the header, up to its offset, by dtype and shape (a bounded cache)
_SPECS: dict[tuple[np.dtype, tuple[int, ...]], str] = {}


def _spec(a: np.ndarray) -> str:
    shape = ",".join([str(n) for n in a.shape])
    spec = f'{{"dtype":"{_WIRE[a.dtype]}","shape":[{shape}],"offset":'
    if len(_SPECS) >= 4096:
        _SPECS.clear()
    _SPECS[(a.dtype, a.shape)] = spec
    return spec


def _header_json(header: dict[str, Any]) -> str:
    """A frame's header as compact JSON (what ``_JSON.encode`` writes)."""
    return _JSON.encode(header) if _HEADER is None else "".join(_HEADER(header, 0))


def _pad8(n: int) -> int:
    return (n + 7) & ~7


def _iter_arrays(value: Any) -> Iterator[np.ndarray]:
    if isinstance(value, np.ndarray):
        yield value
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from _iter_arrays(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _iter_arrays(v)


def _strip_arrays(value: Any, arrays: list[np.ndarray]) -> Any:
    kind = type(value)
    if value is None or kind in _PLAIN:  # most values: checked first, without isinstance's ABC walk
        return value
    if isinstance(value, np.ndarray):
        return _strip_array(value, arrays)
    if kind is dict or isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise FrameError(f"payload keys must be strings, got {k!r}")
            if k == "__array__":
                raise FrameError("payload key '__array__' is reserved")
            kind = type(v)
            if v is None or kind in _PLAIN:
                out[k] = v
            elif kind is np.ndarray and v.dtype in _WIRE and v.flags.c_contiguous and v.ndim <= MAX_DIMS:  # (most arrays: inline)
                arrays.append(v)
                out[k] = {"__array__": len(arrays) - 1}
            else:
                out[k] = _strip_arrays(v, arrays)
        return out
    if isinstance(value, list | tuple):
        return [v if v is None or type(v) in _PLAIN else _strip_arrays(v, arrays) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bool | int | float | str):
        return value
    raise FrameError(
        f"payload value of type {type(value).__name__} cannot be encoded; "
        "use numpy arrays, numbers, strings, lists and dicts (convert torch tensors with .cpu().numpy())"
    )


def _strip_array(a: np.ndarray, arrays: list[np.ndarray]) -> dict[str, int]:
    if a.dtype not in _WIRE:  # (a dict lookup: numpy builds dtype.str anew on every call)
        if a.dtype.byteorder == ">":
            a = a.astype(a.dtype.newbyteorder("<"))
        if a.dtype.str not in _DTYPES:
            raise FrameError(f"arrays of dtype {a.dtype} cannot be encoded; use one of {sorted(_DTYPES)}")
    if a.ndim > MAX_DIMS:
        raise FrameError(f"arrays of more than {MAX_DIMS} dimensions cannot be encoded")
    arrays.append(a if a.flags.c_contiguous else a.copy(order="C"))
    return {"__array__": len(arrays) - 1}


def _decode_at(view: memoryview, pos: int, total: int, *, copy: bool) -> Frame:
    _magic, _version, _flags, hlen, _res, blen = _PREFIX.unpack_from(view, pos)
    start = pos + _PREFIX.size
    try:
        header = json.loads(bytes(view[start : start + hlen]))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise FrameError(f"corrupt frame header: {exc}") from None
    if not isinstance(header, dict):
        raise FrameError("corrupt frame header: not a JSON object")
    blob = view[start + hlen : pos + total]
    arrays: list[np.ndarray] = []
    specs = header.get("arrays", [])
    if not isinstance(specs, list):
        raise FrameError("corrupt frame header: 'arrays' is not a list")
    for i, spec in enumerate(specs):
        arrays.append(_read_array(blob, spec, i, blen, copy=copy))
    try:
        run, step, kind = header["run"], header["step"], header["kind"]
        layer, wall_time = header.get("layer", ""), header.get("wall_time", 0.0)
        payload = _restore_arrays(header.get("payload", {}), arrays)
    except KeyError as exc:
        raise FrameError(f"corrupt frame header: missing {exc}") from None
    except RecursionError:
        raise FrameError("corrupt frame header: payload nested too deeply") from None
    if not (isinstance(run, str) and isinstance(kind, str) and isinstance(layer, str)):
        raise FrameError("corrupt frame header: run, kind and layer must be strings")
    if not isinstance(step, int) or isinstance(step, bool) or not isinstance(wall_time, int | float):
        raise FrameError("corrupt frame header: step must be an integer and wall_time a number")
    if not isinstance(payload, dict):
        raise FrameError("corrupt frame header: payload is not an object")
    frame = Frame(run=run, step=step, kind=kind, layer=layer, wall_time=float(wall_time), payload=payload)
    validate(frame)
    return frame


def _read_array(blob: memoryview, spec: Any, i: int, blen: int, *, copy: bool) -> np.ndarray:
    if not isinstance(spec, dict):
        raise FrameError(f"corrupt frame: array {i} description is not an object")
    dtype, shape, offset = spec.get("dtype"), spec.get("shape"), spec.get("offset")
    if dtype not in _DTYPES:
        raise FrameError(f"corrupt frame: array {i} has unsupported dtype {dtype!r}")
    if (
        not isinstance(shape, list)
        or len(shape) > MAX_DIMS
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
    ):
        raise FrameError(f"corrupt frame: array {i} has an invalid shape {shape!r}")
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0 or offset % 8:
        raise FrameError(f"corrupt frame: array {i} has an invalid offset {offset!r}")
    dt = np.dtype(dtype)
    count = math.prod(shape)
    nbytes = count * dt.itemsize
    if offset + nbytes > blen:
        raise FrameError(f"corrupt frame: array {i} ({nbytes} bytes at {offset}) runs past the blob ({blen} bytes)")
    arr = np.frombuffer(blob, dtype=dt, count=count, offset=offset).reshape(shape)
    return arr.copy() if copy else arr


def _restore_arrays(value: Any, arrays: list[np.ndarray]) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__array__"}:
            idx = value["__array__"]
            if not isinstance(idx, int) or isinstance(idx, bool) or not 0 <= idx < len(arrays):
                raise FrameError(f"corrupt frame: reference to array {idx!r} of {len(arrays)}")
            return arrays[idx]
        return {k: _restore_arrays(v, arrays) for k, v in value.items()}
    if isinstance(value, list):
        return [_restore_arrays(v, arrays) for v in value]
    return value

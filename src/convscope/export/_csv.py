"""CSV export: one tidy table per (kind, layer), readable by pandas, Matlab and ParaView.

Columns of each kind are listed in :data:`COLUMNS` and documented in ``docs/exports.md``.
Numbers are written with the shortest digits that read back to the same value in their own
precision (numpy's round-trip repr), so float32 values are exact when read as float64 and cast
back to float32, and float64 values are exact as they are.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from convscope.errors import DataError
from convscope.export._files import layer_token
from convscope.export._select import choice, selected
from convscope.frames import Frame
from convscope.sinks._base import Sink

__all__ = ["COLUMNS", "CsvWriter", "frame_table"]

#: the columns of each kind's table, in order
COLUMNS: dict[str, tuple[str, ...]] = {
    "scalar": ("step", "wall_time", "name", "value"),
    "histogram": ("step", "layer", "name", "bin", "left", "right", "count"),
    "weight_grid": ("step", "layer", "filter", "channel", "row", "col", "value"),
    "trajectory": ("step", "wall_time", "layer", "dim0", "dim1", "dim2", "index0", "index1", "index2", "pca0", "pca1", "pca2",
                   "explained0", "explained1", "explained2"),
    "distribution": ("step", "layer", "filter", "bin", "count", "min", "max", "mean", "std"),
    "feature_maps": ("step", "layer", "sample", "map", "row", "col", "value", "vmin", "vmax"),
    "correlation": ("step", "layer", "i", "j", "r", "dead_i", "dead_j"),
    "groups": ("step", "layer", "filter", "group"),
    "gradient_health": ("step", "wall_time", "layer", "status", "grad_norm", "update_ratio", "zero_fraction", "dead_fraction", "nonfinite", "reasons"),
    "pruning": ("step", "wall_time", "layer", "before", "after", "removed", "kept", "reason", "params_before", "params_after"),
    "dropped": ("step", "wall_time", "count", "sink"),
}

_ROWS_PER_CHUNK = 1 << 20


def _grid(*sizes: int) -> list[np.ndarray]:
    return [a.ravel() for a in np.meshgrid(*(np.arange(s, dtype=np.int64) for s in sizes), indexing="ij")]


def _pad3(a: Any, dtype: Any) -> list[Any]:
    v = np.asarray(a, dtype=dtype).ravel()[:3]
    return [v[i] if i < len(v) else np.nan for i in range(3)] if dtype is not np.int64 else [v[i] if i < len(v) else -1 for i in range(3)]


def frame_table(frame: Frame) -> tuple[tuple[str, ...], list[Any]] | None:
    """The frame as columns (:data:`COLUMNS` of its kind): arrays of one length, or scalars.

    ``None`` for kinds that have no table (``run_meta``).
    """
    p, k = frame.payload, frame.kind
    if k not in COLUMNS:
        return None
    base = {"step": frame.step, "wall_time": np.float64(frame.wall_time), "layer": frame.layer}
    cols: dict[str, Any]
    if k == "scalar":
        cols = {"name": str(p["name"]), "value": np.float64(p["value"])}
    elif k == "histogram":
        edges, counts = np.asarray(p["edges"]), np.asarray(p["counts"])
        cols = {"name": str(p["name"]), "bin": np.arange(len(counts)), "left": edges[:-1], "right": edges[1:], "count": counts}
    elif k == "weight_grid":
        from convscope.export._scenes import weight_layout

        w = np.asarray(p["weights"])
        f, c, kh, kw = weight_layout(w.shape)
        fi, ci, ri, ki = _grid(f, c, kh, kw)
        cols = {"filter": fi, "channel": ci, "row": ri, "col": ki, "value": w.ravel()}
    elif k == "trajectory":
        d, i, q, e = _pad3(p["dims"], np.float32), _pad3(p["dim_index"], np.int64), _pad3(p["pca"], np.float32), _pad3(p["explained_variance"], np.float32)
        cols = dict(zip(COLUMNS[k][3:], [*d, *i, *q, *e], strict=True))
    elif k == "distribution":
        counts = np.asarray(p["counts"])
        f, b = counts.shape
        fi, bi = _grid(f, b)
        cols = {"filter": fi, "bin": bi, "count": counts.ravel()}
        for stat in ("min", "max", "mean", "std"):
            cols[stat] = np.repeat(np.asarray(p[stat]), b)
    elif k == "feature_maps":
        images = np.asarray(p["images"])
        if images.ndim == 2:
            images = images[None]
        lead = images.shape[:-2]
        h, w = images.shape[-2:]
        if len(lead) == 1:  # one sample's maps (the frame kind's layout)
            mi, ri, ci = _grid(lead[0], h, w)
            si: Any = int(p.get("sample", 0))
        else:  # [N, F, H, W]: several samples
            si, mi, ri, ci = _grid(*lead[-2:], h, w)
        cols = {"sample": si, "map": mi, "row": ri, "col": ci, "value": images.ravel()}
        for key in ("vmin", "vmax"):  # one number, or one per map (per-map normalisation)
            v = np.asarray(p[key])
            cols[key] = v.item() if v.size == 1 else np.repeat(v.ravel(), h * w) if v.size * h * w == images.size else np.tile(np.repeat(v.ravel(), h * w), images.size // (v.size * h * w))
    elif k == "correlation":
        m, dead = np.asarray(p["matrix"]), np.asarray(p["dead"]).astype(np.int8)
        n = m.shape[0]
        ii, jj = _grid(n, n)
        cols = {"i": ii, "j": jj, "r": m.ravel(), "dead_i": dead[ii], "dead_j": dead[jj]}
    elif k == "groups":
        labels = np.asarray(p["labels"])
        cols = {"filter": np.arange(len(labels)), "group": labels}
    elif k == "gradient_health":
        cols = {key: (str(p[key]) if key == "status" else np.float64(p[key])) for key in COLUMNS[k][3:-1]}
        cols["nonfinite"] = int(p["nonfinite"])
        cols["reasons"] = "; ".join(p.get("reasons", ()))  # (frames written before reasons were stored: none)
    elif k == "pruning":
        cols = {key: p.get(key) for key in COLUMNS[k][3:]}
        cols["removed"] = " ".join(str(int(v)) for v in np.asarray(p["removed"]).ravel())
        cols["kept"] = " ".join(str(int(v)) for v in np.asarray(p["kept"]).ravel())
        cols["reason"] = str(p["reason"])
    else:  # dropped
        cols = {"count": int(p["count"]), "sink": str(p["sink"])}
    merged = {**base, **cols}
    names = COLUMNS[k]
    return names, [merged[n] for n in names]


def _constant(col: Any) -> str:
    """A value that is the same on every row of a frame's table, as CSV text."""
    if col is None:
        return ""
    if isinstance(col, np.ndarray):
        col = col.item()
    if isinstance(col, np.floating):
        return str(col)  # numpy's shortest round-trip digits of its own precision
    if isinstance(col, float):
        return repr(col)
    if isinstance(col, bool | np.bool_):
        return str(int(col))
    text = str(col)
    if any(ch in text for ch in ',"\n\r'):
        text = '"' + text.replace('"', '""') + '"'
    return text


def _spec(a: np.ndarray) -> str:
    if a.dtype.kind == "f":
        # 9 significant digits read back to the same float32; float64 needs repr's up to 17
        return "%r" if a.dtype.itemsize > 4 else "%.9g"
    if a.dtype.kind in "iub":
        return "%d"
    raise DataError(f"a CSV column of dtype {a.dtype} is not numbers; pass numbers or one constant")


def write_table(fh: IO[str], columns: Sequence[Any], *, chunk: int = _ROWS_PER_CHUNK) -> int:
    """Append the rows of ``columns`` (numeric arrays of one length, and constants) to ``fh``.

    Returns the number of rows. Varying columns are formatted by C ``%`` formatting of a whole
    chunk at once (about 25 times faster than a Python loop over rows).
    """
    arrays = [np.asarray(c).ravel() for c in columns if isinstance(c, np.ndarray) and c.ndim > 0]
    lengths = {len(a) for a in arrays}
    if len(lengths) > 1:
        raise DataError(f"table columns differ in length: {sorted(lengths)}")
    n = lengths.pop() if lengths else 1
    specs = []
    for c in columns:
        if isinstance(c, np.ndarray) and c.ndim > 0:
            specs.append(_spec(c))
        else:
            specs.append(_constant(c).replace("%", "%%"))
    row = ",".join(specs) + "\n"
    if not arrays:
        fh.write(row.replace("%%", "%"))
        return 1
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        # interleave the varying columns row by row; Python numbers keep each one's precision
        block = np.empty((stop - start, len(arrays)), dtype=object)
        for i, a in enumerate(arrays):
            part = a[start:stop]
            block[:, i] = (part.astype(np.float64) if a.dtype.kind == "f" else part.astype(np.int64)).tolist()
        fh.write((row * (stop - start)) % tuple(block.ravel().tolist()))
    return n


class CsvWriter(Sink):
    """Writes frames to CSV tables in ``out``: ``<kind>.csv`` or ``<kind>-<layer>.csv``.

    A live sink (``create_sink("csv", out="run-csv")``) and what ``convscope export --format csv``
    uses. Each table gets its header when its first frame comes; rows are appended in
    arrival order, one or more per frame (see :data:`COLUMNS`).

    Example:
        >>> import tempfile
        >>> w = CsvWriter(tempfile.mkdtemp())
        >>> w.write(Frame(run="r", step=1, kind="scalar", payload={"name": "loss", "value": 0.25}))
        >>> w.close()
        >>> (w.out / "scalar.csv").read_text()
        'step,wall_time,name,value\\n1,...,loss,0.25\\n'
    """

    name = "csv"

    def __init__(self, out: str | os.PathLike[str], *, kinds: str | Iterable[str] | None = None, layers: str | Iterable[str] | None = None) -> None:
        self.out = Path(out)
        self.kinds, self.layers = choice(kinds, layers)
        self._files: dict[tuple[str, str], IO[str]] = {}
        self._written: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self.rows = 0

    def path(self, kind: str, layer: str = "") -> Path:
        """The table a (kind, layer) goes to."""
        return self.out / (f"{kind}-{layer_token(layer)}.csv" if layer else f"{kind}.csv")

    def write(self, frame: Frame) -> None:
        for f in selected(frame, self.kinds, self.layers):
            table = frame_table(f)
            if table is None:
                continue
            names, columns = table
            with self._lock:
                fh = self._open(f.kind, f.layer, names)
                self.rows += write_table(fh, columns)

    def _open(self, kind: str, layer: str, names: Sequence[str]) -> IO[str]:
        key = (kind, layer)
        fh = self._files.get(key)
        if fh is None:
            self.out.mkdir(parents=True, exist_ok=True)
            fh = open(self.path(kind, layer), "w", encoding="utf-8", newline="")  # noqa: SIM115 (kept open while the run lasts)
            fh.write(",".join(names) + "\n")
            self._files[key] = fh
            self._written.append(key)
        return fh

    def files(self) -> list[Path]:
        """The tables written so far (also after :meth:`close`)."""
        return [self.path(*key) for key in self._written]

    def flush(self) -> None:
        with self._lock:
            for fh in self._files.values():
                fh.flush()

    def close(self, *, status: str = "finished") -> None:
        with self._lock:
            for fh in self._files.values():
                fh.close()
            self._files.clear()


def read_table(path: str | os.PathLike[str], *, convert: Callable[[str], Any] = float) -> dict[str, list[Any]]:
    """Read one of our tables back with the standard library (columns of strings converted)."""
    import csv

    with open(path, encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], rows[1:]
    out: dict[str, list[Any]] = {h: [] for h in header}
    for row in body:
        for h, v in zip(header, row, strict=True):
            try:
                out[h].append(convert(v))
            except ValueError:
                out[h].append(v)
    return out

"""TensorBoard export: scalars, histograms and images as event files TensorBoard reads.

Tags (``<layer>/...``):

* ``scalar`` frames: their name (``loss``, ``lr`` ...);
* ``gradient_health``: ``<layer>/grad_norm``, ``update_ratio``, ``zero_fraction``, ``dead_fraction``;
* ``pruning``: ``<layer>/filters`` (the count after pruning);
* ``groups``: ``<layer>/redundant_filters`` (filters in a correlation group, less one per group:
  what a pruning of the groups could remove) and ``<layer>/filter_groups`` (how many groups);
* ``trajectory``: ``<layer>/explained_variance_0`` .. ``_2``;
* ``histogram`` frames: ``<layer>/<name>`` (their own bins);
* ``weight_grid``: ``<layer>/weights`` (a histogram of the weights' values);
* ``feature_maps``: image ``<layer>/feature_maps`` (the maps tiled, grey);
* ``correlation``: image ``<layer>/correlation`` (blue-white-red, -1 to 1);
* ``dropped`` frames (run-level): ``dropped/<sink>``, the frames it lost so far (a running total,
  as the CSV export's ``count``; ``<sink>``: ``queue``, ``budget``, ``store`` or a sink's name).

TensorBoard reads every event file of a folder, so two exports of one run into one folder would
show each point twice. Each file is therefore named after what it holds (``<run>``: the run's id),
and an export replaces exactly what it writes again:

* an export writes one file per layer and frame kind (run-level values: one per kind), named
  ``events.out.tfevents.<time>.<host>.<pid>.<n>.convscope-export@<run>@<layer>@<kind>``
  (``…@<run>@<kind>`` for run-level ones; ``<layer>`` made file-safe by :func:`layer_token`).
  The first frame of a layer and kind removes the files of that layer and kind that earlier
  exports of the run left; the other layers' and kinds' files stay;
* exports of earlier versions wrote the whole run into one file, ``….convscope-export@<run>``:
  an export keeps in it only the tags it did not write again when it closes, and removes it
  once it holds none;
* a live sink writes one file, ``….convscope@<run>``, and never removes a file.

An export writes and removes nothing else: event files of other runs, a live sink's and files
convscope did not name stay.
"""

from __future__ import annotations

import functools
import itertools
import os
import re
import socket
import struct
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from convscope._optional import require
from convscope.export._crc32c import masked_crc32c
from convscope.export._files import layer_token, remove_ours
from convscope.export._scenes import diverging_rgb, tile_maps
from convscope.export._select import choice, selected
from convscope.frames import Frame
from convscope.sinks._base import Sink
from convscope.store._schema import slug

__all__ = ["OPEN_FILES", "TensorBoardWriter"]

#: the most event files a writer holds open at once; the others are closed between writes and
#: opened again to append (a deep model has hundreds of layers and kinds: one handle each ran
#: out of the process's file descriptors)
OPEN_FILES = 32

_SERIAL = itertools.count()  # (the <n> of the names: files opened in one second stay apart)


class TensorBoardWriter(Sink):
    """Writes frames as TensorBoard event files in ``logdir`` (``tensorboard --logdir ...``).

    Needs ``tensorboard`` (``pip install "convscope[tensorboard]"``); the summaries are made by
    ``torch.utils.tensorboard.summary``, so tags, histograms and images are those torch's
    ``SummaryWriter`` writes. A live sink (``create_sink("tensorboard", logdir="tb")``) and what
    ``convscope export --format tensorboard`` uses.

    The event files are named after ``run`` (see the module doc); without one, after the first
    frame's run. A live sink writes one file and never removes one. With ``export`` (what
    ``convscope export`` makes), the writer writes one file per layer and kind, and replaces the
    files of that layer and kind that earlier exports of ``run`` left in ``logdir``, so that a
    re-export of some layers or kinds keeps the others; when it closes, an earlier version's
    whole-run file of ``run`` keeps only the tags this export did not write again. Event files of
    other runs, a live sink's (it may still be writing to them) and every other file stay.

    Example:
        >>> import tempfile
        >>> w = TensorBoardWriter(tempfile.mkdtemp())
        >>> w.write(Frame(run="r", step=1, kind="scalar", payload={"name": "loss", "value": 0.5}))
        >>> w.close()
        >>> [p.name.rsplit(".", 1)[-1] for p in w.logdir.iterdir()]
        ['convscope@r']
        >>> w = TensorBoardWriter(tempfile.mkdtemp(), run="r", export=True)
        >>> w.write(Frame(run="r", step=1, kind="scalar", payload={"name": "loss", "value": 0.5}))
        >>> w.write(Frame(run="r", step=1, kind="pruning", layer="features.0", payload={"after": 6}))
        >>> w.close()
        >>> sorted(p.name.rsplit(".convscope", 1)[-1] for p in w.logdir.iterdir())
        ['-export@r@features.0@pruning', '-export@r@scalar']
    """

    name = "tensorboard"

    def __init__(
        self,
        logdir: str | os.PathLike[str],
        *,
        kinds: str | Iterable[str] | None = None,
        layers: str | Iterable[str] | None = None,
        run: str | None = None,
        export: bool = False,
    ) -> None:
        require("tensorboard", feature="TensorBoard export", extra="tensorboard")
        require("torch.utils.tensorboard", feature="TensorBoard export", extra="tensorboard")
        from tensorboard.compat.proto.event_pb2 import Event
        from torch.utils.tensorboard import summary

        # (the records' checksums: convscope's CRC-32C, a hundred times TensorBoard's pure-Python one)
        self._event, self._crc, self._summary = Event, masked_crc32c, summary
        self.logdir = Path(logdir)
        self.kinds, self.layers = choice(kinds, layers)
        #: the run the event files are named after (``None``: the first frame's, once it comes)
        self.run = None if run is None else slug(run)
        #: an export's writer (see the class doc), not a live sink
        self.export = export
        self._files: dict[tuple[str, str], _EventFile] = {}  # by (layer, kind); a live sink's one file by ("", "")
        self._open: OrderedDict[tuple[str, str], _EventFile] = OrderedDict()  # those with an open handle, oldest first
        self._tags: set[str] = set()  # what an export wrote (see _trim_whole_run_files)
        self._lock = threading.Lock()

    def write(self, frame: Frame) -> None:
        frames = selected(frame, self.kinds, self.layers)
        with self._lock:
            for f in frames:
                summaries = self._summaries(f)
                if not summaries:
                    continue  # (a kind TensorBoard shows nothing of: no file for it)
                if self.run is None:
                    self.run = slug(f.run)
                out = self._file((f.layer, f.kind) if self.export else ("", ""))
                for s in summaries:
                    event = self._event(wall_time=f.wall_time, step=int(f.step), summary=s)
                    out.write(_record(event.SerializeToString(), self._crc))
                    if self.export:
                        self._tags.update(v.tag for v in s.value)

    def _file(self, key: tuple[str, str]) -> _EventFile:
        """The event file of ``key``, its handle open (made at its first frame)."""
        out = self._files.get(key)
        if out is None:
            self.logdir.mkdir(parents=True, exist_ok=True)
            suffix = self._suffix(*key)
            out = self._files[key] = _EventFile(self.logdir, suffix)
            out.write(_record(self._event(wall_time=time.time(), file_version="brain.Event:2").SerializeToString(), self._crc))
            if self.export:
                # (no part of a name holds "@", nor the host part before it: the key is exact)
                remove_ours(self.logdir, re.compile(r"events\.out\.tfevents\.[^@]*" + re.escape(suffix)), keep={out.path.name})
        self._open[key] = out
        self._open.move_to_end(key)
        while len(self._open) > OPEN_FILES:
            self._open.popitem(last=False)[1].close()
        return out

    def _suffix(self, layer: str, kind: str) -> str:
        if not self.export:
            return f".convscope@{self.run}"
        return "@".join([f".convscope-export@{self.run}", *([layer_token(layer)] if layer else []), kind])

    def _summaries(self, frame: Frame) -> list[Any]:
        """The ``Summary`` protos of one frame, as ``SummaryWriter.add_*`` makes them."""
        sm, p = self._summary, frame.payload
        prefix = f"{frame.layer}/" if frame.layer else ""
        k = frame.kind
        if k == "scalar":
            return [sm.scalar(prefix + str(p["name"]), float(p["value"]))]
        if k == "gradient_health":
            return [sm.scalar(prefix + key, float(p[key])) for key in ("grad_norm", "update_ratio", "zero_fraction", "dead_fraction")]
        if k == "pruning":
            return [sm.scalar(prefix + "filters", float(p["after"]))]
        if k == "groups":  # (labels: each filter's group id, -1 in none; each group keeps one filter)
            labels = np.asarray(p["labels"]).ravel()
            grouped = labels[labels >= 0]
            groups = np.unique(grouped).size
            return [sm.scalar(prefix + "redundant_filters", float(grouped.size - groups)), sm.scalar(prefix + "filter_groups", float(groups))]
        if k == "trajectory":
            ratios = np.asarray(p["explained_variance"], np.float64).ravel()[:3]
            return [sm.scalar(f"{prefix}explained_variance_{i}", float(v)) for i, v in enumerate(ratios)]
        if k == "histogram":
            edges = np.asarray(p["edges"], np.float64)
            counts = np.asarray(p["counts"], np.float64)
            centres = (edges[:-1] + edges[1:]) / 2
            return [sm.histogram_raw(
                prefix + str(p["name"]),
                min=float(edges[0]),
                max=float(edges[-1]),
                num=int(counts.sum()),
                sum=float((centres * counts).sum()),
                sum_squares=float((centres**2 * counts).sum()),
                bucket_limits=edges[1:].tolist(),
                bucket_counts=counts.tolist(),
            )]
        if k == "weight_grid":
            return [sm.histogram(prefix + "weights", np.asarray(p["weights"], np.float32).ravel(), _tensorflow_bins())]
        if k == "feature_maps":
            images = np.asarray(p["images"])
            if images.dtype != np.uint8:
                lo, hi = float(images.min()), float(images.max())
                images = np.round((images - lo) / (hi - lo if hi > lo else 1.0) * 255).astype(np.uint8)
            return [sm.image(prefix + "feature_maps", tile_maps(images), dataformats="HW")]
        if k == "correlation":
            rgb = diverging_rgb(np.nan_to_num(np.asarray(p["matrix"])), vmax=1.0)
            return [sm.image(prefix + "correlation", rgb, dataformats="HWC")]
        if k == "dropped":
            return [sm.scalar(f"{prefix}dropped/{p['sink']}", float(p["count"]))]
        return []

    def flush(self) -> None:
        with self._lock:
            for out in self._open.values():
                out.flush()

    def close(self, *, status: str = "finished") -> None:
        with self._lock:
            while self._open:
                self._open.popitem(last=False)[1].close()
            if self.export:  # (also after a failure: what it wrote in part has replaced what was there, as in its own files)
                self._trim_whole_run_files()

    def _trim_whole_run_files(self) -> None:
        """Keep in the whole-run event files of ``run`` that an earlier version's exports left
        (``….convscope-export@<run>``) only the tags this export did not write again, and remove
        those that then hold none: each tag is then in one file, so no point shows twice, and
        what this export did not write again stays."""
        if not self._tags or not self.logdir.is_dir():
            return
        whole = re.compile(r"events\.out\.tfevents\.[^@]*" + re.escape(f".convscope-export@{self.run}"))
        for path in sorted(self.logdir.iterdir()):
            if whole.fullmatch(path.name) and path.is_file() and not path.is_symlink():
                self._trim(path)

    def _trim(self, path: Path) -> None:
        from google.protobuf.message import DecodeError

        # written beside it under a name TensorBoard does not read (no "tfevents"), then renamed over it
        part = path.with_name(f"convscope-export@{self.run}.trimming")
        kept = dropped = 0
        try:
            with open(part, "wb") as out:
                for record, data in _records(path, self._crc):
                    try:
                        event = self._event.FromString(data)
                    except DecodeError:  # (not an event we can read: kept as it is)
                        out.write(record)
                        continue
                    values = event.summary.value
                    keep = [v for v in values if v.tag not in self._tags]
                    kept, dropped = kept + len(keep), dropped + len(values) - len(keep)
                    if len(keep) == len(values):
                        out.write(record)
                    elif keep:
                        del values[:]
                        values.extend(keep)
                        out.write(_record(event.SerializeToString(), self._crc))
            if dropped and kept:
                os.replace(part, path)
            elif dropped:
                path.unlink()
            # (none of its tags written again: it stays as it was)
        finally:
            part.unlink(missing_ok=True)


class _EventFile:
    """One event file a writer made: created new, appended to. Its handle may be closed between
    writes (see :data:`OPEN_FILES`); the next write opens it again."""

    def __init__(self, folder: Path, suffix: str) -> None:
        host = re.sub(r"[^A-Za-z0-9.-]+", "-", socket.gethostname())[:24] or "host"
        while True:
            self.path = folder / f"events.out.tfevents.{int(time.time()):010d}.{host}.{os.getpid()}.{next(_SERIAL)}{suffix}"
            try:
                self._handle: IO[bytes] | None = open(self.path, "xb")  # (closed in close())
                return
            except FileExistsError:  # (a file of that name is there already: the next <n>)
                continue

    def write(self, data: bytes) -> None:
        if self._handle is None:
            self._handle = open(self.path, "ab")
        self._handle.write(data)

    def flush(self) -> None:
        if self._handle is not None:
            self._handle.flush()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def _record(data: bytes, crc: Callable[[bytes], int]) -> bytes:
    """``data`` as one record of an event file (TFRecord: length, its checksum, data, its checksum)."""
    length = struct.pack("<Q", len(data))
    return length + struct.pack("<I", crc(length)) + data + struct.pack("<I", crc(data))


def _records(path: Path, crc: Callable[[bytes], int]) -> Iterator[tuple[bytes, bytes]]:
    """Each record of an event file as ``(record, data)``, up to the first one cut short or
    with a damaged length or data (their checksums: TensorBoard reads no further either, so a
    damaged record is never written again with a checksum that hides the damage)."""
    with open(path, "rb") as f:
        while len(head := f.read(12)) == 12:
            if struct.unpack("<I", head[8:])[0] != crc(head[:8]):
                return
            (length,) = struct.unpack("<Q", head[:8])
            data, tail = f.read(length), f.read(4)
            if len(data) < length or len(tail) < 4 or struct.unpack("<I", tail)[0] != crc(data):
                return
            yield head + data + tail, data


@functools.cache
def _tensorflow_bins() -> list[float]:
    """The buckets ``SummaryWriter.add_histogram`` gives a histogram by default (TensorFlow's): 0
    and ±1e-12 · 1.1^k below 1e20, grown by repeated multiplication as it grows them, so the
    edges are the same floats."""
    edges, v = [], 1e-12
    while v < 1e20:
        edges.append(v)
        v *= 1.1
    return [-e for e in reversed(edges)] + [0.0] + edges

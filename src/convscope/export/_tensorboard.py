"""TensorBoard export: scalars, histograms and images as event files TensorBoard reads.

Tags (``<layer>/...``):

* ``scalar`` frames: their name (``loss``, ``lr`` ...);
* ``gradient_health``: ``<layer>/grad_norm``, ``update_ratio``, ``zero_fraction``, ``dead_fraction``;
* ``pruning``: ``<layer>/filters`` (the count after pruning);
* ``trajectory``: ``<layer>/explained_variance_0`` .. ``_2``;
* ``histogram`` frames: ``<layer>/<name>`` (their own bins);
* ``weight_grid``: ``<layer>/weights`` (a histogram of the weights' values);
* ``feature_maps``: image ``<layer>/feature_maps`` (the maps tiled, grey);
* ``correlation``: image ``<layer>/correlation`` (blue-white-red, -1 to 1).

The event files of a run are named ``events.out.tfevents.<time>.<host>.<pid>.<n>.convscope-export@<run>``
(``<run>``: the run's id; a live sink's end in ``.convscope@<run>``), so that exporting the run
again into the same folder can replace them and only them: TensorBoard reads every event file
of a folder, and two exports of one run would show each point twice.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from convscope._optional import require
from convscope.export._files import remove_ours
from convscope.export._scenes import diverging_rgb, tile_maps
from convscope.export._select import choice, selected
from convscope.frames import Frame
from convscope.sinks._base import Sink
from convscope.store._schema import slug

__all__ = ["TensorBoardWriter"]


class TensorBoardWriter(Sink):
    """Writes frames as TensorBoard event files in ``logdir`` (``tensorboard --logdir ...``).

    Needs ``tensorboard`` (``pip install "convscope[tensorboard]"``); writes through
    ``torch.utils.tensorboard``. A live sink (``create_sink("tensorboard", logdir="tb")``) and
    what ``convscope export --format tensorboard`` uses.

    The event file is named after ``run`` (see the module doc); without one, it is opened
    with the first frame and named after that frame's run. With ``export`` (what ``convscope
    export`` makes), it replaces the event files that an earlier export of that run left in
    ``logdir``, whatever they held: TensorBoard would show both. Event files of other runs, a
    live sink's (it may still be writing to them) and every other file stay. A live sink never
    removes a file.

    Example:
        >>> import tempfile
        >>> w = TensorBoardWriter(tempfile.mkdtemp())
        >>> w.write(Frame(run="r", step=1, kind="scalar", payload={"name": "loss", "value": 0.5}))
        >>> w.close()
        >>> [p.name.rsplit(".", 1)[-1] for p in w.logdir.iterdir()]
        ['convscope@r']
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
        self._tb = require("torch.utils.tensorboard", feature="TensorBoard export", extra="tensorboard")
        self.logdir = Path(logdir)
        self.kinds, self.layers = choice(kinds, layers)
        #: the run the event files are named after (``None``: the first frame's, once it comes)
        self.run = None if run is None else slug(run)
        #: an export's writer (see the class doc), not a live sink
        self.export = export
        self._writer: Any = None
        self._lock = threading.Lock()
        if self.run is not None:
            self._open(self.run)

    def write(self, frame: Frame) -> None:
        frames = selected(frame, self.kinds, self.layers)
        with self._lock:
            for f in frames:
                if self._writer is None:
                    self._open(f.run)
                self._write(f)

    def _open(self, run: str) -> None:
        if self.run is None:
            self.run = slug(run)
        suffix = f".convscope{'-export' if self.export else ''}@{self.run}"
        if self.export:
            # (a run id has no "@" and torch's part of the name none either: the run is exact)
            remove_ours(self.logdir, re.compile(r"events\.out\.tfevents\.[^@]*" + re.escape(suffix)))
        self._writer = self._tb.SummaryWriter(log_dir=str(self.logdir), flush_secs=5, filename_suffix=suffix)

    def _write(self, frame: Frame) -> None:
        w, p, step, t = self._writer, frame.payload, frame.step, frame.wall_time
        prefix = f"{frame.layer}/" if frame.layer else ""
        k = frame.kind
        if k == "scalar":
            w.add_scalar(prefix + str(p["name"]), float(p["value"]), step, walltime=t)
        elif k == "gradient_health":
            for key in ("grad_norm", "update_ratio", "zero_fraction", "dead_fraction"):
                w.add_scalar(prefix + key, float(p[key]), step, walltime=t)
        elif k == "pruning":
            w.add_scalar(prefix + "filters", float(p["after"]), step, walltime=t)
        elif k == "trajectory":
            for i, v in enumerate(np.asarray(p["explained_variance"], np.float64).ravel()[:3]):
                w.add_scalar(f"{prefix}explained_variance_{i}", float(v), step, walltime=t)
        elif k == "histogram":
            edges = np.asarray(p["edges"], np.float64)
            counts = np.asarray(p["counts"], np.float64)
            centres = (edges[:-1] + edges[1:]) / 2
            w.add_histogram_raw(
                prefix + str(p["name"]),
                min=float(edges[0]),
                max=float(edges[-1]),
                num=int(counts.sum()),
                sum=float((centres * counts).sum()),
                sum_squares=float((centres**2 * counts).sum()),
                bucket_limits=edges[1:].tolist(),
                bucket_counts=counts.tolist(),
                global_step=step,
                walltime=t,
            )
        elif k == "weight_grid":
            w.add_histogram(prefix + "weights", np.asarray(p["weights"], np.float32).ravel(), step, walltime=t)
        elif k == "feature_maps":
            images = np.asarray(p["images"])
            if images.dtype != np.uint8:
                lo, hi = float(images.min()), float(images.max())
                images = np.round((images - lo) / (hi - lo if hi > lo else 1.0) * 255).astype(np.uint8)
            w.add_image(prefix + "feature_maps", tile_maps(images), step, walltime=t, dataformats="HW")
        elif k == "correlation":
            w.add_image(prefix + "correlation", diverging_rgb(np.nan_to_num(np.asarray(p["matrix"])), vmax=1.0), step, walltime=t, dataformats="HWC")

    def flush(self) -> None:
        with self._lock:
            if self._writer is not None:
                self._writer.flush()

    def close(self, *, status: str = "finished") -> None:
        with self._lock:
            if self._writer is not None:
                self._writer.close()

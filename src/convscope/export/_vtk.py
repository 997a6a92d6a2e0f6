"""VTK export: each view as a series of VTK XML files plus a ``.pvd`` that ParaView plays as time.

``out/<series>.pvd`` lists ``out/<series>/<series>_<step>.vtp|.vti``, one file per recorded
step, with the step as the time value. Series (``<layer>`` made file-safe;
images whose rows run down have VTK's ``Direction`` flipping y, :data:`~convscope.export._scenes.ROWS_DOWN`,
so that ParaView shows their row 0 at the top, not at the bottom as image data otherwise does):

=============================  =====  ===================================================
series                         file   what
=============================  =====  ===================================================
``weights-<layer>``            .vtp   weight grid as raised blocks (:func:`weight_grid_blocks`)
``trajectory-dims-<layer>``    .vtp   path of the three chosen weights up to that step, thinned to
                                     at most :data:`DIMS_PATH_POINTS` points, evenly spread, the newest last
``trajectory-pca-<layer>``     .vtp   path on the principal axes of that step
``distribution-<layer>``       .vtp   per-filter histograms as quads
``feature_maps-<layer>``       .vti   one sample's maps, W x H x F (map index along z), row 0 at the top
``correlation-<layer>``        .vti   the F x F correlation matrix (point array ``r``), row 0 at the top
``groups-<layer>``             .vti   the filter groups, a row of F points (``group``, ``filter``)
=============================  =====  ===================================================
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from convscope.export._files import layer_token, remove_ours
from convscope.export._scenes import (
    ROWS_DOWN,
    ImageData,
    PolyData,
    distribution_quads,
    feature_map_image,
    trajectory_polyline,
    weight_grid_blocks,
)
from convscope.export._select import choice
from convscope.export._vtkxml import write_pvd, write_vti, write_vtp
from convscope.frames import Frame
from convscope.sinks._base import Sink

__all__ = ["VTK_KINDS", "VtkWriter", "scenes_of"]

#: the writer rewrites its ``.pvd`` files about this often (seconds; less often when they grow
#: long), not after every frame: often enough that ParaView sees a live run's new steps and a
#: writer killed midway leaves collections of what it wrote
PVD_SECONDS = 2.0

#: at most this share of the writer's time goes on rewriting ``.pvd`` files (a long series makes
#: each rewrite dearer: the next one waits in proportion)
PVD_SHARE = 0.02

#: the most points in a ``trajectory-dims-<layer>`` step file (at least 2). Each file holds the
#: path up to its step: whole paths grew an export with the square of the recordings (a
#: 100,000-step run recording every 10 steps wrote 50M points a layer). Thinned as
#: :class:`~convscope.analysis.TrajectoryTracker` thins the points it keeps (every 2nd, then
#: every 4th ... recording), paths keep files and memory bounded and an export linear
DIMS_PATH_POINTS = 1024

#: frame kinds that have a VTK scene
VTK_KINDS = ("weight_grid", "trajectory", "distribution", "feature_maps", "correlation", "groups")


class _Path:
    """One dims path, thinned evenly: it keeps the recordings whose ordinal in the path is a
    multiple of ``stride`` (the first always), fewer than :data:`DIMS_PATH_POINTS`, and the
    newest one apart when the stride does not keep it."""

    def __init__(self, shape: str, width: int) -> None:
        self.shape = shape
        self.count = 0  # recordings so far
        self.stride = 1
        self.steps: list[int] = []
        self.points = np.empty((DIMS_PATH_POINTS, width), np.float32)
        self.newest: tuple[int, int, np.ndarray] | None = None  # (ordinal, step, point)

    def add(self, step: int, point: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.newest is not None and self.newest[1] == step:  # the same step again replaces its point
            ordinal = self.newest[0]
            if ordinal % self.stride == 0:
                self.points[len(self.steps) - 1] = point
        else:
            ordinal, self.count = self.count, self.count + 1
            if ordinal % self.stride == 0:
                self.points[len(self.steps)] = point
                self.steps.append(step)
                if len(self.steps) == len(self.points):  # full: keep every other one, the first included
                    self.steps = self.steps[::2]
                    self.points[: len(self.steps)] = self.points[::2].copy()
                    self.stride *= 2
        self.newest = (ordinal, step, point)
        n = len(self.steps)
        if ordinal % self.stride == 0:  # the newest is kept: it is the last kept point
            return self.points[:n].copy(), np.asarray(self.steps, np.int64)
        return np.concatenate([self.points[:n], point[None]]), np.asarray([*self.steps, step], np.int64)


class _Trajectories:
    """The dims path of each layer so far, thinned to at most :data:`DIMS_PATH_POINTS` points
    (a new weight shape after pruning starts a new one)."""

    def __init__(self) -> None:
        self.paths: dict[str, _Path] = {}

    def add(self, frame: Frame) -> tuple[np.ndarray, np.ndarray]:
        key = repr(frame.payload.get("shape"))
        point = np.asarray(frame.payload["dims"], np.float32).ravel()
        path = self.paths.get(frame.layer)
        if path is None or path.shape != key:
            path = self.paths[frame.layer] = _Path(key, len(point))
        return path.add(frame.step, point)


def scenes_of(frame: Frame, trajectories: _Trajectories | None = None) -> dict[str, PolyData | ImageData]:
    """The VTK scenes of one frame, by series name (empty for kinds without one).

    Trajectory frames need ``trajectories`` (the paths so far) for their dims series.
    """
    p, k = frame.payload, frame.kind
    layer = layer_token(frame.layer) if frame.layer else "run"
    out: dict[str, PolyData | ImageData] = {}
    if k == "weight_grid":
        out[f"weights-{layer}"] = weight_grid_blocks(p["weights"], vmax=float(p["vmax"]))
    elif k == "trajectory":
        if trajectories is not None:
            points, steps = trajectories.add(frame)
            poly = trajectory_polyline(points, steps)
            poly.point_data["index"] = np.repeat(np.asarray(p["dim_index"], np.int64).reshape(1, -1)[:, :3], len(steps), axis=0)
            out[f"trajectory-dims-{layer}"] = poly
        if "pca_path" in p and "path_steps" in p:
            pca = trajectory_polyline(np.asarray(p["pca_path"]), np.asarray(p["path_steps"]))
        else:
            pca = trajectory_polyline(np.asarray(p["pca"], np.float32).reshape(1, -1), [frame.step])
        pca.field_data["explained_variance"] = np.asarray(p["explained_variance"], np.float32)
        out[f"trajectory-pca-{layer}"] = pca
    elif k == "distribution":
        poly = distribution_quads(p["counts"], minimum=p["min"], maximum=p["max"])
        poly.field_data["mean"] = np.asarray(p["mean"], np.float32)
        poly.field_data["std"] = np.asarray(p["std"], np.float32)
        out[f"distribution-{layer}"] = poly
    elif k == "feature_maps":
        img = feature_map_image(p["images"])
        img.field_data["vmin"] = np.array([p["vmin"]], np.float64)
        img.field_data["vmax"] = np.array([p["vmax"]], np.float64)
        out[f"feature_maps-{layer}"] = img
    elif k == "correlation":
        m = np.asarray(p["matrix"], np.float32)
        img = ImageData(dimensions=(m.shape[1], m.shape[0], 1), direction=ROWS_DOWN, point_data={"r": m.reshape(-1)})
        img.field_data["dead"] = np.asarray(p["dead"]).astype(np.uint8)
        out[f"correlation-{layer}"] = img
    elif k == "groups":  # one point per filter, in the correlation image's order: colour it by group
        labels = np.asarray(p["labels"], np.int32).reshape(-1)
        img = ImageData(dimensions=(labels.size, 1, 1), point_data={"group": labels, "filter": np.arange(labels.size, dtype=np.int32)})
        img.field_data["threshold"] = np.array([float(p["threshold"])], np.float64)
        out[f"groups-{layer}"] = img
    for scene in out.values():
        scene.field_data["step"] = np.array([frame.step], np.int64)
        scene.field_data["TimeValue"] = np.array([float(frame.step)], np.float64)
    return out


class VtkWriter(Sink):
    """Writes each view's frames as VTK XML files with a ``.pvd`` per series (see the module doc).

    A live sink (``create_sink("vtk", out="run-vtk")``): ParaView can open a ``.pvd`` while
    the run goes on and reload it to see new steps. Files are written whole and renamed into
    place, so a reader never sees half a file. A series' ``.pvd`` is written with its first
    step file, then rewritten every :data:`PVD_SECONDS` or so as frames come, at each
    :meth:`flush` (the monitor's, about once a second) and when the writer closes, rather than
    after every frame, which cost time in the square of a series' steps (a 100,000-step run
    rewrote a 100,000-entry file per frame); long collections are rewritten less often, so
    that rewriting keeps to :data:`PVD_SHARE` of the time. At every moment each ``.pvd`` lists
    only step files that are there whole, so a writer killed outright leaves collections that
    ParaView opens, of what it had written up to a few seconds before.

    With ``export`` (what ``convscope export`` makes), the writer is not a live sink: the first
    frame of each series also replaces that series' step files left in ``out`` by an earlier
    writer, which its new ``.pvd`` would not list (other files are never touched). A live sink
    never removes a file.

    Example:
        >>> import tempfile, numpy as np
        >>> w = VtkWriter(tempfile.mkdtemp())
        >>> w.write(Frame(run="r", step=5, kind="weight_grid", layer="conv1",
        ...               payload={"weights": np.ones((2, 1, 3, 3), np.float32), "vmax": 1.0}))
        >>> w.close()
        >>> sorted(p.name for p in w.out.rglob("*.vt*") ) + [p.name for p in w.out.glob("*.pvd")]
        ['weights-conv1_00000005.vtp', 'weights-conv1.pvd']
    """

    name = "vtk"

    def __init__(
        self,
        out: str | os.PathLike[str],
        *,
        kinds: str | Iterable[str] | None = None,
        layers: str | Iterable[str] | None = None,
        export: bool = False,
    ) -> None:
        self.out = Path(out)
        self.kinds, self.layers = choice(kinds, layers)
        #: an export's writer (see the class doc), not a live sink
        self.export = export
        self.series: dict[str, dict[int, str]] = {}
        self.bytes_written = 0
        self._trajectories = _Trajectories()
        self._dirty: set[str] = set()
        self._pvd_rewritten = time.monotonic()  # (when the .pvd files were last rewritten, and how long that took)
        self._pvd_took = 0.0
        self._lock = threading.Lock()

    def write(self, frame: Frame) -> None:
        if frame.kind not in VTK_KINDS:
            return
        if (self.kinds is not None and frame.kind not in self.kinds) or (self.layers is not None and frame.layer not in self.layers):
            return
        with self._lock:
            for series, scene in scenes_of(frame, self._trajectories).items():
                ext = ".vtp" if isinstance(scene, PolyData) else ".vti"
                rel = f"{series}/{series}_{frame.step:08d}{ext}"
                writer = write_vtp if isinstance(scene, PolyData) else write_vti
                self.bytes_written += writer(self.out / rel, scene)  # type: ignore[arg-type]
                first = series not in self.series
                self.series.setdefault(series, {})[frame.step] = rel
                self._dirty.add(series)
                if first:  # (listed at once: ParaView can open a new series as soon as it has a step)
                    self._write_collections([series])
                    if self.export:
                        self._replace_earlier_export(series)
            self._rewrite_collections(wait=PVD_SECONDS)

    def flush(self) -> None:
        """Rewrite the ``.pvd`` files that miss steps (the monitor calls it about once a second
        while frames come, every few seconds while they do not), unless the last rewrite took
        long enough that this one would cost more than :data:`PVD_SHARE` of the time."""
        with self._lock:
            self._rewrite_collections(wait=0.0)

    def _rewrite_collections(self, *, wait: float) -> None:
        """Rewrite the ``.pvd`` files that miss steps, at least ``wait`` seconds after the last
        rewrite, and long enough after it that rewriting keeps to :data:`PVD_SHARE` of the time."""
        if not self._dirty or time.monotonic() < self._pvd_rewritten + max(wait, self._pvd_took / PVD_SHARE):
            return
        started = time.monotonic()
        self._write_collections()
        self._pvd_rewritten = time.monotonic()
        self._pvd_took = self._pvd_rewritten - started

    def _replace_earlier_export(self, series: str) -> None:
        """Once the series' ``.pvd`` lists its first new step file alone, the step files an
        earlier export left go (its new ``.pvd`` would not list them, but someone opening the
        folder's files by hand would see them). In this order, a ``.pvd`` never lists a file
        that is not there, even if the export is killed in between. Only files named as this
        writer names them go (``<series>_<step>.vtp|.vti``, and ``.part`` ones left by a crash);
        any other file stays."""
        listed = {Path(rel).name for rel in self.series[series].values()}
        remove_ours(self.out / series, re.compile(re.escape(series) + r"_-?\d+\.vt[ip](\.part)?"), keep=listed)

    def _write_collections(self, which: Iterable[str] | None = None) -> None:
        for series in sorted(self._dirty if which is None else which):
            entries = sorted(self.series[series].items())
            write_pvd(self.out / f"{series}.pvd", [(float(step), rel) for step, rel in entries])
            self._dirty.discard(series)

    def collections(self) -> list[Path]:
        """The ``.pvd`` files written so far."""
        return [self.out / f"{s}.pvd" for s in sorted(self.series)]

    def close(self, *, status: str = "finished") -> None:
        with self._lock:
            self._write_collections()

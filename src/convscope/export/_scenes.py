"""Scenes of the views as plain numpy geometry: what the VTK files and the ParaView bridge draw.

Depends on numpy only, so the same builders run in the training process (the VTK sink), in
``convscope export`` and inside ParaView's own Python (the Catalyst bridge), where they are
turned into VTK objects by :mod:`convscope.paraview._vtk`.

* :func:`weight_grid_blocks`: the TensorView weight grid as raised blocks: a window of
  kh x kw cells per (input channel, filter), channels down, filters across (one input channel:
  the filters wrap into a near-square block, :func:`window_origins`); each weight is a box
  whose height is its value over ``vmax`` (positive up, negative down), with cell arrays
  ``value``, ``sign``, ``filter``, ``channel`` and ``rgb`` (red positive, blue negative);
* :func:`trajectory_polyline`: a path of weights over training steps (the three chosen
  dimensions or the PCA coordinates), one polyline with a ``step`` point array;
* :func:`distribution_quads`: the distribution view: a row of B bins per filter, cell arrays
  ``count``, ``density`` (count over the row's largest), ``filter`` and ``bin``;
* :func:`feature_map_image`: feature maps ``[F, H, W]`` as image data of dimensions
  ``(W, H, F)``, the map index along z, point array ``activation`` (the frame's
  u8 images; named apart from the weights' ``value`` so that ParaView gives each its own colour map),
  with rows running down (:data:`ROWS_DOWN`: row 0 at the top, as the images are seen).

Example:
    >>> import numpy as np
    >>> poly = weight_grid_blocks(np.ones((2, 1, 1, 1), np.float32), vmax=1.0)
    >>> len(poly.polys[1]), poly.cell_data["value"][:6].tolist()
    (12, [1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from convscope.errors import DataError

__all__ = [
    "FACES_PER_BLOCK",
    "IDENTITY",
    "ImageData",
    "ROWS_DOWN",
    "PolyData",
    "distribution_quads",
    "feature_map_image",
    "trajectory_polyline",
    "weight_grid_blocks",
    "diverging_rgb",
    "tile_maps",
    "weight_layout",
    "window_origins",
]

#: every weight is a box of six quads; cell arrays repeat each weight's value six times
FACES_PER_BLOCK = 6
#: the paper's colours: red for positive weights, blue for negative ones (RGB, 0-255)
RED = (178, 24, 43)
BLUE = (33, 102, 172)
WHITE = (247, 247, 247)


@dataclass
class PolyData:
    """Points, cells as ``(connectivity, offsets)`` (VTK's layout), and named arrays."""

    points: np.ndarray
    verts: tuple[np.ndarray, np.ndarray] | None = None
    lines: tuple[np.ndarray, np.ndarray] | None = None
    polys: tuple[np.ndarray, np.ndarray] | None = None
    point_data: dict[str, np.ndarray] = field(default_factory=dict)
    cell_data: dict[str, np.ndarray] = field(default_factory=dict)
    field_data: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n_cells(self) -> int:
        return sum(0 if c is None else len(c[1]) for c in (self.verts, self.lines, self.polys))


#: the orientation (VTK's ``Direction``, a 3 x 3 matrix by rows) of an image whose rows run down
#: the screen: index j along y goes to ``y = -j``, so row 0 is at the top in ParaView, as a
#: picture or a matrix is read, where image data otherwise puts row 0 at the bottom
ROWS_DOWN = (1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)
#: the orientation of an image as VTK places it without one: index j along y at ``y = j``
IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


@dataclass
class ImageData:
    """A regular grid: ``dimensions`` points along x, y, z; arrays with x varying fastest.

    ``direction`` orients the grid (VTK 9's direction matrix, by rows): point ``(i, j, k)`` is at
    ``origin + direction @ (i, j, k) * spacing``. :data:`ROWS_DOWN` puts row 0 at the top.
    """

    dimensions: tuple[int, int, int]
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    direction: tuple[float, ...] = IDENTITY
    point_data: dict[str, np.ndarray] = field(default_factory=dict)
    cell_data: dict[str, np.ndarray] = field(default_factory=dict)
    field_data: dict[str, np.ndarray] = field(default_factory=dict)


# the eight corners of a unit box and its six faces (outward, counter-clockwise)
_CORNERS = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 1], [1, 0, 1], [1, 1, 1], [0, 1, 1]], np.float32)
_FACES = np.array([[0, 3, 2, 1], [4, 5, 6, 7], [0, 1, 5, 4], [1, 2, 6, 5], [2, 3, 7, 6], [3, 0, 4, 7]], np.int64)


def weight_layout(shape: Sequence[int]) -> tuple[int, int, int, int]:
    """``(F, C, kh, kw)`` of a weight tensor's shape (dense ``[F, C]`` is ``kh = kw = 1``)."""
    shape = tuple(int(s) for s in shape)
    if len(shape) == 4:
        return shape
    if len(shape) == 2:
        return shape[0], shape[1], 1, 1
    if len(shape) == 3:  # conv1d
        return shape[0], shape[1], 1, shape[2]
    raise DataError(f"a weight grid needs weights of shape [F, C, kh, kw] or [F, C], got {list(shape)}")


def window_origins(filters: int, channels: int) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Where each kernel window of a weight grid goes: ``(row, column, rows, columns)``.

    ``row`` and ``column`` are ``F x C`` integer arrays of window positions (in windows, not
    cells) and ``rows x columns`` the grid's size. Input channels are rows and filters are
    columns (TensorView's grid); a layer with one input channel wraps its filters into rows
    of ``ceil(sqrt(F))``, so that 16 filters make a 4 x 4 block rather than a 1 x 16 strip.
    The dashboard, :func:`convscope.analysis.grid_layout` and the VTK blocks lay grids out this way.

    Example:
        >>> row, col, rows, cols = window_origins(6, 1)
        >>> row[:, 0].tolist(), col[:, 0].tolist(), (rows, cols)
        ([0, 0, 0, 1, 1, 1], [0, 1, 2, 0, 1, 2], (2, 3))
    """
    f, c = np.meshgrid(np.arange(filters), np.arange(channels), indexing="ij")  # F x C each
    if channels == 1 and filters > 1:
        per_row = math.isqrt(filters - 1) + 1  # ceil(sqrt(F))
        return f // per_row, f % per_row, -(-filters // per_row), per_row
    return c, f, channels, filters


def weight_grid_blocks(weights: np.ndarray, *, vmax: float | None = None, height: float = 1.0, gap: float = 1.0) -> PolyData:
    """The weight grid as raised blocks (see the module docstring).

    Blocks are ordered by filter, then channel, then kernel row and column (the weights'
    own C order), so ``cell_data["value"][::6]`` is ``weights.ravel()``.
    """
    w = np.asarray(weights, dtype=np.float32)
    f, c, kh, kw = weight_layout(w.shape)
    w = w.reshape(f, c, kh, kw)
    if vmax is None or not np.isfinite(vmax) or vmax <= 0:
        vmax = float(np.abs(w).max()) if w.size else 1.0
        vmax = vmax if vmax > 0 else 1.0
    fi, ci, ri, ki = (a.ravel() for a in np.meshgrid(np.arange(f), np.arange(c), np.arange(kh), np.arange(kw), indexing="ij"))
    values = w.ravel()
    window_row, window_col, _rows, _cols = window_origins(f, c)
    x0 = window_col[fi, ci] * (kw + gap) + ki
    y0 = -(window_row[fi, ci] * (kh + gap) + ri) - 1.0  # channels run down the screen, as in the paper
    z = values / np.float32(vmax) * np.float32(height)
    n = values.size
    corners = np.empty((n, 8, 3), np.float32)
    corners[:, :, 0] = x0[:, None] + _CORNERS[None, :, 0]
    corners[:, :, 1] = y0[:, None] + _CORNERS[None, :, 1]
    # bottom face at 0, top at the value's height (below 0 for negative weights)
    corners[:, :, 2] = np.where(_CORNERS[None, :, 2] > 0, z[:, None], 0.0)
    conn = (_FACES[None, :, :] + 8 * np.arange(n, dtype=np.int64)[:, None, None]).reshape(-1)
    offsets = np.arange(1, n * FACES_PER_BLOCK + 1, dtype=np.int64) * 4
    sign = np.sign(values).astype(np.int8)
    rgb = np.where(sign[:, None] > 0, np.array(RED, np.uint8), np.where(sign[:, None] < 0, np.array(BLUE, np.uint8), np.array(WHITE, np.uint8)))

    def per_face(a: np.ndarray) -> np.ndarray:
        return np.repeat(a, FACES_PER_BLOCK, axis=0)

    return PolyData(
        points=corners.reshape(-1, 3),
        polys=(conn, offsets),
        cell_data={
            "value": per_face(values),
            "sign": per_face(sign),
            "filter": per_face(fi.astype(np.int32)),
            "channel": per_face(ci.astype(np.int32)),
            "rgb": per_face(rgb.astype(np.uint8)),
        },
        field_data={"vmax": np.array([vmax], np.float64), "shape": np.array([f, c, kh, kw], np.int64)},
    )


def trajectory_polyline(points: np.ndarray, steps: Sequence[int] | np.ndarray) -> PolyData:
    """One polyline through ``points`` [P, 3] (padded with zeros when fewer than three columns)."""
    p = np.asarray(points, dtype=np.float32)
    if p.ndim != 2:
        raise DataError(f"trajectory points must have shape [P, dims], got {list(p.shape)}")
    if p.shape[1] < 3:
        p = np.concatenate([p, np.zeros((len(p), 3 - p.shape[1]), np.float32)], axis=1)
    p = p[:, :3]
    s = np.asarray(steps, dtype=np.int64)
    if len(s) != len(p):
        raise DataError(f"a trajectory of {len(p)} points needs {len(p)} steps, got {len(s)}")
    n = len(p)
    lines = (np.arange(n, dtype=np.int64), np.array([n], np.int64)) if n else None
    verts = (np.arange(n, dtype=np.int64), np.arange(1, n + 1, dtype=np.int64)) if n else None
    return PolyData(points=p, verts=verts, lines=lines, point_data={"step": s})


def distribution_quads(counts: np.ndarray, *, minimum: np.ndarray | None = None, maximum: np.ndarray | None = None) -> PolyData:
    """The distribution view: one row of B quads per filter (x = bin, y = filter, downwards)."""
    cts = np.asarray(counts, dtype=np.float32)
    if cts.ndim != 2:
        raise DataError(f"distribution counts must have shape [F, B], got {list(cts.shape)}")
    f, b = cts.shape
    xs, ys = np.meshgrid(np.arange(b + 1, dtype=np.float32), -np.arange(f + 1, dtype=np.float32))
    points = np.stack([xs.ravel(), ys.ravel(), np.zeros(xs.size, np.float32)], axis=1)
    row, col = (g.ravel() for g in np.meshgrid(np.arange(f), np.arange(b), indexing="ij"))
    a = row * (b + 1) + col
    conn = np.stack([a, a + 1, a + b + 2, a + b + 1], axis=1).astype(np.int64).ravel()
    offsets = np.arange(1, f * b + 1, dtype=np.int64) * 4
    peak = cts.max(axis=1, keepdims=True) if b else np.ones((f, 1), np.float32)
    density = np.divide(cts, peak, out=np.zeros_like(cts), where=peak > 0)
    field_data: dict[str, np.ndarray] = {}
    if minimum is not None:
        field_data["min"] = np.asarray(minimum, np.float32)
    if maximum is not None:
        field_data["max"] = np.asarray(maximum, np.float32)
    return PolyData(
        points=points,
        polys=(conn, offsets),
        cell_data={"count": cts.ravel(), "density": density.ravel(), "filter": row.astype(np.int32), "bin": col.astype(np.int32)},
        field_data=field_data,
    )


def feature_map_image(images: np.ndarray, *, name: str = "activation") -> ImageData:
    """Maps ``[F, H, W]`` (or one map ``[H, W]``) as image data of dimensions ``(W, H, F)``,
    rows running down (:data:`ROWS_DOWN`: a map's row 0 at the top, as the frame's image is seen)."""
    a = np.asarray(images)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3:
        raise DataError(f"feature maps must have shape [F, H, W], got {list(a.shape)}")
    f, h, w = a.shape
    return ImageData(dimensions=(w, h, f), direction=ROWS_DOWN, point_data={name: np.ascontiguousarray(a).reshape(-1)})


def tile_maps(images: np.ndarray, *, columns: int | None = None, gap: int = 1, fill: int | float = 0) -> np.ndarray:
    """Maps ``[F, H, W]`` side by side in one 2-D image (``columns`` across, default about sqrt(F))."""
    a = np.asarray(images)
    if a.ndim == 2:
        a = a[None]
    f, h, w = a.shape
    cols = columns or max(1, int(np.ceil(np.sqrt(f))))
    rows = max(1, int(np.ceil(f / cols)))
    out = np.full((rows * (h + gap) - gap, cols * (w + gap) - gap), fill, dtype=a.dtype)
    for i in range(f):
        r, c = divmod(i, cols)
        out[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = a[i]
    return out


def diverging_rgb(values: np.ndarray, *, vmax: float) -> np.ndarray:
    """Blue-white-red colours (uint8 RGB) of ``values`` in ``[-vmax, vmax]``: the paper's map."""
    t = np.clip(np.asarray(values, np.float32) / np.float32(vmax if vmax > 0 else 1.0), -1.0, 1.0)[..., None]
    white, red, blue = (np.array(c, np.float32) for c in (WHITE, RED, BLUE))
    rgb = np.where(t >= 0, white + (red - white) * t, white + (blue - white) * (-t))
    return np.round(rgb).astype(np.uint8)

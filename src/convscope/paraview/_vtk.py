"""Every ``vtkmodules`` import of convscope lives here.

Used in two kinds of process, never in training: ParaView's own Python (the Catalyst bridge
turns :mod:`convscope.export._scenes` into VTK objects with :func:`to_vtk`; the views draw the
filter groups' key with :func:`group_key`) and test or reading code with the PyPI ``vtk`` wheel
(:func:`read_vtk` reads our files back into numpy through VTK's own XML readers). The wheel and
ParaView cannot share one process.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from convscope._optional import require

require("vtkmodules", feature="VTK scenes and readers", extra="vtk", pip_hint='pip install "convscope[vtk]" (or run under pvpython --no-mpi)')

from vtkmodules.util.numpy_support import numpy_to_vtk, vtk_to_numpy  # noqa: E402
from vtkmodules.vtkCommonCore import VTK_ID_TYPE, vtkIdTypeArray, vtkPoints, vtkStringArray  # noqa: E402
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkImageData, vtkPolyData  # noqa: E402
from vtkmodules.vtkIOXML import vtkXMLImageDataReader, vtkXMLPolyDataReader  # noqa: E402

from convscope.errors import DataError  # noqa: E402
from convscope.export._scenes import ImageData, PolyData  # noqa: E402
from convscope.paraview import looks  # noqa: E402

__all__ = ["empty_like", "group_key", "read_vtk", "to_vtk", "vtk_version"]


def vtk_version() -> str:
    from vtkmodules.vtkCommonCore import vtkVersion

    return str(vtkVersion.GetVTKVersion())


def _vtk_array(name: str, values: np.ndarray) -> Any:
    a = np.ascontiguousarray(values)
    if a.dtype == np.bool_:
        a = a.astype(np.uint8)
    arr = numpy_to_vtk(a.reshape(len(a), -1) if a.ndim > 1 else a, deep=True)
    arr.SetName(name)
    return arr


def _cells(cells: tuple[np.ndarray, np.ndarray] | None) -> Any:
    out = vtkCellArray()
    if cells is None:
        return out
    connectivity, offsets = cells
    offs = vtkIdTypeArray()
    offs.DeepCopy(numpy_to_vtk(np.concatenate([[0], np.asarray(offsets, np.int64)]).astype(np.int64), deep=True, array_type=VTK_ID_TYPE))
    conn = vtkIdTypeArray()
    conn.DeepCopy(numpy_to_vtk(np.asarray(connectivity, np.int64), deep=True, array_type=VTK_ID_TYPE))
    out.SetData(offs, conn)
    return out


def to_vtk(scene: PolyData | ImageData) -> Any:
    """A ``vtkPolyData`` or ``vtkImageData`` holding the scene's geometry and arrays (copies)."""
    out: vtkPolyData | vtkImageData
    if isinstance(scene, PolyData):
        out = vtkPolyData()
        pts = vtkPoints()
        pts.SetData(numpy_to_vtk(np.ascontiguousarray(scene.points, np.float32).reshape(-1, 3), deep=True))
        out.SetPoints(pts)
        out.SetVerts(_cells(scene.verts))
        out.SetLines(_cells(scene.lines))
        out.SetPolys(_cells(scene.polys))
        for name, values in scene.point_data.items():
            out.GetPointData().AddArray(_vtk_array(name, values))
        for name, values in scene.cell_data.items():
            out.GetCellData().AddArray(_vtk_array(name, values))
        if scene.cell_data:
            out.GetCellData().SetActiveScalars(next(iter(scene.cell_data)))
    elif isinstance(scene, ImageData):
        out = vtkImageData()
        out.SetDimensions(*scene.dimensions)
        out.SetOrigin(*scene.origin)
        out.SetSpacing(*scene.spacing)
        out.SetDirectionMatrix(*(float(v) for v in scene.direction))
        n = int(np.prod(scene.dimensions))
        for name, values in scene.point_data.items():
            a = np.asarray(values)
            out.GetPointData().AddArray(_vtk_array(name, a.reshape(n) if a.size == n else a.reshape(n, -1)))
        if scene.point_data:
            out.GetPointData().SetActiveScalars(next(iter(scene.point_data)))
    else:
        raise DataError(f"cannot make a VTK object of {type(scene).__name__}")
    for name, values in scene.field_data.items():
        out.GetFieldData().AddArray(_vtk_array(name, np.atleast_1d(np.asarray(values))))
    return out


def empty_like(kind: str, array: str = "activation", dtype: Any = np.uint8) -> Any:
    """An empty dataset of a scene kind (``"polydata"`` or ``"image"``): a placeholder channel.

    An image holds one point of ``array`` (the array its views colour by) and, unlike the scenes
    of frames, no ``step`` field: the pipeline hides what it has no frame of yet.
    """
    if kind == "image":
        img = vtkImageData()
        img.SetDimensions(1, 1, 1)
        img.GetPointData().AddArray(_vtk_array(array, np.zeros(1, dtype)))
        return img
    poly = vtkPolyData()
    poly.SetPoints(vtkPoints())
    return poly


def _arrays(data: Any) -> dict[str, np.ndarray]:
    out = {}
    for i in range(data.GetNumberOfArrays()):
        arr = data.GetAbstractArray(i)
        if arr.IsNumeric():
            out[arr.GetName()] = vtk_to_numpy(arr).copy()
        else:  # string arrays (Catalyst adds some to its extracts)
            out[arr.GetName()] = np.array([arr.GetVariantValue(j).ToString() for j in range(arr.GetNumberOfValues())])
    return out


def read_vtk(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a ``.vtp`` or ``.vti`` file with VTK's own readers into numpy arrays.

    Returns ``points`` (polydata), ``dimensions`` and ``direction`` (image data: the direction
    matrix by rows), ``point_data``, ``cell_data``, ``field_data`` (dicts of arrays) and
    ``cells`` (polydata: ``polys``/``lines``/``verts`` as ``(connectivity, offsets)``).
    """
    path = os.fspath(path)
    reader = vtkXMLPolyDataReader() if path.endswith(".vtp") else vtkXMLImageDataReader()
    reader.SetFileName(path)
    reader.Update()
    if reader.GetErrorCode():
        raise DataError(f"VTK could not read {path} (error code {reader.GetErrorCode()})")
    data = reader.GetOutput()
    out: dict[str, Any] = {
        "point_data": _arrays(data.GetPointData()),
        "cell_data": _arrays(data.GetCellData()),
        "field_data": _arrays(data.GetFieldData()),
    }
    if isinstance(data, vtkPolyData):
        out["points"] = vtk_to_numpy(data.GetPoints().GetData()).copy() if data.GetPoints() else np.zeros((0, 3), np.float32)
        out["cells"] = {}
        for name, cells in (("verts", data.GetVerts()), ("lines", data.GetLines()), ("polys", data.GetPolys())):
            if cells.GetNumberOfCells():
                out["cells"][name] = (vtk_to_numpy(cells.GetConnectivityArray()).copy(), vtk_to_numpy(cells.GetOffsetsArray())[1:].copy())
    else:
        out["dimensions"] = tuple(data.GetDimensions())
        matrix = data.GetDirectionMatrix()
        out["direction"] = tuple(matrix.GetElement(i, j) for i in range(3) for j in range(3))
    return out


def _builtins_back() -> None:
    """Take numpy's ``min``, ``max``, ``abs`` ... back out of ``__main__``, where ParaView's
    Programmable Filter puts them (it runs ``from numpy import *`` and ``from
    paraview.vtk.numpy_interface.algorithms import *`` there before its script) in place of
    Python's: in the bridge, the script ParaView runs as ``__main__``, ``min`` of a generator
    failed after the first step. Called first by :func:`group_key`, a Programmable Filter's script."""
    import builtins
    import sys

    def numpys(value: Any) -> bool:  # (algorithms is imported there as paraview.vtk.numpy_interface.algorithms)
        module = str(getattr(value, "__module__", None) or "")
        return isinstance(value, np.ufunc) or module.split(".")[0] == "numpy" or module.endswith("numpy_interface.algorithms")

    main = sys.modules.get("__main__")
    space = vars(main) if main is not None else {}
    for name in [n for n in space if not n.startswith("_") and hasattr(builtins, n)]:
        if space[name] is not getattr(builtins, name) and numpys(space[name]):
            del space[name]


@functools.lru_cache(maxsize=1024)
def _letters(text: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``text`` in ``vtkVectorText``'s flat letters: triangles' points (a capital 1 high, the
    baseline at y = 0), their connectivity and offsets."""
    from vtkmodules.vtkRenderingFreeType import vtkVectorText  # (rendering's libraries: only where letters are drawn)

    source = vtkVectorText()
    source.SetText(text)
    source.Update()
    data = source.GetOutput()
    if data.GetNumberOfPoints() == 0:
        return np.zeros((0, 3), np.float32), np.zeros(0, np.int64), np.zeros(0, np.int64)
    polys = data.GetPolys()
    return (vtk_to_numpy(data.GetPoints().GetData()).astype(np.float32),
            vtk_to_numpy(polys.GetConnectivityArray()).astype(np.int64), vtk_to_numpy(polys.GetOffsetsArray())[1:].astype(np.int64))


def _rgb(colour: Sequence[float]) -> tuple[int, int, int]:
    r, g, b = (int(round(255 * c)) for c in colour)
    return r, g, b


class _Flat:
    """Flat triangles and quads in one colour each, gathered into one polydata."""

    def __init__(self) -> None:
        self.points: list[np.ndarray] = []
        self.conn: list[np.ndarray] = []
        self.offsets: list[np.ndarray] = []
        self.rgb: list[np.ndarray] = []
        self.n = self.m = 0  # (points and connectivity so far)

    def _add(self, points: np.ndarray, conn: np.ndarray, offsets: np.ndarray, rgb: tuple[int, int, int]) -> None:
        self.points.append(points)
        self.conn.append(conn + self.n)
        self.offsets.append(offsets + self.m)
        self.rgb.append(np.tile(np.array(rgb, np.uint8), (len(offsets), 1)))
        self.n += len(points)
        self.m += len(conn)

    def text(self, text: str, x: float, y: float, size: float, *, align: str = "left", middle: bool = False,
             rgb: tuple[int, int, int] = _rgb(looks.TEXT)) -> None:
        """``text`` with its baseline at ``y`` (its capitals' middle where ``middle``), starting, centred
        or ending at ``x`` (``align``), its capitals ``size`` high."""
        points, conn, offsets = _letters(text)
        if not len(offsets):
            return
        lo, hi = float(points[:, 0].min()), float(points[:, 0].max())
        shift = {"left": 0.0, "centre": (lo + hi) / 2, "right": hi}[align]
        placed = (points - np.array([shift, 0.5 if middle else 0.0, 0.0], np.float32)) * size + np.array([x, y, 0.0], np.float32)
        self._add(placed, conn, offsets, rgb)

    def square(self, x: float, y: float, size: float, rgb: tuple[int, int, int]) -> None:
        """A square ``size`` wide from ``(x, y)`` (its lower left corner) rightwards and up."""
        corners = np.array([[x, y, 0.0], [x + size, y, 0.0], [x + size, y + size, 0.0], [x, y + size, 0.0]], np.float32)
        self._add(corners, np.arange(4, dtype=np.int64), np.array([4], np.int64), rgb)

    def polydata(self) -> PolyData:
        if not self.points:
            return PolyData(points=np.zeros((0, 3), np.float32), cell_data={"rgb": np.zeros((0, 3), np.uint8)})
        return PolyData(points=np.concatenate(self.points), polys=(np.concatenate(self.conn), np.concatenate(self.offsets)),
                        cell_data={"rgb": np.concatenate(self.rgb)})


def group_key(image: Any, out: Any, *, thick: float = 1.0, tick: float = 0.8, step: int = 1, x: float | None = None,
              y: float = 0.5, letters: float = 1.0, chars: int = 40, lines: int | None = None) -> None:
    """``out``: the key of the groups of ``image`` (a ``groups`` image) as flat letters and swatches
    in the correlation matrix's cells (filter ``i``'s column at x = i, its row at y = -i): every
    ``step``-th filter's index, ``tick`` cells high, above the strip along the matrix's top
    (``thick`` cells, :data:`~convscope.paraview.looks.STRIP_GAP` from it) and left of the one down
    its left edge; and :func:`~convscope.paraview.looks.key_lines` from ``(x, y)`` (its top left
    corner; by default right of the matrix), ``letters`` cells high, at most ``chars`` characters
    and ``lines`` lines (letters down to 0.8 as high, in more and longer lines, where the groups
    would not all fit). Each cell's colour is its ``rgb``; the field data holds the lines
    (``key``), the index of each one's swatch colour (``key_swatch``: -1 no group, -2 none) and the
    indices written (``ticks``). Run by :func:`looks.group_key <convscope.paraview.looks.group_key>`'s
    Programmable Filter; :func:`looks.arrange <convscope.paraview.looks.arrange>` says where."""
    _builtins_back()
    group = image.GetPointData().GetArray("group")
    labels = vtk_to_numpy(group).astype(np.int64).ravel().tolist() if group is not None else []
    threshold = image.GetFieldData().GetArray("threshold")
    flat = _Flat()
    beyond = 0.5 + looks.STRIP_GAP + thick + 0.3 * tick  # (from a row's middle past the strip)
    ticks = list(range(0, len(labels), max(int(step), 1)))
    for i in ticks:
        flat.text(str(i), i, beyond, tick, align="centre")
        flat.text(str(i), -beyond, -i, tick, align="right", middle=True)
    said: list[tuple[int | None, str]] = []
    smaller = 1.0
    for smaller in (1.0, 0.9, 0.8) if labels else ():  # (smaller letters rather than groups left out)
        said = looks.key_lines(labels, threshold=None if threshold is None else float(threshold.GetValue(0)),
                               chars=int(chars / smaller), max_lines=None if lines is None else int(lines / smaller))
        if not any(slot is None and line.startswith("+ ") for slot, line in said):
            break
    letters *= smaller
    left = len(labels) + 1.0 if x is None else x
    column = left + looks.LINE_HEIGHT * letters  # (the swatches' column, then the words')
    for k, (slot, line) in enumerate(said):
        base = y - letters - k * looks.LINE_HEIGHT * letters
        if slot is not None:
            colour = looks.NO_GROUP if slot < 0 else looks.GROUP_COLOURS[slot]
            flat.square(left, base - 0.1 * letters, 1.1 * letters, _rgb(colour))
        flat.text(line, column if slot is not None or line.startswith(" ") else left, base, letters)
    poly = to_vtk(flat.polydata())
    key = vtkStringArray()
    key.SetName("key")
    for _, line in said:
        key.InsertNextValue(line)
    poly.GetFieldData().AddArray(key)
    swatch = np.array([-2 if slot is None else slot for slot, _ in said], np.int32)
    poly.GetFieldData().AddArray(_vtk_array("key_swatch", swatch))
    poly.GetFieldData().AddArray(_vtk_array("ticks", np.array(ticks, np.int32)))
    out.ShallowCopy(poly)

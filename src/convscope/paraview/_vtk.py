"""Every ``vtkmodules`` import of convscope lives here.

Used in two kinds of process, never in training: ParaView's own Python (the Catalyst bridge
turns :mod:`convscope.export._scenes` into VTK objects with :func:`to_vtk`) and test or
reading code with the PyPI ``vtk`` wheel (:func:`read_vtk` reads our files back into numpy
through VTK's own XML readers). The wheel and ParaView cannot share one process.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from convscope._optional import require

require("vtkmodules", feature="VTK scenes and readers", extra="vtk", pip_hint='pip install "convscope[vtk]" (or run under pvpython --no-mpi)')

from vtkmodules.util.numpy_support import numpy_to_vtk, vtk_to_numpy  # noqa: E402
from vtkmodules.vtkCommonCore import VTK_ID_TYPE, vtkIdTypeArray, vtkPoints  # noqa: E402
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkImageData, vtkPolyData  # noqa: E402
from vtkmodules.vtkIOXML import vtkXMLImageDataReader, vtkXMLPolyDataReader  # noqa: E402

from convscope.errors import DataError  # noqa: E402
from convscope.export._scenes import ImageData, PolyData  # noqa: E402

__all__ = ["empty_like", "read_vtk", "to_vtk", "vtk_version"]


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

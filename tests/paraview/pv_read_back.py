"""Read VTK files with ParaView's own readers (run with ``pvpython --no-mpi``) and save what it saw.

    pvpython --no-mpi pv_read_back.py OUT.npz FILE [FILE ...]

A ``.pvd`` is read at its last time step. For each file i the npz holds ``i/reader`` (the
reader ParaView chose), ``i/times``, ``i/points``, ``i/dimensions``, ``i/cell/NAME``,
``i/point/NAME`` and ``i/field/NAME``, and ``i/load_s`` (seconds to open and fetch); for image
data also ``i/bounds`` and ``i/image_points``, where ParaView places each point (up to 10,000).
"""

import sys
import time

import numpy as np
from paraview import servermanager
from paraview.simple import OpenDataFile
from vtkmodules.util.numpy_support import vtk_to_numpy


def main():
    out, files = sys.argv[1], sys.argv[2:]
    saved = {}
    for i, path in enumerate(files):
        t0 = time.perf_counter()
        source = OpenDataFile(path)
        times = list(getattr(source, "TimestepValues", None) or [])
        source.UpdatePipeline(times[-1] if times else 0.0)
        data = servermanager.Fetch(source)
        saved[f"{i}/load_s"] = np.array(time.perf_counter() - t0)
        saved[f"{i}/reader"] = np.array(source.GetXMLName())
        saved[f"{i}/times"] = np.array(times, np.float64)
        if hasattr(data, "GetPoints") and data.GetPoints() is not None:
            saved[f"{i}/points"] = vtk_to_numpy(data.GetPoints().GetData())
        if hasattr(data, "GetDimensions"):
            saved[f"{i}/dimensions"] = np.array(data.GetDimensions())
            saved[f"{i}/bounds"] = np.array(source.GetDataInformation().GetBounds())
            n = min(data.GetNumberOfPoints(), 10_000)
            saved[f"{i}/image_points"] = np.array([data.GetPoint(k) for k in range(n)])
        for prefix, attrs in (("cell", data.GetCellData()), ("point", data.GetPointData()), ("field", data.GetFieldData())):
            for j in range(attrs.GetNumberOfArrays()):
                a = attrs.GetArray(j)
                saved[f"{i}/{prefix}/{a.GetName()}"] = vtk_to_numpy(a)
    np.savez(out, **saved)


if __name__ == "__main__":
    main()

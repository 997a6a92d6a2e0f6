"""Run ``open_exports.py`` as the ParaView GUI runs a start-up script, and save what it set up.

    pvpython --no-mpi pv_open_exports_gui.py OUT.json

(``CONVSCOPE_EXPORTS`` and ``CONVSCOPE_LAYER`` say what to open, as ``convscope paraview --open``
sets them.) The GUI runs the script as ``__main__`` with ``sys.argv == ['']``. OUT.json holds
``exit`` (the status the script exited with, or null when it did not exit: in the GUI an exit
closes ParaView), the grid's bounds at the first and the last step, the feature map's and the
distribution's placement, the colour legend's end label of the largest weight, and where they
are there: the correlation matrix's and its groups' strips' placement and bounds at the first
and the last step, its colours and legend, the colour index of each filter's group in the
strips, the groups' key (its lines, their swatches, the indices written along the matrix, its
placement and bounds) at the step shown, and the trajectory view's axis titles.
"""

import json
import os
import runpy
import sys

import paraview.simple as simple
from paraview import servermanager
from vtkmodules.util.numpy_support import vtk_to_numpy

from convscope.paraview import script_path


def main():
    out = sys.argv[1]
    sys.argv = [""]
    said = {"exit": None}
    try:
        runpy.run_path(str(script_path("open_exports")), run_name="__main__")
    except SystemExit as exc:
        said["exit"] = exc.code
    sources = {name: proxy for (name, _id), proxy in simple.GetSources().items()}
    weights = next(s for n, s in sources.items() if n.startswith("weights-"))
    maps = next(s for n, s in sources.items() if n.startswith("feature_maps-"))
    dist = next(s for n, s in sources.items() if n.startswith("distribution-"))
    view = simple.GetViews()[0]
    said["maps_bounds"] = list(maps.GetDataInformation().GetBounds())
    corr = next((s for n, s in sources.items() if n.startswith("correlation-")), None)
    if corr is not None:
        corr_times = list(corr.TimestepValues)
        for key, t in (("corr_first", corr_times[0]), ("corr_last", corr_times[-1])):
            corr.UpdatePipeline(t)
            said[key] = list(corr.GetDataInformation().GetBounds())
        shown = simple.GetDisplayProperties(corr, view)
        said["corr_position"], said["corr_scale"] = list(shown.Position), list(shown.Scale)
        lut = simple.GetColorTransferFunction("r")
        said["corr_colours"] = list(lut.RGBPoints)
        bar = simple.GetScalarBar(lut, view)
        said["corr_legend"] = [str(bar.Title), int(bar.Visibility), bar.WindowLocation.GetData()]
        said["weights_legend"] = simple.GetScalarBar(simple.GetColorTransferFunction("value"), view).WindowLocation.GetData()
        said["strips"] = {}
        for n, s in sources.items():
            if n.startswith("groups-") and "colours" in n:  # (the strip along the top, and the one turned down)
                shown = simple.GetDisplayProperties(s, view)
                said["strips"][n] = {"position": list(shown.Position), "scale": list(shown.Scale),
                                     "orientation": list(shown.Orientation), "thick": float(shown.GlyphType.YLength)}
                if not n.endswith("down"):
                    data = servermanager.Fetch(s)
                    said["strip_colours"] = vtk_to_numpy(data.GetPointData().GetArray("group_colour")).tolist()
            if n.startswith("groups-") and n.endswith(" key"):
                data = servermanager.Fetch(s)
                fields = data.GetFieldData()
                said["key"] = [fields.GetAbstractArray("key").GetValue(i) for i in range(fields.GetAbstractArray("key").GetNumberOfValues())]
                said["key_swatch"] = vtk_to_numpy(fields.GetArray("key_swatch")).tolist()
                said["ticks"] = vtk_to_numpy(fields.GetArray("ticks")).tolist()
                shown = simple.GetDisplayProperties(s, view)
                said["key_display"] = {"position": list(shown.Position), "scale": list(shown.Scale),
                                       "visible": int(shown.Visibility), "bounds": list(data.GetBounds())}
    views = simple.GetViews()
    if len(views) > 1:
        grid = views[1].AxesGrid
        said["trajectory_titles"] = [str(grid.XTitle), str(grid.YTitle), str(grid.ZTitle)]
    times = list(weights.TimestepValues)
    for key, t in (("grid_first", times[0]), ("grid_last", times[-1])):
        weights.UpdatePipeline(t)
        said[key] = list(weights.GetDataInformation().GetBounds())
    said["layer"] = next(n for n in sources if n.startswith("weights-"))[len("weights-"):]
    shown = simple.GetDisplayProperties(maps, view)
    said["maps_position"], said["maps_scale"] = list(shown.Position), list(shown.Scale)
    shown = simple.GetDisplayProperties(dist, view)
    said["dist_position"], said["dist_scale"] = list(shown.Position), list(shown.Scale)
    said["dist_bounds"] = list(dist.GetDataInformation().GetBounds())
    bar = simple.GetScalarBar(simple.GetColorTransferFunction("value"), view)
    said["range_label"] = bar.RangeLabelFormat % bar.LookupTable.RGBPoints[-4]
    with open(out, "w") as f:
        json.dump(said, f)
    sys.stdout.flush()
    os._exit(0)  # (ParaView 5.11 can crash tearing down an offscreen window)


if __name__ == "__main__":
    main()

"""Run ``open_exports.py`` as the ParaView GUI runs a start-up script, and save what it set up.

    pvpython --no-mpi pv_open_exports_gui.py OUT.json

(``CONVSCOPE_EXPORTS`` and ``CONVSCOPE_LAYER`` say what to open, as ``convscope paraview --open``
sets them.) The GUI runs the script as ``__main__`` with ``sys.argv == ['']``. OUT.json holds
``exit`` (the status the script exited with, or null when it did not exit: in the GUI an exit
closes ParaView), the grid's bounds at the first and the last step, the feature map's and the
distribution's placement, and the colour legend's end label of the largest weight.
"""

import json
import os
import runpy
import sys

import paraview.simple as simple

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
    times = list(weights.TimestepValues)
    for key, t in (("grid_first", times[0]), ("grid_last", times[-1])):
        weights.UpdatePipeline(t)
        said[key] = list(weights.GetDataInformation().GetBounds())
    said["layer"] = next(n for n in sources if n.startswith("weights-"))[len("weights-"):]
    shown = simple.GetDisplayProperties(maps, view)
    said["maps_position"], said["maps_scale"] = list(shown.Position), list(shown.Scale)
    shown = simple.GetDisplayProperties(dist, view)
    said["dist_position"], said["dist_scale"] = list(shown.Position), list(shown.Scale)
    bar = simple.GetScalarBar(simple.GetColorTransferFunction("value"), view)
    said["range_label"] = bar.RangeLabelFormat % bar.LookupTable.RGBPoints[-4]
    with open(out, "w") as f:
        json.dump(said, f)
    sys.stdout.flush()
    os._exit(0)  # (ParaView 5.11 can crash tearing down an offscreen window)


if __name__ == "__main__":
    main()

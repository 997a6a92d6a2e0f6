"""Open ``convscope export --format vtk`` files in ParaView with convscope's looks.

``convscope paraview --open DIR`` runs it in the ParaView GUI (``paraview --script=open_exports.py``
with ``CONVSCOPE_EXPORTS=DIR`` and ``CONVSCOPE_LAYER`` set, and convscope on ``PYTHONPATH``), and
``--screenshot`` runs it with pvpython::

    pvpython --no-mpi open_exports.py exports/vtk [--layer conv1] --screenshot views.png

It opens each view's ``.pvd`` (its steps become ParaView's time steps), shows the weight grid as
raised blocks in blue-white-red with the distribution view beside it, the first feature map
under it and the correlation matrix between the filters (blue-white-red over -1..1, with the
filter groups as coloured strips along its top and left edges, the filters' indices, and a key
of the groups' colours, ids and filters) under the grid's right part and the distribution, and
the trajectory in a second view. ``--screenshot`` saves both views side by side at the last step
and exits (run under ``xvfb-run -a`` without a display).
"""

from __future__ import annotations

import argparse
import glob
import math
import os
import sys
from typing import Any


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="open_exports.py")
    p.add_argument("folder", nargs="?", default=os.environ.get("CONVSCOPE_EXPORTS", "."))
    p.add_argument("--layer", default=os.environ.get("CONVSCOPE_LAYER") or None)
    p.add_argument("--screenshot", default=None)
    p.add_argument("--size", default="1200x800")
    p.add_argument("--step", type=float, default=None, help="the step to show (default the last)")
    return p.parse_args(argv)


def _find(folder: str, prefix: str, layer: str | None) -> str | None:
    matches = sorted(glob.glob(os.path.join(folder, f"{prefix}-{layer or '*'}.pvd")))
    return matches[0] if matches else None


def _times(source: Any) -> list[float]:
    return list(source.TimestepValues) if source.TimestepValues else [0.0]


def _box(source: Any, times: list[float] | None = None) -> list[float]:
    """The bounds that hold ``source`` at its first and at its last step (of ``times``, by
    default its own: a correlation recorded every 10 steps has its own first and last).

    (Laid out by the last step alone, a layer pruned midway had a larger grid in its first
    steps, which ran into the feature map under it as the user played the run back.)
    """
    times = times or _times(source)
    box = [math.inf, -math.inf] * 3
    for t in sorted({times[0], times[-1]}):
        source.UpdatePipeline(t)
        b = source.GetDataInformation().GetBounds()
        if b[0] <= b[1]:
            box = [min(box[i], b[i]) if i % 2 == 0 else max(box[i], b[i]) for i in range(6)]
    return box if box[0] <= box[1] else [0.0, 1.0, 0.0, 1.0, 0.0, 0.0]


def _range(source: Any, times: list[float]) -> float:
    """The largest weight magnitude at the first and the last step: one colour scale for the run."""
    vmax = 0.0
    for t in sorted({times[0], times[-1]}):
        source.UpdatePipeline(t)
        lo, hi = source.CellData["value"].GetRange()
        vmax = max(vmax, abs(lo), abs(hi))
    return vmax


def _weight_titles(dims: Any, step: float) -> tuple[str, ...]:
    """The axes of the path of the three chosen weights (``trajectory-dims``, not principal
    components): the weights' flat indices, from its ``index`` array at ``step``."""
    from convscope.paraview import looks

    dims.UpdatePipeline(step)
    index = dims.PointData["index"] if "index" in dims.PointData.keys() else None
    if index is None or index.GetNumberOfComponents() < 3:
        return ("chosen weight 1", "chosen weight 2", "chosen weight 3")
    return looks.weight_titles([int(index.GetRange(k)[1]) for k in range(3)])


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    import paraview.simple as simple

    from convscope.paraview import looks

    weights_file = _find(args.folder, "weights", args.layer)
    if weights_file is None:
        print(f"no weights-*.pvd in {args.folder}: export with `convscope export RUN --format vtk`", file=sys.stderr)
        return 2
    layer = args.layer or os.path.basename(weights_file)[len("weights-") : -len(".pvd")]
    width, height = (int(v) for v in args.size.split("x"))
    weights = simple.PVDReader(registrationName=f"weights-{layer}", FileName=weights_file)
    times = _times(weights)
    step = args.step if args.step is not None else times[-1]
    scene = simple.GetAnimationScene()
    scene.UpdateAnimationUsingDataTimeSteps()
    scene.AnimationTime = step

    layout = simple.CreateLayout("convscope")
    view = simple.CreateView("RenderView")
    looks.style_view(view)
    view.ViewTime = step
    traj_file = _find(args.folder, "trajectory-pca", layer) or _find(args.folder, "trajectory-dims", layer)
    if traj_file:
        layout.SplitHorizontal(0, 0.68)
        layout.AssignView(1, view)
    else:
        layout.AssignView(0, view)

    looks.show_weights(weights, view, vmax=_range(weights, times))
    bounds = _box(weights, times)
    laid_out = [weights]
    dist_file = _find(args.folder, "distribution", layer)
    distribution = maps = None
    if dist_file:
        dist = simple.PVDReader(registrationName=f"distribution-{layer}", FileName=dist_file)
        distribution = (looks.show_distribution(dist, view), _box(dist, times))
        laid_out.append(dist)
    maps_file = _find(args.folder, "feature_maps", layer)
    if maps_file:
        images = simple.PVDReader(registrationName=f"feature_maps-{layer}", FileName=maps_file)
        maps = (looks.show_feature_maps(images, view), _box(images, times))
        laid_out.append(images)
    correlation = strips = key = None
    corr_file = _find(args.folder, "correlation", layer)
    if corr_file:
        corr = simple.PVDReader(registrationName=f"correlation-{layer}", FileName=corr_file)
        correlation = (looks.show_correlation(corr, view), _box(corr))  # (as large as the matrix gets)
        laid_out.append(corr)
        groups_file = _find(args.folder, "groups", layer)
        if groups_file:
            groups = simple.PVDReader(registrationName=f"groups-{layer}", FileName=groups_file)
            along_top = looks.group_strip(groups, registrationName=f"groups-{layer} colours")
            along_left = simple.PassThrough(Input=along_top, registrationName=f"groups-{layer} colours, down")
            strips = (looks.show_groups(along_top, view), looks.show_groups(along_left, view, down=True))
            key = looks.show_group_key(looks.group_key(along_top, registrationName=f"groups-{layer} key"), view)
            laid_out.append(along_left)
    box = looks.arrange(bounds, distribution=distribution, maps=maps, correlation=correlation, groups=strips, key=key)
    for source in laid_out:
        source.UpdatePipeline(step)  # (the layout read the first and last steps: back to the one shown)
    if traj_file:
        tview = simple.CreateView("RenderView")
        looks.style_view(tview)
        tview.ViewTime = step
        layout.AssignView(2, tview)
        traj = simple.PVDReader(registrationName=os.path.basename(traj_file)[:-4], FileName=traj_file)
        looks.show_trajectory(traj, tview)
        titles = looks.PCA_TITLES if os.path.basename(traj_file).startswith("trajectory-pca-") else _weight_titles(traj, step)
    layout.SetSize(width, height)
    looks.frame_camera(view, bounds=box)  # (the layout's box: what the run's first and last steps show)
    if traj_file:
        looks.frame_trajectory(tview, titles)
    if args.screenshot:
        if os.path.exists(args.screenshot):
            os.remove(args.screenshot)  # (so a picture that was not written is not taken for this one)
        saved = simple.SaveScreenshot(args.screenshot, layout, ImageResolution=[width, height])
        if saved is False or not os.path.isfile(args.screenshot):
            print(f"could not save {args.screenshot} (see ParaView's message above): pass a path in a folder you can write to",
                  file=sys.stderr, flush=True)
        else:
            print(f"saved {args.screenshot}", flush=True)
        # ParaView 5.11 can crash while tearing down an offscreen X render window at exit;
        # the picture is written, so leave without the teardown.
        sys.stdout.flush()
        os._exit(0 if os.path.isfile(args.screenshot) else 1)
    simple.Render(view)
    return 0


if __name__ == "__main__":
    code = main()
    # The ParaView GUI runs this with an empty sys.argv[0]; sys.exit there closes ParaView as soon
    # as the views are drawn (even with 0), so only pvpython gets an exit status.
    if code and sys.argv[0]:
        sys.exit(code)

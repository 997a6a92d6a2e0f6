"""Open ``convscope export --format vtk`` files in ParaView with convscope's looks.

Run with ParaView's Python (``convscope paraview --open DIR`` does this)::

    pvpython --no-mpi open_exports.py exports/vtk [--layer conv1] [--screenshot views.png]

or in the GUI: ``paraview --script=open_exports.py`` with ``CONVSCOPE_EXPORTS=exports/vtk`` set.
It opens each view's ``.pvd`` (its steps become ParaView's time steps), shows the weight grid as
raised blocks in blue-white-red with the distribution view beside it and the first feature map
under it, and the trajectory in a second view. ``--screenshot`` saves both views side by side
at the last step and exits (run under ``xvfb-run -a`` without a display).
"""

from __future__ import annotations

import argparse
import glob
import os
import sys


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="open_exports.py")
    p.add_argument("folder", nargs="?", default=os.environ.get("CONVSCOPE_EXPORTS", "."))
    p.add_argument("--layer", default=None)
    p.add_argument("--screenshot", default=None)
    p.add_argument("--size", default="1200x800")
    p.add_argument("--step", type=float, default=None, help="the step to show (default the last)")
    return p.parse_args(argv)


def _find(folder: str, prefix: str, layer: str | None) -> str | None:
    matches = sorted(glob.glob(os.path.join(folder, f"{prefix}-{layer or '*'}.pvd")))
    return matches[0] if matches else None


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
    times = list(weights.TimestepValues) if weights.TimestepValues else [0.0]
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

    weights.UpdatePipeline(step)
    rng = weights.CellData["value"].GetRange()
    looks.show_weights(weights, view, vmax=max(abs(rng[0]), abs(rng[1])))
    bounds = weights.GetDataInformation().GetBounds()
    grid_width = bounds[1] - bounds[0]
    dist_file = _find(args.folder, "distribution", layer)
    if dist_file:
        dist = simple.PVDReader(registrationName=f"distribution-{layer}", FileName=dist_file)
        dist.UpdatePipeline(step)
        db = dist.GetDataInformation().GetBounds()
        # as tall as the weight grid, a third of its width, to its right
        sx = grid_width / 3 / max(db[1] - db[0], 1)
        sy = (bounds[3] - bounds[2]) / max(db[3] - db[2], 1)
        display = looks.show_distribution(dist, view, offset=(bounds[1] + grid_width / 20, bounds[3]))
        display.Scale = [sx, sy, 1.0]
    maps_file = _find(args.folder, "feature_maps", layer)
    if maps_file:
        maps = simple.PVDReader(registrationName=f"feature_maps-{layer}", FileName=maps_file)
        maps.UpdatePipeline(step)
        mb = maps.GetDataInformation().GetBounds()
        # map 0, a quarter of the grid's width, under the grid
        scale = grid_width / 4 / max(mb[1] - mb[0] + 1, 1)
        looks.show_feature_maps(maps, view, offset=(bounds[0], bounds[2] - grid_width / 20), scale=scale)
    if traj_file:
        tview = simple.CreateView("RenderView")
        looks.style_view(tview)
        tview.ViewTime = step
        layout.AssignView(2, tview)
        traj = simple.PVDReader(registrationName=os.path.basename(traj_file)[:-4], FileName=traj_file)
        looks.show_trajectory(traj, tview)
    layout.SetSize(width, height)
    looks.frame_camera(view)
    if traj_file:
        looks.frame_trajectory(tview)
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
    sys.exit(main())

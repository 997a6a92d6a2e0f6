"""The looks of convscope's views in ParaView: colour maps, displays and their layout.

Runs inside ParaView's Python only (the Catalyst pipeline and ``open_exports.py`` import it);
every function takes what it draws and uses ``paraview.simple``. Colours match the dashboard,
the figures and :mod:`convscope.export._scenes`: blue-white-red for signed values (negative
blue, zero white, positive red), grey for feature maps.

Layout in one render view (x right, y up, units of weight cells): the weight grid from the
origin rightwards and downwards, the distribution view to its right, the feature maps under it.
The trajectory gets its own view.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

#: blue-white-red, as (value in [-1, 1], r, g, b) control points
DIVERGING = [-1.0, 33 / 255, 102 / 255, 172 / 255, 0.0, 247 / 255, 247 / 255, 247 / 255, 1.0, 178 / 255, 24 / 255, 43 / 255]
BACKGROUND = [1.0, 1.0, 1.0]
TEXT = [0.1, 0.1, 0.1]
#: the colour legend's end labels: two significant digits, as its other labels
RANGE_LABEL_FORMAT = "%.2g"


def _simple() -> Any:
    import paraview.simple as simple

    return simple


def diverging(array: str, vmax: float) -> Any:
    """The colour transfer function of ``array``: blue-white-red over ``[-vmax, vmax]``."""
    simple = _simple()
    lut = simple.GetColorTransferFunction(array)
    vmax = float(vmax) if vmax and vmax > 0 else 1.0
    lut.RGBPoints = [v * vmax if i % 4 == 0 else v for i, v in enumerate(DIVERGING)]
    lut.ColorSpace = "RGB"
    lut.AutomaticRescaleRangeMode = "Never"
    return lut


def grey(array: str, lo: float = 0.0, hi: float = 255.0) -> Any:
    simple = _simple()
    lut = simple.GetColorTransferFunction(array)
    lut.RGBPoints = [lo, 0.0, 0.0, 0.0, hi, 1.0, 1.0, 1.0]
    lut.AutomaticRescaleRangeMode = "Never"
    return lut


def sequential(array: str, hi: float = 1.0) -> Any:
    simple = _simple()
    lut = simple.GetColorTransferFunction(array)
    lut.ApplyPreset("Viridis (matplotlib)", True)
    lut.RescaleTransferFunction(0.0, float(hi) if hi > 0 else 1.0)
    lut.AutomaticRescaleRangeMode = "Never"
    return lut


def style_view(view: Any, *, size: tuple[int, int] | None = None) -> None:
    view.Background = BACKGROUND
    try:  # ParaView 5.10+: the palette would otherwise override the background
        view.UseColorPaletteForBackground = 0
    except AttributeError:
        pass
    view.OrientationAxesVisibility = 0
    if size is not None:
        view.ViewSize = list(size)


def show_weights(source: Any, view: Any, *, vmax: float = 1.0) -> Any:
    """The weight grid as raised blocks, coloured by value (blue-white-red)."""
    simple = _simple()
    display = simple.Show(source, view)
    display.Ambient, display.Diffuse = 0.35, 0.75  # pale small weights stay readable on shaded faces
    simple.ColorBy(display, ("CELLS", "value"))
    display.LookupTable = diverging("value", vmax)
    display.SetScalarBarVisibility(view, True)
    bar = simple.GetScalarBar(display.LookupTable, view)
    bar.Title = "weight"
    bar.ComponentTitle = ""
    bar.TitleColor = TEXT
    bar.LabelColor = TEXT
    # the range's own labels as the others are (ParaView's "%-#6.1e" put "7.0e-01" over "0.4")
    bar.RangeLabelFormat = RANGE_LABEL_FORMAT
    return display


def show_distribution(source: Any, view: Any, *, offset: tuple[float, float] = (0.0, 0.0)) -> Any:
    simple = _simple()
    display = simple.Show(source, view)
    simple.ColorBy(display, ("CELLS", "density"))
    display.LookupTable = sequential("density", 1.0)
    display.Position = [offset[0], offset[1], 0.0]
    return display


def show_feature_maps(source: Any, view: Any, *, offset: tuple[float, float] = (0.0, 0.0), scale: float = 1.0) -> Any:
    """The maps' first slice (map 0) as a grey image; ``Slice`` picks another map."""
    simple = _simple()
    display = simple.Show(source, view)
    display.SetRepresentationType("Slice")
    simple.ColorBy(display, ("POINTS", "activation"))
    display.LookupTable = grey("activation")
    display.Position = [offset[0], offset[1], 0.0]
    display.Scale = [scale, -scale, 1.0]  # image rows run downwards
    return display


def show_trajectory(source: Any, view: Any) -> Any:
    simple = _simple()
    display = simple.Show(source, view)
    simple.ColorBy(display, ("POINTS", "step"))
    lut = simple.GetColorTransferFunction("step")
    lut.ApplyPreset("Viridis (matplotlib)", True)
    display.LineWidth = 3.0
    display.PointSize = 6.0
    display.RenderPointsAsSpheres = 1
    return display


def arrange(grid: Sequence[float], *, distribution: tuple[Any, Sequence[float]] | None = None,
            maps: tuple[Any, Sequence[float]] | None = None) -> list[float]:
    """Place the other views around the weight grid whose bounds are ``grid``; return the bounds of all.

    ``distribution`` and ``maps`` are each a display and its data's bounds. The distribution goes
    right of the grid, as tall as it and a third of its width (its bins at their own scale were
    wider than the grid and took the picture); map 0 goes under the grid, a quarter of its width.
    ``open_exports.py`` and the Catalyst pipeline's PNGs lay out alike.
    """
    width, height = grid[1] - grid[0], grid[3] - grid[2]
    box = list(grid)
    if distribution is not None:
        display, b = distribution
        display.Position = [grid[1] + width / 20, grid[3], 0.0]
        display.Scale = [width / 3 / max(b[1] - b[0], 1), height / max(b[3] - b[2], 1), 1.0]
        box[1] = grid[1] + width / 20 + width / 3
    if maps is not None:
        display, b = maps
        scale = width / 4 / max(b[1] - b[0] + 1, 1)
        display.Position = [grid[0], grid[2] - width / 20, 0.0]
        display.Scale = [scale, -scale, 1.0]  # image rows run downwards
        box[2] = grid[2] - width / 20 - scale * max(b[3] - b[2], 0)
    return box


def frame_camera(view: Any, *, tilt: bool = True, margin: float = 1.15, bar: float = 0.16,
                 bounds: Sequence[float] | None = None) -> None:
    """Look at everything from the front, a little from below so that raised blocks show.

    The camera fits the box of what is shown to the view (with ``margin``), not its bounding
    sphere as ``ResetCamera`` does, which left a wide layout small in a band across the view;
    the right ``bar`` share of the view stays free for the colour legend. ``bounds`` (what
    :func:`arrange` returns) stands for what is shown where the view has not drawn it yet (in
    Catalyst, the displays hold the step before until the PNG is rendered).
    """
    simple = _simple()
    direction = (0.0, -0.2 if tilt else 0.0, 1.0)  # from the camera's focal point towards the camera
    view.CameraViewUp = [0.0, 1.0, 0.0]
    view.CameraParallelProjection = 0
    view.CameraPosition = list(direction)
    view.CameraFocalPoint = [0.0, 0.0, 0.0]
    if bounds is None:  # (it renders: 100 ms a step in Catalyst, where the bounds are known)
        simple.ResetCamera(view)  # the fallback, and clipping ranges
    try:
        renderer = view.GetRenderer()
        b = list(bounds) if bounds is not None else renderer.ComputeVisiblePropBounds()
    except AttributeError:  # a view without a local renderer: the sphere fit stays
        return
    if not b[0] <= b[1]:  # nothing shown
        return
    width, height, depth = b[1] - b[0], b[3] - b[2], b[5] - b[4]
    size = list(view.ViewSize)
    aspect = size[0] / size[1] if size[1] > 0 else 1.0
    half = max(height / 2, width / 2 / max(aspect * (1 - bar), 1e-6)) * margin
    tangent = math.tan(math.radians(view.CameraViewAngle) / 2)
    distance = half / tangent + depth / 2
    norm = math.hypot(*direction)
    # the scene's centre a half legend-width left of the view's
    centre = [(b[0] + b[1]) / 2 + bar * tangent * distance * aspect, (b[2] + b[3]) / 2, (b[4] + b[5]) / 2]
    view.CameraFocalPoint = centre
    view.CameraPosition = [c + d / norm * distance for c, d in zip(centre, direction, strict=True)]
    renderer.ResetCameraClippingRange()


def frame_trajectory(view: Any) -> None:
    """The trajectory from an oblique angle, with labelled axes around its bounds."""
    simple = _simple()
    view.CameraPosition = [1.0, -1.0, 0.8]
    view.CameraFocalPoint = [0.0, 0.0, 0.0]
    view.CameraViewUp = [0.0, 0.0, 1.0]
    grid = view.AxesGrid
    grid.Visibility = 1
    for axis in ("X", "Y", "Z"):
        setattr(grid, f"{axis}TitleColor", TEXT)
        setattr(grid, f"{axis}LabelColor", TEXT)
    grid.XTitle, grid.YTitle, grid.ZTitle = "PC 1", "PC 2", "PC 3"
    grid.GridColor = [0.6, 0.6, 0.6]
    simple.ResetCamera(view)
    # back off: the reset fits the path, not the axes' labels around it, which a narrow view cut off
    view.GetActiveCamera().Dolly(0.7)

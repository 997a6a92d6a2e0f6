"""The looks of convscope's views in ParaView: colour maps, displays and their layout.

Runs inside ParaView's Python only (the Catalyst pipeline and ``open_exports.py`` import it);
every function takes what it draws and uses ``paraview.simple``. Colours match the dashboard,
the figures and :mod:`convscope.export._scenes`: blue-white-red for signed values (negative
blue, zero white, positive red: the weights over their largest magnitude, correlations over
-1..1), grey for feature maps, one colour per filter group.

Layout in one render view (x right, y up, units of weight cells): the weight grid from the
origin rightwards and downwards, the distribution view to its right, the feature maps under the
grid and the correlation matrix under the distribution, with the filter groups as coloured
strips along its top and left edges (:func:`arrange`). The trajectory gets its own view.
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
#: filter groups, one colour per group id (cycled): none of them the correlation's blue, white
#: or red, so that a strip is not read as a correlation
GROUP_COLOURS = [
    (1.0, 0.498, 0.055), (0.173, 0.627, 0.173), (0.580, 0.404, 0.741), (0.549, 0.337, 0.294),
    (0.890, 0.467, 0.761), (0.737, 0.741, 0.133), (0.090, 0.745, 0.812), (0.0, 0.427, 0.357),
]
#: a filter in no group (group -1)
NO_GROUP = (0.82, 0.82, 0.82)
#: the array :func:`group_strip` colours the strips by
GROUP_ARRAY = "group_colour"
#: the groups' strips: as thick as this share of the matrix (one cell at least), this far from it
STRIP_SHARE = 1 / 24
STRIP_GAP = 0.5


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


def group_colours() -> Any:
    """The colours of the ``group_colour`` array (:func:`group_strip`): each of
    :data:`GROUP_COLOURS` by its index, ``-1`` (in no group) pale grey."""
    simple = _simple()
    lut = simple.GetColorTransferFunction(GROUP_ARRAY)
    lut.InterpretValuesAsCategories = 1
    lut.AnnotationsInitialized = 1
    ids = range(-1, len(GROUP_COLOURS))
    lut.Annotations = [v for g in ids for v in (str(g), "none" if g < 0 else str(g))]
    lut.IndexedColors = [c for g in ids for c in (NO_GROUP if g < 0 else GROUP_COLOURS[g])]
    lut.NanColor = list(NO_GROUP)
    return lut


def group_strip(groups: Any, **names: Any) -> Any:
    """The colour of each filter's group as an array, ``group_colour``: the group id modulo the
    number of :data:`GROUP_COLOURS` (ids grow as groups form and part, so no fixed list of ids
    would hold them all), ``-1`` for a filter in no group. A ParaView Calculator on ``groups``."""
    simple = _simple()
    calc = simple.Calculator(Input=groups, **names)
    # (% is ExprTk's, the Calculator's parser from ParaView 5.10)
    calc.Function = f"(group >= 0) * (group % {len(GROUP_COLOURS)} + 1) - 1"
    calc.ResultArrayName = GROUP_ARRAY
    calc.ResultArrayType = "Int"
    return calc


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
    # (the range's own labels as the others are: ParaView's "%-#6.1e" put "7.0e-01" over "0.4")
    _legend(display, view, "weight", "Upper Right Corner")
    return display


def _legend(display: Any, view: Any, title: str, where: str) -> Any:
    simple = _simple()
    display.SetScalarBarVisibility(view, True)
    bar = simple.GetScalarBar(display.LookupTable, view)
    bar.Title = title
    bar.ComponentTitle = ""
    bar.TitleColor = TEXT
    bar.LabelColor = TEXT
    bar.RangeLabelFormat = RANGE_LABEL_FORMAT
    bar.WindowLocation = where
    return bar


def _cells(display: Any) -> None:
    """Draw each point of an image as a flat square of one cell around it (a box glyph), in the
    colour of its value, unshaded. (ParaView's image slice stretches F pixels over the F - 1
    cells between the first and the last point, so a strip of groups beside it would not line up.)"""
    display.SetRepresentationType("3D Glyphs")
    display.GlyphType = "Box"
    display.GlyphType.XLength = 1.0
    display.GlyphType.YLength = 1.0  # (a strip of groups: its thickness, set by arrange)
    display.GlyphType.ZLength = 0.02
    display.ScaleByArray = 0
    display.ScaleFactor = 1.0
    display.Orient = 0
    display.Ambient, display.Diffuse, display.Specular = 1.0, 0.0, 0.0


def show_correlation(source: Any, view: Any) -> Any:
    """The correlation matrix between a layer's filters as a heatmap: blue-white-red over -1..1
    (the same at every step), row 0 at the top, with its legend."""
    simple = _simple()
    display = simple.Show(source, view)
    _cells(display)
    simple.ColorBy(display, ("POINTS", "r"))
    display.LookupTable = diverging("r", 1.0)
    _legend(display, view, "filter correlation", "Lower Right Corner")
    return display


def show_groups(strip: Any, view: Any, *, down: bool = False) -> Any:
    """The filter groups (``strip``: :func:`group_strip` of the ``groups`` series, or a pass
    through it) as a strip of cells, one colour per group (:func:`group_colours`); ``down``
    turns the row of filters to run down (for the matrix's left edge)."""
    simple = _simple()
    display = simple.Show(strip, view)
    _cells(display)
    simple.ColorBy(display, ("POINTS", GROUP_ARRAY))
    display.LookupTable = group_colours()
    display.SetScalarBarVisibility(view, False)
    display.Orientation = [0.0, 0.0, -90.0 if down else 0.0]  # (x along the filters goes to -y)
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
    display.Scale = [scale, scale, 1.0]  # (convscope's images run down: row 0 at the top)
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


def _rows(b: Sequence[float]) -> float:
    """+1 for an image whose rows run down from y = 0 (convscope's, :data:`~convscope.export._scenes.ROWS_DOWN`),
    -1 for one whose rows run up from it (exports of convscope before it wrote the direction)."""
    return -1.0 if b[2] >= 0 and b[3] > 0 else 1.0


def arrange(grid: Sequence[float], *, distribution: tuple[Any, Sequence[float]] | None = None,
            maps: tuple[Any, Sequence[float]] | None = None,
            correlation: tuple[Any, Sequence[float]] | None = None,
            groups: tuple[Any, Any] | None = None) -> list[float]:
    """Place the other views around the weight grid whose bounds are ``grid``; return the bounds of all.

    ``distribution``, ``maps`` and ``correlation`` are each a display and its data's bounds
    (what it holds at its largest: a pruned layer's first steps). The distribution goes right of
    the grid, as tall as it and a third of its width (its bins at their own scale were wider than
    the grid and took the picture); map 0 goes under the grid, a quarter of its width; the
    correlation matrix under the distribution, as wide as it, with ``groups`` (the displays of
    the strip along its top and of the one along its left edge, :func:`show_groups`) inside that
    width. Each keeps its top left corner where it is put, so a matrix that shrinks as filters
    are pruned stays clear of the rest. ``open_exports.py`` and the Catalyst pipeline's PNGs lay
    out alike.
    """
    width, height = grid[1] - grid[0], grid[3] - grid[2]
    gap = width / 20
    box = list(grid)
    right = grid[1] + gap  # the column right of the grid: the distribution, the correlation under it
    if distribution is not None:
        display, b = distribution
        display.Position = [right, grid[3], 0.0]
        display.Scale = [width / 3 / max(b[1] - b[0], 1), height / max(b[3] - b[2], 1), 1.0]
        box[1] = right + width / 3
    if maps is not None:
        display, b = maps
        scale = width / 4 / max(b[1] - b[0] + 1, 1)
        display.Position = [grid[0], grid[2] - gap, 0.0]
        display.Scale = [scale, _rows(b) * scale, 1.0]  # row 0 at the top
        box[2] = min(box[2], grid[2] - gap - scale * max(b[3] - b[2], 0))
    if correlation is not None:
        display, b = correlation
        filters = max(int(round(b[1] - b[0])) + 1, 1)
        thick = max(1.0, filters * STRIP_SHARE)
        edge = STRIP_GAP + thick if groups is not None else 0.0  # (cells left of and above the matrix)
        cell = width / 3 / (filters + edge)
        top, left = grid[2] - gap, right
        # point (j, i) of the matrix is the middle of its cell: the first at half a cell in
        centre = [left + cell * (edge + 0.5), top - cell * (edge + 0.5)]
        display.Position = [centre[0], centre[1], 0.0]
        display.Scale = [cell, _rows(b) * cell, 1.0]
        if groups is not None:
            along_top, along_left = groups
            middle = STRIP_GAP + thick / 2 + 0.5  # from the strip's middle to the matrix's first cell's
            along_top.Position = [centre[0], centre[1] + cell * middle, 0.0]
            along_left.Position = [centre[0] - cell * middle, centre[1], 0.0]
            for display in (along_top, along_left):
                display.Scale = [cell, cell, 1.0]
                display.GlyphType.YLength = thick
        box[1] = max(box[1], left + width / 3)
        box[2] = min(box[2], top - width / 3)
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


#: the trajectory's axes on the principal axes of its path
PCA_TITLES = ("PC 1", "PC 2", "PC 3")


def weight_titles(index: Sequence[int]) -> tuple[str, ...]:
    """The axes' titles of a path of three chosen weights: their flat indices in the layer's weights."""
    names = [f"weight {int(i)}" for i in list(index)[:3]]
    return tuple(names + [""] * (3 - len(names)))


def frame_trajectory(view: Any, titles: Sequence[str] = PCA_TITLES) -> None:
    """The trajectory from an oblique angle, with its axes (``titles``: what x, y and z are) around its bounds."""
    simple = _simple()
    view.CameraPosition = [1.0, -1.0, 0.8]
    view.CameraFocalPoint = [0.0, 0.0, 0.0]
    view.CameraViewUp = [0.0, 0.0, 1.0]
    grid = view.AxesGrid
    grid.Visibility = 1
    for axis in ("X", "Y", "Z"):
        setattr(grid, f"{axis}TitleColor", TEXT)
        setattr(grid, f"{axis}LabelColor", TEXT)
    grid.XTitle, grid.YTitle, grid.ZTitle = (str(t) for t in titles)
    grid.GridColor = [0.6, 0.6, 0.6]
    simple.ResetCamera(view)
    # back off: the reset fits the path, not the axes' labels around it, which a narrow view cut off
    view.GetActiveCamera().Dolly(0.7)

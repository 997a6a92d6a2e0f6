"""The looks of convscope's views in ParaView: colour maps, displays and their layout.

Runs inside ParaView's Python only (the Catalyst pipeline and ``open_exports.py`` import it);
every function takes what it draws and uses ``paraview.simple``. Colours match the dashboard,
the figures and :mod:`convscope.export._scenes`: blue-white-red for signed values (negative
blue, zero white, positive red: the weights over their largest magnitude, correlations over
-1..1), grey for feature maps, one colour per filter group.

Layout in one render view (x right, y up, units of weight cells): the weight grid from the
origin rightwards and downwards, the distribution view to its right, the feature maps under the
grid and the correlation matrix under the grid's right part and the distribution, with the
filter groups as coloured strips along its top and left edges, the filters' indices beside
them, and the groups' key (a swatch, the id and the filters of each group, then "no group")
left of the matrix (:func:`arrange`). The trajectory gets its own view.
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
#: the correlation matrix with its strips and the filters' indices: as wide as this share of the
#: layout (the grid, a gap and the distribution); a third of the grid's width was too small to read
MATRIX_SHARE = 0.4
#: the height of the groups' key's letters, a share of the grid's width; the filters' indices a
#: little smaller
KEY_TEXT = 1 / 38
TICK_TEXT = 0.85
#: the letters of the key (``vtkVectorText``): a character's width and a line's height, in heights
#: of a capital, and the width of a digit
CHAR_WIDTH = 0.75
LINE_HEIGHT = 1.6
DIGIT_WIDTH = 0.93


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


def group_slots(labels: Sequence[int]) -> dict[int, int]:
    """Each group id of ``labels`` (a group id per filter, ``-1`` for none) and the index of its
    colour in :data:`GROUP_COLOURS`: its id modulo their number, or, where an older group (a
    smaller id: ids only grow) of the same labels has that colour, the next one free. So the
    groups of one step have distinct colours as long as there are no more of them than colours,
    and a group keeps its colour while it lives unless it had to move aside.

    Example:
        >>> group_slots([-1, 4, 12, 4, 12, 2])  # (4 and 12 would share a colour modulo 8)
        {2: 2, 4: 4, 12: 5}
    """
    ids = sorted({int(g) for g in labels if int(g) >= 0})
    n = len(GROUP_COLOURS)
    slots: dict[int, int] = {}
    for g in ids:
        slot = g % n
        if len(slots) < n:  # (past n groups the colours repeat, as the key says)
            while slot in slots.values():
                slot = (slot + 1) % n
        slots[g] = slot
    return slots


def spans(indices: Sequence[int]) -> str:
    """``[0, 1, 2, 5, 7, 8]`` as ``"0-2, 5, 7, 8"``: runs of three or more as first-last."""
    out: list[str] = []
    run: list[int] = []
    for i in [*sorted(int(v) for v in indices), None]:
        if run and (i is None or i != run[-1] + 1):
            out += [f"{run[0]}-{run[-1]}"] if len(run) > 2 else [str(v) for v in run]
            run = []
        if i is not None:
            run.append(i)
    return ", ".join(out)


def _wrap(text: str, chars: int) -> list[str]:
    """``text`` in lines of at most ``chars`` characters, broken at spaces (a longer word alone)."""
    lines: list[str] = []
    for word in text.split(" "):
        if lines and len(lines[-1]) + 1 + len(word) <= chars:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines


def key_lines(labels: Sequence[int], *, threshold: float | None = None, chars: int = 40,
              max_lines: int | None = None) -> list[tuple[int | None, str]]:
    """The lines of the groups' key of ``labels`` (a group id per filter, ``-1`` for none), each
    with the colour of its swatch: an index in :data:`GROUP_COLOURS` (:func:`group_slots`),
    ``-1`` for the pale grey of "no group", ``None`` for a line without one.

    A title, a warning where there are more groups than colours, then each group by id with its
    filters, then the filters in no group; lines broken to ``chars`` characters. Past
    ``max_lines``, the filters in no group are left out ("no group" alone says what the grey
    is), then the last groups that do not fit are counted in one line ("+ 3 more groups").

    Example:
        >>> key_lines([-1, 0, 0, 9, 9, -1], threshold=0.9)
        [(None, 'filter groups (threshold 0.9)'), (0, 'group 0: filters 1, 2'), (1, 'group 9: filters 3, 4'), (-1, 'no group: filters 0, 5')]
    """
    labels = [int(g) for g in labels]
    slots = group_slots(labels)
    title = ["filter groups", *([f"(threshold {threshold:.2g})"] if threshold is not None else [])]
    if len(" ".join(title)) > chars:  # (its two parts on two lines rather than "(threshold" over "0.9)")
        title = [line for part in title for line in _wrap(part, chars)]
    else:
        title = [" ".join(title)]
    if len(slots) > len(GROUP_COLOURS):
        title += _wrap(f"{len(slots)} groups, {len(GROUP_COLOURS)} colours: colours repeat", chars)
    head: list[tuple[int | None, str]] = [(None, line) for line in title]

    def entry(slot: int, name: str, members: list[int]) -> list[tuple[int | None, str]]:
        said, listed = f"{name}: filter{'s' if len(members) > 1 else ''}", spans(members)
        if len(said) + 1 + len(listed) <= chars:
            return [(slot, f"{said} {listed}")]
        # (a list that does not fit starts on a line of its own: "filters 4," over "9" read badly)
        return [(slot, said), *((None, "  " + line) for line in _wrap(listed, chars - 2))]

    groups = [entry(slots[g], f"group {g}", [i for i, x in enumerate(labels) if x == g]) for g in slots]
    alone = [i for i, x in enumerate(labels) if x < 0]
    tail = entry(-1, "no group", alone) if alone else []

    def over() -> bool:
        return max_lines is not None and len(head) + sum(map(len, groups)) + len(tail) > max_lines

    if over() and alone:  # (the groups' filters first: the grey's meaning is enough of the rest)
        tail = [(-1, "no group")]
    if over() and max_lines is not None:
        room = max(max_lines - len(head) - len(tail) - 1, 0)
        shown: list[list[tuple[int | None, str]]] = []
        while groups and sum(map(len, shown)) + len(groups[0]) <= room:
            shown.append(groups.pop(0))
        groups = [*shown, [(None, f"+ {len(groups)} more group{'s' if len(groups) > 1 else ''}")]]
    return [*head, *(line for g in groups for line in g), *tail]


def tick_step(filters: int, size: float) -> int:
    """Every how many filters an index is written along the matrix, for letters ``size`` cells
    high: 1, 2, 5, 10, 20, 50 ..., the first whose labels (as wide as the largest index) do not
    touch."""
    wide = max(len(str(max(filters - 1, 0))) * DIGIT_WIDTH + 0.6, LINE_HEIGHT) * size
    step, k = 1, 0
    while step < wide:
        k += 1
        step = (1, 2, 5)[k % 3] * 10 ** (k // 3)
    return step


def group_colour_index(labels: Sequence[int]) -> Any:
    """The colour of each filter of ``labels`` (a group id per filter): its group's index in
    :data:`GROUP_COLOURS` (:func:`group_slots`), ``-1`` for a filter in no group; a numpy array.

    Example:
        >>> group_colour_index([-1, 4, 12, 4]).tolist()
        [-1, 4, 5, 4]
    """
    import numpy as np

    given = [int(g) for g in np.asarray(labels).ravel()]
    slots = group_slots(given)
    return np.array([slots.get(g, -1) for g in given], np.int32)


def group_strip(groups: Any, **names: Any) -> Any:
    """The colour of each filter's group as an array, ``group_colour``: an index in
    :data:`GROUP_COLOURS` (:func:`group_slots`: the group id modulo their number, or the next
    free where an older group of that step has it), ``-1`` for a filter in no group. A ParaView
    Python Calculator on ``groups`` (:func:`group_colour_index`), run again at each step."""
    simple = _simple()
    strip = simple.PythonCalculator(Input=groups, **names)
    # (a Python Calculator, not a Programmable Filter: 4 ms a step rather than 40, and nothing put in __main__)
    strip.Expression = '__import__("convscope.paraview.looks", fromlist=["looks"]).group_colour_index(group)'
    strip.ArrayAssociation = "Point Data"
    strip.ArrayName = GROUP_ARRAY  # (int32, as group_colour_index returns it)
    return strip


def group_key(strip: Any, **names: Any) -> Any:
    """The key of the groups of ``strip`` (:func:`group_strip`): the filters' indices along the
    matrix's top and left edges, beyond the strips, and a swatch, the id and the filters of
    each group, then of the filters in no group (:func:`key_lines`), as flat letters
    (``vtkVectorText``) in the matrix's cells (:func:`arrange` says where and how large); its
    lines, their swatches and the indices written are also its field data, ``key``,
    ``key_swatch`` and ``ticks``. A ParaView Programmable Filter
    (:func:`convscope.paraview._vtk.group_key`), run again at each step."""
    simple = _simple()
    key = simple.ProgrammableFilter(Input=strip, **names)
    key.OutputDataSetType = "vtkPolyData"
    key.Script = _key_script({})
    return key


def _key_script(layout: dict[str, Any]) -> str:
    """The script of :func:`group_key`'s filter, with ``layout`` (:func:`arrange`'s) written into
    it: a Programmable Filter takes no arguments but its script."""
    given = "".join(f", {k}={v!r}" for k, v in layout.items())
    return f"from convscope.paraview import _vtk\n_vtk.group_key(self.GetInputDataObject(0, 0), self.GetOutputDataObject(0){given})"


def show_group_key(key: Any, view: Any) -> Any:
    """The groups' key (:func:`group_key`) in its own colours: letters dark, swatches in their groups'."""
    simple = _simple()
    display = simple.Show(key, view)
    simple.ColorBy(display, ("CELLS", "rgb"))
    display.MapScalars = 0  # (the rgb array is the colour itself)
    display.SetScalarBarVisibility(view, False)
    display.Ambient, display.Diffuse, display.Specular = 1.0, 0.0, 0.0
    return display


def quiet_first_repeat(*producers: Any) -> None:
    """Drop the one "New time step is not after last time step" warning ParaView's legacy Catalyst
    makes each of ``producers`` (a Catalyst pipeline's ``TrivialProducer`` channels) say on the
    first step; pass on any other warning they give. A pipeline of your own (the bridge's
    ``--pipeline``) calls it as convscope's does: ``looks.quiet_first_repeat(weights, groups, ...)``.

    The bridge calls Catalyst once a step, every channel in one data description, with strictly
    increasing times. But on the first step ParaView 5.11 (vtkCPPythonScriptV2Helper) hands each
    producer that step's data twice at the same time: once when the pipeline script is imported
    (its ``TrivialProducer(registrationName=...)``: GetTrivialProducer calls
    ``vtkPVTrivialProducer::SetOutput(grid, time)``), then again in CatalystExecute, so every
    channel said it once when the bridge started (nothing was lost: the step is extracted and sent
    as usual). The API gives no way around it but sending a made-up earlier time, which would show
    in the channels' time steps. A second such warning, a time that really did not advance, still
    shows.
    """
    from vtkmodules.util.misc import calldata_type
    from vtkmodules.util.vtkConstants import VTK_STRING
    from vtkmodules.vtkCommonCore import vtkCommand, vtkLogger

    def observer() -> Any:
        said: list[str] = []  # (each producer's own: its first repeat is dropped, any later one shown)

        @calldata_type(VTK_STRING)
        def on_warning(_obj: Any, _event: Any, text: str) -> None:
            if not said and "New time step is not after last time step" in text:
                said.append(text)
                return
            # (with an observer, VTK hands the warning to it instead of logging it: log it as it
            # would, from "Warning: In FILE, line N\nMESSAGE")
            where, _, message = text.strip().partition("\n")
            fname, _, line = where.removeprefix("Warning: In ").rpartition(", line ")
            if message and line.isdigit():
                vtkLogger.Log(vtkLogger.VERBOSITY_WARNING, fname, int(line), message)
            else:
                vtkLogger.Log(vtkLogger.VERBOSITY_WARNING, "", 0, text.strip())

        return on_warning

    for producer in producers:
        producer.GetClientSideObject().AddObserver(vtkCommand.WarningEvent, observer())


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
            groups: tuple[Any, Any] | None = None, key: Any | None = None) -> list[float]:
    """Place the other views around the weight grid whose bounds are ``grid``; return the bounds of all.

    ``distribution``, ``maps`` and ``correlation`` are each a display and its data's bounds
    (what it holds at its largest: a pruned layer's first steps). The distribution goes right of
    the grid, as tall as it and a third of its width (its bins at their own scale were wider than
    the grid and took the picture); map 0 goes under the grid, a quarter of its width; the
    correlation matrix under the grid's right part and the distribution, :data:`MATRIX_SHARE`
    of the layout's width with ``groups`` (the displays of the strip along its top and of the
    one along its left edge, :func:`show_groups`) and, where there is a ``key`` (the display of
    :func:`group_key`), the filters' indices beyond them, and the key's lines between the map and
    the matrix. Each keeps its top left corner where it is put, so a matrix that shrinks as
    filters are pruned stays clear of the rest. ``open_exports.py`` and the Catalyst pipeline's
    PNGs lay out alike.
    """
    width, height = grid[1] - grid[0], grid[3] - grid[2]
    gap = width / 20
    box = list(grid)
    right = grid[1] + gap  # the column right of the grid: the distribution
    end = right + width / 3  # (the layout's right edge: the distribution's)
    if distribution is not None:
        display, b = distribution
        display.Position = [right, grid[3], 0.0]
        display.Scale = [width / 3 / max(b[1] - b[0], 1), height / max(b[3] - b[2], 1), 1.0]
        box[1] = end
    beside_maps = grid[0]  # (where the key may start: right of the map)
    if maps is not None:
        display, b = maps
        scale = width / 4 / max(b[1] - b[0] + 1, 1)
        display.Position = [grid[0], grid[2] - gap, 0.0]
        display.Scale = [scale, _rows(b) * scale, 1.0]  # row 0 at the top
        box[2] = min(box[2], grid[2] - gap - scale * max(b[3] - b[2], 0))
        beside_maps = grid[0] + width / 4 + gap
    if correlation is not None:
        display, b = correlation
        filters = max(int(round(b[1] - b[0])) + 1, 1)
        thick = max(1.0, filters * STRIP_SHARE)
        edge = STRIP_GAP + thick if groups is not None else 0.0  # (cells left of and above the matrix)
        letters = width * KEY_TEXT if key is not None else 0.0
        tick = letters * TICK_TEXT
        above = 1.3 * tick  # (the indices above the top strip, and left of the left one)
        beside = (len(str(filters - 1)) * DIGIT_WIDTH + 0.3) * tick
        block = MATRIX_SHARE * (end - grid[0])
        cell = (block - beside) / (filters + edge)
        top, left = grid[2] - gap, end - block
        # point (j, i) of the matrix is the middle of its cell: the first at half a cell in
        centre = [left + beside + cell * (edge + 0.5), top - above - cell * (edge + 0.5)]
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
        bottom = top - above - cell * (filters + edge)
        if key is not None:  # (in the matrix's cells, as the strips)
            key.Position = [centre[0], centre[1], 0.0]
            key.Scale = [cell, cell, 1.0]
            room = left - gap - beside_maps
            layout = {"thick": round(thick, 6), "tick": round(tick / cell, 6), "step": tick_step(filters, tick / cell),
                      "x": round((beside_maps - centre[0]) / cell, 6), "y": round((top - centre[1]) / cell, 6),
                      "letters": round(letters / cell, 6), "chars": max(int((room / letters - LINE_HEIGHT) / CHAR_WIDTH), 8),
                      "lines": max(int((top - bottom) / (LINE_HEIGHT * letters)), 2)}
            key.Input.Script = _key_script(layout)
        box[1] = max(box[1], end)
        box[2] = min(box[2], bottom)
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

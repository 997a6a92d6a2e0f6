# script-version: 2
"""convscope's Catalyst pipeline: the views of one layer, live and as extracts.

Loaded by ``bridge.py`` (legacy Catalyst with a version-2 pipeline script; the first line
must stay ``# script-version: 2``). Channels the bridge provides every step: ``weights``,
``trajectory``, ``pca``, ``distribution`` (polydata), ``feature_maps``, ``correlation`` and
``groups`` (image data; until the layer's first frame of a kind, a one-point placeholder
without a ``step`` field, which the PNG leaves out). Settings come from the environment the
bridge sets:

* ``CONVSCOPE_LIVE``: ``host:port`` of a ``paraview --live=PORT`` client ("" = no Catalyst Live);
* ``CONVSCOPE_EXTRACTS``: folder for data extracts (.vtp/.vti pieces) and pictures ("" = none);
* ``CONVSCOPE_PNG``: "1" to render a PNG of the views each step (needs a display: xvfb-run).
"""

import os

from paraview import catalyst
from paraview.simple import CreateExtractor, CreateView, PassThrough, TrivialProducer

from convscope.paraview import looks

LIVE = os.environ.get("CONVSCOPE_LIVE", "")
EXTRACTS = os.environ.get("CONVSCOPE_EXTRACTS", "")
PNG = os.environ.get("CONVSCOPE_PNG", "0") == "1" and bool(EXTRACTS)

weights = TrivialProducer(registrationName="weights")
trajectory = TrivialProducer(registrationName="trajectory")
pca = TrivialProducer(registrationName="pca")
distribution = TrivialProducer(registrationName="distribution")
feature_maps = TrivialProducer(registrationName="feature_maps")
correlation = TrivialProducer(registrationName="correlation")
groups = TrivialProducer(registrationName="groups")


def _quiet_the_first_time_repeat(producer):
    """Drop the one "New time step is not after last time step" warning ParaView's legacy Catalyst
    makes ``producer`` say on the first step; pass on any other warning it gives.

    The bridge calls Catalyst once a step, every channel in one data description, with strictly
    increasing times. But on the first step ParaView 5.11 (vtkCPPythonScriptV2Helper) hands each
    producer that step's data twice at the same time: once when this script is imported
    (``TrivialProducer(registrationName=...)`` above: GetTrivialProducer calls
    ``vtkPVTrivialProducer::SetOutput(grid, time)``), then again in CatalystExecute, so every
    channel said it once when the bridge started (nothing was lost: the step is extracted and sent
    as usual). The API gives no way around it but sending a made-up earlier time, which would show
    in the channels' time steps. A second such warning, a time that really did not advance, still
    shows.
    """
    from vtkmodules.util.misc import calldata_type
    from vtkmodules.util.vtkConstants import VTK_STRING
    from vtkmodules.vtkCommonCore import vtkCommand, vtkLogger

    said = []

    @calldata_type(VTK_STRING)
    def on_warning(_obj, _event, text):
        if not said and "New time step is not after last time step" in text:
            said.append(text)
            return
        # (with an observer, VTK hands the warning to it instead of logging it: log it as it would,
        # from "Warning: In FILE, line N\nMESSAGE")
        where, _, message = text.strip().partition("\n")
        fname, _, line = where.removeprefix("Warning: In ").rpartition(", line ")
        if message and line.isdigit():
            vtkLogger.Log(vtkLogger.VERBOSITY_WARNING, fname, int(line), message)
        else:
            vtkLogger.Log(vtkLogger.VERBOSITY_WARNING, "", 0, text.strip())

    producer.GetClientSideObject().AddObserver(vtkCommand.WarningEvent, on_warning)


for _producer in (weights, trajectory, pca, distribution, feature_maps, correlation, groups):
    _quiet_the_first_time_repeat(_producer)

if EXTRACTS:
    for name, source, kind in (
        ("weights", weights, "VTP"),
        ("trajectory", trajectory, "VTP"),
        ("pca", pca, "VTP"),
        ("distribution", distribution, "VTP"),
        ("feature_maps", feature_maps, "VTI"),
        ("correlation", correlation, "VTI"),
        ("groups", groups, "VTI"),
    ):
        extractor = CreateExtractor(kind, source, registrationName=f"extract-{name}")
        extractor.Writer.FileName = f"{name}_{{timestep:06d}}.{'pvtp' if kind == 'VTP' else 'pvti'}"

if PNG:
    view = CreateView("RenderView")
    looks.style_view(view, size=(1200, 800))
    weights_display = looks.show_weights(weights, view)
    distribution_display = looks.show_distribution(distribution, view)
    maps_display = looks.show_feature_maps(feature_maps, view)
    correlation_display = looks.show_correlation(correlation, view)
    along_top = looks.group_strip(groups, registrationName="groups colours")
    along_left = PassThrough(Input=along_top, registrationName="groups colours, down")
    strips = (looks.show_groups(along_top, view), looks.show_groups(along_left, view, down=True))
    key_display = looks.show_group_key(looks.group_key(along_top, registrationName="groups key"), view)
    png = CreateExtractor("PNG", view, registrationName="png-views")
    png.Writer.FileName = "views_{timestep:06d}.png"
    png.Writer.ImageResolution = [1200, 800]

options = catalyst.Options()
if EXTRACTS:
    options.ExtractsOutputDirectory = EXTRACTS
if LIVE:
    options.EnableCatalystLive = 1
    options.CatalystLiveURL = LIVE


def _shown(source, *displays, legend=False):
    """Whether ``source`` holds a frame (not the bridge's placeholder); its displays (and their
    legend) shown if so, hidden if not."""
    there = "step" in source.FieldData.keys()
    for display in displays:
        display.Visibility = int(there)
        if legend:
            display.SetScalarBarVisibility(view, there)
    return there


def catalyst_execute(info):
    if PNG:
        # this step's data: without it the proxies answer for the step before (and ParaView
        # warns "Cannot produce requested time" every step)
        for source in (weights, distribution, feature_maps, correlation, along_left):
            source.UpdatePipeline(info.time)
        # the blue-white-red map stays symmetric around 0 as the weights grow
        rng = weights.CellData["value"].GetRange() if "value" in weights.CellData.keys() else (-1.0, 1.0)
        looks.diverging("value", max(abs(rng[0]), abs(rng[1])))
        # laid out as `convscope paraview --open` lays out exported files, and framed to fit
        grid = weights.GetDataInformation().GetBounds()
        if grid[0] <= grid[1]:
            with_maps = _shown(feature_maps, maps_display)
            with_correlation = _shown(correlation, correlation_display, legend=True)
            with_groups = _shown(groups, *strips, key_display) and with_correlation
            if not with_groups:  # (no strips nor key beside no matrix)
                for display in (*strips, key_display):
                    display.Visibility = 0
            box = looks.arrange(
                grid,
                distribution=(distribution_display, distribution.GetDataInformation().GetBounds()),
                maps=(maps_display, feature_maps.GetDataInformation().GetBounds()) if with_maps else None,
                correlation=(correlation_display, correlation.GetDataInformation().GetBounds()) if with_correlation else None,
                groups=strips if with_groups else None,
                key=key_display if with_groups else None,
            )
            looks.frame_camera(view, bounds=box)

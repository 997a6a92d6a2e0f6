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


looks.quiet_first_repeat(weights, trajectory, pca, distribution, feature_maps, correlation, groups)

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

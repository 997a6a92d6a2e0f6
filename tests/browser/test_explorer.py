"""The model explorer in a real Chromium: the four NeuralVis tasks, freezing, attacks and uploads."""

from __future__ import annotations

import re
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from convscope.explorer import ExplorerSession
from convscope.server import ServerHandle, start_local_server

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "explorer"))
from browser_canvas import canvas_state  # noqa: E402
from explorer_files import make_model_files  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# the colour of css pixel (x, y) of a 2-D canvas
PIXEL = """([sel, x, y]) => {
  const c = document.querySelector(sel); const k = c.width / c.clientWidth;
  return Array.from(c.getContext('2d').getImageData(Math.floor(x * k), Math.floor(y * k), 1, 1).data.slice(0, 3));
}"""
DRAWN = "n => Number((document.body.dataset.drawn || '0:0:0').split(':')[2]) > n"


@pytest.fixture(scope="module")
def explorer(tmp_path_factory) -> Iterator[tuple[ServerHandle, ExplorerSession, dict[str, str]]]:
    session = ExplorerSession()
    lenet = session.add_model("lenet5")  # trained on MNIST digits (cached after the first run)
    vgg = session.add_model("vgg12", pretrained=False)
    session.default_inputs(lenet.id, count=3)
    handle = start_local_server(tmp_path_factory.mktemp("runs"), explorer=session)
    yield handle, session, {"lenet": lenet.id, "vgg": vgg.id}
    handle.stop()


def _open(page, handle: ServerHandle, model: str) -> None:
    page.goto(handle.url + f"#/explore?model={model}")
    page.wait_for_function(DRAWN, arg=0, timeout=30_000)


def _draws(page) -> int:
    return int(page.evaluate("window.convscopeExplorer.draws"))


def _in_view(page, layers: list[str]) -> list[tuple[str, dict]]:
    """The layers whose block is not wholly inside the 3-D view (with its screen box)."""
    size = page.evaluate("(() => { const c = document.querySelector('#structure3d canvas'); return [c.clientWidth, c.clientHeight]; })()")
    out = []
    for layer in layers:
        b = page.evaluate("id => window.convscopeExplorer.blockBox(id)", layer)
        if b is None or b["left"] < 0 or b["top"] < 0 or b["right"] > size[0] or b["bottom"] > size[1]:
            out.append((layer, b))
    return out


def _rows(page) -> dict[str, tuple[str, str]]:
    rows = page.eval_on_selector_all("#layer-table tbody tr", "rs => rs.map(r => [r.dataset.layer, r.querySelector('.layer-kind').textContent, r.querySelector('.layer-shape').textContent])")
    return {name: (kind, shape) for name, kind, shape in rows}


def test_structure_of_lenet5_and_vgg12_is_shown_with_names_and_shapes(explorer, page) -> None:
    handle, session, ids = explorer
    _open(page, handle, ids["lenet"])
    rows = _rows(page)
    graph = session.model(ids["lenet"]).loaded.graph
    assert list(rows) == [layer.id for layer in graph.layers]
    assert rows["conv1"] == ("conv2d", "6×28×28") and rows["conv2"] == ("conv2d", "16×10×10") and rows["fc3"] == ("linear", "10")
    assert "lenet5" in page.inner_text("#model-title") and "1×28×28" in page.inner_text("#model-title")
    blocks = canvas_state(page, "#structure3d canvas")
    assert blocks["colours"] > 20, blocks  # blocks in their category colours, textured with maps
    # every block in view, the input slab whole; labelled with its layer's name; its colours keyed
    assert _in_view(page, list(rows)) == []
    # the input slab shows the input drawn, as the model sees it (a digit, mostly black), not plain grey
    page.wait_for_function("""() => {
      const at = window.convscopeExplorer.blockAt('input'), c = document.querySelector('#structure3d canvas'), t = document.createElement('canvas');
      t.width = c.width; t.height = c.height; t.getContext('2d').drawImage(c, 0, 0); const k = c.width / c.clientWidth;
      return Math.max(...t.getContext('2d').getImageData(Math.floor(at.x * k), Math.floor(at.y * k), 1, 1).data.slice(0, 3)) < 128;
    }""", timeout=10_000)
    labels = page.eval_on_selector_all("#structure3d .block-label:not([hidden])", "ls => ls.map(l => l.dataset.unit)")
    assert {"input", "conv1", "conv2", "fc3"} <= set(labels), labels
    legend = page.eval_on_selector_all("#structure-legend .legend-item", "is => is.map(i => [i.dataset.category, i.textContent])")
    assert [c for c, _ in legend] == ["io", "conv", "activation", "pool", "reshape", "dense"], legend
    assert dict(legend)["conv"] == "convolution"
    # a flat model has no module to expand or collapse: the buttons say so instead of doing nothing
    assert page.is_disabled("#expand-all") and page.is_disabled("#collapse-auto")
    assert "no nested modules" in page.get_attribute("#expand-all", "title")
    # the table's output thumbnails keep their maps' aspect (square maps: one map as wide as tall),
    # and every row is as tall whether it has thumbnails or not
    strips = page.eval_on_selector_all("#layer-table tbody tr", """rs => rs.map(r => {
      const c = r.querySelector('canvas.strip');
      return [r.dataset.layer, r.getBoundingClientRect().height, c && [c.getBoundingClientRect().width, c.getBoundingClientRect().height]];
    })""")
    heights = {round(h) for _, h, _ in strips}
    assert len(heights) == 1, strips
    conv1 = next(size for layer, _, size in strips if layer == "conv1")
    assert conv1 is not None and conv1[1] == 18 and conv1[0] == 6 * 18 + 5 * 2, conv1  # 6 square maps of 18 px, 2 px apart
    # the 2-D view of the first conv layer: every one of its 6 maps, values on hover
    assert page.inner_text("#layer-name") == "conv1" and "6 maps" in page.inner_text("#layer-shape")
    box = page.locator("#layer-maps").bounding_box()
    page.mouse.move(box["x"] + 10, box["y"] + 10)
    assert re.match(r"map 0 at \(\d+, \d+\): -?\d", page.inner_text("#hover-value"))
    # open another layer from the table: its maps replace the first
    page.click("#layer-table tr[data-layer='pool2']")
    page.wait_for_function("document.querySelector('#layer-name').textContent === 'pool2'")
    assert "16 maps" in page.inner_text("#layer-shape") and "16×5×5" in page.inner_text("#layer-shape")
    # or click its block in the 3-D structure: hovering names it, a click opens it
    canvas = page.locator("#structure3d canvas").bounding_box()
    for layer, maps in (("conv2", "16 maps"), ("conv1", "6 maps")):
        at = page.evaluate(f"window.convscopeExplorer.blockAt('{layer}')")
        x, y = canvas["x"] + at["x"], canvas["y"] + at["y"]
        page.mouse.move(x, y)
        assert page.inner_text("#structure3d .view-note").split()[:2] == [layer, "conv2d"]
        page.mouse.click(x, y)
        page.wait_for_function(f"document.querySelector('#layer-name').textContent === '{layer}'")
        assert maps in page.inner_text("#layer-shape")
    # the pointer gone, the note no longer names the block it was on (conv1 stays opened)
    page.mouse.move(canvas["x"] + canvas["width"] / 2, canvas["y"] - 20)
    assert page.inner_text("#structure3d .view-note").startswith("drag to orbit")
    # the layer's maps have a colour bar: the span of their ranges, a hovered map's own
    layer = page.evaluate("window.convscopeExplorer.state().layer.maps")
    bar = page.eval_on_selector("#layer-colorbar .colorbar", "b => [b.hidden, Number(b.dataset.lo), Number(b.dataset.hi), b.dataset.palette]")
    assert bar == [False, min(layer["vmin"]), max(layer["vmax"]), "grey"], bar
    box = page.locator("#layer-maps").bounding_box()
    page.mouse.move(box["x"] + 10, box["y"] + 10)
    assert page.eval_on_selector("#layer-colorbar .colorbar", "b => Number(b.dataset.hi)") == layer["vmax"][0]
    assert "map 0" in page.inner_text("#layer-colorbar")
    # a dense layer's units are laid out in a square: not "maps shrunk" to it
    page.click("#layer-table tr[data-layer='fc1']")
    page.wait_for_function("document.querySelector('#layer-name').textContent === 'fc1'")
    assert "120 units" in page.inner_text("#layer-shape") and "shrunk" not in page.inner_text("#layer-stats")
    # the digit's label is one of this model's classes: the prediction panel says it
    label = page.evaluate("window.convscopeExplorer.state().session.inputs.find(i => i.id === window.convscopeExplorer.drawnInput).label")
    key = page.inner_text("#prediction-key")
    assert key.startswith("the input's label") and str(label) in key, key
    # VGG-12
    draws = _draws(page)
    page.click(f"#model-list li[data-model='{ids['vgg']}']")
    page.wait_for_function(DRAWN, arg=draws, timeout=30_000)
    rows = _rows(page)
    graph = session.model(ids["vgg"]).loaded.graph
    assert list(rows) == [u.id for u in graph.layers]
    # an untrained model says so; a digit's label names none of its (CIFAR-10) classes: no "horse" marked for a 7
    assert page.inner_text(f"#model-list li[data-model='{ids['vgg']}'] .muted").startswith("zoo (untrained), ")
    assert page.inner_text("#prediction-key") == ""
    assert _in_view(page, list(rows)) == []
    # every layer shown (its 40 are few enough): nothing to expand until its modules are collapsed
    assert page.is_disabled("#expand-all") and "expanded already" in page.get_attribute("#expand-all", "title")
    page.click("#collapse-auto")
    page.wait_for_selector("#layer-table tr[data-layer='features']")
    assert page.is_enabled("#expand-all") and page.is_disabled("#collapse-auto")
    # a collapsed module turns its thumbnail (its output's first map, in greys) to the camera, not a blank side
    at = page.evaluate("window.convscopeExplorer.blockAt('features')")
    r, g, b = page.evaluate("""([x, y]) => {
      const c = document.querySelector('#structure3d canvas'), t = document.createElement('canvas');
      t.width = c.width; t.height = c.height; t.getContext('2d').drawImage(c, 0, 0); const k = c.width / c.clientWidth;
      return Array.from(t.getContext('2d').getImageData(Math.floor(x * k), Math.floor(y * k), 1, 1).data.slice(0, 3));
    }""", [at["x"], at["y"]])
    assert max(r, g, b) - min(r, g, b) < 24, (r, g, b)  # (grey, not the collapsed modules' yellow)
    assert "container" in page.eval_on_selector_all("#structure-legend .legend-item", "is => is.map(i => i.dataset.category)")
    page.click("#expand-all")
    page.wait_for_selector("#layer-table tr[data-layer='features.0']")
    assert page.is_disabled("#expand-all")
    rows = _rows(page)
    convs = [(k, s) for k, s in rows.values() if k == "conv2d"]
    assert len(convs) == 9 and convs[0][1] == "32×32×32"
    for layer in graph.layers:  # every shape on the page is the graph's
        assert rows[layer.id][1] == "×".join(map(str, layer.output_shape)), layer.id
    assert sum(1 for k, _s in rows.values() if k == "linear") == 3
    assert canvas_state(page, "#structure3d canvas")["colours"] > 20
    # the prediction chart shows 10 classes
    assert page.evaluate("window.convscopeExplorer.state().outputs.prediction.classes") == 10


def test_a_digit_drawn_on_the_sketchpad_gets_a_prediction(explorer, page) -> None:
    handle, session, ids = explorer
    _open(page, handle, ids["lenet"])
    # nothing drawn yet: said, and no black input sent
    before = len(session.inputs)
    page.click("#sketch-predict")
    assert page.inner_text("#input-message") == "the sketchpad is empty: draw on it first" and len(session.inputs) == before
    box = page.locator("#sketchpad").bounding_box()
    cx, top = box["x"] + box["width"] / 2, box["y"] + box["height"] * 0.15
    page.mouse.move(cx, top)
    page.mouse.down()
    for k in range(1, 21):  # a straight stroke down: a "1"
        page.mouse.move(cx, top + k * box["height"] * 0.035)
    page.mouse.up()
    draws = _draws(page)
    page.click("#sketch-predict")
    page.wait_for_function(DRAWN, arg=draws, timeout=30_000)
    sketch = [i for i in session.inputs.values() if i.kind == "sketch"][-1]
    assert page.evaluate("window.convscopeExplorer.drawnInput") == sketch.id
    assert page.inner_text(f"#input-list li[data-input='{sketch.id}'] .input-name") == "sketch.png"
    # the page names it as its list does, in its message and in Compare's menus (not by the session's id)
    assert page.inner_text("#input-message") == "sketch added as sketch.png"
    assert page.text_content(f"#compare-a option[value='{sketch.id}']") == "sketch.png"
    expected = session.prediction(ids["lenet"], sketch.id)
    text = page.inner_text("#prediction-text")
    assert text.startswith(f"predicted {expected['predicted_name']} (") and expected["predicted"] == 1, text
    assert canvas_state(page, "#prediction-chart")["colours"] > 3


def test_two_inputs_are_compared_layer_by_layer(explorer, page) -> None:
    handle, session, ids = explorer
    _open(page, handle, ids["lenet"])
    digits = [i.id for i in session.inputs.values() if i.kind == "sample"]
    page.select_option("#compare-a", digits[0])
    page.select_option("#compare-b", digits[1])
    page.click("#compare-run")
    page.wait_for_selector("#compare-maps .compare-row", timeout=30_000)
    expected = session.compare(ids["lenet"], digits[0], digits[1])
    summary = page.inner_text("#compare-summary")
    assert f"They part ways at {expected['diverges_at']}" in summary, summary
    shown = page.eval_on_selector_all("#compare-maps .compare-row", "rs => rs.map(r => r.dataset.layer)")
    assert shown == ["conv1", "conv2", "fc1"]  # the first three conv/dense layers unless chosen otherwise
    for k in range(1, 4):  # A, B and B - A are drawn for each
        assert canvas_state(page, f"#compare-maps .compare-row:first-child .triple > div:nth-child({k}) canvas")["colours"] > 3
    assert canvas_state(page, "#divergence-chart")["colours"] > 3
    # the chart says what it shows: its y axis, what a bar, each colour and the dashed line mean
    assert page.get_attribute("#divergence-chart", "data-y-label").startswith("relative change")
    assert "relative change" in page.get_attribute("#divergence-chart", "aria-label")
    assert "Each bar is one layer" in page.inner_text("#divergence-legend .chart-caption")
    legend = dict(page.eval_on_selector_all("#divergence-legend .legend-item", "is => is.map(i => [i.dataset.key, i.textContent])"))
    assert {"parting", "threshold"} <= set(legend), legend
    assert f"part ways ({expected['diverges_at']})" in legend["parting"] and legend["threshold"].startswith("threshold 0.5")
    if any(d["relative"] is None or d["relative"] >= 0.5 for d in expected["layers"] if d["layer"] != expected["diverges_at"]):
        assert "at or above the threshold" in legend["above"]
    # a bar's numbers on hover
    chart = page.locator("#divergence-chart")
    chart.hover(position={"x": chart.bounding_box()["width"] - 20, "y": 150})  # (scrolled into view first)
    page.wait_for_selector("#divergence-tip:not([hidden])")
    last = expected["layers"][-1]
    assert page.inner_text("#divergence-tip").startswith(f"{last['layer']}: relative change ")
    # the maps' colour bars: grey from their lowest to their highest value, B - A centred on 0
    first = page.evaluate("window.convscopeExplorer.state().comparison.maps[0]")
    bars = page.eval_on_selector_all("#compare-maps .compare-row:first-child .colorbar",
                                     "bs => bs.map(b => [b.dataset.palette, Number(b.dataset.lo), Number(b.dataset.hi), b.hidden])")
    peak = max(first["diff"]["vmax"])
    assert bars == [["grey", min(first["a"]["vmin"]), max(first["a"]["vmax"]), False], ["grey", min(first["b"]["vmin"]), max(first["b"]["vmax"]), False],
                    ["diverging", -peak, peak, False]], bars
    diff_bar = page.inner_text("#compare-maps .compare-row:first-child .diff .colorbar")
    assert "0" in diff_bar and "+" in diff_bar and "−" in diff_bar, diff_bar
    # expanded, the comparison covers the whole window (no strip of the page above it); Esc closes it
    page.click("#compare-expand")
    page.wait_for_selector("#compare-panel.full #compare-maps .compare-row", timeout=30_000)
    cover = page.evaluate("""(() => { const r = document.querySelector('#compare-panel').getBoundingClientRect();
      const top = document.elementFromPoint(innerWidth / 2, 2);
      return [r.left, r.top, r.right - innerWidth, r.bottom - innerHeight, document.querySelector('#compare-panel').contains(top)]; })()""")
    assert cover == [0, 0, 0, 0, True], cover
    page.keyboard.press("Escape")
    page.wait_for_selector("#compare-panel:not(.full)")
    assert page.inner_text("#compare-expand") == "expand"
    # choose another layer to compare
    page.click("#compare-panel summary")
    page.check("#compare-layers input[value='pool2']")
    page.click("#compare-run")
    page.wait_for_selector("#compare-maps .compare-row[data-layer='pool2']", timeout=30_000)


def test_critical_features_are_highlighted(explorer, page) -> None:
    handle, _session, ids = explorer
    _open(page, handle, ids["lenet"])
    page.wait_for_selector("#fit-steps li")
    before = canvas_state(page, "#saliency-canvas")
    for method in ("gradient", "gradcam"):
        page.select_option("#saliency-method", method)
        page.click("#saliency-run")
        page.wait_for_function(f"document.querySelector('#saliency-canvas').dataset.method === '{method}'", timeout=30_000)
        text = page.inner_text("#saliency-text")
        assert re.search(r"for class \d: \d+ pixels carry evidence", text), text
        after = canvas_state(page, "#saliency-canvas")
        assert after["hash"] != before["hash"] and after["colours"] > before["colours"], (before, after)
    assert "at conv2" in page.inner_text("#saliency-text")  # Grad-CAM on the last conv layer


def test_freezing_filters_changes_later_layers_and_is_cleared(explorer, page) -> None:
    handle, session, ids = explorer
    _open(page, handle, ids["lenet"])
    state = "window.convscopeExplorer.state()"
    before = page.evaluate(f"{state}.outputs.layers.map(l => [l.layer, l.stats.mean])")
    draws = _draws(page)
    # the first map of conv1 (a locator click waits until the canvas stops moving: the input's
    # image and fit steps render after the maps and can shift the layout)
    page.locator("#layer-maps").click(position={"x": 5, "y": 5})
    page.wait_for_function(DRAWN, arg=draws, timeout=30_000)
    assert page.inner_text("#frozen-list") == "conv1: 0"
    assert session.model(ids["lenet"]).freeze == {"conv1": [0]}
    r, g, b = page.evaluate(PIXEL, ["#layer-maps", 60, 20])  # off the pink cross
    assert r == g == b and 60 <= r <= 100  # drawn grey
    after = dict(page.evaluate(f"{state}.outputs.layers.map(l => [l.layer, l.stats.mean])"))
    before = dict(before)
    assert after["conv1"] != before["conv1"]
    for later in ("conv2", "pool2", "fc1", "fc3"):
        assert after[later] != before[later], later
    pred = page.evaluate(f"{state}.outputs.prediction.top[0].probability")
    draws = _draws(page)
    assert page.is_enabled("#freeze-clear")
    page.click("#freeze-clear")
    page.wait_for_function(DRAWN, arg=draws, timeout=30_000)
    assert page.inner_text("#frozen-list") == "none" and session.model(ids["lenet"]).freeze == {}
    assert page.is_disabled("#freeze-clear")  # (nothing left to clear)
    cleared = dict(page.evaluate(f"{state}.outputs.layers.map(l => [l.layer, l.stats.mean])"))
    assert cleared == before and page.evaluate(f"{state}.outputs.prediction.top[0].probability") != pred


def test_an_adversarial_sample_is_generated_and_compared_with_its_original(explorer, page) -> None:
    handle, session, ids = explorer
    _open(page, handle, ids["lenet"])
    original = page.evaluate("window.convscopeExplorer.drawnInput")
    page.select_option("#attack", "pgd")
    page.fill("#attack-params input[data-param='eps']", "0.3")
    page.click("#attack-run")
    page.wait_for_selector("#compare-maps .compare-row", timeout=60_000)
    made = [i for i in session.inputs.values() if i.kind == "adversarial"][-1]
    adv = made.adversarial
    assert made.parent == original and adv["success"] and adv["linf"] <= 0.3 + 1e-5
    item = page.inner_text(f"#input-list li[data-input='{made.id}'] .adv-info")
    assert item == f"pgd: {adv['original_name']} → {adv['prediction_name']}, L2 {adv['l2']:.3f}, L∞ {adv['linf']:.3f}"
    assert page.evaluate("window.convscopeExplorer.drawnInput") == made.id
    assert page.inner_text("#prediction-text").startswith(f"predicted {adv['prediction_name']} (")
    assert page.input_value("#compare-a") == original and page.input_value("#compare-b") == made.id
    summary = page.inner_text("#compare-summary")
    assert f"A predicted {adv['original_name']}, B predicted {adv['prediction_name']}." in summary


@pytest.mark.parametrize(("attack", "params", "targeted"), [
    ("deepfool", {"max_iter": "20"}, False), ("cw", {"max_iter": "10", "binary_search_steps": "3"}, True),
    ("pixel", {"max_iter": "3"}, True),
])
def test_the_other_attacks_run_from_the_page(explorer, page, attack: str, params: dict[str, str], targeted: bool) -> None:
    handle, session, ids = explorer
    _open(page, handle, ids["lenet"])
    original = page.evaluate("window.convscopeExplorer.drawnInput")
    page.select_option("#attack", attack)
    # the page describes the attack, offers its own parameters and a target only where it takes one
    assert page.inner_text("#attack-about").endswith("" if targeted else "(untargeted only)")
    shown = page.eval_on_selector_all("#attack-params input", "is => is.map(i => i.dataset.param)")
    assert set(params) <= set(shown), shown
    # and says what each parameter does (tooltip and a line each)
    helps = page.eval_on_selector_all("#attack-params label", "ls => ls.map(l => l.title)")
    assert len(helps) == len(shown) and all(helps), helps
    assert page.inner_text("#attack-help").count("\n") == len(shown) - 1
    assert page.is_disabled("#attack-target") is not targeted
    for name, value in params.items():
        page.fill(f"#attack-params input[data-param='{name}']", value)
    before = {i.id for i in session.inputs.values()}
    page.click("#attack-run")
    page.wait_for_function(
        "n => window.convscopeExplorer.drawnInput !== n && document.querySelector('#compare-maps .compare-row')",
        arg=original, timeout=120_000,
    )
    [made] = [i for i in session.inputs.values() if i.id not in before]
    adv = made.adversarial
    assert made.kind == "adversarial" and made.parent == original and adv["attack"] == attack
    assert {k: str(adv["params"][k]) for k in params} == params  # what was typed is what ran
    item = page.inner_text(f"#input-list li[data-input='{made.id}'] .adv-info")
    assert item.startswith(f"{attack}: {adv['original_name']} → {adv['prediction_name']}")
    assert page.input_value("#compare-a") == original and page.input_value("#compare-b") == made.id


def test_models_open_by_upload_and_bad_files_are_refused_on_the_page(explorer, page, tmp_path: Path) -> None:
    handle, session, ids = explorer
    files = make_model_files(tmp_path)
    _open(page, handle, ids["lenet"])
    for kind, fmt in (("onnx", "onnx"), ("keras", "keras"), ("pt2", "export")):
        draws = _draws(page)
        page.set_input_files("#model-file", str(files[kind]))
        page.wait_for_function(DRAWN, arg=draws, timeout=60_000)
        assert page.inner_text("#model-message").startswith(f"opened {files[kind].name} ({fmt}, ")
        assert files[kind].name in page.inner_text("#model-title")
        assert "conv1" in _rows(page)
        assert page.evaluate("window.convscopeExplorer.state().outputs.prediction.classes") == 10
    for kind, text in (("noise", "noise.onnx was refused: "), ("evil", "evil.pt was refused: ")):
        page.set_input_files("#model-file", str(files[kind]))
        page.wait_for_selector("#model-message.error", timeout=30_000)
        assert page.inner_text("#model-message").startswith(text)
        page.evaluate("document.querySelector('#model-message').className = 'message'")
    assert "--trust" in page.inner_text("#model-message")
    assert not files["pwned"].exists()
    for model in [m for m in session.models.values() if m.origin == "upload"]:
        session.remove_model(model.id)


def test_an_untargeted_attack_ignores_a_target_typed_for_another(explorer, page) -> None:
    # the target box is disabled for DeepFool, so a target typed for FGSM could not even be
    # cleared, and it was still sent: "deepfool cannot aim at a target class"
    handle, session, ids = explorer
    _open(page, handle, ids["lenet"])
    original = page.evaluate("window.convscopeExplorer.drawnInput")
    page.fill("#attack-target", "3")
    page.select_option("#attack", "deepfool")
    assert page.is_disabled("#attack-target")
    page.fill("#attack-params input[data-param='max_iter']", "5")
    before = {i.id for i in session.inputs.values()}
    page.click("#attack-run")
    page.wait_for_function("n => window.convscopeExplorer.drawnInput !== n", arg=original, timeout=60_000)
    [made] = [i for i in session.inputs.values() if i.id not in before]
    assert made.adversarial["attack"] == "deepfool" and made.adversarial["target"] is None
    assert "error" not in page.get_attribute("#attack-message", "class")


def test_removing_the_shown_input_or_model_leaves_nothing_stale(tmp_path: Path, page) -> None:
    session = ExplorerSession()
    first = session.add_model("lenet5-simplified", pretrained=False)
    second = session.add_model("lenet5-simplified", name="second", pretrained=False)
    a, b = session.default_inputs(first.id, count=2)
    handle = start_local_server(tmp_path / "runs", explorer=session)
    try:
        page.goto(handle.url + f"#/explore?model={second.id}&input={a.id}")
        page.wait_for_function(DRAWN, arg=0, timeout=30_000)
        assert page.evaluate("window.convscopeExplorer.drawnInput") == a.id
        # the input shown is removed: the page shows the one left, not the one that is gone
        draws = _draws(page)
        page.click(f"#input-list li[data-input='{a.id}'] button.remove")
        page.wait_for_function(DRAWN, arg=draws, timeout=30_000)
        assert page.evaluate("window.convscopeExplorer.drawnInput") == b.id
        assert f"input={b.id}" in page.evaluate("location.hash")
        expected = session.prediction(second.id, b.id)["predicted_name"]
        assert page.inner_text("#prediction-text").startswith(f"predicted {expected} (")
        # the last input goes: no layer, no prediction, no maps to click
        page.click(f"#input-list li[data-input='{b.id}'] button.remove")
        page.wait_for_function("document.querySelector('#prediction-text').textContent === ''", timeout=30_000)
        assert page.inner_text("#layer-name") == "" and page.evaluate("document.querySelector('#layer-maps').height") == 0
        assert "input=" not in page.evaluate("location.hash")
        # the model shown is removed: the page moves to the model left
        session.add_sample("foolbox-mnist", index=2)
        page.click(f"#model-list li[data-model='{second.id}'] button.remove")
        page.wait_for_function(f"document.querySelector('#model-title').textContent.startsWith('{first.name} ')", timeout=30_000)
        assert f"model={first.id}" in page.evaluate("location.hash")
        page.wait_for_function("document.querySelector('#prediction-text').textContent !== ''", timeout=30_000)
        # and the last model goes: an empty page, not the ghost of the model
        page.click(f"#model-list li[data-model='{first.id}'] button.remove")
        page.wait_for_function("document.querySelector('#model-title').textContent === ''", timeout=30_000)
        assert page.eval_on_selector_all("#layer-table tbody tr", "rs => rs.length") == 0
        assert page.inner_text("#prediction-text") == "" and page.inner_text("#layer-name") == ""
        assert session.models == {}
    finally:
        handle.stop()


def test_an_inputs_image_is_fetched_once_for_its_thumbnail_its_panel_and_the_3d_view(tmp_path: Path, page) -> None:
    # the server sends it with no-store: the thumbnail, the input panel and the 3-D view's input slab
    # each fetched it again, and again whenever the input was shown anew
    session = ExplorerSession()
    model = session.add_model("lenet5-simplified", pretrained=False)
    a, b = session.default_inputs(model.id, count=2)
    handle = start_local_server(tmp_path / "runs", explorer=session)
    fetched: list[str] = []
    page.on("request", lambda r: fetched.append(r.url.split("api/explorer/")[-1]) if "/image" in r.url else None)
    image = "window.convscopeExplorer.state().image"
    try:
        page.goto(handle.url + f"#/explore?model={model.id}&input={a.id}")
        page.wait_for_function(f"() => {image}", timeout=30_000)  # (drawn in the input panel: the slab's fetch went first)
        assert f"inputs/{a.id}/image?model={model.id}" in fetched
        for shown in (b, a):  # another input, and back: nothing fetched again
            page.evaluate(f"window.before = {image}")
            page.click(f"#input-list li[data-input='{shown.id}']")
            page.wait_for_function(f"() => {image} && {image} !== window.before", timeout=30_000)
        page.wait_for_timeout(300)
        assert {url: n for url, n in Counter(fetched).items() if n > 1} == {}, fetched
        assert f"inputs/{b.id}/image?model={model.id}" in fetched
    finally:
        handle.stop()


def _delete(handle: ServerHandle, what: str) -> None:
    """Remove a model or input through the API, as another tab would: behind the page's back."""
    import httpx

    r = httpx.delete(handle.url + f"api/explorer/{what}", timeout=30)
    assert r.status_code == 204, r.text


def _said(page, where: str) -> str:
    page.wait_for_selector(f"{where}.error", timeout=30_000)
    return page.inner_text(where)


def test_requests_that_fail_are_said_on_the_page(tmp_path: Path, page) -> None:
    # each of these left the page as it was, with only "Uncaught (in promise) Error: 404: ..." in the console
    session = ExplorerSession()
    first = session.add_model("lenet5-simplified", pretrained=False)
    second = session.add_model("lenet5-simplified", name="second", pretrained=False)
    a, b, c = session.default_inputs(first.id, count=3)
    handle = start_local_server(tmp_path / "runs", explorer=session)
    try:
        page.goto(handle.url + f"#/explore?model={second.id}&input={a.id}")
        page.wait_for_function(DRAWN, arg=0, timeout=30_000)
        # an input removed in another tab, then clicked here: said, and gone from the list
        _delete(handle, f"inputs/{b.id}")
        draws = page.evaluate("Number(document.body.dataset.drawn.split(':')[2])")
        page.click(f"#input-list li[data-input='{b.id}']")
        assert _said(page, "#input-message") == f"no input '{b.id}' in this session; inputs are {a.id}, {c.id}"
        page.wait_for_selector(f"#input-list li[data-input='{b.id}']", state="detached", timeout=30_000)
        # (the page draws the first input again: a click on its maps before that has ended can
        # land while they are being replaced, which a busy machine makes likely)
        page.wait_for_function(DRAWN, arg=draws, timeout=30_000)
        assert page.evaluate("window.convscopeExplorer.drawnInput") == a.id
        assert page.eval_on_selector_all("#compare-b option", "os => os.map(o => o.value)") == [a.id, c.id]
        # the model shown, removed in another tab: freezing a filter of it says so, and the page moves on
        _delete(handle, f"models/{second.id}")
        page.locator("#layer-maps").click(position={"x": 5, "y": 5})
        assert _said(page, "#layer-message") == f"no model '{second.id}' in this session; models are {first.id}"
        page.wait_for_function(f"document.querySelector('#model-title').textContent.startsWith('{first.name} ')", timeout=30_000)
        assert f"model={first.id}" in page.evaluate("location.hash")
        # opening a layer of a model that is gone
        page.wait_for_function(f"(document.body.dataset.drawn || '').startsWith('{first.id}:')", timeout=30_000)
        _delete(handle, f"models/{first.id}")
        page.evaluate("document.querySelector('#layer-message').className = 'message'")
        page.click("#layer-table tr[data-layer='conv2']")
        assert _said(page, "#layer-message") == f"no model '{first.id}' in this session; models are none yet"
        page.wait_for_function("document.querySelector('#model-title').textContent === ''", timeout=30_000)
        assert page.inner_text("#model-list") == "no model yet: add a bundled one or upload a file"
        # a refusal reads as the server's sentence: no "Error: 422:" in front of it
        m = session.add_model("lenet5-simplified", pretrained=False)
        page.reload()
        page.wait_for_function(f"(document.body.dataset.drawn || '').startsWith('{m.id}:')", timeout=30_000)
        page.select_option("#attack", "pixel")
        page.fill("#attack-params input[data-param='th']", "1000")
        page.click("#attack-run")
        assert _said(page, "#attack-message").startswith("pixel's th is the number of pixels changed: 1 to 127, got 1000")
    finally:
        handle.stop()


def test_a_new_upload_is_shown_in_the_inputs_and_compare_keeps_two_inputs(tmp_path: Path, page) -> None:
    from PIL import Image

    session = ExplorerSession()
    model = session.add_model("lenet5-simplified", pretrained=False)
    inputs = session.default_inputs(model.id, count=10)  # more than the list shows at once
    handle = start_local_server(tmp_path / "runs", explorer=session)
    try:
        page.goto(handle.url + f"#/explore?model={model.id}&input={inputs[0].id}")
        page.wait_for_function(DRAWN, arg=0, timeout=30_000)
        Image.new("L", (28, 28), 200).save(tmp_path / "grey.png")
        draws = _draws(page)
        page.set_input_files("#input-file", str(tmp_path / "grey.png"))
        page.wait_for_function(DRAWN, arg=draws, timeout=30_000)
        made = [i for i in session.inputs.values() if i.name == "grey.png"][0]
        assert page.evaluate("window.convscopeExplorer.drawnInput") == made.id
        # selected, and scrolled into the list's view (it was below the list's fold)
        seen = page.evaluate(
            """id => { const l = document.querySelector('#input-list').getBoundingClientRect();
                       const r = document.querySelector(`#input-list li[data-input='${id}']`).getBoundingClientRect();
                       return [r.top >= l.top - 1 && r.bottom <= l.bottom + 1, document.querySelector('#input-list').scrollTop]; }""",
            made.id,
        )
        assert seen[0] and seen[1] > 0, seen
        assert page.get_attribute(f"#input-list li[data-input='{made.id}']", "class").endswith("selected")
        # Compare's A is removed: A and B must not both fall back to the same input
        a, b = page.input_value("#compare-a"), page.input_value("#compare-b")
        assert (a, b) == (inputs[0].id, inputs[1].id)
        page.click(f"#input-list li[data-input='{a}'] button.remove")
        page.wait_for_selector(f"#compare-a option[value='{a}']", state="detached", timeout=30_000)
        a2, b2 = page.input_value("#compare-a"), page.input_value("#compare-b")
        assert b2 == b and a2 != b2 and a2 in session.inputs, (a2, b2)
    finally:
        handle.stop()


def test_an_attack_on_a_model_with_frozen_filters_says_it_ran_without_them(explorer, page) -> None:
    handle, session, ids = explorer
    _open(page, handle, ids["lenet"])
    try:
        draws = _draws(page)
        page.locator("#layer-maps").click(position={"x": 5, "y": 5})  # freeze conv1's filter 0
        page.wait_for_function(DRAWN, arg=draws, timeout=30_000)
        page.select_option("#attack", "fgsm")
        original = page.evaluate("window.convscopeExplorer.drawnInput")
        page.click("#attack-run")
        page.wait_for_function("n => window.convscopeExplorer.drawnInput !== n", arg=original, timeout=60_000)
        made = session.inputs[page.evaluate("window.convscopeExplorer.drawnInput")]
        adv = made.adversarial
        frozen = adv["with_freeze"]
        assert adv["freeze"] == {"conv1": [0]} and frozen is not None
        note = f"(attacked without the 1 frozen filter; with it: {frozen['original_name']} → {frozen['prediction_name']})"
        assert page.inner_text("#attack-message").endswith(note)
        assert page.inner_text(f"#input-list li[data-input='{made.id}'] .adv-info").endswith(note)
        # and "with it" is what the Prediction panel shows for the result
        assert page.inner_text("#prediction-text").startswith(f"predicted {frozen['prediction_name']} (")
    finally:
        session.set_freeze(ids["lenet"], {})

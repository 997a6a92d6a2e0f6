"""Runs side by side: LeNet-5 trained with and without online pruning, ticked on the Runs page and
compared (the paper's case study): their loss and accuracy overlaid, the pruned run's filters
dropping, each layer's filters and redundant filters as its groups frames count them; a run that
is not there named, a run still training drawn as it trains; and LeNet-5 at a far-too-high
learning rate beside a normal one, its gradient health flagged and the other's not."""

from __future__ import annotations

import tempfile
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import convscope
from convscope.frames import Frame, expand_scalars
from convscope.server import start_local_server
from convscope.store import RunStore

pytestmark = [pytest.mark.browser, pytest.mark.slow]

#: the pictures of the compare page, to look at (outside the repository: never committed)
SCREENSHOTS = Path(tempfile.gettempdir())

#: pixels of a colour on a chart; with inPlot, inside its plot only (its axes' labels and ticks left out)
HAS_COLOUR = """([name, hex, inPlot]) => {
  const rgb = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
  const panel = document.querySelector(`.cmp-panel[data-scalar='${name}']`), c = panel.querySelector('canvas');
  let [x0, y0, w, h] = [0, 0, c.width, c.height];
  if (inPlot) {
    const box = c.getBoundingClientRect(), over = panel.querySelector('.u-over').getBoundingClientRect();
    const k = c.width / box.width, pad = 8;  // (a marker on the plot's edge reaches past it)
    x0 = Math.max(0, Math.floor((over.left - box.left - pad) * k));
    y0 = Math.max(0, Math.floor((over.top - box.top - pad) * k));
    w = Math.min(c.width - x0, Math.ceil((over.width + 2 * pad) * k));
    h = Math.min(c.height - y0, Math.ceil((over.height + 2 * pad) * k));
  }
  const d = c.getContext('2d').getImageData(x0, y0, w, h).data;
  let n = 0;
  for (let i = 0; i < d.length; i += 4)
    if (Math.abs(d[i]-rgb[0]) < 12 && Math.abs(d[i+1]-rgb[1]) < 12 && Math.abs(d[i+2]-rgb[2]) < 12) n++;
  return n;
}"""
LEGEND = "(name) => [...document.querySelectorAll(`.cmp-panel[data-scalar='${name}'] .u-legend .u-series .u-label`)].map((e) => e.textContent)"
CHARTS = "window.convscopeCompare.charts()"


def _lenet(logdir: Path, run: str, steps: int, *, prune: convscope.PruneConfig | None = None, lr: float = 0.02,
           record: tuple[str, ...] = ("correlation", "distribution", "lr"),
           delay: float = 0.0, started: threading.Event | None = None) -> list[tuple[float, float]]:
    """The simplified LeNet-5 trained ``steps`` steps (at most 156: the digits once) on shuffled
    batches of 32 bundled digits with SGD at ``lr`` (momentum 0.9), watched into ``logdir`` as
    ``run``, recording ``record`` and logging its loss and accuracy; what it logged, in order."""
    torch.manual_seed(0)
    spec = convscope.load_model("lenet5-simplified", pretrained=False).input_spec
    data = convscope.load_dataset("mnist-5k", spec=spec)
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(0))
    net = convscope.load_model("lenet5-simplified", pretrained=False).module.train()
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9)
    logged = []
    with convscope.watch(net, optimizer=opt, logdir=logdir, run=run, budget=None, every=10, prune=prune,
                         probe=data.images[order[:16]], record=list(record)) as mon:
        for step in range(steps):
            idx = order[step * 32 : step * 32 + 32]
            out = net(data.images[idx])
            loss = torch.nn.functional.cross_entropy(out, data.labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            accuracy = (out.argmax(1) == data.labels[idx]).float().mean()
            mon.log(loss=loss, accuracy=accuracy)
            logged.append((loss.item(), accuracy.item()))
            if started is not None and step == 3:
                mon._store.flush()  # (the run is there for the page to open)
                started.set()
            time.sleep(delay)
    return logged


def _stored(logdir: Path, run: str) -> dict[str, list[tuple[int, float]]]:
    """Each scalar the run store holds of ``run``: name to (step, value), ascending."""
    out: dict[str, list[tuple[int, float]]] = {}
    with RunStore(logdir).open_run(run) as reader:
        for f in reader.frames(kind=["scalar", "scalars"]):
            for s in expand_scalars(f):
                out.setdefault(s.payload["name"], []).append((s.step, float(s.payload["value"])))
    return {k: sorted(v) for k, v in out.items()}


def _health(logdir: Path, run: str) -> dict[str, list[Frame]]:
    """The gradient-health frames the run store holds of ``run``: layer to its frames, by step."""
    out: dict[str, list[Frame]] = {}
    with RunStore(logdir).open_run(run) as reader:
        for f in reader.frames(kind="gradient_health"):
            out.setdefault(f.layer, []).append(f)
    return {k: sorted(v, key=lambda f: f.step) for k, v in out.items()}


def _redundancy(logdir: Path, run: str) -> dict[str, list[list[int]]]:
    """Each layer's filters and redundant filters (grouped, less one per group) at each groups
    frame the run store holds of ``run``: layer to [step, filters, redundant], by step."""
    out: dict[str, list[list[int]]] = {}
    with RunStore(logdir).open_run(run) as reader:
        for f in reader.frames(kind="groups"):
            labels = np.asarray(f.payload["labels"])
            grouped = labels[labels >= 0]
            out.setdefault(f.layer, []).append([f.step, labels.size, grouped.size - np.unique(grouped).size])
    return {k: sorted(v) for k, v in out.items()}


def _counts_text(counts: list[list[int]]) -> str:
    """A run's counts of a layer in words, at its first and last recording, as the page writes them."""
    (a, f0, r0), (b, f1, r1) = counts[0], counts[-1]

    def change(x: int, y: int) -> str:
        return str(x) if x == y else f"{x} → {y}"

    return f"{change(f0, f1)} filters, {change(r0, r1)} redundant ({f'step {a}' if a == b else f'steps {a}–{b}'})"


def _colour_drawn(page, name: str, colour: str, *, in_plot: bool = False) -> int:
    return page.evaluate(HAS_COLOUR, [name, colour, in_plot])


#: the dashboard's colours of the flags (web/src/colors.ts STATUS_COLORS)
FLAG_COLOURS = {"exploding": "#e6194b", "vanishing": "#4363d8", "stalled": "#9aa0a6", "nonfinite": "#f58231"}


def test_two_lenet_runs_pruned_and_not_compared_side_by_side(tmp_path: Path, page) -> None:
    prune = convscope.PruneConfig(layers=("conv1",), threshold=0.9, start=20, every=20, times=2, max_fraction=0.75)
    record = ("correlation", "distribution", "gradients", "lr")
    logged = {"pruned": _lenet(tmp_path, "pruned", 50, prune=prune, record=record), "baseline": _lenet(tmp_path, "baseline", 50, record=record)}
    with RunStore(tmp_path).open_run("pruned") as reader:
        prunings = sorted(reader.frames(kind="pruning"), key=lambda f: f.step)
    assert prunings and all(f.layer == "conv1" for f in prunings), "the test needs a pruning of conv1"
    stored = {run: _stored(tmp_path, run) for run in logged}
    for run, values in logged.items():  # (the store holds what was logged: the page must show it)
        assert [v for _, v in stored[run]["loss"]] == pytest.approx([loss for loss, _ in values], rel=1e-6)
        assert [v for _, v in stored[run]["accuracy"]] == pytest.approx([acc for _, acc in values], rel=1e-6)
    assert stored["pruned"]["loss"] != stored["baseline"]["loss"]  # (pruning changed the training)

    with RunStore(tmp_path).create_run("silent", model="LeNet5") as w:  # a run that logged no scalar
        w.write(Frame(run=w.run_id, step=1, kind="dropped", payload={"count": 1, "sink": "queue"}))
    handle = start_local_server(tmp_path)
    try:
        page.set_viewport_size({"width": 1280, "height": 1000})
        page.goto(handle.url + "#/runs")
        page.wait_for_selector(".run-row[data-run='baseline']", timeout=20_000)
        page.wait_for_selector(".run-row[data-run='pruned']", timeout=20_000)
        button = page.locator("#compare")
        assert button.inner_text() == "Compare (0)" and button.is_disabled()

        # ticked by the keyboard (tab to the box, space), then by a click: no way into the run's dashboard
        box = page.locator(".run-row[data-run='pruned'] input.pick")
        assert box.get_attribute("aria-label") == "compare run pruned"
        box.focus()
        page.keyboard.press("Space")
        assert box.is_checked() and button.inner_text() == "Compare (1)" and button.is_disabled()
        assert page.inner_text("#compare-hint") == "tick one more run to compare"
        page.click(".run-row[data-run='baseline'] .pick-box")
        assert page.is_checked(".run-row[data-run='baseline'] input.pick")
        assert page.evaluate("location.hash") == "#/runs"
        assert button.inner_text() == "Compare (2)" and button.is_enabled()
        button.focus()
        page.keyboard.press("Enter")

        page.wait_for_function("location.hash === '#/compare?runs=pruned,baseline'", timeout=10_000)
        page.wait_for_function("window.convscopeCompare?.loaded && document.querySelector(\".cmp-panel[data-scalar='conv1/filters']\")", timeout=20_000)
        page.wait_for_timeout(300)  # (the charts are drawn on the next animation frame)
        assert page.title() == "Compare pruned vs baseline · convscope"
        assert page.inner_text("#cmp-title") == "Compare pruned vs baseline"
        charts = page.evaluate(CHARTS)
        assert {"loss", "accuracy", "lr", "conv1/filters"} <= set(charts), list(charts)
        colours = page.evaluate("window.convscopeCompare.colours")
        assert len(set(colours.values())) == 2, colours

        # one line per run on each chart, the values each logged, its legend naming the runs
        for name in ("loss", "accuracy", "lr"):
            assert list(charts[name]) == ["pruned", "baseline"], name
            assert page.get_attribute(f".cmp-panel[data-scalar='{name}']", "data-runs") == "pruned,baseline"
            assert page.evaluate(LEGEND, name) == ["step", "pruned", "baseline"]
            for run in ("pruned", "baseline"):
                shown = charts[name][run]
                assert [s for s, _ in shown] == [s for s, _ in stored[run][name]], (name, run)
                assert [v for _, v in shown] == pytest.approx([v for _, v in stored[run][name]], rel=1e-9), (name, run)
            # each run's line is drawn in its colour (the learning rates are the same: the first
            # run's line under the second's, wider, shows at its edges only)
            for run in ("pruned", "baseline") if name != "lr" else ("baseline",):
                assert _colour_drawn(page, name, colours[run]) > 20, (name, run, colours[run])
        for run, values in logged.items():
            assert [v for _, v in charts["loss"][run]] == pytest.approx([loss for loss, _ in values], rel=1e-6)

        # conv1's filter count: the pruned run's drops at each pruning, the other's stays at 16
        first, last = stored["pruned"]["loss"][0][0], stored["pruned"]["loss"][-1][0]
        expected = [[0, prunings[0].payload["before"]], *[[f.step, f.payload["after"]] for f in prunings], [last, prunings[-1].payload["after"]]]
        assert charts["conv1/filters"]["pruned"] == expected
        assert prunings[0].payload["before"] == 16 and prunings[-1].payload["after"] < 16
        assert charts["conv1/filters"]["baseline"] == [[0, 16], [last, 16]]
        assert first >= 0
        assert page.evaluate(LEGEND, "conv1/filters") == ["step", "pruned", "baseline"]
        assert page.inner_text(".cmp-panel[data-scalar='conv1/filters'] h2").startswith("conv1 filters")

        # each watched layer's filters and redundant filters, as the store's groups frames count
        # them, one chart per layer after the gradient-health charts, under a heading of their own
        redundancy = page.evaluate("window.convscopeCompare.redundancy()")
        grouped = {run: _redundancy(tmp_path, run) for run in logged}
        layers = sorted(grouped["baseline"])
        assert layers == ["conv1", "conv2"] and sorted(grouped["pruned"]) == layers, grouped
        assert sorted(redundancy) == layers
        for layer in layers:
            name = f"{layer}/redundancy"
            panel = f".cmp-panel[data-scalar='{name}']"
            assert redundancy[layer] == {run: grouped[run][layer] for run in ("pruned", "baseline")}, layer
            assert page.inner_text(f"{panel} h2").startswith(f"{layer} filter redundancy")
            assert page.get_attribute(panel, "data-runs") == "pruned,baseline"
            assert page.evaluate(LEGEND, name) == ["step", "pruned filters", "pruned redundant", "baseline filters", "baseline redundant"]
            for run in ("pruned", "baseline"):
                assert _colour_drawn(page, name, colours[run], in_plot=True) > 20, (name, run)
                said = page.inner_text(f"{panel} .cmp-counts li[data-run='{run}']")
                assert said == f"{run}: {_counts_text(grouped[run][layer])}", said
        # the pruned run's conv1 narrows after each pruning (the groups frame of a pruning's step was
        # recorded before it), below the other's, which keeps its 16
        def width(step: int) -> int:
            return next((f.payload["after"] for f in reversed(prunings) if f.step < step), prunings[0].payload["before"])

        assert [f for _, f, _ in redundancy["conv1"]["pruned"]] == [width(s) for s, _, _ in redundancy["conv1"]["pruned"]]
        assert {f for _, f, _ in redundancy["conv1"]["baseline"]} == {16}
        assert redundancy["conv1"]["pruned"][-1][1] == prunings[-1].payload["after"] < redundancy["conv1"]["baseline"][-1][1]
        assert any(r > 0 for _, _, r in redundancy["conv1"]["baseline"])  # (the test needs redundant filters to draw)
        order = page.evaluate("[...document.querySelectorAll('.cmp-grid > *')].map((e) => e.dataset.scalar ?? e.dataset.section ?? e.className)")
        at = order.index("redundancy")
        assert order[at + 1:] == [f"{layer}/redundancy" for layer in layers], order
        assert order[at - 1].endswith("/grad_norm") and "cmp-section" in order[:at], order
        assert page.inner_text(".cmp-section[data-section='redundancy'] h2") == "Filter redundancy"
        page.locator(".cmp-section[data-section='redundancy']").scroll_into_view_if_needed()
        page.screenshot(path=str(SCREENSHOTS / "convscope-compare-redundancy-1280.png"))

        # the key names each run (id, status, model) in its colour, a way to its dashboard
        keys = page.locator(".cmp-legend li")
        assert keys.count() == 2
        assert page.inner_text(".cmp-legend li[data-run='pruned'] .chip") == "finished"
        assert page.get_attribute(".cmp-legend li[data-run='pruned'] line", "stroke") == colours["pruned"]
        SCREENSHOTS.mkdir(exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "convscope-compare-1280.png"), full_page=True)

        # at 800 px: one chart a row, nothing wider than the window
        page.set_viewport_size({"width": 800, "height": 1000})
        page.wait_for_timeout(500)
        lefts = page.evaluate("[...document.querySelectorAll('.cmp-panel')].map((p) => p.getBoundingClientRect().left)")
        assert len(set(lefts)) == 1, lefts
        assert page.evaluate("document.documentElement.scrollWidth") <= 800
        widths = page.evaluate("[...document.querySelectorAll('.cmp-panel canvas')].map((c) => c.getBoundingClientRect().width)")
        assert all(600 < w <= 760 for w in widths), widths  # (each chart fitted to its panel again)
        page.screenshot(path=str(SCREENSHOTS / "convscope-compare-800.png"), full_page=True)

        page.click(".cmp-legend li[data-run='pruned'] a")
        page.wait_for_function("document.querySelector('#run-name')?.textContent === 'pruned'", timeout=20_000)
        # (the dashboard drawn before it is left: a draw it had scheduled would find its page gone)
        page.wait_for_function("window.convscopeDashboard?.firstDrawMs > 0", timeout=20_000)
        page.wait_for_timeout(300)
        # back on the Runs page, the two are still ticked
        page.goto(handle.url + "#/runs")
        page.wait_for_selector(".run-row[data-run='pruned'] input.pick:checked", timeout=20_000)
        assert page.inner_text("#compare") == "Compare (2)"

        # a run that is not there is named, and the others compared without it (their colours as before)
        page.goto(handle.url + "#/compare?runs=pruned,nope,baseline")
        page.wait_for_selector(".cmp-problems p[data-run='nope']", timeout=20_000)
        page.wait_for_function("window.convscopeCompare?.loaded", timeout=20_000)
        page.wait_for_timeout(300)
        said = page.inner_text(".cmp-problems")
        assert "No run named nope in this log directory: it is left out of the comparison." in said, said
        assert page.is_visible(".cmp-problems a[href='#/runs']")
        assert page.title() == "Compare pruned vs baseline · convscope"
        charts = page.evaluate(CHARTS)
        assert list(charts["loss"]) == ["pruned", "baseline"]
        assert page.evaluate("window.convscopeCompare.colours") == colours
        page.screenshot(path=str(SCREENSHOTS / "convscope-compare-missing-800.png"), full_page=True)

        # with a run that logged nothing, and with none at all: what to do
        page.goto(handle.url + "#/compare?runs=silent,pruned")
        page.wait_for_function("window.convscopeCompare?.loaded", timeout=20_000)
        page.wait_for_selector(".cmp-legend li[data-run='silent'] .cmp-none:not([hidden])", timeout=5_000)
        assert list(page.evaluate(CHARTS)["loss"]) == ["pruned"]
        assert page.inner_text(".cmp-panel[data-scalar='loss'] .cmp-note") == "not in silent"
        page.goto(handle.url + "#/compare?runs=silent")
        page.wait_for_selector(".cmp-empty:has-text('None of these runs has logged a scalar yet')", timeout=20_000)
        page.goto(handle.url + "#/compare")
        page.wait_for_selector(".cmp-empty:has-text('Nothing to compare yet')", timeout=20_000)
        assert page.get_attribute("#conn", "class") == "conn up"
        assert not page.errors
    finally:
        handle.stop()


def test_gradient_health_of_a_far_too_high_learning_rate_beside_a_normal_one(tmp_path: Path, page) -> None:
    # LeNet-5 at a learning rate of 1 (fifty times the normal run's 0.02, with momentum 0.9): its
    # first steps kill the ReLUs, and gradient health flags every conv layer within 150 steps
    # (stalled: its gradients exactly 0; or exploding); at 0.02 every check is healthy
    record = ("gradients", "lr")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (a diverging run may warn of non-finite values)
        _lenet(tmp_path, "steep", 150, lr=1.0, record=record)
    _lenet(tmp_path, "normal", 150, record=record)
    health = {run: _health(tmp_path, run) for run in ("steep", "normal")}
    layers = sorted(health["normal"])
    assert len(layers) >= 2 and sorted(health["steep"]) == layers, health.keys()
    first = {layer: next(((f.step, f.payload["status"]) for f in frames if f.payload["status"] != "healthy"), None)
             for layer, frames in health["steep"].items()}
    assert all(first.values()), first  # (the test needs the steep run flagged, in every layer)
    assert {f.payload["status"] for frames in health["normal"].values() for f in frames} == {"healthy"}
    # a run that checked another layer only: the charts say which runs each layer is not in
    with RunStore(tmp_path).create_run("other", model="Tiny") as w:
        for step, norm in ((10, 0.5), (20, 0.25)):
            w.write(Frame(run=w.run_id, step=step, kind="gradient_health", layer="fc1", payload={
                "status": "healthy", "grad_norm": norm, "update_ratio": 0.01, "zero_fraction": 0.0, "dead_fraction": 0.0, "nonfinite": 0}))

    handle = start_local_server(tmp_path)
    try:
        page.set_viewport_size({"width": 1280, "height": 1000})
        page.goto(handle.url + "#/compare?runs=steep,normal,other")
        page.wait_for_function("window.convscopeCompare?.loaded && document.querySelector(\".cmp-panel[data-scalar='fc1/grad_norm']\")", timeout=20_000)
        page.wait_for_timeout(300)  # (the charts are drawn on the next animation frame)
        charts = page.evaluate(CHARTS)
        flags = page.evaluate("window.convscopeCompare.health()")
        colours = page.evaluate("window.convscopeCompare.colours")
        assert page.is_visible(".cmp-section:has-text('Gradient health')")
        for layer in layers:
            name = f"{layer}/grad_norm"
            panel = f".cmp-panel[data-scalar='{name}']"
            # one chart per layer, one line per run, its values the store's gradient norms
            assert list(charts[name]) == ["steep", "normal"], name
            assert page.evaluate(LEGEND, name) == ["step", "steep", "normal"]
            assert page.inner_text(f"{panel} h2").startswith(f"{layer} gradient norm")
            assert page.inner_text(f"{panel} .cmp-note") == "no gradient checks in other"
            for run in ("steep", "normal"):
                stored = [[f.step, f.payload["grad_norm"]] for f in health[run][layer]]
                assert [s for s, _ in charts[name][run]] == [s for s, _ in stored], (name, run)
                assert [v for _, v in charts[name][run]] == pytest.approx([v for _, v in stored], rel=1e-9), (name, run)
                assert _colour_drawn(page, name, colours[run]) > 20, (name, run)
            # the steep run's flags, from the step the store has them; none of the normal run's
            step, status = first[layer]
            assert flags[layer]["normal"] == [], flags[layer]
            assert (flags[layer]["steep"][0]["from"], flags[layer]["steep"][0]["status"]) == (step, status)
            said = page.locator(f"{panel} .cmp-flags li[data-run='steep'][data-status]")
            assert said.count() == len(flags[layer]["steep"])
            assert said.first.inner_text().startswith(f"steep {status} from step {step}"), said.first.inner_text()
            assert said.first.get_attribute("data-from") == str(step)
            assert page.locator(f"{panel} .cmp-flags li[data-run='normal'][data-status]").count() == 0
            assert page.inner_text(f"{panel} .cmp-flags li[data-run='normal']") == f"normal healthy at all {len(health['normal'][layer])} checks"
            # marked on the chart, in each flag's colour
            for flag in flags[layer]["steep"]:
                assert _colour_drawn(page, name, FLAG_COLOURS[flag["status"]], in_plot=True) > 20, (name, flag["status"])
        assert list(charts["fc1/grad_norm"]) == ["other"]
        assert page.inner_text(".cmp-panel[data-scalar='fc1/grad_norm'] .cmp-note") == "no gradient checks in steep, normal"
        assert page.inner_text(".cmp-panel[data-scalar='fc1/grad_norm'] .cmp-flags") == "other healthy at all 2 checks"
        # the gradient charts after the others, the section's heading before them
        order = page.evaluate("[...document.querySelectorAll('.cmp-grid > *')].map((e) => e.dataset.scalar ?? e.className)")
        at = order.index("cmp-section")
        assert order[at + 1:] == [f"{layer}/grad_norm" for layer in layers] + ["fc1/grad_norm"], order
        assert "loss" in order[:at] and "lr" in order[:at], order
        page.screenshot(path=str(SCREENSHOTS / "convscope-compare-gradients-1280.png"), full_page=True)

        # at 800 px: one chart a row, the flags' words wrapped within it
        page.set_viewport_size({"width": 800, "height": 1000})
        page.wait_for_timeout(500)
        assert page.evaluate("document.documentElement.scrollWidth") <= 800
        lefts = page.evaluate("[...document.querySelectorAll('.cmp-panel')].map((p) => p.getBoundingClientRect().left)")
        assert len(set(lefts)) == 1, lefts
        rights = page.evaluate("[...document.querySelectorAll('.cmp-flags li')].map((li) => li.getBoundingClientRect().right)")
        assert rights and max(rights) <= 800, rights
        page.screenshot(path=str(SCREENSHOTS / "convscope-compare-gradients-800.png"), full_page=True)

        # the normal run alone: no flag, on the chart nor in words
        page.goto(handle.url + "#/compare?runs=normal,other")
        page.wait_for_function("window.convscopeCompare?.loaded && document.querySelector(\".cmp-panel[data-scalar='fc1/grad_norm']\")", timeout=20_000)
        page.wait_for_timeout(300)
        for layer in layers:
            name = f"{layer}/grad_norm"
            assert page.locator(f".cmp-panel[data-scalar='{name}'] .cmp-flags li[data-status]").count() == 0
            assert _colour_drawn(page, name, page.evaluate("window.convscopeCompare.colours")["normal"]) > 20
            for status, colour in FLAG_COLOURS.items():
                assert _colour_drawn(page, name, colour, in_plot=True) == 0, (name, status)
        assert not page.errors
    finally:
        handle.stop()


def test_a_run_still_training_is_drawn_as_it_trains(tmp_path: Path, page) -> None:
    # the compare page follows a live run over the dashboard's stream (only the frames it draws):
    # its lines grow without reloading, and end with every value it logged
    logged_done = _lenet(tmp_path, "done", 20)
    assert logged_done
    handle = start_local_server(tmp_path)
    started = threading.Event()
    result: list[list[tuple[float, float]]] = []
    trainer = threading.Thread(target=lambda: result.append(_lenet(tmp_path, "live", 80, delay=0.05, started=started)), daemon=True)
    trainer.start()
    try:
        assert started.wait(60)
        # on the Runs page, the live run's updates make the rows again: a tick keeps the keyboard's focus
        page.goto(handle.url + "#/runs")
        page.wait_for_selector(".run-row[data-run='live'] .chip.live", timeout=20_000)
        page.focus(".run-row[data-run='done'] input.pick")
        page.keyboard.press("Space")
        page.evaluate("document.querySelector(\".run-row[data-run='done']\").dataset.old = '1'")
        page.wait_for_function("!document.querySelector(\".run-row[data-run='done']\").dataset.old", timeout=20_000)  # (made again)
        assert page.evaluate("document.activeElement.matches(\".run-row[data-run='done'] input.pick:checked\")")
        page.focus(".run-row[data-run='live'] input.pick")
        page.keyboard.press("Space")
        assert page.inner_text("#compare") == "Compare (2)"
        page.click("#compare")
        page.wait_for_function("location.hash === '#/compare?runs=done,live'", timeout=10_000)
        page.wait_for_function("window.convscopeCompare?.loaded", timeout=20_000)
        page.wait_for_selector(".cmp-legend li[data-run='live'] .chip.live", timeout=20_000)
        page.wait_for_function("(window.convscopeCompare.charts().loss?.live?.length ?? 0) > 0", timeout=20_000)
        seen = len(page.evaluate(CHARTS)["loss"]["live"])
        page.wait_for_function(f"window.convscopeCompare.charts().loss.live.length > {seen}", timeout=20_000)
        trainer.join(60)
        assert result, "the training did not end"
        page.wait_for_selector(".cmp-legend li[data-run='live'] .chip.finished", timeout=20_000)
        stored = _stored(tmp_path, "live")
        page.wait_for_function(f"window.convscopeCompare.charts().loss.live.length === {len(stored['loss'])}", timeout=20_000)
        charts = page.evaluate(CHARTS)
        assert [v for _, v in charts["loss"]["live"]] == pytest.approx([loss for loss, _ in result[0]], rel=1e-6)
        assert [s for s, _ in charts["loss"]["live"]] == [s for s, _ in stored["loss"]]
        assert len(charts["loss"]["done"]) == 20
        # the filter counts too: every groups frame recorded while the page was open streamed in
        grouped = _redundancy(tmp_path, "live")
        page.wait_for_function(f"window.convscopeCompare.redundancy().conv1?.live?.length === {len(grouped['conv1'])}", timeout=20_000)
        redundancy = page.evaluate("window.convscopeCompare.redundancy()")
        assert {layer: runs["live"] for layer, runs in redundancy.items()} == grouped
        assert {layer: runs["done"] for layer, runs in redundancy.items()} == _redundancy(tmp_path, "done")
        assert not page.errors
    finally:
        handle.stop()


def test_a_long_runs_flags_are_counted_against_all_its_checks(tmp_path: Path, page) -> None:
    # 5,000 checks of one layer: the page is sent at most 3,000 of them (every flagged one, the
    # healthy ones evenly spread), and its words count the flags against all 5,000
    flagged = {12_340: "exploding", 25_000: "exploding", 40_010: "exploding"}
    checks = 5_000
    with RunStore(tmp_path).create_run("long", model="Tiny") as w:
        for i in range(1, checks + 1):
            step = 10 * i
            status = flagged.get(step, "healthy")
            w.write(Frame(run=w.run_id, step=step, kind="gradient_health", layer="fc1", payload={
                "status": status, "grad_norm": 1e4 if status != "healthy" else 0.5, "update_ratio": 0.01, "zero_fraction": 0.0,
                "dead_fraction": 0.0, "nonfinite": 0, "reasons": ["gradient norm 1e+04 > 1000"] if status != "healthy" else []}))
    with RunStore(tmp_path).create_run("short", model="Tiny") as w:  # a short run beside it: sent whole
        for step in (10, 20, 30):
            w.write(Frame(run=w.run_id, step=step, kind="gradient_health", layer="fc1", payload={
                "status": "healthy", "grad_norm": 0.5, "update_ratio": 0.01, "zero_fraction": 0.0, "dead_fraction": 0.0, "nonfinite": 0}))

    handle = start_local_server(tmp_path)
    try:
        page.goto(handle.url + "#/compare?runs=long,short")
        page.wait_for_function("window.convscopeCompare?.loaded && document.querySelector(\".cmp-panel[data-scalar='fc1/grad_norm']\")", timeout=20_000)
        page.wait_for_timeout(300)
        sent = page.evaluate(CHARTS)["fc1/grad_norm"]["long"]
        # (thinned: the test is of a run the page was not sent whole; the flagged checks with the
        # check before and after each besides the evenly spread ones)
        assert 2_000 < len(sent) <= 3_000 + 3 * len(flagged), len(sent)
        assert {s for s, _ in sent} >= set(flagged)
        flags = page.evaluate("window.convscopeCompare.health()")["fc1"]
        assert [(f["status"], f["from"], f["checks"], f["of"]) for f in flags["long"]] == [("exploding", 12_340, 3, checks)]
        words = page.inner_text(".cmp-panel[data-scalar='fc1/grad_norm'] .cmp-flags li[data-run='long'][data-status]")
        assert words.startswith("long exploding from step 12340 · steps 12340, 25000, 40010 (3 of 5,000 checks)"), words
        assert page.inner_text(".cmp-panel[data-scalar='fc1/grad_norm'] .cmp-flags li[data-run='short']") == "short healthy at all 3 checks"
        assert not page.errors
    finally:
        handle.stop()

"""What a person sees on the dashboard while a run trains, and when replaying it afterwards."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from browser_canvas import canvas_state  # the tests' own helper module, beside them

import convscope
from convscope.server import start_local_server

pytestmark = [pytest.mark.browser, pytest.mark.slow]

HAS_COLOUR = """([sel, rgb]) => {
  const c = document.querySelector(sel); const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  for (let i = 0; i < d.length; i += 4)
    if (Math.abs(d[i]-rgb[0]) < 12 && Math.abs(d[i+1]-rgb[1]) < 12 && Math.abs(d[i+2]-rgb[2]) < 12) return true;
  return false;
}"""

VIEWS = {
    "weights": "#view-weights canvas",
    "trajectory": "#view-trajectory canvas",
    "distribution": "#view-distribution canvas",
    "correlation": "#view-correlation canvas.heat-canvas",
    "images": "#view-images canvas.grid-canvas",
    "health": "#view-health canvas",
    "scalars": "#view-scalars canvas",
}


def _train(logdir: Path, steps: int, started: threading.Event, delay: float) -> None:
    torch.manual_seed(0)
    spec = convscope.load_model("lenet5-simplified", pretrained=False).input_spec
    data = convscope.load_dataset("mnist-5k", spec=spec)
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(0))
    net = convscope.load_model("lenet5-simplified", pretrained=False).module.train()
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    every = {"weights": 2, "trajectory": 2, "distribution": 2, "correlation": 2, "gradients": 2, "feature_maps": 4, "lr": 2}
    with convscope.watch(net, optimizer=opt, logdir=logdir, run="browser-live", every=every, budget=None, group_threshold=0.5,
                         probe=data.images[order[:16]]) as mon:
        for step in range(steps):
            idx = order[(step * 32) % 4000 : (step * 32) % 4000 + 32]
            loss = torch.nn.functional.cross_entropy(net(data.images[idx]), data.labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            mon.log(loss=loss)
            if step == 3:
                mon._store.flush()
                started.set()
            time.sleep(delay)


def _watched_run(tmp_path: Path, steps: int, *, lr: float, probe: bool = False, **options):
    """The simplified LeNet-5 trained ``steps`` steps on batches of 32 bundled digits (in their
    order: the first steps see only a few classes, which is all these views need), watched into
    ``tmp_path`` with ``options``; the closed monitor."""
    torch.manual_seed(0)
    spec = convscope.load_model("lenet5-simplified", pretrained=False).input_spec
    data = convscope.load_dataset("mnist-5k", spec=spec)
    net = convscope.load_model("lenet5-simplified", pretrained=False).module.train()
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9)
    if probe:
        options["probe"] = data.images[:16]
    with convscope.watch(net, optimizer=opt, logdir=tmp_path, budget=None, **options) as mon:
        for step in range(steps):
            x, y = data.images[step * 32 : step * 32 + 32], data.labels[step * 32 : step * 32 + 32]
            loss = torch.nn.functional.cross_entropy(net(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return mon


def _hover_until(page, points, readout, prefix: str) -> str:
    """Move the pointer over ``points`` (page coordinates) until ``readout`` says something that
    starts with ``prefix``; what it says last."""
    said = ""
    for x, y in points:
        page.mouse.move(x, y)
        said = readout.inner_text()
        if said.startswith(prefix):
            break
    return said


def _state(page, view: str) -> dict:
    return canvas_state(page, VIEWS[view], stride=4)


def _redundancy_rows(reader) -> dict[str, list[list[int]]]:
    """Each layer's [step, filters, redundant] by step, from the run's groups frames: redundant are
    the grouped filters (label >= 0) beyond one per group."""
    rows: dict[str, dict[int, list[int]]] = {}
    for f in reader.frames(kind="groups"):
        grouped = np.asarray(f.payload["labels"])
        grouped = grouped[grouped >= 0]
        rows.setdefault(f.layer, {})[f.step] = [f.step, len(f.payload["labels"]), len(grouped) - len(np.unique(grouped))]
    return {layer: [by_step[s] for s in sorted(by_step)] for layer, by_step in rows.items()}


def _redundancy_words(reader, layer: str, step: int) -> str:
    """What the dashboard says under the timeline at ``step``: the counts of the layer's newest
    groups frame at or before it, as the store holds it."""
    f = max((f for f in reader.frames(kind="groups", layer=layer, end=step)), key=lambda f: f.step)
    labels = np.asarray(f.payload["labels"])
    grouped = labels[labels >= 0]
    groups = len(np.unique(grouped))
    said = f"in {groups} group{'s' if groups != 1 else ''}" if groups else "no group"
    return f"step {f.step}: {len(labels)} filter{'s' if len(labels) != 1 else ''}, {len(grouped) - groups} redundant ({said})"


# whether the redundancy timeline's column at ``step`` holds the current step's marker (#ffd166)
MARKER_AT = """(step) => {
  const u = window.convscopeDashboard.timeline.plot; const x = Math.round(u.valToPos(step, 'x', true));
  const d = u.ctx.getImageData(x - 2, u.bbox.top, 5, u.bbox.height).data; let hits = 0;
  for (let i = 0; i < d.length; i += 4) if (Math.abs(d[i] - 255) < 20 && Math.abs(d[i+1] - 209) < 20 && Math.abs(d[i+2] - 102) < 20) hits++;
  return hits > u.bbox.height / 2;
}"""


def test_live_dashboard_then_replay(tmp_path: Path, page) -> None:
    from convscope.store import RunStore

    handle = start_local_server(tmp_path)
    started = threading.Event()
    trainer = threading.Thread(target=_train, args=(tmp_path, 160, started, 0.03), daemon=True)
    trainer.start()
    try:
        assert started.wait(60)
        page.goto(handle.url + "#/runs")
        page.wait_for_selector(".run-row[data-run='browser-live'] .chip.live", timeout=20_000)
        page.click(".run-row[data-run='browser-live']")
        page.wait_for_function("Number(document.querySelector('#step-counter')?.textContent) > 0", timeout=20_000)
        # the step counter rises while training runs, without reloading (recordings arrive a
        # batch at a time, about every 2 s, later on a loaded machine)
        seen = int(page.inner_text("#step-counter"))
        page.wait_for_function(f"Number(document.querySelector('#step-counter')?.textContent) > {seen}", timeout=10_000)
        # and conv1's filter redundancy under its heatmap grows with the groups frames streamed
        grouped = page.evaluate("window.convscopeDashboard.redundancy().conv1?.length ?? 0")
        page.wait_for_function(f"(window.convscopeDashboard.redundancy().conv1?.length ?? 0) > {grouped}", timeout=10_000)
        assert not page.errors
        # a live run can be followed, and is by default
        assert page.is_enabled("#follow") and page.is_checked("#follow")
        first = {v: _state(page, v) for v in VIEWS}
        # recordings reach the page a batch at a time (batch_window= lets up to 2 s of them
        # gather, longer on a loaded machine): each view must change before training ends
        def changed(v: str) -> bool:
            return bool(first[v] and second.get(v) and second[v]["hash"] != first[v]["hash"])

        second: dict = {}
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            page.wait_for_timeout(300)
            second.update({v: _state(page, v) for v in VIEWS if not changed(v)})
            if all(changed(v) for v in VIEWS):
                break
        for view in VIEWS:
            assert first[view] is not None, f"{view}: no canvas"
            assert second[view]["colours"] > 3, f"{view} looks blank: {second[view]}"
            assert first[view]["hash"] != second[view]["hash"], f"{view} did not change between steps"
        trainer.join(120)
        page.wait_for_selector("#run-status.finished", timeout=20_000)
        # a finished run has nothing to follow: the box is off, and says why
        page.wait_for_selector("#follow:disabled", timeout=5_000)
        assert not page.is_checked("#follow")
        assert "this run is finished" in page.get_attribute("#follow-label", "title")
        # every logged loss and learning rate, sent in batches, live and then read back from the store;
        # the filters' redundancy: each count that came live is the store's, and read back, all of them
        with RunStore(tmp_path).open_run("browser-live") as reader:
            stored = _redundancy_rows(reader)
        for reload in (False, True):
            if reload:
                page.reload()
                page.wait_for_function("window.convscopeDashboard?.scalars.steps('lr').length > 0", timeout=20_000)
            got = page.evaluate("['loss', 'lr'].map((n) => window.convscopeDashboard.scalars.steps(n))")
            assert got == [list(range(1, 161)), list(range(2, 161, 2))], reload
            redundancy = page.evaluate("window.convscopeDashboard.redundancy()")
            if reload:
                assert redundancy == stored
            else:
                assert redundancy["conv1"] and all(row in stored[layer] for layer, rs in redundancy.items() for row in rs)
        # the groups' colours: at threshold 0.5 conv1 has groups; group 0 is drawn in #e6194b
        page.wait_for_timeout(500)
        assert page.evaluate(HAS_COLOUR, [VIEWS["distribution"], [230, 25, 75]]) or page.evaluate(
            HAS_COLOUR, [VIEWS["distribution"], [60, 180, 75]])
        assert page.evaluate(HAS_COLOUR, [VIEWS["correlation"], [230, 25, 75]]) or page.evaluate(
            HAS_COLOUR, [VIEWS["correlation"], [60, 180, 75]])
        # replay: the scrubber goes back in time and the views follow
        last = _state(page, "weights")
        page.eval_on_selector("#scrubber", "(s) => { s.value = 10; s.dispatchEvent(new Event('input')); }")
        page.wait_for_function("document.querySelector('#step-counter')?.textContent === '10'")
        page.wait_for_timeout(800)
        early = _state(page, "weights")
        assert early["hash"] != last["hash"]
        assert not page.is_checked("#follow")
        # play and pause are drawn (a pause glyph is missing from many fonts) and named for screen readers
        assert page.get_attribute("#play", "aria-label") == "replay the recorded steps" and page.locator("#play svg").count() == 1
        page.click("#play")  # (the replay starts once it has fetched the steps)
        page.wait_for_function("document.querySelector('#play').getAttribute('aria-label') === 'pause the replay'")
        page.wait_for_timeout(1500)
        playing = int(page.inner_text("#step-counter"))
        page.wait_for_timeout(1000)
        assert int(page.inner_text("#step-counter")) > playing
        page.click("#play")
        page.wait_for_function("document.querySelector('#play').getAttribute('aria-label') === 'replay the recorded steps'")
    finally:
        handle.stop()


def test_vgg16_conv1_feature_maps_stay_smooth(tmp_path: Path, page) -> None:
    """64 maps of 224x224 (VGG-16 conv1 on a real photo) at full resolution; drawing time is reported."""
    from skimage import data as skdata

    from convscope.analysis import feature_images
    from convscope.frames import Frame
    from convscope.store import RunStore

    model = convscope.load_model("vgg16", pretrained=False)
    photo = torch.from_numpy(skdata.chelsea()[:224, 100:324].astype(np.float32) / 255).permute(2, 0, 1)[None]
    maps = convscope.capture(model, model.input_spec.prepare(photo), layers=["features.0"]).outputs["features.0"]
    writer = RunStore(tmp_path).create_run("vgg16-maps", model="VGG16")
    for step in (1, 2):
        payload = feature_images(maps * step, sample=0, max_size=None).to_payload()
        writer.write(Frame(run=writer.run_id, step=step, kind="feature_maps", layer="features.0", payload=payload))
    writer.close()
    handle = start_local_server(tmp_path)
    try:
        page.goto(handle.url + "#/runs/vgg16-maps")
        page.wait_for_function("window.convscopeDashboard && window.convscopeDashboard.images.lastDrawMs > 0", timeout=30_000)
        caption = page.inner_text("#view-images .caption")
        assert "64 maps of 224x224" in caption
        times = []
        for step in (1, 2, 1, 2):
            page.eval_on_selector("#scrubber", f"(s) => {{ s.value = {step}; s.dispatchEvent(new Event('input')); }}")
            page.wait_for_timeout(600)
            times.append(page.evaluate("window.convscopeDashboard.images.lastDrawMs"))
        page.locator(VIEWS["images"]).click(position={"x": 5, "y": 5})
        zoom = canvas_state(page, "#view-images canvas.zoom-canvas", stride=4)
        assert zoom["height"] >= 224 and zoom["colours"] > 10
        median = sorted(times)[len(times) // 2]
        print(f"\nVGG-16 conv1, 64 maps of 224x224: redraw median {median:.0f} ms (all {[round(t) for t in times]})")
        assert median < 1000
    finally:
        handle.stop()


def test_the_dashboard_says_what_the_budget_left_out(tmp_path: Path, page) -> None:
    # A budget far too small for every view at every step skips recording steps; the dashboard's
    # note under the run's title says how many, beside what was asked for, so that no one reads
    # the sparser views as the schedule. The count is the run's own (its last "dropped" frame).
    from convscope.store import RunStore

    torch.manual_seed(0)
    net = convscope.load_model("lenet5-simplified", pretrained=False).module.train()
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    with convscope.watch(net, optimizer=opt, logdir=tmp_path, run="tight-budget", every=1, budget=0.001) as mon:
        for _ in range(40):
            loss = net(torch.randn(16, 1, 28, 28)).square().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    assert mon.stats.deferred > 0
    reader = RunStore(tmp_path).open_run(mon.run_id)
    skipped = max(f.payload["count"] for f in reader.frames(kind="dropped") if f.payload["sink"] == "budget")
    assert skipped == mon.stats.deferred
    handle = start_local_server(tmp_path)
    try:
        page.goto(handle.url + f"#/runs/{mon.run_id}")
        page.wait_for_function("document.querySelector('#run-note')?.textContent.includes('budget')", timeout=20_000)
        note = page.inner_text("#run-note")
        assert f"{skipped} recording steps skipped to stay within the 0.1% overhead budget" in note, note
        assert "weights, trajectory" in note and "every step;" in note and "feature_maps every 5 steps" in note, note
        assert not page.errors
    finally:
        handle.stop()


def test_the_dashboard_marks_where_a_stopped_training_was_resumed(tmp_path: Path, page) -> None:
    # A job that stopped and went on from its checkpoint (watch(resume=True)) is one run; the
    # note under its title and a dashed line on the scalars say where the new process took over.
    torch.manual_seed(0)
    net = convscope.load_model("lenet5-simplified", pretrained=False).module.train()
    opt = torch.optim.SGD(net.parameters(), lr=0.05)

    def train(steps: int, **options) -> convscope.Monitor:
        with convscope.watch(net, optimizer=opt, logdir=tmp_path, run="preempted", every=5, budget=None, **options) as mon:
            for _ in range(steps):
                loss = net(torch.randn(16, 1, 28, 28)).square().mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                mon.log(loss=loss)
        return mon

    train(30)
    assert train(20, resume=True).step_count == 50
    handle = start_local_server(tmp_path)
    try:
        page.goto(handle.url + "#/runs/preempted")
        page.wait_for_function("document.querySelector('#run-note')?.textContent.includes('resumed')", timeout=20_000)
        assert "training resumed at step 30" in page.inner_text("#run-note")
        page.wait_for_function("document.querySelector('#last-step')?.textContent === '50'", timeout=20_000)  # (drawn after the note)
        page.wait_for_function(HAS_COLOUR, arg=[VIEWS["scalars"], [0xAD, 0xB5, 0xBD]], timeout=20_000)  # the grey dashed line
        assert not page.errors
    finally:
        handle.stop()


def test_gradient_health_says_in_words_why_a_layer_is_flagged(tmp_path: Path, page) -> None:
    # TensorView's case of a far-too-high learning rate: the first huge steps explode, then kill
    # the ReLUs. Under the health rows the dashboard says each layer's status at the current step
    # and the rules that fired, as the run stored them.
    from convscope.store import RunStore

    mon = _watched_run(tmp_path, 60, lr=1.5, run="hot", every=5, record=["gradients"])
    with RunStore(tmp_path).open_run(mon.run_id) as reader:
        last = {f.layer: f.payload for f in reader.frames(kind="gradient_health", start=60, end=60)}
    assert set(last) == {"conv1", "conv2"} and all(p["status"] != "healthy" and p["reasons"] for p in last.values()), last
    handle = start_local_server(tmp_path)
    try:
        page.goto(handle.url + f"#/runs/{mon.run_id}")
        page.wait_for_function("document.querySelectorAll('#view-health .health-line').length === 2", timeout=20_000)
        lines = page.locator("#view-health .health-line").all_inner_texts()
        # the rules that fired in words, then the numbers they do not already say
        for line, layer in zip(lines, ("conv1", "conv2"), strict=True):
            words, *numbers = line.split(" · ")
            assert words == f"{layer} {last[layer]['status']}: {'; '.join(last[layer]['reasons'])}"
            said = {n.split(" ")[0] for n in numbers}
            assert ("gradient" in said) != ("gradient norm" in words) and ("update" in said) != ("update ratio" in words), line
        # back at the first recording, the health read then: a click at the strip's start goes there
        box = page.locator("#view-health canvas").bounding_box()
        page.mouse.click(box["x"] + 112, box["y"] + 10)
        page.wait_for_function("document.querySelector('#view-health .health-line')?.textContent.startsWith('conv1') && "
                               "document.querySelector('#step-counter')?.textContent === '5'")
        page.wait_for_timeout(300)
        with RunStore(tmp_path).open_run(mon.run_id) as reader:
            first = next(f.payload for f in reader.frames(kind="gradient_health", layer="conv1", start=5, end=5))
        assert page.locator("#view-health .health-line").first.inner_text().startswith(f"conv1 {first['status']}")
        assert not page.errors
    finally:
        handle.stop()


def test_the_correlation_and_distribution_views_say_what_is_under_the_pointer(tmp_path: Path, page) -> None:
    from convscope.store import RunStore

    mon = _watched_run(tmp_path, 40, lr=0.05, probe=True, run="groups", every=10, group_threshold=0.5,
                       record=["correlation", "distribution", "weights"])
    with RunStore(tmp_path).open_run(mon.run_id) as reader:
        last = {f.kind: f.payload for f in reader.frames(kind=["correlation", "groups", "distribution", "weight_grid"], layer="conv1", start=40, end=40)}
    labels, matrix = last["groups"]["labels"], last["correlation"]["matrix"]
    groups = {int(g): [int(i) for i in np.flatnonzero(labels == g)] for g in np.unique(labels) if g >= 0}
    assert groups and any(len(members) > 1 for members in groups.values()), labels  # (threshold 0.5: conv1 has groups)
    handle = start_local_server(tmp_path)
    try:
        page.goto(handle.url + f"#/runs/{mon.run_id}")
        page.wait_for_function("window.convscopeDashboard?.heatmap.layout?.F === 16 && "
                               "document.querySelectorAll('#view-correlation .group-line').length > 0", timeout=20_000)
        # the distributions fill their row beside the taller correlation panel: no empty space under them
        room = page.evaluate("""(() => {
          const [panel, corr] = ['distribution', 'correlation'].map((id) => document.querySelector('#view-' + id).getBoundingClientRect());
          const caption = document.querySelector('#view-distribution .caption').getBoundingClientRect();
          return {top: panel.top - corr.top, taller: corr.height - 300, under: panel.bottom - caption.bottom};
        })()""")
        assert room["top"] == 0 and room["taller"] > 100 and room["under"] < 24, room  # (one row, the correlation panel the taller)
        # the groups in words, as the store holds them
        lines = page.locator("#view-correlation .group-line").all_inner_texts()
        assert [line.split(" (mean")[0] for line in lines] == [
            f"group {g}: filters {', '.join(map(str, members))}" for g, members in sorted(groups.items())]
        # the filters along the edges go group by group
        order = page.evaluate("window.convscopeDashboard.heatmap.order")
        assert [int(labels[i]) for i in order if labels[i] >= 0] == sorted(int(labels[i]) for i in order if labels[i] >= 0)
        # the cell under the pointer: the two filters of the first group, and their correlation
        a, b = next(members for members in groups.values() if len(members) > 1)[:2]
        layout = page.evaluate("window.convscopeDashboard.heatmap.layout")
        box = page.locator("#view-correlation canvas.heat-canvas").bounding_box()
        row, col = order.index(a), order.index(b)
        page.mouse.move(box["x"] + layout["x0"] + (col + 0.5) * layout["cell"], box["y"] + layout["y0"] + (row + 0.5) * layout["cell"])
        caption = page.locator("#view-correlation .caption").first
        page.wait_for_function("document.querySelector('#view-correlation .caption').textContent.startsWith('filters')")
        assert caption.inner_text() == f"filters {a} and {b}: r = {matrix[a, b]:.3f}, both in group {int(labels[a])}"
        page.mouse.move(box["x"] + 2, box["y"] + box["height"] - 2)  # off the matrix: the caption says how to read it again
        page.wait_for_function("document.querySelector('#view-correlation .caption').textContent.startsWith('16 filters')")
        # a line of the distributions under the pointer: its filter's real range and moments, as stored
        dist = last["distribution"]
        box = page.locator("#view-distribution canvas").bounding_box()
        caption = page.locator("#view-distribution .caption")
        plot = [(box["x"] + 28 + fx * (box["width"] - 34), box["y"] + 6 + (1 - fy) * (box["height"] - 34))
                for fx in np.linspace(0.05, 0.95, 10) for fy in np.linspace(0.05, 0.95, 10)]
        said = _hover_until(page, plot, caption, "filter")
        m = re.fullmatch(r"filter (\d+)(?:, group (\d+))?: values (\S+) to (\S+), mean (\S+), std (\S+)", said)
        assert m, said
        f = int(m[1])
        assert (int(m[2]) if m[2] else -1) == labels[f]
        got = [float(v) for v in m.groups()[2:]]
        assert got == pytest.approx([dist[k][f] for k in ("min", "max", "mean", "std")], rel=6e-3, abs=1e-6), (said, f)
        # a block of the weight grid under the pointer: its filter, channel, row, column and weight
        box = page.locator("#view-weights canvas").bounding_box()
        note = page.locator("#view-weights .view-note")
        middle = [(0.5, 0.5), (0.45, 0.5), (0.55, 0.45), (0.4, 0.4), (0.6, 0.6), (0.5, 0.35), (0.5, 0.65)]
        said = _hover_until(page, [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in middle], note, "filter")
        m = re.fullmatch(r"filter (\d+), channel (\d+), row (\d+), column (\d+): w = (\S+)", said)
        assert m, said
        f, c, y, x = (int(v) for v in m.groups()[:4])
        assert float(m[5]) == pytest.approx(float(last["weight_grid"]["weights"][f, c, y, x]), rel=6e-3, abs=1e-6)
        page.mouse.move(box["x"] + box["width"] + 40, box["y"] - 20)  # off the grid: the summary again
        page.wait_for_function("document.querySelector('#view-weights .view-note').textContent.startsWith('16 filters')")
        assert not page.errors
    finally:
        handle.stop()


@pytest.fixture(scope="module")
def pruned_run(tmp_path_factory) -> tuple[Path, str]:
    """A run whose conv1 is pruned twice (16 -> 8 filters at step 20, then 8 -> 4 at step 40), its
    filters grouped every 10 steps: its log directory and id (one run for the tests that read it)."""
    logdir = tmp_path_factory.mktemp("pruned")
    prune = convscope.PruneConfig(layers=("conv1",), threshold=0.9, start=20, every=20, times=2, max_fraction=0.75)
    mon = _watched_run(logdir, 50, lr=0.05, probe=True, run="pruned", every=10, prune=prune, record=["correlation", "distribution", "weights"])
    return logdir, mon.run_id


def test_the_prunings_are_listed_under_the_scalars(pruned_run: tuple[Path, str], page) -> None:
    """The prunings in words, and every view naming the filters left by their original numbers
    (as the layer numbered them before any pruning), at each step."""
    from convscope.store import RunStore

    logdir, run_id = pruned_run
    with RunStore(logdir).open_run(run_id) as reader:
        stored = sorted(reader.frames(kind="pruning"), key=lambda f: f.step)
        last = {f.kind: f.payload for f in reader.frames(kind=["correlation", "groups"], layer="conv1", start=50, end=50)}
    assert stored, "the test needs a pruning"
    # each pruning's filters by their original numbers: kept and removed compose, oldest first
    numbers = list(range(stored[0].payload["before"]))
    removed_then = []
    for f in stored:
        removed_then.append([numbers[i] for i in f.payload["removed"]])
        numbers = [numbers[i] for i in f.payload["kept"]]
    assert last["correlation"]["matrix"].shape[0] == len(numbers) < 16
    assert [f.payload["inputs"] for f in stored] == [{"conv2": f.payload["removed"]} for f in stored]  # (conv2 reads conv1)
    handle = start_local_server(logdir)
    try:
        page.goto(handle.url + f"#/runs/{run_id}")
        # (the lines read in the same moment as their count: the page may still be drawing)
        lines = page.wait_for_function(
            "n => { const l = [...document.querySelectorAll('#view-scalars .pruning-line')].map((e) => e.textContent); "
            "return l.length === n ? l : null; }", arg=len(stored), timeout=20_000).json_value()
        for line, f, removed in zip(lines, stored, removed_then, strict=True):
            p = f.payload
            assert line.startswith(f"pruned at step {f.step}: conv1 {p['before']} → {p['after']} filters, "
                                   f"removed filter{'s' if len(removed) > 1 else ''} {', '.join(map(str, removed))} "), line
            assert f"({p['reason'].split('; ')[0]})" in line, line
        page.wait_for_timeout(1000)  # and each said once, however the live stream catches up
        assert page.locator("#view-scalars .pruning-line").count() == len(stored)
        # after the prunings, the heatmap's edges number the filters left as they were at first,
        # not 0..n-1, and its groups too; each view says so once
        page.wait_for_function(f"window.convscopeDashboard?.heatmap.layout?.F === {len(numbers)}", timeout=20_000)
        edges = page.evaluate("window.convscopeDashboard.heatmap.edgeLabels")
        order = page.evaluate("window.convscopeDashboard.heatmap.order")
        assert edges == [numbers[i] for i in order] and sorted(edges) == numbers != list(range(len(numbers)))
        labels = last["groups"]["labels"]
        groups = {int(g): [numbers[i] for i in np.flatnonzero(labels == g)] for g in np.unique(labels) if g >= 0}
        assert [line.split(" (mean")[0] for line in page.locator("#view-correlation .group-line").all_inner_texts()] == [
            f"group {g}: filters {', '.join(map(str, members))}" for g, members in sorted(groups.items())]
        note = f"filters numbered as before pruning: {len(numbers)} of 16 left"
        assert page.locator("#view-correlation .caption").first.inner_text().endswith(note)
        assert page.locator("#view-distribution .caption").inner_text().endswith(note)
        # conv2 reads conv1: its weight grid numbers its input channels as conv1 numbered its filters
        page.select_option("#layer", "conv2")
        inputs_note = f"input channels numbered as before pruning: {len(numbers)} of 16 left"
        page.wait_for_function("t => document.querySelector('#view-weights .view-note')?.textContent.includes(t)", arg=inputs_note, timeout=10_000)
        page.select_option("#layer", "conv1")
        page.wait_for_function(f"window.convscopeDashboard?.heatmap.layout?.F === {len(numbers)}", timeout=20_000)
        # a step before the first pruning: the numbers of that time, and no word of pruning
        page.eval_on_selector("#scrubber", "(s) => { s.value = 10; s.dispatchEvent(new Event('input')); }")
        page.wait_for_function("window.convscopeDashboard?.heatmap.layout?.F === 16", timeout=10_000)
        assert sorted(page.evaluate("window.convscopeDashboard.heatmap.edgeLabels")) == list(range(16))
        assert "pruning" not in page.locator("#view-correlation .caption").first.inner_text()
        assert not page.errors
    finally:
        handle.stop()


def test_the_correlation_panel_follows_the_filters_redundancy_over_the_steps(pruned_run: tuple[Path, str], page) -> None:
    """Under the heatmap, the layer's filters and redundant filters at every recording, as the
    store's groups frames count them, and at the current step in words; a click goes to a step."""
    from convscope.store import RunStore

    logdir, run_id = pruned_run
    with RunStore(logdir).open_run(run_id) as reader:
        rows = _redundancy_rows(reader)
        words = {(layer, step): _redundancy_words(reader, layer, step) for layer in ("conv1", "conv2") for step in (20, 50)}
    assert set(rows) == {"conv1", "conv2"} and [r[1] for r in rows["conv1"]] == [16, 16, 8, 8, 4], rows  # (the prunings show)
    assert any(r[2] > 0 for r in rows["conv1"]), rows
    handle = start_local_server(logdir)
    try:
        page.goto(handle.url + f"#/runs/{run_id}")
        page.wait_for_function("n => Object.keys(window.convscopeDashboard?.redundancy() ?? {}).length === n", arg=len(rows), timeout=20_000)
        assert page.evaluate("window.convscopeDashboard.redundancy()") == rows
        # at the last step, the counts said in words, and the marker there
        now = page.locator("#view-correlation .redundancy-now")
        page.wait_for_function("t => document.querySelector('#view-correlation .redundancy-now')?.textContent === t",
                               arg=words[("conv1", 50)], timeout=10_000)
        assert page.evaluate(MARKER_AT, 50) and not page.evaluate(MARKER_AT, 20)
        # a click on the timeline at step 20 goes there: the step counter, the words and the marker follow
        box = page.evaluate("""(() => { const u = window.convscopeDashboard.timeline.plot; const r = u.over.getBoundingClientRect();
          return {x: r.left + u.valToPos(20, 'x'), y: r.top + r.height / 2}; })()""")
        page.mouse.click(box["x"], box["y"])
        page.wait_for_function("document.querySelector('#step-counter')?.textContent === '20'", timeout=10_000)
        page.wait_for_function("t => document.querySelector('#view-correlation .redundancy-now')?.textContent === t",
                               arg=words[("conv1", 20)], timeout=10_000)
        assert page.evaluate(MARKER_AT, 20) and not page.evaluate(MARKER_AT, 50)
        # another layer: its own counts, at the same step
        page.select_option("#layer", "conv2")
        page.wait_for_function("t => document.querySelector('#view-correlation .redundancy-now')?.textContent === t",
                               arg=words[("conv2", 20)], timeout=10_000)
        assert now.inner_text() == words[("conv2", 20)]
        assert not page.errors
    finally:
        handle.stop()


def _gap_frame(kind: str, step: int, layer: str = "", filters: int = 0) -> object:
    """A frame of the hand-over test: a loss, a gradient-health check, a groups frame of
    ``filters`` filters (the first two in one group), or a pruning that halves ``filters``."""
    from convscope.frames import Frame

    if kind == "scalar":
        payload: dict = {"name": "loss", "value": 1.0 / step}
    elif kind == "gradient_health":
        payload = {"status": "healthy", "grad_norm": 0.1 * step, "update_ratio": 1e-3, "zero_fraction": 0.0, "dead_fraction": 0.0, "nonfinite": 0}
    elif kind == "groups":
        payload = {"labels": np.array([0, 0] + [-1] * (filters - 2)), "threshold": 0.9, "method": "pearson", "events": []}
    else:
        payload = {"removed": list(range(1, filters, 2)), "kept": list(range(0, filters, 2)), "before": filters,
                   "after": filters // 2, "reason": "redundant", "params_before": 10 * filters, "params_after": 5 * filters}
    return Frame(run="handover", step=step, kind=kind, layer=layer, payload=payload)


def test_frames_written_while_the_dashboard_reads_the_history_come_once(tmp_path: Path, page) -> None:
    """The dashboard reads a live run's history, then follows it: frames written in between (here
    while the history's answer is held back) reach it, and nothing twice: a pruning counted twice
    would renumber the filters, a health check or a groups frame twice would be drawn twice."""
    from convscope.store import RunStore

    writer = RunStore(tmp_path).create_run("handover")
    for f in (_gap_frame("scalar", 1), _gap_frame("groups", 2, "conv1", 8), _gap_frame("gradient_health", 2, "conv1"),
              _gap_frame("scalar", 2), _gap_frame("pruning", 3, "conv1", 8), _gap_frame("scalar", 3),
              _gap_frame("groups", 4, "conv1", 4), _gap_frame("gradient_health", 4, "conv1"), _gap_frame("scalar", 4)):
        writer.write(f)
    writer.flush()
    # the gap: one frame of the history's last step (a step is no cursor), and frames of the next
    gap = [_gap_frame("gradient_health", 4, "conv2"), _gap_frame("pruning", 5, "conv1", 4), _gap_frame("groups", 5, "conv1", 2),
           _gap_frame("gradient_health", 5, "conv1"), _gap_frame("scalar", 5)]
    held = []

    def hold_the_history(route) -> None:
        answer = route.fetch()  # (the server has read the history and named its cursor)
        held.append(answer.headers.get("x-convscope-cursor"))
        for f in gap:
            writer.write(f)
        writer.flush()
        route.fulfill(response=answer)

    handle = start_local_server(tmp_path)
    try:
        page.route(lambda url: "/frames?" in url and "kind=pruning" in url, hold_the_history, times=1)
        page.goto(handle.url + "#/runs/handover")
        dash = "window.convscopeDashboard"
        # the gap's frames come (its pruning the second), then live ones after them
        page.wait_for_function(f"{dash}?.prunings().length === 2", timeout=20_000)
        assert held == ["9"]
        for f in (_gap_frame("pruning", 6, "conv1", 2), _gap_frame("groups", 6, "conv1", 2), _gap_frame("gradient_health", 6, "conv1"),
                  _gap_frame("scalar", 6)):
            writer.write(f)
        writer.close()
        page.wait_for_selector("#run-status.finished", timeout=20_000)
        page.wait_for_function(f"{dash}.scalars.steps('loss').length === 6", timeout=10_000)
        page.wait_for_timeout(500)  # (anything sent twice would have come by now)
        assert page.evaluate(f"{dash}.prunings()") == [["conv1", 3], ["conv1", 5], ["conv1", 6]]
        assert page.locator("#view-scalars .pruning-line").count() == 3
        assert sorted(page.evaluate(f"{dash}.health()")) == [["conv1", 2], ["conv1", 4], ["conv1", 5], ["conv1", 6], ["conv2", 4]]
        assert page.evaluate(f"{dash}.redundancy()") == {"conv1": [[2, 8, 1], [4, 4, 1], [5, 2, 1], [6, 2, 1]]}
        assert page.evaluate(f"{dash}.scalars.steps('loss')") == [1, 2, 3, 4, 5, 6]
        # the filters left after three prunings, numbered as the layer numbered them first: each pruning once
        assert page.locator("#view-scalars .pruning-line").all_inner_texts()[-1].startswith(
            "pruned at step 6: conv1 2 → 1 filters, removed filter 4 ")
        assert not page.errors
    finally:
        handle.stop()


def test_the_dashboard_goes_on_after_the_server_restarts_with_each_frame_once(tmp_path: Path, page) -> None:
    """The server stops while a run trains and comes back on its address: the page connects again
    from the last cursor the stream gave it, and gets what was written meanwhile once (frames of
    steps before the last one it had among them: a step is no cursor)."""
    from convscope.store import RunStore

    writer = RunStore(tmp_path).create_run("restart")
    for f in (_gap_frame("scalar", 1), _gap_frame("groups", 2, "conv1", 8), _gap_frame("gradient_health", 2, "conv1")):
        writer.write(f)
    writer.flush()
    handle = start_local_server(tmp_path)
    port = handle.port
    try:
        page.goto(handle.url + "#/runs/restart")
        dash = "window.convscopeDashboard"
        page.wait_for_function(f"{dash}?.health().length === 1", timeout=20_000)
        for f in (_gap_frame("scalar", 4), _gap_frame("gradient_health", 4, "conv1")):  # (live: then a cursor)
            writer.write(f)
        writer.flush()
        page.wait_for_function(f"{dash}.health().length === 2", timeout=10_000)
        page.wait_for_timeout(300)  # (the cursor after them)
    finally:
        handle.stop()
    # while the server is away: a pruning and a check of a later step, and a check of an earlier
    # step of another layer (its analysis came late), which a reconnect from the last step would miss
    for f in (_gap_frame("pruning", 5, "conv1", 8), _gap_frame("gradient_health", 5, "conv1"),
              _gap_frame("gradient_health", 3, "conv2"), _gap_frame("scalar", 5)):
        writer.write(f)
    writer.flush()
    handle = start_local_server(tmp_path, port=port)
    try:
        page.wait_for_function(f"{dash}.prunings().length === 1", timeout=20_000)
        writer.write(_gap_frame("gradient_health", 6, "conv1"))
        writer.close()
        page.wait_for_selector("#run-status.finished", timeout=20_000)
        page.wait_for_function(f"{dash}.health().length === 5", timeout=10_000)
        page.wait_for_timeout(500)  # (anything sent twice would have come by now)
        assert sorted(page.evaluate(f"{dash}.health()")) == [["conv1", 2], ["conv1", 4], ["conv1", 5], ["conv1", 6], ["conv2", 3]]
        assert page.evaluate(f"{dash}.prunings()") == [["conv1", 5]]
        assert page.evaluate(f"{dash}.scalars.steps('loss')") == [1, 4, 5]
        assert not page.errors
    finally:
        handle.stop()


def test_leaving_the_dashboard_while_it_draws_raises_nothing(tmp_path: Path, page) -> None:
    # a redraw or a step's frames still on their way when the page is left used to draw into
    # the page that replaced it ("Cannot set properties of null")
    mon = _watched_run(tmp_path, 20, lr=0.05, every=2, probe=True)
    handle = start_local_server(tmp_path)
    try:
        for delay in (0, 20, 50, 100, 200, 400):
            page.goto(handle.url + f"#/runs/{mon.run_id}")
            page.wait_for_selector("#scrubber", state="attached", timeout=20_000)
            page.wait_for_timeout(delay)
            page.evaluate("() => { location.hash = '#/'; }")
            page.wait_for_selector("#runs-body", timeout=20_000)
            page.wait_for_timeout(300)  # (what was in flight lands)
        assert not page.errors, page.errors
    finally:
        handle.stop()

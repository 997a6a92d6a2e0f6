"""What a person sees on the Runs page: which runs have gaps, and why; each run's last values,
flagged layers and pruned filters."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from convscope.frames import Frame
from convscope.server import start_local_server
from convscope.store import RunStore

pytestmark = [pytest.mark.browser, pytest.mark.slow]

#: where the test leaves a picture of the Runs page with a lossy run, to look at
SCREENSHOT = Path(__file__).with_name("artifacts") / "runs-page-gaps.png"  # (ignored by git, as the other screenshots)

MARKS = """(id) => {
  const row = document.querySelector(`.run-row[data-run='${id}']`);
  const mark = (sel) => { const m = row.querySelector(sel); return m && { text: m.textContent, title: m.title, colour: getComputedStyle(m).color }; };
  return { lost: mark('.lost-mark'), deferred: mark('.deferred-mark'), cells: row.cells.length, gaps: row.querySelector('td.gaps')?.textContent ?? null };
}"""


def _run(store: RunStore, run: str, drops: Sequence[tuple[int, int, str]] = ()) -> None:
    """A run of 30 steps of loss; ``drops`` are its ``dropped`` frames (step, running total, cause), as the monitor writes them."""
    with store.create_run(run, model="LeNet5") as w:
        for step in range(1, 31):
            w.write(Frame(run=w.run_id, step=step, kind="scalar", payload={"name": "loss", "value": 1.0 / step}))
        for step, count, sink in drops:
            w.write(Frame(run=w.run_id, step=step, kind="dropped", payload={"count": count, "sink": sink}))


def test_the_runs_page_marks_runs_that_lost_frames(tmp_path: Path, page) -> None:
    # A run that lost frames carries a warning with their total (its tooltip: by cause), the
    # recording steps its budget deferred are said apart and quietly, and a clean run shows nothing.
    store = RunStore(tmp_path)
    _run(store, "paced", [(4, 40, "budget"), (30, 86, "budget")])
    _run(store, "lossy", [(5, 500, "queue"), (9, 1500, "queue"), (9, 20, "http"), (12, 86, "budget")])
    _run(store, "clean")
    handle = start_local_server(tmp_path)
    try:
        page.goto(handle.url + "#/runs")
        page.wait_for_selector(".run-row[data-run='clean']", timeout=20_000)
        assert page.is_visible("th.gaps")
        lossy, clean, paced = (page.evaluate(MARKS, run) for run in ("lossy", "clean", "paced"))

        assert lossy["lost"]["text"] == "⚠ 1,520 lost", lossy
        assert lossy["lost"]["title"].startswith("1,520 frames lost: queue 1,500, http 20 ("), lossy
        assert "queue: the monitor's queue was full" in lossy["lost"]["title"], lossy
        assert lossy["deferred"]["text"] == "86 deferred", lossy
        assert lossy["deferred"]["title"] == "86 recording steps skipped to stay within the overhead budget: deferred on purpose, not lost"
        assert paced["lost"] is None and paced["deferred"]["text"] == "86 deferred", paced  # deferred only: no warning
        assert clean["lost"] is None and clean["deferred"] is None and clean["gaps"] == "", clean
        assert clean["cells"] == lossy["cells"] == 10  # (the clean row's gap cell is there, empty)
        # the warning stands out (amber); the deferred steps are grey, like the page's other quiet text
        r, g, b = (int(v) for v in lossy["lost"]["colour"][4:-1].split(","))
        assert r > 200 and g > 170 and b < 120, lossy
        assert lossy["deferred"]["colour"] == paced["deferred"]["colour"] == page.evaluate(
            "getComputedStyle(document.querySelector('.page-head .muted')).color")
        SCREENSHOT.parent.mkdir(exist_ok=True)
        page.screenshot(path=str(SCREENSHOT))

        # the run's own header says the same, in the same words
        page.click(".run-row[data-run='lossy']")
        page.wait_for_selector("#run-lost:not([hidden])", timeout=20_000)
        assert page.inner_text("#run-lost") == "⚠ 1,520 lost"
        assert page.get_attribute("#run-lost", "title") == lossy["lost"]["title"]
        note = page.inner_text("#run-note")
        assert "86 recording steps skipped to stay within the overhead budget" in note and "1,520 frames lost: queue 1,500, http 20" in note, note
        page.goto(handle.url + "#/runs/clean")
        page.wait_for_function("document.querySelector('#run-name')?.textContent === 'clean'", timeout=20_000)
        assert not page.is_visible("#run-lost") and "lost" not in page.inner_text("#run-note")
        assert not page.errors
    finally:
        handle.stop()


@contextmanager
def _runs_page(tmp_path: Path, page, *names: str) -> Iterator[str]:
    """Runs of these names (plain, no gaps) served, and the Runs page open once it lists them all;
    the server's address."""
    store = RunStore(tmp_path)
    for name in names:
        _run(store, name)
    handle = start_local_server(tmp_path)
    try:
        page.goto(handle.url + "#/runs")
        for run in store.list_runs():
            page.wait_for_selector(f".run-row[data-run='{run['id']}']", timeout=20_000)
        yield handle.url
        assert not page.errors
    finally:
        handle.stop()


def test_a_log_directory_without_gaps_has_no_gaps_column(tmp_path: Path, page) -> None:
    with _runs_page(tmp_path, page, "clean"):
        assert not page.is_visible("th.gaps")
        assert page.evaluate(MARKS, "clean") == {"lost": None, "deferred": None, "cells": 9, "gaps": None}


def test_runs_of_one_name_are_told_apart_by_their_ids(tmp_path: Path, page) -> None:
    # Two runs named alike (a demo run twice) get ids "demo" and "demo-2": the page names them by
    # id, as `convscope runs` does, with the name beside the id where the two differ.
    with _runs_page(tmp_path, page, "demo", "demo"):
        assert {r["id"] for r in RunStore(tmp_path).list_runs()} == {"demo", "demo-2"}
        cell = "(id) => { const c = document.querySelector(`.run-row[data-run='${id}'] td`); return [c.querySelector('a').textContent, c.querySelector('.run-alias')?.textContent ?? null]; }"
        assert page.evaluate(cell, "demo-2") == ["demo-2", "named demo"]
        assert page.evaluate(cell, "demo") == ["demo", None]
        page.click(".run-row[data-run='demo-2']")
        page.wait_for_function("document.querySelector('#run-name')?.textContent === 'demo-2'", timeout=20_000)
        assert page.inner_text("#run-alias") == "named demo"


def test_a_missing_run_says_so_and_the_connection_stays_up(tmp_path: Path, page) -> None:
    # The server answered (404): the page says there is no such run, with the way back, shows no
    # dead controls, and does not call the connection down (leaving the Runs page closed its socket).
    with _runs_page(tmp_path, page, "clean") as url:
        page.goto(url + "#/runs/nope")
        page.wait_for_selector(".missing-run", timeout=20_000)
        page.wait_for_timeout(1500)  # (a reconnect would have said "reconnecting…" by now)
        assert page.inner_text(".missing-run h1") == "No run named “nope”"
        assert "no run named nope in this log directory" in page.inner_text(".missing-run p")
        assert page.locator(".controls, #run-name").count() == 0
        assert page.get_attribute("#conn", "class") == "conn up" and page.inner_text("#conn") == "connected"
        page.click(".missing-run a[href='#/runs']")
        page.wait_for_selector(".run-row[data-run='clean']", timeout=20_000)


SUMMARY = """(id) => {
  const row = document.querySelector(`.run-row[data-run='${id}']`);
  const cell = (sel) => row.querySelector(sel);
  return {
    values: cell('td.last-values').innerText.trim(), valuesTitle: cell('td.last-values').title,
    health: [...cell('td.health').children].map((c) => c.innerText.trim()), healthTitle: cell('td.health').title,
    dots: [...cell('td.health').querySelectorAll('.health-dot')].map((d) => getComputedStyle(d).backgroundColor),
    quiet: cell('td.health .muted') ? getComputedStyle(cell('td.health .muted')).color : null,
    filters: [...cell('td.filters').children].map((c) => c.innerText.trim()),
    filtersTitle: [...cell('td.filters').children].map((c) => c.title),
  };
}"""

#: the page's layout: nothing scrolls sideways, and which columns show
LAYOUT = """() => ({
  scroll: document.documentElement.scrollWidth - window.innerWidth,
  table: document.querySelector('table.runs').getBoundingClientRect().right - window.innerWidth,
  shown: [...document.querySelectorAll('table.runs thead th')].filter((th) => th.offsetParent !== null).map((th) => th.textContent),
})"""


def _health(run: str, step: int, layer: str, status: str) -> Frame:
    return Frame(run=run, step=step, kind="gradient_health", layer=layer, payload={
        "status": status, "grad_norm": 312.0 if status == "exploding" else 0.4, "update_ratio": 1e-3, "zero_fraction": 0.0,
        "dead_fraction": 0.0, "nonfinite": 0, "reasons": [] if status == "healthy" else ["gradient norm 312 > 100"]})


def _logged(run: str, name: str, steps: range, value) -> Frame:
    """One ``scalars`` frame, as the monitor batches what ``log()`` gets (a second's worth)."""
    s = np.array(list(steps), np.int64)
    return Frame(run=run, step=int(s[-1]), kind="scalars",
                 payload={"name": name, "steps": s, "values": np.array([value(i) for i in s], np.float64), "wall_times": 1.7e9 + s})


def _lenet(w, *, prune: bool, lr: float, steps: int = 600) -> None:
    """A LeNet-5-like run (conv1 6 filters, conv2 16): loss, accuracy and the learning rate logged
    every step, gradient health every 10; with ``prune``, conv1 6 -> 4 and conv2 16 -> 12 at step 300,
    conv2 -> 10 at 450; at a learning rate of 1 or more its gradients explode and its loss goes NaN."""
    run = w.run_id
    wild = lr >= 1
    for start in range(1, steps + 1, 50):
        batch = range(start, start + 50)
        w.write(_logged(run, "loss", batch, lambda i: float("nan") if wild and i > 400 else 2.3 * np.exp(-i / 150) + 0.05))
        w.write(_logged(run, "accuracy", batch, lambda i: 0.1 if wild else 0.98 - 0.88 * np.exp(-i / 120)))
        w.write(_logged(run, "lr", batch, lambda i: lr))
        for step in range(start + 9, start + 50, 10):
            w.write(_health(run, step, "conv1", "exploding" if wild and step > 100 else "healthy"))
            w.write(_health(run, step, "conv2", "stalled" if wild and 200 < step <= 320 else "healthy"))
        if prune and start == 251:
            for layer, before, after in (("conv1", 6, 4), ("conv2", 16, 12)):
                w.write(Frame(run=run, step=300, kind="pruning", layer=layer, payload={
                    "removed": list(range(after, before)), "kept": list(range(after)), "before": before, "after": after,
                    "reason": "correlation >= 0.9 (pairs groups)", "params_before": 1000, "params_after": 800}))
        if prune and start == 401:
            w.write(Frame(run=run, step=450, kind="pruning", layer="conv2", payload={
                "removed": [10, 11], "kept": list(range(10)), "before": 12, "after": 10,
                "reason": "correlation >= 0.9 (pairs groups)", "params_before": 800, "params_after": 700}))
        w.flush()


def test_the_runs_page_says_how_each_run_trained_was_flagged_and_pruned(tmp_path: Path, page) -> None:
    # A dozen runs need not be opened one by one: each row says its last loss, accuracy and
    # learning rate, which layers its gradient checks flagged (and how often), and what pruning
    # left of its layers; at 1280 and at 800 pixels, without a sideways scroll.
    store = RunStore(tmp_path)
    with store.create_run("lenet5-pruned", model="lenet5") as w:
        _lenet(w, prune=True, lr=0.05)
    with store.create_run("lenet5-lr-too-high", model="lenet5") as w:
        _lenet(w, prune=False, lr=5.0)
    _run(store, "loss-only")
    handle = start_local_server(tmp_path)
    try:
        page.set_viewport_size({"width": 1280, "height": 720})
        page.goto(handle.url + "#/runs")
        page.wait_for_selector(".run-row[data-run='loss-only']", timeout=20_000)
        pruned, wild, plain = (page.evaluate(SUMMARY, run) for run in ("lenet5-pruned", "lenet5-lr-too-high", "loss-only"))

        assert pruned["values"].split() == ["loss", "0.09213", "accuracy", "0.9741", "lr", "0.05"], pruned
        assert pruned["valuesTitle"] == "loss = 0.092126 (at step 600)\naccuracy = 0.974071 (at step 600)\nlr = 0.05 (at step 600)"
        assert pruned["health"] == ["healthy"] and pruned["dots"] == [], pruned  # every check healthy: said quietly
        assert pruned["quiet"] == page.evaluate("getComputedStyle(document.querySelector('.page-head .muted')).color")
        assert pruned["filters"] == ["conv1 6 → 4", "conv2 16 → 10"], pruned
        assert pruned["filtersTitle"][1] == "conv2: 16 filters before pruning, 10 after; pruned 2 times (steps 300 to 450)"

        assert wild["values"].split() == ["loss", "NaN", "accuracy", "0.1", "lr", "5"], wild
        assert wild["health"] == ["conv1 exploding (50 of 60 checks)", "conv2 healthy now (flagged 12 of 60 checks)"], wild
        assert wild["dots"] == ["rgb(230, 25, 75)", "rgb(60, 180, 75)"], wild  # STATUS_COLORS.exploding, .healthy
        assert "conv2: healthy at step 600 (its last check); 12 of 60 checks flagged it" in wild["healthTitle"]
        assert wild["filters"] == [], wild

        assert plain["values"].split() == ["loss", "0.03333"] and plain["health"] == [] and plain["filters"] == [], plain

        wide = page.evaluate(LAYOUT)
        assert wide["scroll"] <= 0 and wide["table"] <= 0, wide
        assert wide["shown"] == ["run", "status", "model", "started", "steps", "frames", "last values", "health", "filters"], wide
        SCREENSHOT.parent.mkdir(exist_ok=True)
        page.screenshot(path=str(SCREENSHOT.with_name("runs-page-summary-1280.png")), full_page=True)
        page.set_viewport_size({"width": 800, "height": 720})
        narrow = page.evaluate(LAYOUT)
        assert narrow["scroll"] <= 0 and narrow["table"] <= 0, narrow
        assert narrow["shown"] == ["run", "status", "steps", "last values", "health", "filters"], narrow  # the summary first
        assert page.evaluate(SUMMARY, "lenet5-lr-too-high")["health"] == wild["health"]
        page.screenshot(path=str(SCREENSHOT.with_name("runs-page-summary-800.png")), full_page=True)
        assert not page.errors
    finally:
        handle.stop()


def test_a_training_runs_row_says_its_summary_as_it_trains(tmp_path: Path, page) -> None:
    store = RunStore(tmp_path)
    w = store.create_run("training", model="lenet5")
    w.write(_logged(w.run_id, "loss", range(1, 11), lambda i: 2.0))
    w.write(_health(w.run_id, 10, "conv1", "healthy"))
    w.flush()
    handle = start_local_server(tmp_path)
    try:
        page.goto(handle.url + "#/runs")
        page.wait_for_selector(".run-row[data-run='training'] td.health .muted", timeout=20_000)
        assert page.evaluate(SUMMARY, "training")["values"].split() == ["loss", "2"]
        w.write(_logged(w.run_id, "loss", range(11, 21), lambda i: 0.75))
        w.write(_health(w.run_id, 20, "conv1", "vanishing"))
        w.write(Frame(run=w.run_id, step=20, kind="pruning", layer="conv1", payload={
            "removed": [5], "kept": [0, 1, 2, 3, 4], "before": 6, "after": 5, "reason": "", "params_before": 1, "params_after": 1}))
        w.flush()
        page.wait_for_function(
            "document.querySelector(\".run-row[data-run='training'] td.health\")?.innerText.trim() === 'conv1 vanishing (1 of 2 checks)'",
            timeout=20_000)
        now = page.evaluate(SUMMARY, "training")
        assert now["values"].split() == ["loss", "0.75"] and now["filters"] == ["conv1 6 → 5"], now
        assert page.get_attribute(".run-row[data-run='training'] .chip", "class") == "chip live"
    finally:
        w.close()
        handle.stop()

"""What a person sees on the Runs page: which runs have gaps, and why."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

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
        assert clean["cells"] == lossy["cells"] == 7  # (the clean row's gap cell is there, empty)
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
        assert page.evaluate(MARKS, "clean") == {"lost": None, "deferred": None, "cells": 6, "gaps": None}


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

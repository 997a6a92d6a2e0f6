"""Playwright (Python) driving Debian's Chromium against a real convscope server."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync",
    # WebGL through the software rasteriser: the 3-D views draw without a GPU
    "--enable-unsafe-swiftshader", "--use-angle=swiftshader",
]
ARTIFACTS = Path(__file__).with_name("artifacts")


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: install Debian's chromium package (scripts/test does)")
    static = Path(__import__("convscope.server", fromlist=["x"]).__file__).with_name("static") / "index.html"
    if not static.is_file():
        pytest.fail("the web interface is not built: `pip install -e .` with npm on the PATH builds it (hatch_build.py)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, request):
    context = browser.new_context(viewport={"width": 1400, "height": 1800})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.errors = errors
    yield pg
    ARTIFACTS.mkdir(exist_ok=True)
    pg.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"

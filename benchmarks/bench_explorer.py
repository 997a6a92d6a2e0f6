"""The model explorer end to end: a real server, headless Chromium, CPU inference.

Measures, with medians over several rounds:
* from selecting an input in the explorer (a click in the input list) to every layer's outputs
  drawn and painted (timed inside the page: click, two animation frames after drawing) (layer table strips, 3-D block textures, the opened layer's full 2-D maps, the
  prediction chart), for LeNet-5, VGG-12 (32x32) and VGG-16 (224x224). "first" selects an input
  the session has never run (a forward pass with hooks on the server); "again" re-selects one
  (served from the capture cache). The server-side part alone (``ExplorerSession.layer_outputs``,
  uncached) is given beside it;
* the time to open a 50-layer residual network's structure view (the zoo's ResNet-50): from a
  click on the model to its blocks drawn (collapsed module hierarchy), and to expand it all.

Run: python benchmarks/bench_explorer.py [--rounds 5] [--models lenet5,vgg12,vgg16]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import machine, table  # noqa: E402

from convscope.explorer import ExplorerSession  # noqa: E402
from convscope.server import start_local_server  # noqa: E402

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run", "--enable-unsafe-swiftshader", "--use-angle=swiftshader"]
DRAWN = "n => Number((document.body.dataset.drawn || '0:0:0').split(':')[2]) > n"


def _med(xs: list[float]) -> float:
    return statistics.median(xs)


# click an input in the page and resolve once its layers are drawn and painted (two animation frames)
CLICK_TO_DRAWN = """(id) => new Promise((resolve) => {
  const probe = window.convscopeExplorer, n = probe.draws, t0 = performance.now();
  document.querySelector(`#input-list li[data-input='${id}']`).click();
  const wait = () => probe.draws > n
    ? requestAnimationFrame(() => requestAnimationFrame(() => resolve(performance.now() - t0)))
    : setTimeout(wait, 1);
  wait();
})"""


def _select(page, input_id: str) -> tuple[float, float]:
    """Click an input; return (seconds until drawn and painted, the page's own fetch-to-drawn seconds)."""
    ms = float(page.evaluate(CLICK_TO_DRAWN, input_id))
    return ms / 1000, float(page.evaluate("window.convscopeExplorer.lastDrawMs")) / 1000


def input_to_drawn(page, url: str, session: ExplorerSession, name: str, rounds: int) -> dict:
    model = session.add_model(name, pretrained=name != "vgg16" and name != "vgg12")
    inputs = session.default_inputs(model.id, count=rounds + 2)
    page.goto("about:blank")
    page.goto(url + f"#/explore?model={model.id}")
    page.wait_for_function(DRAWN, arg=0, timeout=600_000)
    _select(page, inputs[1].id)  # warm up: the page, the server's thread pool, torch's kernels
    first, first_page, again = [], [], []
    for item in inputs[2:]:
        wall, own = _select(page, item.id)
        first.append(wall)
        first_page.append(own)
        again.append(_select(page, inputs[0].id)[0])  # cached: inputs[0] ran when the page opened
    # the server's share: the same call, uncached, without HTTP or drawing
    server = []
    for item in inputs[2:]:
        session._forget(lambda key, i=item.id: key[1] == i)
        t0 = time.perf_counter()
        session.layer_outputs(model.id, item.id, max_size=32, max_maps=8)
        server.append(time.perf_counter() - t0)
    layers = len(session._hookable(model))
    session.remove_model(model.id)
    return {"model": name, "input": "x".join(map(str, model.loaded.input_spec.shape)), "layers": layers,
            "first": _med(first), "first_page": _med(first_page), "again": _med(again), "server": _med(server)}


def resnet_structure(page, url: str, session: ExplorerSession, rounds: int) -> dict:
    model = session.add_model("resnet50", pretrained=False)
    graph = model.loaded.graph
    opens, renders, expands, blocks = [], [], [], 0
    for _ in range(rounds):
        page.goto("about:blank")
        page.goto(url + "#/explore")
        page.wait_for_selector("#model-list li[data-model]")
        t0 = time.perf_counter()
        page.click(f"#model-list li[data-model='{model.id}']")
        page.wait_for_function("document.querySelectorAll('#layer-table tbody tr').length > 0 && "
                               "document.querySelector('#model-title').textContent.startsWith('resnet50')", timeout=120_000, polling=5)
        opens.append(time.perf_counter() - t0)
        renders.append(float(page.evaluate("window.convscopeExplorer.structureMs")) / 1000)
        blocks = int(page.evaluate("document.querySelectorAll('#layer-table tbody tr').length"))
        t0 = time.perf_counter()
        page.click("#expand-all")
        page.wait_for_function(f"document.querySelectorAll('#layer-table tbody tr').length === {len(graph.layers)}", timeout=120_000,
                               polling=5)
        expands.append(time.perf_counter() - t0)
    convs = sum(1 for layer in graph.layers if layer.category == "conv")
    session.remove_model(model.id)
    return {"layers": len(graph.layers), "convs": convs, "containers": len(graph.containers), "blocks": blocks,
            "open": _med(opens), "render": _med(renders), "expand": _med(expands)}


def main() -> None:
    from playwright.sync_api import sync_playwright

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--models", default="lenet5,vgg12,vgg16,resnet50")
    args = ap.parse_args()
    session = ExplorerSession()
    handle = start_local_server(tempfile.mkdtemp(), explorer=session)
    print(f"# model explorer ({machine()})")
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            r = resnet_structure(browser.new_page(viewport={"width": 1400, "height": 1000}), handle.url, session, args.rounds)
            print(f"\n## ResNet-50 structure view ({r['layers']} layers, {r['convs']} conv, {r['containers']} containers; "
                  f"median of {args.rounds})\n")
            print(table(["what", "ms"], [
                [f"click -> structure drawn ({r['blocks']} blocks, collapsed)", r["open"] * 1000],
                ["  of which 3-D + table render", r["render"] * 1000],
                [f"expand all -> {r['layers']} blocks drawn", r["expand"] * 1000],
            ]))
            rows = []
            for name in [m for m in args.models.split(",") if m]:
                r = input_to_drawn(page, handle.url, session, name, args.rounds)
                rows.append([r["model"], r["input"], r["layers"], r["first"] * 1000, r["first_page"] * 1000, r["again"] * 1000,
                             r["server"] * 1000])
                print(f"  {name}: {r}", file=sys.stderr, flush=True)  # progress
            print("\n## selecting an input -> every layer's outputs drawn (ms, median of "
                  f"{args.rounds} rounds; CPU)\n")
            print(table(["model", "input", "layers", "first: click to painted", "first: fetch to drawn", "again (cached)", "server only"], rows))
            browser.close()
    finally:
        handle.stop()


if __name__ == "__main__":
    main()

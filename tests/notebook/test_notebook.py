"""convscope in Jupyter: watch from a notebook cell, and the dashboard and explorer inline.

The notebook runs in a real IPython kernel (nbclient + ipykernel); what the cells display is
checked in the executed notebook, and the inline pages are fetched from inside the kernel
while its server is alive.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="the notebook tests need convscope[test] (nbformat, nbclient, ipykernel)")
nbclient = pytest.importorskip("nbclient", reason="the notebook tests need convscope[test] (nbformat, nbclient, ipykernel)")

CELLS = [
    # 1: a training loop with the monitor, as a user writes it in a cell
    """
import torch, convscope
from convscope import notebook
torch.manual_seed(0)
spec = convscope.load_model("lenet5-simplified", pretrained=False).input_spec
data = convscope.load_dataset("mnist-5k", spec=spec)
net = convscope.load_model("lenet5-simplified", pretrained=False).module.train()
opt = torch.optim.SGD(net.parameters(), lr=0.05)
mon = convscope.watch(net, optimizer=opt, logdir=LOGDIR, serve=True, every=5, budget=None)
for step in range(20):
    x, y = data.images[step * 16:(step + 1) * 16], data.labels[step * 16:(step + 1) * 16]
    loss = torch.nn.functional.cross_entropy(net(x), y)
    opt.zero_grad(); loss.backward(); opt.step()
    mon.log(loss=loss)
mon.close()
print("recorded", mon.stats.recorded_steps, "frames", mon.stats.frames)
""",
    # 2: the monitor itself displays as its dashboard
    "mon",
    # 3: the dashboard object of the notebook module
    "notebook.dashboard(mon)",
    # 4: the explorer with a model opened in it
    "view = notebook.explorer('lenet5', logdir=LOGDIR)\nview",
    # 5: both pages and the explorer's API answer while the kernel lives
    """
import json, urllib.request
def get(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.status, r.read()
status, body = get(mon.server_url.split('#')[0])
print('dashboard', status, b'<div id="app">' in body or b'id="app"' in body)
base = view.url.split('#')[0].split('?')[0].rstrip('/')
model = view.url.rsplit('model=', 1)[1]
status, body = get(f"{base}/api/explorer/models/{model}")
print('explorer', status, json.dumps(sorted(json.loads(body))[:3]))
runs = json.loads(get(f"{mon.server_url.split('#')[0].rstrip('/')}/api/runs")[1])
print('runs', json.dumps([r['name'] for r in (runs['runs'] if isinstance(runs, dict) else runs)]))
""",
]


def test_watch_from_a_notebook_and_the_pages_inline(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(f"LOGDIR = {str(tmp_path / 'runs')!r}")]
    nb.cells += [nbformat.v4.new_code_cell(src.strip()) for src in CELLS]
    client = nbclient.NotebookClient(nb, timeout=240, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    client.execute()

    def text(cell) -> str:
        return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")

    def html(cell) -> str:
        return "".join(o.get("data", {}).get("text/html", "") for o in cell.outputs if o.output_type in ("execute_result", "display_data"))

    recorded = re.search(r"recorded (\d+) frames (\d+)", text(nb.cells[1]))
    assert recorded and int(recorded.group(1)) == 4 and int(recorded.group(2)) > 20
    assert "live dashboard at http://127.0.0.1:" in text(nb.cells[1])
    for cell in (nb.cells[2], nb.cells[3]):
        frame = html(cell)
        assert frame.startswith("<iframe src=\"http://127.0.0.1:") and "#/runs/" in frame, frame
    explorer_frame = html(nb.cells[4])
    assert "#/explore?model=" in explorer_frame and 'title="convscope model explorer"' in explorer_frame
    out = text(nb.cells[5]).splitlines()
    assert out[0] == "dashboard 200 True"
    status, keys = out[1].split(" ", 2)[1:]
    assert status == "200" and json.loads(keys), out[1]
    assert json.loads(out[2].split(" ", 1)[1]), out[2]


def test_view_escapes_its_address_and_prints_plainly() -> None:
    from convscope.notebook import View

    v = View('http://127.0.0.1:1/?token=a"b<c>#/runs', height=300, title="x")
    frame = v._repr_html_()
    assert 'src="http://127.0.0.1:1/?token=a&quot;b&lt;c&gt;#/runs"' in frame and 'height="300"' in frame
    assert repr(v) == 'x: http://127.0.0.1:1/?token=a"b<c>#/runs'

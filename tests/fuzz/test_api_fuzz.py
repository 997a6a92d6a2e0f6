"""The HTTP API fuzzed from its own OpenAPI schema (schemathesis): no 5xx, and it still serves.

A real uvicorn server on loopback serves a real run (a short LeNet training, watched) and a
model explorer with a model and an input in it; schemathesis generates requests for every
operation of /openapi.json, valid and invalid, and every response must be below 500 and
conform to the schema's status codes. Afterwards the same server must still answer.
"""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Iterator

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="the API fuzz test needs convscope[test] (schemathesis)")
from hypothesis import HealthCheck, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from convscope.frames import Frame, encode  # noqa: E402


def _frame_bodies() -> st.SearchStrategy[bytes]:
    # what a live monitor sends (concatenated encoded frames), broken ones, and noise
    def frames(step: int, name: str, value: float) -> bytes:
        return encode(Frame(run="x", step=step, kind="scalar", payload={"name": name, "value": value}))

    good = st.builds(frames, st.integers(0, 2**31), st.text(min_size=1, max_size=20), st.floats(allow_nan=True))
    cut = st.builds(lambda b, n: b[: n % max(len(b), 1)], good, st.integers(0, 1000))
    return st.one_of(good, cut, st.binary(max_size=512), st.lists(good, max_size=4).map(b"".join))


schemathesis.openapi.media_type("application/x-convscope-frames", _frame_bodies())

pytestmark = pytest.mark.slow

_STATE: dict[str, object] = {}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    import torch

    import convscope
    from convscope.server import start_local_server

    logdir = tmp_path_factory.mktemp("fuzz") / "runs"
    spec = convscope.load_model("lenet5-simplified", pretrained=False).input_spec
    data = convscope.load_dataset("mnist-5k", spec=spec)
    net = convscope.load_model("lenet5-simplified", pretrained=False).module.train()
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    with convscope.watch(net, optimizer=opt, logdir=logdir, run="fuzzed", every=2, budget=None) as mon:
        for step in range(6):
            x, y = data.images[step * 8 : step * 8 + 8], data.labels[step * 8 : step * 8 + 8]
            loss = torch.nn.functional.cross_entropy(net(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            mon.log(loss=loss)
    handle = start_local_server(logdir, poll_seconds=0.05)
    session = handle.app.state.explorer
    model = session.add_model("lenet5-simplified", pretrained=False)
    sample = session.add_sample("mnist-5k", index=0)
    _STATE.update(handle=handle, model=model.id, input=sample.id, run=mon.run_id)
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def api_schema(served):
    return schemathesis.openapi.from_url(served.url.rstrip("/") + "/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
# CONVSCOPE_FUZZ_EXAMPLES=1000 for a longer campaign than CI's
@settings(max_examples=int(os.environ.get("CONVSCOPE_FUZZ_EXAMPLES", "25")), deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_request_makes_a_server_error(case) -> None:
    response = case.call(timeout=60)
    _STATE.setdefault("calls", []).append((case.operation.label, response.status_code))
    assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:300]}"


def test_the_server_still_serves_after_the_fuzzing(served) -> None:
    base = served.url.rstrip("/")
    with urllib.request.urlopen(f"{base}/api/runs", timeout=10) as r:
        runs = json.loads(r.read())
    assert _STATE["run"] in [r["id"] for r in runs]  # (the fuzzing ingested runs of its own)
    calls = _STATE.get("calls", [])
    operations = {label for label, _ in calls}
    assert len(operations) >= 20 and len(calls) >= 8 * int(os.environ.get("CONVSCOPE_FUZZ_EXAMPLES", "25")), (len(operations), len(calls))
    print(f"{len(calls)} fuzzed requests over {len(operations)} operations, statuses {sorted({c for _, c in calls})}")
    with urllib.request.urlopen(f"{base}/api/explorer/models/{_STATE['model']}/inputs/{_STATE['input']}/prediction", timeout=30) as r:
        prediction = json.loads(r.read())
    assert 0 <= prediction["predicted"] < 10
    with urllib.request.urlopen(base + "/", timeout=10) as r:
        assert r.status == 200 and b"convscope" in r.read()

"""``convscope open``: a local server with the model loaded, or the model sent to a running one."""

from __future__ import annotations

import io
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from convscope.cli import main
from convscope.errors import ServerError
from convscope.explorer import open_model
from convscope.server import start_local_server

pytestmark = pytest.mark.slow


def _png(path: Path) -> Path:
    buf = io.BytesIO()
    Image.fromarray(np.full((40, 30, 3), 200, np.uint8)).save(buf, "PNG")
    path.write_bytes(buf.getvalue())
    return path


def test_cli_open_starts_a_server_with_the_model_loaded(tmp_path: Path, model_files) -> None:
    cmd = [shutil.which("convscope") or "convscope", "open", str(model_files["onnx"]), str(_png(tmp_path / "grey.png")),
           "--no-browser", "--logdir", str(tmp_path / "runs")]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=dict(os.environ, COLUMNS="300"))
    try:
        lines = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if "#/explore?model=" in line or not line:
                break
        text = "".join(lines)
        page = re.search(r"(http://127\.0\.0\.1:\d+/)#/explore\?model=(m\d+)", text)
        assert page, text
        info = httpx.get(page.group(1) + "api/explorer", timeout=30).json()
        (model,) = info["models"]
        assert model["id"] == page.group(2) and model["format"] == "onnx" and model["origin"] == "file"
        assert [i["name"] for i in info["inputs"]] == ["grey.png"]
        assert httpx.get(page.group(1), timeout=30).status_code == 200  # the page itself is served
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def test_cli_open_sends_models_to_a_running_server(tmp_path: Path, model_files) -> None:
    handle = start_local_server(tmp_path / "runs")
    try:
        assert main(["open", str(model_files["keras"]), "--url", handle.url, "--no-browser"]) == 0
        assert main(["open", "lenet5-simplified", "--untrained", "--url", handle.url, "--no-browser"]) == 0
        info = httpx.get(handle.url + "api/explorer").json()
        assert [(m["format"], m["origin"]) for m in info["models"]] == [("keras", "upload"), ("zoo", "zoo")]
        assert len(info["inputs"]) == 8  # four bundled digits for each model
        opened = open_model("lenet5-simplified", pretrained=False, url=handle.url, default_inputs=1)
        assert opened.page == f"{handle.url}#/explore?model=m11" and opened.handle is None and len(opened.inputs) == 1
        assert main(["open", str(model_files["evil"]), "--url", handle.url, "--no-browser"]) == 2
        with pytest.raises(ServerError, match="403.*--trust") as refused:
            open_model(model_files["evil"], url=handle.url)
        assert refused.value.status_code == 403
        assert len(httpx.get(handle.url + "api/explorer").json()["models"]) == 3
    finally:
        handle.stop()


def test_open_model_in_process_opens_a_pt2_program(tmp_path: Path, model_files) -> None:
    opened = open_model(model_files["pt2"], logdir=tmp_path / "runs", default_inputs=2)
    try:
        assert opened.page.startswith("http://127.0.0.1:") and opened.page.endswith(f"#/explore?model={opened.model}")
        details = httpx.get(opened.page.split("#")[0] + f"api/explorer/models/{opened.model}").json()
        assert details["format"] == "export" and details["observable"][:2] == ["conv1", "relu1"]
        out = httpx.get(opened.page.split("#")[0] + f"api/explorer/models/{opened.model}/inputs/{opened.inputs[0]}/outputs").json()
        assert out["prediction"]["classes"] == 10
    finally:
        opened.handle.stop()

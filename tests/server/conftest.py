from __future__ import annotations

import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from convscope.server import ServerHandle, start_local_server

# Starlette's TestClient asks for the `httpx2` package and warns once, on import, when it runs
# on plain httpx (which it still fully supports). Import it here, quietly, before the tests do.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient` is deprecated")
    import starlette.testclient  # noqa: F401

# the frame samples of every kind are shared with the store tests
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "store"))


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerHandle]:
    """A real uvicorn server on a free loopback port, serving tmp_path/runs."""
    handle = start_local_server(tmp_path / "runs", poll_seconds=0.05)
    yield handle
    handle.stop()

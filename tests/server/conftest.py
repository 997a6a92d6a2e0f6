from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from convscope.server import ServerHandle, start_local_server


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerHandle]:
    """A real uvicorn server on a free loopback port, serving tmp_path/runs."""
    handle = start_local_server(tmp_path / "runs", poll_seconds=0.05)
    yield handle
    handle.stop()


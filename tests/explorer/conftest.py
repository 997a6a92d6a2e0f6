"""Shared pieces of the explorer tests."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from explorer_files import make_model_files  # noqa: E402

# Starlette's TestClient warns once, on import, when it runs on plain httpx (fully supported)
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient` is deprecated")
    import starlette.testclient  # noqa: F401


@pytest.fixture(scope="session")
def model_files(tmp_path_factory) -> dict[str, Path]:
    return make_model_files(tmp_path_factory.mktemp("explorer-models"))

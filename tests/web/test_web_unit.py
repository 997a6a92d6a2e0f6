"""The front end's own unit tests (Vitest, in Node), run from the Python suite so CI runs them too."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

WEB = Path(__file__).resolve().parents[2] / "web"


@pytest.mark.slow
def test_vitest_suite_passes() -> None:
    npx = shutil.which("npx")
    if npx is None:
        pytest.fail("npx (Node.js/npm) is missing: scripts/test installs it; the front end cannot be tested without it")
    if not (WEB / "node_modules").is_dir():
        subprocess.run([shutil.which("npm") or "npm", "ci", "--no-audit", "--no-fund"], cwd=WEB, check=True, capture_output=True)
    env = dict(os.environ, PYTHON=sys.executable, CI="1", NO_COLOR="1")
    result = subprocess.run([npx, "vitest", "run"], cwd=WEB, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "passed" in result.stdout


@pytest.mark.slow
def test_typescript_type_checks() -> None:
    npx = shutil.which("npx")
    if npx is None:
        pytest.fail("npx (Node.js/npm) is missing")
    result = subprocess.run([npx, "tsc", "--noEmit"], cwd=WEB, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

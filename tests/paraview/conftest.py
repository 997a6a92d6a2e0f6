from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "store"))

HERE = Path(__file__).resolve().parent


def pvpython_or_none() -> str | None:
    return shutil.which(os.environ.get("CONVSCOPE_PVPYTHON", "pvpython"))


@pytest.fixture(autouse=True)
def _needs_paraview(request: pytest.FixtureRequest) -> None:
    """Tests marked ``paraview`` are skipped, saying why, where ParaView is not installed."""
    if request.node.get_closest_marker("paraview") is not None and pvpython_or_none() is None:
        pytest.skip("ParaView's pvpython is not on PATH: install Debian's paraview python3-paraview xvfb "
                    "(scripts/test does) or set CONVSCOPE_PVPYTHON")


@pytest.fixture
def pvrun():
    """Run a script under ``pvpython --no-mpi`` with convscope importable; return the completed process."""
    from convscope.paraview import pvpython_env

    def run(*args: str, xvfb: bool = False, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [pvpython_or_none() or "pvpython", "--no-mpi", *args]
        if xvfb:
            if shutil.which("xvfb-run") is None:
                pytest.skip("rendering needs xvfb-run: apt-get install xvfb")
            cmd = ["xvfb-run", "-a", *cmd]
        proc = subprocess.run(cmd, env=pvpython_env(), capture_output=True, text=True, timeout=timeout)
        for attempt in range(4):
            # xvfb-run sometimes hands over the display before Xvfb accepts connections (on a loaded
            # machine three tries in a row were seen to fail): tried again after a growing pause
            if not (xvfb and "bad X server connection" in proc.stdout + proc.stderr):
                break
            time.sleep(0.5 * (attempt + 1))
            proc = subprocess.run(cmd, env=pvpython_env(), capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        return proc

    return run

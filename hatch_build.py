"""Build the web front end (``web/``) into the package when convscope is installed from source.

``pip install .`` and ``pip install -e .`` run this hook: with Node.js and npm on the PATH it
runs ``npm ci`` (first time) and ``npm run build``, which writes ``src/convscope/server/static``.
Without npm, or with ``CONVSCOPE_SKIP_WEB=1``, it says so and goes on: the server then shows
a page explaining that the interface was not built. Built files are never committed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class WebBuildHook(BuildHookInterface):
    PLUGIN_NAME = "convscope-web"

    def initialize(self, version: str, build_data: dict) -> None:
        root = Path(self.root)
        web = root / "web"
        static = root / "src" / "convscope" / "server" / "static"
        if not (web / "package.json").is_file():
            return  # building from an sdist that already carries the built files
        if os.environ.get("CONVSCOPE_SKIP_WEB") == "1":
            self._say("CONVSCOPE_SKIP_WEB=1: the web interface is not built")
            return
        npm = shutil.which("npm")
        if npm is None:
            self._say("npm not found: the web interface is not built (install Node.js >= 20 and reinstall)")
            return
        if not (web / "node_modules").is_dir():
            self._run([npm, "ci", "--no-audit", "--no-fund"], web)
        self._run([npm, "run", "build"], web)
        if not (static / "index.html").is_file():
            raise RuntimeError("the web build finished without writing src/convscope/server/static/index.html")

    def _run(self, cmd: list[str], cwd: Path) -> None:
        self._say(" ".join(Path(cmd[0]).name if i == 0 else c for i, c in enumerate(cmd)))
        result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
        if result.returncode != 0:
            sys.stderr.write(result.stdout[-4000:] + result.stderr[-4000:])
            raise RuntimeError(f"building the web interface failed: {' '.join(cmd[1:])} exited with {result.returncode}")

    def _say(self, text: str) -> None:
        sys.stderr.write(f"convscope build: {text}\n")

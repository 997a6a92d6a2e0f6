"""Start ParaView's Python on the shipped scripts, in a separate process (never ParaView in ours)."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from convscope.errors import MissingDependencyError, NotFoundError

__all__ = ["bridge_command", "find_paraview", "find_pvpython", "open_exports_command", "open_exports_gui_command", "pvpython_env", "script_path"]

_PACKAGE = Path(__file__).resolve().parent
_SCRIPTS = {
    "bridge": _PACKAGE / "bridge.py",
    "pipeline": _PACKAGE / "pipelines" / "convscope_views.py",
    "open_exports": _PACKAGE / "open_exports.py",
    "looks": _PACKAGE / "looks.py",
}
_LINK_DIR: Path | None = None


def script_path(name: str) -> Path:
    """The shipped script ``name``: ``bridge``, ``pipeline``, ``open_exports`` or ``looks``."""
    try:
        return _SCRIPTS[name]
    except KeyError:
        raise NotFoundError(f"no shipped ParaView script {name!r}; choose one of {', '.join(_SCRIPTS)}") from None


def find_pvpython(path: str | os.PathLike[str] | None = None, *, program: str = "pvpython") -> str:
    """The ``pvpython`` (or ``paraview``) to run: ``path``, ``$CONVSCOPE_PVPYTHON`` or the one on PATH."""
    candidate = os.fspath(path) if path is not None else os.environ.get("CONVSCOPE_PVPYTHON") if program == "pvpython" else None
    if candidate is not None:
        found = shutil.which(candidate)
        if found is None:
            raise MissingDependencyError(f"{candidate} is not an executable {program}; pass the path of ParaView's {program}")
        return found
    found = shutil.which(program)
    if found is None:
        raise MissingDependencyError(
            f"ParaView's {program} was not found on PATH; install ParaView (Debian/Ubuntu: "
            "apt-get install paraview python3-paraview; or a binary from paraview.org) and pass --pvpython PATH"
        )
    return found


def find_paraview(pvpython: str | os.PathLike[str] | None = None) -> str:
    """ParaView's GUI: the ``paraview`` beside ``pvpython`` (``--pvpython`` or ``$CONVSCOPE_PVPYTHON``)
    when one is given (never another ParaView's), else the one on PATH."""
    given = os.fspath(pvpython) if pvpython is not None else os.environ.get("CONVSCOPE_PVPYTHON")
    if given:
        found = shutil.which(given)
        if found is None:
            raise MissingDependencyError(f"{given} is not an executable pvpython; pass the path of ParaView's pvpython")
        beside = Path(found).with_name("paraview")
        if not os.access(beside, os.X_OK):
            raise MissingDependencyError(
                f"there is no ParaView GUI (paraview) beside {found}; pass --screenshot PNG for a picture made with that "
                "pvpython, or the pvpython of a ParaView that has its GUI"
            )
        return str(beside)
    found = shutil.which("paraview")
    if found is None:
        raise MissingDependencyError(
            "ParaView's GUI (paraview) was not found on PATH; install ParaView (Debian/Ubuntu: apt-get install "
            "paraview python3-paraview), or pass --screenshot PNG for a picture made with pvpython alone"
        )
    return found


def pvpython_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """An environment in which ParaView's Python imports this convscope and nothing else of ours.

    ``PYTHONPATH`` gets a folder that holds only a link to this ``convscope`` package, so the
    bridge imports ``convscope.frames`` and ``convscope.export`` (numpy only) without picking
    up this Python's other packages (numpy builds of another Python would break ParaView's).
    """
    global _LINK_DIR
    if _LINK_DIR is None or not (_LINK_DIR / "convscope").exists():
        _LINK_DIR = Path(tempfile.mkdtemp(prefix="convscope-pvpath-"))
        (_LINK_DIR / "convscope").symlink_to(_PACKAGE.parent, target_is_directory=True)
        atexit.register(shutil.rmtree, _LINK_DIR, True)
    env = dict(os.environ if base is None else base)
    env["PYTHONPATH"] = os.pathsep.join([str(_LINK_DIR), *filter(None, [env.get("PYTHONPATH", "")])])
    env.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    return env


def bridge_command(
    *,
    run: str,
    url: str = "http://127.0.0.1:8765",
    live: int | None = None,
    extracts: str | os.PathLike[str] | None = None,
    png: bool = True,
    layer: str | None = None,
    token: str | None = None,
    poll: float = 0.5,
    timing: str | os.PathLike[str] | None = None,
    max_steps: int | None = None,
    pvpython: str | os.PathLike[str] | None = None,
) -> list[str]:
    """The command line that runs the Catalyst bridge under ``pvpython --no-mpi``.

    ``--no-mpi`` always: otherwise OpenMPI starts helper daemons that listen on every interface.
    """
    exe = os.fspath(pvpython) if pvpython is not None else find_pvpython()
    cmd = [exe, "--no-mpi", str(script_path("bridge")), "--run", run, "--url", url, "--poll", str(poll)]
    if live is not None:
        cmd += ["--live", str(int(live))]
    if extracts is not None:
        cmd += ["--extracts", os.fspath(extracts)]
    if not png:
        cmd += ["--no-png"]
    if layer is not None:
        cmd += ["--layer", layer]
    if token is not None:
        cmd += ["--token", token]
    if timing is not None:
        cmd += ["--timing", os.fspath(timing)]
    if max_steps is not None:
        cmd += ["--max-steps", str(int(max_steps))]
    return cmd


def open_exports_command(
    folder: str | os.PathLike[str],
    *,
    layer: str | None = None,
    screenshot: str | os.PathLike[str] | None = None,
    size: Sequence[int] = (1200, 800),
    pvpython: str | os.PathLike[str] | None = None,
) -> list[str]:
    """The command line that opens exported VTK files with convscope's looks (and saves a picture)."""
    exe = os.fspath(pvpython) if pvpython is not None else find_pvpython()
    cmd = [exe, "--no-mpi", str(script_path("open_exports")), os.fspath(folder), "--size", f"{size[0]}x{size[1]}"]
    if layer is not None:
        cmd += ["--layer", layer]
    if screenshot is not None:
        cmd += ["--screenshot", os.fspath(screenshot)]
    return cmd


def open_exports_gui_command(
    folder: str | os.PathLike[str],
    *,
    layer: str | None = None,
    paraview: str | os.PathLike[str] | None = None,
) -> tuple[list[str], dict[str, str]]:
    """The command line that opens exported VTK files in the ParaView GUI with convscope's looks,
    and what its environment needs besides :func:`pvpython_env`.

    The GUI runs ``open_exports.py`` as its start-up script, which takes no arguments: the
    folder and layer go by ``CONVSCOPE_EXPORTS`` and ``CONVSCOPE_LAYER``. (pvpython without
    ``--screenshot`` drew the views and ended at once: nothing stayed open to look at.)
    """
    exe = os.fspath(paraview) if paraview is not None else find_paraview()
    cmd = [exe, "--no-mpi", f"--script={script_path('open_exports')}"]
    env = {"CONVSCOPE_EXPORTS": os.path.abspath(os.fspath(folder)), "CONVSCOPE_LAYER": layer or ""}
    return cmd, env

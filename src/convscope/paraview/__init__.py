"""The ParaView side of convscope: a Catalyst bridge process, pipeline scripts and looks.

Nothing here imports ParaView in the calling process. ``convscope paraview`` starts
``pvpython --no-mpi bridge.py`` (:func:`bridge_command`), a separate process under ParaView's
own Python that follows a run on a convscope server and feeds Catalyst: Catalyst Live to a
``paraview --live=PORT`` client and/or data and PNG extracts. Shipped scripts (run them with
ParaView's Python, never import them in training code):

* ``bridge.py``: the bridge itself;
* ``pipelines/convscope_views.py``: the Catalyst pipeline (``# script-version: 2``);
* ``open_exports.py``: opens ``convscope export --format vtk`` files in ParaView with the same looks;
* ``looks.py``: the colour maps and layouts both use (blue-white-red for signed values).

Example:
    >>> cmd = bridge_command(run="my-run", url="http://127.0.0.1:8765", live=22222, pvpython="pvpython")
    >>> cmd[:2], "--live" in cmd
    (['pvpython', '--no-mpi'], True)
"""

from __future__ import annotations

from convscope.paraview._launch import (
    bridge_command,
    find_paraview,
    find_pvpython,
    open_exports_command,
    open_exports_gui_command,
    pvpython_env,
    script_path,
)

__all__ = [
    "bridge_command",
    "find_paraview",
    "find_pvpython",
    "open_exports_command",
    "open_exports_gui_command",
    "pvpython_env",
    "script_path",
]

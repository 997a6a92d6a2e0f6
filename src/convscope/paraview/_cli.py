"""``convscope paraview``: watch a run in ParaView through the Catalyst bridge, or open exports."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from convscope.errors import DataError, MissingDependencyError, NotFoundError

__all__ = ["add_paraview_parser", "run_paraview"]

#: seconds ParaView gets to stop by itself after a Ctrl-C before it is killed
STOP_SECONDS = 10.0

EXAMPLES = """\
examples:
  convscope serve --logdir runs &                       # the server the bridge follows
  paraview --live=22222 &                               # a ParaView client waiting for Catalyst Live
  convscope paraview --run my-run --live 22222          # stream the run's views into it
  convscope paraview --run my-run --extracts pv-out     # write .pvtp/.pvti extracts and PNGs instead
  convscope paraview --open exports/vtk                 # exported files in the ParaView GUI, same looks
  xvfb-run -a convscope paraview --open exports/vtk --screenshot views.png   # a picture of them, no display

The bridge runs as `pvpython --no-mpi` (ParaView's own Python), never in this process.
WARNING: VTK's Catalyst Live listener (paraview --live=PORT) binds EVERY network interface, not
only 127.0.0.1: anyone who can reach the port can connect. Use it on a trusted network or behind
a firewall (see docs/paraview.md).
"""


def add_paraview_parser(sub: Any) -> None:
    """Add the ``paraview`` command to the CLI's sub-parsers."""
    p = sub.add_parser(
        "paraview",
        help="watch a run in ParaView (Catalyst Live / extracts), or open exported VTK files",
        description="Start the Catalyst bridge under ParaView's own Python: it follows a run on a convscope "
        "server and feeds ParaView Catalyst (live to `paraview --live=PORT`, and/or data and PNG extracts). "
        "With --open, open `convscope export --format vtk` files with the same looks instead.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from convscope.cli import port_number

    p.add_argument("--run", help="the run to follow (its id on the server)")
    p.add_argument("--url", default="http://127.0.0.1:8765", help="the convscope server (default http://127.0.0.1:8765)")
    p.add_argument("--token", default=None, help="the server's token, if it requires one")
    p.add_argument("--live", type=port_number(free=False), metavar="PORT", help="send to a `paraview --live=PORT` client on this machine")
    p.add_argument("--extracts", metavar="DIR", help="write data extracts (.pvtp/.pvti) and PNGs here")
    p.add_argument("--no-png", action="store_true", help="with --extracts: data only, no rendering (no display needed)")
    p.add_argument("--layer", help="the layer to show (default: the first one with a weight grid)")
    p.add_argument("--poll", type=float, default=0.5, help="seconds between polls of the server (default 0.5)")
    p.add_argument("--timing", metavar="FILE", help="write the bridge's per-step costs here (JSON lines)")
    p.add_argument("--pvpython", metavar="PATH", help="ParaView's pvpython (default: the one on PATH; --open uses the paraview beside it)")
    p.add_argument("--open", metavar="DIR", help="open exported VTK files (a `convscope export --format vtk` folder) in the ParaView GUI")
    p.add_argument("--screenshot", metavar="PNG", help="with --open: save a picture of the views with pvpython instead, and exit")
    p.set_defaults(handler=run_paraview)


def run_paraview(args: argparse.Namespace) -> int:
    from rich.console import Console

    from convscope.paraview._launch import (
        bridge_command,
        find_paraview,
        find_pvpython,
        open_exports_command,
        open_exports_gui_command,
        pvpython_env,
    )

    console = Console(stderr=True)
    env = pvpython_env()
    if args.open is not None:
        layer = _check_exports(Path(args.open), args.layer, args.screenshot)
        if args.screenshot is not None:
            cmd = open_exports_command(args.open, layer=layer, screenshot=args.screenshot, pvpython=find_pvpython(args.pvpython))
        else:
            if _no_display():
                raise MissingDependencyError(
                    "ParaView's GUI draws in a window and this machine has no display (DISPLAY is not set); for a "
                    "picture instead: xvfb-run -a convscope paraview --open DIR --screenshot views.png"
                )
            cmd, more = open_exports_gui_command(args.open, layer=layer, paraview=find_paraview(args.pvpython))
            env.update(more)
    else:
        if args.screenshot is not None:
            raise DataError("--screenshot goes with --open DIR (exported files); with --run, --extracts DIR writes a PNG a step")
        if not args.run:
            raise DataError("convscope paraview needs --run RUN (the run to follow) or --open DIR (exported files)")
        if args.live is None and args.extracts is None:
            raise DataError("say where the views go: --live PORT (a `paraview --live=PORT` client) and/or --extracts DIR")
        exe = find_pvpython(args.pvpython)
        if args.live is not None:
            console.print(
                f"[yellow]note:[/] the ParaView client listening on port {args.live} accepts connections on every "
                "network interface; use it on a trusted network only.",
                highlight=False,
            )
        cmd = bridge_command(
            run=args.run,
            url=args.url,
            live=args.live,
            extracts=args.extracts,
            png=not args.no_png,
            layer=args.layer,
            token=args.token,
            poll=args.poll,
            timing=args.timing,
            pvpython=exe,
        )
    console.print("running: " + " ".join(cmd), highlight=False)
    try:
        code = _call(cmd, env)
    except OSError as exc:  # (found, but it does not run: not a program for this machine)
        raise MissingDependencyError(f"{cmd[0]} could not be started ({exc.strerror or exc}); pass ParaView's pvpython with --pvpython PATH") from None
    if code == 130:
        return code
    draws = args.open is not None or (args.extracts is not None and not args.no_png)
    if code != 0 and draws and _no_display():
        # (ParaView's X render window crashes without one, and says so only in a stack trace)
        also = "" if args.open is not None else "; or pass --no-png for data extracts only"
        raise MissingDependencyError(
            f"ParaView stopped (exit status {code}): it draws in a window and this machine has no display (DISPLAY is "
            f"not set); run it under a virtual one: xvfb-run -a convscope paraview ...{also}"
        )
    return code


def _call(cmd: list[str], env: dict[str, str]) -> int:
    """Run ParaView and wait for it; on Ctrl-C, give it a few seconds to stop by itself.

    (``subprocess.call`` killed it at once: the bridge, which got the Ctrl-C too, had no time
    to close its Catalyst pipeline and say what it had shown.)
    """
    proc = subprocess.Popen(cmd, env=env)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        try:
            proc.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        return 130


def _no_display() -> bool:
    """Whether ParaView on this machine would have no X display to draw in."""
    return sys.platform.startswith("linux") and not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY")


def _check_exports(folder: Path, layer: str | None, screenshot: str | None) -> str | None:
    """Say what is wrong with ``--open DIR [--layer L] [--screenshot PNG]`` before ParaView starts
    (seconds); return the layer as the exported file names spell it."""
    from convscope.export._files import layer_token

    hint = "pass the vtk folder that `convscope export RUN --format vtk --out DIR` wrote (DIR/vtk)"
    if not folder.is_dir():
        raise DataError(f"{folder} {'is not a folder' if folder.exists() else 'does not exist'}; {hint}")
    layers = sorted(p.name[len("weights-") : -len(".pvd")] for p in folder.glob("weights-*.pvd"))
    if not layers:
        inner = folder / "vtk"
        mean = f"; did you mean {inner}?" if any(inner.glob("weights-*.pvd")) else f"; {hint}"
        raise DataError(f"no weight grids (weights-*.pvd) in {folder}{mean}")
    name = None if layer is None else layer_token(layer)
    if name is not None and name not in layers:
        raise NotFoundError(f"layer {layer!r} has no weight grid in {folder}; it has {', '.join(layers)} — pass one of these to --layer")
    if screenshot is not None and not Path(screenshot).resolve().parent.is_dir():
        raise DataError(f"cannot save the screenshot {screenshot}: its folder does not exist")
    return name

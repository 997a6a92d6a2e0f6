"""``convscope paraview``: watch a run in ParaView through the Catalyst bridge, or open exports."""

from __future__ import annotations

import argparse
import subprocess
from typing import Any

from convscope.errors import DataError

__all__ = ["add_paraview_parser", "run_paraview"]

EXAMPLES = """\
examples:
  convscope serve --logdir runs &                       # the server the bridge follows
  paraview --live=22222 &                               # a ParaView client waiting for Catalyst Live
  convscope paraview --run my-run --live 22222          # stream the run's views into it
  convscope paraview --run my-run --extracts pv-out     # write .pvtp/.pvti extracts and PNGs instead
  convscope paraview --open exports/vtk --screenshot views.png   # exported files, same looks

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
    p.add_argument("--run", help="the run to follow (its id on the server)")
    p.add_argument("--url", default="http://127.0.0.1:8765", help="the convscope server (default http://127.0.0.1:8765)")
    p.add_argument("--token", default=None, help="the server's token, if it requires one")
    p.add_argument("--live", type=int, metavar="PORT", help="send to a `paraview --live=PORT` client on this machine")
    p.add_argument("--extracts", metavar="DIR", help="write data extracts (.pvtp/.pvti) and PNGs here")
    p.add_argument("--no-png", action="store_true", help="with --extracts: data only, no rendering (no display needed)")
    p.add_argument("--layer", help="the layer to show (default: the first one with a weight grid)")
    p.add_argument("--poll", type=float, default=0.5, help="seconds between polls of the server (default 0.5)")
    p.add_argument("--timing", metavar="FILE", help="write the bridge's per-step costs here (JSON lines)")
    p.add_argument("--pvpython", metavar="PATH", help="ParaView's pvpython (default: the one on PATH)")
    p.add_argument("--open", metavar="DIR", help="open exported VTK files (a `convscope export --format vtk` folder)")
    p.add_argument("--screenshot", metavar="PNG", help="with --open: save a picture of the views and exit")
    p.set_defaults(handler=run_paraview)


def run_paraview(args: argparse.Namespace) -> int:
    from rich.console import Console

    from convscope.paraview._launch import bridge_command, open_exports_command, pvpython_env

    console = Console(stderr=True)
    if args.open is not None:
        cmd = open_exports_command(args.open, layer=args.layer, screenshot=args.screenshot, pvpython=args.pvpython)
    else:
        if not args.run:
            raise DataError("convscope paraview needs --run RUN (the run to follow) or --open DIR (exported files)")
        if args.live is None and args.extracts is None:
            raise DataError("say where the views go: --live PORT (a `paraview --live=PORT` client) and/or --extracts DIR")
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
            pvpython=args.pvpython,
        )
    console.print("running: " + " ".join(cmd), highlight=False)
    try:
        return subprocess.call(cmd, env=pvpython_env())
    except KeyboardInterrupt:
        return 130

"""``convscope export``: a stored run to CSV, VTK, TensorBoard files and figures."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from convscope.errors import DataError, NotFoundError

__all__ = ["add_export_parser", "run_export"]

EXAMPLES = """\
examples:
  convscope export my-run --out exports                       CSV and VTK of every view
  convscope export my-run --format all --out exports          also TensorBoard files and figures
  convscope export my-run --format vtk --layer conv1 --steps 100:500 --out vtk
  convscope export my-run --format tensorboard --out x --tensorboard-dir tb && tensorboard --logdir tb
  convscope export runs/my-run.convscope.db --format figures --kind weight_grid --out figs

Each format goes into its own folder under --out (csv/, vtk/, tensorboard/, figures/).
Open the VTK files in ParaView with convscope's looks: convscope paraview --open exports/vtk
(or open a .pvd in ParaView: each view's steps play as time).
"""


def add_export_parser(sub: Any) -> None:
    """Add the ``export`` command to the CLI's sub-parsers."""
    p = sub.add_parser(
        "export",
        help="export a run to CSV, VTK (ParaView), TensorBoard files or figures",
        description="Write a stored run's frames as files: CSV tables (pandas, Matlab, ParaView), VTK XML "
        "(.vtp/.vti with a .pvd per view that ParaView plays as time), TensorBoard event files, and PNG/SVG figures.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run", help="the run's id in --logdir (`convscope runs` lists them), or the path of its .convscope.db file")
    p.add_argument(
        "--format",
        dest="formats",
        action="append",
        choices=["csv", "vtk", "tensorboard", "figures", "all"],
        help="what to write (repeatable; default csv and vtk)",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="folder that receives one sub-folder per format")
    p.add_argument("--logdir", default="convscope-runs", metavar="DIR", help="the runs' directory (default ./convscope-runs)")
    p.add_argument("--tensorboard-dir", metavar="DIR", help="write TensorBoard files here instead of OUT/tensorboard")
    p.add_argument("--kind", action="append", metavar="KIND", help="only frames of this kind (repeatable), e.g. weight_grid")
    p.add_argument("--layer", action="append", metavar="LAYER", help="only this layer (repeatable; run-level scalars are kept)")
    p.add_argument("--steps", metavar="A:B", help="only steps A to B (inclusive; A: or :B leave one end open)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=run_export)


def parse_steps(text: str | None) -> tuple[int | None, int | None]:
    """``"A:B"`` -> ``(A, B)``; either end may be empty."""
    if text is None:
        return None, None
    try:
        a, b = text.split(":")
        start = int(a) if a.strip() else None
        end = int(b) if b.strip() else None
    except ValueError:
        raise DataError(f"--steps must look like 100:500, 100: or :500; got {text!r}") from None
    if start is not None and end is not None and start > end:
        raise DataError(f"--steps {text}: the first step is after the last")
    return start, end


def _locate(run: str, logdir: str) -> tuple[Path, str]:
    from convscope.store import RUN_SUFFIX

    path = Path(run)
    if run.endswith(RUN_SUFFIX):
        if not path.is_file():
            raise NotFoundError(f"run file {run} does not exist; pass the path of a run's {RUN_SUFFIX} file, or its id "
                                f"with --logdir (`convscope runs --logdir DIR` lists them)")
        return path.parent, path.name[: -len(RUN_SUFFIX)]
    is_path = "/" in run or os.sep in run  # (run ids hold no separator)
    if is_path and path.is_dir():
        raise DataError(f"{run} is a folder; pass a run's id with --logdir {run} (`convscope runs --logdir {run}` lists "
                        f"them), or the path of its {RUN_SUFFIX} file")
    if is_path:
        raise DataError(f"{run} is neither a run's id nor a run file ({RUN_SUFFIX}); pass a run's id with --logdir "
                        f"(`convscope runs --logdir DIR` lists them), or the path of its {RUN_SUFFIX} file")
    if not Path(logdir).is_dir():
        raise NotFoundError(f"no run {run!r}: the log directory {logdir} does not exist here; pass --logdir the folder "
                            f"the run was written to (watch(logdir=...); default ./convscope-runs), or the path of its {RUN_SUFFIX} file")
    return Path(logdir), run


def run_export(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from convscope.export._run import export_run

    console = Console(stderr=True)
    logdir, run = _locate(args.run, args.logdir)
    start, end = parse_steps(args.steps)
    formats = args.formats or ["csv", "vtk"]
    # the bar starts once the run is read and the selection checked, so an error comes alone
    bar = Progress(
        TextColumn(f"exporting {run}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("frames"),
        TimeElapsedColumn(),
        console=console,
        disable=args.quiet,
        transient=False,
    )
    task = None

    def progress(done: int, total: int) -> None:
        nonlocal task
        if task is None:
            bar.start()
            task = bar.add_task("export", total=total)
        bar.update(task, completed=done, total=total)

    try:
        result = export_run(
            logdir,
            run,
            out=args.out,
            formats=formats,
            kinds=args.kind,
            layers=args.layer,
            start=start,
            end=end,
            tensorboard_logdir=args.tensorboard_dir,
            progress=progress,
        )
    finally:
        if task is not None:
            bar.stop()
    out = Console()
    out.print(f"exported {result.frames} frames of run [bold]{result.run}[/]:", highlight=False)
    if result.partial:
        upto = "" if result.last_step is None else f" (up to step {result.last_step})"
        out.print(f"  run {result.run} is still being written: this is a partial snapshot of what it had stored{upto}; "
                  "export again once it has finished for the rest", highlight=False, soft_wrap=True)
    for fmt, folder in result.folders.items():
        out.print(f"  {fmt:12} {folder}", highlight=False)
    return 0

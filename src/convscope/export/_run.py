"""Export a finished (or live) run of the store to files: the engine of ``convscope export``."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from convscope.errors import DataError, LayerNotFoundError
from convscope.export._select import choice
from convscope.frames import decode, expand_scalars
from convscope.sinks._base import Sink
from convscope.store import RunStore

__all__ = ["FORMATS", "ExportResult", "export_run", "make_writer"]

#: what ``export_run`` can write, each into its own folder under ``out``
FORMATS = ("csv", "vtk", "tensorboard", "figures")
#: about the most bytes of stored frames an export holds at once (it reads the run a batch at a time)
READ_BYTES = 8 << 20


@dataclass
class ExportResult:
    """What an export wrote: frames read, and the folder of each format.

    ``partial`` is true when the run was still being written (live): the export holds the
    frames stored when it began, up to step ``last_step``, and the run goes on past them.
    """

    run: str
    frames: int
    folders: dict[str, Path] = field(default_factory=dict)
    partial: bool = False
    last_step: int | None = None


def make_writer(fmt: str, folder: str | os.PathLike[str], *, kinds: str | Iterable[str] | None = None, layers: str | Iterable[str] | None = None,
                run: str | None = None, export: bool = False) -> Sink:
    """The writer (a :class:`~convscope.sinks.Sink`) of one format, writing into ``folder``.

    With ``export`` (the writers of :func:`export_run`, not live sinks), an export replaces
    what an earlier one of the same run wrote into ``folder``: the VTK writer the step files of
    each series it writes (and it rewrites each ``.pvd`` every few seconds and when it closes,
    see :class:`~convscope.export.VtkWriter`), the TensorBoard writer the event files of
    ``run`` of each layer and kind it writes (see :class:`~convscope.export.TensorBoardWriter`).
    """
    if fmt == "csv":
        from convscope.export._csv import CsvWriter

        return CsvWriter(folder, kinds=kinds, layers=layers)
    if fmt == "vtk":
        from convscope.export._vtk import VtkWriter

        return VtkWriter(folder, kinds=kinds, layers=layers, export=export)
    if fmt == "tensorboard":
        from convscope.export._tensorboard import TensorBoardWriter

        return TensorBoardWriter(folder, kinds=kinds, layers=layers, run=run, export=export)
    if fmt == "figures":
        from convscope.export._figures import FigureWriter

        return FigureWriter(folder, kinds=kinds, layers=layers)
    raise DataError(f"unknown export format {fmt!r}; choose from {', '.join(FORMATS)} or 'all'")


def export_run(
    logdir: str | os.PathLike[str],
    run: str,
    *,
    out: str | os.PathLike[str],
    formats: str | Sequence[str] = ("csv", "vtk"),
    kinds: str | Iterable[str] | None = None,
    layers: str | Iterable[str] | None = None,
    start: int | None = None,
    end: int | None = None,
    tensorboard_logdir: str | os.PathLike[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ExportResult:
    """Write a stored run's frames as files: ``out/csv``, ``out/vtk``, ``out/tensorboard``, ``out/figures``.

    Args:
        logdir, run: the run store and the run's id.
        out: the folder that receives one sub-folder per format.
        formats: any of :data:`FORMATS`, or ``["all"]``.
        kinds, layers: only these frame kinds / layers (default all; run-level values pass
            any layer filter).
        start, end: only frames of steps in ``[start, end]``.
        tensorboard_logdir: write the TensorBoard files here instead of ``out/tensorboard``.
        progress: called with ``(frames written, frames in all)`` as it goes, first with
            ``(0, frames in all)`` once the selection is counted and checked.

    The frames are read from the store a batch at a time and written as they come, so memory
    stays bounded whatever the run's length. A run still being written is exported as it was
    when the export began (``ExportResult.partial``).

    Raises:
        DataError: an unknown format or kind, a selection that holds no frame, or a folder
            that cannot be written (``out`` is a file, say).
        LayerNotFoundError: a layer the run has no frames of.

    Example:
        >>> import tempfile
        >>> from convscope.frames import Frame
        >>> from convscope.store import RunStore
        >>> logdir = tempfile.mkdtemp()
        >>> with RunStore(logdir).create_run("r") as w:
        ...     w.write(Frame(run="r", step=1, kind="scalar", payload={"name": "loss", "value": 0.5}))
        >>> export_run(logdir, "r", out=tempfile.mkdtemp(), formats=["csv"]).frames
        1
    """
    formats = [formats] if isinstance(formats, str) else list(formats)  # (one format alone)
    chosen = list(FORMATS) if "all" in formats else list(dict.fromkeys(formats))
    for fmt in chosen:
        if fmt not in FORMATS:
            raise DataError(f"unknown export format {fmt!r}; choose from {', '.join(FORMATS)} or 'all'")
    kind_set, layer_set = choice(kinds, layers)  # (checked before the run is read)
    kinds = None if kind_set is None else sorted(kind_set)
    layers = None if layer_set is None else sorted(layer_set)
    root = Path(out)
    folders = {fmt: (Path(tensorboard_logdir) if fmt == "tensorboard" and tensorboard_logdir else root / fmt) for fmt in chosen}
    with RunStore(logdir).open_run(run) as reader:
        if layers is not None:
            _check_layers(layers, reader.layers(), run)
        live = reader.status() == "live"
        upto = reader.last_id()  # a live run's frames stored from now on are left out: one snapshot
        # logged values come in batches (``scalars`` frames, one per name and second), which
        # are written as the ``scalar`` frames they hold; a batch is stored at its last step,
        # so one past ``end`` may hold values up to ``end`` (the others are left out below)
        query = kinds if kinds is None or "scalar" not in kinds or "scalars" in kinds else [*kinds, "scalars"]
        # run-level frames (scalars) have no layer; a layer filter keeps them
        in_layers = None if layers is None else [*layers, ""]
        parts: list[dict[str, Any]] = [{"kind": query, "layer": in_layers, "start": start, "end": end}]
        if end is not None and (query is None or "scalars" in query):
            parts.append({"kind": "scalars", "layer": in_layers, "start": end + 1})
        total = sum(reader.count(**part, upto_id=upto) for part in parts)
        if not total:
            raise DataError(_nothing_selected(reader.info(), run, kinds, layers, start, end))
        for fmt, folder in folders.items():
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise DataError(f"cannot write the {fmt} export to {folder}: {exc.strerror or exc}; pass --out (out=) a folder you can write to") from None
        writers = [make_writer(fmt, folders[fmt], kinds=kinds, layers=layers, run=run, export=True) for fmt in chosen]
        if progress is not None:
            progress(0, total)
        done, last_step, status = 0, None, "finished"
        try:
            for part in parts:
                for _row, data in reader.iter_raw_frames(**part, upto_id=upto, batch_bytes=READ_BYTES):
                    for frame in expand_scalars(decode(data, copy=False)):
                        if not (start or 0) <= frame.step <= (frame.step if end is None else end):
                            continue  # (a value of a batch that reaches beyond the steps asked for)
                        last_step = frame.step if last_step is None else max(last_step, frame.step)
                        for writer in writers:
                            writer.write(frame)
                    done += 1
                    if progress is not None:
                        progress(done, total)
            if done < total and progress is not None:  # (frames a live run's writer thinned away meanwhile)
                progress(done, done)
        except BaseException:
            status = "failed"
            raise
        finally:
            for writer in writers:
                writer.close(status=status)
    return ExportResult(run=run, frames=done, folders=folders, partial=live, last_step=last_step)


def _check_layers(layers: Sequence[str], known: Sequence[str], run: str) -> None:
    """A layer the run has no frames of is said (it would export only the run-level values, silently)."""
    missing = [name for name in layers if name not in known]
    if missing:
        raise LayerNotFoundError(
            f"layer {', '.join(map(repr, missing))} not found in run {run!r}; it has "
            f"{', '.join(known) or 'no layer frames'} — pass one of these to --layer (layers=)"
        )


def _nothing_selected(info: dict[str, Any], run: str, kinds: Sequence[str] | None, layers: Sequence[str] | None,
                      start: int | None, end: int | None) -> str:
    """What was asked for that no frame has, and what the run holds."""
    if not info["frames"]:
        return f"run {run!r} has no frames yet: nothing to export"
    asked = []
    if kinds is not None:
        asked.append(f"of kind {', '.join(kinds)}")
    if layers is not None:
        asked.append(f"of layer {', '.join(layers)}")
    if start is not None or end is not None:
        asked.append(f"in steps {'' if start is None else start}:{'' if end is None else end}")
    held = ", ".join(kind for kind in sorted(info["kinds"]) if kind != "run_meta")
    of_layers = f"; layers {', '.join(info['layers'])}" if info["layers"] else ""
    return (f"no frames {' '.join(asked)} in run {run!r}: nothing to export; it holds steps {info['first_step']} to "
            f"{info['last_step']}; kinds {held}{of_layers} — choose from these (--kind, --layer, --steps)")

"""Exports of a run's frames: CSV, VTK XML for ParaView, TensorBoard event files and figures.

Every exporter is a :class:`~convscope.sinks.Sink`: the same class writes live during training
(``convscope.watch(..., sinks=[create_sink("vtk", out="run-vtk")])``; registered as ``csv``,
``vtk`` and ``tensorboard``) and a finished run from the store (:func:`export_run`,
``convscope export``). The CSV and VTK writers need numpy only (our own VTK XML writer);
TensorBoard needs ``convscope[tensorboard]``, figures ``convscope[export]`` (matplotlib).

Example:
    >>> import tempfile
    >>> from convscope.frames import Frame
    >>> w = CsvWriter(tempfile.mkdtemp())
    >>> w.write(Frame(run="r", step=1, kind="scalar", payload={"name": "loss", "value": 0.5}))
    >>> w.close()
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from convscope.export._csv import COLUMNS, CsvWriter
from convscope.export._run import FORMATS, ExportResult, export_run, make_writer
from convscope.export._vtk import VTK_KINDS, VtkWriter
from convscope.export._vtkxml import write_pvd, write_vti, write_vtp

if TYPE_CHECKING:
    from convscope.export._figures import FigureWriter
    from convscope.export._tensorboard import TensorBoardWriter

__all__ = [
    "COLUMNS",
    "FORMATS",
    "VTK_KINDS",
    "CsvWriter",
    "ExportResult",
    "FigureWriter",
    "TensorBoardWriter",
    "VtkWriter",
    "export_run",
    "make_writer",
    "write_pvd",
    "write_vti",
    "write_vtp",
]


def __getattr__(name: str) -> Any:
    # the writers with optional dependencies are imported when first used
    if name == "TensorBoardWriter":
        from convscope.export._tensorboard import TensorBoardWriter

        return TensorBoardWriter
    if name == "FigureWriter":
        from convscope.export._figures import FigureWriter

        return FigureWriter
    raise AttributeError(f"module 'convscope.export' has no attribute {name!r}")

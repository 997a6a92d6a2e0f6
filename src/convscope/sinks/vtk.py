"""The VTK XML writer as a live sink: ``create_sink("vtk", out="run-vtk")`` (see :mod:`convscope.export`)."""

from __future__ import annotations

from convscope.export._vtk import VtkWriter
from convscope.sinks._base import register_sink

__all__ = ["VtkWriter"]

register_sink("vtk")(VtkWriter)

"""The CSV writer as a live sink: ``create_sink("csv", out="run-csv")`` (see :mod:`convscope.export`)."""

from __future__ import annotations

from convscope.export._csv import CsvWriter
from convscope.sinks._base import register_sink

__all__ = ["CsvWriter"]

register_sink("csv")(CsvWriter)

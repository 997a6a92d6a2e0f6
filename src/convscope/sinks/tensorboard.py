"""TensorBoard event files as a live sink: ``create_sink("tensorboard", logdir="tb")``.

Importing this module needs nothing optional; creating the sink needs ``convscope[tensorboard]``.
"""

from __future__ import annotations

from convscope.export._tensorboard import TensorBoardWriter
from convscope.sinks._base import register_sink

__all__ = ["TensorBoardWriter"]

register_sink("tensorboard")(TensorBoardWriter)

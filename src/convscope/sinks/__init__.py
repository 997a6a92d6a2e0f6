"""Every consumer of frames, one module each, behind :class:`Sink`."""

from __future__ import annotations

from convscope.sinks._base import Sink, create_sink, list_sinks, register_sink

__all__ = ["Sink", "create_sink", "list_sinks", "register_sink"]

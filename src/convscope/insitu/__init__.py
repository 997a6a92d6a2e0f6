"""The training-time monitor: ``convscope.watch`` and its framework integrations."""

from __future__ import annotations

from convscope.insitu._monitor import VIEWS, Monitor, MonitorStats, PruneConfig, watch

__all__ = ["VIEWS", "Monitor", "MonitorStats", "PruneConfig", "watch"]

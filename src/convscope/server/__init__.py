"""The convscope server: REST and WebSocket API over a log directory of runs, plus the web UI.

``create_app(logdir)`` builds the FastAPI application; ``serve`` runs it (``convscope serve``);
``start_local_server`` runs it in a background thread for ``convscope.watch(serve=True)``.
The server only reads the run store (and writes runs that live monitors send to its ingest
endpoints); it never imports a model or runs an analysis for the dashboard.
"""

from __future__ import annotations

from convscope.server._app import create_app
from convscope.server._run import ServerHandle, serve, start_local_server

__all__ = ["ServerHandle", "create_app", "serve", "start_local_server"]

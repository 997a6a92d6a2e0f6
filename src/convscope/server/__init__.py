"""The convscope server: REST and WebSocket API over a log directory of runs, plus the web UI.

``create_app(logdir)`` builds the FastAPI application; ``serve`` runs it (``convscope serve``);
``start_local_server`` runs it in a background thread for ``convscope.watch(serve=True)``.
The server only reads the run store (and writes runs that live monitors send to its ingest
endpoints); it never imports a model or runs an analysis for the dashboard.

Safe by default: it binds 127.0.0.1 (and then refuses requests whose ``Host`` is not a
loopback name, against DNS rebinding); any other address gets a token, made and printed with
the URL when none is given, compared in constant time; CORS is off unless origins are listed
(never ``*``); WebSockets from other origins are refused; every request body is size-limited.

Example:
    >>> import tempfile
    >>> with start_local_server(tempfile.mkdtemp()) as handle:  # what watch(serve=True) does
    ...     handle.url.startswith("http://127.0.0.1:")
    True
"""

from __future__ import annotations

from convscope.server._app import create_app
from convscope.server._run import ServerHandle, serve, start_local_server

__all__ = ["ServerHandle", "create_app", "serve", "start_local_server"]

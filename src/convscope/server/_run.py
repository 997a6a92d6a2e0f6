"""Running the server: in the foreground (``convscope serve``) or in a background thread."""

from __future__ import annotations

import ipaddress
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from convscope.errors import ServerError

__all__ = ["ServerHandle", "serve", "start_local_server", "is_loopback"]


@dataclass
class ServerHandle:
    """A running server: its address, token and how to stop it."""

    url: str
    host: str
    port: int
    logdir: str
    token: str | None = None
    _server: Any = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    def url_with_token(self, path: str = "/") -> str:
        base = self.url.rstrip("/") + path
        return base + (f"?token={self.token}" if self.token else "")

    def stop(self, timeout: float = 5.0) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _prepare(logdir: str, host: str, port: int, token: str | None, **options: Any) -> tuple[Any, ServerHandle]:
    import uvicorn

    from convscope.server._app import create_app

    if not is_loopback(host) and not token:
        token = secrets.token_urlsafe(24)  # anything beyond this machine needs a token
    if port == 0:
        port = _free_port(host)
    app = create_app(logdir, token=token, **options)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", ws="websockets-sansio" if _has_sansio() else "auto", lifespan="on")
    server = uvicorn.Server(config)
    shown = f"[{host}]" if ":" in host else host
    handle = ServerHandle(url=f"http://{shown}:{port}/", host=host, port=port, logdir=str(logdir), token=token, _server=server)
    return server, handle


def _has_sansio() -> bool:
    try:
        import uvicorn.protocols.websockets.websockets_sansio_impl  # noqa: F401
    except ImportError:
        return False
    return True


def start_local_server(
    logdir: str | os.PathLike[str],
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    token: str | None = None,
    timeout: float = 15.0,
    **options: Any,
) -> ServerHandle:
    """Run the server in a daemon thread; return once it accepts connections.

    Example:
        >>> import tempfile
        >>> handle = start_local_server(tempfile.mkdtemp())
        >>> handle.url.startswith("http://127.0.0.1:")
        True
        >>> handle.stop()
    """
    server, handle = _prepare(str(logdir), host, port, token, **options)
    server.install_signal_handlers = lambda: None  # not the main thread: leave signals alone
    thread = threading.Thread(target=server.run, name="convscope-server", daemon=True)
    handle._thread = thread
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive():
            raise ServerError(f"the convscope server could not start on {host}:{handle.port}")
        if time.monotonic() > deadline:
            handle.stop()
            raise ServerError(f"the convscope server did not start within {timeout} s")
        time.sleep(0.02)
    return handle


def serve(
    logdir: str | os.PathLike[str] = "convscope-runs",
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    token: str | None = None,
    open_browser: bool = False,
    **options: Any,
) -> None:
    """Run the server in the foreground until interrupted (``convscope serve``)."""
    server, handle = _prepare(str(logdir), host, port, token, **options)
    print(f"convscope: serving runs from {logdir}")
    print(f"convscope: open {handle.url_with_token()}", flush=True)
    if not is_loopback(host):
        print("convscope: this address is reachable from other machines; the token above is required", flush=True)
    if open_browser:
        import webbrowser

        threading.Timer(1.0, lambda: webbrowser.open(handle.url_with_token())).start()
    server.run()

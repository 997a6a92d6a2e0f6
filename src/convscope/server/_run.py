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

__all__ = ["ServerHandle", "is_loopback", "serve", "start_local_server"]

#: the log directory ``convscope serve`` uses unless told otherwise
DEFAULT_LOGDIR = "convscope-runs"
_LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


@dataclass
class ServerHandle:
    """A running server: its address, token and how to stop it.

    Attributes:
        url: the base URL, e.g. ``http://127.0.0.1:8765/``.
        token: the token every API call needs (``None``: no token).
    """

    url: str
    host: str
    port: int
    logdir: str
    token: str | None = None
    _server: Any = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)
    _socket: socket.socket | None = field(default=None, repr=False)

    def url_with_token(self, path: str = "/") -> str:
        """The URL to open in a browser (with ``?token=`` when the server has one)."""
        base = self.url.rstrip("/") + path
        return base + (f"?token={self.token}" if self.token else "")

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving (idempotent): open connections are closed, and runs that remote monitors
        were streaming in (ingested runs) are marked ``interrupted``: their training may go on, and
        a server restarted on this log directory resumes them when their monitor reconnects."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        if self._socket is not None:
            self._socket.close()

    @property
    def app(self) -> Any:
        """The FastAPI application it serves (its ``state`` holds the store, hub and explorer)."""
        return self._server.config.app

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (``127.0.0.1``, ``::1``, ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _is_wildcard(host: str) -> bool:
    """True for the addresses that mean every address of this machine (``0.0.0.0``, ``::``)."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        return False


def _at(url: str, handle: ServerHandle, name: str) -> str:
    """``url`` (one of ``handle``'s) with the server's host said as ``name``."""
    return url.replace(handle.url.rstrip("/"), f"http://{name}:{handle.port}", 1)


def _listen(host: str, port: int) -> socket.socket:
    """Bind the listening socket here, so ``port=0`` names a free port without a race."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise ServerError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); choose another port (0 picks a free one)") from None
    sock.set_inheritable(True)
    # listening from here on: a client that connects as soon as the address is printed (a script,
    # the browser ``--open`` starts) waits in the backlog until the server accepts, where a socket
    # only bound would refuse it (uvicorn listens on it again when it starts: the same socket)
    sock.listen(2048)
    return sock


def _prepare(logdir: str, host: str, port: int, token: str | None, **options: Any) -> tuple[Any, ServerHandle]:
    import uvicorn

    from convscope.server._app import create_app

    loopback = is_loopback(host)
    if not loopback and not token:
        token = secrets.token_urlsafe(24)  # anything beyond this machine needs a token
    if loopback and not token and "trusted_hosts" not in options:
        options["trusted_hosts"] = (*_LOOPBACK_NAMES, host)  # no token: refuse DNS-rebound names
    sock = _listen(host, port)
    port = int(sock.getsockname()[1])
    app = create_app(logdir, token=token, **options)
    # no permessage-deflate: compressing every binary frame for every viewer cost 7.5 ms per
    # 200 KB feature-map frame on the event loop (benchmarks/bench_store.py), and frames are mostly
    # numbers that compress poorly. No log_config: uvicorn's runs logging.config.dictConfig, which
    # closes every handler of the process the server starts in (the user's training script; absl's,
    # imported with Keras, closes the stderr it bound at import); its warnings reach the process's
    # own handlers, or the current sys.stderr
    config = uvicorn.Config(
        app, log_level="warning", log_config=None, ws=_ws_impl(), ws_per_message_deflate=False, lifespan="on", timeout_graceful_shutdown=2
    )
    server = uvicorn.Server(config)
    shown = f"[{host.strip('[]')}]" if ":" in host else host
    handle = ServerHandle(url=f"http://{shown}:{port}/", host=host, port=port, logdir=str(logdir), token=token, _server=server, _socket=sock)
    return server, handle


def _ws_impl() -> str:
    try:
        import uvicorn.protocols.websockets.websockets_sansio_impl  # noqa: F401
    except ImportError:
        return "auto"
    return "websockets-sansio"


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

    Args:
        logdir: the runs to serve.
        host, port: where to listen (``port=0``: a free port, named in the handle's URL).
        token: require this token (one is made for a non-loopback ``host``).
        timeout: give up (:class:`ServerError`) if it is not up within this many seconds.
        options: passed to :func:`create_app` (``max_upload_bytes``, ``allow_origins`` …).

    Example:
        >>> import tempfile
        >>> with start_local_server(tempfile.mkdtemp()) as handle:
        ...     handle.url.startswith("http://127.0.0.1:")
        True
    """
    server, handle = _prepare(str(logdir), host, port, token, **options)
    sock = handle._socket
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="convscope-server", daemon=True)
    handle._thread = thread
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive():
            handle.stop()
            raise ServerError(f"the convscope server could not start on {host}:{handle.port}; see the log above")
        if time.monotonic() > deadline:
            handle.stop()
            raise ServerError(f"the convscope server did not start within {timeout} s")
        time.sleep(0.01)
    return handle


def serve(
    logdir: str | os.PathLike[str] = DEFAULT_LOGDIR,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    token: str | None = None,
    open_browser: bool = False,
    block: bool = True,
    **options: Any,
) -> ServerHandle:
    """Serve the runs in ``logdir``: the API, live streams and the dashboard.

    Prints the address to open (with the token, like Jupyter, when there is one). A ``host``
    other than loopback always gets a token: the given one, or a new random one.

    Args:
        logdir: the runs' directory (default ``./convscope-runs``).
        host, port: where to listen (``port=0``: any free port).
        token: require this token on every API call.
        open_browser: open the dashboard in the default browser.
        block: serve until interrupted (Ctrl-C) and then return the stopped handle; with
            ``False``, serve from a background thread and return at once.
        options: passed to :func:`create_app`.

    Example:
        >>> import tempfile
        >>> handle = serve(tempfile.mkdtemp(), block=False)  # doctest: +ELLIPSIS
        convscope: serving runs from ...
        convscope: open http://127.0.0.1:.../
        >>> handle.stop()
    """
    if block:
        server, handle = _prepare(str(logdir), host, port, token, **options)
    else:
        handle = start_local_server(logdir, host=host, port=port, token=token, **options)
        server = handle._server
    print(f"convscope: serving runs from {logdir}")
    here = handle.url_with_token()
    wildcard = _is_wildcard(host)  # (every address of the machine: http://0.0.0.0/ is no address to open)
    if wildcard:
        here = _at(here, handle, "[::1]" if ":" in host else "127.0.0.1")
    print(f"convscope: open {here}", flush=True)
    if wildcard:
        print(f"convscope: from other machines: {_at(handle.url_with_token(), handle, socket.gethostname())}", flush=True)
    if not is_loopback(host):
        print("convscope: this address is reachable from other machines; the token above is required", flush=True)
    if open_browser:
        import webbrowser

        threading.Timer(0.5 if block else 0.0, lambda: webbrowser.open(here)).start()
    if block:
        try:
            server.run(sockets=[handle._socket])
        except KeyboardInterrupt:
            pass  # uvicorn shut down cleanly, then passed Ctrl-C on: stopping is what was asked
        finally:
            handle.stop()
        print("convscope: stopped", flush=True)
    return handle

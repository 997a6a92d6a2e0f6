"""convscope inside Jupyter: the dashboard and the model explorer, inline in a notebook.

:func:`dashboard` and :func:`explorer` return a :class:`View`, an IFrame-style object that
Jupyter (and VS Code, JupyterLab, Colab-like front ends) draws as the live page inline; printed
elsewhere it shows its address. Each starts a local server (127.0.0.1, a free port) the first
time it needs one and keeps it for the rest of the kernel's life, so the view stays live after
the cell that trained has finished.

Example (in a notebook cell)::

    import convscope
    mon = convscope.watch(model, optimizer=opt, serve=True)   # prints the dashboard's address
    ...train...
    from convscope import notebook
    notebook.dashboard(mon)                                   # the live dashboard, inline

    notebook.explorer("lenet5")                               # a model, opened in the explorer
"""

from __future__ import annotations

import html
import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from convscope.errors import DataError

__all__ = ["View", "dashboard", "explorer", "server"]

#: servers started by this module, by log directory (one per directory for the kernel's life)
_SERVERS: dict[str, Any] = {}
_LOCK = threading.Lock()


def ipython_shell() -> Any | None:
    """The IPython shell this process runs (Jupyter's kernel, IPython), or ``None``; never
    imports IPython."""
    module = sys.modules.get("IPython")
    get = getattr(module, "get_ipython", None)
    return None if get is None else get()


@dataclass(frozen=True)
class View:
    """A page of a convscope server, shown inline by Jupyter.

    Attributes:
        url: the page's address (with the token when the server needs one).
        height: the inline frame's height in pixels.
        title: what the frame is, for screen readers and the plain-text form.
    """

    url: str
    height: int = 720
    title: str = "convscope"

    def _repr_html_(self) -> str:
        url = html.escape(self.url, quote=True)
        return (
            f'<iframe src="{url}" title="{html.escape(self.title)}" width="100%" height="{int(self.height)}" '
            'style="border:1px solid #d0d4da;border-radius:4px" loading="lazy" allow="fullscreen"></iframe>'
            f'<div style="font-size:12px;color:#667"><a href="{url}" target="_blank" rel="noopener">'
            f"open {html.escape(self.title)} in a new tab</a></div>"
        )

    def __repr__(self) -> str:
        return f"{self.title}: {self.url}"


def server(logdir: str | os.PathLike[str] = "convscope-runs", **options: Any) -> Any:
    """The local server of ``logdir`` this kernel started, starting it if needed.

    Returns the :class:`~convscope.server.ServerHandle` (``.url``, ``.stop()``). ``options``
    go to :func:`~convscope.server.start_local_server` the first time.
    """
    from convscope.server import start_local_server

    key = str(Path(logdir).resolve())
    with _LOCK:
        handle = _SERVERS.get(key)
        if handle is None or not handle.running:
            Path(key).mkdir(parents=True, exist_ok=True)
            handle = _SERVERS[key] = start_local_server(key, **options)
        return handle


def dashboard(
    run: Any = None,
    *,
    logdir: str | os.PathLike[str] | None = None,
    height: int = 900,
) -> View:
    """The live dashboard inline: of a :class:`~convscope.Monitor`, a run name or id, or the run list.

    Args:
        run: a monitor (its own server if it was started with ``serve=``, else one on its run
            store), a run id or name in ``logdir``, or ``None`` for the list of runs.
        logdir: the run store to serve (default: the monitor's, else ``convscope-runs``).
        height: the frame's height in pixels.

    Raises:
        DataError: a monitor that writes no run store and serves nothing has nothing to show.
        NotFoundError: ``run`` is neither the id nor the name of a run in ``logdir`` (the
            error names the closest ones, or what is there).
    """
    _check_height(height)
    if run is not None and hasattr(run, "run_name") and hasattr(run, "server_url"):  # a Monitor
        if run.server_url:
            return View(run.server_url, height, f"run {run.run_name}")
        if run.logdir is None:
            raise DataError(
                "this monitor keeps no run store and serves nothing: watch(..., logdir=...) or serve=True"
            )
        handle = server(run.logdir)
        return View(_page(handle, f"#/runs/{quote(str(run.run_id or run.run_name), safe='')}"), height, f"run {run.run_name}")
    if run is not None and not isinstance(run, str):
        raise DataError(f"dashboard() shows a convscope Monitor, a run's id or name (a str), or every run (None); got {type(run).__name__}")
    logdir = logdir or "convscope-runs"
    run_id = None if run is None else _run_id(logdir, run)  # (before a server starts)
    handle = server(logdir)
    if run_id is None:
        return View(_page(handle, "#/runs"), height, "convscope runs")
    return View(_page(handle, f"#/runs/{quote(run_id, safe='')}"), height, f"run {run}")


def explorer(
    model: Any = None,
    *,
    logdir: str | os.PathLike[str] = "convscope-runs",
    trust: bool = False,
    height: int = 900,
) -> View:
    """The model explorer inline, optionally with a model opened in it.

    Args:
        model: a zoo name, a model file's path, or a ``torch.nn.Module`` (``None``: the
            explorer as it is, to upload a model by hand).
        logdir: the run store of the server behind it (shared with :func:`dashboard`).
        trust: let this server open pickled whole models (they run code when loaded).
        height: the frame's height in pixels.
    """
    _check_height(height)
    handle = server(logdir, trust=trust)
    path = "#/explore"
    if model is not None:
        session = handle.app.state.explorer
        opened = session.add_model(model)
        path += f"?model={quote(str(opened.id), safe='')}"
    return View(_page(handle, path), height, "convscope model explorer")


def _run_id(logdir: str | os.PathLike[str], run: str) -> str:
    """The id of the run ``run`` names in ``logdir``: its id, or its name (the newest run of
    that name); a run that is in neither is refused with what is there."""
    from convscope.errors import NotFoundError
    from convscope.store import RunStore

    store = RunStore(logdir)
    if run in store.run_ids():
        return run
    named = [info["id"] for info in store.list_runs() if info.get("name") == run]  # (newest first)
    if named:
        return str(named[0])
    raise NotFoundError(f"no run with the id or name {run!r} in {store.logdir}; {store.runs_hint(run)}")


def _check_height(height: Any) -> None:
    if isinstance(height, bool) or not isinstance(height, int) or height < 1:
        raise DataError(f"height= is the frame's height in pixels (a positive int, e.g. 900); got {height!r}")


def _page(handle: Any, route: str) -> str:
    # the page reads its token from the query string, before the hash route
    query = f"?token={quote(handle.token, safe='')}" if handle.token else ""
    return handle.url.rstrip("/") + "/" + query + route

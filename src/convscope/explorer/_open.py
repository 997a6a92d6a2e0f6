"""``convscope open MODEL [INPUT ...]``: the model explorer on one model, like Netron opens a file.

Without ``--url`` a local server starts (127.0.0.1) with the model already loaded, so even a
model too big to upload opens at once; with ``--url`` the model and inputs are sent to a
server that is already running. Either way the explorer page opens on the model.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from convscope.errors import DataError, ServerError

__all__ = ["OpenedModel", "add_open_parser", "open_model", "run_open"]

_EXAMPLES = """examples:
  convscope open lenet5                              a bundled model on bundled digits
  convscope open model.onnx cat.png dog.jpg          any format, your own images
  convscope open weights.safetensors --arch vgg12    a state dict with its architecture
  convscope open whole_model.pt --trust              a pickled model you trust (runs its code)
  convscope open model.pt2 --url http://127.0.0.1:8765/   send it to a running server
"""


@dataclass
class OpenedModel:
    """Where the explorer shows the model: the page, the model's and inputs' ids, the server."""

    page: str
    model: str
    inputs: list[str]
    handle: Any = None  # the ServerHandle of a server this call started, else None


def add_open_parser(sub: Any) -> None:
    """Register ``open`` on the CLI's sub-command parser."""
    p = sub.add_parser(
        "open",
        help="open a model in the browser's model explorer (structure, layer outputs, freezing, comparison, saliency)",
        description="Start a local server with the model loaded (or send it to a running one with --url) and open "
        "the model explorer on it. Any format convscope loads; pickled whole models only with --trust.",
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from convscope.cli import MODEL_HELP, add_model_options, port_number

    p.add_argument("model", help=MODEL_HELP)
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="images to add as inputs (PNG, JPEG ...); default bundled samples")
    add_model_options(p, trust_help="allow pickled whole models (runs code from the file), here and in uploads")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=port_number(), default=0, help="port (default: a free one)")
    p.add_argument("--logdir", default="convscope-runs", metavar="DIR", help="runs the same server shows (default ./convscope-runs)")
    p.add_argument("--url", help="use the convscope server running at this address instead of starting one")
    p.add_argument("--token", help="the running server's token (with --url)")
    p.add_argument("--no-browser", action="store_true", help="print the page's address instead of opening a browser")


def run_open(args: argparse.Namespace) -> int:
    """The ``open`` command: open, print the address, serve until Ctrl-C (local server)."""
    import webbrowser

    from rich.console import Console

    from convscope.cli import _shape_arg, check_folder

    if args.url is None:
        check_folder(args.logdir, option="--logdir")
    console = Console()
    with console.status(f"opening {args.model} ..."):
        opened = open_model(
            args.model,
            inputs=args.inputs,
            trust=args.trust,
            architecture=args.arch,
            input_shape=_shape_arg(args.input_shape),
            pretrained=not args.untrained,
            host=args.host,
            port=args.port,
            logdir=args.logdir,
            url=args.url,
            token=args.token,
        )
    console.print(f"model explorer: [link={opened.page}]{opened.page}[/link]", highlight=False)
    if not args.no_browser:
        webbrowser.open(opened.page)
    if opened.handle is None:
        return 0
    console.print("serving until Ctrl-C")
    try:
        while opened.handle.running:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        opened.handle.stop()
    return 0


def open_model(
    model: str | os.PathLike[str],
    *,
    inputs: Sequence[str | os.PathLike[str]] = (),
    trust: bool = False,
    architecture: str | None = None,
    input_shape: tuple[int, ...] | None = None,
    pretrained: bool = True,
    host: str = "127.0.0.1",
    port: int = 0,
    logdir: str | os.PathLike[str] = "convscope-runs",
    url: str | None = None,
    token: str | None = None,
    default_inputs: int = 4,
) -> OpenedModel:
    """Load ``model`` into an explorer and return the page that shows it.

    Without ``url``, starts a local server in a background thread (stop it with
    ``result.handle.stop()``); with ``url``, sends the model and inputs to that server.

    Example:
        >>> opened = open_model("lenet5-simplified", pretrained=False)  # doctest: +SKIP
        >>> opened.page  # doctest: +SKIP
        'http://127.0.0.1:40123/#/explore?model=m1'
    """
    images = [_image_path(p) for p in inputs]  # (a missing image is said before a big model loads)
    if url is not None:
        return _open_remote(model, inputs=images, architecture=architecture, input_shape=input_shape, pretrained=pretrained,
                            url=url, token=token, default_inputs=default_inputs)
    from convscope.explorer import ExplorerSession
    from convscope.server import start_local_server

    session = ExplorerSession(trust=trust)
    loaded = session.add_model(model, architecture=architecture, input_shape=input_shape, pretrained=pretrained)
    added = [session.add_input_bytes(path.read_bytes(), name=path.name).id for path in images]
    if not added:
        added = [item.id for item in session.default_inputs(loaded.id, count=default_inputs)]
    handle = start_local_server(logdir, host=host, port=port, explorer=session, max_upload_bytes=session.limits.max_model_bytes)
    return OpenedModel(page=_page(handle.url_with_token(), loaded.id), model=loaded.id, inputs=added, handle=handle)


def _open_remote(model: str | os.PathLike[str], *, url: str, **options: Any) -> OpenedModel:
    """:func:`_send` to the server at ``url``, saying so when there is none to reach."""
    import httpx

    base = url.split("#", 1)[0].split("?", 1)[0].rstrip("/") + "/"
    try:
        return _send(model, base=base, **options)
    except (httpx.TransportError, httpx.InvalidURL) as exc:
        raise ServerError(
            f"cannot reach a convscope server at {url} ({exc}); start one with `convscope serve` and pass the "
            "address it prints to --url, or leave out --url to start one here", status_code=502,
        ) from None


def _send(
    model: str | os.PathLike[str],
    *,
    inputs: Sequence[Path],
    architecture: str | None,
    input_shape: tuple[int, ...] | None,
    pretrained: bool,
    base: str,
    token: str | None,
    default_inputs: int,
) -> OpenedModel:
    import httpx

    from convscope.models import list_models

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with httpx.Client(base_url=base, headers=headers, timeout=600) as client:
        if not os.path.exists(model) and str(model) in {e.name for e in list_models()}:
            r = client.post("api/explorer/models/zoo", json={"name": str(model), "pretrained": pretrained})
        else:
            path = Path(model)
            if not path.is_file():
                raise ServerError(f"model file {str(path)!r} does not exist; check the path", status_code=404)
            params = {"filename": path.name}
            if architecture:
                params["architecture"] = architecture
            if input_shape:
                params["input_shape"] = ",".join(map(str, input_shape))
            r = client.post("api/explorer/models/upload", params=params, content=path.read_bytes(),
                            headers={"Content-Type": "application/octet-stream"})
        details = _json(r, f"the server at {base} did not take the model", ("id", "sample_sets"))
        added = []
        for p in inputs:
            r = client.post("api/explorer/inputs/upload", params={"filename": p.name}, content=p.read_bytes(),
                            headers={"Content-Type": "application/octet-stream"})
            added.append(_json(r, f"the server at {base} did not take {p.name}")["id"])
        if not added and details["sample_sets"]:
            for index in range(default_inputs):
                r = client.post("api/explorer/inputs/sample", json={"dataset": details["sample_sets"][0], "index": index})
                added.append(_json(r, "the server could not add a bundled sample")["id"])
    page = base + (f"?token={token}" if token else "")
    return OpenedModel(page=_page(page, details["id"]), model=details["id"], inputs=added)


def _page(base: str, model_id: str) -> str:
    return f"{base}#/explore?model={model_id}"


def _image_path(p: str | os.PathLike[str]) -> Path:
    path = Path(p)
    if not path.is_file():
        raise DataError(f"input image {str(path)!r} does not exist or is not a file")
    return path


def _json(r: Any, what: str, needs: tuple[str, ...] = ("id",)) -> dict[str, Any]:
    """The JSON object a convscope server answered, holding ``needs``; else a :class:`ServerError`
    saying what went wrong."""
    try:
        body = r.json()
    except ValueError:
        body = None
    if r.status_code >= 400:
        detail = body.get("detail", r.text) if isinstance(body, dict) else r.text[:300]  # (not a page of HTML)
        raise ServerError(f"{what}: {r.status_code} {detail}", status_code=r.status_code)
    if not isinstance(body, dict) or any(key not in body for key in needs):  # (another program answers there)
        raise ServerError(f"{what}: its answer is not a convscope server's; check --url", status_code=502)
    return body

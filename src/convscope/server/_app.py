"""``create_app``: the FastAPI application (see ``docs/api.md`` and ``/docs`` for OpenAPI)."""

from __future__ import annotations

import asyncio
import hmac
import json
import os
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from convscope import __version__
from convscope._optional import require
from convscope.errors import FrameError, NotFoundError, StoreError
from convscope.frames import decode_stream, encoded_size
from convscope.store import RunStore, RunWriter, valid_run_id

require("fastapi", feature="the convscope server", extra="server")

from fastapi import Body, Depends, FastAPI, HTTPException, Query, Request, WebSocket, WebSocketDisconnect  # noqa: E402
from fastapi.responses import HTMLResponse, JSONResponse, Response  # noqa: E402
from pydantic import BaseModel, Field  # noqa: E402

FRAMES_MEDIA_TYPE = "application/x-convscope-frames"
STATIC_DIR = Path(__file__).with_name("static")
#: how often live WebSockets look for new frames in the store (seconds)
POLL_SECONDS = 0.05


class RunInfo(BaseModel):
    id: str
    name: str
    status: str = Field(description="live, finished, failed or crashed")
    started: float | None = Field(None, description="seconds since the epoch")
    updated: float | None = None
    model: str | None = None
    first_step: int | None = None
    last_step: int | None = None
    frames: int

class RunDetails(RunInfo):
    kinds: dict[str, int]
    layers: list[str]
    thinned: dict[str, int] = Field(description="'kind:layer' -> frames removed by retention")
    meta: dict[str, Any]

class NewRun(BaseModel):
    name: str | None = Field(None, max_length=128)
    model: str | None = Field(None, max_length=256)
    config: dict[str, Any] = Field(default_factory=dict)


def create_app(
    logdir: str | os.PathLike[str],
    *,
    token: str | None = None,
    max_upload_bytes: int = 64 << 20,
    allow_origins: tuple[str, ...] = (),
    poll_seconds: float = POLL_SECONDS,
) -> Any:
    """Build the application serving the runs in ``logdir``.

    Args:
        logdir: the run store's directory (created if missing).
        token: when set, every ``/api`` request and WebSocket must carry it
            (``Authorization: Bearer TOKEN`` or ``?token=TOKEN``).
        max_upload_bytes: the largest request body accepted (ingest, uploads).
        allow_origins: origins allowed by CORS (none by default; never ``*``).
        poll_seconds: how often live WebSockets look for new frames.

    Example:
        >>> import tempfile
        >>> app = create_app(tempfile.mkdtemp())
        >>> sorted(r.path for r in app.routes if r.path.startswith("/api/runs"))[:2]
        ['/api/runs', '/api/runs']
    """
    store = RunStore(logdir)
    Path(logdir).mkdir(parents=True, exist_ok=True)
    writers: dict[str, RunWriter] = {}
    writers_lock = threading.Lock()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        with writers_lock:
            for writer in writers.values():
                try:
                    writer.close(status="failed")
                except StoreError:
                    pass
            writers.clear()

    app = FastAPI(
        title="convscope",
        version=__version__,
        summary="Runs, frames and live streams of convscope's in situ monitor.",
        lifespan=lifespan,
    )
    app.state.store = store
    app.state.token = token

    if allow_origins:
        if "*" in allow_origins:
            raise ValueError("allow_origins must list origins; '*' is refused (convscope never allows every origin)")
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(allow_origins), allow_methods=["GET", "POST"], allow_headers=["Authorization", "Content-Type"])

    def _token_ok(given: str | None) -> bool:
        return token is None or (given is not None and hmac.compare_digest(given.encode(), token.encode()))

    def require_token(request: Request) -> None:
        given = request.query_params.get("token")
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        if not _token_ok(given):
            raise HTTPException(status_code=401, detail="a valid token is required: add ?token=... or 'Authorization: Bearer ...'")

    def open_reader(run: str) -> Any:
        if not valid_run_id(run):
            raise HTTPException(status_code=404, detail=f"no run {run!r} (run ids are letters, digits, '.', '_', '-')")
        try:
            return store.open_run(run)
        except NotFoundError:
            raise HTTPException(status_code=404, detail=f"no run {run!r} in this server's log directory") from None
        except StoreError as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from None

    api = [Depends(require_token)]

    @app.get("/api/health", tags=["server"], summary="Is the server up")
    def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    @app.get("/api/runs", tags=["runs"], summary="Every run, newest first", response_model=list[RunInfo], dependencies=api)
    def list_runs() -> list[dict[str, Any]]:
        return store.list_runs()

    @app.get("/api/runs/{run}", tags=["runs"], summary="One run: status, kinds, layers, config and graph", response_model=RunDetails, dependencies=api)
    def get_run(run: str) -> dict[str, Any]:
        with open_reader(run) as reader:
            return reader.info()

    @app.get("/api/runs/{run}/steps", tags=["runs"], summary="Steps that have frames of a kind (and layer)", dependencies=api)
    def get_steps(run: str, kind: str | None = None, layer: str | None = None) -> dict[str, list[int]]:
        with open_reader(run) as reader:
            return {"steps": reader.steps(kind=kind, layer=layer)}

    @app.get(
        "/api/runs/{run}/frames",
        tags=["frames"],
        summary="Frames in convscope's binary encoding, ordered by step",
        description=(
            f"The body ({FRAMES_MEDIA_TYPE}) is encoded frames one after another (see convscope.frames). "
            "`max_points` thins long runs evenly (first and last kept); `latest=true` gives only the newest "
            "frame of each kind and layer at or before `end`."
        ),
        response_class=Response,
        responses={200: {"content": {FRAMES_MEDIA_TYPE: {}}}},
        dependencies=api,
    )
    def get_frames(
        run: str,
        kind: list[str] | None = Query(None),
        layer: list[str] | None = Query(None),
        start: int | None = Query(None, ge=0),
        end: int | None = Query(None, ge=0),
        limit: int | None = Query(None, ge=1, le=1_000_000),
        max_points: int | None = Query(None, ge=1, le=100_000),
        latest: bool = False,
    ) -> Response:
        with open_reader(run) as reader:
            rows = reader.raw_frames(kind=kind, layer=layer, start=start, end=end, limit=limit, max_points=max_points, latest=latest)
        body = b"".join(data for _id, data in rows)
        return Response(content=body, media_type=FRAMES_MEDIA_TYPE, headers={"X-Frame-Count": str(len(rows))})

    @app.post("/api/runs", tags=["ingest"], summary="Start a run that a live monitor will send frames to", status_code=201, dependencies=api)
    def create_run(new: NewRun = Body(...)) -> dict[str, str]:
        writer = store.create_run(new.name, model=new.model, config=new.config)
        with writers_lock:
            writers[writer.run_id] = writer
        return {"id": writer.run_id}

    @app.post(
        "/api/runs/{run}/frames",
        tags=["ingest"],
        summary="Append encoded frames to a run started with POST /api/runs",
        openapi_extra={"requestBody": {"content": {FRAMES_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}}, "required": True}},
        dependencies=api,
    )
    async def ingest(run: str, request: Request) -> dict[str, int]:
        writer = writers.get(run)
        if writer is None:
            raise HTTPException(status_code=404, detail=f"run {run!r} is not open for ingest here; start it with POST /api/runs")
        body = await _read_limited(request, max_upload_bytes)
        try:
            frames = list(decode_stream(body, copy=False))
        except FrameError as exc:
            raise HTTPException(status_code=422, detail=f"malformed frames: {exc}") from None
        pos = 0
        for frame in frames:
            size = encoded_size(body, pos)
            writer.write_encoded(frame, bytes(body[pos : pos + size]))
            pos += size
        await asyncio.to_thread(writer.flush)
        return {"accepted": len(frames)}

    @app.post("/api/runs/{run}/close", tags=["ingest"], summary="Mark an ingested run finished or failed", dependencies=api)
    def close_run(run: str, status: str = Body("finished", embed=True)) -> dict[str, str]:
        if status not in ("finished", "failed"):
            raise HTTPException(status_code=422, detail="status must be 'finished' or 'failed'")
        with writers_lock:
            writer = writers.pop(run, None)
        if writer is None:
            raise HTTPException(status_code=404, detail=f"run {run!r} is not open for ingest here")
        writer.close(status=status)
        return {"id": run, "status": status}

    @app.websocket("/api/runs/{run}/live")
    async def live_run(websocket: WebSocket, run: str) -> None:
        """Every new frame of the run as one binary message; JSON text messages filter or replay."""
        if not _token_ok(websocket.query_params.get("token")):
            await websocket.close(code=4401, reason="token required")
            return
        if not valid_run_id(run):
            await websocket.close(code=4404, reason="no such run")
            return
        try:
            reader = store.open_run(run)
        except (NotFoundError, StoreError):
            await websocket.close(code=4404, reason="no such run")
            return
        await websocket.accept()
        filters: dict[str, Any] = {"kinds": None, "layers": None}
        cursor = reader.last_id()
        status = reader.status()
        try:
            while True:
                try:
                    text = await asyncio.wait_for(websocket.receive_text(), timeout=poll_seconds)
                    cursor = _apply_client_message(text, filters, reader, cursor)
                    if filters.get("replay") is not None:
                        for _id, data in reader.raw_frames(kind=filters["kinds"], layer=filters["layers"], start=filters.pop("replay") + 1):
                            await websocket.send_bytes(data)
                except TimeoutError:
                    pass
                # the store is read off the event loop, a bounded batch at a time
                rows = await asyncio.to_thread(
                    reader.raw_frames, kind=filters["kinds"], layer=filters["layers"], after_id=cursor, limit=256
                )
                for row_id, data in rows:
                    await websocket.send_bytes(data)
                    cursor = max(cursor, row_id)
                if len(rows) == 256:
                    continue  # more are waiting: no pause
                now = await asyncio.to_thread(reader.status)
                if now != status:
                    status = now
                    await websocket.send_text(json.dumps({"type": "status", "status": status}))
        except WebSocketDisconnect:
            pass
        finally:
            reader.close()

    @app.websocket("/api/live")
    async def live_runs(websocket: WebSocket) -> None:
        """JSON text messages ``{"type": "run", "run": RunInfo}`` when runs appear or change."""
        if not _token_ok(websocket.query_params.get("token")):
            await websocket.close(code=4401, reason="token required")
            return
        await websocket.accept()
        seen: dict[str, tuple[str, Any, Any]] = {}
        try:
            while True:
                for info in await asyncio.to_thread(store.list_runs):
                    key = (info["status"], info["last_step"], info["frames"])
                    if seen.get(info["id"]) != key:
                        seen[info["id"]] = key
                        await websocket.send_text(json.dumps({"type": "run", "run": info}))
                try:
                    await asyncio.wait_for(websocket.receive_text(), timeout=max(poll_seconds, 1.0))
                except TimeoutError:
                    pass
        except WebSocketDisconnect:
            pass

    @app.exception_handler(StoreError)
    async def store_error(_request: Request, exc: StoreError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": str(exc)})

    if (STATIC_DIR / "index.html").is_file():
        from fastapi.staticfiles import StaticFiles

        app.mount("/", StaticFiles(directory=STATIC_DIR, html=True), name="ui")
    else:

        @app.get("/", include_in_schema=False)
        def placeholder() -> HTMLResponse:
            return HTMLResponse(_PLACEHOLDER)

    return app


async def _read_limited(request: Any, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(status_code=413, detail=f"body of {declared} bytes is over this server's limit of {limit}")
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(status_code=413, detail=f"body is over this server's limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _apply_client_message(text: str, filters: dict[str, Any], reader: Any, cursor: int) -> int:
    try:
        msg = json.loads(text)
    except json.JSONDecodeError:
        return cursor
    if not isinstance(msg, dict):
        return cursor
    for key in ("kinds", "layers"):
        value = msg.get(key)
        if value is None or (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            if key in msg:
                filters[key] = value or None
    since = msg.get("since")
    if isinstance(since, int) and not isinstance(since, bool):
        filters["replay"] = since
        return reader.last_id()
    return cursor


_PLACEHOLDER = """<!doctype html><html><head><meta charset="utf-8"><title>convscope</title>
<style>body{font:16px system-ui,sans-serif;max-width:42rem;margin:4rem auto;color:#222}</style></head>
<body><h1>convscope server</h1>
<p>The API is running (<a href="/docs">API documentation</a>, <a href="/api/runs">runs as JSON</a>),
but the web interface was not built into this installation.</p>
<p>It is built from <code>web/</code> with npm when convscope is installed from source
(<code>pip install -e .</code> with Node.js and npm on the PATH).</p></body></html>"""

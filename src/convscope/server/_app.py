"""``create_app``: the FastAPI application (OpenAPI at ``/docs`` and ``/openapi.json``)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import math
import os
import secrets
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeGuard
from urllib.parse import urlsplit

from convscope import __version__
from convscope._optional import require
from convscope.errors import FrameError, NotFoundError, ServerError, StoreError
from convscope.frames import decode_stream, encoded_size
from convscope.server._live import LiveHub, RunsWatch, Viewer, replay
from convscope.store import RunStore, RunWriter, valid_run_id
from convscope.store._schema import CLOSED_STATUSES

require("fastapi", feature="the convscope server", extra="server")

from fastapi import Body, Depends, FastAPI, Query, Request, WebSocket, WebSocketDisconnect  # noqa: E402
from fastapi.responses import HTMLResponse, JSONResponse, Response  # noqa: E402
from pydantic import BaseModel, Field  # noqa: E402

FRAMES_MEDIA_TYPE = "application/x-convscope-frames"
STATIC_DIR = Path(__file__).with_name("static")
#: how often live streams look for frames written by other processes (seconds)
POLL_SECONDS = 0.05
#: an ingested run with no request from its monitor for this long is reported crashed
INGEST_STALE_SECONDS = 30.0
#: the largest step the run store holds (SQLite's INTEGER is 64-bit)
MAX_STEP = (1 << 63) - 1
#: where an ingested run keeps the digest of its monitor's key (:meth:`RunWriter.put_state`)
INGEST_KEY_STATE = "ingest-key-sha256"
#: the request header that numbers an ingest body's frames: the number of its first frame, the
#: others follow one by one (``X-Convscope-Seq: 41`` on three frames: 41, 42, 43)
SEQ_HEADER = "X-Convscope-Seq"
#: where an ingested run keeps the number of the last frame it stored, committed with the frames
INGEST_SEQ_STATE = "ingest-last-seq"
#: the response header of GET /api/runs/{run}/frames that says up to which row the run was read:
#: a live stream asked for the rows after it (``{"after": cursor}``) gives exactly the rest
CURSOR_HEADER = "X-Convscope-Cursor"

_Send = Callable[[dict[str, Any]], Awaitable[None]]
_Receive = Callable[[], Awaitable[dict[str, Any]]]


class Health(BaseModel):
    status: str = Field(description="always 'ok'")
    version: str


class LastValue(BaseModel):
    value: float | str = Field(description="its value at the largest step it was logged at ('nan', 'inf' or '-inf' where not finite)")
    step: int = Field(description="that step")


class LayerHealth(BaseModel):
    status: str = Field(description="the last check's status: healthy, vanishing, exploding, stalled or nonfinite")
    step: int = Field(description="the last check's step")
    flagged: int = Field(description="checks whose status was not healthy")
    checks: int = Field(description="checks in all (those thinned by retention too)")


class LayerFilters(BaseModel):
    before: int = Field(description="the layer's filters before its first pruning")
    after: int = Field(description="its filters after its last pruning")
    prunings: int = Field(description="how many times it was pruned")
    first_step: int = Field(description="the step of its first pruning")
    step: int = Field(description="the step of its last pruning")


class RunSummary(BaseModel):
    """A run at a glance, kept by its writer as running totals (frames thinned by retention still count)."""

    scalars: dict[str, LastValue] = Field(default_factory=dict, description="each logged scalar's last value, by name")
    health: dict[str, LayerHealth] = Field(default_factory=dict, description="gradient health of each layer checked, by layer")
    filters: dict[str, LayerFilters] = Field(default_factory=dict, description="filters of each pruned layer, by layer")


class RunInfo(BaseModel):
    id: str
    name: str
    status: str = Field(
        description="live, finished, failed, crashed or interrupted (the server stopped while a monitor was streaming "
        "this run; frames sent after that were not received; the run resumes as live if its training reconnects)"
    )
    started: float | None = Field(None, description="seconds since the epoch")
    updated: float | None = Field(None, description="last heartbeat or write, seconds since the epoch")
    model: str | None = None
    first_step: int | None = None
    last_step: int | None = None
    frames: int = Field(description="frames stored")
    dropped: dict[str, int] = Field(
        default_factory=dict,
        description="what the run's 'dropped' frames say was lost, by what lost it: 'queue' (the monitor's full queue) "
        "or a sink ('store': frames the run's own commits lost; 'http': frames a server never got); and 'budget': "
        "recording steps the overhead budget deferred on purpose, not a loss",
    )
    summary: RunSummary = Field(
        default_factory=RunSummary,
        description="the run at a glance: each scalar's last value, each layer's gradient health, each pruned layer's filters",
    )


class RunDetails(RunInfo):
    kinds: dict[str, int] = Field(description="frames stored per kind")
    layers: list[str] = Field(description="layer ids in first-seen order")
    counts: dict[str, int] = Field(
        default_factory=dict, description="'kind:layer' -> frames stored (a request with max_points may get fewer of a long series)"
    )
    thinned: dict[str, int] = Field(description="'kind:layer' -> frames removed by retention")
    meta: dict[str, Any] = Field(description="config, retention, and the model graph from run_meta frames")


class Steps(BaseModel):
    steps: list[int]


class NewRun(BaseModel):
    name: str | None = Field(None, max_length=128)
    model: str | None = Field(None, max_length=256)
    config: dict[str, Any] = Field(default_factory=dict)
    key: str | None = Field(
        None,
        min_length=16,
        max_length=256,
        description="the monitor's own key to the run (one is made if none): a start sent again with it, its answer lost, gets the run it started",
    )


class CreatedRun(BaseModel):
    id: str
    max_upload_bytes: int = Field(description="the largest body POST /api/runs/{run}/frames accepts")
    key: str = Field(description="the monitor's key to this run: POST /api/runs/{run}/resume takes it to go on with the run")


class ResumeRun(BaseModel):
    key: str = Field(max_length=256, description="the key POST /api/runs gave when it started the run")


class ResumedRun(BaseModel):
    id: str
    max_upload_bytes: int = Field(description="the largest body POST /api/runs/{run}/frames accepts")
    last_step: int | None = Field(description="the run's last step so far (null: no frames yet)")
    last_seq: int = Field(0, description=f"the number ({SEQ_HEADER}) of the last frame the run stored (0: none numbered)")


class Accepted(BaseModel):
    accepted: int = Field(description="frames of the body the run now holds: stored now, or before when sent again")
    duplicates: int | None = Field(
        None, description=f"(numbered bodies only, {SEQ_HEADER}) frames of the body the run had already stored, not stored again"
    )


class Closed(BaseModel):
    id: str
    status: str


class Detail(BaseModel):
    detail: str


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": Detail} for code in codes}


class _Ingest:
    """A run open for ingest here: its writer, and the number of the last frame it stored."""

    def __init__(self, writer: RunWriter, *, last_seq: int = 0, digest: bytes | None = None) -> None:
        self.writer = writer
        self.last_seq = last_seq
        self.digest = digest  # (of the key it was started with)
        # one body at a time: a body sent again while its first send is still being stored
        # waits for it, and then finds its frames stored
        self.lock = threading.Lock()


def create_app(
    logdir: str | os.PathLike[str],
    *,
    token: str | None = None,
    max_upload_bytes: int = 64 << 20,
    allow_origins: Sequence[str] = (),
    trusted_hosts: Sequence[str] | None = None,
    poll_seconds: float = POLL_SECONDS,
    trust: bool = False,
    explorer: Any = None,
) -> FastAPI:
    """Build the application serving the runs in ``logdir``.

    Args:
        logdir: the run store's directory (created if missing).
        token: when set, every ``/api`` request and WebSocket must carry it
            (``Authorization: Bearer TOKEN`` or ``?token=TOKEN``); compared in constant time.
        max_upload_bytes: the largest request body accepted (413 beyond).
        allow_origins: other origins allowed by CORS and to open WebSockets (none by
            default; ``*`` is refused).
        trusted_hosts: when given, requests whose ``Host`` is not one of these names get 400
            (:func:`serve` sets the loopback names when there is no token, which stops DNS
            rebinding).
        poll_seconds: how often live streams look for frames written by other processes.
        trust: let the model explorer open pickled whole models (they run code when loaded).
        explorer: the :class:`~convscope.explorer.ExplorerSession` behind ``/api/explorer``
            (``convscope open`` passes one with its model loaded); default a new, empty one.

    Example:
        >>> import tempfile
        >>> app = create_app(tempfile.mkdtemp(), token="s3cret")
        >>> sorted({r.path for r in app.routes if getattr(r, "path", "").startswith("/api/runs/")})  # doctest: +NORMALIZE_WHITESPACE
        ['/api/runs/{run}', '/api/runs/{run}/close', '/api/runs/{run}/frames', '/api/runs/{run}/live',
         '/api/runs/{run}/resume', '/api/runs/{run}/steps']
    """
    if "*" in allow_origins:
        raise ServerError("allow_origins must list origins; '*' is refused (convscope never allows every origin)")
    store = RunStore(logdir)
    Path(logdir).mkdir(parents=True, exist_ok=True)
    writers: dict[str, _Ingest] = {}
    writers_lock = threading.Lock()
    hub = LiveHub(store, poll_seconds=poll_seconds)
    watch = RunsWatch(store, poll_seconds=max(poll_seconds, 1.0))
    origins = {o.rstrip("/") for o in allow_origins}

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await watch.close()
        await hub.close()
        with writers_lock:
            left = list(writers.values())
            writers.clear()
        # The monitors feeding them lose their server, not their training: their runs are
        # interrupted (not failed), and go on live if the monitor reconnects to a server on this
        # log directory (POST /api/runs/{run}/resume).
        for ingested in left:
            try:
                await asyncio.to_thread(ingested.writer.close, status="interrupted")
            except StoreError:
                pass

    app = FastAPI(
        title="convscope",
        version=__version__,
        summary="Runs, frames and live streams of convscope's in situ monitor.",
        description=(
            "Frames travel in convscope's binary encoding (`application/x-convscope-frames`: encoded frames "
            "one after another, see `convscope.frames`). Live streams are WebSockets: `/api/runs/{run}/live` "
            "and `/api/live`. With a token, every `/api` call needs `Authorization: Bearer TOKEN` or `?token=TOKEN`."
        ),
        lifespan=lifespan,
        openapi_tags=[
            {"name": "server", "description": "Health and version."},
            {"name": "runs", "description": "Runs in the log directory and their summaries."},
            {"name": "frames", "description": "Frames of a run, in the binary encoding."},
            {"name": "ingest", "description": "Live monitors on other machines send their frames here."},
            {"name": "explorer", "description": "The model explorer: models, inputs, layer outputs, freezing, comparison, saliency, attacks."},
        ],
    )
    app.state.store = store
    app.state.token = token
    app.state.hub = hub
    from convscope.explorer import ExplorerSession

    app.state.explorer = explorer if explorer is not None else ExplorerSession(trust=trust)

    # explorer model uploads may be as big as the explorer allows; every other body up to max_upload_bytes
    model_upload = {"/api/explorer/models/upload": app.state.explorer.limits.max_model_bytes}
    app.add_middleware(_HeadAsGet)
    app.add_middleware(_BodyLimit, limit=max_upload_bytes, paths=model_upload)
    if trusted_hosts is not None:
        app.add_middleware(_TrustedHosts, hosts=tuple(trusted_hosts))
    if origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware, allow_origins=sorted(origins), allow_methods=["GET", "POST"], allow_headers=["Authorization", "Content-Type"],
            expose_headers=["X-Frame-Count", CURSOR_HEADER],  # (a page from another origin reads them too)
        )

    def token_ok(given: str | None) -> bool:
        return token is None or (given is not None and hmac.compare_digest(given.encode(), token.encode()))

    def given_token(headers: Any, query: Any) -> str | None:
        auth = headers.get("authorization", "")
        if auth[:7].lower() == "bearer ":
            return str(auth[7:].strip())
        value = query.get("token")
        return None if value is None else str(value)

    def require_token(request: Request) -> None:
        if not token_ok(given_token(request.headers, request.query_params)):
            raise ServerError(
                "a valid token is required: add ?token=... to the URL or send 'Authorization: Bearer ...' "
                "(the token was printed when the server started)",
                status_code=401,
            )

    def open_reader(run: str) -> Any:
        if not valid_run_id(run):
            raise ServerError(f"no run {run!r}: run ids are letters, digits, '.', '_', '-'", status_code=404)
        try:
            return store.open_run(run)
        except NotFoundError:
            raise ServerError(f"no run {run!r} in this server's log directory; GET /api/runs lists them", status_code=404) from None

    def same_origin(headers: Any) -> bool:
        # Browsers send Origin with every cross-site POST and WebSocket; scripts and monitors send none.
        origin = headers.get("origin")
        if origin is None or origin.rstrip("/") in origins:
            return True
        return bool(urlsplit(origin).netloc.lower() == headers.get("host", "").lower())

    def refuse_cross_site(request: Request) -> None:
        if not same_origin(request.headers):
            raise ServerError(
                f"a request from the web page at {request.headers.get('origin')} was refused; "
                "start the server with allow_origins to permit that site",
                status_code=403,
            )

    api = [Depends(require_token)]
    ingest_api = [Depends(require_token), Depends(refuse_cross_site)]

    from convscope.server._explorer import explorer_router

    app.include_router(explorer_router(app.state.explorer, dependencies=ingest_api))

    @app.exception_handler(ServerError)
    async def server_error(_request: Request, exc: ServerError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
        return JSONResponse(status_code=exc.status_code, content={"detail": str(exc)}, headers=headers)

    @app.exception_handler(StoreError)
    async def store_error(_request: Request, exc: StoreError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": str(exc)})

    @app.get("/api/health", tags=["server"], summary="Is the server up", response_model=Health)
    def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    @app.get(
        "/api/runs", tags=["runs"], summary="Every run, newest first", response_model=list[RunInfo], dependencies=api, responses=_errors(401)
    )
    def list_runs() -> list[dict[str, Any]]:
        return store.list_runs()

    @app.get(
        "/api/runs/{run}",
        tags=["runs"],
        summary="One run: status, kinds, layers, thinning, config and graph",
        response_model=RunDetails,
        dependencies=api,
        responses=_errors(401, 404, 422),
    )
    def get_run(run: str) -> dict[str, Any]:
        with open_reader(run) as reader:
            return reader.info()

    @app.get(
        "/api/runs/{run}/steps",
        tags=["runs"],
        summary="Steps that have frames of a kind (and layer)",
        response_model=Steps,
        dependencies=api,
        responses=_errors(401, 404, 422),
    )
    def get_steps(run: str, kind: str | None = None, layer: str | None = None) -> dict[str, list[int]]:
        with open_reader(run) as reader:
            return {"steps": reader.steps(kind=kind, layer=layer)}

    @app.get(
        "/api/runs/{run}/frames",
        tags=["frames"],
        summary="Frames in convscope's binary encoding, ordered by step",
        description=(
            f"The body ({FRAMES_MEDIA_TYPE}) is encoded frames one after another (see convscope.frames); "
            "`X-Frame-Count` says how many. `kind` and `layer` may repeat. `max_points` thins each (kind, layer) "
            "series longer than that evenly over its step range (first and last kept; a gradient_health series keeps "
            "every flagged check besides, with the check before and after each); `latest=1` gives only "
            "the newest frames of each (kind, layer) at or before `end`.\n\n"
            f"`{CURSOR_HEADER}` is a row id C: the answer was read from the run as it stood when it held the rows up "
            "to C (one snapshot), so every stored frame with a row id up to C that the filters match was considered "
            "(thinning, a step range or `limit` may still leave it out on purpose) and no frame stored after C was. "
            "A live stream `/api/runs/{run}/live` sent `{\"after\": C}` gives the rest, each frame once: the "
            "frames the filters match that were stored after C."
        ),
        response_class=Response,
        responses={200: {"content": {FRAMES_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}}}, **_errors(401, 404, 422)},
        dependencies=api,
    )
    def get_frames(
        run: str,
        kind: list[str] | None = Query(None, description="frame kinds to return (repeatable)"),
        layer: list[str] | None = Query(None, description="layer ids to return (repeatable)"),
        start: int | None = Query(None, ge=0, le=MAX_STEP, description="first step (inclusive)"),
        end: int | None = Query(None, ge=0, le=MAX_STEP, description="last step (inclusive)"),
        limit: int | None = Query(None, ge=1, le=1_000_000, description="at most this many frames"),
        max_points: int | None = Query(None, ge=1, le=100_000, description="thin each series to about this many steps"),
        latest: bool = Query(False, description="only the newest frames of each (kind, layer) at or before end"),
    ) -> Response:
        with open_reader(run) as reader, reader.snapshot():
            cursor = reader.last_id()  # (first: the frames read next are of the run as it stood here)
            rows = reader.raw_frames(kind=kind, layer=layer, start=start, end=end, limit=limit, max_points=max_points, latest=latest)
        body = b"".join(data for _id, data in rows)
        return Response(content=body, media_type=FRAMES_MEDIA_TYPE, headers={"X-Frame-Count": str(len(rows)), CURSOR_HEADER: str(cursor)})

    @app.post(
        "/api/runs",
        tags=["ingest"],
        summary="Start a run that a live monitor will send frames to",
        status_code=201,
        response_model=CreatedRun,
        dependencies=ingest_api,
        responses=_errors(401, 403, 413, 422),
    )
    def create_run(new: NewRun = Body(...)) -> dict[str, Any]:
        key = new.key or secrets.token_urlsafe(24)
        digest = _digest(key)
        # Under the lock: a start sent again while the first is still being served (a monitor
        # whose short first try gave up on a busy server) waits for it, and gets the run it
        # started instead of a second one ("name-2") next to an empty one
        with writers_lock:
            if new.key is not None:
                started = next((run for run, ingested in writers.items() if ingested.digest == digest and not ingested.writer.closed), None)
                if started is not None:
                    return {"id": started, "max_upload_bytes": max_upload_bytes, "key": key}
            writer = store.create_run(new.name, model=new.model, config=new.config, stale_after=INGEST_STALE_SECONDS)
            try:  # (a digest, never the key: whoever reads the run file cannot take the run over)
                writer.put_state(INGEST_KEY_STATE, digest)
            except BaseException:
                writer.close(status="failed")
                raise
            writers[writer.run_id] = _Ingest(writer, digest=digest)
        watch.poke()
        return {"id": writer.run_id, "max_upload_bytes": max_upload_bytes, "key": key}

    @app.post(
        "/api/runs/{run}/resume",
        tags=["ingest"],
        summary="Go on with a run started with POST /api/runs, after this server restarted",
        description=(
            "The monitor that started the run (it holds the key POST /api/runs gave) goes on with it: the run is "
            "live again (an `interrupted` run, whose server stopped while it streamed, included) and takes frames "
            "after its old ones. 404: this log directory has no such run; 403: the key "
            "is not the run's (or the run was not started through ingest); 409: the run finished, or another "
            f"writer still writes it. The monitor then starts a new run. `last_seq` is the number ({SEQ_HEADER}) "
            "of the last frame the run stored: frames up to it need not be sent again."
        ),
        response_model=ResumedRun,
        dependencies=ingest_api,
        responses=_errors(401, 403, 404, 409, 422),
    )
    def resume_run(run: str, body: ResumeRun = Body(...)) -> dict[str, Any]:
        with open_reader(run) as reader:
            kept, before = reader.state(INGEST_KEY_STATE), reader.status()
        if kept is None or not hmac.compare_digest(kept, _digest(body.key)):
            raise ServerError(f"run {run!r} was not started by the monitor holding this key; start a new run with POST /api/runs", status_code=403)
        with writers_lock:
            ingested = writers.get(run)
            if ingested is None or ingested.writer.closed:
                try:  # (refused, under the run's write lock, if live elsewhere or finished)
                    writer = store.resume_run(run, stale_after=INGEST_STALE_SECONDS, reopen_finished=False)
                except StoreError as exc:
                    raise ServerError(f"run {run!r} cannot go on: {exc}", status_code=409) from None
                try:  # (read once the run is ours: no other writer can move it on now)
                    with open_reader(run) as reader:
                        ingested = _Ingest(writer, last_seq=_last_seq(reader.state(INGEST_SEQ_STATE)))
                        last_step = reader.info(details=False)["last_step"]
                except BaseException:  # the run as it was: its monitor may try again
                    writer.close(status=before if before in CLOSED_STATUSES else "interrupted")
                    raise
                writers[run] = ingested
            else:  # open here already (the answer to an earlier resume was lost): the same run
                with open_reader(run) as reader:
                    last_step = reader.info(details=False)["last_step"]
        hub.poke(run)
        watch.poke()
        return {"id": run, "max_upload_bytes": max_upload_bytes, "last_step": last_step, "last_seq": ingested.last_seq}

    @app.post(
        "/api/runs/{run}/frames",
        tags=["ingest"],
        summary="Append encoded frames to a run started with POST /api/runs",
        description=(
            "An empty body is a heartbeat: the run stays live while its monitor is idle.\n\n"
            f"Sending again is safe when the body is numbered: `{SEQ_HEADER}: N` says its frames are numbers N, "
            "N+1, ... in the order the sender wrote them (numbers only go up and are never reused; gaps are "
            "fine). The run keeps the number of the last frame it stored, in the same transaction as the "
            "frames; frames of a body numbered up to it are answered as accepted and not stored again (counted "
            "in `duplicates`), so a body whose answer was lost (a timeout, a dropped connection, a restart) can "
            "be sent again, whole, split, or with newer frames after it. A body without the header is stored "
            "as it is; a heartbeat needs no number."
        ),
        response_model=Accepted,
        response_model_exclude_none=True,
        openapi_extra={"requestBody": {"content": {FRAMES_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}}, "required": True}},
        dependencies=ingest_api,
        responses=_errors(401, 403, 404, 413, 415, 422, 503),
    )
    async def ingest(run: str, request: Request) -> dict[str, int]:
        ingested = writers.get(run)
        if ingested is None or ingested.writer.closed:
            raise ServerError(f"run {run!r} is not open for ingest here; start one with POST /api/runs", status_code=404)
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype not in (FRAMES_MEDIA_TYPE, "application/octet-stream", ""):
            raise ServerError(f"frames must be sent as {FRAMES_MEDIA_TYPE}, not {ctype!r}", status_code=415)
        seq = _seq_of(request.headers.get(SEQ_HEADER))
        body = await read_limited(request, max_upload_bytes, hint="; send smaller batches")
        try:
            accepted, duplicates = await asyncio.to_thread(_store_frames, ingested, body, seq)
        except FrameError as exc:
            raise ServerError(f"malformed frames: {exc}; nothing of this body was stored", status_code=422) from None
        except StoreError as exc:  # (a full disk, say: the sender keeps the frames and sends them again)
            raise ServerError(f"the server could not store these frames ({exc}); send them again later", status_code=503) from None
        if accepted > duplicates:
            hub.poke(run)
        return {"accepted": accepted} if seq is None else {"accepted": accepted, "duplicates": duplicates}

    @app.post(
        "/api/runs/{run}/close",
        tags=["ingest"],
        summary="Mark an ingested run finished or failed",
        response_model=Closed,
        dependencies=ingest_api,
        responses=_errors(401, 403, 404, 422),
    )
    def close_run(run: str, status: str = Body("finished", embed=True)) -> dict[str, str]:
        if status not in ("finished", "failed"):
            raise ServerError(f"status must be 'finished' or 'failed', not {status!r}", status_code=422)
        with writers_lock:
            ingested = writers.pop(run, None)
        if ingested is None:
            raise ServerError(f"run {run!r} is not open for ingest here", status_code=404)
        ingested.writer.close(status=status)
        hub.poke(run)
        watch.poke()
        return {"id": run, "status": status}

    def websocket_refusal(websocket: WebSocket) -> tuple[int, str] | None:
        if not token_ok(given_token(websocket.headers, websocket.query_params)):
            return 4401, "a valid token is required (?token=...)"
        if not same_origin(websocket.headers):
            # browsers let any page open a WebSocket anywhere: only our own pages (or listed origins) may
            return 4403, "cross-origin WebSocket refused; start the server with allow_origins to permit it"
        return None

    @app.websocket("/api/runs/{run}/live")
    async def live_run(websocket: WebSocket, run: str) -> None:
        """Every new frame of the run as one binary message; JSON text messages filter or replay
        (``{"kinds": [...], "layers": [...]}``; ``{"after": row id}``: the frames stored after that
        row, as ``X-Convscope-Cursor`` names it; ``{"since": step}``: those of later steps;
        ``{"cursors": true}``: a ``{"type": "cursor", "row": R}`` text message whenever it has
        caught up, to connect again from with ``after``)."""
        refusal = websocket_refusal(websocket)
        if refusal is not None:
            await websocket.close(code=refusal[0], reason=refusal[1])
            return
        try:
            if not valid_run_id(run):
                raise NotFoundError(run)
            viewer = await hub.subscribe(run)
        except (NotFoundError, StoreError):
            await websocket.close(code=4404, reason="no such run")
            return
        await websocket.accept()
        receiver = asyncio.create_task(_receive_filters(websocket, viewer, hub))
        try:
            await _send_frames(websocket, viewer, store, hub)
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass  # the client went away mid-send
        finally:
            hub.unsubscribe(viewer)
            receiver.cancel()

    @app.websocket("/api/live")
    async def live_runs(websocket: WebSocket) -> None:
        """JSON text messages ``{"type": "run", "run": RunInfo}`` when runs appear or change."""
        refusal = websocket_refusal(websocket)
        if refusal is not None:
            await websocket.close(code=refusal[0], reason=refusal[1])
            return
        await websocket.accept()
        queue = watch.listen()
        receiver = asyncio.create_task(_drain_until_closed(websocket, queue))
        try:
            for run_info in await asyncio.to_thread(store.list_runs):
                await websocket.send_text(json.dumps({"type": "run", "run": run_info}))
            while (changed := await queue.get()) is not None:
                await websocket.send_text(json.dumps({"type": "run", "run": changed}))
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass
        finally:
            watch.unlisten(queue)
            receiver.cancel()

    if (STATIC_DIR / "index.html").is_file():
        from fastapi.staticfiles import StaticFiles

        app.mount("/", StaticFiles(directory=STATIC_DIR, html=True), name="ui")
    else:

        @app.get("/", include_in_schema=False)
        def placeholder() -> HTMLResponse:
            return HTMLResponse(_PLACEHOLDER)

    return app


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def _seq_of(header: str | None) -> int | None:
    """The number of a body's first frame (``X-Convscope-Seq``), ``None`` when not numbered."""
    if header is None:
        return None
    value = header.strip()
    if not (value.isascii() and value.isdigit() and len(value) <= 19 and 1 <= int(value) <= MAX_STEP):
        raise ServerError(f"{SEQ_HEADER} must be a whole number from 1 to {MAX_STEP:,} (the number of the body's first frame), got {header[:40]!r}", status_code=422)
    return int(value)


def _last_seq(kept: bytes | None) -> int:
    """The number of the last frame a run stored, as :data:`INGEST_SEQ_STATE` keeps it (0: none)."""
    try:
        return int(kept) if kept else 0
    except ValueError:
        return 0  # (unreadable: take every frame, as before numbering)


def _store_frames(ingested: _Ingest, body: bytes, seq: int | None) -> tuple[int, int]:
    """Check every frame of an ingest body, then queue the exact bytes of those the run does not
    have yet and commit them (with the number of the body's last frame, when numbered).
    Returns the body's frames and, of those, the ones stored before."""
    view = memoryview(body)
    pieces = []
    pos = 0
    for frame in decode_stream(view, copy=False):  # raises FrameError before anything is stored
        if frame.step > MAX_STEP or not math.isfinite(frame.wall_time):
            raise FrameError(f"the frame at byte {pos} has step {frame.step} and wall_time {frame.wall_time}; steps go up to {MAX_STEP:,} and wall_time must be finite")
        size = encoded_size(view, pos)
        pieces.append((frame, pos, size))
        pos += size
    if seq is not None and seq + len(pieces) - 1 > MAX_STEP:
        raise FrameError(f"{SEQ_HEADER} {seq} numbers this body's {len(pieces)} frames past {MAX_STEP:,}")
    writer = ingested.writer
    with ingested.lock:
        seen = 0 if seq is None else min(len(pieces), max(0, ingested.last_seq - seq + 1))
        for frame, start, size in pieces[seen:]:
            writer.write_encoded(frame, body[start : start + size])
        if seq is None or seen == len(pieces):  # (nothing numbered to keep: a heartbeat at most)
            writer.flush(resend=True)
        else:
            last = seq + len(pieces) - 1
            writer.flush(state={INGEST_SEQ_STATE: str(last).encode()}, resend=True)
            ingested.last_seq = last  # (only once committed: a failed commit stores none of them)
    return len(pieces), seen


async def _send_frames(websocket: WebSocket, viewer: Viewer, store: RunStore, hub: LiveHub) -> None:
    skip_upto = 0
    # Cursors, for a client that asked for them ({"cursors": true}): once its request is served
    # (the replay it asked for, if any, sent), each time the queue runs dry after frames went out
    # (or were passed over), {"type": "cursor", "row": R}: every row up to R that its filters match
    # has reached it, on this connection or before it (what it read, what the replay sent), and
    # none after R, since rows come live in the order stored and the queue is empty. Connecting
    # again with {"after": R} gives it exactly the rest; the frames it got after the message come
    # again then, and it knows them by their bytes (web/src/api.ts).
    cursors = False
    moved = False  # frames went out since the last cursor
    while True:
        if cursors and moved and viewer.queue.empty():
            await websocket.send_text(json.dumps({"type": "cursor", "row": hub.cursor(viewer)}))
            moved = False
        item = await viewer.queue.get()
        if item is None:
            if viewer.overflowed:
                await websocket.close(code=1013, reason="this viewer fell too far behind; reconnect with {\"after\": row} or {\"since\": step}")
            return
        what = item[0]
        if what == "frame":
            _what, row_id, data = item
            viewer.pending_bytes -= len(data)
            if row_id > skip_upto:
                await websocket.send_bytes(data)
            moved = True
        elif what == "cursors":  # (queued after the replay the same message asked for)
            cursors = moved = True
        elif what == "status":
            await websocket.send_text(json.dumps({"type": "status", "status": item[1]}))
        elif what == "replay":
            _what, since, after, upto = item
            for data in await replay(store, viewer, since=since, after=after, upto=upto):
                await websocket.send_bytes(data)
            skip_upto = max(skip_upto, upto)  # queued frames up to here were in the replay
            moved = True
        elif what == "error":
            await websocket.close(code=1011, reason=f"the run can no longer be read: {item[1]}"[:120])
            return


async def _receive_filters(websocket: WebSocket, viewer: Viewer, hub: LiveHub) -> None:
    """Apply the client's ``{"kinds": [...], "layers": [...], "after": row id, "since": step,
    "cursors": true}`` messages (the filters first; ``after`` over ``since`` when both come;
    ``cursors``: see :func:`_send_frames`)."""
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            try:
                msg = json.loads(message.get("text") or "null")
            except json.JSONDecodeError:
                continue
            if not isinstance(msg, dict):
                continue
            filters = {"kinds": viewer.kinds, "layers": viewer.layers}
            for key in filters:
                value = msg.get(key, ...)
                if value is None or value == []:
                    filters[key] = None
                elif isinstance(value, list) and all(isinstance(v, str) for v in value):
                    filters[key] = frozenset(value)
            if filters != {"kinds": viewer.kinds, "layers": viewer.layers}:
                viewer.set_filters(after=hub.cursor(viewer), **filters)
            after, since = msg.get("after"), msg.get("since")
            if _is_int(after) and after >= 0:
                viewer.queue.put_nowait(("replay", None, after, hub.cursor(viewer)))
            elif _is_int(since):
                viewer.queue.put_nowait(("replay", since, None, hub.cursor(viewer)))
            if msg.get("cursors") is True:
                viewer.queue.put_nowait(("cursors",))
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass
    viewer.queue.put_nowait(None)


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)  # (JSON's true is no number)


async def _drain_until_closed(websocket: WebSocket, queue: asyncio.Queue[Any]) -> None:
    try:
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass
    queue.put_nowait(None)


async def read_limited(request: Request, limit: int, *, what: str = "the body", hint: str = "") -> bytes:
    """The request's body, or a 413 :class:`ServerError` as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ServerError(f"{what} is {int(declared):,} bytes, over the limit of {limit:,}{hint}", status_code=413)
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ServerError(f"{what} is over the limit of {limit:,} bytes{hint}", status_code=413)
        chunks.append(chunk)
    return b"".join(chunks)


class _BodyTooLarge(Exception):
    pass


async def _send_json(send: _Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class _BodyLimit:
    """413 for any request body over the limit, declared or streamed (pure ASGI)."""

    def __init__(self, app: Any, *, limit: int, paths: Mapping[str, int] | None = None) -> None:
        self.app = app
        self.limit = limit
        self.paths = dict(paths or {})

    async def __call__(self, scope: dict[str, Any], receive: _Receive, send: _Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.paths.get(scope.get("path", ""), self.limit)
        message = f"the request body is over this server's limit of {limit:,} bytes"
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await _send_json(send, 413, message)
                return
        received = 0
        started = False

        async def limited_receive() -> dict[str, Any]:
            nonlocal received
            msg = await receive()
            if msg["type"] == "http.request":
                received += len(msg.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge
            return msg

        async def watched_send(msg: dict[str, Any]) -> None:
            nonlocal started
            started = started or msg["type"] == "http.response.start"
            await send(msg)

        try:
            await self.app(scope, limited_receive, watched_send)
        except _BodyTooLarge:
            if not started:
                await _send_json(send, 413, message)


class _HeadAsGet:
    """HEAD answered as GET would be: the same status and headers, no body (pure ASGI).

    FastAPI's routes answer only the methods they name, and the UI's files, mounted at ``/``,
    would take a HEAD of an API route and answer 404. Everything a GET needs (the token, the
    run's existence) applies: the request goes through the GET route, only its body is left out.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: _Receive, send: _Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headless(msg: dict[str, Any]) -> None:
            if msg["type"] == "http.response.body":
                msg = {**msg, "body": b""}
            elif msg["type"] == "http.response.pathsend":  # (a file sent by the server itself: none)
                msg = {"type": "http.response.body", "body": b""}
            await send(msg)

        await self.app({**scope, "method": "GET"}, receive, headless)


class _TrustedHosts:
    """400 unless the ``Host`` header names this server (stops DNS rebinding on loopback)."""

    def __init__(self, app: Any, *, hosts: tuple[str, ...]) -> None:
        self.app = app
        self.hosts = {h.lower().strip("[]") for h in hosts}

    async def __call__(self, scope: dict[str, Any], receive: _Receive, send: _Send) -> None:
        if scope["type"] in ("http", "websocket"):
            host = next((v.decode("latin-1") for k, v in scope.get("headers", ()) if k == b"host"), "")
            name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
            if name.lower().strip("[]") not in self.hosts:
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 4400, "reason": "unexpected Host header"})
                    return
                await _send_json(send, 400, f"unexpected Host header {host!r}; open the server by the address it printed")
                return
        await self.app(scope, receive, send)


_PLACEHOLDER = """<!doctype html><html><head><meta charset="utf-8"><title>convscope</title>
<style>body{font:16px system-ui,sans-serif;max-width:42rem;margin:4rem auto;color:#222}</style></head>
<body><h1>convscope server</h1>
<p>The API is running (<a href="docs">API documentation</a>, <a href="api/runs">runs as JSON</a>),
but the web interface was not built into this installation.</p>
<p>It is built from <code>web/</code> with npm when convscope is installed from source
(<code>pip install -e .</code> with Node.js and npm on the PATH).</p></body></html>"""

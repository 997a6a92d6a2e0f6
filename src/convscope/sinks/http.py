"""Ship frames to a running convscope server (``watch(serve="http://host:port")``)."""

from __future__ import annotations

import json
import secrets
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, urlsplit, urlunsplit

from convscope.errors import ServerError
from convscope.frames import encode
from convscope.sinks._base import Sink, register_sink

if TYPE_CHECKING:
    from convscope.frames import Frame

__all__ = ["HttpSink"]

FRAMES_MEDIA_TYPE = "application/x-convscope-frames"
#: numbers a batch's frames for the server: the number of its first frame (the others follow)
SEQ_HEADER = "X-Convscope-Seq"


class _Refused(Exception):
    """The server answered with an HTTP error status."""

    def __init__(self, code: int, detail: str) -> None:
        super().__init__(f"server answered {code}: {detail}")
        self.code = code


@register_sink("http")
class HttpSink(Sink):
    """Sends frames in batches to a server's ingest endpoints (``POST /api/runs/{run}/frames``).

    The run is created on the server right away when it answers (one short try), else at a
    later flush; a server that started it without answering in time answers the next try with
    the same run (the sink asks with its own key). A server that is down, slow or restarting
    never holds training up:

    * every request times out after ``timeout`` seconds and one flush sends for at most that
      long, the rest waits for the next flush;
    * frames wait in a buffer bounded by ``max_buffer_bytes``; beyond it the oldest are
      dropped and counted in :attr:`dropped`;
    * after a failure the sink waits (0.5 s, doubling up to 30 s) before it tries again;
    * a batch whose answer never came (a timeout, a dropped connection, a restart) is sent
      again, and stored once: every frame has a number (1, 2, 3 ... in the order written), each
      batch says its first (header ``X-Convscope-Seq``), and the server stores no frame numbered
      up to the last one the run stored (it keeps that number with the frames). A server that
      does not know the header stores what it gets, as before;
    * batches stay under the server's size limit (it sends it when the run is created; a 413
      splits the batch); a single frame over the limit is dropped and counted;
    * frames still unsent when ``close()`` gives up are dropped and counted too (the monitor
      reports the count to its other sinks, such as the run store, as a ``dropped`` frame);
    * a server that could not store a batch (503: its disk full, say) gets it again at a later
      flush, as after a network error;
    * a server that stops gracefully marks the run ``interrupted`` (not failed: training goes
      on); once it restarted and forgot the run (404) it is asked to go on with it (``POST
      /api/runs/{run}/resume`` with the key the server gave when it started the run): a server
      restarted on the same log directory reopens the run, live again, and its dashboards go on
      following it; one that does not have the run (another log directory), or may not reopen
      it (it finished, or is someone else's), gets a new run, named alike;
    * while idle it sends an empty batch every ``heartbeat`` seconds, so the run stays
      ``live`` on the server (a run silent for 30 s is shown as crashed).

    Args:
        url: the server's base URL, e.g. ``http://127.0.0.1:8765``, or the address the server
            printed, ``http://host:8765/?token=TOKEN`` (the token is then taken from it and
            never sent in a URL).
        run: the run's name; model, config: shown on the Runs page.
        token: the server's token, if it has one (instead of ``?token=`` in ``url``).

    Example:
        >>> from convscope.frames import Frame
        >>> sink = HttpSink("http://127.0.0.1:9", timeout=0.2)  # nothing listens there
        >>> sink.write(Frame(run="r", step=1, kind="scalar", payload={"name": "loss", "value": 1.0}))
        >>> sink.run_id is None, sink.pending
        (True, 1)
    """

    name = "http"
    encodes = True

    def __init__(
        self,
        url: str,
        *,
        run: str | None = None,
        model: str | None = None,
        config: Mapping[str, Any] | None = None,
        token: str | None = None,
        timeout: float = 2.0,
        max_buffer_bytes: int = 64 << 20,
        batch_bytes: int = 4 << 20,
        heartbeat: float = 5.0,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ServerError(f"the server URL must start with http:// or https://, got {url!r}")
        parts = urlsplit(url.split("#", 1)[0])
        if token is None:
            token = next(iter(parse_qs(parts.query).get("token", [])), None)
        # the base URL, without the query: paths are appended to it, and it shows in messages
        self.url = urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")).rstrip("/")
        self.run_name, self.model, self.config = run, model, dict(config or {})
        self.token = token
        self.timeout = float(timeout)
        self.max_buffer_bytes = int(max_buffer_bytes)
        self.batch_bytes = int(batch_bytes)
        self._batch_bytes = self.batch_bytes  # the configured size, batch_bytes shrinks below it after refusals
        self.heartbeat = float(heartbeat)
        self.run_id: str | None = None
        #: the server's limit on one request body (it says so when the run is created)
        self.max_upload_bytes = 1 << 62
        #: every run id this sink has sent to (more than one if a restarted server could not go on with the run)
        self.run_ids: list[str] = []
        self._key: str | None = None  # the key to the run, from the server that started it
        # the key the next run this sink starts is asked for with: a start sent again, its answer
        # lost (a busy server, slower than the first short try), gets that run, not a second one
        self._new_key = secrets.token_urlsafe(24)
        self._forgotten: tuple[str, str] | None = None  # (run id, key) of a run the server no longer has open
        self.dropped = 0
        self.sent = 0
        # (number, encoded frame), oldest first. Frames leave only from the front, and come back
        # to it in order, so the numbers in the buffer always run on one by one: a batch from its
        # front is numbered by its first frame's number alone
        self._buffer: deque[tuple[int, bytes]] = deque()
        self._seq = 0  # the number of the last frame written
        self._size = 0
        self._retry_at = 0.0
        self._backoff = 0.5
        self._last_sent = 0.0
        self._lock = threading.RLock()
        try:
            self._open_run(min(self.timeout, 1.0))
        except Exception:  # noqa: BLE001  (the server may come up later: flush() retries)
            self._fail()

    @property
    def pending(self) -> int:
        """Frames waiting to be sent."""
        return len(self._buffer)

    def write(self, frame: Frame) -> None:
        data = encode(frame)
        with self._lock:
            self._seq += 1
            self._buffer.append((self._seq, data))
            self._size += len(data)
            while self._size > self.max_buffer_bytes and len(self._buffer) > 1:
                self._size -= len(self._buffer.popleft()[1])
                self.dropped += 1

    def flush(self, *, budget: float | None = None) -> None:
        """Send what is buffered, for at most ``budget`` seconds (default ``timeout``).

        Raises :class:`ServerError` when the server cannot be reached (the frames stay
        buffered and the next flush after the back-off tries again).
        """
        with self._lock:
            now = time.monotonic()
            if now < self._retry_at:
                return
            idle = not self._buffer
            if idle and (self.run_id is None or now - self._last_sent < self.heartbeat):
                return
            deadline = now + (self.timeout if budget is None else budget)
            try:
                if self.run_id is None:
                    self._open_run(self.timeout)
                if idle:
                    try:
                        self._post_frames([])
                    except _Refused as exc:
                        if exc.code != 404:
                            raise
                        self._forget_run()  # the server forgot the run (restarted): go on with it, or a new one
                        self._open_run(self.timeout)
                while self._buffer and time.monotonic() < deadline:
                    self._send_batch()
            except ServerError:
                self._fail()
                raise
            except Exception as exc:  # noqa: BLE001  (network errors of every kind)
                self._fail()
                raise ServerError(f"could not send frames to {self.url}: {exc}; its frames wait to be sent again") from None
            self._backoff = 0.5

    def _send_batch(self) -> None:
        while self._buffer and len(self._buffer[0][1]) > self.max_upload_bytes:
            self._size -= len(self._buffer.popleft()[1])  # one frame the server will never take
            self.dropped += 1
        if not self._buffer:
            return
        batch: list[tuple[int, bytes]] = []
        size = 0
        while self._buffer and (not batch or size + len(self._buffer[0][1]) <= self.batch_bytes):
            item = self._buffer.popleft()
            batch.append(item)
            size += len(item[1])
        self._size -= size
        try:
            self._post_frames(batch)
            self.batch_bytes = min(self._batch_bytes, self.batch_bytes * 2)  # back to full size after a shrink
        except _Refused as exc:
            if exc.code == 413 and len(batch) > 1:
                self.batch_bytes = max(1, size // 2)  # the server takes less: split
                self._unsend(batch, size)
            elif exc.code == 413 or exc.code == 422:
                self.dropped += len(batch)  # one frame over the limit, or frames it cannot read: never sendable
            elif exc.code == 404:
                self._unsend(batch, size)  # the server forgot the run (restarted): go on with it, or a new one
                self._forget_run()
                self._open_run(self.timeout)
            else:
                self._unsend(batch, size)
                raise ServerError(f"could not send frames to {self.url}: {exc}") from None
        except BaseException as exc:
            self._unsend(batch, size)
            if isinstance(exc, OSError) and len(batch) > 1:
                # a server refusing a body over its limit may close the connection before we
                # can read its 413: try smaller batches next time (harmless if it was down)
                self.batch_bytes = max(1, size // 2)
            raise

    def _unsend(self, batch: list[tuple[int, bytes]], size: int) -> None:
        self._buffer.extendleft(reversed(batch))
        self._size += size

    def _post_frames(self, batch: list[tuple[int, bytes]]) -> None:
        """Send ``batch`` (empty: a heartbeat, which needs no number)."""
        assert self.run_id is not None
        numbered = {SEQ_HEADER: str(batch[0][0])} if batch else {}
        body = b"".join(data for _seq, data in batch)
        self._post(f"/api/runs/{quote(self.run_id)}/frames", body, FRAMES_MEDIA_TYPE, self.timeout, headers=numbered)
        self.sent += len(batch)
        self._last_sent = time.monotonic()

    def _forget_run(self) -> None:
        """The server does not have the run open (it restarted): remember it, to ask to go on with it."""
        if self.run_id is not None and self._key is not None:
            self._forgotten = (self.run_id, self._key)
        self.run_id = self._key = None

    def _open_run(self, timeout: float) -> None:
        if not self._resume_run(timeout):
            self._create_run(timeout)

    def _resume_run(self, timeout: float) -> bool:
        """Go on with the run the server forgot, if it still has it and lets this sink: True if so.
        A network error leaves it to try again; a refusal (no such run, finished, not this
        sink's) means a new run."""
        if self._forgotten is None:
            return False
        run_id, key = self._forgotten
        try:
            answer = self._post(f"/api/runs/{quote(run_id)}/resume", json.dumps({"key": key}).encode(), "application/json", timeout)
        except _Refused:
            self._forgotten = None
            return False
        self._forgotten = None
        self._opened(answer, key)
        return True

    def _create_run(self, timeout: float) -> None:
        body = json.dumps({"name": self.run_name, "model": self.model, "config": self.config, "key": self._new_key}, default=str).encode()
        try:
            answer = self._post("/api/runs", body, "application/json", timeout)
        except _Refused as exc:
            raise ServerError(f"the server at {self.url} refused to start a run: {exc}") from None
        key = answer.get("key")
        self._opened(answer, key if isinstance(key, str) else None)  # (a server before resumes sends none)
        self._new_key = secrets.token_urlsafe(24)  # (a run started later is another run)

    def _opened(self, answer: Any, key: str | None) -> None:
        self.run_id = str(answer["id"])
        self._key = key
        if self.run_id not in self.run_ids:
            self.run_ids.append(self.run_id)
        stored = answer.get("last_seq")  # (resumed: frames up to it reached the run, whatever answers were lost)
        while isinstance(stored, int) and self._buffer and self._buffer[0][0] <= stored:
            self._size -= len(self._buffer.popleft()[1])
            self.sent += 1
        limit = answer.get("max_upload_bytes")
        if isinstance(limit, int) and limit > 0:
            # a body over the limit would be refused, and refused early: uvicorn answers 413
            # and closes the connection while the body is still being sent (a broken pipe here)
            self.max_upload_bytes = limit
            self._batch_bytes = min(self._batch_bytes, limit)
            self.batch_bytes = min(self.batch_bytes, limit)
        self._last_sent = time.monotonic()

    def _fail(self) -> None:
        self._retry_at = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, 30.0)

    def close(self, *, status: str = "finished", timeout: float = 10.0) -> None:
        """Send what is left (for up to ``timeout`` seconds) and mark the run ended."""
        with self._lock:
            self._retry_at = 0.0
            try:
                if self._buffer or self.run_id is None:
                    self.flush(budget=timeout)
            finally:
                if self._buffer:  # the server never got these: they are lost, and counted
                    self.dropped += len(self._buffer)
                    self._buffer.clear()
                    self._size = 0
                if self.run_id is not None:
                    self._close_run(status if status in ("finished", "failed") else "failed")

    def _close_run(self, status: str) -> None:
        run_id = self.run_id
        body = json.dumps({"status": status}).encode()
        try:
            try:
                self._post(f"/api/runs/{quote(str(run_id))}/close", body, "application/json", self.timeout)
            except _Refused as exc:
                if exc.code != 404:
                    raise
                # the server forgot the run (it restarted while this sink was idle): the run ends as
                # it should if the server still has it, else it stays as the old server left it
                # (interrupted, after a graceful stop)
                self._forget_run()
                if self._resume_run(self.timeout):
                    self._post(f"/api/runs/{quote(str(run_id))}/close", body, "application/json", self.timeout)
        except _Refused as exc:
            if exc.code != 404:
                raise ServerError(f"could not close run {run_id} on {self.url}: {exc}") from None
        except OSError as exc:
            raise ServerError(f"could not close run {run_id} on {self.url}: {exc}") from None

    def _post(self, path: str, body: bytes, content_type: str, timeout: float, *, headers: Mapping[str, str] | None = None) -> Any:
        headers = {"Content-Type": content_type, **(headers or {})}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(self.url + path, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            try:
                detail = json.loads(exc.read() or b"{}").get("detail", exc.reason)
            except (ValueError, AttributeError):
                detail = exc.reason
            finally:
                exc.close()
            if exc.code == 401:
                raise ServerError(f"the server at {self.url} needs a token: pass token= (or ?token= in serve=): {detail}") from None
            raise _Refused(exc.code, str(detail)) from None

"""Ship frames to a running convscope server (``watch(serve="http://host:port")``)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from convscope.errors import ServerError
from convscope.frames import encode
from convscope.sinks._base import Sink, register_sink

if TYPE_CHECKING:
    from convscope.frames import Frame

__all__ = ["HttpSink"]


@register_sink("http")
class HttpSink(Sink):
    """Sends frames in batches to a server's ingest endpoints.

    The run is created on the server at the first flush. A server that is down or slow
    never holds training up: requests time out after ``timeout`` seconds, frames wait in a
    bounded buffer (the oldest are dropped and counted beyond ``max_buffer_bytes``), and
    after a failure the sink waits (doubling up to 30 s) before it tries again.

    Args:
        url: the server's base URL, e.g. ``http://127.0.0.1:8765``.
        run: the run's name; model, config: shown on the Runs page.
        token: the server's token, if it has one.
    """

    name = "http"

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
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ServerError(f"the server URL must start with http:// or https://, got {url!r}")
        self.url = url.rstrip("/")
        self.run_name, self.model, self.config = run, model, dict(config or {})
        self.token = token
        self.timeout = timeout
        self.max_buffer_bytes = max_buffer_bytes
        self.batch_bytes = batch_bytes
        self.run_id: str | None = None
        self.dropped = 0
        self._buffer: deque[bytes] = deque()
        self._size = 0
        self._retry_at = 0.0
        self._backoff = 0.5

    def write(self, frame: Frame) -> None:
        data = encode(frame)
        self._buffer.append(data)
        self._size += len(data)
        while self._size > self.max_buffer_bytes and len(self._buffer) > 1:
            self._size -= len(self._buffer.popleft())
            self.dropped += 1

    def flush(self) -> None:
        if not self._buffer or time.monotonic() < self._retry_at:
            return
        try:
            if self.run_id is None:
                body = json.dumps({"name": self.run_name, "model": self.model, "config": self.config}, default=str).encode()
                self.run_id = self._post("/api/runs", body, "application/json")["id"]
            while self._buffer:
                batch, size = [], 0
                while self._buffer and (not batch or size + len(self._buffer[0]) <= self.batch_bytes):
                    data = self._buffer.popleft()
                    batch.append(data)
                    size += len(data)
                self._size -= size
                try:
                    self._post(f"/api/runs/{self.run_id}/frames", b"".join(batch), "application/x-convscope-frames")
                except Exception:
                    self._buffer.extendleft(reversed(batch))  # keep them for the next try
                    self._size += size
                    raise
            self._backoff = 0.5
        except Exception as exc:
            self._retry_at = time.monotonic() + self._backoff
            self._backoff = min(self._backoff * 2, 30.0)
            raise ServerError(f"could not send frames to {self.url}: {exc}") from None

    def close(self, *, status: str = "finished") -> None:
        self._retry_at = 0.0
        try:
            self.flush()
        finally:
            if self.run_id is not None:
                self._post(f"/api/runs/{self.run_id}/close", json.dumps({"status": status}).encode(), "application/json")

    def _post(self, path: str, body: bytes, content_type: str) -> Any:
        headers = {"Content-Type": content_type}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(self.url + path, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:300]
            exc.close()
            raise ServerError(f"server answered {exc.code}: {detail}") from None

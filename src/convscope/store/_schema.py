"""The run file's tables, connections, run ids and the rule that says whether a run is live."""

from __future__ import annotations

import json
import math
import os
import re
import socket
import sqlite3
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from convscope.errors import StoreError

RUN_SUFFIX = ".convscope.db"
#: where a run keeps the totals its ``dropped`` frames say, by cause (JSON), committed with them:
#: a listing of many long runs reads one row each instead of decoding every such frame
DROPPED_STATE = "dropped-totals"
#: where a run keeps its summary (JSON: each scalar's last value, each layer's gradient health, each
#: pruned layer's filters; see ``convscope.store._summary``), committed with the frames it sums up
SUMMARY_STATE = "run-summary"
#: what a healthy gradient check's header holds (frames' headers are compact JSON: see convscope.frames)
HEALTHY_HEADER = b'"status":"healthy"'
#: version of the file layout below (1: no ``series`` table; still readable)
FORMAT = 2
#: a live run whose writer is on another machine and has not written for this long crashed
STALE_SECONDS = 30.0
#: the statuses a writer closes a run with (:meth:`RunWriter.close`); ``interrupted``: the
#: server stopped while a remote monitor streamed the run into it (its training may go on, and
#: the run resumes as live if it reconnects)
CLOSED_STATUSES = ("finished", "failed", "crashed", "interrupted")
#: an idle writer still commits a heartbeat this often
HEARTBEAT_SECONDS = 1.0
#: 16 KiB pages: big blobs (feature maps) are written ~1.8x faster than with 4 KiB, same size
PAGE_SIZE = 16384

_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS frames (
    id INTEGER PRIMARY KEY,
    step INTEGER NOT NULL,
    wall_time REAL NOT NULL,
    layer TEXT NOT NULL,
    kind TEXT NOT NULL,
    size INTEGER NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS frames_by_kind ON frames (kind, layer, step);
CREATE TABLE IF NOT EXISTS series (
    kind TEXT NOT NULL,
    layer TEXT NOT NULL,
    count INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    first_step INTEGER NOT NULL,
    last_step INTEGER NOT NULL,
    first_id INTEGER NOT NULL,
    last_id INTEGER NOT NULL,
    thinned INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (kind, layer)
);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, data BLOB NOT NULL);
"""

#: the ``series`` rows of a format-1 file, computed (slowly) from its frames
LEGACY_SERIES = (
    "(SELECT kind, layer, COUNT(*) AS count, SUM(size) AS bytes, MIN(step) AS first_step, "
    "MAX(step) AS last_step, MIN(id) AS first_id, MAX(id) AS last_id, 0 AS thinned FROM frames GROUP BY kind, layer)"
)


def valid_run_id(run_id: object) -> bool:
    """True for ids made of letters, digits, ``.``, ``_`` and ``-`` (no paths, 128 chars at most).

    Example:
        >>> valid_run_id("lenet-2"), valid_run_id("../etc/passwd"), valid_run_id(".hidden")
        (True, False, False)
    """
    return isinstance(run_id, str) and bool(_RUN_ID.match(run_id)) and ".." not in run_id


def slug(name: str) -> str:
    """A run id made from a free-form name: anything outside ``[A-Za-z0-9._-]`` becomes ``-``."""
    text = re.sub(r"[^A-Za-z0-9._-]+", "-", name)
    while ".." in text:
        text = text.replace("..", ".")
    text = text.strip("-.")[:96].strip("-.")
    return text or "run"


def connect(path: Path, *, write: bool, immutable: bool = False) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit); WAL set up by the writer.

    ``immutable``: read a file that nothing writes any more (no WAL left) without SQLite's
    ``-shm`` index, which a directory this process may not write cannot hold.
    """
    try:
        if immutable:
            uri = f"{path.resolve().as_uri()}?immutable=1"
            con = sqlite3.connect(uri, uri=True, timeout=10.0, check_same_thread=False, isolation_level=None)
        else:
            con = sqlite3.connect(path, timeout=10.0, check_same_thread=False, isolation_level=None)
        con.execute("PRAGMA busy_timeout = 10000")
        if write:
            con.execute(f"PRAGMA page_size = {PAGE_SIZE}")  # only takes effect on a new file
            con.execute("PRAGMA journal_mode = WAL")
            # NORMAL: a commit is durable against a killed process (what matters here); only a
            # power cut may lose the last transactions. FULL would fsync every flush.
            con.execute("PRAGMA synchronous = NORMAL")
            con.execute("PRAGMA journal_size_limit = 67108864")  # the WAL shrinks back after checkpoints
        else:
            con.execute("PRAGMA query_only = 1")
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open run store file {path.name}: {exc}; is it a convscope run?") from None
    return con


def create_tables(
    con: sqlite3.Connection, meta: Mapping[str, Any], *, check: Callable[[dict[str, Any]], None] | None = None
) -> None:
    """Tables and first metadata in one transaction: a reader never sees a run half made.

    ``check`` is given the metadata the file holds before this, inside the transaction (which
    holds the run's write lock), and may refuse (raise): two processes that resume one run at
    once cannot both pass it.
    """
    try:
        con.execute("BEGIN IMMEDIATE")
        for statement in SCHEMA.split(";"):
            if statement.strip():
                con.execute(statement)
        if check is not None:
            check({k: json.loads(v) for k, v in con.execute("SELECT key, value FROM meta")})
        con.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", [(k, dumps(v)) for k, v in meta.items()])
        con.execute("COMMIT")
    except BaseException as exc:
        try:
            con.execute("ROLLBACK")
        except sqlite3.Error:
            pass
        if isinstance(exc, sqlite3.Error):
            raise StoreError(f"cannot create the run's tables: {exc}") from None
        raise


def dumps(value: Any) -> str:
    return json.dumps(value, default=str)


def process_start(pid: int) -> int | None:
    """When a process started (clock ticks since boot, Linux), to tell a reused pid apart."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    try:
        return int(fields[19]) if fields[0] != b"Z" else -1  # -1: a zombie, killed but not reaped
    except (IndexError, ValueError):
        return None


def writer_alive(pid: int, started: int | None) -> bool:
    """Whether the process ``pid`` (started at ``started``, if known) still runs on this machine."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, someone else's
    now = process_start(pid)
    if now == -1:
        return False
    return started is None or now is None or now == started


def status_of(meta: Mapping[str, Any], *, now: float | None = None) -> str:
    """``live``, ``finished``, ``failed``, ``crashed`` or ``interrupted`` from a run's metadata.

    ``interrupted``: the server stopped while a monitor was streaming the run into it; frames
    sent after that were not received, and the run resumes as live if its training reconnects.

    A run marked live is crashed when its writer process is gone (same machine: checked by pid
    and the process's start time), or when no heartbeat came for ``stale_after`` seconds (a
    writer on another machine, or a remote monitor feeding the server's ingest). A heartbeat or
    ``stale_after`` that is not a number (damaged or hand-edited metadata) counts as missing: a
    live run whose heartbeat cannot be read is crashed.
    """
    status = str(meta.get("status", "crashed"))
    if status != "live":
        return status
    now = time.time() if now is None else now
    age = now - (number(meta.get("updated")) or 0.0)
    stale_after = number(meta.get("stale_after"))
    pid = meta.get("pid")
    if meta.get("host") == socket.gethostname() and isinstance(pid, int) and not isinstance(pid, bool) and 0 < pid < 1 << 31:
        if not writer_alive(pid, meta.get("pid_start")):
            return "crashed"
        return "crashed" if stale_after is not None and age > stale_after else "live"
    return "live" if age < (stale_after or STALE_SECONDS) else "crashed"


def number(value: object) -> float | None:
    """``value`` as a finite float, or ``None`` where it is none (a string, a list, NaN, a bool ...)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        result = float(value)
    except OverflowError:  # (an int too big for a float)
        return None
    return result if math.isfinite(result) else None

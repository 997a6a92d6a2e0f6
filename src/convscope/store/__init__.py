"""The run store: every frame of a run in one embedded SQLite database (WAL), crash-safe.

A log directory holds one file per run, ``<run id>.convscope.db``. The writer commits in
batches (one transaction per :meth:`RunWriter.flush`); SQLite's write-ahead log means a
process killed at any moment (even ``kill -9``) leaves a database that opens with every
committed frame, and readers in other processes (the server) see new frames while the writer
goes on. Frames are stored as their encoded bytes (:mod:`convscope.frames`), so serving them
needs no decoding.

Long runs stay bounded: feature-map images, by far the largest frames, are kept at most
``max_images`` per layer (plus the newest): every ``stride``-th one is kept, and the stride
doubles whenever more would be kept, so the kept ones are always evenly spread over the run.
What was thinned is counted and reported in :meth:`RunReader.info`.

Example:
    >>> import tempfile, numpy as np
    >>> from convscope.frames import Frame
    >>> store = RunStore(tempfile.mkdtemp())
    >>> w = store.create_run("demo")
    >>> w.write(Frame(run=w.run_id, step=1, kind="scalar", payload={"name": "loss", "value": 0.5}))
    >>> w.close()
    >>> r = store.open_run(w.run_id)
    >>> r.info()["status"], [f.payload["value"] for f in r.frames(kind="scalar")]
    ('finished', [0.5])
"""

from __future__ import annotations

import json
import os
import re
import socket
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from convscope.errors import NotFoundError, StoreError
from convscope.frames import Frame, decode, encode

__all__ = ["RunReader", "RunStore", "RunWriter", "RUN_SUFFIX", "valid_run_id"]

RUN_SUFFIX = ".convscope.db"
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
#: a live run whose writer has not written for this long (and whose process is gone) crashed
STALE_SECONDS = 30.0

_SCHEMA = """
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
CREATE TABLE IF NOT EXISTS thinned (kind TEXT NOT NULL, layer TEXT NOT NULL, count INTEGER NOT NULL,
                                    PRIMARY KEY (kind, layer));
"""


def valid_run_id(run_id: str) -> bool:
    """True for ids made of letters, digits, ``.``, ``_`` and ``-`` (no paths, 128 chars at most)."""
    return isinstance(run_id, str) and bool(_RUN_ID.match(run_id)) and ".." not in run_id


def _slug(name: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")[:96].replace("..", ".")
    return slug or "run"


class RunStore:
    """A log directory of runs.

    Args:
        logdir: the directory (created when a run is created).
    """

    def __init__(self, logdir: str | os.PathLike[str]) -> None:
        self.logdir = Path(logdir)

    def path(self, run_id: str) -> Path:
        if not valid_run_id(run_id):
            raise NotFoundError(f"{run_id!r} is not a valid run id (letters, digits, '.', '_', '-')")
        return self.logdir / f"{run_id}{RUN_SUFFIX}"

    def create_run(
        self,
        name: str | None = None,
        *,
        model: str | None = None,
        config: Mapping[str, Any] | None = None,
        max_images: int = 200,
    ) -> RunWriter:
        """Start a new run; its id is ``name`` made safe, with ``-2``, ``-3`` … if taken."""
        self.logdir.mkdir(parents=True, exist_ok=True)
        base = _slug(name or time.strftime("run-%Y%m%d-%H%M%S"))
        for n in range(1, 10_000):
            run_id = base if n == 1 else f"{base}-{n}"
            path = self.path(run_id)
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)  # claim the name atomically
            except FileExistsError:
                continue
            os.close(fd)
            return RunWriter(path, run_id, name=name or run_id, model=model, config=config, max_images=max_images)
        raise StoreError(f"could not find a free run id for {base!r} in {self.logdir}")

    def open_run(self, run_id: str) -> RunReader:
        path = self.path(run_id)
        if not path.is_file():
            raise NotFoundError(f"run {run_id!r} does not exist in {self.logdir}")
        return RunReader(path)

    def run_ids(self) -> list[str]:
        if not self.logdir.is_dir():
            return []
        return sorted(p.name[: -len(RUN_SUFFIX)] for p in self.logdir.glob(f"*{RUN_SUFFIX}") if valid_run_id(p.name[: -len(RUN_SUFFIX)]))

    def list_runs(self) -> list[dict[str, Any]]:
        """Every readable run's :meth:`RunReader.info`, newest first (unreadable files are skipped)."""
        runs = []
        for run_id in self.run_ids():
            try:
                with self.open_run(run_id) as reader:
                    runs.append(reader.info(details=False))
            except (StoreError, NotFoundError, sqlite3.Error):
                continue
        return sorted(runs, key=lambda r: r["started"] or 0, reverse=True)


def _connect(path: Path, *, write: bool) -> sqlite3.Connection:
    try:
        con = sqlite3.connect(path, timeout=10.0, check_same_thread=False, isolation_level=None)
        con.execute("PRAGMA busy_timeout = 10000")
        if write:
            con.execute("PRAGMA journal_mode = WAL")
            con.execute("PRAGMA synchronous = NORMAL")
            con.executescript(_SCHEMA)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open run store {path.name}: {exc}") from None
    return con


class RunWriter:
    """Appends frames to one run. Thread-safe; ``write`` buffers, ``flush`` commits."""

    def __init__(
        self,
        path: Path,
        run_id: str,
        *,
        name: str,
        model: str | None,
        config: Mapping[str, Any] | None,
        max_images: int = 200,
    ) -> None:
        self.path = path
        self.run_id = run_id
        self.max_images = max_images
        self._lock = threading.Lock()
        self._buffer: list[tuple[int, float, str, str, int, bytes]] = []
        self._images: dict[str, dict[int, int]] = {}
        self._ordinals: dict[str, int] = {}
        self._strides: dict[str, int] = {}
        self._closed = False
        self._con = _connect(path, write=True)
        now = time.time()
        self._set_meta(
            {
                "run_id": run_id,
                "name": name,
                "model": model,
                "config": dict(config or {}),
                "started": now,
                "updated": now,
                "status": "live",
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "format": 1,
            }
        )

    def _set_meta(self, values: Mapping[str, Any]) -> None:
        rows = [(k, json.dumps(v, default=str)) for k, v in values.items()]
        with self._con:
            self._con.execute("BEGIN")
            self._con.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", rows)

    def write(self, frame: Frame) -> None:
        """Queue one frame (encoded now, committed at the next :meth:`flush`)."""
        data = encode(frame)
        with self._lock:
            if self._closed:
                raise StoreError(f"run {self.run_id} is closed")
            self._buffer.append((int(frame.step), float(frame.wall_time), frame.layer, frame.kind, len(data), data))

    def write_many(self, frames: Iterable[Frame]) -> None:
        for frame in frames:
            self.write(frame)

    def write_encoded(self, frame: Frame, data: bytes) -> None:
        """Queue a frame that is already encoded (the server's ingest path)."""
        with self._lock:
            if self._closed:
                raise StoreError(f"run {self.run_id} is closed")
            self._buffer.append((int(frame.step), float(frame.wall_time), frame.layer, frame.kind, len(data), data))

    def flush(self) -> int:
        """Commit everything written so far in one transaction; returns how many frames."""
        with self._lock:
            rows, self._buffer = self._buffer, []
            if self._closed and not rows:
                return 0
            try:
                self._con.execute("BEGIN IMMEDIATE")
                for row in rows:
                    cur = self._con.execute(
                        "INSERT INTO frames (step, wall_time, layer, kind, size, data) VALUES (?, ?, ?, ?, ?, ?)", row
                    )
                    if row[3] == "feature_maps":
                        self._keep_image(row[2], int(cur.lastrowid))
                self._con.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('updated', ?)", (json.dumps(time.time()),))
                self._con.execute("COMMIT")
            except sqlite3.Error as exc:
                try:
                    self._con.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                raise StoreError(f"writing run {self.run_id} failed: {exc}") from None
            return len(rows)

    def _keep_image(self, layer: str, row_id: int) -> None:
        """Retention of feature-map frames: keep every ``stride``-th one and the newest.

        When more than ``max_images`` are kept the stride doubles, so the kept frames are
        always evenly spaced over the whole run.
        """
        kept = self._images.setdefault(layer, {})  # row id -> ordinal
        ordinal = self._ordinals.get(layer, 0)
        self._ordinals[layer] = ordinal + 1
        stride = self._strides.setdefault(layer, 1)
        drop = [i for i, o in kept.items() if o % stride and o == ordinal - 1]  # the previous newest, off-stride
        kept[row_id] = ordinal
        while len(kept) - len(drop) > self.max_images:
            stride *= 2
            drop = [i for i, o in kept.items() if o % stride and i != row_id]
        self._strides[layer] = stride
        if drop:
            self._con.executemany("DELETE FROM frames WHERE id = ?", [(i,) for i in drop])
            for i in drop:
                kept.pop(i, None)
            self._con.execute(
                "INSERT INTO thinned (kind, layer, count) VALUES ('feature_maps', ?, ?) "
                "ON CONFLICT (kind, layer) DO UPDATE SET count = count + excluded.count",
                (layer, len(drop)),
            )

    def close(self, *, status: str = "finished") -> None:
        """Commit what is left and mark the run ``finished`` (or ``failed``)."""
        if self._closed:
            return
        self.flush()
        with self._lock:
            self._closed = True
        try:
            self._set_meta({"status": status, "updated": time.time(), "ended": time.time()})
            self._con.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            self._con.close()

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        self.close(status="finished" if exc_type is None else "failed")


class RunReader:
    """Reads one run, also while its writer is still writing (from any process)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.run_id = path.name[: -len(RUN_SUFFIX)]
        self._con = _connect(path, write=False)
        try:
            self._con.execute("SELECT 1 FROM meta LIMIT 1").fetchall()
        except sqlite3.DatabaseError as exc:
            self._con.close()
            raise StoreError(f"{path.name} is not a readable convscope run ({exc})") from None

    def close(self) -> None:
        self._con.close()

    def __enter__(self) -> RunReader:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- summary ----------------------------------------------------------------------------
    def meta(self) -> dict[str, Any]:
        return {k: json.loads(v) for k, v in self._con.execute("SELECT key, value FROM meta")}

    def info(self, *, details: bool = True) -> dict[str, Any]:
        """The run's summary: id, name, status (live / finished / failed / crashed), steps, sizes."""
        meta = self.meta()
        first, last, count = self._con.execute("SELECT MIN(step), MAX(step), COUNT(*) FROM frames").fetchone()
        info: dict[str, Any] = {
            "id": self.run_id,
            "name": meta.get("name", self.run_id),
            "status": _status(meta),
            "started": meta.get("started"),
            "updated": meta.get("updated"),
            "model": meta.get("model"),
            "first_step": first,
            "last_step": last,
            "frames": count,
        }
        if details:
            info["kinds"] = self.kinds()
            info["layers"] = self.layers()
            info["thinned"] = {
                f"{kind}:{layer}": n for kind, layer, n in self._con.execute("SELECT kind, layer, count FROM thinned")
            }
            info["meta"] = {"config": meta.get("config"), **self._latest_meta()}
        return info

    def _latest_meta(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for (data,) in self._con.execute("SELECT data FROM frames WHERE kind = 'run_meta' ORDER BY id"):
            payload = decode(data).payload
            for key in ("graph", "config"):
                if payload.get(key) is not None:
                    out[key] = payload[key]
        return out

    def status(self) -> str:
        """live, finished, failed or crashed (cheap: reads only the run's metadata)."""
        return _status(self.meta())

    def kinds(self) -> dict[str, int]:
        return dict(self._con.execute("SELECT kind, COUNT(*) FROM frames GROUP BY kind ORDER BY kind"))

    def layers(self) -> list[str]:
        rows = self._con.execute("SELECT layer, MIN(id) AS first FROM frames WHERE layer != '' GROUP BY layer ORDER BY first")
        return [r[0] for r in rows]

    def steps(self, *, kind: str | None = None, layer: str | None = None) -> list[int]:
        where, args = _where([kind] if kind else None, [layer] if layer is not None else None, None, None)
        return [r[0] for r in self._con.execute(f"SELECT DISTINCT step FROM frames {where} ORDER BY step", args)]

    # --- frames -----------------------------------------------------------------------------
    def raw_frames(
        self,
        *,
        kind: str | Sequence[str] | None = None,
        layer: str | Sequence[str] | None = None,
        start: int | None = None,
        end: int | None = None,
        limit: int | None = None,
        max_points: int | None = None,
        latest: bool = False,
        after_id: int | None = None,
    ) -> list[tuple[int, bytes]]:
        """``(row id, encoded frame)`` pairs ordered by step, filtered and optionally downsampled.

        Args:
            kind, layer: one or several to keep (default all).
            start, end: inclusive step range.
            limit: at most this many (the first ones).
            max_points: at most about this many distinct steps, evenly spread over the
                range, the first and the last always kept.
            latest: only the newest frame of each (kind, layer) at or before ``end``.
            after_id: only frames stored after that row id (live tailing), in storage order.
        """
        kinds = [kind] if isinstance(kind, str) else kind
        layers = [layer] if isinstance(layer, str) else layer
        where, args = _where(kinds, layers, start, end)
        if after_id is not None:
            where += (" AND " if where else "WHERE ") + "id > ?"
            args.append(int(after_id))
            order = "id"
        else:
            order = "step, id"
        if latest:
            outer, outer_args = _where(kinds, layers, start, end, prefix="f.")
            sql = (
                f"SELECT f.id, f.data FROM frames f JOIN (SELECT kind, layer, MAX(step) AS s FROM frames {where} "
                "GROUP BY kind, layer) m ON f.kind = m.kind AND f.layer = m.layer AND f.step = m.s "
                f"{outer.replace('WHERE', 'AND', 1)} ORDER BY f.step, f.id"
            )
            return self._con.execute(sql, args + outer_args).fetchall()
        if max_points is not None and max_points > 0:
            steps = [r[0] for r in self._con.execute(f"SELECT DISTINCT step FROM frames {where} ORDER BY step", args)]
            if len(steps) > max_points:
                keep = sorted({steps[round(i * (len(steps) - 1) / max(1, max_points - 1))] for i in range(max_points)})
                where += (" AND " if where else "WHERE ") + f"step IN ({','.join('?' * len(keep))})"
                args = args + keep
        sql = f"SELECT id, data FROM frames {where} ORDER BY {order}"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(int(limit))
        return self._con.execute(sql, args).fetchall()

    def frames(self, **filters: Any) -> list[Frame]:
        """Decoded frames; takes the filters of :meth:`raw_frames`."""
        return [decode(data) for _id, data in self.raw_frames(**filters)]

    def last_id(self) -> int:
        return int(self._con.execute("SELECT COALESCE(MAX(id), 0) FROM frames").fetchone()[0])


def _where(
    kinds: Sequence[str] | None,
    layers: Sequence[str] | None,
    start: int | None,
    end: int | None,
    *,
    prefix: str = "",
) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    args: list[Any] = []
    if kinds:
        clauses.append(f"{prefix}kind IN ({','.join('?' * len(kinds))})")
        args += list(kinds)
    if layers:
        clauses.append(f"{prefix}layer IN ({','.join('?' * len(layers))})")
        args += list(layers)
    if start is not None:
        clauses.append(f"{prefix}step >= ?")
        args.append(int(start))
    if end is not None:
        clauses.append(f"{prefix}step <= ?")
        args.append(int(end))
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", args


def _status(meta: Mapping[str, Any]) -> str:
    status = str(meta.get("status", "crashed"))
    if status != "live":
        return status
    if meta.get("host") == socket.gethostname() and isinstance(meta.get("pid"), int):
        if not _alive(int(meta["pid"])):
            return "crashed"
        return "live"
    updated = meta.get("updated") or 0
    return "live" if time.time() - float(updated) < STALE_SECONDS else "crashed"


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie (killed, not yet reaped by its parent) is not alive either
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True

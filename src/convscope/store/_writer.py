"""RunWriter: appends frames to one run file, one transaction per flush, with retention."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from convscope.errors import StoreError
from convscope.frames import Frame, encode
from convscope.store._reader import RunReader, drop_totals
from convscope.store._schema import (
    CLOSED_STATUSES,
    DROPPED_STATE,
    FORMAT,
    HEARTBEAT_SECONDS,
    SUMMARY_STATE,
    connect,
    create_tables,
    dumps,
    process_start,
    status_of,
)
from convscope.store._summary import Note, RunSummary, note, summary_from_frames

#: the ``sink`` of the ``dropped`` frames in which a run counts the frames its own commits lost
LOST_SINK = "store"
#: kinds whose frames are thinned by default, and how many per layer are kept
DEFAULT_RETENTION: dict[str, int] = {"feature_maps": 200}

_Row = tuple[int, int, float, str, str, int, bytes]  # id, step, wall_time, layer, kind, size, data


@dataclass
class _Series:
    count: int = 0
    bytes: int = 0
    first_step: int = 0
    last_step: int = 0
    first_id: int = 0
    last_id: int = 0
    thinned: int = 0


@dataclass
class _Thinning:
    """Which frames of one thinned series are kept: ``row id -> (ordinal, size)``."""

    stride: int = 1
    seen: int = 0
    kept: dict[int, tuple[int, int]] = field(default_factory=dict)


class RunWriter:
    """Appends frames to one run. Thread-safe; :meth:`write` buffers, :meth:`flush` commits.

    Made by :meth:`RunStore.create_run`; frames become visible to readers (in any process) at
    the next :meth:`flush`, which is one transaction. A writer killed at any moment leaves
    every flushed frame readable and its run reported as ``crashed``.

    Example:
        >>> import tempfile
        >>> from convscope.frames import Frame
        >>> from convscope.store import RunStore
        >>> with RunStore(tempfile.mkdtemp()).create_run("demo") as w:
        ...     w.write(Frame(run=w.run_id, step=1, kind="scalar", payload={"name": "loss", "value": 1.0}))
        ...     w.flush()
        1
    """

    def __init__(
        self,
        path: Path,
        run_id: str,
        *,
        name: str,
        model: str | None,
        config: Mapping[str, Any] | None,
        retention: Mapping[str, int] | None = None,
        stale_after: float | None = None,
        resume: bool = False,
        reopen_finished: bool = True,
    ) -> None:
        self.path = path
        self.run_id = run_id
        earlier: Mapping[str, Any] = {}  # a resumed run's metadata as it was
        if resume:
            earlier = _resumable(path, run_id, reopen_finished=reopen_finished)
            retention = retention if retention is not None else earlier.get("retention")
        self.retention = dict(DEFAULT_RETENTION if retention is None else retention)
        for kind, keep in self.retention.items():
            if int(keep) < 2:
                raise StoreError(f"retention for {kind!r} must keep at least 2 frames per layer, got {keep}")
        self._lock = threading.Lock()  # guards the buffer (write() is cheap and never waits on a commit)
        self._commit = threading.Lock()  # one transaction at a time
        # (step, wall time, layer, kind, encoded frame, what it adds to the run's summary)
        self._buffer: list[tuple[int, float, str, str, bytes, Note | None]] = []
        self._series: dict[tuple[str, str], _Series] = {}
        self._thinning: dict[tuple[str, str], _Thinning] = {}
        self._closed = False
        #: frames lost in flushes that failed (a full disk ...) by this writer: counted, never
        #: silently gone, and kept in the run itself (see :meth:`_lost_report`)
        self.lost = 0
        self._lost_before = 0  # a resumed run's frames lost by its earlier writers
        self._lost_reported = 0  # ``lost`` as the run holds it
        self._lost_step = 0  # the newest step among the lost frames
        self._drops: dict[str, int] = {}  # what the run's dropped frames say, by cause (as DROPPED_STATE keeps it)
        self._summary = RunSummary()  # the run's summary so far (as SUMMARY_STATE keeps it)
        # whether the run holds its summary row: written with its first frames even where none of
        # them adds to it, so that only a run written by an older convscope is summed from its frames
        self._summary_kept = False
        self._con = connect(path, write=True)
        self._file_id = (0, 0)
        now = time.time()
        self._beat = now
        meta: dict[str, Any] = {
            "run_id": run_id,
            "name": name,
            "model": model,
            "config": dict(config or {}),
            "started": now,
            "updated": now,
            "status": "live",
            "pid": os.getpid(),
            "pid_start": process_start(os.getpid()),
            "host": socket.gethostname(),
            "format": FORMAT,
            "retention": self.retention,
        }
        if stale_after is not None:
            meta["stale_after"] = float(stale_after)
        #: a resumed run's last step before this writer (``None`` for a new run, or one without frames)
        self.resumed_from: int | None = None
        try:
            st = os.stat(path)
            self._file_id = (st.st_dev, st.st_ino)
            if resume:  # the run keeps its name, model, config and start; it is live again, written from here
                for key in ("name", "model", "config", "started"):
                    del meta[key]
                meta["resumed"] = [*earlier.get("resumed", []), now]
            check = (lambda now_meta: _may_write(now_meta, run_id, reopen_finished=reopen_finished)) if resume else None
            create_tables(self._con, meta, check=check)
            if resume:
                self._con.execute("DELETE FROM meta WHERE key = 'ended'")
                self._load_series()
                steps = [s.last_step for s in self._series.values()]
                self.resumed_from = max(steps) if steps else None
                # (decoded once here: a run written before the totals were kept has only its frames)
                self._drops = drop_totals(self._dropped_rows())
                self._lost_before = self._drops.get(LOST_SINK, 0)
                self._summary, self._summary_kept = self._stored_summary()
            self._next_id = 1 + int(self._con.execute("SELECT COALESCE(MAX(id), 0) FROM frames").fetchone()[0])
        except BaseException:
            self._con.close()
            raise

    def dropped_totals(self) -> dict[str, int]:
        """The run's ``dropped`` counts so far, by sink (each frame holds a running total: the
        largest); ``store`` counts the frames this run's own commits lost (:attr:`lost`, with
        those of the writers before a resume), once a commit after the loss succeeded."""
        with self._commit:
            return dict(self._drops)

    def summary(self) -> dict[str, Any]:
        """The run's summary so far, as committed (:meth:`RunReader.summary
        <convscope.store.RunReader.summary>`): a resumed run's goes on from what it held."""
        with self._commit:
            return self._summary.to_json()

    def _stored_summary(self) -> tuple[RunSummary, bool]:
        """A resumed run's summary, and whether the run kept it: else (written by an older
        convscope, or damaged) it is worked out from its frames."""
        row = self._con.execute("SELECT data FROM state WHERE key = ?", (SUMMARY_STATE,)).fetchone()
        kept = None if row is None else RunSummary.decode(bytes(row[0]))
        if kept is not None:
            return kept, True
        return summary_from_frames(lambda sql, args: self._con.execute(sql, args).fetchall()), False

    def _dropped_rows(self) -> list[bytes]:
        return [data for (data,) in self._con.execute("SELECT data FROM frames WHERE kind = 'dropped'").fetchall()]

    def _load_series(self) -> None:
        """A resumed run's summaries, and the retention state of each thinned series: which of
        the frames it has seen each kept one was, and the stride. A frame's place among them is
        worked out from its step (the series' frames come at a steady pace, as the monitor
        records them), so a crashed writer's last frames, kept for one more flush, are thinned
        at the next one, and retention goes on spreading the kept frames over the whole run."""
        for kind, layer, *numbers in self._con.execute(
            "SELECT kind, layer, count, bytes, first_step, last_step, first_id, last_id, thinned FROM series"
        ).fetchall():
            s = self._series[(kind, layer)] = _Series(*numbers)
            if kind not in self.retention or not s.count:
                continue
            seen = s.count + s.thinned
            pace = (s.last_step - s.first_step) / max(1, seen - 1)  # steps between two frames seen
            rows = self._con.execute("SELECT id, step, size FROM frames WHERE kind = ? AND layer = ? ORDER BY id", (kind, layer)).fetchall()
            t = self._thinning[(kind, layer)] = _Thinning(seen=seen)
            t.kept = {row_id: (min(seen - 1, round((step - s.first_step) / pace) if pace else i), size) for i, (row_id, step, size) in enumerate(rows)}
            while t.stride * s.count < seen and t.stride < seen:  # the stride that kept this many of them
                t.stride *= 2

    def _set_meta(self, values: Mapping[str, Any]) -> None:
        rows = [(k, dumps(v)) for k, v in values.items()]
        self._commit_rows("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", rows, "metadata")

    def _commit_rows(self, sql: str, rows: list[tuple[Any, ...]], what: str) -> None:
        """``rows`` through ``sql`` in a transaction of their own, committed at once."""
        with self._commit:
            try:
                self._con.execute("BEGIN IMMEDIATE")
                self._con.executemany(sql, rows)
                self._con.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise StoreError(f"writing run {self.run_id}'s {what} failed: {exc}") from None

    def put_state(self, key: str, data: bytes) -> None:
        """Keep ``data`` under ``key`` in the run, in place of what was there: what a training
        resumed from its checkpoint goes on from (the in situ monitor's trajectory trackers;
        read back with :meth:`RunReader.state <convscope.store.RunReader.state>`). Committed at once."""
        with self._lock:
            self._check_open()
        self._commit_rows("INSERT OR REPLACE INTO state (key, data) VALUES (?, ?)", [(key, sqlite3.Binary(data))], f"state {key!r}")

    # --- writing ------------------------------------------------------------------------------
    def write(self, frame: Frame) -> None:
        """Queue one frame (encoded now, committed at the next :meth:`flush`)."""
        self.write_encoded(frame, encode(frame))

    def write_many(self, frames: Iterable[Frame]) -> None:
        """Queue several frames: all of them or, raising (a frame that cannot be encoded), none."""
        rows = [(int(f.step), float(f.wall_time), f.layer, f.kind, encode(f), note(f)) for f in frames]
        with self._lock:
            self._check_open()
            self._buffer.extend(rows)

    def write_encoded(self, frame: Frame, data: bytes) -> None:
        """Queue a frame that is already encoded as ``data`` (the server's ingest path)."""
        row = (int(frame.step), float(frame.wall_time), frame.layer, frame.kind, data, note(frame))
        with self._lock:
            self._check_open()
            self._buffer.append(row)

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"run {self.run_id} is closed; create a new run to write more frames")

    @property
    def pending(self) -> int:
        """Frames written but not committed yet."""
        return len(self._buffer)

    def flush(self, *, state: Mapping[str, bytes] | None = None, resend: bool = False) -> int:
        """Commit everything written so far in one transaction; returns how many frames.

        With nothing to commit it only refreshes the run's heartbeat, at most once a second.

        Args:
            state: entries to keep as :meth:`put_state` does, in the same transaction as the
                frames: a crash keeps both or neither (the server's ingest keeps the number of
                the last frame it stored this way, to know a frame sent again).
            resend: the frames' sender still has them and sends them again if the commit fails
            (the server's ingest, whose failure answer says so): a failed commit then raises
            without counting them lost in the run.
        """
        return self._flush(final=False, state=state, resend=resend)

    def _flush(self, *, final: bool, state: Mapping[str, bytes] | None = None, resend: bool = False) -> int:
        with self._commit:
            with self._lock:
                pending, self._buffer = self._buffer, []
            if self._closed and not pending and not final:
                return 0  # closed (or closing: close() commits its own final heartbeat)
            now = time.time()
            if not pending and not final and not state and now - self._beat < HEARTBEAT_SECONDS:
                return 0
            next_id = self._next_id
            rows: list[_Row] = []
            notes: list[Note] = []
            for i, (step, wall_time, layer, kind, data, n) in enumerate(pending):
                rows.append((next_id + i, step, wall_time, layer, kind, len(data), data))
                if n is not None:
                    notes.append(n)
            report = self._lost_report(next_id + len(rows), now) if rows or final else None
            if report is not None:
                rows.append(report)
            drops = self._drops_with(rows)
            if drops is not None:
                state = {**(state or {}), DROPPED_STATE: json.dumps(drops).encode()}
            # (kept with the frames it sums up)
            summary = self._summary.with_notes(notes) if notes or (rows and not self._summary_kept) else None
            if summary is not None:
                state = {**(state or {}), SUMMARY_STATE: summary.encode()}
            touched: set[tuple[str, str]] = set()
            saved = self._save_state(rows, final=final)
            try:
                if rows:  # (a heartbeat into a removed file loses nothing)
                    self._check_file()
                self._con.execute("BEGIN IMMEDIATE")
                if rows or final:
                    self._con.executemany(
                        "INSERT INTO frames (id, step, wall_time, layer, kind, size, data) VALUES (?, ?, ?, ?, ?, ?, ?)", rows
                    )
                    drop = self._account(rows, touched, final=final)
                    if drop:
                        self._con.executemany("DELETE FROM frames WHERE id = ?", [(i,) for i in drop])
                    self._con.executemany(
                        "INSERT OR REPLACE INTO series (kind, layer, count, bytes, first_step, last_step, first_id, last_id, thinned) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [(k, layer, *vars(self._series[(k, layer)]).values()) for k, layer in touched],
                    )
                if state:
                    self._con.executemany("INSERT OR REPLACE INTO state (key, data) VALUES (?, ?)", [(k, sqlite3.Binary(v)) for k, v in state.items()])
                self._con.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('updated', ?)", (dumps(now),))
                self._con.execute("COMMIT")
            except (sqlite3.Error, StoreError) as exc:
                self._rollback()
                self._restore_state(saved)
                lost = rows[:-1] if report is not None else rows  # (the report is made again at the next flush)
                if not lost and not isinstance(exc, sqlite3.Error):
                    return 0  # only the report, at the end of a run whose file is gone: the loss was said when it happened
                if resend:
                    raise StoreError(f"writing {len(lost)} frames to run {self.run_id} failed: {exc}; nothing of them was stored") from None
                self.lost += len(lost)
                self._lost_step = max([self._lost_step, *(step for _id, step, *_rest in lost)])
                if isinstance(exc, StoreError):
                    raise
                raise StoreError(
                    f"writing {len(lost)} frames to run {self.run_id} failed: {exc}; they are lost "
                    f"({self.lost} so far), the run keeps what came before and will say how many it lost"
                ) from None
            self._next_id = next_id + len(rows)
            self._beat = now
            if drops is not None:
                self._drops = drops
            if summary is not None:
                self._summary, self._summary_kept = summary, True
            if report is not None:
                self._lost_reported = self.lost
            return len(pending)

    def _drops_with(self, rows: list[_Row]) -> dict[str, int] | None:
        """The run's drop totals with those of the ``dropped`` frames among ``rows`` (each holds
        a running total: the largest stands), or ``None`` where ``rows`` hold none."""
        new = [data for _id, _step, _t, _layer, kind, _size, data in rows if kind == "dropped"]
        if not new:
            return None
        drops = dict(self._drops)
        for cause, count in drop_totals(new).items():
            drops[cause] = max(drops.get(cause, 0), count)
        return dict(sorted(drops.items()))

    def _lost_report(self, row_id: int, now: float) -> _Row | None:
        """A ``dropped`` frame (sink ``store``) saying how many frames the run's commits have lost
        so far, if more than the run says: committed with the next frames (or the run's end), so
        that whoever opens the run sees the gap, as the monitor's other sinks do."""
        if self.lost <= self._lost_reported:
            return None
        payload = {"count": self._lost_before + self.lost, "sink": LOST_SINK}
        data = encode(Frame(run=self.run_id, step=self._lost_step, kind="dropped", payload=payload, wall_time=now))
        return (row_id, self._lost_step, now, "", "dropped", len(data), data)

    def heartbeat(self) -> None:
        """Tell readers the writer is alive (:meth:`flush` does this too)."""
        with self._commit:
            if self._closed:
                return
            now = time.time()
            self._set_meta_locked("updated", now)
            self._beat = now

    def _set_meta_locked(self, key: str, value: Any) -> None:
        try:
            self._con.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, dumps(value)))
        except sqlite3.Error as exc:
            raise StoreError(f"writing run {self.run_id}'s heartbeat failed: {exc}") from None

    def _rollback(self) -> None:
        try:
            self._con.execute("ROLLBACK")
        except sqlite3.Error:
            pass

    def _save_state(self, rows: list[_Row], *, final: bool) -> dict[tuple[str, str], tuple[_Series | None, _Thinning | None]]:
        """Copies of the summaries and retention state a flush of ``rows`` changes, so that a
        transaction that fails leaves them as they were: retention then goes on thinning the
        frames it kept before (forgetting them would keep them for good, over the budget)."""
        keys = {(kind, layer) for _id, _step, _wall, layer, kind, _size, _data in rows}
        if final:
            keys |= self._thinning.keys()
        saved: dict[tuple[str, str], tuple[_Series | None, _Thinning | None]] = {}
        for key in keys:
            s, t = self._series.get(key), self._thinning.get(key)
            saved[key] = (
                None if s is None else replace(s),
                None if t is None else _Thinning(t.stride, t.seen, dict(t.kept)),
            )
        return saved

    def _restore_state(self, saved: dict[tuple[str, str], tuple[_Series | None, _Thinning | None]]) -> None:
        for key, (s, t) in saved.items():
            if s is None:
                self._series.pop(key, None)
            else:
                self._series[key] = s
            if t is None:
                self._thinning.pop(key, None)
            else:
                self._thinning[key] = t

    def _check_file(self) -> None:
        """Refuse to commit into a run file that was removed (or replaced) since it was opened:
        SQLite would go on writing to the deleted file, and every frame would be lost unseen."""
        try:
            st = os.stat(self.path)
            same = (st.st_dev, st.st_ino) == self._file_id
        except OSError:
            same = False
        if not same:
            raise StoreError(
                f"run {self.run_id}'s file {self.path} was removed or replaced while it was written; "
                "its frames from here on are lost (watch again with a logdir= that stays)"
            )

    # --- summaries and retention ---------------------------------------------------------------
    def _account(self, rows: list[_Row], touched: set[tuple[str, str]], *, final: bool = False) -> list[int]:
        """Update the per-series summaries; return the ids that retention drops."""
        fresh: dict[tuple[str, str], list[tuple[int, int]]] = {}
        for row_id, step, _wall, layer, kind, size, _data in rows:
            key = (kind, layer)
            touched.add(key)
            s = self._series.get(key)
            if s is None:
                s = self._series[key] = _Series(0, 0, step, step, row_id, row_id)
            s.count += 1
            s.bytes += size
            s.first_step = min(s.first_step, step)
            s.last_step = max(s.last_step, step)
            s.last_id = row_id
            if kind in self.retention:
                fresh.setdefault(key, []).append((row_id, size))
        if final:  # the run ends: bring every thinned series within its budget
            for key in self._thinning:
                fresh.setdefault(key, [])
        drop: list[int] = []
        for key, new in fresh.items():
            s = self._series[key]
            touched.add(key)
            for gone, gone_size in self._thin(key, new, int(self.retention[key[0]]), final=final):
                drop.append(gone)
                s.count -= 1
                s.bytes -= gone_size
                s.thinned += 1
        return drop

    def _thin(self, key: tuple[str, str], new: list[tuple[int, int]], keep: int, *, final: bool) -> list[tuple[int, int]]:
        """Keep every ``stride``-th frame of the series and its newest one.

        When more than ``keep`` would be kept the stride doubles (every other kept frame goes),
        so the kept frames always spread evenly over the whole run, its first frame included.
        The newest frames of a flush (up to a quarter of ``keep``) are kept until the next
        flush, so a live reader polling the run sees them (a run holds at most 1.25 ``keep``
        while written); the run's last flush trims them (``keep`` at most once closed).
        """
        t = self._thinning.setdefault(key, _Thinning())
        for row_id, size in new:
            t.kept[row_id] = (t.seen, size)
            t.seen += 1
        if not t.kept:
            return []
        newest = max(t.kept, key=lambda i: t.kept[i][0])
        protected = {newest} if final else {newest, *(i for i, _sz in new[-max(1, keep // 4) :])}

        def off_stride() -> list[tuple[int, int]]:
            return [(i, sz) for i, (o, sz) in t.kept.items() if o % t.stride and i not in protected]

        settled = sum(1 for i in t.kept if i not in protected)  # protected frames are extra, for one flush
        gone = off_stride()
        while settled - len(gone) + 1 > keep and t.stride < t.seen:
            t.stride *= 2
            gone = off_stride()
        for i, _sz in gone:
            del t.kept[i]
        return gone

    # --- end ------------------------------------------------------------------------------------
    def close(self, *, status: str = "finished") -> None:
        """Commit what is left and mark the run ``status``; idempotent.

        ``status`` is one of ``CLOSED_STATUSES``: ``finished``, ``failed``, ``crashed``, or
        ``interrupted`` (the server's ingest, when it stops while a remote monitor still streams
        the run: the training may go on, and resumes the run when it reconnects).
        """
        if status not in CLOSED_STATUSES:
            accepted = ", ".join(repr(s) for s in CLOSED_STATUSES)
            raise StoreError(f"a run closes as one of {accepted}, not {status!r}")
        with self._lock:
            if self._closed:
                return
            self._closed = True  # from here on write() refuses; flush() still commits what came before
        try:
            self._flush(final=True)
        finally:
            try:
                now = time.time()
                self._set_meta({"status": status, "updated": now, "ended": now})
                with self._commit, contextlib.suppress(sqlite3.Error):  # (a checkpoint that fails loses nothing: the WAL holds it)
                    self._con.execute("PRAGMA wal_checkpoint(PASSIVE)")
            finally:
                self._con.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        self.close(status="finished" if exc_type is None else "failed")

    def __repr__(self) -> str:
        return f"RunWriter({self.run_id!r}, pending={self.pending}, closed={self._closed})"


def _resumable(path: Path, run_id: str, *, reopen_finished: bool) -> dict[str, Any]:
    """The metadata of the run at ``path``, checked that the run can be written again (not live,
    this format)."""
    with RunReader(path) as reader:
        meta = reader.meta()
    _may_write(meta, run_id, reopen_finished=reopen_finished)
    if meta.get("format") != FORMAT:
        raise StoreError(f"run {run_id} was written in store format {meta.get('format')}, which this convscope does not resume; start a new run")
    return meta


def _may_write(meta: Mapping[str, Any], run_id: str, *, reopen_finished: bool) -> None:
    """Refuse to write a run that its writer (another process, or another writer here) still
    writes, and a finished one unless ``reopen_finished``."""
    status = status_of(meta)
    if status == "live":
        raise StoreError(
            f"run {run_id} is live: its writer (pid {meta.get('pid')} on {meta.get('host')}) is still writing it; "
            "resume a run once that process has ended"
        )
    if status == "finished" and not reopen_finished:
        raise StoreError(f"run {run_id} has finished and is not reopened; start a new run")

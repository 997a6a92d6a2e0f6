"""RunReader: queries one run file, also while a writer in another process appends to it."""

from __future__ import annotations

import contextlib
import heapq
import itertools
import json
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from convscope.errors import StoreError
from convscope.frames import Frame, check_kinds, decode
from convscope.store._schema import (
    DROPPED_STATE,
    FORMAT,
    HEALTHY_HEADER,
    LEGACY_SERIES,
    RUN_SUFFIX,
    SUMMARY_STATE,
    connect,
    number,
    status_of,
)
from convscope.store._summary import RunSummary, summary_from_frames

__all__ = ["RunReader"]

_Filter = str | Sequence[str] | None
_CANTOPEN = 14  # SQLITE_CANTOPEN


class RunReader:
    """Reads one run (from any process, while its writer goes on).

    Every query is its own short read transaction, so a reader never holds the writer up.
    Made by :meth:`RunStore.open_run`; close it (or use ``with``) when done.

    Example:
        >>> import tempfile
        >>> from convscope.frames import Frame
        >>> from convscope.store import RunStore
        >>> store = RunStore(tempfile.mkdtemp())
        >>> with store.create_run("r") as w:
        ...     for step in range(1, 6):
        ...         w.write(Frame(run="r", step=step, kind="scalar", payload={"name": "loss", "value": 1 / step}))
        >>> with store.open_run("r") as reader:
        ...     [f.step for f in reader.frames(kind="scalar", max_points=3)], reader.info()["status"]
        ([1, 3, 5], 'finished')
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.run_id = path.name[: -len(RUN_SUFFIX)]
        self._con = connect(path, write=False)
        try:
            try:
                tables = self._tables()
            except sqlite3.OperationalError as exc:
                # A WAL file is read through its ``-shm`` index, which SQLite makes beside it: in a
                # directory this process may not write (a read-only mount, another user's runs)
                # it cannot. A run with no ``-wal`` left (closed) is all in its file: read as is.
                if getattr(exc, "sqlite_errorcode", None) != _CANTOPEN or os.path.exists(f"{path}-wal") or not path.is_file():
                    raise
                self._con.close()
                self._con = connect(path, write=False, immutable=True)
                tables = self._tables()
            fmt = self._format() if "meta" in tables else 1
        except sqlite3.DatabaseError as exc:
            self._con.close()
            raise StoreError(f"{path.name} is not a readable convscope run ({exc}); move it out of the log directory") from None
        if not {"meta", "frames"} <= tables:
            self._con.close()
            raise StoreError(f"{path.name} is not a readable convscope run (no frames table yet, or another kind of database)")
        if fmt > FORMAT:
            self._con.close()
            raise StoreError(
                f"{path.name} was written by a newer convscope (run store format {fmt}; this one reads up to {FORMAT}); "
                "upgrade convscope to read it"
            )
        self._series_sql = "series" if "series" in tables else LEGACY_SERIES
        self._has_state = "state" in tables

    def _tables(self) -> set[str]:
        return {r[0] for r in self._con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}

    def _format(self) -> int:
        """The file's store format (1 where it does not say; a damaged value is left to :meth:`meta`)."""
        row = self._con.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
        try:
            fmt = json.loads(row[0]) if row else 1
        except (TypeError, ValueError):
            return FORMAT
        return fmt if isinstance(fmt, int) else FORMAT

    def close(self) -> None:
        self._con.close()

    def __enter__(self) -> RunReader:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        try:
            return self._con.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"reading run {self.run_id} failed: {exc}") from None

    def state(self, key: str) -> bytes | None:
        """What the writer kept under ``key`` with ``RunWriter.put_state`` (``None`` if nothing)."""
        return self._states(key).get(key)

    def _states(self, *keys: str) -> dict[str, bytes]:
        """What the writer kept under each of ``keys`` that it kept something under: one query."""
        if not self._has_state:  # (a run written before runs kept state)
            return {}
        rows = self._query(f"SELECT key, data FROM state WHERE key IN ({','.join('?' * len(keys))})", keys)
        return {str(k): bytes(data) for k, data in rows}

    # --- summary ----------------------------------------------------------------------------
    def meta(self) -> dict[str, Any]:
        """The run's metadata: name, model, config, started, updated, status, writer pid and host."""
        rows = self._query("SELECT key, value FROM meta")
        try:
            return {k: json.loads(v) for k, v in rows}
        except (TypeError, ValueError) as exc:
            raise StoreError(f"run {self.run_id}'s metadata is damaged ({exc}); its frames may still be read with sqlite3") from None

    def info(self, *, details: bool = True) -> dict[str, Any]:
        """The run's summary (the API's RunInfo, drops by cause and :meth:`summary` among it; with
        ``details``, also kinds, layers, frames per series, thinning and meta).

        Cheap at any run length: it reads the per-series summary, the drop totals and the run's
        summary that the writer keeps, not the frames.
        """
        meta = self.meta()
        kept = self._states(DROPPED_STATE, SUMMARY_STATE)  # (one row each, one query)
        first, last, count = self._query(f"SELECT MIN(first_step), MAX(last_step), COALESCE(SUM(count), 0) FROM {self._series_sql}")[0]
        name, model = meta.get("name"), meta.get("model")
        info: dict[str, Any] = {  # (what damaged metadata holds in place of a name or a time is left out)
            "id": self.run_id,
            "name": name if isinstance(name, str) else self.run_id,
            "status": status_of(meta),
            "started": number(meta.get("started")),
            "updated": number(meta.get("updated")),
            "model": model if isinstance(model, str) else None,
            "first_step": first,
            "last_step": last,
            "frames": int(count),
            # (a run written before runs kept these reads its frames: its dropped ones, its summary kinds)
            "dropped": self._dropped(kept.get(DROPPED_STATE)),
            "summary": self._summary(kept.get(SUMMARY_STATE)).to_json(),
        }
        if details:
            series = self.series()
            info["kinds"] = _kinds(series)
            info["layers"] = _layers(series)
            info["thinned"] = {f"{s['kind']}:{s['layer']}": s["thinned"] for s in series if s["thinned"]}
            # (what a chart that asked for at most so many frames of a series was not sent: its
            # words count a series whole, say "13 of 1,500 checks", from this)
            info["counts"] = {f"{s['kind']}:{s['layer']}": s["count"] for s in series}
            info["meta"] = {"config": meta.get("config"), "retention": meta.get("retention"), **self._run_meta()}
        return info

    def _run_meta(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for (data,) in self._query("SELECT data FROM frames WHERE kind = 'run_meta' ORDER BY id"):
            payload = decode(data).payload
            for key in ("graph", "config"):
                if payload.get(key) is not None:
                    out[key] = payload[key]
        return out

    def dropped(self) -> dict[str, int]:
        """What the run's ``dropped`` frames say was lost, by what lost it: ``queue`` (work
        dropped from the monitor's full queue), ``budget`` (recording steps put off), a sink's
        name (frames it could not deliver; ``store``: frames this run's own commits lost)."""
        return self._dropped(self.state(DROPPED_STATE))

    def _dropped(self, kept: bytes | None) -> dict[str, int]:
        if kept is not None:  # (committed with the frames)
            try:
                totals = json.loads(kept)
                if isinstance(totals, dict) and all(isinstance(v, int) for v in totals.values()):
                    return {str(k): int(v) for k, v in sorted(totals.items())}
            except ValueError:
                pass  # (damaged: the frames say it again)
        return drop_totals(data for (data,) in self._query("SELECT data FROM frames WHERE kind = 'dropped'"))

    def summary(self) -> dict[str, Any]:
        """The run at a glance: each logged scalar's last value, each layer's gradient health and
        each pruned layer's filters, as the writer keeps them with the frames (running totals:
        frames that retention thinned still count)::

            {"scalars": {"loss": {"value": 0.31, "step": 1200}},
             "health": {"conv1": {"status": "stalled", "step": 1200, "flagged": 12, "checks": 60}},
             "filters": {"conv1": {"before": 16, "after": 12, "prunings": 1, "first_step": 300, "step": 300}}}

        The last value (and check) is that of the largest step. A value that is not finite is the
        string ``"nan"``, ``"inf"`` or ``"-inf"``. A run written before runs kept it has it worked
        out from its frames (of the kinds concerned; only the frames it takes values from decoded).
        """
        return self._summary(self.state(SUMMARY_STATE)).to_json()

    def _summary(self, kept: bytes | None) -> RunSummary:
        summary = None if kept is None else RunSummary.decode(kept)
        return summary if summary is not None else summary_from_frames(self._query)

    def status(self) -> str:
        """``live``, ``finished``, ``failed``, ``crashed`` or ``interrupted`` (the server stopped
        while a monitor streamed the run into it; it resumes as live if its training reconnects).
        Reads only the metadata."""
        return status_of(self.meta())

    def series(self) -> list[dict[str, Any]]:
        """One entry per (kind, layer): count, bytes, first/last step and id, frames thinned."""
        cols = ("kind", "layer", "count", "bytes", "first_step", "last_step", "first_id", "last_id", "thinned")
        rows = self._query(f"SELECT {', '.join(cols)} FROM {self._series_sql} ORDER BY first_id")
        return [dict(zip(cols, r, strict=True)) for r in rows]

    def kinds(self) -> dict[str, int]:
        """Frames stored per kind."""
        return _kinds(self.series())

    def layers(self) -> list[str]:
        """Layer ids that have frames, in the order they first appeared."""
        return _layers(self.series())

    def steps(self, *, kind: str | None = None, layer: str | None = None) -> list[int]:
        """The distinct steps that have frames (of that kind and layer), ascending."""
        where, args = _where(_as_kinds(kind), _as_list(layer), None, None)
        return [r[0] for r in self._query(f"SELECT DISTINCT step FROM frames {where} ORDER BY step", args)]

    def last_id(self) -> int:
        """The newest frame's row id (0 for an empty run): the cursor for :meth:`tail`."""
        return int(self._query("SELECT COALESCE(MAX(id), 0) FROM frames")[0][0])

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        """The queries made inside read the run as the first of them found it (one read
        transaction): :meth:`last_id` and then :meth:`raw_frames` agree on which rows exist,
        however the writer goes on meanwhile. Keep it short: the writer's log cannot be folded
        into the file past a snapshot that is still held."""
        if self._con.in_transaction:  # (inside another: that one holds)
            yield
            return
        try:
            self._con.execute("BEGIN")
        except sqlite3.Error as exc:
            raise StoreError(f"reading run {self.run_id} failed: {exc}") from None
        try:
            yield
        finally:
            with contextlib.suppress(sqlite3.Error):  # (a read: nothing to lose if the end fails)
                self._con.execute("COMMIT")

    # --- frames -----------------------------------------------------------------------------
    def raw_frames(
        self,
        *,
        kind: _Filter = None,
        layer: _Filter = None,
        start: int | None = None,
        end: int | None = None,
        limit: int | None = None,
        max_points: int | None = None,
        latest: bool = False,
        after_id: int | None = None,
    ) -> list[tuple[int, bytes]]:
        """``(row id, encoded frame)`` pairs ordered by step, filtered and optionally thinned.

        The bytes are exactly what was written (:func:`convscope.frames.encode`), so a server
        can send them on without decoding.

        Args:
            kind, layer: one or several to keep (default all).
            start, end: inclusive step range.
            limit: at most this many (the first ones).
            max_points: thin each (kind, layer) series that has more frames than this to
                at most this many steps, evenly spread over its step range (the first step
                at or after each of ``max_points`` evenly spaced marks), its first and last
                step always kept. Shorter series come whole. A ``gradient_health`` series
                keeps every check that flagged its layer besides (a status other than
                ``healthy``): a flag of a few checks never falls between the steps kept.
            latest: only the newest frames of each (kind, layer) at or before ``end``.
            after_id: only frames stored after that row id, in storage order (see :meth:`tail`).
        """
        kinds, layers = _as_kinds(kind), _as_list(layer)
        where, args = _where(kinds, layers, start, end)
        if after_id is not None:
            where += (" AND " if where else "WHERE ") + "id > ?"
            args.append(int(after_id))
            sql = f"SELECT id, data FROM frames {where} ORDER BY id"
        elif latest:
            sql, args = self._latest_sql(kinds, layers, start, end)
        elif max_points is not None:
            if max_points < 1:
                raise StoreError(f"max_points must be at least 1, got {max_points}")
            sql, args = self._thinned_sql(kinds, layers, start, end, int(max_points))
        else:
            sql = f"SELECT id, data FROM frames {where} ORDER BY step, id"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(int(limit))
        return self._query(sql, args)

    def _latest_sql(
        self, kinds: list[str] | None, layers: list[str] | None, start: int | None, end: int | None
    ) -> tuple[str, list[Any]]:
        # one index seek per series (kind, layer) for its newest step, then that step's frames;
        # CROSS JOIN keeps SQLite from scanning the frames first
        outer, args = _where(kinds, layers, None, None, prefix="s.")
        inner, inner_args = _where(None, None, start, end, prefix="g.")
        inner = inner.replace("WHERE", "AND", 1)
        sql = (
            "WITH m AS MATERIALIZED (SELECT s.kind, s.layer, (SELECT MAX(g.step) FROM frames g "
            f"WHERE g.kind = s.kind AND g.layer = s.layer {inner}) AS step FROM {self._series_sql} s {outer}) "
            "SELECT f.id, f.data FROM m CROSS JOIN frames f ON f.kind = m.kind AND f.layer = m.layer AND f.step = m.step "
            "ORDER BY f.step, f.id"
        )
        return sql, inner_args + args

    def _thinned_sql(
        self, kinds: list[str] | None, layers: list[str] | None, start: int | None, end: int | None, m: int
    ) -> tuple[str, list[Any]]:
        # Series with more than m frames: m marks evenly spaced over the series' step range
        # [lo, hi]; each picks the first step at or after it (the last mark: the last step),
        # one index seek each. Shorter series come whole. Never a scan of a long series.
        outer, args = _where(kinds, layers, None, None, prefix="s.")
        lo = -(2**62) if start is None else int(start)
        hi = 2**62 if end is None else int(end)
        m = int(m)  # numbers go into the SQL text as literals: ints only
        seek = "FROM frames g WHERE g.kind = b.kind AND g.layer = b.layer AND g.step BETWEEN"
        sql = (
            f"WITH RECURSIVE t(k) AS (SELECT 0 UNION ALL SELECT k + 1 FROM t WHERE k + 1 < {m}), "
            f"b AS MATERIALIZED (SELECT s.kind, s.layer, s.count, MAX(s.first_step, {lo}) AS lo, MIN(s.last_step, {hi}) AS hi "
            f"FROM {self._series_sql} s {outer}), "
            f"p AS MATERIALIZED (SELECT DISTINCT b.kind, b.layer, CASE WHEN t.k = {m - 1} "
            f"THEN (SELECT MAX(g.step) {seek} b.lo AND b.hi) "
            f"ELSE (SELECT MIN(g.step) {seek} b.lo + (t.k * (b.hi - b.lo)) / {max(m - 1, 1)} AND b.hi) END AS step "
            f"FROM b CROSS JOIN t WHERE b.count > {m} AND b.lo <= b.hi), "
            # a thinned gradient-health series' flagged checks (its frames read through, their
            # headers searched for the healthy status without decoding), and the check right
            # before and right after each in the range, so that a flagged stretch ends where it
            # ended: two stretches apart stay apart however many healthy checks were thinned
            "fl AS MATERIALIZED (SELECT b.kind, b.layer, b.lo, b.hi, f.step FROM b CROSS JOIN frames f ON f.kind = b.kind "
            f"AND f.layer = b.layer AND f.step BETWEEN b.lo AND b.hi WHERE b.count > {m} AND b.kind = 'gradient_health' "
            "AND instr(f.data, ?) = 0), "
            "e AS (SELECT kind, layer, step FROM fl UNION "
            "SELECT fl.kind, fl.layer, (SELECT MAX(g.step) FROM frames g WHERE g.kind = fl.kind AND g.layer = fl.layer "
            "AND g.step >= fl.lo AND g.step < fl.step) FROM fl UNION "
            "SELECT fl.kind, fl.layer, (SELECT MIN(g.step) FROM frames g WHERE g.kind = fl.kind AND g.layer = fl.layer "
            "AND g.step > fl.step AND g.step <= fl.hi) FROM fl) "
            "SELECT id, data FROM ("
            "SELECT f.id, f.step, f.data FROM p CROSS JOIN frames f ON f.kind = p.kind AND f.layer = p.layer AND f.step = p.step "
            "UNION ALL SELECT f.id, f.step, f.data FROM b CROSS JOIN frames f ON f.kind = b.kind AND f.layer = b.layer "
            f"AND f.step BETWEEN b.lo AND b.hi WHERE b.count <= {m} "
            # (those checks, where not at a step kept already)
            "UNION ALL SELECT f.id, f.step, f.data FROM e CROSS JOIN frames f ON f.kind = e.kind AND f.layer = e.layer "
            "AND f.step = e.step WHERE e.step NOT IN (SELECT p.step FROM p WHERE p.kind = e.kind AND p.layer = e.layer)"
            ") ORDER BY step, id"
        )
        return sql, [*args, HEALTHY_HEADER]

    def count(
        self, *, kind: _Filter = None, layer: _Filter = None, start: int | None = None, end: int | None = None,
        upto_id: int | None = None,
    ) -> int:
        """How many frames :meth:`iter_raw_frames` gives for the same filters: one COUNT per
        (kind, layer) on the index, which reads no frame."""
        total = 0
        for s in self._chosen_series(kind, layer):
            where, args = _series_where(s["kind"], s["layer"], start, end, upto_id)
            total += int(self._query(f"SELECT COUNT(*) FROM frames {where}", args)[0][0])
        return total

    def iter_raw_frames(
        self,
        *,
        kind: _Filter = None,
        layer: _Filter = None,
        start: int | None = None,
        end: int | None = None,
        upto_id: int | None = None,
        batch: int = 256,
        batch_bytes: int = 16 << 20,
    ) -> Iterator[tuple[int, bytes]]:
        """The ``(row id, encoded frame)`` pairs of :meth:`raw_frames` (ordered by step, then id),
        read a batch at a time, so that memory stays bounded whatever the run's length.

        Each read is its own short query: a writer going on meanwhile is never held up. The
        order comes from merging each (kind, layer)'s row ids, which the index holds in step
        order; the frames are then read ``batch`` at a time (fewer where a series' frames are
        big: about ``batch_bytes`` a read).

        Args:
            kind, layer, start, end: as for :meth:`raw_frames`.
            upto_id: only frames stored at or before this row id (:meth:`last_id` before
                reading makes the frames of a live run one snapshot, counted by :meth:`count`);
                a frame the writer thins away meanwhile is left out.
            batch, batch_bytes: most frames, and about the most bytes, read at once.
        """
        chosen = self._chosen_series(kind, layer)
        if not chosen:
            return
        biggest = max(int(s["bytes"]) / max(int(s["count"]), 1) for s in chosen)
        per_read = max(1, min(int(batch), int(batch_bytes // max(biggest, 1.0))))
        keys = heapq.merge(*(self._series_keys(s["kind"], s["layer"], start, end, upto_id) for s in chosen))
        while ids := [row_id for _step, row_id in itertools.islice(keys, per_read)]:
            data = dict(self._query(f"SELECT id, data FROM frames WHERE id IN ({','.join('?' * len(ids))})", ids))
            for row_id in ids:
                if row_id in data:  # (else thinned away since its id was read)
                    yield row_id, data.pop(row_id)

    def _chosen_series(self, kind: _Filter, layer: _Filter) -> list[dict[str, Any]]:
        kinds, layers = _as_kinds(kind), _as_list(layer)
        # (an empty list filters nothing, as in raw_frames)
        return [s for s in self.series() if (not kinds or s["kind"] in kinds) and (not layers or s["layer"] in layers)]

    def _series_keys(
        self, kind: str, layer: str, start: int | None, end: int | None, upto_id: int | None, *, page: int = 512
    ) -> Iterator[tuple[int, int]]:
        """``(step, row id)`` of one series in that order, a page at a time (a seek in the index each)."""
        where, args = _series_where(kind, layer, start, end, upto_id)
        after: tuple[int, int] | None = None
        while True:
            more, more_args = (where + " AND (step, id) > (?, ?)", [*args, *after]) if after else (where, list(args))
            rows = self._query(f"SELECT step, id FROM frames {more} ORDER BY step, id LIMIT ?", [*more_args, page])
            yield from rows
            if len(rows) < page:
                return
            after = rows[-1]

    def tail(self, after_id: int, *, limit: int = 256) -> list[tuple[int, str, str, bytes]]:
        """``(row id, kind, layer, encoded frame)`` stored after ``after_id``, oldest first.

        The cheap query behind live streams: it seeks the primary key, whatever the run's length.
        """
        return self._query("SELECT id, kind, layer, data FROM frames WHERE id > ? ORDER BY id LIMIT ?", (int(after_id), int(limit)))

    def frames(self, **filters: Any) -> list[Frame]:
        """Decoded frames; takes the filters of :meth:`raw_frames`."""
        return [decode(data) for _id, data in self.raw_frames(**filters)]


def drop_totals(frames: Iterable[bytes]) -> dict[str, int]:
    """The counts of encoded ``dropped`` frames by sink: each holds a running total, so the largest."""
    totals: dict[str, int] = {}
    for data in frames:
        payload = decode(data).payload
        count = number(payload.get("count", 0))
        if count is not None:  # (a count that is not a number says nothing)
            sink = str(payload.get("sink", "queue"))
            totals[sink] = max(totals.get(sink, 0), int(count))
    return dict(sorted(totals.items()))


def _as_list(value: _Filter) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, Iterable) or isinstance(value, bytes):
        raise StoreError(f"a filter is a name or several, got {type(value).__name__}")
    return [value] if isinstance(value, str) else list(value)


def _as_kinds(value: _Filter) -> list[str] | None:
    """The kinds asked for, each one a frame has: a misspelt kind is said, not answered with nothing."""
    kinds = _as_list(value)
    if kinds:
        check_kinds(kinds, StoreError)
    return kinds


def _kinds(series: list[dict[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for s in series:
        out[s["kind"]] = out.get(s["kind"], 0) + int(s["count"])
    return dict(sorted(out.items()))


def _layers(series: list[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(s["layer"] for s in series if s["layer"]))  # series come in first-seen order


def _series_where(kind: str, layer: str, start: int | None, end: int | None, upto_id: int | None) -> tuple[str, list[Any]]:
    """The frames of one (kind, layer) in a step range, stored at or before ``upto_id``: a range of the index."""
    where, args = _where([kind], [layer], start, end)
    if upto_id is not None:
        where += " AND id <= ?"
        args.append(int(upto_id))
    return where, args


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

"""RunStore: a log directory of run files."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from convscope._names import near_misses
from convscope.errors import NotFoundError, StoreError
from convscope.store._reader import RunReader
from convscope.store._schema import RUN_SUFFIX, slug, status_of, valid_run_id
from convscope.store._writer import RunWriter

__all__ = ["RunStore"]

#: a cached run summary is read again after this long even if its files look unchanged
_CACHE_SECONDS = 5.0


class RunStore:
    """A log directory holding one ``<run id>.convscope.db`` file per run.

    Args:
        logdir: the directory (created when the first run is created).

    Example:
        >>> import tempfile
        >>> store = RunStore(tempfile.mkdtemp())
        >>> store.create_run("my model/../run 1").run_id  # names are made safe
        'my-model-.-run-1'
        >>> [r["id"] for r in store.list_runs()]
        ['my-model-.-run-1']
    """

    def __init__(self, logdir: str | os.PathLike[str]) -> None:
        self.logdir = Path(logdir)
        self._cache: dict[str, tuple[tuple[int, ...], float, dict[str, Any], dict[str, Any]]] = {}
        self._cache_lock = threading.Lock()

    def path(self, run_id: str) -> Path:
        """The file of run ``run_id``; an id that could name anything else is refused."""
        if not valid_run_id(run_id):
            raise NotFoundError(f"{run_id!r} is not a valid run id (letters, digits, '.', '_', '-'; 128 at most)")
        return self.logdir / f"{run_id}{RUN_SUFFIX}"

    def create_run(
        self,
        name: str | None = None,
        *,
        model: str | None = None,
        config: Mapping[str, Any] | None = None,
        retention: Mapping[str, int] | None = None,
        max_images: int | None = None,
        stale_after: float | None = None,
    ) -> RunWriter:
        """Start a new run and return its writer.

        Args:
            name: the run's name; its id is this name made safe (``-2``, ``-3`` … appended
                when taken). The Runs page shows the id, and the name beside it where the two
                differ. Default: the date and time.
            model, config: shown with the run (config must be JSON-serialisable).
            retention: ``{kind: most frames kept per layer}`` for big kinds; default
                ``{"feature_maps": 200}``. The kept frames stay evenly spread over the run.
            max_images: shorthand for ``retention={"feature_maps": max_images}``.
            stale_after: report the run ``crashed`` after this many seconds without a
                heartbeat even if the writing process lives (the server's ingest sets it).
        """
        retention = _with_max_images(retention, max_images)
        try:
            self.logdir.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):  # a file where the directory (or one above it) should be
            raise StoreError(f"the run store's directory {self.logdir} is a file (or lies under one); pass logdir= a directory") from None
        except OSError as exc:  # (no permission, a read-only file system ...)
            raise StoreError(f"cannot make the run store's directory {self.logdir} ({exc.strerror}); pass logdir= one you may write") from None
        base = slug(name or time.strftime("run-%Y%m%d-%H%M%S"))
        for n in range(1, 10_000):
            run_id = base if n == 1 else f"{base}-{n}"
            path = self.path(run_id)
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)  # claim the id atomically
            except FileExistsError:
                continue
            except OSError as exc:  # (no permission, a read-only file system, a full disk ...)
                raise StoreError(f"cannot create a run file in {self.logdir} ({exc.strerror}); pass logdir= a directory you may write") from None
            os.close(fd)
            try:
                return RunWriter(
                    path, run_id, name=name or run_id, model=model, config=config, retention=retention, stale_after=stale_after
                )
            except BaseException:
                path.unlink(missing_ok=True)
                raise
        raise StoreError(f"could not find a free run id for {base!r} in {self.logdir}; remove old runs or pick another name")

    def resume_run(
        self,
        run_id: str,
        *,
        retention: Mapping[str, int] | None = None,
        max_images: int | None = None,
        stale_after: float | None = None,
        reopen_finished: bool = True,
    ) -> RunWriter:
        """A writer that goes on with run ``run_id`` (after its process ended: finished, failed,
        crashed, or interrupted by a server that stopped while it ingested the run), for training
        resumed from a checkpoint. The run keeps its frames, name, model, config and start; it is
        ``live`` again, new frames come after the old ones, and
        :attr:`RunWriter.resumed_from` says its last step so far. A live run (its writer still
        running) is refused, and with ``reopen_finished=False`` a finished one too (both checked
        under the run's write lock, so two resumers cannot both pass). ``retention``/``max_images``
        as for :meth:`create_run` (default: the run's own); ``stale_after`` as for
        :meth:`create_run` (default: the run's own)."""
        path = self._existing(run_id)
        retention = _with_max_images(retention, max_images)
        return RunWriter(
            path, run_id, name=run_id, model=None, config=None, retention=retention, stale_after=stale_after,
            resume=True, reopen_finished=reopen_finished,
        )

    def open_run(self, run_id: str) -> RunReader:
        """A reader for run ``run_id`` (close it when done, or use ``with``)."""
        return RunReader(self._existing(run_id))

    def _existing(self, run_id: str) -> Path:
        """The file of run ``run_id``, which must exist (else the error says what does)."""
        path = self.path(run_id)
        if not path.is_file():
            raise NotFoundError(f"run {run_id!r} does not exist in {self.logdir}; {self.runs_hint(run_id)}")
        return path

    def runs_hint(self, run_id: str) -> str:
        """What a user who named a missing run should look at instead: the closest ids, or what is there."""
        if not self.logdir.is_dir():
            return "that directory does not exist (pass the log directory the run was written to)"
        ids = self.run_ids()
        if not ids:
            return "it holds no runs"
        close = near_misses(run_id, ids, key=str)
        if close:
            return f"did you mean {' or '.join(repr(c) for c in close)}?"
        shown = ", ".join(ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")
        return f"it holds {shown} (`convscope runs` lists them)"

    def run_ids(self) -> list[str]:
        """The ids of every run file in the directory."""
        if not self.logdir.is_dir():
            return []
        ids = (p.name[: -len(RUN_SUFFIX)] for p in self.logdir.glob(f"*{RUN_SUFFIX}"))
        return sorted(i for i in ids if valid_run_id(i))

    def list_runs(self) -> list[dict[str, Any]]:
        """Every readable run's :meth:`RunReader.info` (without details), newest first.

        Summaries are cached while a run's files are unchanged, so polling this is cheap
        for a directory of many finished runs; a live run's status is worked out afresh.
        """
        runs = []
        ids = self.run_ids()
        for run_id in ids:
            info = self._summary(run_id)
            if info is not None:
                runs.append(info)
        with self._cache_lock:
            for gone in set(self._cache) - set(ids):
                del self._cache[gone]
        return sorted(runs, key=_started, reverse=True)

    def _summary(self, run_id: str) -> dict[str, Any] | None:
        path = self.path(run_id)
        signature = _signature(path)
        now = time.monotonic()
        with self._cache_lock:
            cached = self._cache.get(run_id)
        if cached is not None and cached[0] == signature and now - cached[1] < _CACHE_SECONDS:
            _sig, _t, info, meta = cached
            return {**info, "status": status_of(meta)}
        try:
            with RunReader(path) as reader:
                meta = reader.meta()
                info = reader.info(details=False)
        except (StoreError, NotFoundError, OSError, ValueError):
            return None  # not a run, or one being created this instant
        with self._cache_lock:
            self._cache[run_id] = (signature, now, info, meta)
        return info


def _with_max_images(retention: Mapping[str, int] | None, max_images: int | None) -> Mapping[str, int] | None:
    """``retention`` with ``max_images`` as its ``feature_maps`` entry (the shorthand's meaning)."""
    if max_images is None:
        return retention
    return {**(dict(retention) if retention is not None else {}), "feature_maps": int(max_images)}


def _started(info: Mapping[str, Any]) -> float:
    """A run's start, to sort by: 0 where its metadata holds no number there (a damaged file)."""
    started = info.get("started")
    return float(started) if isinstance(started, int | float) and not isinstance(started, bool) else 0.0


def _signature(path: Path) -> tuple[int, ...]:
    out: list[int] = []
    for p in (path, path.with_name(path.name + "-wal")):
        try:
            st = p.stat()
            out += [st.st_mtime_ns, st.st_size]
        except OSError:
            out += [0, 0]
    return tuple(out)

"""The run store: every frame of a run in one embedded SQLite database (WAL), crash-safe.

A log directory holds one file per run, ``<run id>.convscope.db`` (plus SQLite's ``-wal`` and
``-shm`` files while it is open). Run ids are names made safe (letters, digits, ``.``, ``_``,
``-``; never a path). Inside a run file:

* ``meta``: name, model, config, started, updated (the heartbeat), status (``live``,
  ``finished``, ``failed``, ``crashed``, or ``interrupted``: the server stopped while a monitor
  streamed the run into it, and the run resumes as live if its training reconnects), writer
  pid, process start time and host, retention settings;
* ``frames``: one row per frame: step, wall time, layer, kind, size and the encoded frame
  (:mod:`convscope.frames`) exactly as written, so serving needs no decoding; indexed by
  (kind, layer, step);
* ``series``: a summary per (kind, layer): count, bytes, first and last step and row id,
  frames thinned. Run summaries, the newest frames and live tails never scan the frames;
* ``state``: small entries committed with the frames: the totals of the run's ``dropped``
  frames by cause (``dropped-totals``), the run at a glance (``run-summary``: each scalar's last
  value, each layer's gradient health, each pruned layer's filters; :meth:`RunReader.summary`,
  running totals that retention's thinning leaves as they were), and what a resumed training
  goes on from (:meth:`RunWriter.put_state`).

The writer commits in batches (one transaction per :meth:`RunWriter.flush`). SQLite's
write-ahead log means a process killed at any moment (even ``kill -9``) leaves a file that
opens with every committed frame, reported ``crashed``; readers in other processes (the
server) see new frames while the writer goes on.

Trouble is said, never hidden: a commit that fails (a full disk) raises :class:`StoreError`
and its frames are counted (:attr:`RunWriter.lost`), the run keeping what came before and its
retention going on, and saying how many it lost (a ``dropped`` frame, sink ``store``, in its
next commit that succeeds: :meth:`RunReader.dropped`); a run file removed (or replaced) while written is refused further frames
rather than written into the void; of two processes resuming one run at once, the second is
refused. A closed run reads from a directory this process may not write (a read-only mount);
a file of a newer store format is refused with a message saying so.

Long runs stay bounded: big frames (feature-map images by default) are kept at most N per
layer: every ``stride``-th one and the newest, the stride doubling whenever more would be kept,
so the kept ones always spread evenly over the whole run. What was thinned is counted per
series and reported in :meth:`RunReader.info` (``thinned``).

Example:
    >>> import tempfile
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

from convscope.store._reader import RunReader
from convscope.store._schema import RUN_SUFFIX, STALE_SECONDS, valid_run_id
from convscope.store._store import RunStore
from convscope.store._writer import DEFAULT_RETENTION, RunWriter

__all__ = ["DEFAULT_RETENTION", "RUN_SUFFIX", "STALE_SECONDS", "RunReader", "RunStore", "RunWriter", "valid_run_id"]

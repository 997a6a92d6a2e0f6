"""A run's summary: each scalar's last value, each layer's gradient health, each pruned layer's filters.

The writer keeps it as running totals (JSON, under :data:`SUMMARY_STATE`), committed in the same
transaction as the frames it sums up, so that listing many runs of any length reads one small
row each and never the frames; retention that thins frames later leaves the counts as they
were. A run without the row (written by an older convscope) has it worked out from its frames
(:func:`summary_from_frames`): a few queries on the kinds concerned, which decode only the
frames that the summary takes its values from.

Its JSON, as ``RunReader.info()["summary"]`` and the API give it::

    {"scalars": {"loss": {"value": 0.31, "step": 1200}},
     "health": {"conv1": {"status": "stalled", "step": 1200, "flagged": 12, "checks": 60}},
     "filters": {"conv1": {"before": 16, "after": 12, "prunings": 1, "first_step": 300, "step": 300}}}

A value that is not finite is the string ``"nan"``, ``"inf"`` or ``"-inf"`` (JSON has no such numbers).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

import numpy as np

from convscope.frames import Frame, decode
from convscope.store._schema import HEALTHY_HEADER, SUMMARY_STATE

__all__ = ["SUMMARY_KINDS", "SUMMARY_STATE", "Note", "RunSummary", "note", "summary_from_frames"]

#: the kinds a run's summary is made of
SUMMARY_KINDS = ("scalar", "scalars", "gradient_health", "pruning")


class Note(NamedTuple):
    """What one frame adds to a run's summary: ``what`` (scalar, health or pruning), the scalar's
    name or the layer, the step, and the value, the status or ``(before, after)``."""

    what: str
    key: str
    step: int
    data: Any


class _Last(NamedTuple):
    step: int
    value: float


class _Health(NamedTuple):
    status: str
    step: int
    flagged: int
    checks: int


class _Filters(NamedTuple):
    before: int
    first_step: int
    after: int
    step: int
    prunings: int


_Query = Callable[[str, Sequence[Any]], list[Any]]


class RunSummary:
    """Running totals of a run's summary kinds; :meth:`add` takes the :class:`Note` of each frame.

    The last value of a scalar and the last check of a layer are those of the largest step (of
    one step, the one written last): a frame of an earlier step written later replaces nothing.

    Example:
        >>> s = RunSummary()
        >>> s.add(Note("scalar", "loss", 20, 0.5)); s.add(Note("scalar", "loss", 10, 0.9))
        >>> s.add(Note("health", "conv1", 10, "stalled")); s.add(Note("health", "conv1", 20, "healthy"))
        >>> s.to_json()["scalars"], s.to_json()["health"]
        ({'loss': {'value': 0.5, 'step': 20}}, {'conv1': {'status': 'healthy', 'step': 20, 'flagged': 1, 'checks': 2}})
    """

    __slots__ = ("filters", "health", "scalars")

    def __init__(self) -> None:
        self.scalars: dict[str, _Last] = {}
        self.health: dict[str, _Health] = {}
        self.filters: dict[str, _Filters] = {}

    def __bool__(self) -> bool:
        return bool(self.scalars or self.health or self.filters)

    def add(self, n: Note) -> None:
        what, key, step, data = n
        if what == "scalar":
            last = self.scalars.get(key)
            if last is None or step >= last.step:
                self.scalars[key] = _Last(step, data)
        elif what == "health":
            flagged = int(data != "healthy")
            h = self.health.get(key)
            if h is None:
                self.health[key] = _Health(data, step, flagged, 1)
            else:
                status, at = (data, step) if step >= h.step else (h.status, h.step)
                self.health[key] = _Health(status, at, h.flagged + flagged, h.checks + 1)
        elif what == "pruning":
            before, after = data
            f = self.filters.get(key)
            if f is None:
                self.filters[key] = _Filters(before, step, after, step, 1)
            else:
                first = (before, step) if step < f.first_step else (f.before, f.first_step)
                last_ = (after, step) if step >= f.step else (f.after, f.step)
                self.filters[key] = _Filters(first[0], first[1], last_[0], last_[1], f.prunings + 1)

    def with_notes(self, notes: Iterable[Note]) -> RunSummary:
        """A copy with ``notes`` added (this one unchanged: a commit that fails keeps it)."""
        out = RunSummary()
        out.scalars, out.health, out.filters = dict(self.scalars), dict(self.health), dict(self.filters)
        for n in notes:
            out.add(n)
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "scalars": {name: {"value": _jsonable(v.value), "step": v.step} for name, v in self.scalars.items()},
            "health": {layer: h._asdict() for layer, h in self.health.items()},
            "filters": {
                layer: {"before": f.before, "after": f.after, "prunings": f.prunings, "first_step": f.first_step, "step": f.step}
                for layer, f in self.filters.items()
            },
        }

    def encode(self) -> bytes:
        return json.dumps(self.to_json(), separators=(",", ":"), allow_nan=False).encode()

    @classmethod
    def from_json(cls, data: Any) -> RunSummary | None:
        """The summary that :meth:`to_json` gave (``None`` where ``data`` is not one: damaged)."""
        try:
            out = cls()
            for name, v in data["scalars"].items():
                if isinstance(v["value"], bool) or not isinstance(v["value"], int | float | str):
                    return None
                value = float(v["value"])  # (float("nan") reads the strings "nan", "inf" and "-inf" too)
                out.scalars[str(name)] = _Last(_int(v["step"]), value)
            for layer, h in data["health"].items():
                if not isinstance(h["status"], str):
                    return None
                out.health[str(layer)] = _Health(h["status"], _int(h["step"]), _int(h["flagged"]), _int(h["checks"]))
            for layer, f in data["filters"].items():
                out.filters[str(layer)] = _Filters(_int(f["before"]), _int(f["first_step"]), _int(f["after"]), _int(f["step"]), _int(f["prunings"]))
        except (KeyError, TypeError, ValueError, AttributeError):
            return None
        return out

    @classmethod
    def decode(cls, kept: bytes) -> RunSummary | None:
        """The summary kept as :meth:`encode` wrote it (``None``: damaged)."""
        try:
            return cls.from_json(json.loads(kept))
        except ValueError:
            return None


def note(frame: Frame) -> Note | None:
    """What ``frame`` adds to its run's summary; ``None`` for frames of other kinds, and for those
    whose payload holds nothing usable there (a value that is no number, a layer with no name):
    never an error, since the frame itself is stored all the same."""
    if frame.kind not in SUMMARY_KINDS:
        return None
    try:
        return _note(frame)
    except (TypeError, ValueError, OverflowError):
        return None


def _note(frame: Frame) -> Note | None:
    kind, p = frame.kind, frame.payload
    if kind == "scalars":
        name = p.get("name")
        steps = np.asarray(p.get("steps")).reshape(-1)
        values = np.asarray(p.get("values")).reshape(-1)
        n = min(len(steps), len(values))
        if not isinstance(name, str) or n == 0 or steps.dtype.kind not in "iu" or values.dtype.kind not in "iuf":
            return None
        steps = steps[:n]
        i = n - 1 - int(np.argmax(steps[::-1]))  # the largest step (its last entry, where it repeats)
        return Note("scalar", name, int(steps[i]), float(values[i]))
    if kind == "scalar":
        name, value = p.get("name"), _float(p.get("value"))
        return Note("scalar", name, int(frame.step), value) if isinstance(name, str) and value is not None else None
    if not frame.layer:
        return None
    if kind == "gradient_health":
        status = p.get("status")
        return Note("health", frame.layer, int(frame.step), status) if isinstance(status, str) else None
    if kind == "pruning":
        before, after = _float(p.get("before")), _float(p.get("after"))
        if before is None or after is None or not (math.isfinite(before) and math.isfinite(after)):
            return None
        return Note("pruning", frame.layer, int(frame.step), (int(before), int(after)))
    return None


def summary_from_frames(query: _Query) -> RunSummary:
    """The summary of a run that kept none, from its frames: scalars' names and the flagged
    checks are found in the frames' JSON headers by SQL, and only each name's last frame, each
    layer's last check and the prunings are decoded."""
    out = RunSummary()
    for scalar in _scalar_notes(query):
        out.add(scalar)
    layers = query(
        "SELECT layer, COUNT(*), SUM(instr(data, ?) = 0) FROM frames WHERE kind = 'gradient_health' AND layer != '' "
        "GROUP BY layer ORDER BY MIN(id)",
        (HEALTHY_HEADER,),
    )
    for layer, checks, flagged in layers:
        rows = query("SELECT data FROM frames WHERE kind = 'gradient_health' AND layer = ? ORDER BY step DESC, id DESC LIMIT 1", (layer,))
        last = note(decode(rows[0][0])) if rows else None
        if last is not None:
            out.health[layer] = _Health(last.data, last.step, int(flagged), int(checks))
    for (data,) in query("SELECT data FROM frames WHERE kind = 'pruning' ORDER BY step, id", ()):  # (a few: one a pruning)
        pruning = note(decode(data))
        if pruning is not None:
            out.add(pruning)
    return out


#: where a scalar frame's header names it (the first such key of its header: the payload's first, as
#: the monitor writes it; found in the frame's bytes, it is checked against the frames decoded)
_NAME = b'"name":"'


def _scalar_notes(query: _Query) -> list[Note]:
    """Each scalar name's last value. The names are read (JSON-escaped) from the headers in SQL
    with each one's largest step, and only the frames of those steps decoded; where a header does
    not say its name plainly there (a payload laid out otherwise), every such frame is decoded."""
    rows = query(
        "SELECT name, MAX(step) FROM (SELECT step, CASE WHEN at = 0 THEN NULL "
        "ELSE substr(data, at + ?, instr(substr(data, at + ?, 1024), X'22') - 1) END AS name "
        "FROM (SELECT step, data, instr(data, ?) AS at FROM frames WHERE kind IN ('scalar', 'scalars'))) GROUP BY name",
        (len(_NAME), len(_NAME), _NAME),
    )
    wanted: dict[int, set[bytes]] = {}
    for raw, step in rows:
        if raw is None:
            return _every_scalar_note(query)
        wanted.setdefault(int(step), set()).add(bytes(raw))
    notes: list[Note] = []
    for step, names in wanted.items():
        found: dict[bytes, Note] = {}
        for (data,) in query("SELECT data FROM frames WHERE kind IN ('scalar', 'scalars') AND step = ? ORDER BY id DESC", (step,)):
            n = note(decode(data))
            if n is not None:
                found.setdefault(json.dumps(n.key)[1:-1].encode(), n)  # (of one step, the one written last)
        if not names <= found.keys():  # (a name with a quote in it, or a value that is no number)
            return _every_scalar_note(query)
        notes += [found[name] for name in names]
    return notes


def _every_scalar_note(query: _Query) -> list[Note]:
    return [n for (data,) in query("SELECT data FROM frames WHERE kind IN ('scalar', 'scalars') ORDER BY step, id", ()) if (n := note(decode(data))) is not None]


def _float(value: Any) -> float | None:
    """A number (NaN and infinities too) as a float; ``None`` for anything else (a bool, a string ...)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return float(value)
    except OverflowError:
        return None


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"not an integer: {value!r}")
    return value


def _jsonable(value: float) -> float | str:
    return value if math.isfinite(value) else str(value)  # "nan", "inf", "-inf"

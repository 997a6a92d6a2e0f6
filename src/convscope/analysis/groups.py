"""Groups of similar filters from their correlation, with identities that last over time.

Two filters are *similar* when the Pearson correlation of their feature maps is at least
``threshold``. The sign matters: convscope groups on ``corr``, not ``|corr|``. A filter and
its negative are not interchangeable after a ReLU (``relu(-x)`` cannot be rebuilt from
``relu(x)``), they look opposite in the feature-map view, and a pruning plan that keeps
one filter per group to stand for the others is only sound for positive similarity.

Two ways to group:

* ``"pairs"`` - every pair at or above the threshold is joined and groups are the
  connected components of those pairs: a chain ``a~b~c`` is one group even if ``a`` and
  ``c`` are less alike. This is TensorView's grouping, and exactly single-linkage
  clustering on ``1 - corr`` cut at ``1 - threshold``. (``"union"`` is accepted as
  another name for it.)
* ``"hierarchical"`` - agglomerative clustering on the distance ``1 - corr``
  (:func:`scipy.cluster.hierarchy.linkage`) with ``linkage="average"`` (default: a group's
  members are similar *on average*) or ``"complete"`` (*every* pair in a group is
  similar), cut at ``1 - threshold``, so chains do not spread.

**Singletons are not groups.** A filter similar to no other is in no group (label ``-1``):
a group is what the views colour and what pruning may thin out, and a lone filter offers
neither. Dead filters (constant maps, see
:func:`~convscope.analysis.correlation.feature_correlation`) are never grouped.

**Stable identities.** Given the previous result, groups are matched to old ones by
shared members so that a persisting group keeps its id. Pairs (old group, new group) are
taken greedily by the number of members they share (ties: the larger old group, then the
older id), each old id going to at most one new group. So when a group splits, the part
that keeps most of its members keeps the id (the larger part when they keep equally
many); when groups merge, the merged group keeps the id of the old group that brought
most members (the largest when all members came along). Fresh ids continue from the
largest id ever given, so an id is never reused. Events say what happened:

========  =====================================  ============================
type      ids (now)                              from (before)
========  =====================================  ============================
appear    ``[new id]``                           ``[]``
vanish    ``[]``                                 ``[old id]``
persist   ``[id]``                               ``[id]``
split     every new group holding old members    ``[old id]``
merge     ``[id of the merged group]``           every old group it gathers
========  =====================================  ============================

Example:
    >>> import torch
    >>> corr = torch.tensor([[1.0, 0.95, 0.1], [0.95, 1.0, 0.2], [0.1, 0.2, 1.0]])
    >>> g = filter_groups(corr, threshold=0.9)
    >>> g.labels.tolist(), g.groups
    ([0, 0, -1], {0: [0, 1]})
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from convscope._optional import require
from convscope.errors import DataError

if TYPE_CHECKING:
    import torch

    from convscope.analysis.correlation import CorrelationResult

__all__ = ["FilterGroups", "GroupEvent", "filter_groups"]

METHODS = ("pairs", "hierarchical")
LINKAGES = ("average", "complete")
_ALIASES = {"union": "pairs"}


@dataclass(frozen=True)
class GroupEvent:
    """One change between two groupings; see the module docstring for the meaning of ids."""

    type: str
    ids: tuple[int, ...]
    from_: tuple[int, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "ids": list(self.ids), "from": list(self.from_)}


@dataclass(frozen=True)
class FilterGroups:
    """Filters grouped by similarity.

    Attributes:
        labels: ``int32[F]``: group id of each filter, ``-1`` for no group.
        threshold: the correlation at or above which filters are similar.
        method: ``"pairs"`` or ``"hierarchical"``.
        linkage: ``"single"`` for ``"pairs"``; ``"average"`` or ``"complete"`` for
            ``"hierarchical"``.
        events: what changed since the previous grouping (all ``appear`` the first time).
        next_id: the id the next new group will get (ids are never reused).
    """

    labels: np.ndarray
    threshold: float
    method: str
    events: tuple[GroupEvent, ...] = ()
    next_id: int = 0
    linkage: str = "single"
    #: the similar pairs it was found from, packed (``"pairs"`` only): a next grouping of the
    #: same pairs keeps every group as it is, without matching them again
    _pairs_key: bytes | None = field(default=None, repr=False, compare=False)

    @property
    def groups(self) -> dict[int, list[int]]:
        """Group id -> sorted member filter indices, by increasing id."""
        out: dict[int, list[int]] = {}
        for i, g in enumerate(self.labels.tolist()):
            if g >= 0:
                out.setdefault(int(g), []).append(i)
        return dict(sorted(out.items()))

    def to_payload(self) -> dict[str, Any]:
        """The ``groups`` frame payload: ``labels i32[F]`` (-1: in no group), ``threshold``,
        ``method``, ``linkage``, ``events [{type, ids, from}]``, ``next_id``."""
        return {
            "labels": np.asarray(self.labels, dtype=np.int32),
            "threshold": float(self.threshold),
            "method": self.method,
            "linkage": self.linkage,
            "events": [e.to_dict() for e in self.events],
            "next_id": int(self.next_id),
        }

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> FilterGroups:
        """The grouping a ``groups`` frame holds, to pass as ``previous=`` to the next
        :func:`filter_groups` (a resumed run's groups keep their ids). Frames written before
        ``next_id`` was stored give the id after the largest one they show."""
        labels = np.asarray(payload["labels"], dtype=np.int32)
        next_id = int(payload.get("next_id", int(labels.max(initial=-1)) + 1))
        events = tuple(GroupEvent(e["type"], tuple(e["ids"]), tuple(e.get("from", ()))) for e in payload.get("events", ()))
        return cls(labels, float(payload["threshold"]), str(payload["method"]), events, next_id=next_id,
                   linkage=str(payload.get("linkage", "single")))


def filter_groups(
    corr: CorrelationResult | torch.Tensor | np.ndarray,
    *,
    threshold: float = 0.9,
    method: str = "pairs",
    linkage: str = "average",
    previous: FilterGroups | None = None,
) -> FilterGroups:
    """Group filters whose feature maps correlate at ``threshold`` or more.

    Args:
        corr: a :class:`~convscope.analysis.correlation.CorrelationResult` (its dead
            filters are never grouped) or an ``F x F`` correlation matrix.
        threshold: in ``(0, 1]``; pairs with ``corr >= threshold`` are similar.
        method: ``"pairs"`` (connected components of similar pairs; ``"union"`` is the
            same) or ``"hierarchical"`` (linkage on ``1 - corr`` cut at ``1 - threshold``).
        linkage: ``"average"`` or ``"complete"``, for ``method="hierarchical"``.
        previous: the last result for the same layer; groups then keep their ids and
            :attr:`FilterGroups.events` says what appeared, vanished, persisted, split
            or merged.

    Returns:
        A :class:`FilterGroups` (host numpy; the input is ``F x F``, small).

    Example:
        >>> import numpy as np
        >>> c = np.eye(4); c[0, 1] = c[1, 0] = c[2, 3] = c[3, 2] = 0.97
        >>> first = filter_groups(c)
        >>> c[1, 2] = c[2, 1] = 0.95                  # the two groups now touch
        >>> later = filter_groups(c, previous=first)
        >>> later.labels.tolist(), [e.type for e in later.events]
        ([0, 0, 0, 0], ['merge'])
    """
    matrix, dead = _matrix(corr)
    f = matrix.shape[0]
    if not 0.0 < float(threshold) <= 1.0:
        raise DataError(
            f"threshold must be in (0, 1] (a correlation above which filters are similar), got {threshold}; 0.9 is usual"
        )
    method = _ALIASES.get(method, method)
    if method not in METHODS:
        raise DataError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if method == "hierarchical" and linkage not in LINKAGES:
        raise DataError(f"linkage must be one of {', '.join(LINKAGES)} for hierarchical groups, got {linkage!r}")
    link = "single" if method == "pairs" else linkage
    if previous is not None and previous.labels.shape[0] != f:
        raise DataError(
            f"the previous grouping has {previous.labels.shape[0]} filters but this layer now has {f} "
            "(pruned or replaced?); pass previous=None to start new identities"
        )
    key = None
    if method == "pairs":
        live = ~dead
        similar = (matrix >= threshold) & live[:, None] & live[None, :]
        key = np.packbits(similar).tobytes()
        if (  # (most recordings: the same pairs as the last)
            previous is not None
            and previous._pairs_key == key
            and previous.threshold == float(threshold)
            and previous.method == method
        ):
            return _unchanged(previous)
        clusters = _pairs(similar)
    else:
        clusters = _hierarchical(matrix, dead, threshold, link)
    labels = np.full(f, -1, dtype=np.int32)
    if previous is None:
        events = []
        for gid, members in enumerate(clusters):
            labels[members] = gid
            events.append(GroupEvent("appear", (gid,)))
        return FilterGroups(labels, float(threshold), method, tuple(events), next_id=len(clusters), linkage=link, _pairs_key=key)
    ids, events, next_id = _match(previous, clusters)
    for gid, members in zip(ids, clusters, strict=True):
        labels[members] = gid
    return FilterGroups(labels, float(threshold), method, tuple(events), next_id=next_id, linkage=link, _pairs_key=key)


def _unchanged(previous: FilterGroups) -> FilterGroups:
    """The grouping of the same similar pairs as ``previous``: every group persists (what
    :func:`_match` finds for identical clusters, in its order: by each group's first member)."""
    ids: list[int] = []
    for g in previous.labels.tolist():
        if g >= 0 and g not in ids:
            ids.append(g)
    events = tuple(GroupEvent("persist", (g,), (g,)) for g in ids)
    next_id = max(previous.next_id, max(ids, default=-1) + 1)
    return FilterGroups(previous.labels.copy(), previous.threshold, previous.method, events, next_id=next_id,
                        linkage=previous.linkage, _pairs_key=previous._pairs_key)


def _matrix(corr: Any) -> tuple[np.ndarray, np.ndarray]:
    dead = None
    if getattr(corr, "host", None) is not None:  # a stack of recordings' result, already on the host
        corr, dead = corr.host
    elif hasattr(corr, "matrix") and hasattr(corr, "dead"):
        dead = np.asarray(corr.dead.detach().cpu().numpy() if hasattr(corr.dead, "detach") else corr.dead, dtype=bool)
        corr = corr.matrix
    if hasattr(corr, "detach"):
        corr = corr.detach().cpu().numpy()
    matrix = np.asarray(corr, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise DataError(f"a correlation matrix must be F x F, got shape {matrix.shape}; compute it with feature_correlation()")
    if not np.isfinite(matrix).all():
        raise DataError(
            "the correlation matrix contains NaN or Inf (dead filters in numpy/torch corrcoef?); "
            "use feature_correlation(), which reports dead filters instead"
        )
    if dead is None:
        dead = np.zeros(matrix.shape[0], dtype=bool)
    return matrix, dead


def _pairs(similar: np.ndarray) -> list[list[int]]:
    """Connected components of the similar-pairs graph (``similar``: ``F x F`` bool): union-find
    over the pairs above the diagonal (a handful of vector operations, then a Python step per
    similar pair)."""
    f = similar.shape[0]
    rows, cols = np.nonzero(similar)
    above = rows < cols  # each pair once (above the diagonal)
    if not above.any():  # (the usual case early in training: no similar pair, no groups)
        return []
    rows, cols = rows[above], cols[above]
    parent = list(range(f))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in zip(rows.tolist(), cols.tolist(), strict=True):
        a, b = root(i), root(j)
        if a != b:
            parent[max(a, b)] = min(a, b)
    return _components([root(i) for i in range(f)])  # a filter in no pair is its own root: dropped there


def _hierarchical(matrix: np.ndarray, dead: np.ndarray, threshold: float, linkage: str) -> list[list[int]]:
    hierarchy = require("scipy.cluster.hierarchy", feature="hierarchical filter groups", extra="analysis")
    distance = require("scipy.spatial.distance", feature="hierarchical filter groups", extra="analysis")
    live = np.flatnonzero(~dead)
    if live.size < 2:
        return []
    sub = matrix[np.ix_(live, live)]
    d = np.clip(1.0 - (sub + sub.T) / 2.0, 0.0, 2.0)
    np.fill_diagonal(d, 0.0)
    tree = hierarchy.linkage(distance.squareform(d, checks=False), method=linkage)
    # fcluster joins clusters whose merge distance is <= t, i.e. average corr >= threshold;
    # a tiny slack keeps exact-threshold pairs in, as "pairs" does.
    flat = hierarchy.fcluster(tree, t=1.0 - threshold + 1e-12, criterion="distance")
    roots = np.full(matrix.shape[0], -1, dtype=np.int64)
    roots[live] = flat
    return _components([int(r) if r >= 0 else -1 - i for i, r in enumerate(roots.tolist())])


def _components(roots: list[int]) -> list[list[int]]:
    """Clusters of two or more members, each sorted, ordered by their smallest member."""
    by_root: dict[int, list[int]] = {}
    for i, r in enumerate(roots):
        by_root.setdefault(r, []).append(i)
    return sorted((m for m in by_root.values() if len(m) >= 2), key=lambda m: m[0])


def _match(previous: FilterGroups, clusters: list[list[int]]) -> tuple[list[int], list[GroupEvent], int]:
    old = previous.groups
    old_of = {i: g for g, members in old.items() for i in members}
    overlap: dict[tuple[int, int], int] = {}
    for j, members in enumerate(clusters):
        for i in members:
            if i in old_of:
                key = (old_of[i], j)
                overlap[key] = overlap.get(key, 0) + 1
    # Greedy: most shared members first; ties to the larger old group, then the older id.
    order = sorted(overlap, key=lambda k: (-overlap[k], -len(old[k[0]]), k[0], k[1]))
    ids: list[int | None] = [None] * len(clusters)
    taken: set[int] = set()
    for g, j in order:
        if g not in taken and ids[j] is None:
            ids[j] = g
            taken.add(g)
    next_id = max(previous.next_id, max(old, default=-1) + 1)
    final: list[int] = []
    for got in ids:
        if got is None:
            got = next_id
            next_id += 1
        final.append(got)
    parents: dict[int, list[int]] = {j: [] for j in range(len(clusters))}
    children: dict[int, list[int]] = {g: [] for g in old}
    for g, j in sorted(overlap, key=lambda k: (-overlap[k], k[0], k[1])):
        parents[j].append(g)
        children[g].append(j)
    events: list[GroupEvent] = []
    for g in old:
        kids = children[g]
        if not kids:
            events.append(GroupEvent("vanish", (), (g,)))
        elif len(kids) > 1:
            kept = sorted(kids, key=lambda j: final[j] != g)  # the one keeping the id first
            events.append(GroupEvent("split", tuple(final[j] for j in kept), (g,)))
    for j, gid in enumerate(final):
        ps = parents[j]
        if not ps:
            events.append(GroupEvent("appear", (gid,)))
        elif len(ps) > 1:
            events.append(GroupEvent("merge", (gid,), tuple(ps)))
        elif len(children[ps[0]]) == 1 and ps[0] == gid:
            events.append(GroupEvent("persist", (gid,), (gid,)))
    return final, events, next_id

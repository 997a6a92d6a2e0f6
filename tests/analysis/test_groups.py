"""Groups of similar filters against scipy's clustering, and identities that last over time."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import squareform

from convscope.analysis import feature_correlation, filter_groups
from convscope.errors import DataError


def _partition(labels: np.ndarray) -> set[frozenset[int]]:
    """Groups of two or more as sets of members (ids do not matter for a partition; -1 is no group)."""
    out: dict[int, set[int]] = {}
    for i, g in enumerate(np.asarray(labels).tolist()):
        if g >= 0:
            out.setdefault(g, set()).add(i)
    return {frozenset(m) for m in out.values() if len(m) > 1}


def _scipy(corr: np.ndarray, threshold: float, method: str) -> set[frozenset[int]]:
    d = np.clip(1.0 - corr, 0.0, 2.0)
    np.fill_diagonal(d, 0.0)
    z = linkage(squareform(d, checks=False), method=method)
    return _partition(fcluster(z, t=1.0 - threshold + 1e-12, criterion="distance"))


def _clustered(seed: int, f: int = 24, clusters: int = 6, noise: float = 0.6) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(clusters, 300))
    return np.corrcoef(np.stack([base[rng.integers(clusters)] + noise * rng.normal(size=300) for _ in range(f)]))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("threshold", [0.5, 0.7, 0.85])
def test_every_method_equals_scipy_clustering(seed: int, threshold: float) -> None:
    corr = _clustered(seed)
    pairs = filter_groups(corr, threshold=threshold, method="pairs")
    assert _partition(pairs.labels) == _scipy(corr, threshold, "single")
    # and the definition itself: connected components of the pairs at or above the threshold
    for i, j in zip(*np.nonzero(np.triu(corr >= threshold, 1)), strict=True):
        assert pairs.labels[i] == pairs.labels[j] >= 0
    for link in ("average", "complete"):
        g = filter_groups(corr, threshold=threshold, method="hierarchical", linkage=link)
        assert g.linkage == link and g.to_payload()["linkage"] == link
        assert _partition(g.labels) == _scipy(corr, threshold, link)


def test_complete_linkage_groups_are_similar_in_every_pair_and_chains_stay_apart() -> None:
    # a chain a~b~c~d where only neighbours are alike
    corr = np.eye(4)
    for i in range(3):
        corr[i, i + 1] = corr[i + 1, i] = 0.95
    corr[0, 2] = corr[2, 0] = corr[1, 3] = corr[3, 1] = 0.8
    corr[0, 3] = corr[3, 0] = 0.6
    assert _partition(filter_groups(corr, threshold=0.9).labels) == {frozenset(range(4))}
    complete = filter_groups(corr, threshold=0.9, method="hierarchical", linkage="complete")
    for members in complete.groups.values():
        assert all(corr[i, j] >= 0.9 for i in members for j in members)
    assert len(complete.groups) == 2


def test_signed_correlation_singletons_and_dead_filters() -> None:
    maps = torch.randn(4, 6, 8, 8, generator=torch.Generator().manual_seed(1))
    maps[:, 2] = 0.0  # dead
    maps[:, 4] = maps[:, 1] * 2 + 1  # a duplicate of filter 1
    maps[:, 5] = -maps[:, 0]  # an opposite of filter 0: not similar
    r = feature_correlation(maps)
    for method in ("pairs", "hierarchical"):
        g = filter_groups(r, threshold=0.95, method=method)
        assert g.labels.dtype == np.int32
        assert g.labels[1] == g.labels[4] >= 0
        assert (g.labels[[0, 2, 3, 5]] == -1).all()  # singletons, the dead and the opposite are in no group
        assert g.groups == {int(g.labels[1]): [1, 4]}
    # a dead filter is never grouped, even if a raw matrix says it matches
    corr = np.ones((3, 3))
    g = filter_groups(type(r)(matrix=torch.ones(3, 3), dead=torch.tensor([False, True, False])), threshold=0.9)
    assert g.labels.tolist() == [0, -1, 0]
    assert filter_groups(corr, threshold=0.9).labels.tolist() == [0, 0, 0]


def test_union_is_another_name_for_pairs_and_options_are_checked() -> None:
    corr = _clustered(0)
    union = filter_groups(corr, threshold=0.7, method="union")
    assert union.method == "pairs" and union.to_payload()["method"] == "pairs"
    np.testing.assert_array_equal(union.labels, filter_groups(corr, threshold=0.7).labels)
    with pytest.raises(DataError, match="threshold"):
        filter_groups(corr, threshold=0.0)
    with pytest.raises(DataError, match="method"):
        filter_groups(corr, method="kmeans")
    with pytest.raises(DataError, match="linkage"):
        filter_groups(corr, method="hierarchical", linkage="ward")
    with pytest.raises(DataError, match="F x F"):
        filter_groups(np.ones((2, 3)))
    with np.errstate(invalid="ignore"):
        raw = np.corrcoef(np.stack([np.ones(5), np.arange(5.0)]))  # numpy's NaN for a constant row
    with pytest.raises(DataError, match="NaN"):
        filter_groups(raw)
    with pytest.raises(DataError, match="previous=None"):
        filter_groups(corr[:5, :5], previous=filter_groups(corr))


def _maps(*bases: int, rng: np.random.Generator, base: np.ndarray) -> np.ndarray:
    return np.stack([base[b] + 0.05 * rng.normal(size=base.shape[1]) for b in bases])


def test_identities_persist_split_merge_appear_and_vanish() -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(size=(6, 600))
    noise = rng.normal(size=(6, 600))

    def groups(*bases: int, previous=None):
        maps = np.stack([base[b] if b >= 0 else noise[i] for i, b in enumerate(bases)])
        maps = maps + 0.05 * rng.normal(size=maps.shape)
        return filter_groups(np.corrcoef(maps), threshold=0.9, previous=previous)

    first = groups(0, 0, 0, 1, 1, 1)
    assert first.groups == {0: [0, 1, 2], 1: [3, 4, 5]}
    assert [(e.type, e.ids) for e in first.events] == [("appear", (0,)), ("appear", (1,))]
    again = groups(0, 0, 0, 1, 1, 1, previous=first)
    np.testing.assert_array_equal(again.labels, first.labels)
    assert {(e.type, e.ids, e.from_) for e in again.events} == {("persist", (0,), (0,)), ("persist", (1,), (1,))}

    # both groups split: filters 0, 1 (and 3, 4) stay together and keep the ids; 2 and 5 leave
    # their groups and pair up in a new group, which merges members of both old groups
    split = groups(0, 0, 2, 1, 1, 2, previous=again)
    assert split.groups == {0: [0, 1], 1: [3, 4], 2: [2, 5]}
    events = {(e.type, e.ids, tuple(sorted(e.from_))) for e in split.events}
    assert events == {("split", (0, 2), (0,)), ("split", (1, 2), (1,)), ("merge", (2,), (0, 1))}
    assert split.next_id == 3

    # everything merges into one group; it keeps the id of the group that brought most members
    merged = groups(3, 3, 3, 3, 3, 3, previous=split)
    assert set(merged.labels.tolist()) == {0}
    assert [(e.type, e.ids, tuple(sorted(e.from_))) for e in merged.events] == [("merge", (0,), (0, 1, 2))]

    # all similarity goes away, then a group appears again: a fresh id, never a reused one
    gone = groups(-1, -1, -1, -1, -1, -1, previous=merged)
    assert (gone.labels == -1).all() and [(e.type, e.from_) for e in gone.events] == [("vanish", (0,))]
    back = groups(4, 4, -1, -1, -1, -1, previous=gone)
    assert back.groups == {3: [0, 1]} and [(e.type, e.ids) for e in back.events] == [("appear", (3,))]
    payload = back.to_payload()
    assert payload["labels"].dtype == np.int32 and payload["events"] == [{"type": "appear", "ids": [3], "from": []}]
    assert payload["threshold"] == 0.9 and payload["method"] == "pairs" and payload["next_id"] == 4

    # a stored grouping goes on as it would have (a resumed run): a group that went away and came
    # back after it gets a fresh id, also where the payload holds none of the ids used before
    from convscope.analysis.groups import FilterGroups

    stored = FilterGroups.from_payload(payload)
    assert stored.groups == back.groups and stored.next_id == 4
    gone_again = groups(-1, -1, -1, -1, -1, -1, previous=stored)
    assert groups(-1, -1, -1, 1, 1, -1, previous=gone_again).groups == {4: [3, 4]}
    old = {k: v for k, v in payload.items() if k != "next_id"}  # written before next_id was stored
    assert FilterGroups.from_payload(old).next_id == 4  # (the id after the largest it shows)


def test_identities_follow_members_not_positions_for_hierarchical_groups() -> None:
    corr = _clustered(5, f=16, clusters=4, noise=0.3)
    first = filter_groups(corr, threshold=0.8, method="hierarchical")
    perturbed = corr + np.random.default_rng(1).normal(scale=0.005, size=corr.shape)
    later = filter_groups((perturbed + perturbed.T) / 2, threshold=0.8, method="hierarchical", previous=first)
    np.testing.assert_array_equal(later.labels, first.labels)
    assert all(e.type == "persist" for e in later.events)


def test_the_same_similar_pairs_again_give_what_matching_them_gives() -> None:
    """A grouping of the same similar pairs as the last one skips the matching (every group
    persists); it must equal what matching them gives, over a run of small changes."""
    import dataclasses

    rng = np.random.default_rng(3)
    f = 24
    base = rng.uniform(-0.3, 0.6, (f, f))
    previous = previous_slow = None
    unchanged = 0
    for step in range(60):
        if step % 4 == 0:  # now and then the pairs change: groups appear, merge, split, vanish
            i, j = rng.integers(f, size=2)
            base[i, j] = base[j, i] = rng.choice([0.95, 0.2])
        corr = (base + base.T) / 2 + rng.normal(0, 1e-3, (f, f))  # noise that leaves the pairs as they are
        np.fill_diagonal(corr, 1.0)
        fast = filter_groups(corr, previous=previous)
        slow = filter_groups(corr, previous=None if previous_slow is None else dataclasses.replace(previous_slow, _pairs_key=None))
        assert fast.labels.tolist() == slow.labels.tolist()
        assert fast.events == slow.events and fast.next_id == slow.next_id
        unchanged += previous is not None and all(e.type == "persist" for e in fast.events) and bool(fast.events)
        previous, previous_slow = fast, slow
    assert unchanged > 20  # the fast case was met
    # another threshold or method is grouped afresh, not taken from the last result
    other = filter_groups(corr, threshold=0.5, previous=previous)
    assert other.labels.tolist() == filter_groups(corr, threshold=0.5, previous=previous_slow).labels.tolist()
    assert other.labels.tolist() != previous.labels.tolist()

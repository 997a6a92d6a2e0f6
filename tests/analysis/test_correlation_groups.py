"""Correlation against numpy, its properties, and groups with identities that last."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import squareform

import convscope
from convscope.analysis import feature_correlation, filter_groups


def _ref(maps: torch.Tensor) -> np.ndarray:
    f = maps.shape[1]
    return np.corrcoef(maps.transpose(0, 1).reshape(f, -1).double().numpy())


def test_equals_numpy_on_random_maps_and_in_chunks() -> None:
    maps = torch.randn(8, 12, 9, 9, generator=torch.Generator().manual_seed(0)) * 3 + 5
    r = feature_correlation(maps)
    np.testing.assert_allclose(r.matrix.numpy(), _ref(maps), atol=1e-5)
    np.testing.assert_allclose(feature_correlation(maps, chunk_size=7).matrix.numpy(), r.matrix.numpy(), atol=1e-6)


def test_equals_numpy_on_real_feature_maps() -> None:
    model = convscope.load_model("lenet5-simplified")
    x = convscope.load_dataset("mnist-5k", split="test", spec=model.input_spec).images[:16]
    out = convscope.capture(model, x, layers=["relu1", "conv2"]).outputs
    for name in ("conv2", "relu1"):
        r = feature_correlation(out[name])
        live = ~r.dead.numpy()
        np.testing.assert_allclose(r.matrix.numpy()[np.ix_(live, live)], _ref(out[name])[np.ix_(live, live)], atol=1e-5)


@settings(max_examples=40, deadline=None)
@given(hnp.arrays(np.float32, hnp.array_shapes(min_dims=4, max_dims=4, min_side=1, max_side=6),
                  elements=st.floats(-100, 100, width=32)))
def test_properties(maps: np.ndarray) -> None:
    r = feature_correlation(torch.from_numpy(maps))
    m, dead = r.matrix.numpy(), r.dead.numpy()
    assert np.isfinite(m).all()
    np.testing.assert_allclose(m, m.T, atol=1e-6)
    assert (m >= -1).all() and (m <= 1).all()
    np.testing.assert_array_equal(np.diag(m)[~dead], 1.0)
    flat = maps.transpose(1, 0, 2, 3).reshape(maps.shape[1], -1)
    constant = flat.min(axis=1) == flat.max(axis=1)
    assert dead[constant].all()  # constant maps are always reported dead
    spread = flat.max(axis=1).astype(np.float64) - flat.min(axis=1)
    assert (spread[dead & ~constant] < 1e-30).all()  # and otherwise only maps whose variance underflows


def test_dead_filter_and_duplicates() -> None:
    maps = torch.randn(4, 6, 8, 8, generator=torch.Generator().manual_seed(1))
    maps[:, 2] = 0.0  # a dead filter
    maps[:, 4] = maps[:, 1] * 2 + 1  # a duplicate of filter 1 (up to scale and offset)
    r = feature_correlation(maps)
    assert r.dead.tolist() == [False, False, True, False, False, False]
    assert float(r.matrix[2].abs().sum()) == 0.0
    g = filter_groups(r, threshold=0.95)
    assert g.labels[1] == g.labels[4] >= 0 and g.labels[2] == -1
    assert sum(1 for v in g.groups.values() if len(v) > 1) == 1


def test_hierarchical_method_matches_scipy() -> None:
    rng = np.random.default_rng(3)
    base = rng.normal(size=(3, 400))
    maps = np.stack([base[i % 3] + 0.4 * rng.normal(size=400) for i in range(9)])
    corr = np.corrcoef(maps)
    g = filter_groups(corr, threshold=0.6, method="hierarchical")
    z = linkage(squareform(1 - corr, checks=False), method="average")
    ref = fcluster(z, t=1 - 0.6, criterion="distance")
    ours = g.labels.copy()
    # same partition (singletons are -1 in ours)
    for i in range(9):
        for j in range(9):
            same_ref = ref[i] == ref[j]
            same_ours = ours[i] == ours[j] and ours[i] >= 0
            if i != j and (np.sum(ref == ref[i]) > 1):
                assert same_ref == same_ours


def test_group_ids_persist_and_splits_and_merges_are_reported() -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(size=(2, 600))
    maps = np.stack([base[0] + 0.05 * rng.normal(size=600) for _ in range(3)] + [base[1] + 0.05 * rng.normal(size=600) for _ in range(3)])
    first = filter_groups(np.corrcoef(maps), threshold=0.9)
    again = filter_groups(np.corrcoef(maps + 0.02 * rng.normal(size=maps.shape)), threshold=0.9, previous=first)
    np.testing.assert_array_equal(again.labels, first.labels)
    assert {e.type for e in again.events} == {"persist"}
    # a group of four splits into two pairs
    four = np.stack([base[0] + 0.05 * rng.normal(size=600) for _ in range(4)])
    before = filter_groups(np.corrcoef(four), threshold=0.9)
    apart = np.stack([base[0] + 0.05 * rng.normal(size=600) for _ in range(2)] + [base[1] + 0.05 * rng.normal(size=600) for _ in range(2)])
    after = filter_groups(np.corrcoef(apart), threshold=0.9, previous=before)
    split = [e for e in after.events if e.type == "split"]
    assert len(split) == 1 and list(split[0].from_) == [int(before.labels[0])]
    assert after.labels[0] == after.labels[1] != after.labels[2] == after.labels[3]
    assert int(before.labels[0]) in after.labels.tolist()  # one part keeps the id (and colour)
    merged_maps = np.stack([base[0]] * 3 + [base[0] + 0.05 * rng.normal(size=600) for _ in range(3)])
    merged = filter_groups(np.corrcoef(merged_maps), threshold=0.9, previous=again)
    assert [e.type for e in merged.events] == ["merge"] and len(set(merged.labels.tolist())) == 1

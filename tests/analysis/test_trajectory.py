"""Weight trajectories against numpy's SVD of the stored history: exact, thinned and sketched."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from convscope.analysis import TrajectoryTracker
from convscope.analysis import trajectory as trajectory_module
from convscope.errors import DataError


def _walk(shape: tuple[int, ...], steps: int, seed: int = 0) -> list[torch.Tensor]:
    """A training-like path: a drift along two curving directions plus small noise."""
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(shape, generator=gen)
    d1, d2 = torch.randn(shape, generator=gen), torch.randn(shape, generator=gen)
    out = []
    for s in range(steps):
        w = w + 0.05 * d1 * np.cos(s / 7) + 0.03 * d2 * np.sin(s / 5) + 0.01 * torch.randn(shape, generator=gen)
        out.append(w.clone())
    return out


def _exact_pca(history: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates on the first three principal components, and their explained-variance ratios."""
    centred = history - history.mean(axis=0)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    return u[:, :3] * s[:3], s[:3] ** 2 / (s**2).sum()


def _aligned(coords: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """``coords`` with each axis flipped to agree with ``ref`` (principal axes have no sign)."""
    return coords * np.sign((coords * ref).sum(axis=0))


@pytest.mark.parametrize("solver", ["scipy", "torch"])
def test_exact_pca_equals_numpy_svd_at_every_update(solver: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if solver == "torch":  # without SciPy (or threadpoolctl) torch's eigen-solver is used
        monkeypatch.setattr(trajectory_module, "_scipy_solver", lambda: None)
    else:
        assert trajectory_module._scipy_solver() is not None
    walk = _walk((6, 2, 3, 3), 40)
    tracker = TrajectoryTracker(dims=[0, 10, 100], max_points=64)
    history = []
    for step, w in enumerate(walk):
        point = tracker.update(w)
        history.append(w.reshape(-1).double().numpy())
        assert point.step == step
        np.testing.assert_array_equal(point.dims, w.reshape(-1)[[0, 10, 100]].numpy())
        if step >= 3:
            ref, ratio = _exact_pca(np.stack(history))
            np.testing.assert_allclose(point.explained_variance, ratio, rtol=1e-5, atol=1e-7)
            np.testing.assert_allclose(np.abs(point.pca), np.abs(ref[-1]), rtol=1e-4, atol=1e-5)
    steps, coords = tracker.path()
    np.testing.assert_array_equal(steps, np.arange(40))
    ref, _ = _exact_pca(np.stack(history))
    np.testing.assert_allclose(_aligned(coords, ref), ref, rtol=1e-4, atol=1e-5)
    assert not tracker.sketched and tracker.kept == 40


def test_axes_keep_their_sign_from_update_to_update() -> None:
    tracker = TrajectoryTracker(max_points=32)
    previous = None
    flips = 0
    for w in _walk((40,), 120, seed=3):
        tracker.update(w)
        steps, coords = tracker.path()
        if previous is not None:
            common = np.intersect1d(steps, previous[0])
            a = coords[np.isin(steps, common)]
            b = previous[1][np.isin(previous[0], common)]
            ok = np.isfinite(a).all(axis=0) & np.isfinite(b).all(axis=0)
            flips += int(((a[:, ok] * b[:, ok]).sum(axis=0) < 0).sum())
        previous = (steps, coords)
    assert flips == 0
    # a brand-new axis puts the current point on its positive side
    fresh = TrajectoryTracker(dims=[0, 1, 2])
    fresh.update(torch.zeros(5))
    assert fresh.update(torch.ones(5)).pca[0] > 0


def test_thinning_keeps_memory_bounded_and_points_evenly_spaced() -> None:
    walk = _walk((30,), 300, seed=1)
    tracker = TrajectoryTracker(max_points=16)
    history = []
    for w in walk:
        point = tracker.update(w)
        history.append(w.double().numpy())
        assert tracker.kept < 16
    steps, coords = tracker.path()
    assert steps[0] == 0 and len(set(np.diff(steps).tolist())) == 1  # a uniform subsample of the run
    # the PCA is exactly that of the kept points plus the current one
    rows = [*steps.tolist(), 299] if steps[-1] != 299 else steps.tolist()
    ref, ratio = _exact_pca(np.stack(history)[rows])
    np.testing.assert_allclose(point.explained_variance, ratio, rtol=1e-5)
    np.testing.assert_allclose(np.abs(point.pca), np.abs(ref[-1]), rtol=1e-4, atol=1e-6)
    assert tracker._points is not None and tuple(tracker._points.shape) == (16, 30)
    # and near the PCA of the whole history once a few dozen points are kept (measured on this
    # path: ratios off by 0.13 with 10 kept points, 0.01 with 38, 0.002 with 75)
    _, full_ratio = _exact_pca(np.stack(history))
    wider = TrajectoryTracker(max_points=64)
    for w in walk:
        point = wider.update(w)
    assert wider.kept == 38
    np.testing.assert_allclose(point.explained_variance, full_ratio, atol=0.02)


def test_refresh_decomposes_every_few_updates_and_projects_in_between(monkeypatch: pytest.MonkeyPatch) -> None:
    # points that are neither kept nor decomposed take the short way: four inner products with
    # the axes in weight space instead of one with every kept point; both are checked below
    short = []
    axis_dots = TrajectoryTracker._axis_dots
    monkeypatch.setattr(TrajectoryTracker, "_axis_dots", lambda self, *a: short.append(1) or axis_dots(self, *a))
    walk = _walk((6, 2, 3, 3), 70, seed=2)
    exact = TrajectoryTracker(dims=[0, 1, 2], max_points=16)
    lazy = TrajectoryTracker(dims=[0, 1, 2], max_points=16, refresh=4)
    history: list[np.ndarray] = []
    basis: list[int] = []
    ratio_then = None
    decompositions = 0
    previous = None
    for step, w in enumerate(walk):
        e, p = exact.update(w), lazy.update(w)
        history.append(w.reshape(-1).double().numpy())
        steps, coords = lazy.path()
        if lazy._since == 0:  # this update decomposed: the same numbers as an exact tracker
            decompositions += 1
            np.testing.assert_allclose(p.explained_variance, e.explained_variance, rtol=1e-6, equal_nan=True)
            np.testing.assert_allclose(np.abs(p.pca), np.abs(e.pca), rtol=1e-5, atol=1e-6, equal_nan=True)
            basis = [*steps.tolist(), step] if step not in steps else steps.tolist()
            ratio_then = p.explained_variance
        else:  # the current point on the axes of the last decomposition, which numpy's SVD gives
            h = np.stack(history)
            mean = h[basis].mean(axis=0)
            _, _, vt = np.linalg.svd(h[basis] - mean, full_matrices=False)
            k = int(np.isfinite(ratio_then).sum())  # components defined at that decomposition
            expected = (h[step] - mean) @ vt[:k].T
            np.testing.assert_allclose(np.abs(p.pca[:k]), np.abs(expected), rtol=1e-4, atol=1e-6)
            assert np.isnan(p.pca[k:]).all()
            np.testing.assert_array_equal(p.explained_variance, ratio_then)
            # the path stays put between decompositions; a kept point joins it where it was projected
            assert previous is not None
            old = np.isin(steps, previous[0])
            np.testing.assert_array_equal(coords[old], previous[1][np.isin(previous[0], steps)])
            if steps[-1] == step:
                np.testing.assert_allclose(coords[-1], p.pca)
        previous = (steps, coords)
    # every 4th update, plus the updates where thinning changed the kept points
    assert 70 // 4 <= decompositions < 70 // 2
    assert len(short) >= 20  # after the first thinning, most points between decompositions
    assert lazy.kept == exact.kept
    with pytest.raises(DataError, match="refresh"):
        TrajectoryTracker(refresh=0)


def test_sketched_pca_is_close_to_exact_pca_of_the_full_weights() -> None:
    walk = _walk((5000,), 200, seed=2)
    tracker = TrajectoryTracker(max_points=256, sketch_dim=1024)
    for w in walk:
        point = tracker.update(w)
    assert tracker.sketched and tracker.kept == 200
    assert tracker._points is not None and tracker._points.shape[1] == 1024  # memory: the sketch, not the layer
    ref, ratio = _exact_pca(np.stack([w.double().numpy() for w in walk]))
    _, coords = tracker.path()
    # error ~ 1/sqrt(sketch_dim) = 3 % of each axis's extent (measured: 1-3 %)
    err = np.abs(_aligned(coords, ref) - ref).max(axis=0) / np.abs(ref).max(axis=0)
    assert (err < 0.08).all(), err
    np.testing.assert_allclose(point.explained_variance, ratio, atol=0.03)


def test_sketch_keeps_inner_products_in_expectation() -> None:
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(100_000, generator=gen), torch.randn(100_000, generator=gen)
    y = 0.6 * x + 0.8 * y
    ratios = []
    for seed in range(20):
        t = TrajectoryTracker(seed=seed, sketch_dim=512)
        t._start((100_000,), x.device)
        sx, sy = t._embed(x), t._embed(y)
        ratios.append(float(sx @ sy) / float(x.double() @ y.double()))
        assert float(sx @ sx) == pytest.approx(float(x.double() @ x.double()), rel=0.25)
    assert np.mean(ratios) == pytest.approx(1.0, abs=0.05)  # unbiased; each within ~1/sqrt(512)
    assert np.std(ratios) < 0.1


def test_the_sketch_is_each_weight_times_its_sign_added_to_its_bucket() -> None:
    # the definition, in numpy, against both ways of computing it: a layer of one chunk of signs
    # (rows of buckets summed) and one of several chunks (each chunk padded to whole rows)
    gen = torch.Generator().manual_seed(3)
    for numel in (1000, 4608, 9 * 65521 + 77):
        w = torch.randn(numel, generator=gen)
        t = TrajectoryTracker(seed=1, sketch_dim=300)
        t._start((numel,), w.device)
        signs = t._signs.numpy()
        reps = -(-numel // signs.size)
        expected = np.zeros(300)
        np.add.at(expected, np.arange(numel) % 300, w.double().numpy() * np.tile(signs, reps)[:numel])
        np.testing.assert_allclose(t._embed(w).numpy(), expected, rtol=1e-12, atol=1e-9)


def test_dims_undefined_components_and_errors() -> None:
    tracker = TrajectoryTracker(dims=[(0, 0), (1, 2), (2, 1)])
    first = tracker.update(torch.arange(9.0).reshape(3, 3))
    assert first.dim_index.tolist() == [0, 5, 7] and first.dims.tolist() == [0.0, 5.0, 7.0]
    assert np.isnan(first.pca).all() and np.isnan(first.explained_variance).all()
    second = tracker.update(torch.arange(9.0).reshape(3, 3) * 2)
    assert np.isfinite(second.pca[0]) and np.isnan(second.pca[1:]).all()
    assert second.explained_variance[0] == pytest.approx(1.0)
    payload = second.to_payload()
    assert {k: v.dtype for k, v in payload.items()} == {
        "dims": np.float32, "dim_index": np.int64, "pca": np.float32, "explained_variance": np.float32}
    assert all(v.shape == (3,) for v in payload.values())
    # random dims come from the seed
    a = TrajectoryTracker(seed=4).update(torch.zeros(1000)).dim_index
    assert a.tolist() == TrajectoryTracker(seed=4).update(torch.zeros(1000)).dim_index.tolist()
    assert len(set(a.tolist())) == 3
    with pytest.raises(DataError, match="changed shape"):
        tracker.update(torch.zeros(4, 4))
    tracker.reset()
    assert tracker.update(torch.zeros(3, 3)).step == 0
    with pytest.raises(DataError, match="NaN or Inf"):
        tracker.update(torch.full((3, 3), float("nan")))
    with pytest.raises(DataError, match="exactly 3"):
        TrajectoryTracker(dims=[0, 1])
    with pytest.raises(DataError, match="out of range"):
        TrajectoryTracker(dims=[0, 1, 99]).update(torch.zeros(10))
    with pytest.raises(DataError, match="distinct"):
        TrajectoryTracker(dims=[0, 1, 1]).update(torch.zeros(10))
    with pytest.raises(DataError, match="max_points"):
        TrajectoryTracker(max_points=3)
    with pytest.raises(DataError, match="only 2"):
        TrajectoryTracker().update(torch.zeros(2))


def test_deferred_batches_decompose_once_at_their_last_update() -> None:
    # defer=True (the in situ monitor): a refresh due inside a batch waits for its last update,
    # which is then on exact axes; the others are placed on the axes of the batch before
    walk = _walk((6, 2, 3, 3), 61, seed=4)
    exact = TrajectoryTracker(dims=[0, 1, 2], max_points=128)
    deferred = TrajectoryTracker(dims=[0, 1, 2], max_points=128, refresh=4)
    expected = [exact.update(w) for w in walk]
    start, previous_ratio = 0, None
    for size in [6, 10, 3, 20, 2, 20]:  # (all three axes from the first batch's fourth update on)
        got = deferred.update_many(list(walk[start : start + size]), defer=True)
        assert [p.step for p in got] == list(range(start, start + size))
        if size >= 4:  # a refresh fell due in it: made at the end, and only there
            assert deferred._since == 0
        if deferred._since == 0:  # the batch's last point on exact axes
            end = expected[start + size - 1]
            np.testing.assert_allclose(got[-1].explained_variance, end.explained_variance, rtol=1e-6, equal_nan=True)
            np.testing.assert_allclose(np.abs(got[-1].pca), np.abs(end.pca), rtol=1e-5, atol=1e-6, equal_nan=True)
        if previous_ratio is not None:
            for p in got[:-1]:
                np.testing.assert_array_equal(p.explained_variance, previous_ratio)
        previous_ratio = got[-1].explained_variance  # (the axes' own, decomposed or placed)
        start += size
    assert start == len(walk)
    # the path in the end is that of an exact tracker (the kept points on the same fresh axes)
    steps_a, path_a = deferred.path()
    steps_b, path_b = exact.path()
    assert steps_a.tolist() == steps_b.tolist()
    np.testing.assert_allclose(np.abs(path_a), np.abs(path_b), rtol=1e-5, atol=1e-6)
    # axes with fewer than three components are not held: the first (two points, at update 1)
    # is replaced when due, at update 5, not at the batch's last
    early = TrajectoryTracker(dims=[0, 1, 2], max_points=128, refresh=4).update_many(list(walk[:10]), defer=True)
    assert np.isnan(early[4].explained_variance[1:]).all() and np.isfinite(expected[5].explained_variance).all()
    np.testing.assert_allclose(early[5].explained_variance, expected[5].explained_variance, rtol=1e-6)


def test_updates_in_batches_equal_updates_one_by_one() -> None:
    # the in situ monitor updates a layer's trajectory once per batch of recordings: same points
    # through keeping, thinning, fixed axes between refreshes and the extra point of a
    # decomposition, sketched and not; with refresh=8, runs of up to 7 points placed together
    gen = torch.Generator().manual_seed(5)
    for shape, sketch, refresh in (((6, 2, 3, 3), 4096, 3), ((40, 30), 256, 3), ((6, 2, 3, 3), 4096, 8), ((40, 30), 256, 8)):
        walk = torch.cumsum(torch.randn(150, *shape, generator=gen) * 0.1, dim=0) + torch.randn(*shape, generator=gen)
        one = TrajectoryTracker(max_points=16, refresh=refresh, sketch_dim=sketch)
        many = TrajectoryTracker(max_points=16, refresh=refresh, sketch_dim=sketch)
        expected, paths = [], []  # (and the path after each update, which each= sees)
        for w in walk:
            expected.append(one.update(w))
            paths.append(one.path())
        got, seen, start = [], [], 0
        for size in [1, 5, 2, 17, 3, 40, 1, 30, 51]:
            got.extend(many.update_many(list(walk[start : start + size]), each=lambda _p, seen=seen, many=many: seen.append(many.path())))
            start += size
        assert start == len(walk) and len(got) == len(expected) and many.sketched == one.sketched
        for (steps_a, path_a), (steps_b, path_b) in zip(seen, paths, strict=True):
            assert steps_a.tolist() == steps_b.tolist()
            np.testing.assert_allclose(path_a, path_b, rtol=1e-4, atol=1e-5)
        for a, b in zip(got, expected, strict=True):
            assert a.step == b.step and a.dims.tolist() == b.dims.tolist()
            np.testing.assert_allclose(a.pca, b.pca, rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(a.explained_variance, b.explained_variance, rtol=1e-4, atol=1e-6)
        steps_a, path_a = many.path()
        steps_b, path_b = one.path()
        assert steps_a.tolist() == steps_b.tolist() and len(steps_a) >= 8  # thinned more than once
        np.testing.assert_allclose(path_a, path_b, rtol=1e-4, atol=1e-5)
    # a NaN in one of a batch raises and adds none of them
    before = many.kept, many._count
    bad = [walk[-1] + 0.1, walk[-1].clone().fill_(float("nan"))]
    with pytest.raises(DataError, match="NaN or Inf"):
        many.update_many(bad)
    assert (many.kept, many._count) == before


def test_path_version_changes_exactly_when_the_path_does() -> None:
    # what lets the in situ monitor send the last frame's path again without recomputing it
    tracker = TrajectoryTracker(max_points=8, refresh=5)
    walk = _walk((20,), 120, seed=3)
    seen = []
    for i in range(0, len(walk), 6):  # in batches, as the monitor updates it
        tracker.update_many(walk[i : i + 6], each=lambda _p: seen.append((tracker.path_version, tracker.path())))
    changes = 0
    for (v0, (s0, c0)), (v1, (s1, c1)) in zip(seen, seen[1:], strict=False):
        same = np.array_equal(s0, s1) and np.array_equal(c0, c1, equal_nan=True)
        assert (v0 == v1) == same  # an unchanged version means the same path, a new one a new path
        changes += v0 != v1
    assert 10 < changes < len(seen) - 10  # both happen on this path: kept points, and points only placed
    before = tracker.path_version
    tracker.reset()
    assert tracker.path_version != before and len(tracker.path()[0]) == 0


@pytest.mark.parametrize("shape", [(16, 1, 3, 3), (32, 16, 3, 3)])  # (the second is sketched: 4608 > 4096)
def test_a_saved_state_goes_on_with_the_same_path_in_another_tracker(shape, tmp_path) -> None:
    # a training resumed from its checkpoint: the state crosses processes as an .npz without pickles
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(shape, generator=gen)
    walk = []
    for _ in range(90):
        w = w + 0.01 * torch.randn(shape, generator=gen) + 0.002
        walk.append(w.clone())
    whole = TrajectoryTracker(seed=3, max_points=16, refresh=1)
    first = TrajectoryTracker(seed=3, max_points=16, refresh=1)
    for x in walk[:50]:
        whole.update(x)
        first.update(x)
    np.savez(tmp_path / "state.npz", **first.state_dict())
    with np.load(tmp_path / "state.npz", allow_pickle=False) as saved:
        then = TrajectoryTracker(seed=3, max_points=16, refresh=1)
        then.load_state_dict(dict(saved))
    assert then.updates == 50 and then.kept == whole.kept and then.sketched == (shape[1] == 16)
    for x in walk[50:]:  # (thinning happens on the way: 90 updates, 16 points kept at most)
        a, b = whole.update(x), then.update(x)
        assert a.step == b.step
        np.testing.assert_allclose(b.pca, a.pca, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(b.explained_variance, a.explained_variance, rtol=1e-5)
        np.testing.assert_array_equal(b.dims, a.dims)
    (s1, c1), (s2, c2) = whole.path(), then.path()
    np.testing.assert_array_equal(s1, s2)
    np.testing.assert_allclose(c2, c1, rtol=1e-5, atol=1e-6)
    # a state is refused by a tracker that would follow other weights or keep other points
    for other in (TrajectoryTracker(seed=4, max_points=16), TrajectoryTracker(seed=3, max_points=32)):
        with pytest.raises(DataError, match="seed, max_points, sketch_dim"):
            other.load_state_dict(first.state_dict())
    with pytest.raises(DataError, match="other weights"):
        TrajectoryTracker(seed=3, max_points=16, dims=[0, 1, 2]).load_state_dict(first.state_dict())
    with pytest.raises(DataError, match="not a trajectory tracker's state"):
        then.load_state_dict({"shape": np.asarray(shape)})
    empty = TrajectoryTracker(seed=3)
    empty.load_state_dict(TrajectoryTracker(seed=3).state_dict())  # nothing seen yet: nothing to go on with
    assert empty.updates == 0

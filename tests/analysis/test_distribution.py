"""Per-filter histograms and moments against numpy.histogram / mean / std, small and streamed."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from convscope.analysis import distribution as distribution_module
from convscope.analysis import feature_distribution, filter_groups
from convscope.errors import DataError


def _check_against_numpy(maps: torch.Tensor, bins: int, sample: int | None = None, d=None) -> None:
    d = feature_distribution(maps, bins=bins, sample=sample) if d is None else d
    x = maps if sample is None else maps[sample : sample + 1]
    f = x.shape[1]
    values = x.transpose(0, 1).reshape(f, -1).double().numpy()
    assert tuple(d.counts.shape) == (f, bins) and d.bins == bins and d.sample == sample
    for i in range(f):
        v = values[i]
        lo, hi = v.min(), v.max()
        assert float(d.min[i]) == np.float32(lo) and float(d.max[i]) == np.float32(hi)
        assert float(d.mean[i]) == pytest.approx(v.mean(), rel=1e-5, abs=1e-6)
        assert float(d.std[i]) == pytest.approx(v.std(), rel=1e-5, abs=1e-6)  # population std (ddof=0)
        if lo == hi:
            assert bool(d.constant[i]) and d.counts[i, 0] == v.size and d.counts[i].sum() == v.size
            continue
        ref, _ = np.histogram((v - lo) / (hi - lo), bins=bins, range=(0.0, 1.0))
        np.testing.assert_array_equal(d.counts[i].numpy(), ref)


def test_equals_numpy_histograms_and_moments() -> None:
    maps = torch.randn(6, 5, 7, 7, generator=torch.Generator().manual_seed(0)) * 4 + 2
    maps[:, 3] = 2.0  # a constant filter
    _check_against_numpy(maps, bins=16)
    _check_against_numpy(maps, bins=1)
    _check_against_numpy(maps, bins=7, sample=2)
    _check_against_numpy(torch.relu(maps), bins=32)
    last = feature_distribution(maps, bins=4, sample=-1)
    assert last.sample == 5 and float(last.counts[0].sum()) == 49


def test_values_on_bin_edges_go_up_and_the_maximum_goes_to_the_last_bin() -> None:
    # integers 0..8 normalise to exactly k/8: each lands in bin k, and 8 (= 1.0) in the last bin
    maps = torch.arange(9.0).repeat(4, 2, 1).reshape(4, 2, 9)
    maps[:, 1] = maps[:, 1] * -3 + 100  # 100, 97 .. 76: also k/8 after normalising
    d = feature_distribution(maps, bins=8)
    assert d.counts[0].tolist() == [4.0] * 7 + [8.0]
    assert d.counts[1].tolist() == [4.0] * 7 + [8.0]
    _check_against_numpy(maps, bins=8)


def test_the_streamed_path_equals_the_small_one_and_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    maps = torch.randn(8, 6, 20, 20, generator=torch.Generator().manual_seed(1)).relu_()
    maps[:, 4] = -1.5
    small = feature_distribution(maps, bins=20)
    # shrink the working-set bound so these maps stream in chunks cut inside samples and across them
    for chunk in (50, 1000, 5000):
        monkeypatch.setattr(distribution_module, "_CHUNK_VALUES", chunk)
        streamed = feature_distribution(maps, bins=20)
        for name in ("counts", "min", "max", "constant"):
            assert torch.equal(getattr(streamed, name), getattr(small, name)), name
        torch.testing.assert_close(streamed.mean, small.mean)
        torch.testing.assert_close(streamed.std, small.std)
        _check_against_numpy(maps, bins=20)


def test_payload_contract() -> None:
    p = feature_distribution(torch.rand(3, 4, 5, 5), bins=10).to_payload()
    assert set(p) == {"counts", "bins", "min", "max", "mean", "std"}
    assert p["counts"].dtype == np.float32 and p["counts"].shape == (4, 10)
    assert all(p[k].dtype == np.float32 and p[k].shape == (4,) for k in ("min", "max", "mean", "std"))
    assert p["bins"] == 10 and p["counts"].sum() == 3 * 4 * 25


def test_dense_layers_and_bad_input() -> None:
    dense = torch.randn(32, 10, generator=torch.Generator().manual_seed(2))
    _check_against_numpy(dense, bins=8)
    bad = torch.randn(2, 3, 4)
    bad[0, 1, 2] = float("inf")
    with pytest.raises(DataError, match="NaN or Inf"):
        feature_distribution(bad)
    with pytest.raises(DataError, match="bins"):
        feature_distribution(dense, bins=0)
    with pytest.raises(DataError, match="out of range"):
        feature_distribution(dense, sample=32)
    with pytest.raises(DataError, match="unsqueeze"):
        feature_distribution(torch.randn(5))


def test_a_tiny_spread_on_a_large_mean_keeps_its_std() -> None:
    # float32 centring misses the mean by up to half an ulp of 1000; that must not show in the std
    gen = torch.Generator().manual_seed(1)
    maps = 1000 + torch.rand(16, 3, 9, 9, generator=gen) * 0.001  # (without the care: 1.4% off)
    _check_against_numpy(maps, bins=10)


def test_distribution_and_correlation_together_equal_each_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    from convscope.analysis import feature_correlation, feature_distribution_and_correlation

    gen = torch.Generator().manual_seed(4)
    maps = torch.randn(8, 6, 12, 12, generator=gen).relu_()
    maps[:, 2] = 2 * maps[:, 0] + 1  # correlation 1 with filter 0
    maps[:, 4] = 0.0  # a ReLU that never fires: constant, dead
    cases = {"small": maps, "huge values": maps * 1e20}
    for name, m in cases.items():
        d, r = feature_distribution_and_correlation(m, bins=12)
        alone_d, alone_r = feature_distribution(m, bins=12), feature_correlation(m)
        for key in ("counts", "min", "max", "constant"):
            assert torch.equal(getattr(d, key), getattr(alone_d, key)), (name, key)
        torch.testing.assert_close(d.mean, alone_d.mean)
        torch.testing.assert_close(d.std, alone_d.std)
        assert torch.equal(r.dead, alone_r.dead) and r.dead.tolist() == [False] * 4 + [True, False]
        torch.testing.assert_close(r.matrix, alone_r.matrix, atol=1e-5, rtol=0)
        assert float(r.matrix[0, 2]) == pytest.approx(1.0, abs=1e-5)
    _check_against_numpy(maps, bins=12)
    # maps over the chunk bound are streamed in float32 chunks: cut inside samples and across
    # them, the same numbers as numpy and as each function's own streamed path
    for chunk in (50, 1000):
        monkeypatch.setattr(distribution_module, "_CHUNK_VALUES", chunk)
        for name, m in cases.items():
            d, r = feature_distribution_and_correlation(m, bins=12)
            alone_d, alone_r = feature_distribution(m, bins=12), feature_correlation(m)
            for key in ("counts", "min", "max", "constant"):
                assert torch.equal(getattr(d, key), getattr(alone_d, key)), (chunk, name, key)
            torch.testing.assert_close(d.std, alone_d.std)
            torch.testing.assert_close(r.matrix, alone_r.matrix, atol=1e-5, rtol=0)
            assert r.dead.tolist() == [False] * 4 + [True, False]
        _check_against_numpy(maps, bins=12, d=feature_distribution_and_correlation(maps, bins=12)[0])
        # a tiny spread on a large mean keeps its std (the float32 centring's error is taken off)
        shifted = 1000 + maps * 0.001
        _check_against_numpy(shifted, bins=12, d=feature_distribution_and_correlation(shifted, bins=12)[0])
        bad = maps.clone()
        bad[5, 3, 2, 2] = float("nan")
        with pytest.raises(DataError, match=r"NaN or Inf"):
            feature_distribution_and_correlation(bad, bins=12)
    with pytest.raises(DataError, match="NaN or Inf"):
        feature_distribution_and_correlation(torch.full((2, 3, 4, 4), float("nan")))
    with pytest.raises(DataError, match="bins"):
        feature_distribution_and_correlation(maps, bins=0)


def test_many_recordings_at_once_equal_each_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    from convscope.analysis import feature_distribution_and_correlation, feature_distributions_and_correlations

    gen = torch.Generator().manual_seed(7)
    maps = [torch.randn(4, 6, 9, 9, generator=gen).relu_() for _ in range(5)]
    maps[1][:, 3] = 0.0  # a dead filter in one recording only
    maps[2][:, 5] = 3 * maps[2][:, 0] - 1  # correlation 1 in another
    maps.insert(3, torch.randn(4, 5, 9, 9, generator=gen))  # a pruned layer: another shape between
    monkeypatch.setattr(distribution_module, "_STACK_VALUES", 3 * maps[0].numel())  # stacks of three at most
    got = feature_distributions_and_correlations(maps, bins=10)
    assert len(got) == len(maps)
    for m, (d, r) in zip(maps, got, strict=True):
        alone_d, alone_r = feature_distribution_and_correlation(m, bins=10)
        assert d.counts.device.type == "cpu" and d.counts.dtype == torch.float32
        for key in ("counts", "min", "max", "constant"):
            assert torch.equal(getattr(d, key), getattr(alone_d, key)), key
        torch.testing.assert_close(d.mean, alone_d.mean)
        torch.testing.assert_close(d.std, alone_d.std)
        assert torch.equal(r.dead, alone_r.dead)
        torch.testing.assert_close(r.matrix, alone_r.matrix, atol=1e-6, rtol=0)
        _check_payload_equal(d.to_payload(), alone_d.to_payload())
        # a stack's results carry their payloads' arrays on the host: the same as the tensors'
        _check_payload_equal(r.to_payload(), dataclasses.replace(r, host=None).to_payload())
        assert filter_groups(r, threshold=0.99).labels.tolist() == filter_groups(alone_r, threshold=0.99).labels.tolist()
    assert got[0][0].host is not None and got[0][1].host is not None  # stacked
    assert got[3][0].host is None and got[3][1].host is None  # alone: another shape
    assert got[1][1].dead.tolist() == [False] * 3 + [True] + [False] * 2
    assert float(got[2][1].matrix[0, 5]) == pytest.approx(1.0, abs=1e-5)
    # NaN in one recording: the clear error of that recording
    bad = [maps[0], torch.full_like(maps[0], float("nan"))]
    with pytest.raises(DataError, match="NaN or Inf"):
        feature_distributions_and_correlations(bad)
    assert feature_distributions_and_correlations([]) == []


def test_strided_views_are_read_as_their_copies() -> None:
    """The in situ monitor hands big maps over as a grid (a strided view, no copy): the stack
    reads it as it would a contiguous copy of it."""
    from convscope.analysis import feature_distributions_and_correlations

    gen = torch.Generator().manual_seed(3)
    maps = [torch.randn(4, 6, 17, 17, generator=gen) for _ in range(3)]
    grids = [m[:, :, ::3, ::3] for m in maps]
    assert not grids[0].is_contiguous()
    got = feature_distributions_and_correlations(grids, bins=12)
    want = feature_distributions_and_correlations([g.contiguous() for g in grids], bins=12)
    for (d, r), (wd, wr) in zip(got, want, strict=True):
        _check_payload_equal(d.to_payload(), wd.to_payload())
        assert torch.equal(r.matrix, wr.matrix)
    assert float(got[0][0].counts.sum(dim=1)[0]) == 4 * 6 * 6


def _check_payload_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-6, atol=0)

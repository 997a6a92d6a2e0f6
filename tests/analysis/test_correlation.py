"""Filter correlation against numpy.corrcoef, its laws, chunking, dead filters and memory."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import convscope
from convscope.analysis import feature_correlation
from convscope.errors import DataError


def _ref(maps: torch.Tensor) -> np.ndarray:
    f = maps.shape[1]
    return np.corrcoef(maps.transpose(0, 1).reshape(f, -1).double().numpy())


def test_equals_numpy_on_random_maps() -> None:
    maps = torch.randn(8, 12, 9, 9, generator=torch.Generator().manual_seed(0)) * 3 + 5
    r = feature_correlation(maps)
    assert r.matrix.dtype == torch.float32 and r.dead.dtype == torch.bool
    np.testing.assert_allclose(r.matrix.numpy(), _ref(maps), atol=1e-6)
    exact = feature_correlation(maps.double(), dtype=torch.float64)
    np.testing.assert_allclose(exact.matrix.double().numpy(), _ref(maps), atol=1e-7)  # float32 result, float64 sums


@pytest.mark.parametrize("chunk", [1, 7, 81, 100, 648, 10_000])
def test_chunked_equals_unchunked(chunk: int) -> None:
    # chunks smaller than one map (cut inside a sample), equal to it, spanning several samples
    maps = torch.relu(torch.randn(8, 12, 9, 9, generator=torch.Generator().manual_seed(1))) + 2
    whole = feature_correlation(maps, chunk_size=10**9).matrix.numpy()
    np.testing.assert_allclose(feature_correlation(maps, chunk_size=chunk).matrix.numpy(), whole, atol=2e-6)
    np.testing.assert_allclose(whole, _ref(maps), atol=2e-6)


def test_equals_numpy_on_real_feature_maps() -> None:
    model = convscope.load_model("lenet5-simplified")
    x = convscope.load_dataset("mnist-5k", split="test", spec=model.input_spec).images[:16]
    out = convscope.capture(model, x, layers=["relu1", "conv2", "fc1"]).outputs
    for name in ("conv2", "relu1", "fc1"):  # fc1: a dense layer, N x F
        r = feature_correlation(out[name])
        ref = _ref(out[name].reshape(16, out[name].shape[1], -1))
        live = ~r.dead.numpy()
        dead_ref = out[name].transpose(0, 1).reshape(out[name].shape[1], -1).std(dim=1).numpy() == 0
        np.testing.assert_array_equal(r.dead.numpy(), dead_ref)
        np.testing.assert_allclose(r.matrix.numpy()[np.ix_(live, live)], ref[np.ix_(live, live)], atol=1e-5)


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
    assert (m[dead] == 0).all() and (m[:, dead] == 0).all()
    flat = maps.transpose(1, 0, 2, 3).reshape(maps.shape[1], -1)
    constant = flat.min(axis=1) == flat.max(axis=1)
    assert dead[constant].all()  # constant maps are always reported dead
    spread = flat.max(axis=1).astype(np.float64) - flat.min(axis=1)
    assert (spread[dead & ~constant] < 1e-18).all()  # and otherwise only maps whose float32 variance underflows


def test_dead_filters_duplicates_and_anticorrelation() -> None:
    maps = torch.randn(4, 6, 8, 8, generator=torch.Generator().manual_seed(1))
    maps[:, 2] = 0.0  # a ReLU that never fires
    maps[:, 3] = 7.5  # a constant that is not zero
    maps[:, 4] = maps[:, 1] * 2 + 1  # filter 1 again, up to scale and offset
    maps[:, 5] = -maps[:, 0]
    r = feature_correlation(maps)
    assert r.dead.tolist() == [False, False, True, True, False, False]
    assert float(r.matrix[2].abs().sum()) == 0.0 and float(r.matrix[2, 2]) == 0.0
    assert float(r.matrix[1, 4]) == pytest.approx(1.0, abs=1e-6)
    assert float(r.matrix[0, 5]) == pytest.approx(-1.0, abs=1e-6)
    payload = r.to_payload()
    assert payload["matrix"].dtype == np.float32 and payload["matrix"].shape == (6, 6)
    assert payload["dead"].dtype == np.bool_ and payload["dead"].tolist() == r.dead.tolist()


def test_half_precision_and_integer_maps() -> None:
    maps = torch.randn(4, 5, 6, 6, generator=torch.Generator().manual_seed(2))
    half = feature_correlation(maps.half()).matrix.numpy()
    np.testing.assert_allclose(half, _ref(maps.half().float()), atol=1e-4)
    ints = torch.randint(0, 9, (4, 5, 6, 6), generator=torch.Generator().manual_seed(3))
    np.testing.assert_allclose(feature_correlation(ints).matrix.numpy(), _ref(ints.double()), atol=1e-6)


def test_bad_maps_are_refused_with_a_reason() -> None:
    maps = torch.randn(2, 3, 4, 4)
    maps[1, 2, 0, 0] = float("nan")
    with pytest.raises(DataError, match=r"NaN or Inf in filters \[2\]"):
        feature_correlation(maps)
    maps[1, 2, 0, 0] = float("inf")
    with pytest.raises(DataError, match="NaN or Inf"):
        feature_correlation(maps)
    with pytest.raises(DataError, match="unsqueeze"):
        feature_correlation(torch.randn(5))
    with pytest.raises(DataError, match="no values"):
        feature_correlation(torch.randn(0, 3, 4, 4))
    with pytest.raises(DataError, match="chunk_size"):
        feature_correlation(torch.randn(2, 3, 4), chunk_size=-1)
    with pytest.raises(DataError, match="torch.Tensor"):
        feature_correlation(np.zeros((2, 3, 4)))  # type: ignore[arg-type]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the peak resident memory from /proc")
def test_memory_stays_bounded_on_vgg16_conv1_sized_maps() -> None:
    # VGG-16 conv1 on 8 images at 224x224: 64 filters x 401,408 values (103 MB). The process's
    # peak resident memory may grow by the one centred chunk (one image: 12.8 MB), not by a copy
    # of the maps (torch.corrcoef of the transposed maps adds 196 MB, numpy's 295 MB). In a fresh process:
    # the peak (VmHWM) is reset just before the call, so nothing earlier counts.
    code = textwrap.dedent(
        """
        import json, torch
        from convscope.analysis import feature_correlation

        def status(key):
            with open("/proc/self/status") as f:
                return next(int(line.split()[1]) for line in f if line.startswith(key + ":")) / 1024

        torch.set_num_threads(1)
        maps = torch.randn(8, 64, 224, 224, generator=torch.Generator().manual_seed(0)).relu_()  # no temporary
        feature_correlation(maps[:1, :, :8, :8])   # warm up allocator and kernels
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the peak to the current resident size
        before = status("VmRSS")
        r = feature_correlation(maps)
        peak = status("VmHWM") - before
        d = maps[:2].transpose(0, 1).reshape(64, -1).double()
        check = float((torch.corrcoef(d)[:5, :5] - feature_correlation(maps[:2]).matrix[:5, :5]).abs().max())
        print(json.dumps({"peak_mb": peak, "dead": int(r.dead.sum()), "check": check}))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["dead"] == 0 and result["check"] < 1e-5
    assert 5 < result["peak_mb"] < 32, result


def test_huge_activations_of_a_diverging_run_still_correlate() -> None:
    # values near 1e20 overflow a float32 Gram product; the result must match the same maps
    # at ordinary scale (Pearson correlation ignores each filter's scale)
    g = torch.Generator().manual_seed(3)
    maps = torch.randn(8, 6, 10, 10, generator=g)
    maps[:, 1] = maps[:, 0] * 2 + 0.1 * torch.randn(8, 10, 10, generator=g)
    huge = maps * torch.tensor([1e20, 3e19, 1.0, 1e-3, 5e18, 1e21]).view(1, 6, 1, 1)
    ordinary = feature_correlation(maps)
    scaled = feature_correlation(huge)
    assert torch.isfinite(scaled.matrix).all() and not scaled.dead.any()
    torch.testing.assert_close(scaled.matrix, ordinary.matrix, atol=2e-5, rtol=0)
    with pytest.raises(DataError, match="NaN or Inf"):
        feature_correlation(torch.where(maps > 2.5, torch.tensor(float("inf")), huge))

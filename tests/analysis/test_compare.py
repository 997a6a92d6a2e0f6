"""Pair comparison on the zoo's LeNet-5 with a digit and its noisy copy, against torch/numpy."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import convscope
from convscope.analysis import compare_pair
from convscope.errors import DataError

LAYERS = ["conv1", "relu1", "conv2", "relu2", "fc1", "fc2"]


@pytest.fixture(scope="module")
def pair() -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    model = convscope.load_model("lenet5-simplified")
    x = convscope.load_dataset("mnist-5k", split="test").images[:1]
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    noisy = (x + 0.5 * noise).clamp(0, 1)
    faint = (x + 0.02 * noise).clamp(0, 1)
    run = lambda img: convscope.capture(model, model.input_spec.prepare(img), layers=LAYERS).outputs  # noqa: E731
    return run(x), run(noisy), run(faint)


def test_differences_equal_direct_computation(pair) -> None:
    a, b, _ = pair
    r = compare_pair(a, b)
    assert [d.layer for d in r.layers] == LAYERS
    for name in LAYERS:
        x, y = a[name][0].double().numpy(), b[name][0].double().numpy()
        d = r.layer(name)
        assert d.l2 == pytest.approx(np.linalg.norm(x - y), rel=1e-9)
        assert d.relative == pytest.approx(np.linalg.norm(x - y) / np.linalg.norm(x), rel=1e-9)
        assert d.cosine == pytest.approx((x * y).sum() / np.linalg.norm(x) / np.linalg.norm(y), rel=1e-9)
        fx, fy = x.reshape(x.shape[0], -1), y.reshape(y.shape[0], -1)
        per_l2 = np.linalg.norm(fx - fy, axis=1)
        np.testing.assert_allclose(d.filter_l2, per_l2, rtol=1e-9)
        live = np.linalg.norm(fx, axis=1) > 0
        np.testing.assert_allclose(d.filter_relative[live], per_l2[live] / np.linalg.norm(fx, axis=1)[live], rtol=1e-9)
        assert d.top_filters == np.argsort(-per_l2, kind="stable")[:5].tolist()
    by_relative = compare_pair(a, b, rank_by="relative", top=3).layer("conv1")
    assert by_relative.top_filters == np.argsort(-by_relative.filter_relative, kind="stable")[:3].tolist()


def test_a_digit_and_its_noisy_copy_part_ways_and_a_faint_copy_does_not(pair) -> None:
    a, noisy, faint = pair
    same = compare_pair(a, a)
    assert all(d.l2 == 0 and d.cosine == pytest.approx(1.0) and d.relative == 0 for d in same.layers)
    assert same.diverges_at is None
    r = compare_pair(a, noisy, threshold=0.3)
    rel = [d.relative for d in r.layers]
    # the documented rule, applied by hand: the first layer from which every later one is >= threshold
    expected = next((LAYERS[i] for i in range(len(LAYERS)) if all(v >= 0.3 for v in rel[i:])), None)
    assert r.diverges_at == expected is not None
    assert compare_pair(a, faint, threshold=0.3).diverges_at is None
    # noise is strongest right after the input; the trained network washes part of it out
    assert r.layer("conv1").relative > compare_pair(a, faint).layer("conv1").relative


def test_divergence_needs_the_difference_to_stay() -> None:
    ones = torch.ones(1, 4)

    def layers(*scales: float) -> dict[str, torch.Tensor]:
        return {f"l{i}": ones * s for i, s in enumerate(scales)}

    a = layers(1, 1, 1, 1)
    assert compare_pair(a, layers(2, 1, 2, 2)).diverges_at == "l2"  # l0's difference did not last
    assert compare_pair(a, layers(2, 2, 2, 1)).diverges_at is None
    assert compare_pair(a, layers(1.2, 1.6, 2, 3), threshold=0.5).diverges_at == "l1"
    assert compare_pair(a, layers(2, 2, 2, 2), layers=["l3", "l0"]).layers[0].layer == "l3"


def test_zeros_batches_payload_and_errors() -> None:
    a = {"conv": torch.zeros(2, 3, 4, 4)}
    b = {"conv": torch.zeros(2, 3, 4, 4)}
    b["conv"][1, 2] = 1.0
    r = compare_pair(a, b, sample=1)
    d = r.layer("conv")
    assert d.filter_cosine.tolist() == [1.0, 1.0, 0.0] and d.filter_relative.tolist() == [0.0, 0.0, float("inf")]
    assert d.top_filters[0] == 2 and d.relative == float("inf")
    assert compare_pair(a, b, sample=0).layer("conv").l2 == 0
    payload = r.to_payload()
    assert payload["layers"] == ["conv"] and payload["l2"].dtype == np.float64 and payload["l2"][0] == 4.0
    assert payload["filter_l2"][0].tolist() == [0.0, 0.0, 4.0] and payload["diverges_at"] == "conv"
    text = json.dumps(r.to_dict(), allow_nan=False)  # inf is not JSON: it becomes null
    assert json.loads(text)["layers"][0]["filter_relative"] == [0.0, 0.0, None]
    dense = compare_pair({"fc": torch.tensor([[1.0, -2.0]])}, {"fc": torch.tensor([[1.0, 2.0]])}).layer("fc")
    assert dense.filter_cosine.tolist() == [1.0, -1.0] and dense.top_filters == [1, 0]
    with pytest.raises(DataError, match="out of range"):
        compare_pair(a, b, sample=2)
    with pytest.raises(DataError, match="shape"):
        compare_pair(a, {"conv": torch.zeros(2, 3, 4, 5)})
    with pytest.raises(DataError, match="no layer"):
        compare_pair(a, {"other": torch.zeros(1)})
    with pytest.raises(DataError, match="missing from B"):
        compare_pair({**a, "fc": torch.zeros(1, 2)}, b, layers=["conv", "fc"])
    with pytest.raises(DataError, match="rank_by"):
        compare_pair(a, b, rank_by="cosine")
    with pytest.raises(DataError, match="not compared"):
        r.layer("fc")

"""The view computations against independent references: grid, distribution, images, trajectory, health."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from convscope.analysis import (
    GradientHealthTracker,
    TrajectoryTracker,
    compare_pair,
    feature_distribution,
    feature_images,
    gradient_health,
    grid_layout,
    weight_grid,
)


def test_weight_grid_keeps_values_and_signs() -> None:
    w = torch.randn(5, 3, 3, 3, generator=torch.Generator().manual_seed(0))
    g = weight_grid(w)
    p = g.to_payload()
    np.testing.assert_array_equal(p["weights"], w.numpy())
    assert p["vmax"] == pytest.approx(float(w.abs().max()))
    np.testing.assert_array_equal(g.sign.numpy(), np.sign(w.numpy()))
    layout = grid_layout(g)
    assert layout is not None
    dense = weight_grid(torch.randn(4, 7))
    assert dense.to_payload()["weights"].shape in ((4, 7), (4, 7, 1, 1))


def test_distribution_equals_numpy_histograms() -> None:
    maps = torch.randn(6, 5, 7, 7, generator=torch.Generator().manual_seed(0))
    maps[:, 3] = 2.0  # constant filter
    d = feature_distribution(maps, bins=16)
    for f in range(5):
        v = maps[:, f].reshape(-1).double().numpy()
        if f == 3:
            assert d.counts[f, 0] == v.size and bool(d.constant[f])
            continue
        ref, _ = np.histogram((v - v.min()) / (v.max() - v.min()), bins=16, range=(0, 1))
        np.testing.assert_array_equal(d.counts[f].numpy(), ref)
        assert float(d.mean[f]) == pytest.approx(v.mean(), rel=1e-5, abs=1e-6)
        assert float(d.std[f]) == pytest.approx(v.std(), rel=1e-5)
    one = feature_distribution(maps, bins=16, sample=2)
    assert float(one.counts[0].sum()) == 49


def test_feature_images_normalisation() -> None:
    maps = torch.randn(3, 4, 10, 12, generator=torch.Generator().manual_seed(0))
    per_map = feature_images(maps, sample=1, normalisation="per_map").to_payload()
    img = per_map["images"]
    assert img.dtype == np.uint8 and img.shape == (4, 10, 12)
    for f in range(4):
        m = maps[1, f].numpy()
        ref = np.round((m - m.min()) / (m.max() - m.min()) * 255)
        assert np.abs(img[f].astype(int) - ref).max() <= 1
    shared = feature_images(maps, sample=1, normalisation="shared").to_payload()["images"]
    assert shared.max() == 255 and shared.min() == 0 and (shared.reshape(4, -1).max(1) < 255).sum() >= 1
    big = feature_images(torch.randn(1, 64, 224, 224), max_size=56).to_payload()
    assert big["images"].shape == (64, 56, 56) and big["scale"] != 1


def test_trajectory_dims_are_exact_and_pca_spans_the_path() -> None:
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(6, 2, 3, 3, generator=gen)
    tracker = TrajectoryTracker(dims=[0, 10, 100])
    history = []
    direction = torch.randn(w.shape, generator=gen)
    for _step in range(30):
        w = w + 0.1 * direction + 0.01 * torch.randn(w.shape, generator=gen)
        history.append(w.reshape(-1).double().numpy().copy())
        point = tracker.update(w)
        np.testing.assert_array_equal(point.dims, w.reshape(-1)[[0, 10, 100]].numpy())
    # a near-straight path: the first component explains nearly everything, as numpy's SVD says
    h = np.stack(history)
    s = np.linalg.svd(h - h.mean(0), compute_uv=False)
    assert point.explained_variance[0] == pytest.approx(s[0] ** 2 / (s**2).sum(), abs=0.02)
    steps, coords = tracker.path()
    assert coords.shape == (len(steps), 3) and np.isfinite(coords).all()


def test_gradient_health_flags_vanishing_and_exploding_layers() -> None:
    torch.manual_seed(0)
    deep = torch.nn.Sequential(*[m for _ in range(12) for m in (torch.nn.Linear(32, 32), torch.nn.Sigmoid())], torch.nn.Linear(32, 10))
    x = torch.randn(64, 32)
    torch.nn.functional.cross_entropy(deep(x), torch.randint(0, 10, (64,))).backward()
    first, last = deep[0], deep[-1]
    assert gradient_health(first.weight.grad, first.weight).status == "vanishing"
    assert gradient_health(last.weight.grad, last.weight).status == "healthy"
    huge = last.weight.grad * 1e6
    assert gradient_health(huge, last.weight).status == "exploding"
    assert gradient_health(last.weight.grad * float("nan"), last.weight).status == "nonfinite"
    tracker = GradientHealthTracker(patience=2)
    statuses = [tracker.update("fc", last.weight.grad, last.weight, step=s, previous_weight=last.weight.detach()).status for s in range(3)]
    assert statuses[-1] == "stalled"  # real gradients, weights that never move


def test_pair_comparison_finds_where_a_digit_and_its_noisy_twin_part() -> None:
    import convscope

    model = convscope.load_model("lenet5-simplified")
    x = convscope.load_dataset("mnist-5k", split="test").images[:1]
    twin = (x + 0.5 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    layers = ["conv1", "conv2", "fc1", "fc2"]
    a = convscope.capture(model, model.input_spec.prepare(x), layers=layers).outputs
    b = convscope.capture(model, model.input_spec.prepare(twin), layers=layers).outputs
    same = compare_pair(a, a)
    assert all(d.l2 == 0 and d.cosine == pytest.approx(1.0) for d in same.layers) and same.diverges_at is None
    r = compare_pair(a, b, threshold=0.3)
    conv1 = r.layer("conv1")
    ref = float((a["conv1"] - b["conv1"]).norm() / a["conv1"].norm())
    assert conv1.relative == pytest.approx(ref, rel=1e-6)
    per_filter = ((a["conv1"][0] - b["conv1"][0]).flatten(1).norm(dim=1) / a["conv1"][0].flatten(1).norm(dim=1)).numpy()
    np.testing.assert_allclose(conv1.filter_relative, per_filter, rtol=1e-6)
    assert conv1.top_filters[0] == int(np.argmax(per_filter))
    assert r.diverges_at in layers

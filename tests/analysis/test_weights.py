"""The weight grid and its layout, checked cell by cell against the weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from convscope.analysis import grid_layout, weight_grid, weight_grids
from convscope.errors import DataError


def test_conv_grid_keeps_values_signs_and_vmax() -> None:
    conv = torch.nn.Conv2d(3, 5, (3, 2))
    g = weight_grid(conv.weight)
    p = g.to_payload()
    w = conv.weight.detach().numpy()
    assert p["weights"].dtype == np.float32 and p["weights"].shape == (5, 3, 3, 2)
    np.testing.assert_array_equal(p["weights"], w)
    assert p["vmax"] == float(np.abs(w).max()) and isinstance(p["vmax"], float)
    np.testing.assert_array_equal(g.sign.numpy(), np.sign(w))
    np.testing.assert_allclose(g.heights.numpy(), w / np.abs(w).max(), rtol=1e-6)
    assert float(g.heights.abs().max()) == 1.0
    assert not g.weights.requires_grad


def test_dense_conv1d_and_empty_or_odd_weights() -> None:
    dense = torch.tensor([[1.0, -2.0, 0.0], [0.5, 4.0, -4.0]])
    g = weight_grid(dense)
    assert tuple(g.weights.shape) == (2, 3, 1, 1) and g.vmax == 4.0
    np.testing.assert_array_equal(g.weights[:, :, 0, 0].numpy(), dense.numpy())
    assert g.sign[0, 2, 0, 0] == 0
    conv1d = torch.randn(4, 2, 5)
    g1 = weight_grid(conv1d)
    assert tuple(g1.weights.shape) == (4, 2, 1, 5)
    np.testing.assert_array_equal(g1.weights[:, :, 0, :].numpy(), conv1d.numpy())
    zero = weight_grid(torch.zeros(2, 2, 3, 3))
    assert zero.vmax == 0.0 and float(zero.heights.abs().sum()) == 0.0
    assert weight_grid(torch.ones(2, 2, dtype=torch.float16)).weights.dtype == torch.float32
    with pytest.raises(DataError, match="biases"):
        weight_grid(torch.randn(8))
    with pytest.raises(DataError, match="empty"):
        weight_grid(torch.zeros(0, 3, 3, 3))
    with pytest.raises(DataError, match="NaN"):
        weight_grid(torch.tensor([[1.0, float("nan")]]))


@pytest.mark.parametrize("gap", [0, 1, 2])
def test_layout_places_every_weight_in_its_window(gap: int) -> None:
    # TensorView's grid: input channels are rows, filters are columns, each cell a kh x kw window
    w = torch.randn(4, 3, 2, 3, generator=torch.Generator().manual_seed(0))
    lay = grid_layout(weight_grid(w), gap=gap)
    f, c, kh, kw = w.shape
    assert lay.values.shape == (c * (kh + gap), f * (kw + gap)) and lay.gap == gap
    filled = np.zeros(lay.values.shape, dtype=bool)
    for fi in range(f):
        for ci in range(c):
            for i in range(kh):
                for j in range(kw):
                    row, col = ci * (kh + gap) + i, fi * (kw + gap) + j
                    assert lay.values[row, col] == w[fi, ci, i, j]
                    assert lay.heights[row, col] == pytest.approx(float(w[fi, ci, i, j]) / lay.vmax, rel=1e-6)
                    assert lay.centres[fi, ci, i, j].tolist() == [col + 0.5, row + 0.5]
                    filled[row, col] = True
    assert np.isnan(lay.values[~filled]).all() and np.isnan(lay.heights[~filled]).all()
    assert filled.sum() == w.numel()
    payload = lay.to_payload()
    assert payload["values"] is lay.values and payload["gap"] == gap and payload["vmax"] == lay.vmax
    with pytest.raises(DataError, match="gap"):
        grid_layout(w, gap=-1)


def test_layout_of_a_dense_layer_is_one_window_grid() -> None:
    lay = grid_layout(torch.arange(6.0).reshape(2, 3) - 2, gap=0)  # 2 units x 3 inputs
    np.testing.assert_array_equal(lay.values, (np.arange(6.0).reshape(2, 3) - 2).T)  # inputs are rows
    np.testing.assert_array_equal(lay.heights, lay.values / 3.0)


def test_a_single_input_channel_wraps_its_filters_into_a_block() -> None:
    # conv1 on grey images (16 x 1 x 3 x 3) would be a 1 x 16 strip; it is a 4 x 4 block of windows
    w = torch.randn(16, 1, 3, 3, generator=torch.Generator().manual_seed(1))
    lay = grid_layout(w, gap=1)
    assert lay.values.shape == (4 * 4, 4 * 4)
    for f in range(16):
        row, col = (f // 4) * 4, (f % 4) * 4
        np.testing.assert_array_equal(lay.values[row : row + 3, col : col + 3], w[f, 0].numpy())
        assert lay.centres[f, 0, 0, 0].tolist() == [col + 0.5, row + 0.5]
    assert np.isnan(lay.values).sum() == lay.values.size - w.numel()
    # 5 filters: rows of 3, the last row part empty
    lay = grid_layout(torch.ones(5, 1, 2, 2), gap=0)
    assert lay.values.shape == (4, 6) and np.isnan(lay.values[2:, 4:]).all() and (lay.values[2:, :4] == 1).all()


def test_grids_of_several_recordings_equal_each_alone() -> None:
    # the in situ monitor's recordings of a layer: their largest weights in one pass
    gen = torch.Generator().manual_seed(2)
    ws = [torch.randn(6, 2, 3, 3, generator=gen) * s for s in (0.5, 2.0, 1.0)] + [torch.zeros(6, 2, 3, 3)]
    for got, w in zip(weight_grids(ws), ws, strict=True):
        alone = weight_grid(w)
        assert got.vmax == alone.vmax and torch.equal(got.weights, alone.weights)
    assert [g.vmax for g in weight_grids([torch.ones(2, 3), torch.ones(4, 1, 3, 3) * -2])] == [1.0, 2.0]  # shapes differ
    bad = ws[1].clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(DataError, match="NaN or Inf"):
        weight_grids([ws[0], bad])
    with pytest.raises(DataError, match="conv"):
        weight_grids([ws[0], torch.ones(3)])

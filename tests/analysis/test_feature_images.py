"""Feature maps as uint8 images, against the normalisation formula computed with numpy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from convscope.analysis import feature_images, tile
from convscope.errors import DataError


def _grey(m: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return np.round((m.astype(np.float64) - lo) / (hi - lo) * 255)


def test_per_map_and_shared_normalisation() -> None:
    maps = torch.randn(3, 4, 10, 12, generator=torch.Generator().manual_seed(0))
    maps[1, 2] *= 10  # one strong filter
    per_map = feature_images(maps, sample=1, normalisation="per_map").to_payload()
    img = per_map["images"]
    assert img.dtype == np.uint8 and img.shape == (4, 10, 12)
    m = maps[1].numpy()
    for f in range(4):
        assert np.abs(img[f].astype(int) - _grey(m[f], m[f].min(), m[f].max())).max() <= 1
        assert img[f].min() == 0 and img[f].max() == 255
    np.testing.assert_array_equal(per_map["vmin"], m.reshape(4, -1).min(axis=1))
    np.testing.assert_array_equal(per_map["vmax"], m.reshape(4, -1).max(axis=1))
    assert per_map["normalisation"] == "per_map" and per_map["scale"] == 1.0 and per_map["sample"] == 1
    shared = feature_images(maps, sample=1, normalisation="shared").to_payload()
    lo, hi = m.min(), m.max()
    assert np.abs(shared["images"].astype(int) - _grey(m, lo, hi)).max() <= 1
    assert (shared["vmin"] == lo).all() and (shared["vmax"] == hi).all()
    # the strong filter is bright, the others are compressed into the middle greys
    brightest = shared["images"].reshape(4, -1).max(axis=1)
    assert brightest.argmax() == 2 and (np.delete(brightest, 2) < 255).all()


def test_constant_maps_are_black_and_dense_or_1d_maps_are_drawn() -> None:
    maps = torch.randn(2, 3, 5, 5)
    maps[0, 1] = 4.0
    out = feature_images(maps)
    assert int(out.images[1].max()) == 0 and float(out.vmin[1]) == float(out.vmax[1]) == 4.0
    assert tuple(feature_images(torch.randn(2, 3, 7)).images.shape) == (3, 1, 7)
    dense = feature_images(torch.tensor([[1.0, 2.0, 3.0]]))
    assert tuple(dense.images.shape) == (3, 1, 1) and dense.images.sum() == 0  # one value per map: constant
    assert feature_images(torch.tensor([[1.0, 2.0, 3.0]]), normalisation="shared").images.flatten().tolist() == [0, 128, 255]


def test_downsampling_is_area_averaging_of_the_normalised_maps() -> None:
    maps = torch.randn(8, 64, 224, 224, generator=torch.Generator().manual_seed(1)).relu_()
    im = feature_images(maps, sample=-1, max_size=56)
    assert tuple(im.images.shape) == (64, 56, 56) and im.scale == 0.25 and im.sample == 7
    m = maps[7].numpy().astype(np.float64)
    lo = m.reshape(64, -1).min(axis=1)[:, None, None]
    hi = m.reshape(64, -1).max(axis=1)[:, None, None]
    blocks = ((m - lo) / (hi - lo)).reshape(64, 56, 4, 56, 4).mean(axis=(2, 4))
    assert np.abs(im.images.numpy().astype(int) - np.round(blocks * 255)).max() <= 1
    # a non-square map keeps its aspect ratio; the long side is exactly max_size
    wide = feature_images(torch.randn(1, 2, 30, 100), max_size=64)
    assert tuple(wide.images.shape) == (2, 20, 64) and wide.scale == 0.64
    assert tuple(feature_images(torch.randn(1, 2, 8, 8), max_size=64).images.shape) == (2, 8, 8)


def test_tile_places_maps_row_by_row_with_padding() -> None:
    images = np.arange(5 * 2 * 3, dtype=np.uint8).reshape(5, 2, 3)
    grid = tile(images, pad=1, pad_value=9)
    assert grid.shape == (2 * 2 + 1, 3 * 3 + 2)  # ceil(sqrt(5)) = 3 columns, 2 rows
    for i in range(5):
        r, c = divmod(i, 3)
        np.testing.assert_array_equal(grid[r * 3 : r * 3 + 2, c * 4 : c * 4 + 3], images[i])
    assert (grid[2, :] == 9).all() and (grid[3:, 8:] == 9).all()  # padding row, empty sixth cell
    fi = feature_images(torch.randn(1, 4, 6, 6))
    assert tile(fi, columns=4, pad=0).shape == (6, 24)
    with pytest.raises(DataError, match="columns"):
        tile(images, columns=0)
    with pytest.raises(DataError, match="F x H x W"):
        tile(np.zeros((2, 2)))


def test_bad_requests_are_refused() -> None:
    maps = torch.randn(2, 3, 4, 4)
    with pytest.raises(DataError, match="normalisation"):
        feature_images(maps, normalisation="global")
    with pytest.raises(DataError, match="out of range"):
        feature_images(maps, sample=2)
    with pytest.raises(DataError, match="max_size"):
        feature_images(maps, max_size=0)
    maps[0, 0, 0, 0] = float("nan")
    with pytest.raises(DataError, match="NaN"):
        feature_images(maps)
    maps[0, 0, 0, 0] = float("inf")
    with pytest.raises(DataError, match="NaN or Inf"):
        feature_images(maps)


def test_finite_extremes_too_far_apart_for_float32_are_not_refused() -> None:
    # one check of the spans finds NaN and Inf; a span that overflows float32 from finite
    # extremes is not one: the maps are drawn, not refused as non-finite
    maps = torch.zeros(1, 2, 2, 2)
    maps[0, 0, 0, 0], maps[0, 0, 1, 1] = -3e38, 3e38
    maps[0, 1] = torch.tensor([[0.0, 1.0], [2.0, 4.0]])
    im = feature_images(maps)
    assert im.images[1].tolist() == [[0, 64], [128, 255]]
    assert im.vmin[0].item() == pytest.approx(-3e38, rel=1e-6) and im.vmax[0].item() == pytest.approx(3e38, rel=1e-6)

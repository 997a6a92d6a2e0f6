"""The weight grid: every kernel of a layer laid out as TensorView draws it.

A conv layer's weights ``F x C x kh x kw`` become a grid of ``C`` rows (input channels) by
``F`` columns (filters); each cell is one ``kh x kw`` kernel window. A layer with a single
input channel (the first conv layer on grey images) would be one long row: its filters wrap
into a near-square block instead, ``ceil(sqrt(F))`` to a row (:func:`convscope.export._scenes.window_origins`). Each value is drawn as
a raised block whose height is ``z = sign(w) * |w| / vmax = w / vmax`` (so in ``[-1, 1]``)
and whose colour carries the sign. A dense layer ``units x inputs`` is the same grid with
``1 x 1`` windows: ``[units, inputs, 1, 1]``.

Example:
    >>> import torch
    >>> g = weight_grid(torch.tensor([[1.0, -2.0], [0.5, 4.0]]))   # dense, 2 units x 2 inputs
    >>> tuple(g.weights.shape), g.vmax
    ((2, 2, 1, 1), 4.0)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from convscope.errors import DataError

__all__ = ["GridLayout", "WeightGrid", "grid_layout", "weight_grid", "weight_grids"]


@dataclass(frozen=True)
class WeightGrid:
    """One layer's weights as a grid of kernels.

    Attributes:
        weights: ``F x C x kh x kw`` float32 tensor (dense: ``units x inputs x 1 x 1``), on
            the weight's device, detached.
        vmax: the largest ``|w|`` (0.0 for an all-zero layer); heights are ``w / vmax``.
    """

    weights: torch.Tensor
    vmax: float

    @property
    def sign(self) -> torch.Tensor:
        """``-1``, ``0`` or ``1`` per weight (int8), for colouring the blocks."""
        return torch.sign(self.weights).to(torch.int8)

    @property
    def heights(self) -> torch.Tensor:
        """``w / vmax`` in ``[-1, 1]`` (all zero when the layer is all zero)."""
        return self.weights / self.vmax if self.vmax > 0 else torch.zeros_like(self.weights)

    def to_payload(self) -> dict[str, Any]:
        """The ``weight_grid`` frame payload: ``{"weights": float32[F, C, kh, kw], "vmax": float}``."""
        return {"weights": self.weights.detach().cpu().numpy().astype(np.float32, copy=False), "vmax": float(self.vmax)}


@dataclass(frozen=True)
class GridLayout:
    """A :class:`WeightGrid` flattened into one 2-D picture, ready to draw.

    Kernel window ``(f, c)`` occupies rows ``c*(kh+gap) .. c*(kh+gap)+kh-1`` and columns
    ``f*(kw+gap) .. f*(kw+gap)+kw-1``; each window is followed by ``gap`` NaN rows and
    columns (row 0 is the top). With a single input channel the filters wrap instead, in
    rows of ``ceil(sqrt(F))`` windows (see :func:`convscope.export._scenes.window_origins`).

    Attributes:
        values: ``rows*(kh+gap) x columns*(kw+gap)`` float32 (``rows = C``, ``columns = F``
            unless the filters wrap), raw weights with NaN gaps.
        heights: the same with ``w / vmax`` (block heights in ``[-1, 1]``), NaN gaps.
        centres: ``F x C x kh x kw x 2`` float32: ``(x, y)`` of each weight's cell centre
            in grid units (``x = column + 0.5``, ``y = row + 0.5``).
        vmax: as in :class:`WeightGrid`.
        gap: cells between windows.
    """

    values: np.ndarray
    heights: np.ndarray
    centres: np.ndarray
    vmax: float
    gap: int

    def to_payload(self) -> dict[str, Any]:
        """Host arrays: ``values``, ``heights`` (float32 ``rows x cols``, NaN gaps), ``centres``
        (float32 ``F x C x kh x kw x 2``), ``vmax``, ``gap``."""
        return {"values": self.values, "heights": self.heights, "centres": self.centres,
                "vmax": float(self.vmax), "gap": int(self.gap)}


def weight_grid(weight: torch.Tensor) -> WeightGrid:
    """The weight grid of a conv or dense layer.

    Args:
        weight: ``F x C x kh x kw`` (conv2d), ``F x C x k`` (conv1d, drawn as ``1 x k``
            windows) or ``units x inputs`` (dense) weights, e.g. ``layer.weight``.

    Returns:
        A :class:`WeightGrid` on the weight's device.

    Example:
        >>> import torch
        >>> g = weight_grid(torch.nn.Conv2d(3, 16, 5).weight)
        >>> tuple(g.weights.shape), 0 < g.vmax <= 1
        ((16, 3, 5, 5), True)
    """
    return weight_grids([weight])[0]


def weight_grids(weights: Sequence[torch.Tensor]) -> list[WeightGrid]:
    """:func:`weight_grid` of several weight tensors, such as the in situ monitor's recordings of
    one layer: the largest ``|w|`` of those of one shape in one pass over all of them. Raises as
    :func:`weight_grid` does where any of them is refused.

    Example:
        >>> import torch
        >>> grids = weight_grids([torch.ones(2, 1, 3, 3), -3 * torch.ones(2, 1, 3, 3)])
        >>> [g.vmax for g in grids]
        [1.0, 3.0]
    """
    ws = [_as_grid(w) for w in weights]
    if len(ws) > 1 and all(w.shape == ws[0].shape and w.device == ws[0].device for w in ws):
        vmaxes = torch.stack(ws).abs().flatten(1).amax(dim=1).tolist()
    else:
        vmaxes = [float(w.abs().amax()) for w in ws]
    return [WeightGrid(weights=w, vmax=_checked_vmax(v)) for w, v in zip(ws, vmaxes, strict=True)]


def _as_grid(weight: torch.Tensor) -> torch.Tensor:
    """``weight`` as ``F x C x kh x kw`` float32 (detached), or the error saying why it has no grid."""
    if not isinstance(weight, torch.Tensor):
        raise DataError(f"weights must be a torch.Tensor, got {type(weight).__name__}; pass layer.weight")
    w = weight.detach()
    if w.dim() == 2:
        w = w[:, :, None, None]
    elif w.dim() == 3:
        w = w[:, :, None, :]
    elif w.dim() != 4:
        raise DataError(
            f"a weight grid needs conv (F x C x kh x kw) or dense (units x inputs) weights, got shape {tuple(w.shape)}; "
            "biases and norm scales have no grid - plot them as a distribution"
        )
    if w.numel() == 0:
        raise DataError(f"weights of shape {tuple(weight.shape)} are empty; the layer has no filters or no inputs")
    return w.to(torch.float32)


def _checked_vmax(vmax: float) -> float:
    if not math.isfinite(vmax):
        raise DataError("weights contain NaN or Inf; training has diverged - see the layer's gradient health")
    return vmax


def grid_layout(grid: WeightGrid | torch.Tensor, *, gap: int = 1) -> GridLayout:
    """Lay a weight grid out as one 2-D array with NaN gaps, plus cell centres.

    Args:
        grid: a :class:`WeightGrid`, or weights (passed through :func:`weight_grid`).
        gap: empty cells between kernel windows (>= 0).

    Example:
        >>> import torch
        >>> lay = grid_layout(torch.ones(2, 3, 1, 1))       # 2 filters, 3 inputs, 1x1
        >>> lay.values.shape, lay.centres[1, 2, 0, 0].tolist()
        ((6, 4), [2.5, 4.5])
    """
    if not isinstance(grid, WeightGrid):
        grid = weight_grid(grid)
    if gap < 0:
        raise DataError(f"gap must be 0 or more cells, got {gap}")
    from convscope.export._scenes import window_origins  # (numpy only: ParaView's Python draws with it too)

    w = grid.weights.cpu().numpy()
    f, c, kh, kw = w.shape
    window_row, window_col, n_rows, n_cols = window_origins(f, c)
    # every weight's cell: its window's origin plus its place in the window
    rows = window_row[:, :, None, None] * (kh + gap) + np.arange(kh)[None, None, :, None]
    cols = window_col[:, :, None, None] * (kw + gap) + np.arange(kw)[None, None, None, :]
    rows, cols = np.broadcast_arrays(rows, cols)
    values = np.full((n_rows * (kh + gap), n_cols * (kw + gap)), np.nan, dtype=np.float32)
    values[rows, cols] = w
    heights = values / grid.vmax if grid.vmax > 0 else np.where(np.isnan(values), np.nan, 0.0).astype(np.float32)
    centres = np.stack([cols + 0.5, rows + 0.5], axis=-1).astype(np.float32)
    return GridLayout(values=values, heights=heights.astype(np.float32), centres=centres, vmax=grid.vmax, gap=gap)

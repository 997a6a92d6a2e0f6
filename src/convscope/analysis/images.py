"""Feature maps as 8-bit grey images, and a grid that tiles them into one picture.

Normalisation maps a value ``x`` to ``round(255 * (x - vmin) / (vmax - vmin))``:

* ``"per_map"`` - each map uses its own minimum and maximum, so every map shows its full
  contrast (good for seeing *what* a filter detects);
* ``"shared"`` - all maps of the sample use one minimum and maximum, so brightness is
  comparable across filters (good for seeing *which* filters respond strongly).

A map with ``vmax == vmin`` (constant) is drawn black. ``vmin``/``vmax`` are taken on the
full-resolution maps; when ``max_size`` asks for smaller images, the normalised maps are
then shrunk by area averaging (``adaptive_avg_pool2d``), so a grey level keeps meaning the
same value at any size.

Example:
    >>> import torch
    >>> maps = torch.tensor([[[[0.0, 1.0], [2.0, 4.0]]]])      # 1 sample, 1 map, 2x2
    >>> feature_images(maps).images[0].tolist()
    [[0, 64], [128, 255]]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from convscope.errors import DataError

__all__ = ["FeatureImages", "feature_images", "tile"]

NORMALISATIONS = ("per_map", "shared")


@dataclass(frozen=True)
class FeatureImages:
    """One sample's feature maps as images.

    Attributes:
        images: ``F x H x W`` uint8 tensor on the maps' device (``H x W`` after any downsampling).
        vmin, vmax: ``F`` float32 tensors: the values drawn black and white.
        normalisation: ``"per_map"`` or ``"shared"``.
        scale: image size / map size (1.0 when not downsampled).
        sample: the sample drawn.
    """

    images: torch.Tensor
    vmin: torch.Tensor
    vmax: torch.Tensor
    normalisation: str
    scale: float
    sample: int

    def to_payload(self) -> dict[str, Any]:
        """The ``feature_maps`` frame payload."""
        return {
            "images": self.images.detach().cpu().numpy().astype(np.uint8, copy=False),
            "vmin": self.vmin.detach().to("cpu", torch.float32).numpy(),
            "vmax": self.vmax.detach().to("cpu", torch.float32).numpy(),
            "normalisation": self.normalisation,
            "scale": float(self.scale),
            "sample": int(self.sample),
        }


def feature_images(
    maps: torch.Tensor,
    *,
    sample: int = 0,
    normalisation: str = "per_map",
    max_size: int | None = None,
) -> FeatureImages:
    """One sample's feature maps as uint8 images.

    Args:
        maps: ``N x F x H x W`` feature maps (``N x F x L`` gives ``1 x L`` images and
            ``N x F`` gives ``1 x 1`` images).
        sample: which sample of the batch (negative counts from the end).
        normalisation: ``"per_map"`` or ``"shared"`` (see the module docstring).
        max_size: if given, images are shrunk by area averaging so that neither side
            exceeds it (aspect ratio kept, sides rounded up).

    Returns:
        A :class:`FeatureImages` on the maps' device.

    Example:
        >>> import torch
        >>> im = feature_images(torch.rand(8, 64, 224, 224), max_size=56)
        >>> tuple(im.images.shape), im.images.dtype, im.scale
        ((64, 56, 56), torch.uint8, 0.25)
    """
    if not isinstance(maps, torch.Tensor):
        raise DataError(f"feature maps must be a torch.Tensor (N x F x H x W), got {type(maps).__name__}")
    if maps.dim() < 2 or maps.dim() > 4:
        raise DataError(
            f"feature images need N x F x H x W maps (or N x F x L, N x F), got shape {tuple(maps.shape)}; "
            "add the batch dimension with maps.unsqueeze(0)"
        )
    if normalisation not in NORMALISATIONS:
        raise DataError(f"normalisation must be one of {', '.join(NORMALISATIONS)}, got {normalisation!r}")
    n = int(maps.shape[0])
    if isinstance(sample, bool) or not isinstance(sample, int) or not -n <= sample < n:
        raise DataError(f"sample {sample!r} is out of range: the batch holds {n} samples (0..{n - 1})")
    if max_size is not None and (isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 1):
        raise DataError(f"max_size must be a positive number of pixels or None, got {max_size!r}")
    x = maps.detach()[sample % n]
    if x.dim() == 1:  # dense: one 1 x 1 image per unit
        x = x[:, None, None]
    elif x.dim() == 2:  # N x F x L: 1 x L images
        x = x.unsqueeze(1)
    if x.numel() == 0:
        raise DataError(f"feature maps of shape {tuple(maps.shape)} hold no pixels")
    x = x.to(torch.float32)
    f, h, w = x.shape
    flat = x.reshape(f, -1)
    lo, hi = flat.amin(dim=1), flat.amax(dim=1)
    span = hi - lo
    # NaN or Inf in a map make its span NaN or Inf (one check for all of them); so do finite
    # extremes too far apart for float32, which the exact check then lets through
    if not bool(torch.isfinite(span).all()) and not (bool(torch.isfinite(lo).all()) and bool(torch.isfinite(hi).all())):
        raise DataError("feature maps contain NaN or Inf; they cannot be drawn - check the layer's gradient health")
    if normalisation == "shared":
        lo, hi = lo.amin().expand(f).clone(), hi.amax().expand(f).clone()
        span = hi - lo
    # a constant map (span 0) is x - lo = 0 everywhere: divided by 1, it stays 0 (black)
    unit = (x - lo.view(f, 1, 1)).div_(span.masked_fill(span == 0, 1.0).view(f, 1, 1))
    scale = 1.0
    if max_size is not None and max(h, w) > max_size:
        scale = max_size / max(h, w)
        # Integer ceil: the long side is exactly max_size, float rounding cannot add a pixel.
        size = (max(1, -(-h * max_size // max(h, w))), max(1, -(-w * max_size // max(h, w))))
        unit = torch.nn.functional.adaptive_avg_pool2d(unit.unsqueeze(0), size).squeeze(0)
    images = unit.mul_(255.0).round_().clamp_(0, 255).to(torch.uint8)
    return FeatureImages(
        images=images, vmin=lo, vmax=hi, normalisation=normalisation, scale=float(scale), sample=sample % n
    )


def tile(
    images: FeatureImages | torch.Tensor | np.ndarray,
    *,
    columns: int | None = None,
    pad: int = 1,
    pad_value: int = 0,
) -> np.ndarray:
    """Tile ``F`` images into one grid image, row by row.

    Args:
        images: ``F x H x W`` images (a :class:`FeatureImages`, a tensor or an array).
        columns: images per row; default ``ceil(sqrt(F))`` (a near-square grid).
        pad: pixels between neighbouring images (none around the border).
        pad_value: grey level of the padding and of empty trailing cells.

    Returns:
        A ``rows*H + (rows-1)*pad x columns*W + (columns-1)*pad`` host array of the
        images' dtype.

    Example:
        >>> import numpy as np
        >>> tile(np.ones((3, 2, 2), np.uint8), columns=2, pad=1).shape
        (5, 5)
    """
    if isinstance(images, FeatureImages):
        images = images.images
    arr = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if arr.ndim != 3 or arr.shape[0] == 0:
        raise DataError(f"tile needs F x H x W images with F >= 1, got shape {arr.shape}")
    f, h, w = arr.shape
    cols = columns if columns is not None else math.ceil(math.sqrt(f))
    if isinstance(cols, bool) or not isinstance(cols, int) or cols < 1:
        raise DataError(f"columns must be a positive integer or None, got {columns!r}")
    if pad < 0:
        raise DataError(f"pad must be 0 or more pixels, got {pad}")
    cols = min(cols, f)
    rows = math.ceil(f / cols)
    out = np.full((rows * h + (rows - 1) * pad, cols * w + (cols - 1) * pad), pad_value, dtype=arr.dtype)
    for i in range(f):
        r, c = divmod(i, cols)
        out[r * (h + pad) : r * (h + pad) + h, c * (w + pad) : c * (w + pad) + w] = arr[i]
    return out

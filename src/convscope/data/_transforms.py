"""Fit images to a model's input specification (size and channels)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from convscope.errors import DataError

if TYPE_CHECKING:
    import torch

    from convscope.models._spec import InputSpec

__all__ = ["fit_to_spec"]


def fit_to_spec(images: torch.Tensor, spec: InputSpec) -> torch.Tensor:
    """Resize (bilinear, antialiased) and convert channels (grey <-> RGB) to ``spec.shape``.

    ``images`` is ``N x C x H x W`` in the raw value range; the result has ``spec.shape``
    per sample and is not yet normalised.
    """
    import torch
    import torch.nn.functional as F

    if images.dim() != 4:
        raise DataError(f"images must be N x C x H x W, got shape {tuple(images.shape)}")
    if len(spec.shape) != 3:
        raise DataError(f"the model's input shape {spec.shape} is not an image (C x H x W)")
    c, h, w = spec.shape
    x = images.to(torch.float32)
    if x.shape[1] != c:
        if x.shape[1] == 1:
            x = x.expand(-1, c, -1, -1)
        elif c == 1 and x.shape[1] in (3, 4):
            rgb = x[:, :3]
            weights = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype).view(1, 3, 1, 1)
            x = (rgb * weights).sum(dim=1, keepdim=True)
        elif x.shape[1] == 4 and c == 3:
            x = x[:, :3]
        else:
            raise DataError(f"cannot turn {x.shape[1]}-channel images into the model's {c} channels")
    if tuple(x.shape[-2:]) != (h, w):
        x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
    return x.contiguous()

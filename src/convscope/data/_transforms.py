"""Fit images to a model's input specification (size and channels)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from convscope.errors import DataError

if TYPE_CHECKING:
    import torch

    from convscope.models._spec import InputSpec

__all__ = ["FIT_MODES", "LUMA_WEIGHTS", "fit_to_spec", "target_shape"]

#: ITU-R BT.601 luma weights, what PIL's ``convert("L")`` uses too
LUMA_WEIGHTS = (0.299, 0.587, 0.114)
#: how an image of another aspect ratio is brought to the model's size
FIT_MODES = ("stretch", "crop", "pad")


def target_shape(spec: InputSpec | tuple[int, ...] | Any) -> tuple[int, int, int]:
    """``(C, H, W)`` from an :class:`~convscope.models.InputSpec` or a shape tuple."""
    shape = tuple(spec) if isinstance(spec, (tuple, list)) else tuple(getattr(spec, "shape", ()))
    if len(shape) != 3 or not all(isinstance(v, int) and v > 0 for v in shape):
        raise DataError(f"the model's input shape {shape} is not an image (C x H x W); image inputs need a C x H x W spec")
    return shape


def fit_to_spec(
    images: torch.Tensor,
    spec: InputSpec | tuple[int, ...],
    *,
    fit: Literal["stretch", "crop", "pad"] = "stretch",
    background: float = 0.0,
) -> torch.Tensor:
    """Resize (bilinear, antialiased) and convert channels (grey <-> RGB) to ``spec.shape``.

    Args:
        images: ``N x C x H x W`` in the raw value range, or one ``C x H x W`` image, which
            comes back as a batch of one (``1 x C x H x W``), ready for a model.
        spec: an :class:`~convscope.models.InputSpec` or a ``(C, H, W)`` tuple.
        fit: ``"stretch"`` scales to the model's size whatever the aspect ratio;
            ``"crop"`` keeps the aspect ratio and centre-crops the excess;
            ``"pad"`` keeps the aspect ratio and pads with ``background``.
        background: the pad value for ``fit="pad"``.

    The result has ``spec.shape`` per sample and is not yet normalised (see ``InputSpec.prepare``).
    Grey becomes RGB by repeating the channel; RGB becomes grey with the BT.601 luma weights;
    a fourth (alpha) channel is dropped.

    Example:
        >>> import torch
        >>> fit_to_spec(torch.rand(3, 40, 60), (1, 28, 28)).shape
        torch.Size([1, 1, 28, 28])
    """
    import torch

    if images.dim() == 3:
        images = images.unsqueeze(0)
    if images.dim() != 4:
        raise DataError(f"images must be N x C x H x W (or one C x H x W image), got shape {tuple(images.shape)}")
    if fit not in FIT_MODES:
        raise DataError(f"fit must be one of {', '.join(FIT_MODES)}, got {fit!r}")
    c, h, w = target_shape(spec)
    x = images.to(torch.float32)
    if x.shape[1] != c:
        if x.shape[1] == 1:
            x = x.expand(-1, c, -1, -1)
        elif c == 1 and x.shape[1] in (3, 4):
            weights = torch.tensor(LUMA_WEIGHTS, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
            x = (x[:, :3] * weights).sum(dim=1, keepdim=True)
        elif x.shape[1] == 4 and c == 3:
            x = x[:, :3]
        else:
            raise DataError(f"cannot turn {x.shape[1]}-channel images into the model's {c} channels")
    ih, iw = x.shape[-2:]
    if (ih, iw) == (h, w):
        return x.contiguous()
    if fit == "crop":
        scale = max(h / ih, w / iw)
        ch, cw = min(ih, round(h / scale)), min(iw, round(w / scale))
        top, left = (ih - ch) // 2, (iw - cw) // 2
        x = x[:, :, top : top + ch, left : left + cw]
    elif fit == "pad":
        scale = min(h / ih, w / iw)
        nh, nw = max(1, min(h, round(ih * scale))), max(1, min(w, round(iw * scale)))
        inner = _resize(x, nh, nw)
        out = torch.full((x.shape[0], x.shape[1], h, w), float(background), dtype=x.dtype, device=x.device)
        top, left = (h - nh) // 2, (w - nw) // 2
        out[:, :, top : top + nh, left : left + nw] = inner
        return out
    return _resize(x, h, w)


def _resize(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    import torch.nn.functional as F

    if tuple(x.shape[-2:]) == (h, w):
        return x.contiguous()
    # antialiased bilinear weights are non-negative and sum to one: no overshoot beyond rounding
    return F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=True).contiguous()

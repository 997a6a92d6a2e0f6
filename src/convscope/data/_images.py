"""Images from files or bytes (PNG, JPEG, BMP, GIF's first frame) as tensors in [0, 1]."""

from __future__ import annotations

import io
import os
from typing import TYPE_CHECKING, Any

from convscope.errors import DataError

if TYPE_CHECKING:
    import torch

__all__ = ["MAX_PIXELS", "load_image", "load_image_with_info"]

#: the largest image accepted (a guard against decompression bombs)
MAX_PIXELS = 64_000_000


def load_image_with_info(source: str | os.PathLike[str] | bytes, *, spec: Any = None) -> tuple[torch.Tensor, dict[str, Any]]:
    """An image as a ``1 x C x H x W`` float tensor in ``[0, 1]``, and what was done to it.

    With ``spec`` (an :class:`~convscope.models.InputSpec`) it is also resized and its
    channels converted to the model's input (not normalised); ``info`` lists each step.

    Example:
        >>> from PIL import Image; import io
        >>> buf = io.BytesIO(); Image.new("RGB", (40, 30), "red").save(buf, "PNG")
        >>> x, info = load_image_with_info(buf.getvalue())
        >>> tuple(x.shape), info["original_size"]
        ((1, 3, 30, 40), [40, 30])
    """
    import numpy as np
    import torch
    from PIL import Image

    data = source if isinstance(source, bytes) else None
    name = "uploaded bytes" if data is not None else os.fspath(source)  # type: ignore[arg-type]
    try:
        with Image.open(io.BytesIO(data) if data is not None else name) as img:
            if img.width * img.height > MAX_PIXELS:
                raise DataError(f"{name}: {img.width}x{img.height} pixels is over the limit of {MAX_PIXELS:,}")
            info: dict[str, Any] = {"format": img.format, "original_size": [img.width, img.height], "original_mode": img.mode, "steps": []}
            img.seek(0)
            if img.mode not in ("L", "RGB"):
                mode = "L" if img.mode in ("LA", "I;16", "I", "F", "1") else "RGB"
                info["steps"].append(f"converted {img.mode} to {mode}")
                img = img.convert(mode)
            arr = np.asarray(img, dtype=np.uint8)
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(f"image file {name!r} does not exist") from None
    except (OSError, ValueError, Image.DecompressionBombError, SyntaxError) as exc:
        raise DataError(f"{name} is not a readable image ({type(exc).__name__}: {exc})") from None
    x = torch.from_numpy(arr.astype(np.float32) / 255.0)
    x = x.unsqueeze(0) if x.dim() == 2 else x.permute(2, 0, 1)
    x = x.unsqueeze(0)
    info["steps"].append("scaled 0..255 to 0..1")
    if spec is not None:
        from convscope.data._transforms import fit_to_spec

        before = tuple(x.shape[1:])
        x = fit_to_spec(x, spec)
        if before[0] != x.shape[1]:
            info["steps"].append(f"channels {before[0]} -> {x.shape[1]}")
        if before[1:] != tuple(x.shape[2:]):
            info["steps"].append(f"resized {before[2]}x{before[1]} -> {x.shape[3]}x{x.shape[2]}")
    return x, info


def load_image(source: str | os.PathLike[str] | bytes, *, spec: Any = None) -> torch.Tensor:
    """:func:`load_image_with_info` without the info."""
    return load_image_with_info(source, spec=spec)[0]

"""Images from files or bytes (PNG, JPEG, BMP, GIF's first frame, WebP) as tensors in [0, 1]."""

from __future__ import annotations

import io
import math
import os
from typing import TYPE_CHECKING, Any, Literal

from convscope.errors import DataError

if TYPE_CHECKING:
    import numpy as np
    import torch

    from convscope.models._spec import InputSpec

__all__ = ["IMAGE_FORMATS", "MAX_PIXELS", "load_image", "load_image_with_info"]

#: the largest image accepted by default (width x height), a guard against decompression bombs;
#: PIL's own guard (89 million pixels, an error at twice that) stays in force as well
MAX_PIXELS = 50_000_000
#: the formats convscope decodes; anything else is refused before its decoder runs
IMAGE_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP")


class TooManyPixelsError(DataError):
    """An image over the pixel limit (a :class:`DataError`), with its size, for callers to word their own refusal.

    ``size`` is the file's, ``decoded`` the size it would decode at (smaller for a reduced JPEG).
    """

    def __init__(self, message: str, *, size: tuple[int, int], decoded: tuple[int, int], pixels: int, limit: int) -> None:
        super().__init__(message)
        self.size, self.decoded, self.pixels, self.limit = size, decoded, pixels, limit


_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def load_image_with_info(
    source: str | os.PathLike[str] | bytes,
    *,
    spec: InputSpec | tuple[int, ...] | None = None,
    fit: Literal["stretch", "crop", "pad"] = "stretch",
    background: float = 0.0,
    max_pixels: int = MAX_PIXELS,
    max_side: int | None = None,
    name: str = "uploaded bytes",
) -> tuple[torch.Tensor, dict[str, Any]]:
    """An image as a ``C x H x W`` float32 tensor in ``[0, 1]``, and what was done to it.

    Args:
        source: a path, or the file's bytes (an upload).
        name: what errors and ``info["source"]`` call bytes (a path is called by itself).
        spec: an :class:`~convscope.models.InputSpec` or ``(C, H, W)``: the image is then resized
            and its channels converted to the model's input (not normalised: see ``InputSpec.prepare``).
        fit: how another aspect ratio meets the model's (``"stretch"``, ``"crop"``, ``"pad"``).
        background: grey level that transparent pixels (and ``fit="pad"`` borders) become.
        max_pixels: images with more pixels are refused with :class:`DataError` before decoding
            (a JPEG decoded at a reduced scale, for ``spec`` or ``max_side``, counts the pixels it decodes).
        max_side: shrink the image while decoding so its longest side is at most this (box filter,
            the aspect ratio kept): a JPEG decodes at 1/2, 1/4 or 1/8 scale in the DCT and other
            formats are shrunk before their pixels become floats, so a big image costs about its
            8-bit size once (a 7000 x 7000 RGB PNG: about 220 MB, not 1.1 GB).

    Returns:
        ``(image, info)``. ``image`` has 1 channel for grey files and 3 for colour ones (or the
        spec's channels). ``info`` holds ``source``, ``format``, ``original_size`` ``[w, h]``,
        ``original_mode`` (PIL's), ``frames``, the final ``size`` ``[w, h]`` and ``channels``, and
        ``steps``: one ``{"op": ..., "text": ...}`` per transformation, in order, for a person to read.

    Raises:
        DataError: the file is missing, not one of :data:`IMAGE_FORMATS`, damaged, or too large.

    Example:
        >>> from PIL import Image; import io
        >>> buf = io.BytesIO(); Image.new("RGBA", (40, 30), "red").save(buf, "PNG")
        >>> x, info = load_image_with_info(buf.getvalue(), spec=(1, 28, 28))
        >>> tuple(x.shape), info["original_size"], [s["op"] for s in info["steps"]]
        ((1, 28, 28), [40, 30], ['alpha', 'scale', 'channels', 'resize'])
        >>> x, info = load_image_with_info(buf.getvalue(), max_side=20)
        >>> tuple(x.shape), [s["op"] for s in info["steps"]]
        ((3, 15, 20), ['shrink', 'alpha', 'scale'])
    """
    import torch

    if isinstance(source, (bytes, bytearray, memoryview)):
        opened = io.BytesIO(bytes(source))
    elif isinstance(source, (str, os.PathLike)):
        name = os.fspath(source)
        if not os.path.isfile(name):
            raise DataError(f"image file {name!r} does not exist or is not a file")
        opened = None
    else:
        raise DataError(f"load_image takes a path or the file's bytes, got {type(source).__name__}")
    target = None
    if spec is not None:
        from convscope.data._transforms import target_shape

        target = target_shape(spec)
    if max_side is not None and max_side < 1:
        raise DataError(f"max_side must be a whole number >= 1, got {max_side!r}")
    arr, info = _decode(name, opened, max_pixels=max_pixels, background=background, target=target, fit=fit, max_side=max_side)
    x = torch.from_numpy(arr)
    x = x.unsqueeze(0) if x.dim() == 2 else x.permute(2, 0, 1).contiguous()
    if spec is not None:
        from convscope.data._transforms import fit_to_spec, target_shape

        c, h, w = target_shape(spec)
        if x.shape[0] != c:
            how = "repeated the grey channel" if x.shape[0] == 1 else "BT.601 luma (0.299 R + 0.587 G + 0.114 B)"
            info["steps"].append({"op": "channels", "text": f"{x.shape[0]} channel(s) -> {c} ({how})", "from": int(x.shape[0]), "to": c})
        if tuple(x.shape[1:]) != (h, w):
            fits = {"stretch": "aspect ratio not kept", "crop": "centre-cropped to the aspect ratio", "pad": f"padded with {background:g}"}
            info["steps"].append(
                {
                    "op": "resize",
                    "text": f"resized {x.shape[2]}x{x.shape[1]} -> {w}x{h} (bilinear, antialiased; {fits[fit]})",
                    "from": [int(x.shape[2]), int(x.shape[1])],
                    "to": [w, h],
                    "fit": fit,
                }
            )
        x = fit_to_spec(x, spec, fit=fit, background=background)[0].clamp_(0.0, 1.0)
    info["size"] = [int(x.shape[2]), int(x.shape[1])]
    info["channels"] = int(x.shape[0])
    return x, info


def load_image(
    source: str | os.PathLike[str] | bytes,
    *,
    spec: InputSpec | tuple[int, ...] | None = None,
    fit: Literal["stretch", "crop", "pad"] = "stretch",
    background: float = 0.0,
    max_pixels: int = MAX_PIXELS,
    max_side: int | None = None,
) -> torch.Tensor:
    """An image file or its bytes as a ``C x H x W`` float32 tensor in ``[0, 1]``.

    :func:`load_image_with_info` without the info; the same arguments.

    Example:
        >>> from PIL import Image; import io
        >>> buf = io.BytesIO(); Image.new("L", (28, 28), 255).save(buf, "PNG")
        >>> x = load_image(buf.getvalue())
        >>> tuple(x.shape), float(x.max())
        ((1, 28, 28), 1.0)
    """
    return load_image_with_info(source, spec=spec, fit=fit, background=background, max_pixels=max_pixels, max_side=max_side)[0]


def _decode(
    name: str,
    opened: io.BytesIO | None,
    *,
    max_pixels: int,
    background: float,
    target: tuple[int, int, int] | None = None,
    fit: str = "stretch",
    max_side: int | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Decode with PIL into an ``H x W`` or ``H x W x 3`` float32 array in [0, 1].

    With a ``target`` far smaller than a JPEG, the JPEG decoder scales by 1/2, 1/4 or 1/8 in the
    DCT domain (PIL's ``draft``), keeping at least twice the pixels the resize will keep. With
    ``max_side``, a JPEG is drafted to at least that side and every image is shrunk to it while
    still 8-bit: floats (4 bytes a channel, and a copy or two on the way) are made only of the
    small image.
    """
    from PIL import Image, UnidentifiedImageError

    steps: list[dict[str, Any]] = []
    try:
        with Image.open(opened if opened is not None else name, formats=list(IMAGE_FORMATS)) as img:
            if img.format != "JPEG":  # before getexif, which decodes a PNG whole
                _check_pixels(name, img, max_pixels)
            info: dict[str, Any] = {
                "source": name,
                "format": img.format,
                "original_size": [img.width, img.height],
                "original_mode": img.mode,
                "frames": int(getattr(img, "n_frames", 1)),
                "steps": steps,
            }
            orientation = img.getexif().get(0x0112, 1)
            if target is not None and img.format == "JPEG":
                c, h, w = target
                _draft(img, (c, w, h) if orientation in (5, 6, 7, 8) else target, fit, steps)  # those turn by 90 degrees
            elif max_side is not None and img.format == "JPEG" and max(img.size) > max_side:
                _draft_side(img, max_side, steps)
            if img.format == "JPEG":  # after draft: what the decoder will make
                _check_pixels(name, img, max_pixels, original=info["original_size"])
            if info["frames"] > 1:
                img.seek(0)
                steps.append({"op": "frame", "text": f"took the first of {info['frames']} frames"})
            small: Image.Image = img
            if max_side is not None and max(img.size) > max_side:
                small = _shrink(img, max_side, steps)
            upright = small
            turn = _transposes().get(orientation) if isinstance(orientation, int) else None
            if turn is not None:
                upright = small.transpose(turn)
                steps.append({"op": "orient", "text": f"turned upright as the EXIF orientation ({orientation}) says"})
            arr = _to_array(upright, steps, background=background)
    except DataError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:  # the warning, where warnings are errors
        raise DataError(f"{name} was refused as a possible decompression bomb ({exc})") from None
    except UnidentifiedImageError:
        raise DataError(f"{name} is not a readable image: not {', '.join(IMAGE_FORMATS)}, or damaged") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise DataError(f"{name} is not a readable image: damaged or truncated ({type(exc).__name__}: {exc})") from None
    return arr, info


def _check_pixels(name: str, img: Any, max_pixels: int, *, original: list[int] | None = None) -> None:
    if img.width * img.height <= max_pixels:
        return
    w0, h0 = original or img.size
    drafted = f" (decoded at {img.width}x{img.height})" if (w0, h0) != tuple(img.size) else ""
    raise TooManyPixelsError(
        f"{name}: {w0}x{h0}{drafted} = {img.width * img.height:,} pixels is over the limit of "
        f"{max_pixels:,} (a guard against decompression bombs); scale the image down, or pass max_pixels=",
        size=(w0, h0),
        decoded=(img.width, img.height),
        pixels=img.width * img.height,
        limit=max_pixels,
    )


def _transposes() -> dict[int, Any]:
    from PIL import Image

    t = Image.Transpose
    # EXIF orientation -> the transpose that turns the picture upright (as PIL's ImageOps.exif_transpose)
    return {2: t.FLIP_LEFT_RIGHT, 3: t.ROTATE_180, 4: t.FLIP_TOP_BOTTOM, 5: t.TRANSPOSE, 6: t.ROTATE_270, 7: t.TRANSVERSE, 8: t.ROTATE_90}


def _shrink(img: Any, max_side: int, steps: list[dict[str, Any]]) -> Any:
    """The image shrunk (box filter) so its longest side is ``max_side``, still 8- or 16-bit.

    PIL decodes the file whole here, once, at its own bytes per pixel; palette and 1-bit images
    are expanded first, since PIL resizes those by picking pixels rather than averaging them.
    """
    from PIL import Image

    w, h = img.size
    scale = max_side / max(w, h)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if img.mode in ("P", "PA"):
        to = "RGBA" if img.mode == "PA" or "transparency" in img.info else "RGB"
        steps.append({"op": "convert", "text": f"palette colours expanded to {to}", "from": img.mode, "to": to})
        img = img.convert(to)
    elif img.mode == "1":
        steps.append({"op": "convert", "text": "1-bit black/white to grey", "from": "1", "to": "L"})
        img = img.convert("L")
    small = img.resize(size, Image.Resampling.BOX)
    steps.append(
        {
            "op": "shrink",
            "text": f"shrunk {w}x{h} -> {size[0]}x{size[1]} while decoding (box filter, longest side {max_side})",
            "from": [w, h],
            "to": list(size),
        }
    )
    return small


def _draft(img: Any, target: tuple[int, int, int], fit: str, steps: list[dict[str, Any]]) -> None:
    _, h, w = target
    iw, ih = img.size
    sx, sy = w / iw, h / ih
    if fit == "crop":
        sx = sy = max(sx, sy)
    elif fit == "pad":
        sx = sy = min(sx, sy)
    want = (max(1, round(2 * iw * sx)), max(1, round(2 * ih * sy)))
    if want[0] * 2 > iw or want[1] * 2 > ih:
        return  # not even a halving would leave twice the pixels needed
    before = img.size
    img.draft(img.mode, want)
    if img.size != before:
        steps.append(
            {
                "op": "draft",
                "text": f"JPEG decoded at {img.size[0]}x{img.size[1]} (1/{before[0] // img.size[0]} scale in the DCT, at least twice the model's size)",
                "from": list(before),
                "to": list(img.size),
            }
        )


def _draft_side(img: Any, max_side: int, steps: list[dict[str, Any]]) -> None:
    w, h = img.size
    scale = max_side / max(w, h)
    before = img.size
    img.draft(img.mode, (max(1, math.ceil(w * scale)), max(1, math.ceil(h * scale))))  # PIL keeps at least this size
    if img.size != before:
        steps.append(
            {
                "op": "draft",
                "text": f"JPEG decoded at {img.size[0]}x{img.size[1]} (1/{before[0] // img.size[0]} scale in the DCT, at least {max_side} on its longest side)",
                "from": list(before),
                "to": list(img.size),
            }
        )


def _to_array(img: Any, steps: list[dict[str, Any]], *, background: float) -> np.ndarray:
    import numpy as np

    mode = img.mode
    if mode in ("P", "PA"):
        target = "RGBA" if mode == "PA" or "transparency" in img.info else "RGB"
        steps.append({"op": "convert", "text": f"palette colours expanded to {target}", "from": mode, "to": target})
        img, mode = img.convert(target), target
    if mode in _SIXTEEN_BIT:
        arr = np.clip(np.asarray(img, dtype=np.float32) / 65535.0, 0.0, 1.0)
        steps.append({"op": "scale", "text": "scaled 16-bit 0..65535 to 0..1"})
        return arr
    if mode == "1":
        steps.append({"op": "convert", "text": "1-bit black/white to grey", "from": "1", "to": "L"})
        img, mode = img.convert("L"), "L"
    if mode in ("LA", "La", "RGBA", "RGBa"):
        plain = "L" if mode.startswith("L") else "RGB"
        rgba = np.asarray(img.convert("LA" if plain == "L" else "RGBA"), dtype=np.float32) / 255.0
        alpha = rgba[..., -1:]
        arr = rgba[..., :-1] * alpha + float(background) * (1.0 - alpha)
        steps.append({"op": "alpha", "text": f"{mode}: transparency composited over {background:g} and dropped", "from": mode, "to": plain})
        steps.append({"op": "scale", "text": "scaled 0..255 to 0..1"})
        return arr[..., 0] if plain == "L" else arr
    if mode not in ("L", "RGB"):
        steps.append({"op": "convert", "text": f"{mode} converted to RGB", "from": mode, "to": "RGB"})
        img = img.convert("RGB")
    arr = np.asarray(img, dtype=np.float32) / np.float32(255.0)
    steps.append({"op": "scale", "text": "scaled 0..255 to 0..1"})
    return arr

"""Images from files and bytes: values, shapes, conversions, what was done, and clean errors."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import convscope
from convscope.data import fit_to_spec, load_image, load_image_with_info
from convscope.errors import DataError


def _ramp(h: int = 20, w: int = 30) -> np.ndarray:
    ys, xs = np.mgrid[0:h, 0:w]
    return np.stack([xs * 255 // (w - 1), ys * 255 // (h - 1), (xs + ys) * 255 // (h + w - 2)], axis=-1).astype(np.uint8)


def _png(img: Image.Image, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG", **kw)
    return buf.getvalue()


@pytest.mark.parametrize("fmt,suffix", [("PNG", "png"), ("BMP", "bmp"), ("JPEG", "jpg")])
def test_files_decode_to_chw_floats_equal_to_pils_pixels(tmp_path: Path, fmt: str, suffix: str) -> None:
    arr = _ramp()
    Image.fromarray(arr).save(tmp_path / f"a.{suffix}", fmt)
    x, info = load_image_with_info(tmp_path / f"a.{suffix}")
    reference = np.asarray(Image.open(tmp_path / f"a.{suffix}"), dtype=np.float32) / 255.0  # what PIL decodes
    assert x.shape == (3, 20, 30) and x.dtype == torch.float32 and x.is_contiguous()
    np.testing.assert_array_equal(x.permute(1, 2, 0).numpy(), reference)
    if fmt != "JPEG":
        np.testing.assert_array_equal((x.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8), arr)
    assert info["format"] == fmt and info["original_size"] == [30, 20] and info["original_mode"] == "RGB"
    assert info["size"] == [30, 20] and info["channels"] == 3 and [s["op"] for s in info["steps"]] == ["scale"]


def test_bytes_and_paths_give_the_same_image(tmp_path: Path) -> None:
    data = _png(Image.fromarray(_ramp()[..., 0]))
    (tmp_path / "g.png").write_bytes(data)
    a, b = load_image(data), load_image(tmp_path / "g.png")
    assert a.shape == (1, 20, 30)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert load_image_with_info(data)[1]["source"] == "uploaded bytes"


def test_gif_gives_its_first_frame_and_says_so(tmp_path: Path) -> None:
    frames = [Image.new("L", (8, 8), v) for v in (200, 50, 100)]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:], duration=50)
    x, info = load_image_with_info(tmp_path / "a.gif")
    assert info["frames"] == 3 and info["steps"][0]["op"] == "frame"
    assert x.shape[0] == 3  # a GIF is palette colour: expanded to RGB
    assert float(x.mean()) == pytest.approx(200 / 255, abs=1 / 255)


def test_alpha_is_composited_over_the_background() -> None:
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[..., 3] = 128
    rgba[0, 0, 3] = 0  # fully transparent, red underneath
    data = _png(Image.fromarray(rgba, "RGBA"))
    x, info = load_image_with_info(data)
    a = 128 / 255
    assert float(x[0, 1, 1]) == pytest.approx(200 / 255 * a, abs=1e-6) and float(x[0, 0, 0]) == 0.0
    white = load_image(data, background=1.0)
    assert float(white[0, 1, 1]) == pytest.approx(200 / 255 * a + (1 - a), abs=1e-6) and float(white[1, 0, 0]) == 1.0
    assert info["steps"][0]["op"] == "alpha" and "RGBA" in info["steps"][0]["text"]


def test_sixteen_bit_and_one_bit_images_scale_to_unit_range() -> None:
    deep = Image.fromarray(np.array([[0, 32768], [65535, 1000]], dtype=np.uint16))
    x, info = load_image_with_info(_png(deep))
    assert info["original_mode"].startswith("I")
    torch.testing.assert_close(x[0], torch.tensor([[0, 32768], [65535, 1000]], dtype=torch.float32) / 65535)
    bits = Image.fromarray(np.array([[True, False], [False, True]]))
    x1 = load_image(_png(bits))
    assert x1.tolist() == [[[1.0, 0.0], [0.0, 1.0]]]


def test_exif_orientation_turns_phone_photos_upright(tmp_path: Path) -> None:
    arr = np.zeros((10, 20, 3), np.uint8)
    arr[:, :10] = 255  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to view"
    Image.fromarray(arr).save(tmp_path / "phone.jpg", quality=95, exif=exif)
    x, info = load_image_with_info(tmp_path / "phone.jpg")
    assert x.shape == (3, 20, 10) and any(s["op"] == "orient" for s in info["steps"])
    assert float(x[:, :8].mean()) > 0.9 and float(x[:, 12:].mean()) < 0.1  # white on top after turning


def test_spec_resizes_and_converts_channels_like_pil_and_says_what_it_did() -> None:
    spec = convscope.load_model("lenet5-simplified", pretrained=False).input_spec  # 1 x 28 x 28
    img = Image.fromarray(_ramp(56, 84))
    x, info = load_image_with_info(_png(img), spec=spec)
    assert x.shape == (1, 28, 28) and 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    ref = np.asarray(img.convert("L").resize((28, 28), Image.Resampling.BILINEAR), dtype=np.float32) / 255.0  # PIL, independently
    assert np.abs(x[0].numpy() - ref).max() < 3 / 255
    ops = [s["op"] for s in info["steps"]]
    assert ops == ["scale", "channels", "resize"] and info["steps"][2]["from"] == [84, 56] and info["steps"][2]["to"] == [28, 28]
    assert info["size"] == [28, 28] and info["channels"] == 1 and "luma" in info["steps"][1]["text"]
    # grey into an RGB model: the one channel repeated
    rgb = load_image(_png(img.convert("L")), spec=(3, 32, 32))
    assert rgb.shape == (3, 32, 32)
    torch.testing.assert_close(rgb[0], rgb[1], rtol=0, atol=0)
    torch.testing.assert_close(rgb[1], rgb[2], rtol=0, atol=0)


def test_fit_modes_keep_or_drop_the_aspect_ratio() -> None:
    wide = torch.zeros(1, 10, 40)
    wide[:, :, 15:25] = 1.0  # a bright band in the middle
    pad = fit_to_spec(wide, (1, 20, 20), fit="pad", background=0.5)[0, 0]
    assert pad.shape == (20, 20) and torch.all(pad[:7] == 0.5) and torch.all(pad[-7:] == 0.5)  # 40x10 -> 20x5, centred
    crop = fit_to_spec(wide, (1, 20, 20), fit="crop")[0, 0]
    assert float(crop.min()) >= 0.0 and float(crop[:, 5:15].mean()) == pytest.approx(1.0)  # the middle 10x10 kept, band fills half
    stretch = fit_to_spec(wide, (1, 20, 20))[0, 0]
    assert float(stretch[:, 8:12].mean()) == pytest.approx(1.0) and float(stretch[:, :6].max()) == 0.0
    with pytest.raises(DataError, match="fit must be"):
        fit_to_spec(wide, (1, 20, 20), fit="zoom")  # type: ignore[arg-type]
    with pytest.raises(DataError, match="not an image"):
        fit_to_spec(wide, (10,))


def test_cli_summary_predicts_a_png_digit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from convscope.cli import main

    data = convscope.load_dataset("mnist-5k", split="test")
    digit = (data.images[0, 0].numpy() * 255).round().astype(np.uint8)
    Image.fromarray(digit).save(tmp_path / "digit.png")
    assert main(["summary", "lenet5-simplified", "--input", str(tmp_path / "digit.png")]) == 0
    out = capsys.readouterr().out
    rows = out.partition("prediction for")[2]
    assert "digit.png" in "".join(rows.split())  # rich may wrap the long path
    top = next(line for line in rows.splitlines() if "%" in line)
    assert top.split()[0] == str(int(data.labels[0]))  # the top class is the digit's label


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims a size (IHDR, per the PNG spec) and holds next to no data: a bomb's shape."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit grey
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("side", [12_000, 100_000])  # 144 M pixels (PIL warns), 10 G pixels (PIL refuses)
def test_decompression_bombs_are_refused_before_decoding(side: int) -> None:
    with pytest.raises(DataError, match="pixels|bomb"):
        load_image(_png_header_only(side, side))


def test_the_pixel_limit_applies_below_pils(tmp_path: Path) -> None:
    Image.new("L", (20, 20)).save(tmp_path / "big.png")
    with pytest.raises(DataError, match="400 pixels is over the limit of 100"):
        load_image(tmp_path / "big.png", max_pixels=100)
    assert load_image(tmp_path / "big.png", max_pixels=400).shape == (1, 20, 20)
    with pytest.raises(DataError, match="over the limit"):
        load_image(_png_header_only(8000, 8000))  # 64 M pixels: under PIL's guard, over convscope's 50 M


def test_damaged_missing_and_foreign_files_give_data_errors(tmp_path: Path) -> None:
    whole = _png(Image.fromarray(_ramp(64, 64)))
    with pytest.raises(DataError, match="damaged or truncated"):
        load_image(whole[: len(whole) // 2])
    with pytest.raises(DataError, match="not a readable image"):
        load_image(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    with pytest.raises(DataError, match="not a readable image"):
        load_image(np.random.default_rng(0).bytes(500))
    with pytest.raises(DataError, match="does not exist"):
        load_image(tmp_path / "missing.png")
    buf = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buf, "TIFF")
    with pytest.raises(DataError, match="PNG, JPEG"):
        load_image(buf.getvalue())  # TIFF is not among the formats convscope decodes
    with pytest.raises(DataError, match="path or the file's bytes"):
        load_image(42)  # type: ignore[arg-type]


def test_large_jpegs_decode_at_a_reduced_scale_without_changing_the_picture() -> None:
    arr = np.repeat(np.repeat(_ramp(150, 200), 10, axis=0), 10, axis=1)  # 2000 x 1500, smooth
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=95)
    x, info = load_image_with_info(buf.getvalue(), spec=(3, 112, 112))
    draft = next(s for s in info["steps"] if s["op"] == "draft")
    assert draft["from"] == [2000, 1500] and draft["to"][0] >= 2 * 112 and draft["to"][1] >= 2 * 112
    full = fit_to_spec(load_image(buf.getvalue()), (3, 112, 112))[0]  # decoded at full size, then resized
    assert x.shape == (3, 112, 112) and float((x - full).abs().mean()) < 2 / 255
    small = load_image_with_info(buf.getvalue(), spec=(3, 900, 900))[1]
    assert all(s["op"] != "draft" for s in small["steps"])  # no room to reduce: full decode


def test_max_side_shrinks_while_decoding_like_an_area_resize(tmp_path: Path) -> None:
    arr = _ramp(300, 450)
    x, info = load_image_with_info(_png(Image.fromarray(arr)), max_side=90)
    assert x.shape == (3, 60, 90) and info["original_size"] == [450, 300] and info["size"] == [90, 60]
    shrink = next(s for s in info["steps"] if s["op"] == "shrink")
    assert shrink["from"] == [450, 300] and shrink["to"] == [90, 60] and "longest side 90" in shrink["text"]
    # the same picture as decoding whole and averaging 5 x 5 blocks
    full = torch.from_numpy(arr).permute(2, 0, 1).float() / 255
    area = torch.nn.functional.avg_pool2d(full[None], 5)[0]
    assert float((x - area).abs().max()) < 1.5 / 255
    # a palette image is averaged in colour, not by picking pixels (nor by averaging its indices)
    checker = Image.fromarray(((np.indices((40, 40)).sum(0) % 2) * 255).astype(np.uint8)).convert("P")
    grey = load_image_with_info(_png(checker), max_side=20)
    assert grey[0].shape == (3, 20, 20) and abs(float(grey[0].mean()) - 0.5) < 0.01 and float(grey[0].std()) < 0.01
    assert [s["op"] for s in grey[1]["steps"]][:2] == ["convert", "shrink"]
    # small images are left alone; a JPEG is decoded at a reduced scale first
    assert all(s["op"] != "shrink" for s in load_image_with_info(_png(Image.fromarray(arr)), max_side=450)[1]["steps"])
    buf = io.BytesIO()
    Image.fromarray(np.repeat(np.repeat(arr, 4, axis=0), 4, axis=1)).save(buf, "JPEG", quality=95)  # 1800 x 1200
    j, jinfo = load_image_with_info(buf.getvalue(), max_side=200)
    assert [s["op"] for s in jinfo["steps"]][:2] == ["draft", "shrink"] and j.shape == (3, 133, 200)
    draft = jinfo["steps"][0]
    assert draft["to"] == [225, 150]  # 1/8 scale keeps at least 200 on the longest side
    with pytest.raises(DataError, match="max_side"):
        load_image(buf.getvalue(), max_side=0)


def test_max_side_keeps_the_exif_orientation(tmp_path: Path) -> None:
    img = Image.fromarray(_ramp(40, 80))  # 80 wide, 40 high
    exif = img.getexif()
    exif[0x0112] = 6  # stored turned: shown turned 90 degrees clockwise
    buf = io.BytesIO()
    img.save(buf, "PNG", exif=exif)
    x, info = load_image_with_info(buf.getvalue(), max_side=20)
    assert x.shape == (3, 20, 10) and [s["op"] for s in info["steps"]][:2] == ["shrink", "orient"]
    whole = load_image(buf.getvalue())
    assert whole.shape == (3, 80, 40)
    assert float((x - torch.nn.functional.avg_pool2d(whole[None], 4)[0]).abs().max()) < 1.5 / 255


def test_a_jpeg_is_refused_by_the_pixels_it_decodes() -> None:
    buf = io.BytesIO()
    Image.new("L", (2000, 1000), 128).save(buf, "JPEG")
    with pytest.raises(DataError, match=r"2000x1000 = 2,000,000 pixels is over the limit of 1,000,000"):
        load_image(buf.getvalue(), max_pixels=1_000_000)
    # decoded at 1/8 scale (250 x 125) it needs 31,250 pixels: under the limit
    assert load_image(buf.getvalue(), max_pixels=1_000_000, max_side=200).shape == (1, 100, 200)
    with pytest.raises(DataError, match=r"2000x1000 \(decoded at 500x250\) = 125,000 pixels"):
        load_image(buf.getvalue(), max_pixels=100_000, max_side=400)

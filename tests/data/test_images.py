"""Images from files and bytes: values, shapes, conversions, and clean errors."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import convscope
from convscope.data import load_image, load_image_with_info
from convscope.errors import DataError


def test_png_and_jpeg_values_and_layout(tmp_path: Path) -> None:
    arr = np.zeros((20, 30, 3), np.uint8)
    arr[:, :10, 0] = 255
    arr[5, 7] = (10, 20, 30)
    Image.fromarray(arr).save(tmp_path / "a.png")
    x = load_image(tmp_path / "a.png")
    assert x.shape == (1, 3, 20, 30)
    torch.testing.assert_close(x[0, :, 5, 7], torch.tensor([10, 20, 30]) / 255.0)
    Image.fromarray(arr).save(tmp_path / "a.jpg", quality=95)
    assert load_image(tmp_path / "a.jpg").shape == (1, 3, 20, 30)


def test_fit_to_a_models_spec_and_say_what_was_done(tmp_path: Path) -> None:
    spec = convscope.load_model("lenet5-simplified", pretrained=False).input_spec
    buf = io.BytesIO()
    Image.new("RGBA", (56, 56), (255, 255, 255, 255)).save(buf, "PNG")
    x, info = load_image_with_info(buf.getvalue(), spec=spec)
    assert x.shape == (1, 1, 28, 28) and float(x.min()) == pytest.approx(1.0, abs=1e-5)
    assert info["original_size"] == [56, 56] and info["original_mode"] == "RGBA"
    assert any("RGBA" in s for s in info["steps"]) and any("resized" in s for s in info["steps"]) and any("channels" in s for s in info["steps"])


def test_cli_summary_predicts_a_png_digit(tmp_path: Path, capsys) -> None:
    from convscope.cli import main

    data = convscope.load_dataset("mnist-5k", split="test")
    digit = (data.images[0, 0].numpy() * 255).astype(np.uint8)
    Image.fromarray(digit).save(tmp_path / "digit.png")
    assert main(["summary", "lenet5-simplified", "--input", str(tmp_path / "digit.png")]) == 0
    out = capsys.readouterr().out
    assert "prediction for" in out and str(tmp_path / "digit.png") in out


def test_bad_images_give_data_errors(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    with pytest.raises(DataError, match="not a readable image"):
        load_image(tmp_path / "bad.png")
    with pytest.raises(DataError, match="does not exist"):
        load_image(tmp_path / "missing.png")
    import convscope.data._images as images

    monkeypatch.setattr(images, "MAX_PIXELS", 100)
    Image.new("L", (20, 20)).save(tmp_path / "big.png")
    with pytest.raises(DataError, match="over the limit"):
        load_image(tmp_path / "big.png")

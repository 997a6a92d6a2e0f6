"""Model files are untrusted: no code runs without trust, and bad bytes give clean errors."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest
import torch

import convscope
from convscope.errors import ModelLoadError, UntrustedModelError


class _Payload:
    """Unpickling this creates a file: the proof that code ran."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickled_model_is_refused_without_trust_and_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"model": _Payload(str(marker))}, path)
    with pytest.raises(UntrustedModelError, match="trust"):
        convscope.load_model(path)
    assert not marker.exists()
    with pytest.raises(UntrustedModelError):
        convscope.load_model(path, architecture="lenet5-simplified")
    assert not marker.exists()


def test_a_trusted_whole_model_pickle_loads(tmp_path: Path) -> None:
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(4 * 26 * 26, 10))
    torch.save(net, tmp_path / "whole.pt")
    m = convscope.load_model(tmp_path / "whole.pt", trust=True, input_shape=(1, 28, 28))
    assert m.format == "pickle" and m.graph.layer("0").attributes["filters"] == 4


def test_keras_lambda_layers_need_trust(tmp_path: Path) -> None:
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras

    if keras.backend.backend() != "torch":
        pytest.skip("keras was imported with another backend in this process")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Lambda(lambda x: x * 2, name="double"), keras.layers.Dense(2)])
    path = tmp_path / "lambda.keras"
    model.save(str(path))
    with pytest.raises(UntrustedModelError, match="trust"):
        convscope.load_model(path)
    assert convscope.load_model(path, trust=True).format == "keras"


GARBAGE = [b"", b"\x00" * 64, b"PK\x03\x04garbage", b"\x89HDF\r\n\x1a\nnot really", os.urandom(4096)]


@pytest.mark.parametrize("ext", [".pt", ".pth", ".safetensors", ".pt2", ".onnx", ".keras", ".h5"])
@pytest.mark.parametrize("blob", range(len(GARBAGE)))
def test_garbage_bytes_give_a_model_load_error(tmp_path: Path, ext: str, blob: int) -> None:
    path = tmp_path / f"bad{ext}"
    path.write_bytes(GARBAGE[blob])
    with pytest.raises(ModelLoadError) as info:
        convscope.load_model(path, architecture="lenet5-simplified", input_shape=(1, 28, 28))
    assert path.name in str(info.value) or "empty" in str(info.value)


def test_truncated_real_files_give_a_model_load_error(tmp_path: Path) -> None:
    net = convscope.load_model("lenet5-simplified", pretrained=False).module
    torch.save(net.state_dict(), tmp_path / "w.pt")
    data = (tmp_path / "w.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError):
        convscope.load_model(tmp_path / "cut.pt", architecture="lenet5-simplified")


def test_keras_archive_without_config_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.keras"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("model.weights.h5", b"x")
    with pytest.raises(ModelLoadError, match="config.json"):
        convscope.load_model(path)


def test_missing_files_folders_and_unknown_extensions(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        convscope.load_model(tmp_path / "nope.pt")
    with pytest.raises(ModelLoadError, match="folder"):
        convscope.load_model(tmp_path)
    (tmp_path / "m.txt").write_text("hi")
    with pytest.raises(ModelLoadError, match="extension"):
        convscope.load_model(tmp_path / "m.txt")


def test_state_dict_with_wrong_keys_names_them(tmp_path: Path) -> None:
    from convscope.errors import StateDictMismatchError

    net = convscope.load_model("lenet5-simplified", pretrained=False).module
    state = net.state_dict()
    state["extra.weight"] = torch.zeros(3)
    del state["fc2.bias"]
    state["conv1.weight"] = torch.zeros(8, 1, 3, 3)
    torch.save(state, tmp_path / "w.pt")
    with pytest.raises(StateDictMismatchError) as info:
        convscope.load_model(tmp_path / "w.pt", architecture="lenet5-simplified")
    text = str(info.value)
    assert "fc2.bias" in text and "extra.weight" in text and "conv1.weight" in text

"""Model files of every format the explorer opens, made here from zoo models (shared with the browser tests)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest
import torch

from convscope.models.zoo import load_zoo_model


def _keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras

    if keras.backend.backend() != "torch":
        pytest.skip("keras was imported with another backend in this process")
    return keras


def keras_tiny(path: Path) -> Path:
    """A small Keras CNN for 28x28 grey digits, saved as .keras."""
    keras = _keras()
    L = keras.layers
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((28, 28, 1)),
        L.Conv2D(4, 3, name="conv1"), L.ReLU(name="relu1"), L.MaxPooling2D(2, name="pool1"),
        L.Flatten(name="flatten"), L.Dense(10, name="fc"),
    ])
    model.save(str(path))
    return path


def make_model_files(tmp: Path) -> dict[str, Path]:
    """The untrained simplified LeNet-5 as ONNX and .pt2, a tiny Keras model, a whole-model pickle, noise."""
    net = load_zoo_model("lenet5-simplified", pretrained=False).module
    x = torch.zeros(1, 1, 28, 28)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter needs no extra package
        torch.onnx.export(net, x, str(tmp / "lenet.onnx"), dynamo=False, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "n"}, "y": {0: "n"}})
    torch.export.save(torch.export.export(net, (x,)), str(tmp / "lenet.pt2"))
    keras_tiny(tmp / "tiny.keras")
    torch.save(torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3)), tmp / "whole.pt")
    (tmp / "noise.onnx").write_bytes(os.urandom(4096))

    class Boom:  # a pickle that would run code when loaded
        def __reduce__(self):
            return (os.system, ("echo convscope-pwned > " + str(tmp / "pwned"),))

    torch.save({"state": Boom()}, tmp / "evil.pt")  # a torch.save archive whose pickle calls os.system
    return {"onnx": tmp / "lenet.onnx", "pt2": tmp / "lenet.pt2", "keras": tmp / "tiny.keras", "pickle": tmp / "whole.pt",
            "noise": tmp / "noise.onnx", "evil": tmp / "evil.pt", "pwned": tmp / "pwned"}

"""Shared fixtures of the model tests: one small, valid file per format."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest
import torch

import convscope


def _keras():  # keras on the torch backend (skip if another backend is already loaded)
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras

    if keras.backend.backend() != "torch":
        pytest.skip("keras was imported with another backend in this process")
    return keras


@pytest.fixture(scope="session")
def real_files(tmp_path_factory) -> dict[str, Path]:
    """One small, valid file per format."""
    from safetensors.torch import save_file

    tmp = tmp_path_factory.mktemp("real")
    net = convscope.load_model("lenet5-simplified", pretrained=False).module
    torch.save(net.state_dict(), tmp / "w.pt")
    save_file(net.state_dict(), str(tmp / "w.safetensors"))
    torch.export.save(torch.export.export(net, (torch.zeros(1, 1, 28, 28),)), str(tmp / "m.pt2"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(net, torch.zeros(1, 1, 28, 28), str(tmp / "m.onnx"), dynamo=False)
    keras = _keras()
    km = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, name="c"), keras.layers.Flatten(),
                           keras.layers.Dense(3)])
    km.save(str(tmp / "m.keras"))
    km.save(str(tmp / "m.h5"))
    return {p.suffix: p for p in tmp.iterdir()}




@pytest.fixture
def keras_torch():
    """Keras 3 on the torch backend."""
    return _keras()

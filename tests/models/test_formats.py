"""The same network through every format gives the same predictions, layers and captures."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import convscope
from convscope.errors import ConversionError
from convscope.models.zoo import load_zoo_model


@pytest.fixture(scope="module")
def lenet():
    return load_zoo_model("lenet5-simplified")


@pytest.fixture(scope="module")
def digits(lenet):
    data = convscope.load_dataset("mnist-5k", split="test", spec=lenet.input_spec)
    return data.images[:6]


def _onnx_file(lenet, tmp: Path) -> Path:
    import warnings

    path = tmp / "lenet.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter needs no extra package
        torch.onnx.export(lenet.module, torch.zeros(1, 1, 28, 28), str(path), dynamo=False,
                          input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "n"}, "y": {0: "n"}})
    return path


def _convs(graph) -> list[tuple]:
    return [(layer.kind, layer.output_shape, layer.params, layer.attributes.get("filters")) for layer in graph.layers if layer.category in ("conv", "dense")]


def test_every_torch_format_and_onnx_agree(lenet, digits, tmp_path: Path) -> None:
    from safetensors.torch import save_file

    torch.save(lenet.module.state_dict(), tmp_path / "w.pt")
    save_file(lenet.module.state_dict(), str(tmp_path / "w.safetensors"))
    program = torch.export.export(lenet.module, (torch.zeros(1, 1, 28, 28),))  # static batch 1
    torch.export.save(program, str(tmp_path / "m.pt2"))
    loaded = {
        "module": convscope.load_model(lenet.module, input_shape=(1, 28, 28)),
        "state dict": convscope.load_model(tmp_path / "w.pt", architecture="lenet5-simplified"),
        "safetensors": convscope.load_model(tmp_path / "w.safetensors", architecture="lenet5-simplified"),
        "export": convscope.load_model(tmp_path / "m.pt2"),
        "onnx": convscope.load_model(_onnx_file(lenet, tmp_path)),
    }
    with torch.no_grad():
        reference = lenet.module(digits)
    for name, m in loaded.items():
        with torch.no_grad():
            out = m.module(digits)
        torch.testing.assert_close(out, reference, rtol=1e-5, atol=1e-5, msg=name)
        assert _convs(m.graph) == _convs(lenet.graph), name
    assert loaded["onnx"].format == "onnx" and loaded["onnx"].reference_max_abs_diff < 1e-4
    assert "torchvision" not in sys.modules  # the stand-in was only there during the import


def test_onnx_conv_outputs_equal_onnxruntime_intermediates(lenet, digits, tmp_path: Path) -> None:
    import onnx
    import onnxruntime as ort

    path = _onnx_file(lenet, tmp_path)
    proto = onnx.load(str(path))
    convs = [n for n in proto.graph.node if n.op_type == "Conv"]
    for node in convs:
        proto.graph.output.append(onnx.helper.make_tensor_value_info(node.output[0], onnx.TensorProto.FLOAT, None))
    exposed = tmp_path / "exposed.onnx"
    onnx.save(proto, str(exposed))
    theirs = ort.InferenceSession(str(exposed), providers=["CPUExecutionProvider"]).run(None, {"x": digits.numpy()})
    model = convscope.load_model(path)
    conv_ids = [layer.id for layer in model.graph.layers if layer.kind == "conv2d"]
    assert len(conv_ids) == len(convs) == 2
    ours = convscope.capture(model, digits, layers=conv_ids).outputs
    for lid, ref in zip(conv_ids, theirs[1:], strict=True):
        np.testing.assert_allclose(ours[lid].numpy(), ref, rtol=1e-4, atol=1e-4)
    frozen = convscope.capture(model, digits, layers=conv_ids, freeze={conv_ids[0]: [3]}).outputs
    assert float(frozen[conv_ids[0]][:, 3].abs().max()) == 0.0
    assert not torch.allclose(frozen[conv_ids[1]], ours[conv_ids[1]])


def test_onnx_operator_needing_torchvision_gives_a_clear_error(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    boxes = helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, 4, 4])
    scores = helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 1, 4])
    out = helper.make_tensor_value_info("sel", TensorProto.INT64, [None, 3])
    node = helper.make_node("NonMaxSuppression", ["boxes", "scores"], ["sel"])
    graph = helper.make_graph([node], "nms", [boxes, scores], [out])
    path = tmp_path / "nms.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    with pytest.raises(ConversionError):
        convscope.load_model(path, check=False)


def _keras_model():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras

    if keras.backend.backend() != "torch":
        pytest.skip("keras was imported with another backend in this process")
    keras.utils.set_random_seed(0)
    return keras, keras.Sequential([
        keras.Input((28, 28, 1)),
        keras.layers.Conv2D(8, 3, activation="relu", name="c1"),
        keras.layers.MaxPooling2D(name="p1"),
        keras.layers.Conv2D(12, 3, name="c2"),
        keras.layers.Flatten(name="f"),
        keras.layers.Dense(10, name="out"),
    ])


@pytest.mark.parametrize("ext", [".keras", ".h5"])
def test_keras_models_are_channels_first_and_match_keras(ext: str, tmp_path: Path, digits) -> None:
    keras, km = _keras_model()
    path = tmp_path / f"m{ext}"
    km.save(str(path))
    m = convscope.load_model(path)
    assert m.format == "keras" and m.input_spec.shape == (1, 28, 28) and m.reference_max_abs_diff <= 1e-5
    assert [(layer.id, layer.kind, layer.output_shape) for layer in m.graph.layers if layer.category in ("conv", "dense", "pool")] == [
        ("c1", "conv2d", (8, 26, 26)), ("p1", "maxpool2d", (8, 13, 13)), ("c2", "conv2d", (12, 11, 11)), ("out", "linear", (10,))]
    assert m.graph.layer("c1").params == 80 and m.graph.layer("c1").attributes["filters"] == 8
    nhwc = digits.permute(0, 2, 3, 1).numpy()
    with torch.no_grad():
        np.testing.assert_allclose(m.module(digits).numpy(), keras.ops.convert_to_numpy(km(nhwc)), rtol=1e-5, atol=1e-5)
    out = convscope.capture(m, digits, layers=["c1", "c2"]).outputs
    for name in ("c1", "c2"):
        ref = keras.ops.convert_to_numpy(keras.Model(km.inputs, km.get_layer(name).output)(nhwc)).transpose(0, 3, 1, 2)
        np.testing.assert_allclose(out[name].numpy(), ref, rtol=1e-5, atol=1e-5)
    frozen = convscope.capture(m, digits, layers=["c1", "c2"], freeze={"c1": [2, 5]}).outputs
    assert float(frozen["c1"][:, [2, 5]].abs().max()) == 0.0
    np.testing.assert_allclose(frozen["c1"][:, [0, 1]].numpy(), out["c1"][:, [0, 1]].numpy())
    assert not torch.allclose(frozen["c2"], out["c2"])

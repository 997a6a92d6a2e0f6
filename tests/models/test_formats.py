"""The same network through every format gives the same predictions, layers, captures and freezes.

The reference is the zoo's trained simplified LeNet-5 as a torch module. It is saved as a
state dict, safetensors, a ``torch.export`` program and ONNX, and ported by hand into Keras
(``.keras`` and ``.h5``); every loaded copy is compared with the torch original, and the
converted ones also with their own runtime (onnxruntime, Keras).
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import convscope
from convscope.errors import ConversionError
from convscope.models.zoo import load_zoo_model

FORMATS = ["module", "state dict", "safetensors", "export", "onnx", "keras", "h5"]


def _keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras

    if keras.backend.backend() != "torch":
        pytest.skip("keras was imported with another backend in this process")
    return keras


def _export_onnx(module: torch.nn.Module, path: Path, shape: tuple[int, ...], *, dynamic: bool = True) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter needs no extra package
        torch.onnx.export(module, torch.zeros(shape), str(path), dynamo=False, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "n"}, "y": {0: "n"}} if dynamic else None)
    return path


def _keras_lenet(keras, torch_net: torch.nn.Module):
    """The simplified LeNet-5 in Keras, with the torch weights moved into Keras's layouts."""
    L = keras.layers
    model = keras.Sequential([
        keras.Input((28, 28, 1)),
        L.Conv2D(16, 3, name="conv1"), L.ReLU(name="relu1"), L.MaxPooling2D(2, name="pool1"),
        L.Conv2D(32, 3, name="conv2"), L.ReLU(name="relu2"), L.MaxPooling2D(2, name="pool2"),
        L.Flatten(name="flatten"), L.Dense(512, name="fc1"), L.ReLU(name="relu3"), L.Dense(10, name="fc2"),
    ])
    sd = {k: v.detach().numpy() for k, v in torch_net.state_dict().items()}
    for conv in ("conv1", "conv2"):  # OIHW -> HWIO
        model.get_layer(conv).set_weights([sd[f"{conv}.weight"].transpose(2, 3, 1, 0), sd[f"{conv}.bias"]])
    # torch flattens C,H,W; Keras flattens H,W,C: reorder fc1's input rows accordingly
    fc1 = sd["fc1.weight"].reshape(512, 32, 5, 5).transpose(2, 3, 1, 0).reshape(800, 512)
    model.get_layer("fc1").set_weights([fc1, sd["fc1.bias"]])
    model.get_layer("fc2").set_weights([sd["fc2.weight"].T, sd["fc2.bias"]])
    return model


@pytest.fixture(scope="module")
def lenet():
    return load_zoo_model("lenet5-simplified")


@pytest.fixture(scope="module")
def digits(lenet):
    data = convscope.load_dataset("mnist-5k", split="test", spec=lenet.input_spec)
    return lenet.input_spec.prepare(data.images[:6])


@pytest.fixture(scope="module")
def files(lenet, tmp_path_factory) -> dict[str, Path]:
    from safetensors.torch import save_file

    tmp = tmp_path_factory.mktemp("formats")
    net = lenet.module
    torch.save(net.state_dict(), tmp / "w.pt")
    save_file(net.state_dict(), str(tmp / "w.safetensors"))
    torch.export.save(torch.export.export(net, (torch.zeros(1, 1, 28, 28),)), str(tmp / "m.pt2"))  # static batch 1
    _export_onnx(net, tmp / "lenet.onnx", (1, 1, 28, 28))
    keras = _keras()
    km = _keras_lenet(keras, net)
    km.save(str(tmp / "lenet.keras"))
    km.save(str(tmp / "lenet.h5"))
    return {"w.pt": tmp / "w.pt", "safetensors": tmp / "w.safetensors", "pt2": tmp / "m.pt2",
            "onnx": tmp / "lenet.onnx", "keras": tmp / "lenet.keras", "h5": tmp / "lenet.h5"}


@pytest.fixture(scope="module")
def loaded(lenet, files) -> dict[str, convscope.LoadedModel]:
    return {
        "module": convscope.load_model(lenet.module, input_shape=(1, 28, 28)),
        "state dict": convscope.load_model(files["w.pt"], architecture="lenet5-simplified"),
        "safetensors": convscope.load_model(files["safetensors"], architecture="lenet5-simplified"),
        "export": convscope.load_model(files["pt2"]),
        "onnx": convscope.load_model(files["onnx"]),
        "keras": convscope.load_model(files["keras"]),
        "h5": convscope.load_model(files["h5"]),
    }


def _structure(graph) -> list[tuple]:
    """What must agree across formats: the conv, dense and pooling layers, with their shapes and attributes."""
    return [
        (layer.id, layer.kind, layer.output_shape, layer.params, layer.attributes.get("filters"),
         layer.attributes.get("units"), layer.attributes.get("kernel"), layer.attributes.get("stride"))
        for layer in graph.layers
        if layer.category in ("conv", "dense", "pool")
    ]


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_predicts_like_the_torch_model(fmt, loaded, lenet, digits) -> None:
    m = loaded[fmt]
    with torch.no_grad():
        reference = lenet.module(digits)
        out = m.module(digits)
    torch.testing.assert_close(out, reference, rtol=1e-5, atol=1e-5)
    assert m.input_spec.shape == (1, 28, 28)
    assert out.argmax(1).tolist() == reference.argmax(1).tolist()


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_has_the_same_layers(fmt, loaded, lenet) -> None:
    graph = loaded[fmt].graph
    assert _structure(graph) == _structure(lenet.graph)
    assert [lid for lid in graph.layer_ids() if graph.layer(lid).category in ("conv", "dense")] == ["conv1", "conv2", "fc1", "fc2"]
    assert graph.layer("conv1").attributes["in_channels"] == 1 and graph.layer("conv2").attributes["in_channels"] == 16
    assert graph.layer("fc1").input_shapes == ((800,),)
    assert type(graph).from_json(graph.to_json()) == graph


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_captures_and_freezes_like_the_torch_model(fmt, loaded, lenet, digits) -> None:
    layers = ["conv1", "conv2", "fc2"]
    ref = convscope.capture(lenet, digits, layers=layers).outputs
    ref_frozen = convscope.capture(lenet, digits, layers=layers, freeze={"conv1": [3]}).outputs
    m = loaded[fmt]
    out = convscope.capture(m, digits, layers=layers).outputs
    frozen = convscope.capture(m, digits, layers=layers, freeze={"conv1": [3]}).outputs
    for name in layers:
        assert out[name].shape == ref[name].shape  # channels-first, whatever the format
        torch.testing.assert_close(out[name], ref[name], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(frozen[name], ref_frozen[name], rtol=1e-5, atol=1e-5)
    assert float(frozen["conv1"][:, 3].abs().max()) == 0.0 < float(out["conv1"][:, 3].abs().max())
    torch.testing.assert_close(frozen["conv1"][:, :3], out["conv1"][:, :3])
    assert not torch.allclose(frozen["conv2"], out["conv2"])
    assert not torch.allclose(frozen["fc2"], out["fc2"])
    with torch.no_grad():  # the freeze hooks are gone afterwards
        torch.testing.assert_close(m.module(digits), lenet.module(digits), rtol=1e-5, atol=1e-5)


def test_converted_formats_record_their_reference_check(loaded) -> None:
    for fmt in ("onnx", "keras", "h5"):
        diff = loaded[fmt].reference_max_abs_diff
        assert diff is not None and 0.0 <= diff < 1e-4, fmt
    assert loaded["state dict"].reference_max_abs_diff is None
    assert loaded["keras"].layer_layouts["conv1"] == "NHWC" and "fc1" not in loaded["keras"].layer_layouts
    assert not getattr(sys.modules.get("torchvision"), "__convscope_standin__", False)  # only there during the import


# --- ONNX -----------------------------------------------------------------------------------------


def _with_outputs(path: Path, names: list[str], out: Path) -> Path:
    import onnx

    proto = onnx.load(str(path))
    for name in names:
        proto.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    onnx.save(proto, str(out))
    return out


def test_onnx_layer_outputs_equal_onnxruntime_intermediates(files, loaded, digits, tmp_path: Path) -> None:
    import onnx
    import onnxruntime as ort

    proto = onnx.load(str(files["onnx"]))
    watched = [n for n in proto.graph.node if n.op_type in ("Conv", "Relu", "MaxPool", "Gemm")]
    exposed = _with_outputs(files["onnx"], [n.output[0] for n in watched], tmp_path / "exposed.onnx")
    theirs = ort.InferenceSession(str(exposed), providers=["CPUExecutionProvider"]).run(None, {"x": digits.numpy()})[1:]
    model = loaded["onnx"]
    ids = ["conv1", "relu1", "pool1", "conv2", "relu2", "pool2", "fc1", "relu3", "fc2"]
    assert [model.graph.layer(i).type for i in ids] == ["Conv2d", "ReLU", "MaxPool2d", "Conv2d", "ReLU", "MaxPool2d",
                                                         "Linear", "ReLU", "Linear"]
    ours = convscope.capture(model, digits, layers=ids).outputs
    assert len(theirs) == len(ids)
    for lid, ref in zip(ids, theirs, strict=True):
        np.testing.assert_allclose(ours[lid].numpy(), ref, rtol=1e-5, atol=1e-5, err_msg=lid)


class _Block(torch.nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = torch.nn.Conv2d(channels, channels, 3, padding=1)
        self.relu = torch.nn.ReLU()
        self.conv2 = torch.nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(x + self.conv2(self.relu(self.conv1(x))))


class _ResNetLet(torch.nn.Module):
    """Nested modules, a Sequential, a shared ReLU, residual adds and a shared weight."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, stride=2, padding=1), torch.nn.ReLU())
        self.layer1 = torch.nn.Sequential(_Block(4), _Block(4))
        self.layer1[1].conv2.weight = self.layer1[0].conv2.weight
        self.head = torch.nn.Linear(4, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer1(self.stem(x))
        return self.head(torch.flatten(torch.nn.functional.adaptive_avg_pool2d(x, 1), 1))


@pytest.mark.parametrize("batch", [None, 2])
def test_onnx_residual_model_keeps_module_names_hierarchy_and_values(batch, tmp_path: Path) -> None:
    import onnx
    import onnxruntime as ort

    torch.manual_seed(0)
    net = _ResNetLet().eval()
    path = _export_onnx(net, tmp_path / "res.onnx", (batch or 1, 3, 16, 16), dynamic=batch is None)
    proto = onnx.load(str(path))  # route a weight through Identity, as exporters do for shared or folded weights
    conv = next(n for n in proto.graph.node if n.op_type == "Conv")
    proto.graph.node.insert(0, onnx.helper.make_node("Identity", [conv.input[1]], ["w_copy"], name="/Identity"))
    conv.input[1] = "w_copy"
    onnx.save(proto, str(path))
    m = convscope.load_model(path)
    convs = [name for name, mod in net.named_modules() if isinstance(mod, torch.nn.Conv2d)]
    assert m.graph.layer_ids(category="conv") == convs  # stem.0, layer1.0.conv1 ... as in torch
    assert m.graph.layer("stem.0").attributes["stride"] == (2, 2) and m.graph.layer("stem.0").parent == "stem"
    assert m.graph.layer("layer1.0.add").kind == "add" and m.graph.layer("layer1.0.add").category == "merge"
    assert set(m.graph.predecessors("layer1.0.add")) == {"layer1.0.conv2", "stem.1"}  # the skip connection
    assert {"stem", "layer1", "layer1.0", "layer1.1"} <= {c.id for c in m.graph.containers}
    assert m.graph.layer("head").kind == "linear"

    x = torch.randn(5, 3, 16, 16)  # 5 samples, also when the file fixes the batch at 2
    with torch.no_grad():
        torch.testing.assert_close(m.module(x), net(x), rtol=1e-5, atol=1e-5)
    exposed = _with_outputs(path, [n.output[0] for n in onnx.load(str(path)).graph.node if n.op_type == "Conv"], tmp_path / "e.onnx")
    session = ort.InferenceSession(str(exposed), providers=["CPUExecutionProvider"])
    step = batch or 5
    theirs = [np.concatenate(parts) for parts in zip(*[
        session.run(None, {"x": np.concatenate([x[i:i + step].numpy(), np.zeros((step - len(x[i:i + step]), 3, 16, 16), np.float32)])})[1:]
        for i in range(0, 5, step)], strict=True)]
    ours = convscope.capture(m, x, layers=convs).outputs
    for name, ref in zip(convs, theirs, strict=True):
        np.testing.assert_allclose(ours[name].numpy(), ref[:5], rtol=1e-5, atol=1e-5, err_msg=name)


def test_onnx_readable_names_are_unique_module_paths() -> None:
    from convscope.models._onnx import readable_names

    nodes = [("/stem/stem.0/Conv", "Conv"), ("/layer1/layer1.0/conv1/Conv", "Conv"), ("/layer1/layer1.0/Add", "Add"),
             ("/layer1/layer1.0/downsample/downsample.0/Conv", "Conv"), ("/Flatten", "Flatten"), ("/Flatten_1", "Flatten"),
             ("", "Relu"), ("", "Relu"), ("conv1", "Conv"), ("a#b/Relu", "Relu"), ("/graph/Relu", "Relu")]
    names = readable_names(nodes, reserved={"graph"})
    assert names == ["stem.0", "layer1.0.conv1", "layer1.0.add", "layer1.0.downsample.0", "flatten", "flatten_2",
                     "relu", "relu_2", "conv1", "a_b", "graph_"]
    assert len(set(names)) == len(names)
    assert not any(other.startswith(name + ".") for name in names for other in names)


def test_onnx_check_catches_a_wrong_conversion(files, monkeypatch) -> None:
    from convscope.models._onnx import import_onnx2torch

    onnx2torch = import_onnx2torch()
    real = onnx2torch.convert

    def off_by_a_little(proto):
        gm = real(proto)
        with torch.no_grad():
            next(p for p in gm.parameters() if p.dim() == 4).add_(0.05)
        return gm

    monkeypatch.setattr(onnx2torch, "convert", off_by_a_little)
    with pytest.raises(ConversionError, match="differs from onnxruntime"):
        convscope.load_model(files["onnx"])
    unchecked = convscope.load_model(files["onnx"], check=False)
    assert unchecked.reference_max_abs_diff is None


def test_onnx_input_shapes(lenet, tmp_path: Path) -> None:
    import onnx

    path = _export_onnx(lenet.module, tmp_path / "any_size.onnx", (1, 1, 28, 28))
    proto = onnx.load(str(path))
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    dims[1].dim_param = "c"  # channels unknown: the file does not say what a sample looks like
    onnx.save(proto, str(path))
    with pytest.raises(ConversionError, match="input_shape"):
        convscope.load_model(path)
    m = convscope.load_model(path, input_shape=(1, 28, 28))
    assert m.input_spec.shape == (1, 28, 28) and m.graph.layer("conv2").output_shape == (32, 11, 11)


def test_onnx_operators_needing_torchvision_give_a_clear_error(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    from convscope.models._onnx import _torchvision_usable

    boxes = helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, 4, 4])
    scores = helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 1, 4])
    out = helper.make_tensor_value_info("sel", TensorProto.INT64, [None, 3])
    node = helper.make_node("NonMaxSuppression", ["boxes", "scores"], ["sel"], name="nms")
    graph = helper.make_graph([node], "nms", [boxes, scores], [out])
    path = tmp_path / "nms.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    with pytest.raises(ConversionError, match="2 inputs"):
        convscope.load_model(path, check=False)
    single = helper.make_graph([helper.make_node("NonMaxSuppression", ["boxes", "boxes_scores"], ["sel"])], "nms1",
                               [boxes], [out], [helper.make_tensor("boxes_scores", TensorProto.FLOAT, [1, 1, 4], [0.1, 0.9, 0.3, 0.2])])
    onnx.save(helper.make_model(single, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    if _torchvision_usable():
        pytest.skip("torchvision works here; NonMaxSuppression converts")
    with pytest.raises(ConversionError, match="torchvision"):
        convscope.load_model(path, input_shape=(4, 4), check=False)


def test_onnx2torch_imports_with_a_standin_that_leaves_no_trace() -> None:
    """In a fresh interpreter: torchvision marked absent stays marked absent, and the two converters
    that need it hold convscope's stand-in (their import-time references)."""
    code = (
        "import sys; sys.modules['torchvision'] = None\n"
        "from convscope.models._onnx import import_onnx2torch\n"
        "import_onnx2torch()\n"
        "import onnx2torch.node_converters.roialign as r, onnx2torch.node_converters.nms as n\n"
        "assert sys.modules['torchvision'] is None and 'torchvision.ops' not in sys.modules\n"
        "assert r.roi_align.__name__ == 'unavailable' and n.torchvision.__convscope_standin__\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


# --- Keras ------------------------------------------------------------------------------------------


def test_keras_outputs_equal_keras_intermediates_and_freeze(files, loaded, digits) -> None:
    keras = _keras()
    km = keras.saving.load_model(str(files["keras"]), compile=False)
    nhwc = digits.movedim(1, -1).numpy()
    m = loaded["keras"]
    ids = ["conv1", "relu1", "pool1", "conv2", "pool2", "flatten", "fc1", "fc2"]
    out = convscope.capture(m, digits, layers=ids).outputs
    refs = keras.Model(km.inputs, [km.get_layer(name).output for name in ids])(nhwc)
    for name, ref in zip(ids, refs, strict=True):
        ref = keras.ops.convert_to_numpy(ref)
        ref = ref.transpose(0, 3, 1, 2) if ref.ndim == 4 else ref  # NHWC -> NCHW
        np.testing.assert_allclose(out[name].numpy(), ref, rtol=1e-5, atol=1e-5, err_msg=name)
    frozen = convscope.capture(m, digits, layers=["conv1", "conv2"], freeze={"conv1": [2, 5], "conv2": [0]}).outputs
    assert float(frozen["conv1"][:, [2, 5]].abs().max()) == 0.0 and float(frozen["conv2"][:, 0].abs().max()) == 0.0
    np.testing.assert_allclose(frozen["conv1"][:, [0, 1, 3]].numpy(), out["conv1"][:, [0, 1, 3]].numpy())
    assert not torch.allclose(frozen["conv2"][:, 1:], out["conv2"][:, 1:])


def test_keras_nested_models_become_containers(tmp_path: Path) -> None:
    keras = _keras()
    keras.utils.set_random_seed(0)
    L = keras.layers
    base = keras.Sequential([keras.Input((12, 12, 3)), L.Conv2D(4, 3, name="c1"), L.MaxPooling2D(name="p1")], name="base")
    inp = keras.Input((12, 12, 3))
    y = L.Conv2D(6, 3, activation="relu", name="c2")(base(inp))
    z = L.Conv2D(6, 3, padding="same", strides=1, name="c3")(y)
    out = L.Dense(3, name="out")(L.GlobalAveragePooling2D(name="gap")(L.Add(name="add")([y, z])))
    keras.Model(inp, out).save(str(tmp_path / "nested.keras"))

    m = convscope.load_model(tmp_path / "nested.keras")
    g = m.graph
    assert m.input_spec.shape == (3, 12, 12)
    assert [(lid, g.layer(lid).kind, g.layer(lid).output_shape) for lid in g.layer_ids()] == [
        ("base.c1", "conv2d", (4, 10, 10)), ("base.p1", "maxpool2d", (4, 5, 5)), ("c2", "conv2d", (6, 3, 3)),
        ("c3", "conv2d", (6, 3, 3)), ("add", "add", (6, 3, 3)), ("gap", "globalavgpool2d", (6,)), ("out", "linear", (3,))]
    assert g.layer("base.c1").parent == "base" and g.containers[0].children == ("base.c1", "base.p1")
    assert g.predecessors("base.c1") == ["input"] and g.predecessors("c2") == ["base.p1"]
    assert set(g.predecessors("add")) == {"c2", "c3"}
    assert g.layer("c2").attributes["activation"] == "relu" and g.layer("c3").attributes["padding"] == "same"
    assert g.layer("base.c1").params == 4 * 3 * 3 * 3 + 4

    x = torch.randn(3, 3, 12, 12)
    inner = keras.Model(base.inputs, base.get_layer("c1").output)
    ref = keras.ops.convert_to_numpy(inner(x.movedim(1, -1).numpy())).transpose(0, 3, 1, 2)
    got = convscope.capture(m, x, layers=["base.c1", "add"], freeze={"base.c1": [1]}).outputs
    assert float(got["base.c1"][:, 1].abs().max()) == 0.0
    np.testing.assert_allclose(got["base.c1"][:, [0, 2, 3]].numpy(), ref[:, [0, 2, 3]], rtol=1e-5, atol=1e-5)


def test_keras_input_shape_must_be_known(tmp_path: Path) -> None:
    keras = _keras()
    L = keras.layers
    model = keras.Sequential([keras.Input((None, None, 1)), L.Conv2D(2, 3, name="c"), L.GlobalMaxPooling2D(name="g")])
    model.save(str(tmp_path / "any.keras"))
    with pytest.raises(ConversionError, match="input_shape"):
        convscope.load_model(tmp_path / "any.keras")
    m = convscope.load_model(tmp_path / "any.keras", input_shape=(1, 9, 7))
    assert m.graph.layer("c").output_shape == (2, 7, 5) and m.graph.layer("g").output_shape == (2,)


def test_keras_on_another_backend_is_a_clear_error(monkeypatch) -> None:
    from types import ModuleType, SimpleNamespace

    from convscope.models._keras import import_keras

    fake = ModuleType("keras")
    fake.backend = SimpleNamespace(backend=lambda: "jax")  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "keras", fake)
    with pytest.raises(ConversionError, match="'jax' backend.*KERAS_BACKEND=torch"):
        import_keras()
    monkeypatch.delitem(sys.modules, "keras")
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    with pytest.raises(ConversionError, match="KERAS_BACKEND is 'tensorflow'"):
        import_keras()


def test_keras_sequences_and_channel_less_images(tmp_path: Path) -> None:
    keras = _keras()
    keras.utils.set_random_seed(1)
    L = keras.layers
    seq = keras.Sequential([keras.Input((20, 3)), L.Conv1D(4, 3, name="c"), L.Flatten(name="f"), L.Dense(2, name="o")])
    seq.save(str(tmp_path / "seq.keras"))
    m = convscope.load_model(tmp_path / "seq.keras")
    assert m.input_spec.shape == (20, 3) and m.graph.layer("c").output_shape == (4, 18)  # channels-first (C, T)
    x = torch.randn(2, 20, 3)
    got = convscope.capture(m, x, layers=["c"], freeze={"c": [1]}).outputs["c"]
    ref = keras.ops.convert_to_numpy(keras.Model(seq.inputs, seq.get_layer("c").output)(x.numpy())).transpose(0, 2, 1)
    assert float(got[:, 1].abs().max()) == 0.0
    np.testing.assert_allclose(got[:, [0, 2, 3]].numpy(), ref[:, [0, 2, 3]], rtol=1e-5, atol=1e-5)

    flat = keras.Sequential([keras.Input((6, 5)), L.Reshape((6, 5, 1), name="r"), L.Conv2D(2, 3, name="c"),
                             L.Flatten(name="f"), L.Dense(2, name="o")])
    flat.save(str(tmp_path / "flat.keras"))
    m = convscope.load_model(tmp_path / "flat.keras")
    assert m.input_spec.shape == (6, 5) and m.graph.layer("c").output_shape == (2, 4, 3)  # not transposed
    x = torch.randn(3, 6, 5)
    with torch.no_grad():
        np.testing.assert_allclose(m.module(x).numpy(), keras.ops.convert_to_numpy(flat(x.numpy())), rtol=1e-5, atol=1e-5)

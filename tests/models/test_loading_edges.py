"""Loading as a demanding user does it: dynamic shapes, new opsets, several outputs, huge
declared inputs, wrong extensions, typos. Each model is built here, at test time."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import convscope
from convscope.errors import ConversionError, CorruptModelError, UnknownModelError, UnsupportedFormatError


def _export_onnx(module: torch.nn.Module, path: Path, shape: tuple[int, ...], *, opset: int | None = None) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter is deprecated but needs no extra package
        torch.onnx.export(module, torch.zeros(shape), str(path), dynamo=False, input_names=["x"], opset_version=opset,
                          dynamic_axes={"x": {0: "n"}})
    return path


def _onnxruntime(path: Path, x: torch.Tensor) -> list[np.ndarray]:
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x.numpy()})


class _Pooled(torch.nn.Module):
    """Conv, average pool, flatten by view, dense: AveragePool, Shape and Reshape are version 19 at opset 20."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 4, 3)
        self.pool = torch.nn.AvgPool2d(2)
        self.fc = torch.nn.Linear(4 * 5 * 5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(torch.relu(self.conv(x)))
        return self.fc(x.view(x.size(0), -1))


class _Scaled(torch.nn.Module):
    """Only operators onnx2torch knows at opset 20, and a constant (a ``Constant`` node, version 19 there)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 4, 3)
        self.fc = torch.nn.Linear(4 * 10 * 10, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(torch.relu(self.conv(x)), 1) * 0.5)


# --- ONNX ----------------------------------------------------------------------------------------------


def test_onnx_constants_at_opset_20_convert_and_match_onnxruntime(tmp_path: Path) -> None:
    import onnx

    torch.manual_seed(0)
    net = _Scaled().eval()
    path = _export_onnx(net, tmp_path / "scaled.onnx", (1, 1, 12, 12), opset=20)
    assert "Constant" in [n.op_type for n in onnx.load(str(path)).graph.node]
    m = convscope.load_model(path)
    x = torch.randn(3, 1, 12, 12)
    with torch.no_grad():
        ours = m.module(x).numpy()
    np.testing.assert_allclose(ours, _onnxruntime(path, x)[0], rtol=1e-5, atol=1e-5)
    assert m.graph.layer_ids(category="conv") == ["conv"]


def test_onnx_operators_without_a_converter_are_named_with_the_opset_to_use(tmp_path: Path) -> None:
    from onnx import TensorProto, helper, save

    torch.manual_seed(0)
    net = _Pooled().eval()
    new = _export_onnx(net, tmp_path / "new.onnx", (1, 1, 12, 12), opset=20)
    with pytest.raises(ConversionError) as info:
        convscope.load_model(new)
    text = str(info.value)
    assert "'new.onnx'" in text and "AveragePool (version 19 at opset 20" in text and "Reshape" in text
    assert "opset_version=18" in text  # what to do
    older = _export_onnx(net, tmp_path / "older.onnx", (1, 1, 12, 12), opset=18)  # doing it works
    x = torch.randn(2, 1, 12, 12)
    with torch.no_grad():
        np.testing.assert_allclose(convscope.load_model(older).module(x).numpy(), _onnxruntime(older, x)[0],
                                   rtol=1e-5, atol=1e-5)

    x_info = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])
    y_info = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 4, 4])
    graph = helper.make_graph([helper.make_node("LpNormalization", ["x"], ["y"])], "lp", [x_info], [y_info])
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "lp.onnx"))
    with pytest.raises(ConversionError, match=r"LpNormalization \(not supported at any opset\).*replace"):
        convscope.load_model(tmp_path / "lp.onnx")


class _TwoHeads(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 2, 3)
        self.fc = torch.nn.Linear(2 * 6 * 6, 3)
        self.side = torch.nn.Conv2d(1, 2, 3)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.fc(torch.flatten(self.conv(x), 1)), torch.relu(self.side(x))


def test_onnx_every_output_is_checked_against_onnxruntime(tmp_path: Path, monkeypatch) -> None:
    from convscope.models._onnx import import_onnx2torch

    torch.manual_seed(0)
    path = _export_onnx(_TwoHeads().eval(), tmp_path / "two.onnx", (1, 1, 8, 8))
    m = convscope.load_model(path)
    x = torch.randn(3, 1, 8, 8)
    with torch.no_grad():
        ours = m.module(x)
    for mine, ref in zip(ours, _onnxruntime(path, x), strict=True):
        np.testing.assert_allclose(mine.numpy(), ref, rtol=1e-5, atol=1e-5)

    onnx2torch = import_onnx2torch()
    real = onnx2torch.convert

    def wrong_second_head(proto):
        gm = real(proto)
        convs = [mod for mod in gm.modules() if isinstance(mod, torch.nn.Conv2d)]
        with torch.no_grad():
            convs[-1].weight.add_(0.5)  # feeds only the second output
        return gm

    monkeypatch.setattr(onnx2torch, "convert", wrong_second_head)
    with pytest.raises(ConversionError, match="output 1 differs from onnxruntime"):
        convscope.load_model(path)


def test_a_huge_declared_input_is_refused_without_allocating_it(tmp_path: Path, monkeypatch) -> None:
    import onnx

    path = _export_onnx(torch.nn.Conv2d(3, 2, 3).eval(), tmp_path / "huge.onnx", (1, 3, 8, 8))
    proto = onnx.load(str(path))
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_value = dims[3].dim_value = 100_000
    proto.graph.output[0].type.tensor_type.shape.ClearField("dim")
    onnx.save(proto, str(path))

    def guarded(real):
        def make(*size, **kwargs):
            shape = size[0] if len(size) == 1 and isinstance(size[0], tuple | list | torch.Size) else size
            assert int(np.prod(shape)) < 1 << 28, f"loading allocated a tensor of shape {tuple(shape)}"
            return real(*size, **kwargs)

        return make

    for name in ("zeros", "randn", "empty"):
        monkeypatch.setattr(torch, name, guarded(getattr(torch, name)))
    for check in (True, False):
        with pytest.raises(ConversionError, match=r"3x100000x100000.*GiB.*input_shape"):
            convscope.load_model(path, check=check)
    with pytest.raises(ConversionError, match="GiB"):
        convscope.load_model(torch.nn.Conv2d(3, 2, 3), input_shape=(3, 100_000, 100_000))
    with pytest.raises(ConversionError, match="positive"):
        convscope.load_model(torch.nn.Conv2d(3, 2, 3), input_shape=(3, 0, 8))


# --- torch.export -------------------------------------------------------------------------------------


class _Small(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.fc = torch.nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x).mean((2, 3)))


def test_export_programs_with_dynamic_dims_take_any_batch_and_size(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = _Small().eval()
    batch, h, w = torch.export.Dim("batch"), torch.export.Dim("h", min=4, max=64), torch.export.Dim("w", min=4, max=64)
    program = torch.export.export(net, (torch.zeros(2, 3, 16, 16),), dynamic_shapes={"x": {0: batch, 2: h, 3: w}})
    torch.export.save(program, str(tmp_path / "dyn.pt2"))
    m = convscope.load_model(tmp_path / "dyn.pt2")
    assert m.input_spec.shape == (3, 16, 16) and m.graph.layer("conv").output_shape == (4, 16, 16)
    for shape in ((1, 3, 16, 16), (5, 3, 20, 24)):
        x = torch.randn(shape)
        with torch.no_grad():
            torch.testing.assert_close(m.module(x), net(x))


def test_export_programs_with_several_inputs_are_a_clear_error(tmp_path: Path) -> None:
    class TwoInputs(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3)

        def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return self.conv(x) + y

    program = torch.export.export(TwoInputs().eval(), (torch.zeros(1, 3, 8, 8), torch.zeros(1, 4, 6, 6)))
    torch.export.save(program, str(tmp_path / "two.pt2"))
    with pytest.raises(ConversionError, match=r"'two.pt2' is a program with 2 inputs \(x, y\).*one image input"):
        convscope.load_model(tmp_path / "two.pt2")


# --- paths and names ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("made_as", "named", "looks_like"),
    [(".onnx", "model.bin", "an ONNX model: rename it to 'model.onnx'"),
     (".onnx", "model", "an ONNX model: rename it to 'model.onnx'"),
     (".safetensors", "w.pt", "a safetensors file: rename it to 'w.safetensors'"),
     (".pt2", "m.pt", "a torch.export program: rename it to 'm.pt2'"),
     (".pt", "w.keras", "a torch.save file"),
     (".keras", "m.onnx", "a Keras 3 archive: rename it to 'm.keras'"),
     (".h5", "m.pth", "an HDF5 file"),
     (".onnx", "m.txt", "an ONNX model: rename it to 'm.onnx'")],
)
def test_a_known_format_under_the_wrong_name_is_named(real_files, tmp_path: Path, made_as: str, named: str,
                                                      looks_like: str) -> None:
    path = tmp_path / named
    shutil.copy(real_files[made_as], path)
    with pytest.raises((CorruptModelError, UnsupportedFormatError)) as info:
        convscope.load_model(path, architecture="lenet5-simplified")
    assert f"its content looks like {looks_like}" in str(info.value)


def test_zoo_name_typos_suggest_close_names(tmp_path: Path) -> None:
    for typo, meant in (("lenet5-simplifed", "'lenet5-simplified'"), ("VGG16", "'vgg16'"), ("resnet-50", "'resnet50'"),
                        ("lenet5_simplified", "'lenet5-simplified'")):
        with pytest.raises(UnknownModelError, match=f"did you mean {meant}"):
            convscope.load_model(typo)
    with pytest.raises(UnknownModelError) as info:
        convscope.load_model("nothing-like-it")
    assert "did you mean" not in str(info.value) and "lenet5" in str(info.value)
    net = convscope.load_model("lenet5-simplified", pretrained=False).module
    torch.save(net.state_dict(), tmp_path / "w.pt")
    with pytest.raises(UnknownModelError, match="did you mean 'lenet5-simplified'"):
        convscope.load_model(tmp_path / "w.pt", architecture="lenet5-simplifed")


# --- Keras ---------------------------------------------------------------------------------------------


def test_keras_custom_classes_are_named_and_not_run(tmp_path: Path, keras_torch) -> None:
    keras = keras_torch
    ran: list[bool] = []

    @keras.saving.register_keras_serializable(package="convscope_test")
    class Doubler(keras.layers.Layer):
        def call(self, x):
            ran.append(True)
            return x * 2

    model = keras.Sequential([keras.Input((4,)), Doubler(name="double"), keras.layers.Dense(2)])
    model.save(str(tmp_path / "custom.keras"))
    keras.saving.get_custom_objects().pop("convscope_test>Doubler")  # a fresh process would not know it
    ran.clear()
    with pytest.raises(ConversionError, match=r"the custom Keras class 'Doubler'.*register_keras_serializable"):
        convscope.load_model(tmp_path / "custom.keras")
    assert not ran


def test_onnx_external_data_alone_explains_how_to_ship_it(real_files, tmp_path: Path) -> None:
    import onnx

    onnx.save(onnx.load(str(real_files[".onnx"])), str(tmp_path / "m.onnx"), save_as_external_data=True,
              location="m.data", size_threshold=0)
    assert convscope.load_model(tmp_path / "m.onnx").graph.layer("conv1").attributes["filters"] == 16
    alone = tmp_path / "upload"
    alone.mkdir()
    shutil.copy(tmp_path / "m.onnx", alone / "m.onnx")  # what an upload of the .onnx file carries
    with pytest.raises(CorruptModelError, match=r"'m.data', which is missing.*save_as_external_data=False"):
        convscope.load_model(alone / "m.onnx")


def test_an_architecture_that_would_be_ignored_is_refused(tmp_path: Path) -> None:
    # (--arch was silently ignored for zoo names and for files that hold their architecture)
    from convscope.errors import ModelLoadError

    with pytest.raises(ModelLoadError, match=r"'lenet5' is a zoo model, which has its own: leave out the architecture \(--arch\)"):
        convscope.load_model("lenet5", architecture="vgg12", pretrained=False)
    path = _export_onnx(torch.nn.Conv2d(1, 2, 3).eval(), tmp_path / "conv.onnx", (1, 1, 8, 8))
    with pytest.raises(ModelLoadError, match=r"a \.onnx file holds its architecture"):
        convscope.load_model(path, architecture="lenet5-simplified")
    assert convscope.load_model(path).format == "onnx"  # (without it, as ever)
    weights = tmp_path / "w.pt"
    torch.save(convscope.load_model("lenet5-simplified", pretrained=False).module.state_dict(), weights)
    assert convscope.load_model(weights, architecture="lenet5-simplified").format == "state_dict"  # (what it is for)

"""ExplorerSession without HTTP, checked against plain torch forward passes done here."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
import torch
from PIL import Image

import convscope
from convscope.errors import DataError, LayerNotFoundError, NotFoundError, ServerError, UnsupportedFormatError
from convscope.explorer import ExplorerLimits, ExplorerSession


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()


def _pixels(maps: dict) -> np.ndarray:
    raw = np.frombuffer(base64.b64decode(maps["data"]), dtype=np.uint8)
    return raw.reshape(maps["count"], maps["height"], maps["width"])


def _reference(model, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every named module's output through plain forward hooks: the independent reference."""
    seen: dict[str, torch.Tensor] = {}
    handles = [m.register_forward_hook(lambda _m, _i, out, name=name: seen.__setitem__(name, out.detach().clone()))
               for name, m in model.module.named_modules() if name]
    try:
        with torch.no_grad():
            seen["logits"] = model.module(x)
    finally:
        for h in handles:
            h.remove()
    return seen


@pytest.fixture
def session():
    s = ExplorerSession()
    m = s.add_model("lenet5-simplified", pretrained=False)
    torch.manual_seed(0)
    with torch.no_grad():  # untrained weights, but no dead filters: every change must show downstream
        for p in m.loaded.module.parameters():
            p.normal_(0, 0.3)
    a = s.add_sample("foolbox-mnist", index=0)
    b = s.add_sample("foolbox-mnist", index=1)
    return s, m, a, b


def test_layer_outputs_match_the_graph_and_a_plain_forward_pass(session) -> None:
    s, m, a, _b = session
    out = s.layer_outputs(m.id, a.id, max_size=None, max_maps=None)
    graph = m.loaded.graph
    names = [layer["layer"] for layer in out["layers"]]
    assert names == ["conv1", "relu1", "pool1", "conv2", "relu2", "pool2", "flatten", "fc1", "relu3", "fc2"]
    x = m.loaded.input_spec.prepare(s.fitted(m.id, a.id))
    ref = _reference(m.loaded, x)
    for layer in out["layers"]:
        r = ref[layer["layer"]][0]
        assert layer["shape"] == list(graph.layer(layer["layer"]).output_shape) == list(r.shape)
        assert layer["stats"]["max"] == pytest.approx(float(r.max()), rel=1e-5, abs=1e-6)
        assert layer["stats"]["mean"] == pytest.approx(float(r.mean()), rel=1e-4, abs=1e-6)
        assert layer["stats"]["zeros"] == pytest.approx(float((r == 0).float().mean()))
    conv1 = out["layers"][0]["maps"]
    px = _pixels(conv1)
    assert px.shape == (16, 26, 26) and len(conv1["vmin"]) == 16
    r = ref["conv1"][0, 3].numpy()  # per-map scaling: the brightest pixel is the map's maximum
    assert np.unravel_index(px[3].argmax(), px[3].shape) == np.unravel_index(r.argmax(), r.shape)
    assert conv1["vmax"][3] == pytest.approx(float(r.max()), rel=1e-5)
    fc2 = out["layers"][-1]["maps"]  # a dense layer: one map holding every unit, shared scale
    assert fc2["units"] == 10 and fc2["count"] == 1 and fc2["width"] * fc2["height"] >= 10
    logits = ref["logits"][0]
    assert _pixels(fc2).flatten()[:10].argmax() == int(logits.argmax()) == out["prediction"]["predicted"]
    probs = torch.softmax(logits, 0)
    assert out["prediction"]["top"][0]["probability"] == pytest.approx(float(probs.max()), rel=1e-5)
    assert sum(t["probability"] for t in out["prediction"]["top"]) == pytest.approx(1.0, abs=1e-5)


def test_max_size_and_max_maps_bound_what_is_sent(session) -> None:
    s, m, a, _b = session
    conv1 = s.layer_outputs(m.id, a.id, layers=["conv1"], max_size=8, max_maps=5)["layers"][0]["maps"]
    assert (conv1["count"], conv1["total"]) == (5, 16) and max(conv1["width"], conv1["height"]) <= 8
    with pytest.raises(LayerNotFoundError, match="conv9.*conv1"):
        s.layer_outputs(m.id, a.id, layers=["conv9"])


def test_freezing_zeroes_a_filter_and_the_change_travels_downstream(session) -> None:
    s, m, a, _b = session
    before = {layer["layer"]: layer for layer in s.layer_outputs(m.id, a.id, max_size=None, max_maps=None)["layers"]}
    weights = {k: v.clone() for k, v in m.loaded.module.state_dict().items()}
    assert s.set_freeze(m.id, {"conv2": [0, 5], "conv1": []}) == {"conv2": [0, 5]}
    after = {layer["layer"]: layer for layer in s.layer_outputs(m.id, a.id, max_size=None, max_maps=None)["layers"]}
    assert after["conv2"]["frozen"] == [0, 5]
    px = _pixels(after["conv2"]["maps"])
    assert after["conv2"]["maps"]["vmin"][0] == after["conv2"]["maps"]["vmax"][0] == 0.0 and not px[0].any()
    for name in ("conv1", "relu1", "pool1"):  # upstream: untouched
        assert after[name]["stats"] == before[name]["stats"]
    for name in ("relu2", "pool2", "fc1", "fc2"):  # downstream: changed
        assert after[name]["stats"] != before[name]["stats"], name
    # the same as zeroing those filters' weights and biases by hand
    net = convscope.load_model("lenet5-simplified", pretrained=False).module
    net.load_state_dict(weights)
    with torch.no_grad():
        net.conv2.weight[[0, 5]] = 0
        net.conv2.bias[[0, 5]] = 0
        expected = net(m.loaded.input_spec.prepare(s.fitted(m.id, a.id)))[0]
    _outputs, logits = s.capture(m.id, a.id)
    torch.testing.assert_close(logits[0], expected, rtol=1e-5, atol=1e-5)
    assert all(torch.equal(v, weights[k]) for k, v in m.loaded.module.state_dict().items())  # weights restored
    s.set_freeze(m.id, {})
    cleared = {layer["layer"]: layer["stats"] for layer in s.layer_outputs(m.id, a.id)["layers"]}
    assert cleared == {k: v["stats"] for k, v in before.items()}


def test_freeze_sets_are_checked(session) -> None:
    s, m, _a, _b = session
    with pytest.raises(LayerNotFoundError, match="conv9.*freezable"):
        s.set_freeze(m.id, {"conv9": [0]})
    with pytest.raises(DataError, match=r"16 filters.*\[16\]"):
        s.set_freeze(m.id, {"conv1": [16]})
    with pytest.raises(NotFoundError, match="m99"):
        s.set_freeze("m99", {})


def test_compare_measures_divergence_with_the_captures(session) -> None:
    s, m, a, b = session
    same = s.compare(m.id, a.id, a.id)
    assert same["diverges_at"] is None and all(d["l2"] == 0 for d in same["layers"])
    c = s.compare(m.id, a.id, b.id, layers=["conv1", "fc2"], max_size=None)
    out_a, _ = s.capture(m.id, a.id)
    out_b, _ = s.capture(m.id, b.id)
    by = {d["layer"]: d for d in c["layers"]}
    assert [d["layer"] for d in c["layers"]][:3] == ["conv1", "relu1", "pool1"]
    for name in ("conv1", "pool2", "fc2"):
        assert by[name]["l2"] == pytest.approx(float((out_b[name] - out_a[name]).norm()), rel=1e-4)
    assert c["diverges_at"] == "conv1"  # two different digits differ from the first layer on
    conv1 = c["maps"][0]
    assert conv1["layer"] == "conv1" and conv1["a"]["count"] == conv1["b"]["count"] == conv1["diff"]["count"] == 16
    diff = (out_b["conv1"] - out_a["conv1"])[0, 2].numpy()
    px = _pixels(conv1["diff"])[2].astype(int) - 128  # signed: 128 is no difference
    assert conv1["diff"]["vmax"][2] == pytest.approx(float(np.abs(diff).max()), rel=1e-5)
    assert np.sign(px[np.abs(diff) > 0.5 * np.abs(diff).max()]).tolist() == np.sign(diff[np.abs(diff) > 0.5 * np.abs(diff).max()]).tolist()
    assert c["maps"][1]["diff"]["units"] == 10
    assert c["prediction_a"]["predicted"] != c["prediction_b"]["predicted"] or c["layers"][-1]["l2"] > 0


class Corner(torch.nn.Module):
    """Class 1's score is the sum of the top-left 3x3 pixels; nothing else matters."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 1, 1)
        self.fc = torch.nn.Linear(64, 2)
        with torch.no_grad():
            self.conv.weight.fill_(1.0)
            self.conv.bias.zero_()
            self.fc.weight.zero_()
            self.fc.bias.zero_()
            for r in range(3):
                self.fc.weight[1, r * 8 : r * 8 + 3] = 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x).flatten(1))


@pytest.mark.parametrize("method", ["gradient", "integrated_gradients", "occlusion"])
def test_saliency_highlights_the_pixels_that_decide(method: str) -> None:
    s = ExplorerSession()
    m = s.add_model(Corner(), input_shape=(1, 8, 8))
    x = s.add_image(torch.full((1, 8, 8), 0.5))
    r = s.saliency(m.id, x.id, method=method, target=1)
    assert (r["width"], r["height"], r["target"]) == (8, 8, 1)
    sal = np.frombuffer(base64.b64decode(r["data"]), dtype=np.uint8).reshape(8, 8)
    assert sal[:3, :3].min() > 0 and sal.max() == 255
    outside = sal.copy()
    if method == "occlusion":  # its sliding patch spreads evidence a few pixels: far pixels carry none
        assert sal[:2, :2].min() == 255 and sal[6:, 6:].max() == 0 and sal[:3, :3].mean() > 4 * sal.mean() / 2
    else:
        outside[:3, :3] = 0
        assert outside.max() == 0, method  # no evidence outside the corner


def test_adversarial_input_joins_the_inputs_with_true_norms(session) -> None:
    s, m, a, _b = session
    made = s.adversarial(m.id, a.id, attack="fgsm", params={"eps": 0.2})
    info = made.info()
    assert made.id in s.inputs and info["kind"] == "adversarial" and info["parent"] == a.id
    adv = info["adversarial"]
    x0 = s.fitted(m.id, a.id)[0]
    x1 = made.image
    assert adv["linf"] == pytest.approx(float((x1 - x0).abs().max()), abs=1e-5) and adv["linf"] <= 0.2 + 1e-5
    assert adv["l2"] == pytest.approx(float((x1 - x0).norm()), rel=1e-4)
    with torch.no_grad():
        pred = int(m.loaded.module(m.loaded.input_spec.prepare(x1[None])).argmax())
    assert adv["prediction"] == pred == s.prediction(m.id, made.id)["predicted"]
    assert adv["success"] == (adv["prediction"] != adv["original_prediction"])
    with pytest.raises(DataError, match="eps"):
        s.adversarial(m.id, a.id, attack="fgsm", params={"bogus": 1})


def test_an_uploaded_photo_is_fitted_to_the_model_and_says_how() -> None:
    s = ExplorerSession()
    m = s.add_model("lenet5-simplified", pretrained=False)
    rgb = np.zeros((60, 100, 3), np.uint8)
    rgb[20:40, 40:60] = (255, 128, 0)
    x = s.add_input_bytes(_png(rgb), name="../../etc/photo.png")
    assert x.name == "photo.png" and x.info()["shape"] == [3, 60, 100]
    steps = s.fit_steps(m.id, x.id)
    assert any("channels 3 -> 1" in t for t in steps) and any("100x60 -> 28x28" in t for t in steps)
    assert any("normalised" in t for t in steps)
    fitted = s.fitted(m.id, x.id)
    assert tuple(fitted.shape) == (1, 1, 28, 28) and float(fitted.max()) > 0.3
    png = Image.open(io.BytesIO(s.input_png(x.id, model_id=m.id)))
    assert png.size == (28, 28)


def test_a_bgr_models_steps_say_the_channels_are_reversed() -> None:
    from convscope.models import InputSpec

    s = ExplorerSession()
    module = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    spec = InputSpec(shape=(3, 8, 8), channel_order="BGR", mean=(0.4, 0.45, 0.5), std=(0.2, 0.2, 0.2))
    m = s.add_model(convscope.load_model(module, input_spec=spec))
    x = s.add_input_bytes(_png(np.zeros((8, 8, 3), np.uint8)), name="photo.png")
    steps = s.fit_steps(m.id, x.id)
    assert [t for t in steps if "BGR" in t] == ["channels reversed, RGB -> BGR (the model's order)"]
    assert "BGR" in steps[-2] and "normalised" in steps[-1]


def test_a_sketch_is_framed_like_mnist_and_predicted() -> None:
    s = ExplorerSession()
    m = s.add_model("lenet5-simplified")  # trained on MNIST
    ink = Image.new("L", (280, 280))
    from PIL import ImageDraw

    ImageDraw.Draw(ink).line([(140, 40), (140, 240)], fill=255, width=24)  # a "1"
    buf = io.BytesIO()
    ink.convert("RGBA").save(buf, "PNG")
    x = s.add_input_bytes(buf.getvalue(), name="sketch.png", kind="sketch")
    assert x.kind == "sketch" and x.image.shape[0] == 1
    assert any("MNIST" in t for t in s.fit_steps(m.id, x.id))
    assert s.prediction(m.id, x.id)["predicted"] == 1


def test_uploads_are_bounded_named_safely_and_checked(model_files) -> None:
    s = ExplorerSession(limits=ExplorerLimits(max_models=2, max_image_bytes=1000, max_model_bytes=10_000))
    with pytest.raises(ServerError, match="over this session's limit") as big:
        s.add_model_bytes(b"x" * 10_001, filename="big.onnx")
    assert big.value.status_code == 413
    with pytest.raises(ServerError, match="over this session's limit"):
        s.add_input_bytes(b"x" * 1001)
    with pytest.raises(UnsupportedFormatError, match=r"'\.exe'"):
        s.add_model_bytes(b"MZ", filename="model.exe")
    with pytest.raises(ServerError, match="empty"):
        s.add_model_bytes(b"", filename="model.onnx")
    # an upload saved under another name: what its bytes look like, as the loader says it of a file
    with pytest.raises(UnsupportedFormatError, match=r"its content looks like an ONNX model: rename it to 'net\.onnx'"):
        ExplorerSession().add_model_bytes(model_files["onnx"].read_bytes(), filename="net.download")
    with pytest.raises(DataError, match="not a readable image"):
        s.add_input_bytes(b"\x89PNG garbage")
    s = ExplorerSession(limits=ExplorerLimits(max_models=2))
    m = s.add_model_bytes(model_files["onnx"].read_bytes(), filename="../../../outside/evil/../lenet.onnx")
    assert m.name == "lenet.onnx" and m.loaded.format == "onnx" and m.loaded.source == "upload:lenet.onnx"
    s.add_model("lenet5-simplified", pretrained=False)
    with pytest.raises(ServerError, match="limit") as full:
        s.add_model("lenet5-simplified", pretrained=False)
    assert full.value.status_code == 409
    s.remove_model(m.id)
    with pytest.raises(NotFoundError, match=m.id):
        s.model(m.id)


def test_captures_are_cached_per_input_and_freeze_set(session) -> None:
    s, m, a, b = session
    first = s.capture(m.id, a.id)[0]
    assert s.capture(m.id, a.id)[0] is first
    s.set_freeze(m.id, {"conv1": [1]})
    assert s.capture(m.id, a.id)[0] is not first
    s.set_freeze(m.id, {})
    assert s.capture(m.id, a.id)[0] is first
    s.remove_input(b.id)
    with pytest.raises(NotFoundError, match=b.id):
        s.capture(m.id, b.id)


def test_occlusion_on_a_big_input_takes_a_bounded_number_of_passes() -> None:
    # a fixed 4-pixel patch every 2 pixels is 111 x 111 = 12,321 forward passes on 224 x 224:
    # about an hour of VGG-16 on a laptop's CPU, with the session's lock held all along
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3, stride=4), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                              torch.nn.Flatten(), torch.nn.Linear(2, 3))
    s = ExplorerSession()
    m = s.add_model(convscope.load_model(net, input_shape=(3, 224, 224)))
    x = s.add_image(torch.rand(3, 224, 224))
    calls = []
    handle = net.register_forward_hook(lambda _m, inputs, _out: calls.append(int(inputs[0].shape[0])))
    try:
        out = s.saliency(m.id, x.id, method="occlusion")
    finally:
        handle.remove()
    assert (out["width"], out["height"]) == (224, 224)
    assert sum(calls) <= 20 * 20, sum(calls)  # about 16 x 16 patch positions, not 12,321


MEASURE_UPLOAD = """
import resource, sys
from convscope.explorer import ExplorerLimits, ExplorerSession
s = ExplorerSession(limits=ExplorerLimits(max_image_pixels=50_000_000))
s.add_input_bytes({small!r})  # warm: imports and a first decode
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
x = s.add_input_bytes(open(sys.argv[1], "rb").read(), name="big.png")
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(grown * 1024 if sys.platform != "darwin" else grown, *x.image.shape, *[step["op"] for step in x.steps])
"""


def test_a_big_upload_is_shrunk_while_decoded_in_bounded_memory(tmp_path) -> None:
    import subprocess
    import sys

    side = 7000  # 49 M pixels: the whole picture as float32 was 588 MB, and 1.1 GB with its copies
    ramp = np.linspace(0, 255, side, dtype=np.float32)
    grey = (np.add.outer(ramp, ramp) / 2).astype(np.uint8)
    path = tmp_path / "big.png"
    Image.fromarray(grey).convert("RGB").save(path, "PNG")
    del ramp, grey
    script = MEASURE_UPLOAD.replace("{small!r}", repr(_png(np.zeros((8, 8, 3), np.uint8))))
    out = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=120, check=True)
    grown, c, h, w, *ops = out.stdout.split()
    assert (int(c), int(h), int(w)) == (3, 1024, 1024) and ops == ["shrink", "scale"], out.stdout
    # PIL holds the 8-bit picture once (4 bytes a pixel: 196 MB); floats only of the 1024 x 1024 one
    assert int(grown) < 320 << 20, f"decoding grew the process by {int(grown) >> 20} MB"
    # and the session's own limit refuses it by default, naming its size and the limit
    with pytest.raises(ServerError, match=r"7000x7000 = 49,000,000 pixels, over this session's limit of 25,000,000") as big:
        ExplorerSession().add_input_bytes(path.read_bytes())
    assert big.value.status_code == 413


def test_freeze_takes_whole_numbers_only(session) -> None:
    s, m, _a, _b = session
    for bad in ("1", True, 1.5, 2.0):  # int() made each of these a filter index
        with pytest.raises(DataError, match=rf"filters to freeze are whole numbers; layer 'conv1' got {bad!r}"):
            s.set_freeze(m.id, {"conv1": [0, bad]})
    assert m.freeze == {}
    assert s.set_freeze(m.id, {"conv1": [np.int64(2), 1]}) == {"conv1": [1, 2]}


def test_an_attack_says_it_ran_without_the_freeze_and_what_the_frozen_model_predicts(session) -> None:
    s, m, a, _b = session
    plain = s.prediction(m.id, a.id)["predicted"]
    s.set_freeze(m.id, {"conv2": list(range(16))})
    frozen = s.prediction(m.id, a.id)["predicted"]
    assert frozen != plain  # the Prediction panel shows another class than the attack starts from
    made = s.adversarial(m.id, a.id, attack="fgsm", params={"eps": 0.2})
    adv = made.adversarial
    assert adv["original_prediction"] == plain and adv["freeze"] == {"conv2": list(range(16))}
    # what the frozen model predicts for both, as the page shows them when each is selected
    assert adv["with_freeze"] == {"original_prediction": frozen, "original_name": str(frozen),
                                  "prediction": s.prediction(m.id, made.id)["predicted"],
                                  "prediction_name": s.prediction(m.id, made.id)["predicted_name"]}
    assert "attacked without the model's frozen filters" in made.steps[0]["text"]
    s.set_freeze(m.id, {})
    assert adv["prediction"] == s.prediction(m.id, made.id)["predicted"]  # the attack's own "after": the model as it is
    again = s.adversarial(m.id, a.id, attack="fgsm", params={"eps": 0.2}).adversarial
    assert again["freeze"] == {} and again["with_freeze"] is None
    assert {k: again[k] for k in ("original_prediction", "prediction", "l2")} == {k: adv[k] for k in ("original_prediction", "prediction", "l2")}

"""Saliency maps: analytic on a hand-set model, complete (IG), localised on real digits."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import convscope
from convscope.analysis import saliency
from convscope.errors import DataError, LayerNotFoundError


def _linear_model() -> torch.nn.Module:
    """Two classes; class 1's logit is sum(w * x) with w known: its gradient is w."""
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2, bias=False))
    with torch.no_grad():
        net[1].weight.zero_()
        net[1].weight[1] = torch.linspace(-1, 1, 16)
    return net


def test_gradient_saliency_of_a_linear_model_is_its_weights() -> None:
    net = _linear_model()
    x = torch.rand(2, 1, 4, 4)
    r = saliency(net, x, method="gradient", target=1)
    expected = torch.linspace(-1, 1, 16).abs().view(4, 4)
    torch.testing.assert_close(r.maps[0], expected)
    torch.testing.assert_close(r.maps[1], expected)


def test_integrated_gradients_of_a_linear_model_is_weight_times_input_and_complete() -> None:
    net = _linear_model()
    x = torch.rand(1, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    r = saliency(net, x, method="integrated_gradients", target=1)
    torch.testing.assert_close(r.maps[0], (torch.linspace(-1, 1, 16).view(4, 4) * x[0, 0]), atol=1e-5, rtol=1e-4)
    with torch.no_grad():
        assert float(r.raw.sum()) == pytest.approx(float(net(x)[0, 1] - net(torch.zeros_like(x))[0, 1]), abs=1e-4)


@pytest.fixture(scope="module")
def lenet_and_digits():
    model = convscope.load_model("lenet5-simplified")
    data = convscope.load_dataset("mnist-5k", split="test")
    return model, data.images[:4]


def test_gradcam_and_occlusion_on_real_digits(lenet_and_digits) -> None:
    model, x = lenet_and_digits
    cam = saliency(model, x, method="gradcam")
    assert cam.layer == "conv2" and tuple(cam.maps.shape) == (4, 28, 28)
    assert float(cam.normalised.max()) == pytest.approx(1.0) and float(cam.maps.std()) > 0
    occ = saliency(model, x, method="occlusion", window=4, stride=2)
    assert tuple(occ.maps.shape) == (4, 28, 28)
    # blanking the most important patch hurts the predicted logit more than blanking a random one
    with torch.no_grad():
        logits = model.predict(x)
    target = torch.as_tensor(occ.target)
    for i in range(4):
        heat = occ.maps[i]
        r, c = divmod(int(heat.argmax()), 28)
        hit = x[i : i + 1].clone()
        hit[..., max(0, r - 2) : r + 2, max(0, c - 2) : c + 2] = 0
        corner = x[i : i + 1].clone()
        corner[..., 0:4, 0:4] = 0
        with torch.no_grad():
            drop_hit = float(logits[i, target[i]] - model.predict(hit)[0, target[i]])
            drop_corner = float(logits[i, target[i]] - model.predict(corner)[0, target[i]])
        assert drop_hit > drop_corner


def test_saliency_is_at_input_resolution_and_explains_the_prediction(lenet_and_digits) -> None:
    model, x = lenet_and_digits
    r = saliency(model, x, method="gradient")
    assert tuple(r.maps.shape) == (4, 28, 28)
    np.testing.assert_array_equal(r.target, model.predict(x).argmax(1).numpy())
    # the digit's strokes carry more attribution than the empty border
    ink = x[:, 0] > 0.5
    assert float(r.maps[ink].mean()) > float(r.maps[~ink].mean())


def test_clear_errors(lenet_and_digits) -> None:
    model, x = lenet_and_digits
    with pytest.raises(DataError, match="unknown saliency method"):
        saliency(model, x, method="magic")
    with pytest.raises(LayerNotFoundError):
        saliency(model, x, method="gradcam", layer="nope")
    with pytest.raises(DataError, match="target"):
        saliency(model, x, target=12)


class _TwoHeads(torch.nn.Module):
    """A model of two outputs (an ONNX model exported with two heads returns a list): the
    first is the one explained, the second must not get in the way."""

    def __init__(self) -> None:
        super().__init__()
        self.net = _linear_model()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.net(x)
        return logits, logits.sum(1, keepdim=True)


def test_a_model_of_several_outputs_is_explained_by_its_first(tmp_path) -> None:
    x = torch.rand(2, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    expected = saliency(_linear_model(), x, method="gradient", target=1).maps
    torch.testing.assert_close(saliency(_TwoHeads(), x, method="gradient", target=1).maps, expected)
    # and loaded from ONNX, where the module returns a list (checked against onnxruntime on load)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # (the TorchScript exporter needs no extra package)
        torch.onnx.export(_TwoHeads(), x[:1], str(tmp_path / "two.onnx"), opset_version=17, dynamo=False,
                          input_names=["x"], dynamic_axes={"x": {0: "n"}})
    loaded = convscope.load_model(tmp_path / "two.onnx", input_shape=(1, 4, 4))
    assert isinstance(loaded.module(x), list | tuple)
    for method in ("gradient", "integrated_gradients", "occlusion"):
        r = saliency(loaded, x, method=method, target=1, **({"window": 2, "stride": 2} if method == "occlusion" else {}))
        assert r.maps.shape == (2, 4, 4) and torch.isfinite(r.maps).all()
    torch.testing.assert_close(saliency(loaded, x, method="gradient", target=1).maps, expected, atol=1e-5, rtol=1e-4)

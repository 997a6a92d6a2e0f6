"""InputSpec: channel order and normalisation, checked against values worked out by hand."""

from __future__ import annotations

import pytest
import torch

import convscope
from convscope.errors import DataError
from convscope.models import InputSpec

# one pixel each of red, green and blue, in convscope's raw (RGB) order
RGB_PIXELS = torch.tensor([[[[1.0, 0.0, 0.0]], [[0.5, 1.0, 0.0]], [[0.25, 0.0, 1.0]]]])  # 1 x 3 x 1 x 3


def test_a_bgr_model_gets_blue_first_normalised_with_its_own_order_of_mean_and_std() -> None:
    spec = InputSpec(shape=(3, 1, 3), channel_order="BGR", mean=(0.1, 0.2, 0.3), std=(0.5, 0.25, 2.0))  # B, G, R
    x = spec.prepare(RGB_PIXELS)
    expected_bgr = torch.tensor([[[[0.25, 0.0, 1.0]], [[0.5, 1.0, 0.0]], [[1.0, 0.0, 0.0]]]])
    mean, std = torch.tensor([0.1, 0.2, 0.3]).view(1, 3, 1, 1), torch.tensor([0.5, 0.25, 2.0]).view(1, 3, 1, 1)
    torch.testing.assert_close(x, (expected_bgr - mean) / std)
    torch.testing.assert_close(spec.unprepare(x), RGB_PIXELS)  # back to raw RGB
    plain = InputSpec(shape=(3, 1, 3), channel_order="BGR")  # reversed even without normalisation
    torch.testing.assert_close(plain.prepare(RGB_PIXELS), expected_bgr)
    torch.testing.assert_close(plain.unprepare(expected_bgr), RGB_PIXELS)


def test_rgb_and_grey_specs_leave_the_channels_as_they_are() -> None:
    rgb = InputSpec(shape=(3, 1, 3), mean=(0.1, 0.2, 0.3), std=(0.5, 0.25, 2.0))
    mean, std = torch.tensor([0.1, 0.2, 0.3]).view(1, 3, 1, 1), torch.tensor([0.5, 0.25, 2.0]).view(1, 3, 1, 1)
    torch.testing.assert_close(rgb.prepare(RGB_PIXELS), (RGB_PIXELS - mean) / std)
    grey = InputSpec(shape=(1, 1, 3), channel_order="L", mean=(0.5,), std=(0.25,))
    torch.testing.assert_close(grey.prepare(RGB_PIXELS[:, :1]), torch.tensor([[[[2.0, -2.0, -2.0]]]]))
    lenet = convscope.load_model("lenet5-simplified", pretrained=False)
    assert lenet.input_spec.channel_order == "L" and lenet.predict(torch.rand(2, 1, 28, 28)).shape == (2, 10)


def test_a_bgr_models_predictions_see_the_channels_reversed() -> None:
    module = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())  # "logits" = channel means
    spec = InputSpec(shape=(3, 1, 3), channel_order="BGR")
    loaded = convscope.models.LoadedModel(module=module, graph=None, input_spec=spec, format="torch", source="test")  # type: ignore[arg-type]
    torch.testing.assert_close(loaded.predict(RGB_PIXELS), torch.tensor([[1.25 / 3, 0.5, 1.0 / 3]]))


@pytest.mark.parametrize("order", ["RBG", "rgb", "bgr", "GBR", "", "RGBA"])
def test_unknown_channel_orders_are_refused_with_the_known_ones(order: str) -> None:
    with pytest.raises(DataError, match=r"channel_order .* is not known; .*'RGB', 'BGR', 'L'"):
        InputSpec(shape=(3, 8, 8), channel_order=order)
    with pytest.raises(DataError, match="is not known"):
        InputSpec.from_dict({"shape": [3, 8, 8], "channel_order": order})


def test_a_channel_order_in_the_wrong_case_is_named_and_one_of_the_wrong_width_refused() -> None:
    with pytest.raises(DataError, match="did you mean 'BGR'"):
        InputSpec(shape=(3, 8, 8), channel_order="bgr")
    with pytest.raises(DataError, match=r"'BGR' needs 3 channel\(s\), but the input shape \(1, 8, 8\) has 1"):
        InputSpec(shape=(1, 8, 8), channel_order="BGR")
    with pytest.raises(DataError, match=r"'L' needs 1 channel\(s\)"):
        InputSpec(shape=(3, 8, 8), channel_order="L")
    assert InputSpec(shape=(1, 8, 8)).channel_order == "RGB"  # the default stays valid for grey models
    bgr = InputSpec(shape=(3, 8, 8), channel_order="BGR", mean=(104.0, 117.0, 123.0), std=(1.0, 1.0, 1.0))
    assert InputSpec.from_dict(bgr.to_dict()) == bgr


@pytest.mark.parametrize(
    ("kwargs", "said"),
    [
        ({"shape": (3, 8, 8), "mean": (0.5, 0.5), "std": (0.2,)}, "mean has 2 values for 3 channel"),
        ({"shape": (1, 8, 8), "mean": (0.5,), "std": (0.2, 0.2, 0.2)}, "std has 3 values for 1 channel"),
        ({"shape": (3, 8, 8), "mean": (0.5,), "std": (0.2, 0.0, 0.2)}, "std must be above 0"),
    ],
)
def test_a_mean_or_std_that_does_not_fit_the_channels_is_refused_when_the_spec_is_made(kwargs, said) -> None:
    # (before, only Dataset.prepare checked the lengths; predict() and the explorer broadcast or failed deep in torch)
    with pytest.raises(DataError, match=said):
        InputSpec(**kwargs)
    with pytest.raises(DataError, match=said):
        InputSpec.from_dict({**kwargs, "shape": list(kwargs["shape"])})
    assert InputSpec(shape=(3, 8, 8), mean=(0.5,), std=(0.25,)).prepare(torch.full((1, 3, 8, 8), 1.0)).unique().tolist() == [2.0]

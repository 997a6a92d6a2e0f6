"""Adversarial inputs through one interface, on the trained LeNet-5 and real digits."""

from __future__ import annotations

import numpy as np
import pytest

import convscope
from convscope.analysis import list_attacks, perturb
from convscope.errors import DataError


@pytest.fixture(scope="module")
def setup():
    model = convscope.load_model("lenet5-simplified")
    data = convscope.load_dataset("mnist-5k", split="test")
    x, y = data.images[:100], data.labels[:100]
    correct = model.predict(x).argmax(1) == y
    return model, x[correct], y[correct]


@pytest.mark.slow
def test_pgd_at_eps_03_fools_nearly_every_digit(setup) -> None:
    model, x, _ = setup
    r = perturb(model, x, attack="pgd", eps=0.3)
    assert r.success_rate > 0.9
    assert float(r.linf.max()) <= 0.3 + 1e-5
    assert float(r.adversarial.min()) >= 0 and float(r.adversarial.max()) <= 1
    np.testing.assert_array_equal(r.adversarial_prediction, model.predict(r.adversarial).argmax(1).numpy())
    print(f"\nPGD eps 0.3: success {r.success_rate:.1%} of {len(x)} correctly classified digits, median L2 {np.median(r.l2):.2f}")


def test_fgsm_reports_success_and_norms(setup) -> None:
    model, x, y = setup
    for eps in (0.1, 0.3):
        r = perturb(model, x[:32], attack="fgsm", eps=eps)
        assert float(r.linf.max()) <= eps + 1e-5 and (r.l2 > 0).all()
        np.testing.assert_array_equal(r.original_prediction, y[:32].numpy())
        assert r.success.dtype == bool and r.success_rate == pytest.approx(float((r.adversarial_prediction != r.original_prediction).mean()))
        print(f"\nFGSM eps {eps}: success {r.success_rate:.1%}, median L2 {np.median(r.l2):.2f}")


def test_targeted_pgd_reaches_its_target(setup) -> None:
    model, x, _ = setup
    r = perturb(model, x[:12], attack="pgd", eps=0.3, target=3)
    assert r.success_rate > 0.9 and (r.adversarial_prediction[r.success] == 3).all()


@pytest.mark.slow
@pytest.mark.parametrize("attack,params", [("deepfool", {"max_iter": 20}), ("cw", {}), ("pixel", {"max_iter": 3})])
def test_the_other_attacks_run_and_report(setup, attack: str, params: dict) -> None:
    model, x, _ = setup
    n = 2 if attack == "pixel" else 6
    r = perturb(model, x[:n], attack=attack, **params)
    assert r.adversarial.shape == x[:n].shape and r.l2.shape == (n,)
    np.testing.assert_array_equal(r.adversarial_prediction, model.predict(r.adversarial).argmax(1).numpy())
    if attack != "pixel":
        assert r.success_rate >= 0.5
    changed = r.l2 > 0
    assert changed[r.success].all()


def test_clear_errors(setup) -> None:
    model, x, _ = setup
    assert set(list_attacks()) == {"fgsm", "pgd", "deepfool", "cw", "pixel"}
    # (the page offers each parameter with what it does: "th" and "es" said nothing)
    assert all(set(spec["params"]) == set(spec["defaults"]) and all(spec["params"].values()) for spec in list_attacks().values())
    with pytest.raises(DataError, match="unknown attack"):
        perturb(model, x[:2], attack="nope")
    with pytest.raises(DataError, match="no parameters"):
        perturb(model, x[:2], attack="fgsm", steps=3)
    with pytest.raises(DataError, match="target"):
        perturb(model, x[:2], attack="deepfool", target=1)
    with pytest.raises(DataError, match="raw images"):
        perturb(model, model.input_spec.prepare(x[:2]), attack="fgsm")
    with pytest.raises(DataError, match="eps"):
        perturb(model, x[:2], attack="fgsm", eps=3.0)


def test_a_model_of_several_outputs_is_attacked_on_its_first(setup) -> None:
    import dataclasses

    import torch

    model, x, _ = setup

    class TwoHeads(torch.nn.Module):  # (an ONNX model of two heads returns a list)
        def __init__(self) -> None:
            super().__init__()
            self.inner = model.module

        def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
            logits = self.inner(x)
            return [logits, logits.softmax(1)]

    two = dataclasses.replace(model, module=TwoHeads())
    single = perturb(model, x[:8], attack="fgsm", eps=0.2)
    r = perturb(two, x[:8], attack="fgsm", eps=0.2)
    np.testing.assert_array_equal(r.original_prediction, single.original_prediction)
    np.testing.assert_allclose(r.adversarial.numpy(), single.adversarial.numpy(), atol=1e-6)


def test_a_bgr_model_is_attacked_on_the_input_it_is_fed() -> None:
    """A BGR model (``channel_order="BGR"``) takes RGB images reversed, then normalised with its
    own (blue-first) statistics, as ``spec.prepare`` does: the attacks feed it the same."""
    import torch

    from convscope.models import InputSpec

    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 2, 1, bias=False)
    with torch.no_grad():  # class 0 reads the model's first channel (blue), class 1 its last (red)
        conv.weight.zero_()
        conv.weight[0, 0] = 1.0
        conv.weight[1, 2] = 1.0
    module = torch.nn.Sequential(conv, torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    spec = InputSpec(shape=(3, 4, 4), channel_order="BGR", mean=(0.0, 0.5, 0.9), std=(1.0, 1.0, 0.5))
    model = convscope.load_model(module, input_spec=spec)
    x = torch.rand(8, 3, 4, 4)
    x[:4, 2] = 1.0  # blue images: class 0 (red reads 2 * (r - 0.9) < 0.2 < blue)
    x[:4, 0] = 0.0
    x[4:, 0] = 1.0  # red images: class 1 (blue, raw)
    x[4:, 2] = 0.0
    expected = model.predict(x).argmax(1).numpy()
    assert expected.tolist() == [0] * 4 + [1] * 4
    r = perturb(model, x, attack="fgsm", eps=0.01)
    np.testing.assert_array_equal(r.original_prediction, expected)
    np.testing.assert_array_equal(r.adversarial_prediction, model.predict(r.adversarial).argmax(1).numpy())

"""Capture: layer outputs, gradients, freeze masks; hooks always removed."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn
from hypothesis import given, settings
from hypothesis import strategies as st

import convscope
from convscope.capture import Recorder
from convscope.errors import DataError, LayerNotFoundError


@pytest.fixture(scope="module")
def lenet() -> convscope.LoadedModel:
    torch.manual_seed(0)
    return convscope.load_model("lenet5-simplified", pretrained=False)


@pytest.fixture(scope="module")
def batch() -> torch.Tensor:
    return torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(1))


def _no_hooks(model: nn.Module) -> bool:
    return all(
        not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks and not m._backward_pre_hooks
        for m in model.modules()
    )


def test_default_records_every_leaf_layer(lenet: convscope.LoadedModel, batch: torch.Tensor) -> None:
    r = convscope.capture(lenet, batch)
    assert list(r.outputs) == [layer for layer in lenet.graph.layer_ids()]
    for lid, out in r.outputs.items():
        assert tuple(out.shape[1:]) == lenet.graph.layer(lid).output_shape
    torch.testing.assert_close(r.logits, lenet.module(batch), rtol=0, atol=0)
    assert torch.equal(r.outputs["fc2"], r.logits)


def _zeroed_by_hand(model: nn.Module, layer: str, idx: list[int]) -> nn.Module:
    clone = copy.deepcopy(model)
    mod = dict(clone.named_modules())[layer]
    with torch.no_grad():
        mod.weight[idx] = 0
        mod.bias[idx] = 0
    return clone


@pytest.mark.parametrize(("layer", "idx"), [("conv1", [3]), ("conv2", [0, 7, 31]), ("fc1", [5, 100])])
def test_freeze_equals_zeroing_weights_at_every_later_layer(
    lenet: convscope.LoadedModel, batch: torch.Tensor, layer: str, idx: list[int]
) -> None:
    frozen = convscope.capture(lenet, batch, freeze={layer: idx})
    by_hand = convscope.capture(_zeroed_by_hand(lenet.module, layer, idx), batch)
    later = lenet.graph.layer_ids()[lenet.graph.layer_ids().index(layer) :]
    for lid in later:
        torch.testing.assert_close(frozen.outputs[lid], by_hand.outputs[lid], rtol=1e-6, atol=1e-6)
    assert float(frozen.outputs[layer][:, idx].abs().sum()) == 0.0
    plain = convscope.capture(lenet, batch)
    assert not torch.allclose(plain.logits, frozen.logits)  # the change travels to the prediction


@settings(max_examples=25, deadline=None)
@given(
    layer=st.sampled_from(["conv1", "conv2"]),
    picks=st.lists(st.integers(min_value=0, max_value=15), max_size=6),
)
def test_freeze_property(lenet: convscope.LoadedModel, batch: torch.Tensor, layer: str, picks: list[int]) -> None:
    plain = convscope.capture(lenet, batch)
    frozen = convscope.capture(lenet, batch, freeze={layer: picks})
    if not picks:  # freezing nothing changes nothing
        for lid in plain.outputs:
            assert torch.equal(plain.outputs[lid], frozen.outputs[lid])
        return
    by_hand = convscope.capture(_zeroed_by_hand(lenet.module, layer, sorted(set(picks))), batch)
    torch.testing.assert_close(frozen.logits, by_hand.logits, rtol=1e-5, atol=1e-5)
    # Layers before the frozen one never change.
    for lid in lenet.graph.layer_ids()[: lenet.graph.layer_ids().index(layer)]:
        assert torch.equal(plain.outputs[lid], frozen.outputs[lid])


def test_gradients_match_autograd_and_model_state_is_restored(lenet: convscope.LoadedModel, batch: torch.Tensor) -> None:
    net = lenet.module
    net.fc2.weight.requires_grad_(False)
    sentinel = torch.full_like(net.conv1.weight, 7.0)
    net.conv1.weight.grad = sentinel
    net.train()
    try:
        r = convscope.capture(lenet, batch, input_grad=True, param_grads=True, target=3)
        x = batch.clone().requires_grad_(True)
        net.eval()
        out = net(x)[:, 3].sum()
        (gx,) = torch.autograd.grad(out, [x])
        torch.testing.assert_close(r.input_grad, gx)
        gw = torch.autograd.grad(net(batch)[:, 3].sum(), [net.conv2.weight])[0]
        torch.testing.assert_close(r.param_grads["conv2.weight"], gw)
        assert set(r.param_grads) == {n for n, _ in net.named_parameters()}
        assert r.targets is not None and r.targets.tolist() == [3, 3, 3, 3]
    finally:
        net.eval()
    # Restored: the flag we set, the .grad we planted (same object), and the mode we ran in.
    assert net.fc2.weight.requires_grad is False
    assert net.conv1.weight.grad is sentinel
    net.fc2.weight.requires_grad_(True)
    net.conv1.weight.grad = None


def test_train_mode_is_restored(lenet: convscope.LoadedModel, batch: torch.Tensor) -> None:
    lenet.module.train()
    try:
        convscope.capture(lenet, batch)
        assert lenet.module.training
    finally:
        lenet.module.eval()


def test_no_hook_left_after_normal_use(lenet: convscope.LoadedModel, batch: torch.Tensor) -> None:
    convscope.capture(lenet, batch, freeze={"conv1": [1]}, input_grad=True, param_grads=True)
    assert _no_hooks(lenet.module)


def test_no_hook_left_after_bad_layer_name(lenet: convscope.LoadedModel, batch: torch.Tensor) -> None:
    with pytest.raises(LayerNotFoundError, match=r"'conv9'.*conv1"):
        convscope.capture(lenet, batch, layers=["conv1", "conv9"])
    with pytest.raises(LayerNotFoundError):
        convscope.capture(lenet, batch, freeze={"nope": [0]})
    assert _no_hooks(lenet.module)


def test_no_hook_left_after_a_layer_raises() -> None:
    class Boom(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("boom")

    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), Boom())
    with pytest.raises(RuntimeError, match="boom"):
        Recorder(net, freeze={"0": [1]}).run(torch.zeros(1, 1, 5, 5), input_grad=True)
    assert _no_hooks(net)
    assert all(p.grad is None for p in net.parameters())


def test_one_layer_named_alone_and_inputs_that_are_no_tensor(lenet: convscope.LoadedModel, batch: torch.Tensor) -> None:
    # (a str is not read as one-letter layer ids; a list of numbers is not fed to the model)
    assert list(convscope.capture(lenet, batch, layers="conv2").outputs) == ["conv2"]
    with pytest.raises(DataError, match="inputs are one batch as a torch.Tensor .*got list"):
        convscope.capture(lenet, batch.tolist())
    assert _no_hooks(lenet.module)


@pytest.mark.parametrize("freeze", [{"conv1": "x"}, {"conv1": 0.5}, {"conv1": [True]}, [0]])
def test_a_freeze_that_is_no_filter_list_is_a_clear_error(lenet: convscope.LoadedModel, batch: torch.Tensor, freeze) -> None:
    with pytest.raises(DataError, match=r"freeze(\['conv1'\])?= is|freeze\['conv1'\] is a list of filter indices"):
        convscope.capture(lenet, batch, freeze=freeze)
    assert _no_hooks(lenet.module)


def test_one_filter_alone_or_a_generator_of_them_is_frozen(lenet: convscope.LoadedModel, batch: torch.Tensor) -> None:
    assert convscope.capture(lenet, batch, freeze={"conv1": 2}).frozen == {"conv1": [2]}
    assert convscope.capture(lenet, batch, freeze={"conv1": (i for i in (3, 0, 3))}).frozen == {"conv1": [0, 3]}


def test_bad_freeze_index_is_a_clear_error(lenet: convscope.LoadedModel, batch: torch.Tensor) -> None:
    with pytest.raises(DataError, match=r"filters \[16\] of layer 'conv1'.*16 output channels"):
        convscope.capture(lenet, batch, freeze={"conv1": [16]})
    assert _no_hooks(lenet.module)


def test_plain_module_and_repeated_calls() -> None:
    class Shared(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(3, 3)
            self.act = nn.ReLU()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.act(self.a(self.act(x)))

    net = Shared()
    x = torch.tensor([[-1.0, 2.0, -3.0]])
    r = Recorder(net, layers=["act", "act#2"], freeze={"act": [1]}).run(x)
    assert r.outputs["act"].tolist() == [[0.0, 0.0, 0.0]]  # first call, channel 1 frozen
    assert torch.equal(r.outputs["act#2"], torch.relu(net.a(torch.zeros(1, 3))).detach())

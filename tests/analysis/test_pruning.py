"""Pruning plans from correlation groups, and structural pruning that keeps an optimizer working."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import convscope
from convscope.analysis import plan_pruning, prune_filters
from convscope.analysis.pruning import unprunable
from convscope.errors import DataError, LayerNotFoundError
from convscope.models.zoo import load_zoo_model


def test_plan_keeps_the_most_central_member_of_each_group() -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(size=(3, 500))
    maps = np.stack([base[0], base[0] + 0.1 * rng.normal(size=500), base[0] + 0.3 * rng.normal(size=500),
                     base[1], base[1] + 0.05 * rng.normal(size=500), base[2]])
    corr = np.corrcoef(maps)
    labels = [0, 0, 0, 1, 1, -1]
    remove = plan_pruning(labels, corr)
    # independent check: per group, the kept one has the largest summed correlation with its group
    for members in ([0, 1, 2], [3, 4]):
        kept = [m for m in members if m not in remove]
        assert len(kept) == 1
        sums = {m: sum(corr[m, o] for o in members if o != m) for m in members}
        assert kept[0] == max(sums, key=sums.get)
    assert 5 not in remove
    assert len(plan_pruning(labels, corr, min_keep=2)) == 1  # only the group of three loses one
    with pytest.raises(DataError):
        plan_pruning([0, 0], np.eye(3))


def _digits(n: int = 64):
    spec = load_zoo_model("lenet5-simplified", pretrained=False).input_spec
    data = convscope.load_dataset("mnist-5k", spec=spec)
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(1))[:n]
    return data.images[order], data.labels[order]


def test_pruned_model_equals_the_original_with_those_filters_frozen() -> None:
    loaded = load_zoo_model("lenet5-simplified")  # trained
    x, _ = _digits(16)
    frozen = convscope.capture(loaded, x, layers=["fc2"], freeze={"conv1": [2, 5, 11]}).outputs["fc2"]
    before = sum(p.numel() for p in loaded.module.parameters())
    result = prune_filters(loaded.module, {"conv1": [11, 2, 5]}, example_inputs=x[:1])
    assert loaded.module.conv1.out_channels == 13 and loaded.module.conv2.in_channels == 13
    assert result.removed == {"conv1": [2, 5, 11]} and len(result.kept["conv1"]) == 13
    assert result.params_before == before
    assert result.params_after == before - 3 * (9 + 1) - 3 * 32 * 9
    with torch.no_grad():
        out = loaded.module(x)
    torch.testing.assert_close(out, frozen, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("make_opt", [
    lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9),
    lambda p: torch.optim.Adam(p, lr=1e-3),
], ids=["sgd-momentum", "adam"])
def test_online_pruning_mends_the_optimizer_and_training_goes_on(make_opt) -> None:
    torch.manual_seed(0)
    model = load_zoo_model("lenet5-simplified", pretrained=False).module.train()
    opt = make_opt(model.parameters())
    x, y = _digits(256)

    def step(i: int) -> float:
        xb, yb = x[i % 8 * 32 : i % 8 * 32 + 32], y[i % 8 * 32 : i % 8 * 32 + 32]
        loss = torch.nn.functional.cross_entropy(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    for i in range(5):
        step(i)
    old_w = model.conv1.weight
    old_state = {k: v.clone() for k, v in opt.state[old_w].items() if isinstance(v, torch.Tensor)}
    result = prune_filters(model, {"conv1": [0, 7]}, example_inputs=x[:1], optimizer=opt)
    assert not result.reset_state and "conv1.weight" in result.changed and "conv2.weight" in result.changed
    params = [p for g in opt.param_groups for p in g["params"]]
    assert all(any(q is p for p in params) for q in model.parameters()) and len(params) == len(list(model.parameters()))
    for p in model.parameters():
        for v in opt.state[p].values():
            if isinstance(v, torch.Tensor) and v.dim() > 0:
                assert v.shape == p.shape
    keep = [i for i in range(16) if i not in (0, 7)]
    for key, value in opt.state[model.conv1.weight].items():
        if value.dim() > 0:
            torch.testing.assert_close(value, old_state[key][keep])
    losses = [step(i) for i in range(5, 60)]
    assert np.isfinite(losses).all()
    assert np.mean(losses[-10:]) < np.mean(losses[:10])


def test_clear_errors() -> None:
    model = load_zoo_model("lenet5-simplified", pretrained=False).module
    x = torch.zeros(1, 1, 28, 28)
    with pytest.raises(LayerNotFoundError):
        prune_filters(model, {"nope": [0]}, example_inputs=x)
    with pytest.raises(DataError, match="all its"):
        prune_filters(model, {"conv1": list(range(16))}, example_inputs=x)
    with pytest.raises(DataError, match="cannot remove"):
        prune_filters(model, {"conv1": [16]}, example_inputs=x)
    with pytest.raises(DataError, match="only conv and dense"):
        prune_filters(model, {"relu1": [0]}, example_inputs=x)


@pytest.mark.parametrize(("groups", "outputs", "layer"), [(4, 8, "2"), (2, 8, "2"), (4, 8, "0"), (4, 16, "0")])
def test_pruning_that_reaches_a_grouped_conv_is_refused_before_anything_changes(groups, outputs, layer) -> None:
    # Torch-Pruning slices a grouped conv's channels as if it had one group: the filters it kept
    # read other inputs than before (outputs 0.95 off), or its weight lost every input
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, outputs, 3, padding=1, groups=groups))
    x = torch.randn(2, 3, 8, 8)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    with pytest.raises(DataError, match=rf"pruning '{layer}' would change '2', a conv of {groups} groups"):
        prune_filters(net, {layer: [0, 1, 3, 4]}, example_inputs=x[:1])
    assert all(torch.equal(state[k], v) for k, v in net.state_dict().items())
    assert net(x).shape == (2, outputs, 8, 8)


def test_a_depthwise_conv_is_pruned_with_the_layer_that_feeds_it() -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 8, 3, padding=1, groups=8))
    x = torch.randn(2, 3, 8, 8)
    before = net(x).detach()
    prune_filters(net, {"2": [0, 1, 3, 4]}, example_inputs=x[:1])
    torch.testing.assert_close(net(x), before[:, [2, 5, 6, 7]])


def test_unprunable_names_the_layers_whose_pruning_reaches_a_grouped_conv_or_the_output() -> None:
    # 0 feeds 2 (4 groups), 2 feeds 4, 4 feeds 6 (depthwise), 6 feeds 8 (1x1), whose filters are the output
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 8, 3, padding=1, groups=4), torch.nn.ReLU(),
        torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 8, 3, padding=1, groups=8), torch.nn.ReLU(),
        torch.nn.Conv2d(8, 2, 1),
    ).train()
    net[6].eval()  # (a module kept in eval mode on purpose stays so)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    why = unprunable(net, ["0", "2", "4", "6", "8"], example_inputs=torch.zeros(1, 3, 8, 8))
    grouped = "its pruning would change '2', a conv of 4 groups (8 inputs, 8 filters), whose groups cannot lose channels one by one"
    # 4 and 6 lose the same filters (a depthwise conv keeps one per input): both can be pruned
    assert why == {"0": grouped, "2": grouped, "8": "its filters are the model's output, which would change shape"}
    assert [m.training for m in net] == [True] * 6 + [False, True, True]
    assert all(torch.equal(state[k], v) for k, v in net.state_dict().items()) and net[6].groups == 8
    with pytest.raises(DataError, match="only conv and dense"):
        unprunable(net, ["1"], example_inputs=torch.zeros(1, 3, 8, 8))


def test_pruning_leaves_every_module_in_the_mode_it_was_in() -> None:
    # Torch-Pruning's trace put the whole model in eval mode and left it there: a model pruned
    # while it trained went on with dropout off and batch norm frozen
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(), torch.nn.Dropout(), torch.nn.Conv2d(4, 2, 3)
    ).train()
    net[1].eval()
    prune_filters(net, {"0": [1]}, example_inputs=torch.zeros(1, 1, 8, 8))
    assert net.training and [m.training for m in net] == [True, False, True, True, True]


def test_the_tensorview_case_four_of_sixteen_conv1_filters() -> None:
    model = load_zoo_model("lenet5-simplified").module
    result = prune_filters(model, {"conv1": [1, 4, 5, 6]}, example_inputs=torch.zeros(1, 1, 28, 28))
    assert model.conv1.out_channels == 12 and model.conv1.weight.shape == (12, 1, 3, 3)
    assert model.conv2.in_channels == 12 and model.conv2.weight.shape == (32, 12, 3, 3)
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    assert result.kept["conv1"] == [0, 2, 3, 7, 8, 9, 10, 11, 12, 13, 14, 15]

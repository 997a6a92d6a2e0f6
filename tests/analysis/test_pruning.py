"""Pruning plans from correlation groups, and structural pruning that keeps an optimizer working."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pruning_models import Joined, Reordered, Shortcut, SpatialAttention, TutorialNet

import convscope
from convscope.analysis import plan_pruning, prune_filters, unprunable
from convscope.analysis.pruning import breaks_forward
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



def test_pruned_model_with_batch_norm_equals_the_original_with_those_channels_silenced() -> None:
    # a batch norm after the pruned conv loses the same channels (its weight, bias and running
    # statistics): the pruned model, in eval mode, is the original with the normalised maps of
    # those channels set to zero (freezing the filters would leave the norm's shift, not zero)
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 6, 3), torch.nn.BatchNorm2d(6), torch.nn.ReLU(), torch.nn.Conv2d(6, 4, 3),
        torch.nn.BatchNorm2d(4), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(4 * 4 * 4, 3),
    )
    with torch.no_grad():  # statistics, scales and shifts that differ channel by channel
        for bn in (net[1], net[4]):
            bn.running_mean.uniform_(-1, 1), bn.running_var.uniform_(0.5, 2)
            bn.weight.uniform_(0.5, 1.5), bn.bias.uniform_(-0.5, 0.5)
    net.eval()
    x = torch.randn(5, 3, 8, 8)

    def silenced(bn: torch.nn.Module, channels: list[int]):
        def hook(module, args, out):
            out = out.clone()
            out[:, channels] = 0
            return out
        return bn.register_forward_hook(hook)

    handles = [silenced(net[1], [0, 4]), silenced(net[4], [2])]
    with torch.no_grad():
        expected = net(x)
    for h in handles:
        h.remove()
    result = prune_filters(net, {"0": [4, 0], "3": [2]}, example_inputs=x[:1])
    assert net[1].num_features == 4 and net[4].num_features == 3 and result.inputs == {"3": [0, 4], "7": list(range(32, 48))}
    with torch.no_grad():
        torch.testing.assert_close(net(x), expected, rtol=1e-5, atol=1e-5)


def _train_step(model: torch.nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> float:
    """One training step on ``x, y``; its loss."""
    loss = torch.nn.functional.cross_entropy(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss.item()


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
        return _train_step(model, opt, x[i % 8 * 32 : i % 8 * 32 + 32], y[i % 8 * 32 : i % 8 * 32 + 32])

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
    with pytest.raises(DataError, match=rf"'{layer}' cannot be pruned: its pruning would change '2', a conv of {groups} groups \(8 inputs, {outputs} filters\), whose groups cannot lose channels one by one \(depthwise convs"):
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
    grouped = "its pruning would change '2', a conv of 4 groups (8 inputs, 8 filters), whose groups cannot lose channels one by one (depthwise convs, one filter per input, can be pruned)"
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


class _TwoHeads(torch.nn.Module):
    """``stem`` (3 -> 6, its maps cropped to 6 x 6) feeds ``body`` (6 -> 8), whose 8 channels ``cut``
    splits in two parts of 4, read by the heads ``left`` and ``right`` (4 -> 4 each); the heads'
    maps are joined, pooled, flattened and read by ``fc`` (8 -> 3)."""

    def __init__(self, cut) -> None:
        super().__init__()
        self.cut = cut
        self.stem = torch.nn.Conv2d(3, 6, 3, padding=1)
        self.body = torch.nn.Conv2d(6, 8, 3, padding=1)
        self.left = torch.nn.Conv2d(4, 4, 3, padding=1)
        self.right = torch.nn.Conv2d(4, 4, 3, padding=1)
        self.fc = torch.nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.stem(x))[:, :, 1:-1, 1:-1]  # (a slice of rows and columns, not of channels)
        a, b = self.cut(torch.relu(self.body(h)))
        z = torch.cat([torch.relu(self.left(a)), torch.relu(self.right(b))], 1)
        return self.fc(torch.flatten(torch.nn.functional.adaptive_avg_pool2d(z, 1), 1))


_CUTS = {
    "torch.chunk": (lambda y: torch.chunk(y, 2, dim=1), "torch.split or torch.chunk"),
    "torch.split": (lambda y: torch.split(y, 4, dim=1), "torch.split or torch.chunk"),
    "split-sizes": (lambda y: y.split([4, 4], 1), "torch.split or torch.chunk"),
    "chunk-dim-minus-3": (lambda y: y.chunk(2, -3), "torch.split or torch.chunk"),
    "slices": (lambda y: (y[:, :4], y[:, 4:]), "a slice of channels"),
    "view": (lambda y: y.view(len(y), 2, 4, *y.shape[2:]).unbind(1), "a view or reshape of (8, 6, 6) as (2, 4, 6, 6) per sample, unbind"),
    # channels last (NHWC) for the cut, and back: unprunable() said these prunable, and only the
    # trial prune's forward pass caught them (where the sizes still fit, it read other channels)
    "chunk-after-permute": (
        lambda y: tuple(p.permute(0, 3, 1, 2) for p in y.permute(0, 2, 3, 1).chunk(2, dim=3)),
        "torch.split or torch.chunk after a permute",
    ),
    "slices-after-transpose": (
        lambda y: (y.transpose(1, 3)[..., :4].transpose(1, 3), y.transpose(1, 3)[..., 4:].transpose(1, 3)),
        "a slice of channels after a permute",
    ),
}


@pytest.mark.parametrize("cut", list(_CUTS))
def test_a_layer_whose_channels_are_split_in_forward_is_refused_before_anything_changes(cut) -> None:
    # Torch-Pruning mapped body's lost filters 0 and 1 onto left's inputs, but the split's sizes
    # are written in forward: the pruned model raised at its next forward pass (or, chunked,
    # gave left 3 channels that it no longer had)
    torch.manual_seed(0)
    fn, said = _CUTS[cut]
    net = _TwoHeads(fn)
    x = torch.randn(2, 3, 8, 8)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    with pytest.raises(DataError) as caught:
        prune_filters(net, {"left": [3], "body": [0, 1]}, example_inputs=x[:1])
    assert str(caught.value) == (
        f"'body' cannot be pruned: its channels are split in forward ({said}), in sizes that the code fixes "
        "and pruning cannot change; prune the layers that read the parts instead"
    )
    assert all(torch.equal(state[k], v) for k, v in net.state_dict().items())  # (left kept its filters too)
    assert net(x).shape == (2, 3)


@pytest.mark.parametrize("cut", list(_CUTS))
def test_unprunable_refuses_only_the_layers_whose_channels_reach_a_split(cut) -> None:
    fn, said = _CUTS[cut]
    net = _TwoHeads(fn)
    x = torch.randn(2, 3, 8, 8)
    why = unprunable(net, ["stem", "body", "left", "right", "fc"], example_inputs=x[:1])
    assert why == {
        "body": f"its channels are split in forward ({said}), in sizes that the code fixes and pruning cannot change; "
        "prune the layers that read the parts instead",
        "fc": "its filters are the model's output, which would change shape",
    }
    # stem feeds body's inputs, and the heads' channels are joined (a cat) and flattened: all prune
    prune_filters(net, {"stem": [0], "left": [1, 2], "right": [3]}, example_inputs=x[:1])
    assert (net.body.in_channels, net.left.out_channels, net.right.out_channels, net.fc.in_features) == (5, 2, 3, 5)
    assert net(x).shape == (2, 3)


#: ops that lay body's maps out channels last and back, cropping rows, columns or tokens on the
#: way, none of them channels: body's filters, the images' size, the op
_CROPS = {
    # 16 x 16 maps of 16 filters: the crop's dim is as long as the channels, and unprunable()
    # took a cut of any dim that long for a cut of them
    "rows-after-permute": (16, 16, lambda y: y.permute(0, 2, 3, 1)[:, 1:-1].permute(0, 3, 1, 2)),
    "row-halves-swapped-after-permute": (
        16, 16, lambda y: torch.cat(y.permute(0, 2, 3, 1).chunk(2, dim=1)[::-1], 1).permute(0, 3, 1, 2),
    ),
    "columns-after-transpose": (16, 16, lambda y: y.transpose(1, 3)[:, 2:].transpose(1, 3)),
    "columns-after-movedim": (16, 16, lambda y: y.movedim(1, -1).narrow(2, 0, 12).movedim(-1, 1)),
    "tokens-after-reshape": (
        16, 16, lambda y: y.permute(0, 2, 3, 1).reshape(len(y), 256, -1)[:, 16:].transpose(1, 2).reshape(len(y), -1, 15, 16),
    ),
    # 6 x 6 maps of 8 filters: Torch-Pruning mapped the pruned filters 2 and 5 through the crop of
    # rows 1..4 (dim 1, as a crop of channels) to head's inputs 1 and 4, a silently different model
    "rows-after-permute-of-8": (8, 6, lambda y: y.permute(0, 2, 3, 1)[:, 1:-1].permute(0, 3, 1, 2)),
}


@pytest.mark.parametrize("crop", list(_CROPS))
def test_a_crop_in_channels_last_layout_is_no_cut_of_channels_and_prunes_the_right_inputs(crop) -> None:
    filters, size, op = _CROPS[crop]
    torch.manual_seed(0)
    net, x = Reordered(op, filters=filters, size=size), torch.randn(2, 3, size, size)
    removed = [0, 5, 15] if filters == 16 else [2, 5]
    # the unpruned model with those filters frozen (their maps zeroed): what head gives from the others
    frozen = convscope.capture(net, x, layers=["head"], freeze={"body": removed}).outputs["head"]
    assert unprunable(net, ["body"], example_inputs=x[:1]) == {}
    result = prune_filters(net, {"body": removed}, example_inputs=x[:1])
    kept = filters - len(removed)
    assert (net.body.out_channels, net.head.in_channels) == (kept, kept) and result.inputs == {"head": removed}
    with torch.no_grad():
        out = net(x)
    assert out.shape == frozen.shape
    torch.testing.assert_close(out, frozen, rtol=1e-5, atol=1e-5)


class _Crop(torch.nn.Module):
    """Time steps 2 on of a conv1d's output (N x C x L)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, 2:]


def test_a_crop_of_a_conv1d_output_prunes_the_right_inputs() -> None:
    # (N, C, L) cropped along L, dim 2: Torch-Pruning mapped the pruned filters through it as
    # through a cut of channels, and the pruned model raised
    net = torch.nn.Sequential(torch.nn.Conv1d(3, 8, 3), torch.nn.ReLU(), _Crop(), torch.nn.Conv1d(8, 2, 1))
    x = torch.randn(2, 3, 12)
    frozen = convscope.capture(net, x, layers=["3"], freeze={"0": [0, 2]}).outputs["3"]
    assert prune_filters(net, {"0": [0, 2]}, example_inputs=x[:1]).inputs == {"3": [0, 2]}
    torch.testing.assert_close(net(x), frozen, rtol=1e-5, atol=1e-5)


#: ops that cut the channels in channels-last layout, where the maps are as tall and as wide as
#: there are channels (16 x 16 maps of 16 filters), and how the refusal says the cut
_CHANNEL_CUTS = {
    "slice-after-permute": (lambda y: y.permute(0, 2, 3, 1)[..., 2:].permute(0, 3, 1, 2), "a slice of channels after a permute"),
    "chunk-after-transpose": (
        lambda y: y.transpose(1, 3).chunk(2, dim=3)[0].transpose(1, 3), "torch.split or torch.chunk after a permute",
    ),
    "index-after-movedim": (lambda y: y.movedim(1, 2)[:, :, [0, 3, 4]].movedim(2, 1), "an index of channels after a permute"),
    # (each pixel's channels in a row: a view back as channels first reads rows as channels)
    "flatten-after-permute": (
        lambda y: y.permute(0, 2, 3, 1).flatten(1).view(len(y), 16, 16, 16),
        "a view or reshape of (16, 16, 16) as (4096,) per sample",
    ),
}


@pytest.mark.parametrize("cut", list(_CHANNEL_CUTS))
def test_a_cut_of_channels_in_channels_last_layout_is_refused(cut) -> None:
    op, said = _CHANNEL_CUTS[cut]
    net, x = Reordered(op), torch.randn(2, 3, 16, 16)
    why = (
        f"its channels are split in forward ({said}), in sizes that the code fixes and pruning cannot change; "
        "prune the layers that read the parts instead"
    )
    _refused(net, "body", x[:1], why)
    assert net(x).shape[:2] == (2, 2)


def test_a_cut_after_an_op_whose_channels_cannot_be_followed_is_refused() -> None:
    # a pixel unshuffle spreads each channel over 4, one per pixel of 2 x 2: no dim holds body's
    # channels after it, so whether the crop after it cuts them has no answer. (A pixel shuffle, the
    # op this was found after, is refused on its own: see test_a_pixel_shuffle_of_the_channels_...)
    shuffle, unshuffle = torch.nn.functional.pixel_shuffle, torch.nn.functional.pixel_unshuffle
    net, x = Reordered(lambda y: shuffle(unshuffle(y, 2)[:, :, 1:-1], 2)), torch.randn(2, 3, 16, 16)
    why = (
        "in forward, its channels pass through pixel_unshuffle, after which convscope cannot tell which dim holds "
        "them, and then through a slice, which may cut them; it refuses rather than guess: prune the layers after "
        "it instead"
    )
    _refused(net, "body", x[:1], why)
    assert net(x).shape == (2, 2, 12, 16)


def _last(t: torch.Tensor) -> torch.Tensor:
    return t.permute(0, 2, 3, 1)  # (channels last)


def _first(t: torch.Tensor) -> torch.Tensor:
    return t.permute(0, 3, 1, 2)  # (channels first again)


#: cats along the channels of the image (3), left's maps (8) and right's (6), wherever the channels
#: lie: the op, how many of head's input channels come before right's, and how many inputs of
#: head's each channel is (a dense head after a flatten: the 16 x 16 values of its map)
_CATS = {
    # Torch-Pruning mapped a cat along dim 1 alone: channels last, right's pruned filters 1 and 4
    # reached head as its inputs 1 and 4 (not 9 and 12) and took left's filters 1 and 4 with them,
    # and the pruned model raised
    "channels-last-dim-3": (lambda x, a, b: _first(torch.cat([_last(a), _last(b)], 3)), 8, 1),
    "transposed-dim-3": (lambda x, a, b: torch.cat([a.transpose(1, 3), b.transpose(1, 3)], 3).transpose(1, 3), 8, 1),
    # it counted the traced inputs alone: after the image, the filters reached head 3 channels too
    # early (the pruned model raised or, with one conv after the image, ran silently different)
    "image-first-dim-1": (lambda x, a, b: torch.cat([x, a, b], 1), 11, 1),
    "image-first-channels-last": (lambda x, a, b: _first(torch.cat([_last(x), _last(a), _last(b)], -1)), 11, 1),
    # and took a cat that a flatten follows for one along another dim: the pruned model raised
    "dim-1-then-flatten": (lambda x, a, b: torch.flatten(torch.cat([a, b], 1), 1), 8, 256),
    # (what it mapped right: a cat along dim 1, or along the channels given as a negative dim)
    "dim-1": (lambda x, a, b: torch.cat([a, b], 1), 8, 1),
    "dim-minus-3": (lambda x, a, b: torch.cat([a, b], -3), 8, 1),
    "channels-last-dim-minus-1": (lambda x, a, b: _first(torch.cat([_last(a), _last(b)], -1)), 8, 1),
}


@pytest.mark.parametrize("cat", list(_CATS))
def test_a_cat_of_channels_prunes_the_right_inputs_wherever_they_lie(cat) -> None:
    op, before, per = _CATS[cat]
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    for plan in ({"right": [1, 4]}, {"left": [2, 7], "right": [0, 5]}):
        torch.manual_seed(0)
        net = Joined(op)
        # the unpruned model with those filters frozen (their maps zeroed): what head gives from the others
        frozen = convscope.capture(net, x, layers=["head"], freeze=plan).outputs["head"]
        inputs = net.head.weight.shape[1]
        assert unprunable(net, ["left", "right"], example_inputs=x[:1]) == {}
        result = prune_filters(net, plan, example_inputs=x[:1])
        removed = sum(len(v) for v in plan.values())
        assert result.coupled == {} and net.head.weight.shape[1] == inputs - removed * per
        assert (net.left.out_channels, net.right.out_channels) == (8 - len(plan.get("left", [])), 4)
        if "left" not in plan:
            assert result.inputs == {"head": [(before + i) * per + j for i in (1, 4) for j in range(per)]}
        with torch.no_grad():
            out = net(x)
        torch.testing.assert_close(out, frozen, rtol=1e-5, atol=1e-5)


def test_a_cat_along_another_dim_than_the_channels_joins_them() -> None:
    # rows of left's maps and of right's in channels-last layout: channel i of each is channel i of
    # head's input, so that left's filters go with right's
    torch.manual_seed(0)
    net, x = Joined(lambda x, a, b: _first(torch.cat([_last(a), _last(b)], 1)), right=8), torch.randn(2, 3, 16, 16)
    frozen = convscope.capture(net, x, layers=["head"], freeze={"left": [0, 5], "right": [0, 5]}).outputs["head"]
    result = prune_filters(net, {"left": [0, 5]}, example_inputs=x[:1])
    assert result.coupled == {"right": [0, 5]} and result.inputs == {"head": [0, 5]}
    with torch.no_grad():
        torch.testing.assert_close(net(x), frozen, rtol=1e-5, atol=1e-5)


#: stacks of left's and right's maps (8 each) that convscope follows: the op, and the inputs of
#: head that filters 0 and 5 of both cost it
_STACKS = {
    # each filter's two maps side by side (filter k of the j-th tensor: channel 2k + j)
    "interleaved-by-a-flatten": (lambda x, a, b: torch.stack([a, b], 2).flatten(1, 2), [0, 1, 10, 11]),
    # (the stack's dim a Conv3d's depth)
    "read-by-a-conv3d": (lambda x, a, b: torch.stack([a, b], 2), [0, 5]),
    "averaged": (lambda x, a, b: torch.stack([a, b], 1).mean(1), [0, 5]),
    "unbound-and-added": (lambda x, a, b: sum(torch.stack([a, b], 1).unbind(1)), [0, 5]),
}


@pytest.mark.parametrize("stack", list(_STACKS))
def test_a_stack_prunes_the_stacked_layers_alike_and_the_right_inputs(stack) -> None:
    # stacked tensors keep one shape: right loses the filters that left does, and head the inputs
    # that both gave, wherever the stack put them
    op, inputs = _STACKS[stack]
    torch.manual_seed(0)
    net, x = Joined(op, right=8, size=8), torch.randn(2, 3, 8, 8)
    frozen = convscope.capture(net, x, layers=["head"], freeze={"left": [0, 5], "right": [0, 5]}).outputs["head"]
    assert unprunable(net, ["left", "right"], example_inputs=x[:1]) == {}
    result = prune_filters(net, {"left": [0, 5]}, example_inputs=x[:1])
    assert result.coupled == {"right": [0, 5]} and result.inputs == {"head": inputs}
    with torch.no_grad():
        torch.testing.assert_close(net(x), frozen, rtol=1e-5, atol=1e-5)


#: stacks of left's and right's maps (8 each, 8 x 8) along the dim before the channels, merged with
#: them by a reshape: the op, how the refusal says the reshape, and the cat that gives the same tensor
_STACKED_MERGES = {
    "flatten": (
        lambda x, a, b: torch.stack([a, b], 1).flatten(1, 2), "(2, 8, 8, 8) as (16, 8, 8)",
        lambda x, a, b: torch.cat([a, b], 1),
    ),
    "view": (
        lambda x, a, b: torch.stack([a, b], 1).view(len(a), 16, 8, 8), "(2, 8, 8, 8) as (16, 8, 8)",
        lambda x, a, b: torch.cat([a, b], 1),
    ),
    "activation-then-flatten-for-a-dense-layer": (
        lambda x, a, b: torch.tanh(torch.stack([a, b], 1)).flatten(1), "(2, 8, 8, 8) as (1024,)",
        lambda x, a, b: torch.tanh(torch.cat([a, b], 1)).flatten(1),
    ),
}


@pytest.mark.parametrize("merge", list(_STACKED_MERGES))
def test_a_stack_merged_with_the_channels_after_it_is_refused_and_the_cat_it_equals_prunes(merge) -> None:
    # left's channel k is channel k of what head reads, right's 8 + k: Torch-Pruning mapped the
    # flatten as if each filter's maps lay side by side, and filters 0 and 5 cost head its inputs
    # 0, 1, 10 and 11 (not 0, 5, 8 and 13): the pruned model ran, silently different. (It was
    # refused as a split of the channels by a view, which it is not.)
    op, said, cat = _STACKED_MERGES[merge]
    torch.manual_seed(0)
    net, x = Joined(op, right=8, size=8), torch.randn(2, 3, 8, 8)
    why = (
        f"its channels are stacked in forward (torch.stack along dim 1, the dim before theirs) and then merged with "
        f"the stack's dim (a view or reshape of {said} per sample): each filter's maps then lie once per stacked "
        "tensor, 8 channels apart, and Torch-Pruning would map them as if they lay side by side (the next layer "
        "would lose other inputs than the pruned filters gave); torch.cat along dim 1 gives the same tensor, and "
        "convscope maps it: use it instead, or prune the layers after it"
    )
    assert unprunable(net, ["left", "right"], example_inputs=x[:1]) == {"left": why, "right": why}
    _refused(net, "left", x[:1], why)
    # what the refusal says to do: the cat is the same tensor, and left's filters go alone
    a, b = torch.randn(2, 8, 8, 8), torch.randn(2, 8, 8, 8)
    assert torch.equal(op(x, a, b), cat(x, a, b))
    torch.manual_seed(0)
    net = Joined(cat, right=8, size=8)
    frozen = convscope.capture(net, x, layers=["head"], freeze={"left": [0, 5]}).outputs["head"]
    per = 1 if merge != "activation-then-flatten-for-a-dense-layer" else 64
    result = prune_filters(net, {"left": [0, 5]}, example_inputs=x[:1])
    assert result.coupled == {} and result.inputs == {"head": [i * per + j for i in (0, 5) for j in range(per)]}
    with torch.no_grad():
        torch.testing.assert_close(net(x), frozen, rtol=1e-5, atol=1e-5)


def _cannot_follow(where: str, layer: str) -> str:
    """How a refusal says that ``layer`` reads channels that convscope cannot follow after ``where``."""
    return (
        f"in forward, its channels pass through {where}, after which convscope cannot tell which channels of "
        f"{layer!r} they are; it refuses rather than guess: prune the layers after it instead"
    )

#: cats of left's and right's channels that convscope cannot tell the parts of, and how it says them
_UNTOLD_CATS = {
    # Torch-Pruning mapped left's filters 0 and 5 over the flattened maps as if they were 8 x 8 of 63
    # values and pruned all of left's filters: the pruned model raised
    "flattened": (lambda x, a, b: torch.cat([a.flatten(1), b.flatten(1)], 1), "a cat of flattened channels"),
    # (two tensors that no trace sizes: where the image's copies end has no answer)
    "image-on-both-sides": (
        lambda x, a, b: torch.cat([x, a, x, b], 1), "a cat of tensors outside autograd on more than one side of them",
    ),
}


@pytest.mark.parametrize("cat", list(_UNTOLD_CATS))
def test_a_cat_whose_parts_cannot_be_told_is_refused(cat) -> None:
    op, where = _UNTOLD_CATS[cat]
    torch.manual_seed(0)
    net, x = Joined(op, size=8), torch.randn(2, 3, 8, 8)
    why = _cannot_follow(where, "head")
    assert unprunable(net, ["left", "right"], example_inputs=x[:1]) == {"left": why, "right": why}
    _refused(net, "left", x[:1], why)
    assert net(x).shape[:2] == (2, 2)


F = torch.nn.functional

#: ops after which no dim holds body's 16 channels as they were, and how the refusal says them
#: (a pixel shuffle is refused on its own: see test_a_pixel_shuffle_of_the_channels_is_refused...)
_UNFOLLOWED = {
    # Torch-Pruning passed the pruned indices through as if the op were element-wise
    "pixel-unshuffle": (lambda y: F.pixel_unshuffle(y, 2), "pixel_unshuffle"),
    "unfold": (lambda y: F.fold(F.unfold(y, 2, stride=2), (4, 4), 1), "im2col"),
    "repeat": (lambda y: y.repeat(1, 2, 1, 1), "repeat"),
    "conv-in-forward": (lambda y: F.conv2d(y, torch.ones(4, 16, 1, 1)), "convolution"),
    # (these kept the size: head lost its inputs 0, 5, 6 and 7, which held other maps)
    "pad-before-them": (lambda y: F.pad(y, (0, 0, 0, 0, 2, 0)), "constant_pad_nd"),
    "flip": (lambda y: y.flip(1), "flip"),
    "roll": (lambda y: y.roll(3, 1), "roll"),
}


@pytest.mark.parametrize("op", list(_UNFOLLOWED))
def test_a_layer_that_reads_channels_convscope_cannot_follow_is_refused(op) -> None:
    fn, where = _UNFOLLOWED[op]
    torch.manual_seed(0)
    net, x = Reordered(fn, size=8), torch.randn(2, 3, 8, 8)
    why = _cannot_follow(where, "head")
    _refused(net, "body", x[:1], why, [0, 5, 6, 7])
    assert net(x).shape[:2] == (2, 2)


class _Shuffled(torch.nn.Module):
    """``body`` (3 -> 16, 3 x 3 and padded) shuffled to 4 maps of twice the size (``pixel_shuffle``,
    upscale factor 2), read by ``head`` (4 -> 2, 3 x 3) or, ``head=False``, given as the model's
    output (as a super-resolution model's last conv)."""

    def __init__(self, *, head: bool) -> None:
        super().__init__()
        self.body = torch.nn.Conv2d(3, 16, 3, padding=1)
        self.head = torch.nn.Conv2d(4, 2, 3, padding=1) if head else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.pixel_shuffle(torch.relu(self.body(x)), 2)
        return y if self.head is None else self.head(y)


@pytest.mark.parametrize("filters", [[0], [0, 5, 6, 7]], ids=["one", "four"])
@pytest.mark.parametrize("head", [True, False], ids=["read-by-a-conv", "the-output"])
def test_a_pixel_shuffle_of_the_channels_is_refused_before_anything_changes(head, filters) -> None:
    # Torch-Pruning passes the pruned filters through the shuffle as if it were element-wise. Read
    # by head, it was refused as an op whose channels convscope cannot follow, without the reason;
    # given as the output, one filter made the pruned model raise (pixel_shuffle takes channels 4
    # at a time), caught only by its forward pass, with a hint about views, and filters 0, 5, 6 and
    # 7 were pruned: the output's channel 0 was then made of filters 1 to 4
    torch.manual_seed(0)
    net, x = _Shuffled(head=head), torch.randn(4, 3, 8, 8)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    net(x).square().mean().backward()
    opt.step()
    state, held = {k: v.clone() for k, v in net.state_dict().items()}, _held(net)
    groups = [[id(p) for p in g["params"]] for g in opt.param_groups]
    moments = {id(p): {k: v.clone() for k, v in s.items()} for p, s in opt.state.items()}
    why = (
        "in forward, its channels pass through pixel_shuffle (upscale factor 2), which makes each 4 of them one "
        "channel of 2 x 2 pixels: a count of them that is not a multiple of 4 makes it raise, and Torch-Pruning "
        "would pass the pruned filters on as if it were element-wise, so that what follows would read channels "
        "made of other filters' maps than before; prune other layers instead"
    )
    assert unprunable(net, ["body"], example_inputs=x[:1]) == {"body": why}
    with pytest.raises(DataError) as caught:
        prune_filters(net, {"body": filters}, example_inputs=x[:1], optimizer=opt)
    assert str(caught.value) == f"'body' cannot be pruned: {why}"
    assert _held(net) == held and all(torch.equal(state[k], v) for k, v in net.state_dict().items())
    assert [[id(p) for p in g["params"]] for g in opt.param_groups] == groups
    assert {id(p) for p in opt.state} == set(moments)
    assert all(torch.equal(moments[id(p)][k], v) for p, s in opt.state.items() for k, v in s.items())
    assert net(x).shape == ((4, 2, 16, 16) if head else (4, 4, 16, 16))


#: layers that read body's (or left's and right's) channels along another dim than their input
#: channels': the model, and the layer to prune
_MISREAD = {
    # a stack along dim 1: the channels are the Conv3d's depth, the stacked tensors its 2 inputs
    "stack-read-by-a-conv3d": (lambda: Joined(lambda x, a, b: torch.stack([a, b], 1), right=8, size=8), "left"),
    # 8 x 8 maps of 8 filters: head reads the rows as its inputs
    "rows-read-as-channels": (lambda: Reordered(lambda y: y.transpose(1, 2), filters=8, size=8), "body"),
}


@pytest.mark.parametrize("case", list(_MISREAD))
def test_a_layer_that_reads_the_channels_along_another_dim_is_refused(case) -> None:
    # Torch-Pruning took head's input channels for the pruned filters all the same: only the
    # pruned model's forward pass, which raised, stopped prune_filters, with a hint about views
    make, layer = _MISREAD[case]
    torch.manual_seed(0)
    net, x = make(), torch.randn(2, 3, 8, 8)
    why = (
        "in forward, its channels reach 'head' along dim 2 of its input, not along dim 1, which 'head' reads as its "
        "input channels; Torch-Pruning would take input channels of 'head' for them all the same, and the pruned "
        "model would not run: prune the layers after it instead"
    )
    _refused(net, layer, x[:1], why)
    assert net(x).shape[:2] == (2, 2)


#: ops that body's channels pass whole, or whose output reaches head only through them
_FOLLOWED = {
    "pad-after-them": lambda y: F.pad(y, (0, 0, 0, 0, 0, 2)),
    "roll-of-rows": lambda y: y.roll(3, 2),
    "flip-of-columns": lambda y: y.flip(3),
    "upsampling": lambda y: F.interpolate(y, scale_factor=2),
    # a norm over the channels divides them: a mean over them, from which Torch-Pruning maps the
    # same indices as through the maps themselves
    "normalised-over-channels": lambda y: F.normalize(y, dim=1),
    # an unfold reduced to one value a sample, which weighs the maps: no layer reads the unfold
    "gated-by-an-unfold": lambda y: y * torch.sigmoid(F.unfold(y, 2, stride=2).square().sum((1, 2), keepdim=True) / 1e3)[..., None],
}


@pytest.mark.parametrize("op", list(_FOLLOWED))
def test_a_layer_that_reads_channels_convscope_follows_prunes_the_right_inputs(op) -> None:
    torch.manual_seed(0)
    net, x = Reordered(_FOLLOWED[op], size=8), torch.randn(2, 3, 8, 8)
    frozen = convscope.capture(net, x, layers=["head"], freeze={"body": [0, 5, 6, 7]}).outputs["head"]
    assert unprunable(net, ["body"], example_inputs=x[:1]) == {}
    assert prune_filters(net, {"body": [0, 5, 6, 7]}, example_inputs=x[:1]).inputs == {"head": [0, 5, 6, 7]}
    with torch.no_grad():
        torch.testing.assert_close(net(x), frozen, rtol=1e-5, atol=1e-5)


def test_a_shortcut_padded_with_channels_before_them_is_refused_and_the_other_layers_prune() -> None:
    # stem's 4 maps are channels 2..5 of the sum: Torch-Pruning took stem's filters 0 and 3 with
    # c2's filters 0 and 3 (not 2 and 5), and head's inputs 0 and 3, a silently different model
    torch.manual_seed(0)
    net, x = Shortcut(), torch.randn(2, 3, 8, 8)
    why = {"stem": _cannot_follow("constant_pad_nd", "c2"), "c2": _cannot_follow("constant_pad_nd", "head")}
    assert unprunable(net, ["stem", "c1", "c2"], example_inputs=x[:1]) == why
    state = {k: v.clone() for k, v in net.state_dict().items()}
    for layer in ("stem", "c2"):
        with pytest.raises(DataError) as caught:
            prune_filters(net, {layer: [0, 3]}, example_inputs=x[:1])
        assert str(caught.value) == f"{layer!r} cannot be pruned: {why[layer]}"
    assert all(torch.equal(state[k], v) for k, v in net.state_dict().items()) and net(x).shape == (2, 2, 4, 4)
    frozen = convscope.capture(net, x, layers=["head"], freeze={"c1": [0, 3]}).outputs["head"]
    assert prune_filters(net, {"c1": [0, 3]}, example_inputs=x[:1]).inputs == {"c2": [0, 3]}
    with torch.no_grad():
        torch.testing.assert_close(net(x), frozen, rtol=1e-5, atol=1e-5)


def test_a_layer_that_reads_a_mean_over_the_channels_is_refused() -> None:
    # Torch-Pruning passed body's filters through the mean and the max over them (one map each)
    # to spatial and pruned its only filter: the pruned model raised
    torch.manual_seed(0)
    net, x = SpatialAttention(), torch.randn(2, 3, 8, 8)
    why = _cannot_follow("mean", "spatial")
    _refused(net, "body", x[:1], why)
    assert net(x).shape == (2, 2, 8, 8)


class _Mixed(torch.nn.Module):
    """Mixes the 10 time steps of a conv1d's output (N x C x 10) by a matrix, with ``torch.bmm``:
    a buffer, or a parameter (which Torch-Pruning prunes with the channels)."""

    def __init__(self, *, learned: bool) -> None:
        super().__init__()
        mix = torch.randn(10, 10, generator=torch.Generator().manual_seed(0))
        if learned:
            self.mix = torch.nn.Parameter(mix)
        else:
            self.register_buffer("mix", mix)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.bmm(x, self.mix.expand(len(x), -1, -1))


def _mixed(*, learned: bool) -> torch.nn.Module:
    torch.manual_seed(0)
    conv, head = torch.nn.Conv1d(3, 8, 3, padding=1), torch.nn.Conv1d(8, 2, 1)
    return torch.nn.Sequential(conv, torch.nn.ReLU(), _Mixed(learned=learned), head)


def test_a_matrix_product_by_a_buffer_keeps_the_channels_on_the_dim_it_keeps() -> None:
    net, x = _mixed(learned=False), torch.randn(2, 3, 10)
    frozen = convscope.capture(net, x, layers=["3"], freeze={"0": [0, 5]}).outputs["3"]
    assert unprunable(net, ["0"], example_inputs=x[:1]) == {}
    assert prune_filters(net, {"0": [0, 5]}, example_inputs=x[:1]).inputs == {"3": [0, 5]}
    with torch.no_grad():
        torch.testing.assert_close(net(x), frozen, rtol=1e-5, atol=1e-5)


def test_a_matrix_product_by_a_parameter_is_refused() -> None:
    # Torch-Pruning pruned the matrix's columns 0 and 5 with the filters: the pruned model raised
    net, x = _mixed(learned=True), torch.randn(2, 3, 10)
    why = _cannot_follow("bmm", "3")
    _refused(net, "0", x[:1], why)
    assert net(x).shape == (2, 2, 10)


class _Twice(torch.nn.Module):
    """``stem`` (3 -> 8) read by ``mid`` (8 -> 8), called twice, and then by ``head`` (8 -> 2)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.mid = torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.Conv2d(8, 8, 3, padding=1)
        self.head = torch.nn.Conv2d(8, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.mid(torch.relu(self.mid(torch.relu(self.stem(x)))))))


def test_a_layer_called_twice_is_followed_through_both_calls() -> None:
    # (its node in the graph holds one call: the other call's output is found by its kind.) mid
    # reads its own output: it loses the same filters as stem, at both calls ("mid", "mid#2")
    torch.manual_seed(0)
    net, x = _Twice(), torch.randn(2, 3, 8, 8)
    freeze = {"stem": [0, 5], "mid": [0, 5], "mid#2": [0, 5]}
    frozen = convscope.capture(net, x, layers=["head"], freeze=freeze).outputs["head"]
    assert unprunable(net, ["stem"], example_inputs=x[:1]) == {}
    result = prune_filters(net, {"stem": [0, 5]}, example_inputs=x[:1])
    assert result.coupled == {"mid": [0, 5]} and result.inputs == {"mid": [0, 5], "head": [0, 5]}
    with torch.no_grad():
        torch.testing.assert_close(net(x), frozen, rtol=1e-5, atol=1e-5)


def test_unprunable_takes_a_dense_layers_units_along_the_last_dim() -> None:
    # a dense layer's units lie along the last dim: cut there (q, k, v), not along the sequence.
    # (traced on the batch as given: Torch-Pruning unpacked a lone batch into its one sample, on
    # which Dense(1)'s chunk along dim 1 did cut the units)
    class Dense(torch.nn.Module):
        def __init__(self, along: int) -> None:
            super().__init__()
            self.along = along
            self.qkv, self.out = torch.nn.Linear(6, 12), torch.nn.Linear(12, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: batch x sequence x 6
            if self.along == -1:
                q, k, v = self.qkv(x).split(4, dim=-1)
                return self.out(torch.cat([q * k, v, v], -1))
            first, second = self.qkv(x).chunk(2, dim=1)
            return self.out(torch.cat([second, first], 1))

    x = torch.zeros(1, 6, 6)
    assert unprunable(Dense(-1), ["qkv"], example_inputs=x) == {
        "qkv": "its channels are split in forward (torch.split or torch.chunk), in sizes that the code fixes and "
        "pruning cannot change; prune the layers that read the parts instead"
    }
    assert unprunable(Dense(1), ["qkv"], example_inputs=x) == {}


def test_residual_adds_and_the_case_study_model_still_prune() -> None:
    class Residual(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem, self.bn = torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8)
            self.c1, self.c2 = torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.Conv2d(8, 8, 3, padding=1)
            self.down, self.c3 = torch.nn.Conv2d(8, 16, 1, stride=2), torch.nn.Conv2d(8, 16, 3, stride=2, padding=1)
            self.fc = torch.nn.Linear(16, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = torch.relu(self.bn(self.stem(x)))
            x = torch.relu(x + self.c2(torch.relu(self.c1(x))))
            x = torch.relu(self.down(x) + self.c3(x))
            return self.fc(x.mean((2, 3)).view(len(x), -1))

    net, x = Residual(), torch.zeros(1, 3, 16, 16)
    assert unprunable(net, ["stem", "c1", "c2", "down", "c3"], example_inputs=x) == {}
    result = prune_filters(net, {"stem": [1], "c3": [0, 5]}, example_inputs=x)
    assert result.coupled == {"c2": [1], "down": [0, 5]} and net(torch.zeros(2, 3, 16, 16)).shape == (2, 10)
    # the layers that read them lost those input channels: stem's through the residual sum, c3's
    # (and down's, summed with it) through the mean into fc
    assert result.inputs == {"c1": [1], "down": [1], "c3": [1], "fc": [0, 5]}
    # a dense layer after a flatten loses the removed filter's features (3 x 3 of them here)
    flat = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.Flatten(), torch.nn.Linear(36, 2))
    assert prune_filters(flat, {"0": [1]}, example_inputs=torch.zeros(1, 1, 8, 8)).inputs == {"4": list(range(9, 18))}
    lenet = load_zoo_model("lenet5-simplified", pretrained=False).module
    why = unprunable(lenet, ["conv1", "conv2", "fc1", "fc2"], example_inputs=torch.zeros(1, 1, 28, 28))
    assert why == {"fc2": "its filters are the model's output, which would change shape"}
    assert breaks_forward(lenet, ["conv1", "conv2", "fc1"], example_inputs=torch.zeros(1, 1, 28, 28)) == {}


def _held(model: torch.nn.Module) -> dict[str, tuple]:
    """Every module's plain attributes (sizes, mode) and the very parameter, buffer and gradient objects it holds."""
    return {
        name: (
            {k: v for k, v in vars(m).items() if not k.startswith("_")},
            {k: id(v) for k, v in m._parameters.items()},
            {k: id(v) for k, v in m._buffers.items()},
            {k: None if v is None or v.grad is None else id(v.grad) for k, v in m._parameters.items()},
        )
        for name, m in model.named_modules()
    }


_BROKEN = "breaks the model's forward pass (RuntimeError: shape '[-1, 400]' is invalid for input of size {})"
_HINT = "a size written in forward (a view or reshape) probably assumes its channels: use torch.flatten(x, 1)"


def test_a_pruning_that_breaks_the_forward_pass_is_undone_and_the_optimizer_left_untouched() -> None:
    # before, conv2, bn2 and fc1's inputs were pruned and the optimizer mended: the view still
    # asked for 400 values a row, and the next training step raised in the user's loop
    torch.manual_seed(0)
    model = TutorialNet().train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = torch.randn(16, 3, 32, 32), torch.randint(0, 10, (16,))

    def step() -> float:
        return _train_step(model, opt, x, y)

    for _ in range(3):
        step()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    held = _held(model)
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    groups = [[id(p) for p in g["params"]] for g in opt.param_groups]
    momenta = {id(p): {k: v.clone() for k, v in s.items()} for p, s in opt.state.items()}
    with pytest.raises(DataError) as caught:
        prune_filters(model, {"conv2": [3, 7]}, example_inputs=x[:1], optimizer=opt)
    assert str(caught.value) == (
        "pruning 'conv2' " + _BROKEN.format(350) + ", so the model is left as it was; " + _HINT + ", or prune other layers"
    )
    assert model.state_dict().keys() == state.keys()
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())  # (bn2's statistics too)
    assert _held(model) == held  # out_channels, num_features, in_features ...: every module as it was
    assert all(torch.equal(grads[n], p.grad) for n, p in model.named_parameters())
    assert [[id(p) for p in g["params"]] for g in opt.param_groups] == groups
    assert {id(p) for p in opt.state} == set(momenta)
    assert all(torch.equal(momenta[id(p)][k], v) for p, s in opt.state.items() for k, v in s.items())
    assert all(m.training for m in model.modules())
    losses = [step() for _ in range(30)]  # training goes on with the model as it was
    assert np.isfinite(losses).all() and np.mean(losses[-5:]) < np.mean(losses[:5])


class _WithStatistic(torch.nn.Module):
    """``conv`` (3 -> 4) read by ``fc`` through the maps' means; ``forward`` also gives the conv's
    channel means, detached (a statistic of the model's own, which no trace follows)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.fc = torch.nn.Conv2d(3, 4, 3), torch.nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.relu(self.conv(x))
        return self.fc(h.mean((2, 3))), h.detach().mean((0, 2, 3))


def test_a_pruning_that_changes_the_output_shape_is_undone() -> None:
    model = _WithStatistic()
    x = torch.zeros(1, 3, 8, 8)
    state, held = {k: v.clone() for k, v in model.state_dict().items()}, _held(model)
    with pytest.raises(DataError, match=r"^pruning 'conv' changes the model's output from \(\(1, 3\), \(4,\)\) to \(\(1, 3\), \(3,\)\), so the model is left as it was; "):
        prune_filters(model, {"conv": [1]}, example_inputs=x)
    assert _held(model) == held and all(torch.equal(state[k], v) for k, v in model.state_dict().items())


def test_breaks_forward_finds_what_no_trace_shows_and_changes_nothing() -> None:
    torch.manual_seed(0)
    model = TutorialNet().train()
    model(torch.randn(4, 3, 32, 32))  # (bn2's statistics away from their start)
    model.fc2.eval()  # (a module kept in eval mode on purpose stays so)
    x = torch.zeros(1, 3, 32, 32)
    layers = ["conv1", "conv2", "fc1", "fc2"]
    assert unprunable(model, layers, example_inputs=x) == {}  # the trace sees a flatten
    state, held, rng = {k: v.clone() for k, v in model.state_dict().items()}, _held(model), torch.get_rng_state()
    assert breaks_forward(model, layers, example_inputs=x) == {"conv2": "pruning a filter " + _BROKEN.format(750) + "; " + _HINT}
    # the copy ran in training mode (bn2's statistics, a dropout's draws): none of it reached the model
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items()) and _held(model) == held
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(m.training == (m is not model.fc2) for m in model.modules())
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    assert breaks_forward(_WithStatistic(), ["conv"], example_inputs=torch.zeros(1, 3, 8, 8)) == {
        "conv": f"pruning a filter changes the model's output from ((2, 3), (4,)) to ((2, 3), (3,)); {_HINT}"
    }
    with pytest.raises(LayerNotFoundError):
        breaks_forward(model, ["conv9"], example_inputs=x)


def test_a_failure_of_torch_pruning_itself_is_a_clear_error_and_leaves_the_model_as_it_was() -> None:
    # (a second output of one value, an activity penalty: Torch-Pruning raised a bare IndexError)
    class AuxOutput(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = torch.nn.Conv2d(1, 16, 3, padding=1)
            self.head = torch.nn.Conv2d(16, 2, 1)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            y = self.body(x)
            return self.head(y).flatten(1), y.square().mean()

    torch.manual_seed(0)
    model, x = AuxOutput(), torch.randn(2, 1, 8, 8)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(DataError, match=r"'body' cannot be pruned: Torch-Pruning failed on this model \(IndexError: .*left as it was"):
        prune_filters(model, {"body": [0, 5]}, example_inputs=x)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()) and model(x)[0].shape == (2, 128)


def test_channels_that_torch_pruning_does_not_carry_on_to_a_layer_are_refused() -> None:
    # (a repeat_interleave of the channels, cropped back to their count: Torch-Pruning's rule for
    # grouped-query attention passed no index on, so the head kept all its inputs, which then read
    # other maps; the sizes held, and the pruned model ran, 1.08 from the frozen one)
    torch.manual_seed(0)
    net, x = Reordered(lambda y: y.repeat_interleave(2, 1)[:, :16], size=8), torch.randn(2, 3, 8, 8)
    why = (
        "in forward, its channels reach 'head' through expand, along which Torch-Pruning does not carry the pruned "
        "filters to 'head' (its inputs would stay as they are, and read other maps); it refuses rather than prune it "
        "so: prune the layers after it instead"
    )
    _refused(net, "body", x[:1], why)
    assert net(x).shape == (2, 2, 8, 8)

def _refused(net: torch.nn.Module, layer: str, x: torch.Tensor, why: str, filters: list[int] | None = None) -> None:
    """``unprunable`` says ``why`` of ``layer``, and ``prune_filters`` refuses to take ``filters``
    (0 and 5) from it saying so, and leaves the model as it was."""
    assert unprunable(net, [layer], example_inputs=x) == {layer: why}
    state = {k: v.clone() for k, v in net.state_dict().items()}
    with pytest.raises(DataError) as caught:
        prune_filters(net, {layer: filters or [0, 5]}, example_inputs=x)
    assert str(caught.value) == f"{layer!r} cannot be pruned: {why}"
    assert all(torch.equal(state[k], v) for k, v in net.state_dict().items())


def test_a_layer_that_several_pruned_layers_feed_has_all_its_lost_inputs_said_and_its_optimizer_state_kept() -> None:
    # (head reads a cat of left's 8 maps and right's 6: its lost inputs were right's group's alone,
    # numbered after left's pruning, and its momentum, then not derivable, was reset)
    torch.manual_seed(0)
    net, x = Joined(lambda x, a, b: torch.cat([a, b], 1)), torch.randn(2, 3, 16, 16)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    net(x).sum().backward()
    opt.step()
    weight, momentum = net.head.weight.detach().clone(), opt.state[net.head.weight]["momentum_buffer"].clone()
    result = prune_filters(net, {"left": [1, 4], "right": [0, 3]}, example_inputs=x[:1], optimizer=opt)
    assert result.inputs == {"head": [1, 4, 8, 11]} and result.reset_state == []
    kept = [i for i in range(14) if i not in (1, 4, 8, 11)]
    assert torch.equal(net.head.weight, weight[:, kept])
    assert torch.equal(opt.state[net.head.weight]["momentum_buffer"], momentum[:, kept])

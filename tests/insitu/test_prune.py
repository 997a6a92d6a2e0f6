"""Online pruning's settings are judged before training: one that could only break the model or
never prune is refused then, with the layer and what to do; one that can prune trains as before."""

from __future__ import annotations

import contextlib
import warnings

import pytest
import torch
from pruning_models import TutorialNet

import convscope
from convscope.errors import DataError
from convscope.sinks.memory import MemorySink


class _Net(torch.nn.Module):
    """``a`` (3 -> 8 filters) feeds ``b`` through a batch norm, ``b`` feeds ``c``, and ``c`` a dense
    ``fc`` of 3 outputs; ``b`` and ``c`` are 8 -> 8 convs of the groups given."""

    def __init__(self, b_groups: int = 1, c_groups: int = 1) -> None:
        super().__init__()
        self.a = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(8)
        self.b = torch.nn.Conv2d(8, 8, 3, padding=1, groups=b_groups)
        self.c = torch.nn.Conv2d(8, 8, 3, padding=1, groups=c_groups)
        self.fc = torch.nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.b(torch.relu(self.bn(self.a(x)))))
        return self.fc(torch.relu(self.c(h)).mean((2, 3)))


def _twin_filters(net: _Net) -> None:
    """``a``'s filters in equal pairs (0 = 1, 2 = 3 ...): four groups of correlation 1, of which
    pruning keeps the first of each (ties keep their order), whatever the input."""
    torch.manual_seed(0)
    with torch.no_grad():
        net.a.weight[1::2] = net.a.weight[0::2]
        net.a.bias[1::2] = net.a.bias[0::2]


def _steps(model: torch.nn.Module, opt: torch.optim.Optimizer, steps: int) -> None:
    for _ in range(steps):
        loss = model(torch.randn(4, 3, 8, 8)).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()


def _no_hooks(model: torch.nn.Module) -> bool:
    return all(not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks for m in model.modules())


_PRUNE = {"layers": ("a",), "threshold": 0.99, "start": 2, "every": 1, "max_fraction": 0.5}


@pytest.mark.parametrize("context", [contextlib.nullcontext, torch.no_grad, torch.inference_mode], ids=["train", "no_grad", "inference"])
def test_a_grouped_conv_that_pruning_reaches_is_refused_at_the_first_forward_before_anything_trains(context, tmp_path) -> None:
    # pruning a takes b's input channels, and b has 4 groups: before, the run was refused only
    # at the first pruning step (a warning, deep into training); now the first batch's pass
    # says so (under no_grad or inference_mode too: a Lightning sanity check's), and the model
    # is left as it was, unwatched
    torch.manual_seed(0)
    model = _Net(b_groups=4).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    mon = convscope.watch(model, optimizer=opt, logdir=tmp_path, budget=None, every=1, prune=_PRUNE)
    with pytest.raises(DataError) as caught, context():
        model(torch.randn(4, 3, 8, 8))
    said = str(caught.value)
    assert "cannot take filters from 'a' (its pruning would change 'b', a conv of 4 groups (8 inputs, 8 filters)" in said
    assert "leave it out of PruneConfig(layers=...)" in said and "'c' can be pruned" in said
    assert mon._closed and _no_hooks(model) and model.training and all(m.training for m in model.modules())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # (batch norm statistics too)
    assert not opt.state
    assert not list(tmp_path.glob("*.db"))  # no run without a step is kept


@pytest.mark.parametrize("known", ["input_shape", "probe"])
def test_a_grouped_conv_that_pruning_reaches_is_refused_at_watch_when_the_input_shape_is_known(known) -> None:
    model = _Net(b_groups=4)
    shape = {"input_shape": (3, 8, 8)} if known == "input_shape" else {"probe": torch.randn(2, 3, 8, 8)}
    with pytest.raises(DataError, match=r"'a' \(its pruning would change 'b', a conv of 4 groups"):
        convscope.watch(model, logdir=None, prune=_PRUNE, **shape)
    assert _no_hooks(model) and model.training


def test_the_first_conv_pruned_by_default_is_named_with_the_layers_that_can_be_pruned() -> None:
    with pytest.raises(DataError) as caught:
        convscope.watch(_Net(b_groups=4), logdir=None, prune=True, input_shape=(3, 8, 8))
    said = str(caught.value)
    assert said.startswith("prune= cannot take filters from 'a' (its pruning would change 'b'")
    assert "it prunes the first watched conv by default: name other layers with PruneConfig(layers=...) ('c' can be pruned)" in said


def test_a_layer_whose_filters_are_the_models_output_is_refused_at_watch() -> None:
    # pruning fc took classes from the model's output: the loss broke at the next step
    with pytest.raises(DataError, match=r"cannot take filters from 'fc' \(its filters are the model's output, which would change shape\)"):
        convscope.watch(_Net(), logdir=None, layers=["a", "fc"], prune={"layers": ("fc",)}, input_shape=(3, 8, 8))


def test_a_grouped_conv_that_pruning_does_not_reach_is_accepted_and_pruning_goes_on() -> None:
    # c has 4 groups, but pruning a reaches b's inputs only
    model = _Net(c_groups=4).train()
    _twin_filters(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)  # (the twin filters stay twins)
    sink = MemorySink()
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        with convscope.watch(model, optimizer=opt, logdir=None, budget=None, every=1, sinks=[sink], prune=_PRUNE) as mon:
            _steps(model, opt, 4)
    (event,) = sink.select(kind="pruning", layer="a")
    assert event.step == 2 and event.payload["removed"] == [1, 3, 5, 7] and event.payload["kept"] == [0, 2, 4, 6]
    assert event.payload["inputs"] == {"b": [1, 3, 5, 7]}  # (b reads a: its input channels, as numbered before)
    assert model.a.out_channels == model.bn.num_features == model.b.in_channels == 4
    assert (model.c.in_channels, model.c.out_channels, model.c.groups) == (8, 8, 4)
    assert mon.step_count == 4 and _no_hooks(model)
    # pruning traced the model in eval mode: it is left training, as it was (before: dropout
    # off and batch norm frozen for the rest of the run)
    assert all(m.training for m in model.modules())


def test_a_depthwise_conv_is_pruned_with_the_layer_that_feeds_it() -> None:
    model = _Net(b_groups=8).train()
    _twin_filters(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    sink = MemorySink()
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        with convscope.watch(model, optimizer=opt, logdir=None, budget=None, every=1, sinks=[sink], prune=_PRUNE):
            _steps(model, opt, 4)
    (event,) = sink.select(kind="pruning", layer="a")
    assert event.payload["removed"] == [1, 3, 5, 7] and event.payload["coupled"] == {"b": [1, 3, 5, 7]}
    assert (model.b.in_channels, model.b.out_channels, model.b.groups) == (4, 4, 4) and model.c.in_channels == 4
    assert model(torch.randn(2, 3, 8, 8)).shape == (2, 3) and all(m.training for m in model.modules())


@pytest.mark.parametrize(
    ("prune", "said"),
    [
        ({"min_filters": 8}, r"would never remove a filter: 'a' has 8 filters and min_filters=8 keeps 8; lower min_filters"),
        ({"max_fraction": 0.1}, r"would never remove a filter: 'a' has 8 filters and max_fraction=0.1 lets it lose 0; "),
    ],
)
def test_a_layer_that_could_never_lose_a_filter_is_refused_at_watch(prune, said) -> None:
    # before, such a run never pruned and said nothing
    with pytest.raises(DataError, match=said):
        convscope.watch(_Net(), logdir=None, prune={"layers": ("a",), **prune})
    convscope.watch(_Net(), logdir=None, prune={"layers": ("a",), "times": 0, **prune}).close()  # (pruning turned off)


def test_pruning_with_no_layer_to_prune_or_one_that_cannot_lose_filters_is_refused_at_watch() -> None:
    with pytest.raises(DataError, match=r"prune= has no layer to prune .*the watched layers, fc, have none\); name the conv or dense"):
        convscope.watch(_Net(), logdir=None, layers=["fc"], prune=True)
    with pytest.raises(DataError, match=r"prune= layers \['bn'\] are not watched torch conv/dense layers"):
        convscope.watch(_Net(), logdir=None, layers=["a", "bn"], prune={"layers": ("bn",)})


@pytest.mark.slow
def test_lightning_fit_refuses_a_grouped_conv_that_pruning_reaches_at_its_first_forward() -> None:
    # the callback builds the same Monitor: the first forward is the sanity check's, under inference_mode
    import lightning.pytorch as pl

    from convscope.integrations.lightning import ConvscopeCallback

    class Module(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = _Net(b_groups=4)

        def forward(self, x):
            return self.net(x)

        def training_step(self, batch, _idx):
            return self(batch[0]).square().mean()

        def validation_step(self, batch, _idx):
            return self(batch[0]).square().mean()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(16, 3, 8, 8)), batch_size=4)
    callback = ConvscopeCallback(logdir=None, budget=None, prune={**_PRUNE, "layers": ("net.a",)})
    trainer = pl.Trainer(
        max_epochs=1, callbacks=[callback], logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, accelerator="cpu", devices=1,
    )
    module = Module()
    before = {k: v.clone() for k, v in module.state_dict().items()}
    with pytest.raises(DataError, match=r"'net.a' \(its pruning would change 'net.b', a conv of 4 groups"):
        trainer.fit(module, data, data)
    assert all(torch.equal(before[k], v) for k, v in module.state_dict().items()) and _no_hooks(module)


class _TwoHeads(torch.nn.Module):
    """``body`` (3 -> 8 filters) is chunked in two halves of 4 channels in ``forward``, read by the
    heads ``left`` and ``right`` (4 -> 4 each), whose maps are joined, averaged and read by ``fc``."""

    def __init__(self) -> None:
        super().__init__()
        self.body = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.left = torch.nn.Conv2d(4, 4, 3, padding=1)
        self.right = torch.nn.Conv2d(4, 4, 3, padding=1)
        self.fc = torch.nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = torch.chunk(torch.relu(self.body(x)), 2, dim=1)
        return self.fc(torch.cat([torch.relu(self.left(a)), torch.relu(self.right(b))], 1).mean((2, 3)))


def test_a_layer_whose_channels_are_split_in_forward_is_refused_at_watch() -> None:
    # before, body was pruned at the first pruning step and the next forward pass raised inside
    # the training loop: the chunk's halves no longer fit the heads that Torch-Pruning had mended
    model = _TwoHeads()
    with pytest.raises(DataError) as caught:
        convscope.watch(model, logdir=None, prune={**_PRUNE, "layers": ("body",)}, input_shape=(3, 8, 8))
    assert str(caught.value) == (
        "prune= cannot take filters from 'body' (its channels are split in forward (torch.split or torch.chunk), in "
        "sizes that the code fixes and pruning cannot change; prune the layers that read the parts instead); "
        "leave it out of PruneConfig(layers=...) ('left', 'right' can be pruned)"
    )
    assert _no_hooks(model) and model.body.out_channels == 8


def test_a_head_that_reads_a_split_part_is_pruned_and_training_goes_on() -> None:
    torch.manual_seed(0)
    model = _TwoHeads().train()
    with torch.no_grad():  # left's filters in equal pairs: pruning keeps 0 and 2
        model.left.weight[1::2] = model.left.weight[0::2]
        model.left.bias[1::2] = model.left.bias[0::2]
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    sink = MemorySink()
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        with convscope.watch(model, optimizer=opt, logdir=None, budget=None, every=1, sinks=[sink], prune={**_PRUNE, "layers": ("left",)}):
            _steps(model, opt, 4)
    (event,) = sink.select(kind="pruning", layer="left")
    assert event.payload["removed"] == [1, 3] and (model.body.out_channels, model.left.out_channels, model.fc.in_features) == (8, 2, 6)


def test_a_prune_config_is_left_as_given_and_sets_up_the_next_run_alike() -> None:
    # the monitor filled in the config's default layers and turned it off after a failed pruning,
    # in the caller's own object: a second run from it pruned the first model's layers, or none
    config = convscope.PruneConfig(threshold=0.99, start=2, every=1)
    given = dict(vars(config))
    with convscope.watch(_Net(), logdir=None, prune=config) as first:
        pass
    assert first.prune is not config and first.prune.layers == ("a",) and vars(config) == given
    other = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Conv2d(8, 4, 3))
    with convscope.watch(other, logdir=None, prune=config) as second:
        pass
    assert second.prune.layers == ("0",) and vars(config) == given

    one = convscope.PruneConfig(layers="a", threshold=0.99, start=2, every=1)  # (one layer's name)
    model = _Net()
    _twin_filters(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    with pytest.warns(RuntimeWarning, match="could not prune a at step 2"):
        with convscope.watch(model, optimizer=opt, logdir=None, budget=None, every=1, prune=one) as mon:
            for _ in range(4):  # called by keyword: the monitor sees no input shape and cannot prune
                loss = model(x=torch.randn(4, 3, 8, 8)).square().mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
    assert mon.prune.times == 0 and one.times == 1 and one.layers == "a"


def _twins(*convs: torch.nn.Conv2d) -> None:
    """Each conv's filters in equal pairs (0 = 1, 2 = 3 ...): groups of correlation 1."""
    with torch.no_grad():
        for conv in convs:
            conv.weight[1::2] = conv.weight[0::2]
            conv.bias[1::2] = conv.bias[0::2]


_BREAKS = (
    "pruning a filter breaks the model's forward pass (RuntimeError: shape '[-1, 400]' is invalid for input of size 750); "
    "a size written in forward (a view or reshape) probably assumes its channels: use torch.flatten(x, 1)"
)


def test_a_size_written_in_forward_that_pruning_breaks_is_refused_at_watch() -> None:
    # the trace sees a flatten: before, conv2 was pruned at the first pruning step, and the view,
    # still asking for 400 values a row, raised in the training loop
    model = TutorialNet()
    with pytest.raises(DataError) as caught:
        convscope.watch(model, logdir=None, prune={**_PRUNE, "layers": ("conv2",)}, input_shape=(3, 32, 32))
    assert str(caught.value) == (
        f"prune= cannot take filters from 'conv2' ({_BREAKS}); leave it out of PruneConfig(layers=...) "
        "('conv1' can be pruned)"
    )
    assert _no_hooks(model) and model.conv2.out_channels == 16
    convscope.watch(TutorialNet(flatten=True), logdir=None, prune={**_PRUNE, "layers": ("conv2",)}, input_shape=(3, 32, 32)).close()


def test_a_size_written_in_forward_is_refused_at_the_first_forward_and_the_trial_leaves_the_model_as_it_was(tmp_path) -> None:
    torch.manual_seed(0)
    model = TutorialNet().train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    mon = convscope.watch(model, optimizer=opt, logdir=tmp_path, budget=None, every=1, prune={**_PRUNE, "layers": ("conv2",)})
    x = torch.randn(4, 3, 32, 32)
    rng = torch.get_rng_state()
    with pytest.raises(DataError) as caught:
        model(x)
    assert str(caught.value).startswith(f"prune= cannot take filters from 'conv2' ({_BREAKS}); leave it out")
    assert mon._closed and _no_hooks(model) and all(m.training for m in model.modules())
    # the pruned copy ran in training mode: the model's batch norm statistics and random numbers are its own
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert torch.equal(torch.get_rng_state(), rng)
    assert not opt.state and not list(tmp_path.glob("*.db"))


def test_the_trial_at_the_first_forward_leaves_training_and_what_is_recorded_as_they_were(monkeypatch) -> None:
    # the monitor's hooks, which the copy keeps, ignore its passes; its dropout draws from random
    # numbers of its own, and its batch norm keeps statistics of its own
    from convscope.insitu._monitor import _LayerState

    seen: list[tuple[str, tuple[int, ...]]] = []  # what the layers' hooks took: the batches trained on alone
    activations = _LayerState.activations

    def spy(self: _LayerState, out: torch.Tensor, *args, **kwargs):
        seen.append((self.name, tuple(out.shape)))
        return activations(self, out, *args, **kwargs)

    monkeypatch.setattr(_LayerState, "activations", spy)
    trained = [("conv1", (8, 6, 28, 28)), ("conv2", (8, 16, 10, 10))] * 3

    def run(prune: dict | None) -> tuple[list[float], dict[str, torch.Tensor], list[tuple]]:
        torch.manual_seed(0)
        model = TutorialNet(flatten=True).train()
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        sink, losses = MemorySink(), []
        with convscope.watch(model, optimizer=opt, logdir=None, budget=None, every=1, sinks=[sink], prune=prune):
            for _ in range(3):
                loss = torch.nn.functional.cross_entropy(model(torch.randn(8, 3, 32, 32)), torch.randint(0, 10, (8,)))
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(loss.item())
        # (sorted: the background thread analyses the recordings it has gathered together, view
        # by view, so the frames' order depends on how many it found waiting, which a busy machine
        # changes)
        recorded = sorted((f.step, f.layer, f.kind) for f in sink.frames if f.kind not in ("meta", "config"))
        return losses, model.state_dict(), recorded

    losses, state, recorded = run(None)
    assert seen == trained
    seen.clear()
    pruned_losses, pruned_state, pruned_recorded = run({"layers": ("conv2",), "start": 100})
    assert seen == trained  # (not the copy's samples of zeros, nor its pruned conv2's 15 maps)
    assert pruned_losses == losses and pruned_recorded == recorded
    assert all(torch.equal(state[k], v) for k, v in pruned_state.items())


def test_a_pruning_that_breaks_the_model_at_its_step_is_undone_and_that_layer_alone_is_left_alone() -> None:
    # this model cannot be copied, so no trial tells before training that pruning conv2 breaks
    # its forward pass; before, conv2 was pruned and the next training step raised
    torch.manual_seed(0)
    model = TutorialNet(lock=True).train()
    _twins(model.conv1, model.conv2)
    opt = torch.optim.SGD(model.parameters(), lr=0.0, momentum=0.9)  # (the twin filters stay twins)
    sink = MemorySink()
    prune = {**_PRUNE, "layers": ("conv1", "conv2"), "times": 2}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with convscope.watch(model, optimizer=opt, logdir=None, budget=None, every=1, sinks=[sink], prune=prune) as mon:
            for _ in range(6):
                loss = model(torch.randn(4, 3, 32, 32)).square().mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
    said = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert said == [
        "convscope could not prune conv2 at step 2 (DataError: pruning 'conv2' breaks the model's forward pass "
        "(RuntimeError: shape '[-1, 400]' is invalid for input of size 200), so the model is left as it was; a size "
        "written in forward (a view or reshape) probably assumes its channels: use torch.flatten(x, 1), or prune other layers); "
        "conv2 is not pruned again, and training goes on"
    ]
    (event,) = sink.select(kind="pruning")
    assert event.layer == "conv1" and event.payload["removed"] == [1, 3, 5]
    assert (model.conv1.out_channels, model.conv2.in_channels, model.conv2.out_channels, model.bn2.num_features) == (3, 3, 16, 16)
    assert model.fc1.in_features == 400 and mon.step_count == 6
    # the optimizer holds the model's parameters, conv1's pruned ones and all, with state of their shapes
    assert {id(p) for g in opt.param_groups for p in g["params"]} == {id(p) for p in model.parameters()}
    assert all(s["momentum_buffer"].shape == p.shape for p, s in opt.state.items())
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)

"""The mistakes a new user of the Python API makes are said at once, with what was meant.

Misspelt options name the option meant; values of the wrong kind are refused at ``watch()``
(or where a callback is made), before training starts, not by a background thread hundreds of
steps later; calls that would quietly record nothing (after ``close()``, ``step()`` beside a
followed optimizer) are said once. Each case here went unsaid, or said as a bare Python error,
before.
"""

from __future__ import annotations

import inspect
import os
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import convscope
from convscope.errors import DataError, LayerNotFoundError
from convscope.sinks.memory import MemorySink

DOCS = Path(__file__).resolve().parents[2] / "docs" / "tutorials"


def _train(model: torch.nn.Module, opt: torch.optim.Optimizer, steps: int, after=None) -> None:
    for _ in range(steps):
        loss = model(torch.randn(8, 1, 28, 28)).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if after is not None:
            after()


def _no_hooks(model: torch.nn.Module) -> bool:
    return all(not (m._forward_hooks or m._forward_pre_hooks or m._backward_hooks) for m in model.modules())


# --- misspelt options ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "said"),
    [
        ({"optimiser": None}, "got an unexpected option optimiser=; did you mean optimizer=?"),
        ({"evrey": 10}, "got an unexpected option evrey=; did you mean every=?"),
        ({"layer": "conv1"}, "got an unexpected option layer=; did you mean layers=?"),
        ({"logdr": None}, "got an unexpected option logdr=; did you mean logdir=?"),
        ({"max_sample": 4}, "got an unexpected option max_sample=; did you mean max_samples=?"),
        ({"colour": 1}, "got an unexpected option colour=; its options are optimizer, layers, every"),
    ],
)
def test_a_misspelt_option_names_the_one_meant(lenet, options, said) -> None:
    # before: "Monitor.__init__() got an unexpected keyword argument 'optimiser'"
    model = lenet()
    with pytest.raises(TypeError, match=re.escape(f"watch() {said}")):
        convscope.watch(model, logdir=None, **options)
    assert _no_hooks(model)


def test_the_callbacks_check_their_options_where_they_are_made() -> None:
    # before: accepted, and refused when fit() started (a TypeError inside Lightning or Keras),
    # or, for optimizer=, "got multiple values for keyword argument 'optimizer'"
    pytest.importorskip("lightning")
    from convscope.integrations.lightning import ConvscopeCallback

    with pytest.raises(TypeError, match=r"ConvscopeCallback\(\) got an unexpected option evrey=; did you mean every=\?"):
        ConvscopeCallback(evrey=5)
    with pytest.raises(TypeError, match=r"ConvscopeCallback\(\) sets optimizer= itself .*configure_optimizers"):
        ConvscopeCallback(optimizer=torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=0.1))
    with pytest.raises(DataError, match="every= must be a positive number of steps, got 0"):
        ConvscopeCallback(every=0)
    with pytest.raises(DataError, match=r"unknown views \['weight'\] \(did you mean 'weights'\?\)"):
        ConvscopeCallback(record="weight")
    ConvscopeCallback(every={"weights": 5}, record=["weights"], logdir=None)  # (what is right still is)


def test_the_keras_callback_checks_its_options_where_it_is_made() -> None:
    keras = _keras()
    from convscope.integrations.keras import ConvscopeCallback

    assert keras.backend.backend() == "torch"
    with pytest.raises(TypeError, match=r"ConvscopeCallback\(\) got an unexpected option evrey=; did you mean every=\?"):
        ConvscopeCallback(evrey=5)
    with pytest.raises(TypeError, match=r"ConvscopeCallback\(\) sets optimizer= itself \(its steps are the training batches"):
        ConvscopeCallback(optimizer="sgd")
    with pytest.raises(DataError, match=r"every= is a number of steps"):
        ConvscopeCallback(every="10")


# --- values of the wrong kind -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "error", "said"),
    [
        # before: every one of these was accepted and watched nothing, or a bare TypeError/ValueError
        ({"record": []}, DataError, "record= names no view, so nothing would be recorded"),
        ({"record": 5}, DataError, r"record= is a view's name or a list of them .*got 5"),
        ({"record": "weight"}, DataError, r"unknown views \['weight'\] \(did you mean 'weights'\?\)"),
        ({"record": ["weights", "feature_map"]}, DataError, r"\(did you mean 'feature_maps'\?\)"),
        ({"every": {"gradient": 10}}, DataError, r"unknown view 'gradient' in every= \(did you mean 'gradients'\?\)"),
        ({"layers": []}, DataError, "layers= names no layer to watch"),
        ({"layers": 5}, DataError, r"layers= is a layer's name or a list of names .*got 5"),
        ({"layers": "Conv1"}, LayerNotFoundError, r"layers \['Conv1'\] not found; .* \(did you mean 'conv1'"),
        ({"layers": "conv1.weight"}, LayerNotFoundError, r"\(did you mean 'conv1'\?\)"),
        ({"image_normalisation": "per-map"}, DataError, r"got 'per-map' \(did you mean 'per_map'\?\)"),
        ({"group_method": "unoin"}, DataError, r"\(did you mean 'union'\?\)"),
        ({"prune": {"threshhold": 0.9}}, DataError, r"prune= has no fields \['threshhold'\]; PruneConfig's are .*, times \(did you mean 'threshold'\?\)"),
        ({"prune": {"layers": ["conv"]}}, DataError, r"prune= layers \['conv'\] are not watched .*\(did you mean"),
        ({"budget": "3%"}, DataError, r"budget= is a share of training time .*got '3%'"),
        ({"budget": True}, DataError, r"budget= is a share of training time .*got True"),
        ({"logdir": 5}, DataError, r"logdir= is the run store's directory .*got 5"),
        ({"serve": "localhost:8765"}, DataError, r"serve= is True for a dashboard of its own, or the address .*got 'localhost:8765'"),
        ({"serve": "yes"}, DataError, r"serve= is True .*got 'yes'"),
        ({"probe": np.zeros((4, 1, 28, 28), np.float32)}, DataError, r"got ndarray; make one of a NumPy array with torch.from_numpy"),
        ({"probe": (torch.zeros(4, 1, 28, 28), torch.zeros(4))}, DataError, r"got tuple; of an \(inputs, labels\) batch pass the inputs"),
        ({"probe": torch.zeros(0, 1, 28, 28)}, DataError, r"probe= is a batch of at least one input .*\(0, 1, 28, 28\)"),
        ({"probe": torch.zeros(4, 1, 28, 28, dtype=torch.float64)}, DataError, r"torch.float64.*\(its weights are torch.float32, on cpu\)"),
        ({"trajectory_dims": (0, 1, 200)}, DataError, r"trajectory_dims= \(0, 1, 200\) are flat indices .* conv1 \(144\) has fewer"),
        ({"input_shape": (4, 1, 28, 28), "probe": torch.zeros(4, 1, 28, 28)}, DataError, r"input_shape= is one input's shape, without"),
        ({"resume": "yes"}, DataError, "resume= is True or False, got 'yes'"),
        ({"all_ranks": "yes"}, DataError, "all_ranks= is True or False"),
        ({"gc_freeze": "no"}, DataError, "gc_freeze= is True or False, got 'no'"),
        ({"sinks": 5}, DataError, "sinks= is a list of sinks"),
    ],
)
def test_a_value_of_the_wrong_kind_is_refused_at_watch_with_what_to_pass(lenet, options, error, said) -> None:
    model = lenet()
    with pytest.raises(error, match=said):
        convscope.watch(model, **({"logdir": None} | options))
    assert _no_hooks(model) and model.training


def test_modules_given_as_layers_are_answered_with_their_names(lenet) -> None:
    # before: "TypeError: 'Conv2d' object is not iterable", and a list of modules "not found"
    model = lenet()
    for layers in (model.conv1, [model.conv1, "conv2"]):
        with pytest.raises(DataError, match=r"layers= takes the layers' names, not the modules: pass layers=\['conv1'"):
            convscope.watch(model, logdir=None, layers=layers)
    with pytest.raises(DataError, match="a module given is not in the model"):
        convscope.watch(model, logdir=None, layers=[torch.nn.Conv2d(1, 1, 1)])


def test_a_layer_inside_a_wrapper_is_found_by_its_short_name() -> None:
    # a LightningModule (or any wrapper) names its layers net.conv1 ...
    torch.manual_seed(0)
    wrapper = torch.nn.Module()
    wrapper.net = convscope.load_model("lenet5-simplified", pretrained=False).module
    with pytest.raises(LayerNotFoundError, match=r"not found; .* \(did you mean 'net.conv1'\?\)"):
        convscope.watch(wrapper, logdir=None, layers="conv1")


def test_a_class_given_for_the_model_is_told_to_be_made_first(lenet) -> None:
    # before: "TypeError: Module.named_modules() missing 1 required positional argument: 'self'"
    with pytest.raises(DataError, match=r"got the class SimplifiedLeNet5: make the model first, SimplifiedLeNet5\(...\)"):
        convscope.watch(type(lenet()), logdir=None)


def test_a_model_without_conv_layers_is_told_its_dense_layers() -> None:
    mlp = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
    with pytest.raises(LayerNotFoundError, match=r"no conv layers to watch by default; .*\(its dense layers: 1\)"):
        convscope.watch(mlp, logdir=None)
    convscope.watch(mlp, logdir=None, layers="1").close()


def test_one_sink_alone_is_taken_as_a_list_of_one(lenet) -> None:
    # before: "TypeError: 'MemorySink' object is not iterable"
    model = lenet()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    sink = MemorySink()
    with convscope.watch(model, optimizer=opt, logdir=None, sinks=sink, every=2, budget=None, record="weights"):
        _train(model, opt, 4)
    assert [f.step for f in sink.select(kind="weight_grid", layer="conv1")] == [2, 4]


def test_an_input_shape_with_the_batch_in_it_is_said_and_the_batchs_is_used(lenet) -> None:
    # before: the graph failed to build (a warning about conv2d's input size, and a traceback)
    model = lenet()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with pytest.warns(RuntimeWarning, match=r"input_shape= is one input's shape, without the batch; \(8, 1, 28, 28\) has"):
        with convscope.watch(model, optimizer=opt, logdir=None, input_shape=(8, 1, 28, 28), record="weights") as mon:
            _train(model, opt, 2)
    assert mon.input_shape == (1, 28, 28) and mon.graph is not None


# --- calls that would record nothing ------------------------------------------------------------


def test_step_beside_a_followed_optimizer_is_said_once_and_not_counted_twice(lenet) -> None:
    # before: every step counted twice, and a warning blamed torch.compile for missing hooks
    model = lenet()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    sink = MemorySink()
    with pytest.warns(RuntimeWarning, match=r"follows the optimizer's steps \(optimizer=\), so monitor.step\(\) is not needed") as said:
        with convscope.watch(model, optimizer=opt, logdir=None, sinks=[sink], every=5, budget=None) as mon:
            _train(model, opt, 10, after=lambda: mon.step())
    assert len(said) == 1 and mon.step_count == 10
    assert [f.step for f in sink.select(kind="distribution", layer="conv1")] == [5, 10]


def test_log_and_step_after_close_are_said_once_and_a_closed_monitor_does_not_start(lenet) -> None:
    # before: both did nothing without a word, and start() (a second `with`) returned the closed monitor
    model = lenet()
    with convscope.watch(model, logdir=None) as mon:
        mon.log(loss=1.0)
    with pytest.warns(RuntimeWarning, match=r"this monitor is closed .*so log\(\) and step\(\) record nothing") as said:
        mon.log(loss=0.5)
        mon.step()
        mon.log(loss=0.25)
    assert len(said) == 1
    mon.close()  # (still idempotent)
    with pytest.raises(DataError, match=r"this monitor is closed .* and does not start again; watch the model again"):
        with mon:
            pass
    assert _no_hooks(model)


def test_close_with_a_status_a_run_cannot_end_with_is_refused(lenet, tmp_path) -> None:
    # before: accepted, and the run store's sink failed on the background thread (a warning)
    mon = convscope.watch(lenet(), logdir=tmp_path)
    with pytest.raises(DataError, match=r"close\(status=\) is one of 'finished', 'failed', 'crashed', 'interrupted'; got 'ok'"):
        mon.close(status="ok")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mon.close(status="failed")
    assert mon.stats.sink_failures == {}


def test_log_takes_a_numpy_array_of_one_value_and_says_how_many_another_has(lenet) -> None:
    # before: a 0-d array (what np.mean of an array can be) was "a ndarray", refused
    sink = MemorySink()
    with convscope.watch(lenet(), logdir=None, sinks=[sink]) as mon:
        mon.log(loss=np.array(0.5), acc=np.array([0.75]))
        with pytest.raises(DataError, match="log\\(\\) takes single numbers; many= has 3 values"):
            mon.log(many=np.ones(3))
    values = {f.payload["name"]: f.payload["value"] for f in sink.select(kind="scalar")}
    assert values == {"loss": 0.5, "acc": 0.75}


def test_a_sink_that_keeps_its_frames_when_a_flush_fails_is_not_said_to_drop_them(lenet) -> None:
    # serve="http://..." with no server there yet: the HTTP sink keeps its frames for the next
    # try ("frames wait"), and the warning went on "its frames are dropped and counted"
    class Waiting(MemorySink):
        name = "waiting"

        def flush(self) -> None:
            raise OSError("no server at http://127.0.0.1:1; frames wait")

    model = lenet()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with pytest.warns(RuntimeWarning, match=r"sink 'waiting' failed \(OSError: no server .*; frames wait\); training goes on") as said:
        with convscope.watch(model, optimizer=opt, logdir=None, sinks=[Waiting()], record="weights", every=2, budget=None):
            _train(model, opt, 2)
    assert not [w for w in said if "dropped" in str(w.message)]


# --- Keras ----------------------------------------------------------------------------------------


def _keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "torch":
        pytest.skip("keras was imported with another backend in this process")
    return keras


@pytest.mark.parametrize(
    ("conv", "layers", "said"),
    [
        # before: the first two watched nothing (and warned that torch.compile had missed the hooks)
        (False, None, r"the Keras model 'mlp' has no conv layers to watch by default; .*\(its dense layers: out\)"),
        (True, [], "layers= names no layer to watch"),
        (True, "conv_1", r"Keras layers \['conv_1'\] not found \(did you mean 'conv1'\?\)"),
    ],
)
def test_keras_layers_that_watch_nothing_are_refused_when_fit_starts(conv, layers, said) -> None:
    keras = _keras()
    from convscope.integrations.keras import ConvscopeCallback

    body = [keras.layers.Conv2D(2, 3, name="conv1")] if conv else []
    model = keras.Sequential([keras.Input((8, 8, 1)), *body, keras.layers.Flatten(), keras.layers.Dense(3, name="out")], name="mlp")
    model.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = np.zeros((8, 8, 8, 1), np.float32), np.zeros(8, np.int64)
    callback = ConvscopeCallback(logdir=None, **({} if layers is None else {"layers": layers}))
    with pytest.raises(DataError, match=said):
        model.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[callback])
    assert callback.monitor is None


# --- the options are documented -----------------------------------------------------------------


def test_watch_documents_every_option_with_its_default() -> None:
    from convscope.insitu._monitor import _option_names

    args = convscope.watch.__doc__.split("Args:")[1].split("Example:")[0]
    entries = dict(re.findall(r"\n        (\w+): (.*?)(?=\n        \w+: |\Z)", args, re.S))
    options = _option_names()
    assert set(options) == {p for p in inspect.signature(convscope.Monitor).parameters if p != "model"}
    missing = [o for o in options if o not in entries]
    assert not missing, f"watch()'s docstring does not document {missing}"
    undefaulted = [o for o in options if "default" not in entries[o].lower()]
    assert not undefaulted, f"watch()'s docstring gives no default of {undefaulted}"


def test_the_pytorch_tutorial_lists_every_option() -> None:
    from convscope.insitu._monitor import _option_names

    rows = [line for line in (DOCS / "pytorch.md").read_text().splitlines() if line.startswith("| `")]
    listed = {name for row in rows for name in re.findall(r"`(\w+)`", row.split("|")[1])}
    assert set(_option_names()) <= listed, sorted(set(_option_names()) - listed)


def test_the_lightning_tutorial_trains_its_module_in_training_mode() -> None:
    # a model from load_model is in eval mode (for inference); Lightning trained it so, and warned
    # "Found 11 module(s) in eval mode at the start of training"
    text = (DOCS / "lightning.md").read_text()
    assert 'load_model("lenet5-simplified", pretrained=False).module.train()' in text


def test_an_optimizer_passed_by_position_is_said_to_go_by_name() -> None:
    import convscope

    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(TypeError, match=r"and an optimizer was passed after it; .*watch\(model, optimizer=opt"):
        convscope.watch(model, opt, logdir=None)


def test_every_for_a_view_record_leaves_out_is_said() -> None:
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3))
    with pytest.warns(RuntimeWarning, match=r"every= sets trajectory, which record= leaves out: not recorded"):
        mon = convscope.watch(model, record=["weights"], every={"weights": 5, "trajectory": 5}, logdir=None)
    mon.close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        convscope.watch(model, record=["weights", "trajectory"], every={"weights": 5, "trajectory": 5}, logdir=None).close()

"""convscope.watch in a real training loop: what it records is right, and it leaves training alone."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
import warnings

import numpy as np
import pytest
import torch

import convscope
from convscope.errors import DataError, LayerNotFoundError
from convscope.sinks import Sink
from convscope.sinks.memory import MemorySink


def _train(model, opt, digits, steps, *, batch=32, monitor=None, on_step=None):
    images, labels = digits
    losses = []
    for step in range(1, steps + 1):
        i = (step - 1) * batch % len(images)
        x, y = images[i : i + batch], labels[i : i + batch]
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        if on_step is not None:
            on_step(step, model, x)
        opt.step()
        if monitor is not None:
            monitor.log(loss=loss)
        losses.append(loss.item())
    return losses


def test_three_lines_record_every_view_for_every_conv_layer(digits, lenet) -> None:
    model = lenet()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    sink = MemorySink()
    with convscope.watch(model, optimizer=opt, logdir=None, budget=None, sinks=[sink], every=5) as mon:
        _train(model, opt, digits, 20, monitor=mon)
    assert mon.step_count == 20
    convs = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)]
    assert list(mon.layers) == convs and len(convs) == 2
    for layer in convs:
        for kind in ("weight_grid", "trajectory", "gradient_health", "distribution", "correlation", "groups"):
            steps = [f.step for f in sink.select(kind=kind, layer=layer)]
            assert steps == [5, 10, 15, 20], (kind, layer, steps)
        assert [f.step for f in sink.select(kind="feature_maps", layer=layer)] == [
            s for s in range(1, 21) if s % 25 == 0
        ]
    assert [f.step for f in sink.select(kind="scalar", name="loss")] == list(range(1, 21))
    assert [f.payload["value"] for f in sink.select(kind="scalar", name="lr")] == [0.05] * 4
    # they travel in batches: one frame per name a second, stored at its last step
    batches = sink.select(kind="scalars", name="loss")
    assert 1 <= len(batches) < 20 and [f.step for f in batches] == [int(f.payload["steps"][-1]) for f in batches]
    assert np.concatenate([f.payload["steps"] for f in batches]).tolist() == list(range(1, 21))
    assert all(np.all(np.diff(f.payload["wall_times"]) >= 0) and f.payload["wall_times"][-1] <= f.wall_time + 1e-6 for f in batches)
    meta = sink.select(kind="run_meta")
    assert meta[0].payload["event"] == "start" and meta[-1].payload["status"] == "finished"
    graph = [f for f in meta if f.payload["event"] == "graph"]
    assert graph and any(layer["id"] == "conv1" for layer in graph[0].payload["graph"]["layers"])
    assert sink.closed_with == "finished"
    # every hook is gone
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    assert not opt._optimizer_step_pre_hooks and not opt._optimizer_step_post_hooks


def test_the_lr_view_follows_a_scheduler_and_every_parameter_groups_rate(digits, lenet) -> None:
    # with groups of different learning rates, only the first group's was recorded
    model = lenet()
    opt = torch.optim.SGD([{"params": model.conv1.parameters(), "lr": 0.001}, {"params": model.conv2.parameters()},
                           {"params": [p for n, p in model.named_parameters() if not n.startswith("conv")], "lr": 0.1}], lr=0.01)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.5)
    sink = MemorySink()
    with convscope.watch(model, optimizer=opt, logdir=None, sinks=[sink], every=5, budget=None) as mon:
        _train(model, opt, digits, 20, monitor=mon, on_step=lambda step, *_: step > 1 and sched.step())

    def rates(name: str) -> list[float]:
        return [round(f.payload["value"], 6) for f in sink.select(kind="scalar", name=name)]

    assert [f.step for f in sink.select(kind="scalar", name="lr")] == [5, 10, 15, 20]
    # (the rate each recorded step's update used: the scheduler had stepped 4, 9, 14 and 19 times)
    assert rates("lr") == [0.001, 0.001, 0.0005, 0.0005]
    assert rates("lr/group1") == [0.01, 0.01, 0.005, 0.005]
    assert rates("lr/group2") == [0.1, 0.1, 0.05, 0.05]


def test_recorded_values_match_what_the_loop_saw(digits, lenet) -> None:
    model = lenet()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    sink = MemorySink()
    seen: dict[int, dict[str, torch.Tensor]] = {}

    def on_step(step, model, x):
        if step % 4 == 0:
            seen[step] = {
                "grad": model.conv1.weight.grad.clone(),
                "before": model.conv1.weight.detach().clone(),
                "act": model.conv1(x[:8]).detach().clone(),  # max_samples=8 by default
            }

    with convscope.watch(model, optimizer=opt, logdir=None, budget=None, sinks=[sink], every=4) as mon:
        _train(model, opt, digits, 12, monitor=mon, on_step=on_step)
    for step in (4, 8, 12):
        grid = sink.select(kind="weight_grid", layer="conv1")[step // 4 - 1]
        assert grid.step == step
        expected_after = seen[step]["before"] - 0.05 * seen[step]["grad"]
        np.testing.assert_allclose(grid.payload["weights"], expected_after.numpy(), rtol=1e-6, atol=1e-7)
        health = sink.select(kind="gradient_health", layer="conv1")[step // 4 - 1].payload
        assert health["grad_norm"] == pytest.approx(float(seen[step]["grad"].norm()), rel=1e-5)
        ratio = float((0.05 * seen[step]["grad"]).norm() / expected_after.norm())  # documented: |dw| / |w|
        assert health["update_ratio"] == pytest.approx(ratio, rel=1e-4)
        corr = sink.select(kind="correlation", layer="conv1")[step // 4 - 1].payload["matrix"]
        # 8 samples of 26 x 26 maps are 5408 values a filter, above max_values (4096): every other row and column
        on_grid = seen[step]["act"][:, :, ::2, ::2]
        a = on_grid.transpose(0, 1).reshape(model.conv1.out_channels, -1).numpy().astype(np.float64)
        np.testing.assert_allclose(corr, np.corrcoef(a), atol=1e-4)
        dist = sink.select(kind="distribution", layer="conv1")[step // 4 - 1].payload
        np.testing.assert_allclose(dist["max"], on_grid.amax(dim=(0, 2, 3)).numpy(), rtol=1e-6)


def test_hooks_keep_the_grid_and_sample_0_whole_only_when_the_images_are_due(digits, lenet) -> None:
    """Between image steps only the grid of the maps is copied; at one, the images are those of
    sample 0 at full resolution, as feature_images() makes them from the layer's output."""
    from convscope.analysis import feature_images

    model = lenet()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    sink = MemorySink()
    seen: dict[int, torch.Tensor] = {}
    kept: dict[int, dict[str, tuple | None]] = {}

    def on_step(step, model, x):
        seen[step] = model.conv1(x[:8]).detach().clone()
        kept[step] = {name: None if a.image is None else tuple(a.image.shape) for name, a in mon._acts.items()}
        kept[step]["grid"] = tuple(mon._acts["conv1"].grid.shape) if mon._acts else None

    with convscope.watch(
        model, optimizer=opt, logdir=None, budget=None, sinks=[sink], every={"distribution": 2, "feature_maps": 4}
    ) as mon:
        _train(model, opt, digits, 8, monitor=mon, on_step=on_step)
    # conv1's 8 x 16 x 26 x 26 maps: the grid takes every other row and column (5408 > 4096 values)
    assert kept[2] == {"conv1": None, "conv2": None, "grid": (8, 16, 13, 13)}
    assert kept[4]["conv1"] == (1, 16, 26, 26) and kept[4]["grid"] == (8, 16, 13, 13)
    assert kept[3] == {"grid": None}  # nothing due: no hooks, no copies
    frames = sink.select(kind="feature_maps", layer="conv1")
    assert [f.step for f in frames] == [4, 8]
    for frame in frames:
        expected = feature_images(seen[frame.step], sample=0, normalisation=mon.image_normalisation, max_size=mon.image_size)
        np.testing.assert_array_equal(frame.payload["images"], expected.to_payload()["images"])
        np.testing.assert_allclose(frame.payload["vmax"], expected.to_payload()["vmax"], rtol=1e-6)


def test_hooks_copy_no_grid_where_only_the_images_are_due(digits, lenet) -> None:
    model = lenet()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    sink = MemorySink()
    kept = []
    with convscope.watch(model, optimizer=opt, logdir=None, budget=None, sinks=[sink], every={"feature_maps": 2}, record=["feature_maps"]) as mon:
        _train(model, opt, digits, 4, monitor=mon, on_step=lambda step, m, x: kept.append({n: a.grid for n, a in mon._acts.items()}))
    assert [list(k.values()) for k in kept if k] == [[None, None], [None, None]]
    assert [f.step for f in sink.select(kind="feature_maps", layer="conv1")] == [2, 4]


def test_training_is_bit_identical_with_and_without_the_monitor(digits, lenet) -> None:
    plain = lenet(seed=3)
    opt = torch.optim.Adam(plain.parameters(), lr=1e-3)
    _train(plain, opt, digits, 10)
    watched = lenet(seed=3)
    opt2 = torch.optim.Adam(watched.parameters(), lr=1e-3)
    with convscope.watch(watched, optimizer=opt2, logdir=None, budget=None, sinks=[MemorySink()], every=1) as mon:
        _train(watched, opt2, digits, 10, monitor=mon)
    for a, b in zip(plain.state_dict().values(), watched.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_probe_batch_feeds_the_activation_views(digits, lenet) -> None:
    model = lenet()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    probe = digits[0][:12]  # more than max_samples: a probe is used whole
    sink = MemorySink()
    with convscope.watch(
        model, optimizer=opt, logdir=None, budget=None, sinks=[sink], every=3, probe=probe, max_samples=4, record=["correlation", "feature_maps"]
    ) as mon:
        _train(model, opt, digits, 6, monitor=mon)
    corr = sink.select(kind="correlation", layer="conv1")
    assert [f.step for f in corr] == [3, 6]
    with torch.no_grad():  # (12 samples of 26 x 26 maps: on a grid of every other row and column)
        a = model.conv1(probe)[:, :, ::2, ::2].transpose(0, 1).reshape(model.conv1.out_channels, -1).double().numpy()
    np.testing.assert_allclose(corr[-1].payload["matrix"], np.corrcoef(a), atol=1e-4)
    assert not sink.select(kind="weight_grid")


def test_max_values_reads_big_maps_on_a_grid_and_none_reads_every_value(digits, lenet) -> None:
    """The histograms and correlations of maps with more than max_values values a filter are
    taken on a grid; on LeNet-5's conv1 they stay close to those of every value."""
    frames = {}
    for max_values in (None, 4096, 300):
        model = lenet(seed=1)
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        sink = MemorySink()
        with convscope.watch(
            model, optimizer=opt, logdir=None, budget=None, sinks=[sink], every=5, max_values=max_values, record=["distribution", "correlation"]
        ) as mon:
            _train(model, opt, digits, 10, monitor=mon)
        frames[max_values] = {(f.kind, f.layer, f.step): f.payload for f in sink.frames if f.kind in ("distribution", "correlation")}
    full, grid, coarse = frames[None], frames[4096], frames[300]
    assert full.keys() == grid.keys() == coarse.keys() and len(full) == 8
    # the counts say how many values each filter's histogram holds: 8 x 26 x 26, 8 x 13 x 13,
    # and for 300, 8 x 6 x 6 (stride 5); conv2's 8 x 11 x 11 = 968 are under 4096, all read
    def held(run, layer):
        return set(run[("distribution", layer, 5)]["counts"].sum(axis=1).tolist())

    assert (held(full, "conv1"), held(grid, "conv1"), held(coarse, "conv1")) == ({5408}, {1352}, {288})
    assert held(full, "conv2") == held(grid, "conv2") == {968}
    for step in (5, 10):
        off = np.abs(grid[("correlation", "conv1", step)]["matrix"] - full[("correlation", "conv1", step)]["matrix"])
        assert off.mean() < 0.03 and off.max() < 0.15, (off.mean(), off.max())
        np.testing.assert_array_equal(grid[("correlation", "conv2", step)]["matrix"], full[("correlation", "conv2", step)]["matrix"])


def test_max_values_must_be_a_positive_count(lenet) -> None:
    for bad in (0, -5, 2.5, True, "4096"):
        with pytest.raises(DataError, match="max_values="):
            convscope.watch(lenet(), logdir=None, max_values=bad)


class _BrokenSink(Sink):
    name = "broken"

    def write(self, frame) -> None:
        raise OSError("disk on fire")


def test_a_failing_sink_never_stops_training(digits, lenet) -> None:
    model = lenet()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    good = MemorySink()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with convscope.watch(model, optimizer=opt, logdir=None, budget=None, sinks=[_BrokenSink(), good], every=2) as mon:
            losses = _train(model, opt, digits, 8, monitor=mon)
    assert all(np.isfinite(losses))
    assert mon.stats.sink_failures["broken"] > 5
    assert len([w for w in caught if "broken" in str(w.message)]) == 1
    assert good.select(kind="weight_grid", layer="conv1")


def test_loops_without_an_optimizer_call_step(digits, lenet) -> None:
    model = lenet()
    sink = MemorySink()
    mon = convscope.watch(model, logdir=None, budget=None, sinks=[sink], every=2, layers=["conv2"])
    images, labels = digits
    for _ in range(4):
        loss = torch.nn.functional.cross_entropy(model(images[:16]), labels[:16])
        model.zero_grad()
        loss.backward()
        with torch.no_grad():
            for p in model.parameters():
                p -= 0.1 * p.grad
        mon.step()
    mon.close()
    assert [f.step for f in sink.select(kind="gradient_health", layer="conv2")] == [2, 4]
    assert not sink.select(layer="conv1")


def test_clear_errors_for_bad_options(lenet) -> None:
    model = lenet()
    with pytest.raises(LayerNotFoundError, match="conv1"):
        convscope.watch(model, layers=["nope"], logdir=None)
    with pytest.raises(DataError, match="every"):
        convscope.watch(model, every=0, logdir=None)
    with pytest.raises(DataError, match="unknown views"):
        convscope.watch(model, record=["weights", "colour"], logdir=None)


@pytest.mark.parametrize(
    ("options", "said"),
    [
        ({"every": "10"}, r"every= is a number of steps, or \{view: steps\}"),
        ({"every": {"weights": 2.5}}, r"every\['weights'\] must be a positive number of steps, got 2.5"),
        ({"max_samples": 0}, "max_samples= is a positive number of samples"),
        ({"image_size": -1}, "image_size= is a positive number of pixels"),
        ({"bins": 0}, "bins= is a positive number of bins"),
        ({"group_threshold": 1.5}, r"group_threshold= is the correlation from which filters group, in \(0, 1\]"),
        ({"group_method": "kmeans"}, "group_method= is one of 'union', 'pairs', 'hierarchical'"),
        ({"image_normalisation": "global"}, "image_normalisation= is one of 'per_map', 'shared'"),
        ({"probe": [[0.0]]}, "probe= is a batch of inputs as a torch.Tensor"),
        ({"prune": "yes"}, "prune= is True, a PruneConfig or a dict of its fields"),
        ({"prune": {"treshold": 0.8}}, r"prune= has no fields \['treshold'\]; PruneConfig's are .*threshold"),
        ({"prune": {"threshold": 1.2}}, r"prune threshold= is the correlation at or above which filters are redundant, in \(0, 1\]"),
        ({"prune": convscope.PruneConfig(max_fraction=0)}, r"prune max_fraction= .*in \(0, 1\]; got 0"),
        ({"prune": {"every": 0}}, "prune every= is an integer of 1 or more; got 0"),
        ({"prune": {"times": -1}}, "prune times= is an integer of 0 or more"),
        ({"prune": {"method": "kmeans"}}, "prune method= is one of 'union', 'pairs', 'hierarchical'"),
        ({"prune": {"layers": "conv9"}}, r"prune= layers \['conv9'\] are not watched"),
        ({"sinks": [print, 1]}, r"sinks= takes sinks .*got builtin_function_or_method, int"),
        ({"optimizer": "sgd"}, "optimizer= is the torch.optim.Optimizer that trains the model"),
        ({"trajectory_dims": (1, 2)}, r"trajectory_dims= is 3 distinct flat indices"),
        ({"trajectory_dims": (4, 4, 5)}, r"trajectory_dims= is 3 distinct flat indices"),
        ({"health_thresholds": {"exploding_norm": 10}}, "health_thresholds= is a convscope.analysis.HealthThresholds"),
        ({"serve_port": 70000}, "serve_port= is a TCP port from 0"),
        ({"input_shape": "1x28x28"}, r"input_shape= is the shape of one input without the batch"),
        ({"run": 5}, r"run= is the run's name \(a str\)"),
        ({"config": [("lr", 0.1)]}, "config= is a dict shown with the run"),
        ({"seed": "a"}, "seed= is an int"),
        ({"switch_interval": 0}, r"switch_interval= is seconds \(more than 0\)"),
    ],
)
def test_options_of_the_wrong_kind_are_refused_at_watch_with_what_they_take(lenet, options, said) -> None:
    # before, these surfaced at the first recording (an AttributeError, a warning per recording
    # that a reduction failed) or not at all (max_samples=0 recorded empty maps)
    with pytest.raises(DataError, match=said):
        convscope.watch(lenet(), logdir=None, **options)


def test_a_loaded_model_is_watched_through_its_module_and_no_model_is_refused() -> None:
    loaded = convscope.load_model("lenet5-simplified", pretrained=False)
    mon = convscope.watch(loaded, logdir=None)
    mon.close()
    assert mon.model is loaded.module and list(mon.layers) == ["conv1", "conv2"]
    with pytest.raises(DataError, match=r"watch\(\) takes the torch.nn.Module being trained, got str; a model file is opened with convscope.load_model"):
        convscope.watch("lenet.pt", logdir=None)
    with pytest.raises(DataError, match="got function"):
        convscope.watch(lambda x: x, logdir=None)


def test_one_layer_and_one_view_may_be_named_by_themselves(lenet) -> None:
    # (a str is not taken for a list of one-letter names)
    mon = convscope.watch(lenet(), layers="conv2", record="weights", logdir=None)
    mon.close()
    assert list(mon.layers) == ["conv2"] and mon.record == {"weights"}


def test_numpy_numbers_from_a_config_are_taken_as_the_numbers_they_are(lenet) -> None:
    # (options read from a config file often come as numpy scalars; they are ints and floats here)
    mon = convscope.watch(
        lenet(), logdir=None, every={"weights": np.int64(5)}, bins=np.int32(16), seed=np.int64(3),
        input_shape=torch.Size([1, 28, 28]), group_threshold=np.float32(0.75), serve_port=np.int64(0),
    )
    mon.close()
    assert mon.every["weights"] == 5 and type(mon.every["weights"]) is int and type(mon.bins) is int and mon.bins == 16
    assert mon.seed == 3 and mon.input_shape == (1, 28, 28) and mon.group_threshold == pytest.approx(0.75)
    with pytest.raises(DataError, match="bins= is a positive number"):
        convscope.watch(lenet(), logdir=None, bins=np.True_)


def test_a_probe_the_model_cannot_take_is_refused_at_watch(lenet) -> None:
    model = lenet()
    with pytest.raises(DataError, match=r"the probe batch \(shape \(4, 3, 28, 28\), torch.float32, on cpu\) cannot run through the model"):
        convscope.watch(model, logdir=None, probe=torch.zeros(4, 3, 28, 28))
    assert all(not m._forward_hooks for m in model.modules()) and model.training  # the check's pass leaves nothing behind
    with convscope.watch(model, logdir=None, probe=torch.zeros(4, 1, 28, 28), budget=None) as mon:
        assert mon.probe is not None


def test_an_optimizer_that_trains_none_of_the_watched_layers_is_said(lenet) -> None:
    model = lenet()
    other = torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=0.1)
    with pytest.warns(RuntimeWarning, match=r"the optimizer followed \(optimizer=\) does not train conv1, conv2"):
        mon = convscope.watch(model, optimizer=other, logdir=None)
    mon.close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the model's own optimizer: nothing said
        convscope.watch(model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1), logdir=None).close()


@pytest.mark.parametrize("in_optimizer", [False, True])
def test_a_frozen_layer_is_not_called_stalled_nor_another_models(digits, lenet, in_optimizer) -> None:
    # a layer frozen on purpose (requires_grad=False, fine-tuning) read "stalled: 100% of
    # gradients exactly zero: units dead", and left out of the optimizer, "another model's?"
    model = lenet()
    model.conv1.requires_grad_(False)
    params = model.parameters() if in_optimizer else (p for p in model.parameters() if p.requires_grad)
    opt = torch.optim.SGD(params, lr=0.05)
    sink = MemorySink()
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        with convscope.watch(model, optimizer=opt, logdir=None, sinks=[sink], every=5, budget=None):
            _train(model, opt, digits, 30)
    assert sink.select(kind="gradient_health", layer="conv1") == []
    assert [f.step for f in sink.select(kind="weight_grid", layer="conv1")] == [5, 10, 15, 20, 25, 30]
    assert [f.payload["status"] for f in sink.select(kind="gradient_health", layer="conv2")] == ["healthy"] * 6


def test_a_logdir_that_is_a_file_is_refused_with_a_clear_error(lenet, tmp_path) -> None:
    from convscope.errors import StoreError

    taken = tmp_path / "runs"
    taken.write_text("not a directory")
    with pytest.raises(StoreError, match="the run store's directory .*runs is a file"):
        convscope.watch(lenet(), logdir=taken)
    with pytest.raises(StoreError, match="is a file \\(or lies under one\\)"):
        convscope.watch(lenet(), logdir=taken / "below")


def test_online_pruning_removes_redundant_filters_while_training_goes_on(digits, lenet) -> None:
    model = lenet()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    sink = MemorySink()
    prune = convscope.PruneConfig(layers=("conv1",), threshold=0.3, start=10, every=10, max_fraction=0.25, times=1)
    with convscope.watch(model, optimizer=opt, logdir=None, budget=None, sinks=[sink], every=5, prune=prune) as mon:
        losses = _train(model, opt, digits, 40, monitor=mon)
    events = sink.select(kind="pruning", layer="conv1")
    assert len(events) == 1 and mon.stats.prunings
    p = events[0].payload
    assert p["before"] == 16 and p["after"] == 16 - len(p["removed"]) == model.conv1.out_channels
    assert 1 <= len(p["removed"]) <= 4 and p["params_after"] < p["params_before"]
    assert p["params_after"] == sum(q.numel() for q in model.parameters())
    assert np.isfinite(losses).all()
    step = events[0].step
    later = [f for f in sink.select(kind="weight_grid", layer="conv1") if f.step > step]
    assert later and later[-1].payload["weights"].shape[0] == model.conv1.out_channels
    assert [f for f in sink.select(kind="correlation", layer="conv1") if f.step > step][-1].payload["matrix"].shape == (
        model.conv1.out_channels, model.conv1.out_channels)
    # the optimizer trains the new parameters
    assert any(q is model.conv1.weight for g in opt.param_groups for q in g["params"])


class _Residual(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c1, self.c2, self.c3 = torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.Conv2d(8, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.c1(x))
        return self.c3(h + torch.relu(self.c2(h)))


def test_pruning_a_conv_in_a_residual_add_says_which_layers_lost_filters_with_it() -> None:
    # the add joins c1's channels to c2's: pruning c2 took the same filters from c1, unsaid
    torch.manual_seed(0)
    model = _Residual()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sink = MemorySink()
    prune = convscope.PruneConfig(layers=("c2",), threshold=0.05, start=10, every=10, max_fraction=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        with convscope.watch(model, optimizer=opt, logdir=None, budget=None, sinks=[sink], every=5, prune=prune):
            for _ in range(20):
                loss = model(torch.randn(8, 3, 12, 12)).square().mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
    (event,) = sink.select(kind="pruning")
    p = event.payload
    assert model.c1.out_channels == model.c2.out_channels == p["after"] < p["before"] == 8
    assert p["coupled"] == {"c1": p["removed"]} and "c1 lost the same filters" in p["reason"]
    for name in ("c1", "c2"):  # each watched layer's views follow its new filters
        assert [f for f in sink.select(kind="correlation", layer=name) if f.step > event.step][-1].payload["matrix"].shape == (4, 4)
    assert all(opt.state[q]["exp_avg"].shape == q.shape for q in model.parameters())


def _train_by_keyword(model, opt, digits, steps: int, **options):
    """``steps`` steps of batches of 8 digits, the model called as ``model(x=x)`` (no positional
    input for the first forward hook to see), watched with ``options``; the closed monitor."""
    images, labels = digits
    with convscope.watch(model, optimizer=opt, logdir=None, budget=None, **options) as mon:
        for step in range(steps):
            x, y = images[step * 8 : step * 8 + 8], labels[step * 8 : step * 8 + 8]
            loss = torch.nn.functional.cross_entropy(model(x=x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return mon


def test_pruning_a_model_whose_input_shape_is_unknown_is_said_and_training_goes_on(digits, lenet) -> None:
    # called with keyword arguments only, the model shows the first forward hook no input, so the
    # monitor has no shape for pruning's example input: that pruning is given up, the step is not
    model = lenet()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    sink = MemorySink()
    prune = convscope.PruneConfig(layers=("conv1",), threshold=0.3, start=10, every=10, max_fraction=0.25, times=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mon = _train_by_keyword(model, opt, digits, 20, sinks=[sink], every=5, prune=prune)
    said = [str(w.message) for w in caught if "convscope" in str(w.message)]
    assert mon.input_shape is None and mon.step_count == 20
    assert not [m for m in said if "skipped step" in m], said
    assert [m for m in said if "could not prune conv1 at step 10" in m and "input_shape=" in m], said
    assert not sink.select(kind="pruning") and model.conv1.out_channels == 16
    assert mon.prune is not None and mon.prune.times == 0 and prune.times == 1  # (the monitor gave up on its copy: the user's is as given)


def test_a_model_called_with_keyword_arguments_gets_its_graph_from_input_shape(digits, lenet) -> None:
    # the warning above says to pass input_shape=: given, the graph was still never built (the
    # first forward hook waited for a positional input)
    model = lenet()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    sink = MemorySink()
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        mon = _train_by_keyword(model, opt, digits, 10, sinks=[sink], every=5, input_shape=(1, 28, 28))
    assert mon.graph is not None and mon.graph.input_shape == (1, 28, 28)
    assert [f.payload["event"] for f in sink.select(kind="run_meta")].count("graph") == 1
    assert not model._forward_pre_hooks  # (the first forward hook went once its work was done)


def test_serve_of_any_true_value_serves_a_run_store_of_its_own(lenet, tmp_path, monkeypatch) -> None:
    # serve=1 (or numpy's True) passes `if serve:` but not `serve is True`: without a logdir it
    # served a directory named "None", made in the working directory, and no run was stored
    pytest.importorskip("uvicorn")
    monkeypatch.chdir(tmp_path)
    mon = convscope.watch(lenet(), logdir=None, serve=1, budget=None)
    try:
        assert mon.logdir is not None and mon._store is not None
        assert mon.server.logdir == mon.logdir
    finally:
        mon.close()
        if mon.server is not None:
            mon.server.stop()
        if mon.logdir is not None:
            shutil.rmtree(mon.logdir, ignore_errors=True)
    assert not (tmp_path / "None").exists()


class _SlowSink(Sink):
    name = "slow"

    def __init__(self) -> None:
        self.count = 0

    def write(self, frame) -> None:
        import time

        time.sleep(0.05)
        self.count += 1


@pytest.mark.parametrize("where", ["training", "background"])
def test_a_slow_sink_keeps_memory_bounded_and_counts_drops(digits, lenet, where) -> None:
    model = lenet()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    slow = _SlowSink()
    mon = convscope.watch(
        model, optimizer=opt, logdir=None, budget=None, sinks=[slow], every=1, queue_size=8, analysis_thread=where
    )
    losses = _train(model, opt, digits, 60, monitor=mon)
    assert mon._pipeline.stats.max_queue <= 8  # never more than queue_size items (or their frames) held
    mon.close()
    assert np.isfinite(losses).all()
    assert mon.stats.dropped > 0 and mon.stats.frames < 60 * 12


def test_hooks_are_removed_even_when_the_loop_raises(digits, lenet) -> None:
    model = lenet()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    sink = MemorySink()
    with pytest.raises(RuntimeError, match="boom"):
        with convscope.watch(model, optimizer=opt, logdir=None, budget=None, sinks=[sink], every=1) as mon:
            _train(model, opt, digits, 3, monitor=mon)
            raise RuntimeError("boom")
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    assert not opt._optimizer_step_pre_hooks and not opt._optimizer_step_post_hooks
    assert sink.closed_with == "failed" and sink.select(kind="run_meta")[-1].payload["status"] == "failed"


def _loss_run(digits, lenet, lr: float, steps: int) -> tuple[list[str], list[float]]:
    model = lenet()
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    sink = MemorySink()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a diverging run may warn about non-finite values
        with convscope.watch(model, optimizer=opt, logdir=None, budget=None, sinks=[sink], every=10, record=["gradients"]) as mon:
            losses = _train(model, opt, digits, steps, monitor=mon)
    return [f.payload["status"] for f in sink.select(kind="gradient_health")], losses


def test_far_too_high_learning_rate_is_flagged_and_a_normal_run_is_not(digits, lenet) -> None:
    bad, _ = _loss_run(digits, lenet, lr=50.0, steps=200)
    good, good_losses = _loss_run(digits, lenet, lr=0.05, steps=200)
    assert any(s in ("exploding", "nonfinite", "stalled") for s in bad), bad
    assert set(good) == {"healthy"}, good
    assert good_losses[-1] < good_losses[0]


def test_switch_interval_is_lowered_while_watching_and_restored(lenet) -> None:
    import sys

    before = sys.getswitchinterval()
    mon = convscope.watch(lenet(), logdir=None, budget=None, sinks=[MemorySink()])
    assert sys.getswitchinterval() == pytest.approx(0.0005)
    mon.close()
    assert sys.getswitchinterval() == before
    mon = convscope.watch(lenet(), logdir=None, budget=None, sinks=[MemorySink()], switch_interval=None)
    assert sys.getswitchinterval() == before
    mon.close()


def test_the_heap_is_frozen_while_watching_and_put_back_when_the_last_monitor_closes(lenet) -> None:
    import gc
    import weakref

    from convscope.insitu._monitor import _FrozenHeap

    assert _FrozenHeap._users == 0, "a monitor of another test was left open"
    assert gc.get_freeze_count() == 0

    class Node:
        pass

    node = Node()
    node.me = node  # a reference cycle: only the collector frees it
    gone = weakref.ref(node)
    first = convscope.watch(lenet(), logdir=None, budget=None, sinks=[MemorySink()])
    assert gc.get_freeze_count() > 10_000  # the process's objects, torch's among them
    assert not any(o is node for o in gc.get_objects())  # left out of every collection
    second = convscope.watch(lenet(), logdir=None, budget=None, sinks=[MemorySink()])
    first.close()
    assert gc.get_freeze_count() > 10_000  # the second monitor still watches
    del node
    gc.collect()
    assert gone() is not None  # garbage among the frozen objects waits for close()
    second.close()
    assert gc.get_freeze_count() == 0
    gc.collect()
    assert gone() is None

    mon = convscope.watch(lenet(), logdir=None, budget=None, sinks=[MemorySink()], gc_freeze=False)
    assert gc.get_freeze_count() == 0
    mon.close()
    gc.freeze()  # a process that froze its own objects is left as it is
    try:
        frozen = gc.get_freeze_count()
        convscope.watch(lenet(), logdir=None, budget=None, sinks=[MemorySink()]).close()
        assert gc.get_freeze_count() > frozen - 1000  # (a frozen object freed by its count goes)
    finally:
        gc.unfreeze()


def test_overhead_budget_defers_recordings_and_says_so(digits, lenet) -> None:
    # A budget far too small for the views asked (every view every step) must skip recording
    # steps, count them, and report them in a "dropped" frame; no budget records every step.
    tight, free = MemorySink(), MemorySink()
    for sink, budget in ((tight, 0.001), (free, None)):
        model = lenet()
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        with convscope.watch(model, optimizer=opt, logdir=None, sinks=[sink], every=1, budget=budget) as mon:
            _train(model, opt, digits, 40, monitor=mon)
        if budget is None:
            assert mon.stats.recorded_steps == 40 and mon.stats.deferred == 0
            assert not [f for f in sink.select(kind="dropped") if f.payload["sink"] == "budget"]
        else:
            assert 0 < mon.stats.recorded_steps < 40
            assert mon.stats.recorded_steps + mon.stats.deferred == 40
            reports = [f.payload["count"] for f in sink.select(kind="dropped") if f.payload["sink"] == "budget"]
            assert reports and reports[-1] == mon.stats.deferred and reports == sorted(reports)
            # a deferred step is skipped whole: every recorded step has every layer's weights
            steps = {f.step for f in sink.select(kind="weight_grid", layer="conv1")}
            assert len(steps) == mon.stats.recorded_steps
        assert mon.stats.analysis_cpu_seconds > 0


@pytest.mark.parametrize("where", ["training", "background"])
def test_a_background_thread_behind_defers_whole_steps_instead_of_losing_frames(digits, lenet, where) -> None:
    # A background thread that cannot keep up (a sink that takes 20 ms a frame) makes the
    # monitor skip steps whole (the backlog rule) instead of dropping parts of recordings
    # from a full queue. The budget is generous, so only the backlog rule defers here.
    class SlowSink(MemorySink):
        def write(self, frame):
            time.sleep(0.02)
            super().write(frame)

    sink = SlowSink()
    model = lenet()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with convscope.watch(
        model, optimizer=opt, logdir=None, sinks=[sink], every=1, queue_size=64, budget=1.0, analysis_thread=where
    ) as mon:
        _train(model, opt, digits, 40, monitor=mon)
    assert mon.analysis_thread == where
    assert mon.stats.dropped == 0 and mon.stats.deferred > 0
    assert 0 < mon.stats.recorded_steps < 40 and mon.stats.recorded_steps + mon.stats.deferred == 40
    views = ("weight_grid", "trajectory", "gradient_health", "distribution", "correlation", "groups")
    for layer in ("conv1", "conv2"):
        for kind in views:  # every recorded step arrived complete
            assert len({f.step for f in sink.select(kind=kind, layer=layer)}) == mon.stats.recorded_steps, (layer, kind)


def test_worker_priority_can_be_lowered(digits, lenet) -> None:
    model = lenet()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    sink = MemorySink()
    with convscope.watch(model, optimizer=opt, logdir=None, sinks=[sink], every=5, worker_nice=19, budget=None) as mon:
        assert mon._pipeline.lowered == sys.platform.startswith("linux")
        _train(model, opt, digits, 20, monitor=mon)
    # close() finishes what the lowered thread had left: every recording arrives whole
    assert mon.stats.dropped == 0
    assert [f.step for f in sink.select(kind="distribution", layer="conv2")] == [5, 10, 15, 20]
    with convscope.watch(lenet(), logdir=None) as mon:
        assert mon.worker_nice == 0 and not mon._pipeline.lowered
    with pytest.raises(DataError, match="worker_nice"):
        convscope.watch(lenet(), logdir=None, worker_nice=25)


def test_the_budget_counts_the_background_cpu_by_the_slowdown_it_causes(digits, lenet) -> None:
    # The same budget records every step asked for when the background thread's CPU costs
    # training nothing (a core of its own), and far fewer when each CPU second costs training
    # twenty. The factor is pinned here; in training it is measured from the steps
    # (tests/insitu/test_budget.py). The hooks' own time (about 1 ms a recording against 40 ms of
    # training) is well inside the budget, and with no batch window each recording's CPU is
    # known when it is finished, not after a window whose length depends on the machine's speed.
    from convscope.insitu._budget import SlowdownMeter

    recorded = {}
    for factor in (0.0, 20.0):
        model = lenet()
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        mon = convscope.watch(
            model,
            optimizer=opt,
            logdir=None,
            sinks=[MemorySink()],
            every=3,
            budget=0.3,
            analysis_thread="background",
            batch_window=0.0,
        )
        mon._meter = SlowdownMeter(prior=factor, prior_sd=1e-9)
        with mon:
            _train(model, opt, digits, 90, monitor=mon)
        recorded[factor] = mon.stats.recorded_steps
        assert mon.stats.slowdown_factor == pytest.approx(factor, abs=1e-6)
    assert recorded[0.0] >= 25
    assert recorded[20.0] < recorded[0.0] / 2


def test_the_budget_counts_the_recording_it_is_about_to_start(lenet, monkeypatch) -> None:
    # One second watched at a budget of 0.5 allows a third of a second: half of training's own
    # time, the other two thirds (the start allowance, 0.02 s, is long paid back). The worker
    # has used nothing yet, so only the next recording's cost, at the mean of the one finished
    # (0.3 s or 0.4 s of CPU), decides: a recording that would pass the budget is not started.
    import time

    from convscope.insitu._budget import SlowdownMeter

    decisions = {}
    for mean_cpu in (0.3, 0.4):
        mon = convscope.watch(lenet(), logdir=None, sinks=[MemorySink()], every=1, budget=0.5)
        try:
            mon._meter = SlowdownMeter(prior=1.0, prior_sd=1e-9)
            monkeypatch.setattr(mon._pipeline, "worker_cpu", lambda: 0.0)
            mon.stats.recorded_steps = 1
            mon._pipeline.stats.cpu_seconds = mean_cpu
            mon._t0 = time.perf_counter() - 1.0
            decisions[mean_cpu] = mon._within_budget(2)
        finally:
            mon.close()
    assert decisions == {0.3: True, 0.4: False}


def test_the_start_allowance_is_lent_and_paid_back(lenet, monkeypatch) -> None:
    # 15 ms of hooks in the first 10 ms watched: over the budget's share (a third of it at 0.5),
    # inside the 20 ms lent at the start, so the step is recorded. After a second, the same
    # allowance no longer counts on top: 0.34 s spent is over the third of a second allowed.
    import time

    from convscope.insitu._budget import SlowdownMeter

    decisions = []
    for watched, spent in ((0.01, 0.015), (1.0, 0.34), (1.0, 0.32)):
        mon = convscope.watch(lenet(), logdir=None, sinks=[MemorySink()], every=1, budget=0.5)
        try:
            mon._meter = SlowdownMeter(prior=1.0, prior_sd=1e-9)
            monkeypatch.setattr(mon._pipeline, "worker_cpu", lambda: 0.0)
            mon.stats.seconds_in_step_hooks = spent
            mon._t0 = time.perf_counter() - watched
            decisions.append(mon._within_budget(1))
        finally:
            mon.close()
    assert decisions == [True, False, True]


@pytest.mark.parametrize("where", ["background", "training"])
def test_a_recording_step_and_the_two_after_it_are_marked_as_touched(digits, lenet, where) -> None:
    # The slowdown meter learns which steps the monitor's work touched: each recording step and
    # the two after it, and (analysis on the training thread) the two after an analysis.
    model = lenet()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    mon = convscope.watch(
        model, optimizer=opt, logdir=None, sinks=[MemorySink()], every=10, budget=None, analysis_thread=where, batch_window=0.0
    )
    marks = []
    mark = mon._meter.mark
    mon._meter.mark = lambda now, cpu, hooks, touched=False: (marks.append((mon.step_count, touched)), mark(now, cpu, hooks, touched))
    with mon:
        _train(model, opt, digits, 45, monitor=mon)
    touched = {step for step, t in marks if t}
    recordings = {10, 11, 12, 20, 21, 22, 30, 31, 32, 40, 41, 42}  # (with no window, each analysed at once)
    # on the training thread the run's start (its graph, built after step 1) is analysed at step 2
    assert touched - recordings == (set() if where == "background" else {2, 3, 4}) and recordings <= touched
    assert len(touched) - mon._meter.outliers <= mon._meter.touched <= len(touched)  # (fitted ones: an outlier step is left out)
    assert mon.stats.touched_step_seconds >= 0


def test_the_slowdown_is_measured_from_every_step_and_estimated_at_close(digits, lenet) -> None:
    model = lenet()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with convscope.watch(model, optimizer=opt, logdir=None, sinks=[MemorySink()], every=2, budget=None) as mon:
        _train(model, opt, digits, 40, monitor=mon)
        assert mon._pipeline.worker_cpu() > 0  # read from this thread while the worker lives
    # one point per step after the first (a step is the time between two); a step that a busy
    # machine made ten times longer than the others is left out
    assert mon._meter.n + mon._meter.outliers == 39 and mon._meter.outliers <= 2
    assert mon.stats.slowdown_factor >= 0
    # the estimate counts at least the hooks' own time and at most everything convscope did
    hooks, cpu = mon.stats.seconds_in_step_hooks, mon.stats.analysis_cpu_seconds
    assert mon.stats.overhead_estimate > 0
    share = mon.stats.overhead_estimate  # of training's own time: the watched time less the cost
    estimate_seconds = share / (1 + share) * (mon._meter.last_mark[0] - mon._t0)
    assert hooks * 0.9 <= estimate_seconds <= hooks + 10 * cpu, (hooks, cpu, estimate_seconds, mon.stats.slowdown_factor)


def test_pause_stops_recording_and_the_budget_clock_until_resume(digits, lenet) -> None:
    model = lenet()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    sink = MemorySink()
    with convscope.watch(model, optimizer=opt, logdir=None, sinks=[sink], every=5, budget=0.5) as mon:
        _train(model, opt, digits, 10, monitor=mon)
        mon.pause()
        assert mon.paused
        t0, points = mon._t0, mon._meter.n
        time.sleep(0.05)
        _train(model, opt, digits, 10, monitor=mon)  # steps 11..20: counted, not watched
        assert not mon._acts  # no activations copied while paused
        assert mon._meter.n == points
        mon.resume()
        mon.resume()  # a second resume changes nothing
        assert not mon.paused and mon._t0 >= t0 + 0.05
        _train(model, opt, digits, 10, monitor=mon)
        assert mon._meter.n == points + 9  # the first step after the pause spans it: left out
    assert mon.step_count == 30
    for kind in ("weight_grid", "distribution", "gradient_health"):
        assert [f.step for f in sink.select(kind=kind, layer="conv1")] == [5, 10, 25, 30], kind


def test_the_trajectory_axes_are_refreshed_less_often_as_the_path_grows(digits, lenet) -> None:
    model = lenet()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    sink = MemorySink()
    # (one recording at a time: a batch of them decomposes once, at its last, see
    # test_deferred_batches_decompose_once_at_their_last_update)
    with convscope.watch(
        model, optimizer=opt, logdir=None, sinks=[sink], every=1, record=["trajectory"], budget=None, batch_window=0.0
    ) as mon:
        _train(model, opt, digits, 120, monitor=mon)
    tracker = mon.layers["conv1"].trajectory
    assert tracker.updates == 120 and tracker.refresh > 4
    assert tracker.refresh == 119 // 8  # set from the path before the last update
    # between refreshes the explained variance stays that of the last decomposition; it changes at refreshes
    ratios = [tuple(f.payload["explained_variance"]) for f in sink.select(kind="trajectory", layer="conv1")]
    changes = sum(a != b for a, b in zip(ratios, ratios[1:], strict=False))
    assert 120 // 8 < changes < 120 // 4


def test_budget_must_be_a_share(lenet) -> None:
    for bad in (0, -0.1, 1.5):
        with pytest.raises(DataError, match="budget"):
            convscope.watch(lenet(), logdir=None, budget=bad)


def test_start_pays_the_eigen_solver_import_before_training(tmp_path) -> None:
    pytest.importorskip("scipy")
    # a fresh interpreter: this one imported SciPy long ago
    code = (
        "import sys, torch, convscope\n"
        "net = convscope.models.create_model('lenet5-simplified')\n"
        "assert 'scipy.linalg' not in sys.modules\n"
        "mon = convscope.watch(net, optimizer=torch.optim.SGD(net.parameters(), lr=0.01), logdir=None)\n"
        "print('scipy.linalg' in sys.modules)\n"
        "mon.close()\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True"


def test_the_batching_window_is_an_option(digits, lenet) -> None:
    # batch_window= sets how long the background thread gathers recordings (default 2 s; the
    # gathering itself is tested in test_pipeline.py); 0 analyses each recording at once
    with convscope.watch(lenet(), logdir=None, sinks=[MemorySink()]) as mon:
        assert mon._pipeline.linger == 2.0
    model = lenet()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    sink = MemorySink()
    with convscope.watch(model, optimizer=opt, logdir=None, sinks=[sink], every=5, budget=None, batch_window=0) as mon:
        assert mon._pipeline.linger == 0.0
        _train(model, opt, digits, 10, monitor=mon)
    assert [f.step for f in sink.select(kind="distribution", layer="conv1")] == [5, 10]
    for bad in (-1, 61, "2", True):
        with pytest.raises(DataError, match="batch_window"):
            convscope.watch(lenet(), logdir=None, batch_window=bad)
    # queue_size= bounds the work items (default 1024: half of it is a batch of 30 to 40 LeNet-5
    # recordings, so the window decides), and is checked like the others
    with convscope.watch(lenet(), logdir=None, sinks=[MemorySink()], queue_size=64) as mon:
        assert mon._pipeline.maxsize == 64
    with convscope.watch(lenet(), logdir=None, sinks=[MemorySink()]) as mon:
        assert mon._pipeline.maxsize == 1024
    for bad in (0, 1, 2.5, "256", True):
        with pytest.raises(DataError, match="queue_size"):
            convscope.watch(lenet(), logdir=None, queue_size=bad)


def test_a_refused_recording_in_a_batch_costs_only_itself_and_the_trajectory_adds_the_others_once() -> None:
    # the worker updates a layer's trajectory once per batch of recordings; NaN weights in one
    # of them must neither stop the others nor add any of them twice
    from convscope.analysis import TrajectoryTracker
    from convscope.insitu import _reduce
    from convscope.models.zoo import create_model

    torch.manual_seed(0)
    monitor = convscope.Monitor(create_model("lenet5-simplified"), logdir=None)
    state = monitor.layers["conv1"]
    walk = [state.weight() + 0.01 * k * torch.randn_like(state.weight()) for k in range(6)]
    bad = walk[3].clone()
    bad[0, 0, 0, 0] = float("nan")
    out = _reduce._trajectory_frames(monitor, state, [(10, walk[0]), (20, walk[1]), (30, bad), (40, walk[4]), (50, walk[5])])
    assert [type(o).__name__ for o in out] == ["list", "list", "DataError", "list", "list"]
    assert "NaN" in str(out[2])
    assert [frames[0].step for frames in out if isinstance(frames, list)] == [10, 20, 40, 50]
    alone = TrajectoryTracker(seed=monitor.seed, refresh=4)
    for frames, w in zip([out[0], out[1], out[3], out[4]], [walk[0], walk[1], walk[4], walk[5]], strict=True):
        np.testing.assert_allclose(frames[0].payload["pca"], alone.update(w).pca, rtol=1e-4, atol=1e-6)
    assert state.trajectory.kept == alone.kept == 4 and list(state.trajectory_steps.values()) == [10, 20, 40, 50]
    assert out[4][0].payload["path_steps"].tolist() == [10, 20, 40, 50]


def test_a_long_trajectory_keeps_the_steps_of_its_kept_points_only() -> None:
    # the tracker thins its kept points as they pass max_points; the training steps of the
    # points it no longer keeps are let go too, and the kept ones keep theirs
    from convscope.insitu import _reduce
    from convscope.models.zoo import create_model

    torch.manual_seed(0)
    monitor = convscope.Monitor(create_model("lenet5-simplified"), logdir=None)
    state = monitor.layers["conv1"]
    w = state.weight()
    last = None
    for batch in range(20):
        args = []
        for k in range(20):
            w = w + 0.01 * torch.randn_like(w)
            args.append((10 * (20 * batch + k + 1), w.clone()))
        last = _reduce._trajectory_frames(monitor, state, args)[-1][0]
    tracker = state.trajectory
    assert len(state.trajectory_steps) <= 2 * tracker.max_points + 1
    ordinals, _ = tracker.path()
    # update k (from 0) was training step 10 * (k + 1)
    assert last.payload["path_steps"].tolist() == [10 * (k + 1) for k in ordinals.tolist()]
    assert len(ordinals) < tracker.max_points < 400  # thinned: the newest kept one is within a stride of the end
    assert 4000 - 10 * tracker._stride < last.payload["path_steps"][-1] <= 4000


def _record_with(where: str, digits, lenet, monkeypatch) -> tuple[MemorySink, set[str]]:
    """Train 30 steps watched with every view every 5 steps, the analysis on ``where``; the frames,
    and the threads that built the weight grids."""
    from convscope.insitu import _reduce

    threads: set[str] = set()
    weight_frame = getattr(_reduce._weight_frames, "spied", _reduce._weight_frames)

    def spy(*args):
        threads.add(threading.current_thread().name)
        return weight_frame(*args)

    spy.spied = weight_frame

    monkeypatch.setattr(_reduce, "_weight_frames", spy)
    torch.manual_seed(0)
    model = lenet()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    sink = MemorySink()
    with convscope.watch(model, optimizer=opt, logdir=None, sinks=[sink], every=5, budget=None, analysis_thread=where, batch_window=0) as mon:
        _train(model, opt, digits, 30, monitor=mon)
    assert mon.analysis_thread == where and mon._pipeline.inline == (where == "training")
    return sink, threads


def test_the_analysis_on_the_training_thread_gives_the_frames_of_the_background_thread(digits, lenet, monkeypatch) -> None:
    # The same training watched twice: once analysed on the training thread (between steps,
    # in batches), once on the background thread. Same frames, built where asked.
    on_training, threads_t = _record_with("training", digits, lenet, monkeypatch)
    in_background, threads_b = _record_with("background", digits, lenet, monkeypatch)
    # (close() itself finishes what the background thread has not started)
    assert threads_t == {"MainThread"} and "convscope-frames" in threads_b

    def key(f):
        return (f.kind, f.layer, f.step, f.payload.get("name", ""))

    views = [f for f in on_training.frames if f.kind not in ("run_meta", "dropped")]
    others = {key(f): f for f in in_background.frames if f.kind not in ("run_meta", "dropped")}
    assert sorted(map(key, views)) == sorted(others)
    assert len({f.step for f in views if f.kind == "trajectory"}) == 6
    for f in views:
        g = others[key(f)]
        for name, value in f.payload.items():
            if isinstance(value, np.ndarray) and value.dtype.kind == "f":  # (torch may sum in another order)
                np.testing.assert_allclose(value, g.payload[name], rtol=1e-4, atol=1e-6, err_msg=str(key(f)))
            elif isinstance(value, np.ndarray):
                np.testing.assert_array_equal(value, g.payload[name], err_msg=str(key(f)))


def test_the_analysis_runs_on_the_training_thread_where_training_fills_the_cores(lenet, monkeypatch) -> None:
    from convscope.insitu import _monitor

    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    for cores, where in (({0, 1}, "training"), ({0}, "training"), (set(range(8)), "background")):
        monkeypatch.setattr(_monitor.os, "sched_getaffinity", lambda _pid, cores=cores: cores, raising=False)
        with convscope.watch(lenet(), logdir=None) as mon:
            assert mon.analysis_thread == where, cores
            assert mon._pipeline.inline == (where == "training")
    with convscope.watch(lenet(), logdir=None, analysis_thread="background") as mon:
        assert mon.analysis_thread == "background"
    with pytest.raises(DataError, match="analysis_thread"):
        convscope.watch(lenet(), logdir=None, analysis_thread="gpu")


def test_recordings_gathered_for_the_training_thread_are_analysed_when_due_and_at_pause(digits, lenet) -> None:
    model = lenet()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    sink = MemorySink()
    with convscope.watch(
        model, optimizer=opt, logdir=None, sinks=[sink], every=2, budget=None, analysis_thread="training", batch_window=60
    ) as mon:
        _train(model, opt, digits, 6, monitor=mon)
        assert mon._pipeline._queue  # gathered: the window has not passed
        assert not sink.select(kind="distribution")
        mon.pause()  # what was gathered is analysed now
        assert not mon._pipeline._queue and mon._analysis_seconds > 0
        assert mon._pipeline.drain()
        assert [f.step for f in sink.select(kind="distribution", layer="conv1")] == [2, 4, 6]
        mon.resume()
        mon._pipeline.linger = 0.0  # a window that has passed: analysed after the next step
        _train(model, opt, digits, 2, monitor=mon)
        assert not mon._pipeline._queue
    assert [f.step for f in sink.select(kind="distribution", layer="conv1")] == [2, 4, 6, 8]


def test_the_budget_takes_no_mean_cost_before_a_recording_is_finished(lenet, monkeypatch) -> None:
    # Three recordings gathered, none finished, and a second of worker CPU spent on the run's
    # start (its graph, scalars): that is no recording's cost, so the next step is recorded.
    # Once one of them is finished, the same second is the mean, and four more would pass.
    from convscope.insitu._budget import SlowdownMeter

    decisions = []
    for finished in (0, 1):
        mon = convscope.watch(lenet(), logdir=None, sinks=[MemorySink()], every=1, budget=0.5, analysis_thread="background")
        try:
            mon._meter = SlowdownMeter(prior=1.0, prior_sd=1e-9)
            monkeypatch.setattr(mon._pipeline, "worker_cpu", lambda: 0.0)
            monkeypatch.setattr(mon._pipeline, "lingering", True)
            mon.stats.recorded_steps = 3
            mon._recordings.extend([10**6] * (3 - finished))  # (item counts the worker has not reached)
            mon._pipeline.stats.cpu_seconds = 1.0
            mon._t0 = time.perf_counter() - 1.0
            decisions.append(mon._within_budget(4))
        finally:
            mon.close()
    assert decisions == [True, False]


def test_the_first_forward_hook_goes_once_it_has_the_input_shape_and_the_clock(digits, lenet) -> None:
    model = lenet()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with convscope.watch(model, optimizer=opt, logdir=None, sinks=[MemorySink()], every=5) as mon:
        mon.pause()  # the budget's clock starts with the first watched forward pass: the hook waits
        _train(model, opt, digits, 1, monitor=mon)
        assert len(model._forward_pre_hooks) == 1 and mon._t0 is None
        mon.resume()
        _train(model, opt, digits, 3, monitor=mon)
        assert not model._forward_pre_hooks and mon._t0 is not None  # the model's call is plain again
        assert mon.graph is not None and mon.input_shape == (1, 28, 28)


def test_layer_and_pre_step_hooks_are_attached_only_for_the_steps_that_record(digits, lenet) -> None:
    # The layers run hook-free on the steps that record nothing; the forward hooks are there for
    # the forward pass of a recording step, the optimizer's pre-step hook for the update of a
    # step that checks the gradients and records no activations. Where it does both, the
    # forward hooks copy the weights before the update instead (no pre-step hook to attach).
    model = lenet()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)  # (so an update is not lr x gradient)
    seen, weights = [], {}

    def look(step, model, _x):  # after the step's forward and backward, before its update
        seen.append((step, bool(model.conv1._forward_hooks), bool(opt._optimizer_step_pre_hooks)))
        weights[step - 1] = model.conv1.weight.detach().clone()  # (after the last step's update)

    sink = MemorySink()
    with convscope.watch(
        model, optimizer=opt, logdir=None, sinks=[sink], record=["distribution", "gradients"],
        every={"distribution": 4, "gradients": 6}, budget=None,
    ) as mon:
        before, taken = mon._before_step, []
        mon._before_step = lambda: taken.append(mon.step_count + 1) or before()
        _train(model, opt, digits, 12, monitor=mon, on_step=look)
        weights[12] = model.conv1.weight.detach().clone()
        mon.pause()
        assert not model.conv1._forward_hooks and not opt._optimizer_step_pre_hooks  # paused: none
        mon.resume()
    assert seen == [(s, s % 4 == 0, s % 6 == 0 and s % 4 != 0) for s in range(1, 13)]
    assert [f.step for f in sink.select(kind="distribution", layer="conv1")] == [4, 8, 12]
    assert taken == [6]  # the weights right before that update; step 12's came with its forward pass
    health = sink.select(kind="gradient_health", layer="conv1")
    assert [f.step for f in health] == [6, 12]
    for frame in health:  # each measured from the weights right before its own update (against those after it)
        step = frame.step
        expected = float((weights[step] - weights[step - 1]).norm() / weights[step].norm())
        assert frame.payload["update_ratio"] == pytest.approx(expected, rel=1e-4)
    # a probe batch runs its own pass, with the hooks attached for it alone
    probe_sink = MemorySink()
    with convscope.watch(model, optimizer=opt, logdir=None, sinks=[probe_sink], every=3, budget=None, probe=digits[0][:4]) as mon:
        _train(model, opt, digits, 6, monitor=mon)
        assert not model.conv1._forward_hooks
    assert [f.step for f in probe_sink.select(kind="distribution", layer="conv1")] == [3, 6]


def test_log_reads_a_cpu_tensor_at_once_and_counts_its_time(lenet) -> None:
    # Holding a tensor per step until the batch is read costs CPU training more than reading
    # it; the scalar frame carries the same value, and log()'s time is convscope's cost.
    sink = MemorySink()
    model = lenet()
    with convscope.watch(model, logdir=None, sinks=[sink], budget=None) as mon:
        loss = model(torch.zeros(2, 1, 28, 28)).square().mean()  # requires grad
        mon.log(first=1.0)  # (sent at once: the batch's clock starts)
        before = mon.stats.seconds_in_step_hooks
        mon.log(loss=loss, acc=0.5, n=np.int64(3))
        assert [type(v) for _, _, v, _ in mon._scalars] == [float, float, np.int64]
        assert mon.stats.seconds_in_step_hooks > before
        # what is not one number is refused where it is logged, and the batch is not lost
        with pytest.raises(DataError, match="many= has 3 values"):
            mon.log(many=torch.ones(3))
        with pytest.raises(DataError, match="name= is a str"):
            mon.log(name="conv1")
        mon.step()
    values = {f.payload["name"]: f.payload["value"] for f in sink.select(kind="scalar")}
    assert values["loss"] == pytest.approx(loss.item()) and values["acc"] == 0.5 and values["n"] == 3
    assert not mon.stats.sink_failures


def test_resume_goes_on_with_the_run_where_it_stopped(digits, lenet, tmp_path) -> None:
    from convscope.errors import StoreError
    from convscope.store import RunStore

    model = lenet()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with convscope.watch(model, optimizer=opt, logdir=tmp_path, run="long job", budget=None, every=5) as mon:
        _train(model, opt, digits, 20, monitor=mon)
        # its writer is alive: another training going on with it now would interleave two trainings
        other = lenet()
        with pytest.raises(StoreError, match="is live"):
            convscope.watch(other, optimizer=torch.optim.SGD(other.parameters(), lr=0.05), logdir=tmp_path, run="long job", resume=True)
    store = RunStore(tmp_path)
    started = store.open_run("long-job").meta()["started"]
    # the training resumed from its checkpoint, in a new monitor (a new process, in real life)
    with convscope.watch(model, optimizer=opt, logdir=tmp_path, run="long job", resume=True, budget=None, every=5) as mon2:
        assert mon2.run_id == "long-job" and mon2.step_count == 20
        _train(model, opt, digits, 10, monitor=mon2)
    assert mon2.step_count == 30
    assert [r["id"] for r in store.list_runs()] == ["long-job"]  # no long-job-2
    with store.open_run("long-job") as r:
        assert r.status() == "finished"
        assert r.steps(kind="weight_grid", layer="conv1") == [5, 10, 15, 20, 25, 30]
        logged = [f.payload["steps"] for f in r.frames(kind="scalars") if f.payload["name"] == "loss"]
        assert np.concatenate(logged).tolist() == list(range(1, 31))
        meta = r.meta()
        assert meta["started"] == started and len(meta["resumed"]) == 1 and "ended" in meta
        # the dashboard marks where training went on: a run_meta "resume" event at that step
        starts = [(f.step, f.payload["event"]) for f in r.frames(kind="run_meta") if f.payload["event"] in ("start", "resume")]
        assert starts == [(0, "start"), (20, "resume")]
    # the checkpoint was older than the run's last step: the steps count from it, the old frames stay
    with convscope.watch(model, optimizer=opt, logdir=tmp_path, run="long job", resume=True, start_step=25, budget=None, every=5) as mon3:
        _train(model, opt, digits, 5, monitor=mon3)
    with store.open_run("long-job") as r:
        grids = r.frames(kind="weight_grid", layer="conv1")
        assert [f.step for f in grids] == [5, 10, 15, 20, 25, 30, 30]  # the newer 30 after the older
        assert len(r.meta()["resumed"]) == 2
    # a run not there yet is started; resume needs the run's name and its store
    with convscope.watch(model, optimizer=opt, logdir=tmp_path, run="fresh", resume=True, every=5) as mon4:
        assert mon4.run_id == "fresh" and mon4.step_count == 0
    with pytest.raises(DataError, match="run="):
        convscope.watch(model, optimizer=opt, logdir=tmp_path, resume=True)
    with pytest.raises(DataError, match="start_step"):
        convscope.watch(model, optimizer=opt, logdir=None, start_step=-1)


def test_a_resumed_runs_filter_groups_keep_their_ids(digits, lenet, tmp_path) -> None:
    from convscope.analysis.groups import FilterGroups
    from convscope.store import RunStore

    model = lenet()
    with torch.no_grad():  # filters 0 and 1 alike: one group that lasts (lr 0: the weights stay)
        model.conv1.weight[1] = model.conv1.weight[0]
        model.conv1.bias[1] = model.conv1.bias[0]
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    options = {"logdir": tmp_path, "run": "job", "budget": None, "every": 5, "record": ["correlation"]}
    with convscope.watch(model, optimizer=opt, **options) as mon:
        _train(model, opt, digits, 10, monitor=mon)
    with convscope.watch(model, optimizer=opt, resume=True, **options) as mon2:
        _train(model, opt, digits, 5, monitor=mon2)
    with RunStore(tmp_path).open_run("job") as r:
        frames = r.frames(kind="groups", layer="conv1")
    assert [f.step for f in frames] == [5, 10, 15]
    before, after = FilterGroups.from_payload(frames[1].payload), FilterGroups.from_payload(frames[2].payload)
    gid = int(before.labels[0])
    assert gid >= 0 and before.labels[1] == gid and after.labels[0] == after.labels[1] == gid
    # the group goes on: it persists across the resume, where a new monitor alone would say it appeared
    assert ("persist", (gid,)) in [(e.type, e.ids) for e in after.events]
    assert not any(e.type == "appear" and e.ids == (gid,) for e in after.events)
    assert after.next_id >= before.next_id == frames[1].payload["next_id"]


def test_a_resumed_runs_dropped_counts_are_the_runs_totals(lenet, tmp_path) -> None:
    from convscope.store import RunStore

    model = lenet()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    deferred = []
    for resume in (False, True):
        with convscope.watch(model, optimizer=opt, logdir=tmp_path, run="tight", every=1, budget=0.001, resume=resume) as mon:
            for _ in range(30):
                loss = model(torch.randn(16, 1, 28, 28)).square().mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
        deferred.append(mon.stats.deferred)
    assert all(d > 0 for d in deferred)
    with RunStore(tmp_path).open_run("tight") as r:
        counts = [f.payload["count"] for f in r.frames(kind="dropped") if f.payload["sink"] == "budget"]
    assert max(counts) == sum(deferred)  # what a reader (the dashboard's note) takes as the run's count


def test_watching_a_watched_model_again_closes_the_earlier_monitor(lenet, tmp_path) -> None:
    # A notebook cell run again (or a loop restarted without close()): one monitor, not two
    # recording every step into two runs at twice the cost.
    from convscope.store import RunStore

    model = lenet()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    first = convscope.watch(model, optimizer=opt, logdir=tmp_path, run="cell", every=2)
    for _ in range(4):
        model(torch.randn(8, 1, 28, 28)).square().mean().backward()
        opt.step()
    with pytest.warns(RuntimeWarning, match="already watched .*closed"):
        second = convscope.watch(model, optimizer=opt, logdir=tmp_path, run="cell", every=2)
    assert first._closed and not first._handles and not first._layer_hooks
    with second:
        for _ in range(4):
            model(torch.randn(8, 1, 28, 28)).square().mean().backward()
            opt.step()
    assert first.step_count == 4 and second.step_count == 4  # the earlier one counted no more
    store = RunStore(tmp_path)
    assert {r["id"]: r["status"] for r in store.list_runs()} == {"cell": "finished", "cell-2": "finished"}
    with store.open_run("cell") as r:
        assert r.steps(kind="weight_grid", layer="conv1") == [2, 4]
    # the same notebook cell with resume=True goes on with the run it had open
    third = lenet()
    opt3 = torch.optim.SGD(third.parameters(), lr=0.05)
    a = convscope.watch(third, optimizer=opt3, logdir=tmp_path, run="nb", every=2)
    with pytest.warns(RuntimeWarning, match="already watched"):
        b = convscope.watch(third, optimizer=opt3, logdir=tmp_path, run="nb", resume=True, every=2)
    b.close()
    assert a._closed and b.run_id == "nb"
    # other models are left alone
    with convscope.watch(lenet(), logdir=None) as x, convscope.watch(lenet(), logdir=None) as y:
        assert not x._closed and not y._closed


@pytest.mark.parametrize(
    "backend",
    [
        "eager",
        # torch.compile's default, which generates and builds C++ on a CPU (about 20 s here, once)
        pytest.param("inductor", marks=pytest.mark.skipif(shutil.which("g++") is None, reason="inductor needs a C++ compiler")),
    ],
)
def test_a_compiled_model_records_every_view(digits, lenet, backend) -> None:
    # torch.compile takes in the hooks a module has when it compiles it: a compiled model's layer
    # hooks stay attached from watch() on, copy only on recording steps, and run outside the
    # compiled graphs (traced, each recording step recompiled the model, and training went ~9x slower).
    import torch._dynamo

    torch._dynamo.reset()  # (nothing compiled earlier in this process is reused for this model)
    model = lenet()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    compiled = torch.compile(model, backend=backend)
    sink = MemorySink()
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # (no "hooks did not run")
        with convscope.watch(compiled, optimizer=opt, logdir=None, sinks=[sink], every=5, budget=None) as mon:
            maps = {}  # conv1's output on each recording step's batch, computed apart from the model
            on_step = lambda step, _m, x: maps.setdefault(step, torch.nn.functional.conv2d(x[:8], model.conv1.weight, model.conv1.bias).detach())  # noqa: E731
            _train(compiled, opt, digits, 20, monitor=mon, on_step=on_step)
    assert list(mon.layers) == ["conv1", "conv2"]  # the model's own names, not _orig_mod.conv1
    for frame in sink.select(kind="distribution", layer="conv1"):  # the maps the compiled model made
        expected = maps[frame.step].mean(dim=(0, 2, 3)).numpy()  # (8 x 26 x 26 over the grid's limit: every 2nd position)
        grid = maps[frame.step][:, :, ::2, ::2].mean(dim=(0, 2, 3)).numpy()
        np.testing.assert_allclose(frame.payload["mean"], grid, rtol=1e-4, atol=1e-5)
        assert not np.allclose(grid, expected, rtol=1e-6, atol=0)  # (the grid is what it reads)
    for kind in ("weight_grid", "trajectory", "distribution", "correlation", "groups", "gradient_health"):
        assert [f.step for f in sink.select(kind=kind, layer="conv1")] == [5, 10, 15, 20], kind
    np.testing.assert_allclose(sink.select(kind="weight_grid", layer="conv2")[-1].payload["weights"], model.conv2.weight.detach().numpy(), rtol=1e-6)
    assert not model.conv1._forward_hooks and not model.conv2._forward_hooks  # gone with close()
    torch._dynamo.reset()


def test_hooks_a_compiled_model_never_runs_are_said(digits, lenet) -> None:
    import torch._dynamo

    torch._dynamo.reset()
    model = lenet()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    compiled = torch.compile(model, backend="eager")
    _train(compiled, opt, digits, 2)  # compiled before watch(): the hooks it adds are not seen
    sink = MemorySink()
    with pytest.warns(RuntimeWarning, match="hooks did not run"):
        with convscope.watch(compiled, optimizer=opt, logdir=None, sinks=[sink], every=5, budget=None) as mon:
            _train(compiled, opt, digits, 10, monitor=mon)
    assert not sink.select(kind="distribution") and len(sink.select(kind="weight_grid", layer="conv1")) == 2  # the rest is recorded
    torch._dynamo.reset()


def test_watching_an_eager_model_does_not_load_the_compiler() -> None:
    # (loading torch._dynamo to make the hooks opaque to it costs about 0.8 s: only where it is loaded already)
    code = (
        "import sys, torch, convscope\n"
        "net = convscope.load_model('lenet5-simplified', pretrained=False).module\n"
        "convscope.watch(net, logdir=None).close()\n"
        "assert 'torch._dynamo' not in sys.modules, 'watch() loaded the compiler'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_a_half_precision_model_gets_its_graph_and_every_view(dtype) -> None:
    # the graph is built from zeros of the model's own dtype and device (a float32 CPU
    # example failed against half-precision weights, and would against a GPU model's)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Conv2d(8, 8, 3)).to(dtype)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    sink = MemorySink()
    x = torch.randn(8, 3, 16, 16).to(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        with convscope.watch(model, optimizer=opt, logdir=None, sinks=[sink], every=5, budget=None) as mon:
            for _ in range(10):
                loss = model(x).float().square().mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
    assert mon.graph is not None and [layer.name for layer in mon.graph.layers if layer.name in ("0", "2")] == ["0", "2"]
    assert mon.graph.input_shape == (3, 16, 16)
    for kind in ("weight_grid", "trajectory", "distribution", "correlation", "groups", "gradient_health"):
        assert [f.step for f in sink.select(kind=kind, layer="2")] == [5, 10], kind
    grid = sink.select(kind="weight_grid", layer="2")[-1].payload["weights"]
    np.testing.assert_array_equal(grid, model[2].weight.detach().float().numpy())


def test_a_conv3d_layer_gets_every_view_but_the_2d_ones_and_is_told_so() -> None:
    from convscope.insitu import VIEWS

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv3d(3, 4, 3), torch.nn.ReLU(), torch.nn.Conv2d(4, 4, 3))
    model[2].forward = lambda x: torch.nn.functional.conv2d(x.mean(2), model[2].weight, model[2].bias)  # depth averaged
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    sink = MemorySink()
    with pytest.warns(RuntimeWarning, match=r"watches 0 \(Conv3d\) without its weight grid and feature-map images"):
        mon = convscope.watch(model, optimizer=opt, logdir=None, sinks=[sink], every={v: 5 for v in VIEWS}, budget=None)
    x = torch.randn(2, 3, 8, 8, 8)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # (no "could not build frames")
        with mon:
            for _ in range(10):
                loss = model(x).square().mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
    assert mon.stats.sink_failures == {}
    conv3d = {f.kind for f in sink.frames if f.layer == "0"}
    assert conv3d == {"trajectory", "distribution", "correlation", "groups", "gradient_health"}
    assert {"weight_grid", "feature_maps"} <= {f.kind for f in sink.frames if f.layer == "2"}


@pytest.mark.parametrize("groups", [1, 2])
def test_a_transposed_convs_filters_are_its_output_channels(groups) -> None:
    # a ConvTranspose2d's weight is in x out/groups x kh x kw: read as filters first, its weight
    # grid had the inputs as filters (8 where the layer makes 4 maps) and pruning never matched
    # the correlation's 4 filters
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.ConvTranspose2d(8, 4, 2, stride=2, groups=groups))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    sink = MemorySink()
    with convscope.watch(model, optimizer=opt, logdir=None, sinks=[sink], every=5, budget=None) as mon:
        for _ in range(10):
            loss = model(torch.randn(4, 3, 10, 10)).square().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    assert mon.layers["2"].filters == 4
    w = model[2].weight.detach()  # 8 x 4/groups x 2 x 2
    conv_like = torch.cat([w[g * 8 // groups : (g + 1) * 8 // groups].transpose(0, 1) for g in range(groups)])  # 4 x 8/groups x 2 x 2
    grid = sink.select(kind="weight_grid", layer="2")[-1].payload["weights"]
    np.testing.assert_array_equal(grid, conv_like.numpy())
    assert sink.select(kind="trajectory", layer="2")[-1].payload["shape"] == [4, 8 // groups, 2, 2]
    assert sink.select(kind="correlation", layer="2")[-1].payload["matrix"].shape == (4, 4)


def test_a_monitor_says_what_it_watches_and_how_far_it_got(digits, lenet) -> None:
    model = lenet()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    mon = convscope.watch(model, optimizer=opt, logdir=None, sinks=[MemorySink()], run="look", every=5, budget=None)
    assert repr(mon).startswith("<convscope Monitor of SimplifiedLeNet5: watching, run 'look' in its sinks; layers conv1, conv2; step 0,")
    _train(model, opt, digits, 10, monitor=mon)
    mon._pipeline.drain()
    assert "step 10, 2 recorded," in repr(mon) and f"{mon._pipeline.stats.frames} frames, 0 dropped>" in repr(mon)
    assert mon._pipeline.stats.frames > 0
    mon.close()
    assert repr(mon).startswith("<convscope Monitor of SimplifiedLeNet5: closed,") and f"{mon.stats.frames} frames" in repr(mon)


def test_a_loop_whose_steps_are_never_counted_is_told_how_to_count_them(digits, lenet) -> None:
    # without optimizer=, the steps are counted by monitor.step(): a loop that forgets it records
    # nothing after its first step, so it is said (once), while it trains or when it ends
    model = lenet()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with pytest.warns(RuntimeWarning, match=r"counted no training step \(log\(\) was called 16 times at step 0\).*monitor.step\(\)") as said:
        with convscope.watch(model, logdir=None, sinks=[MemorySink()], every=5) as mon:
            _train(model, opt, digits, 30, monitor=mon)
    assert len([w for w in said if "counted no training step" in str(w.message)]) == 1
    with pytest.warns(RuntimeWarning, match=r"counted no training step \(training ended at step 0\)"):
        with convscope.watch(model, logdir=None, sinks=[MemorySink()], every=5):
            _train(model, opt, digits, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        with convscope.watch(model, logdir=None, sinks=[MemorySink()], every=5) as mon:  # counted: nothing to say
            _train(model, opt, digits, 20, monitor=mon, on_step=lambda *_: mon.step())
        assert mon.step_count == 20
        with convscope.watch(model, optimizer=opt, logdir=None, sinks=[MemorySink()], every=5) as mon:
            _train(model, opt, digits, 20, monitor=mon)
        convscope.watch(model, logdir=None, sinks=[MemorySink()]).close()  # (nothing ran: nothing to say)


def test_a_resumed_runs_gradient_health_goes_on_from_its_checks(digits, lenet, tmp_path) -> None:
    # a layer whose weights do not move (lr 0) while its gradients are real is stalled; the
    # tracker holds that back for 3 checks. Two checks before the resume and one after make three.
    from convscope.store import RunStore

    model = lenet()
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    options = {"logdir": tmp_path, "run": "job", "budget": None, "every": 5, "record": ["gradients"]}
    with convscope.watch(model, optimizer=opt, **options) as mon:
        _train(model, opt, digits, 10, monitor=mon)
    with convscope.watch(model, optimizer=opt, resume=True, **options) as mon2:
        assert mon2.layers["conv1"].health.history("conv1") == ["stalled", "stalled"]
        _train(model, opt, digits, 5, monitor=mon2)
    with RunStore(tmp_path).open_run("job") as r:
        got = [(f.step, f.payload["status"], f.payload["raw_status"]) for f in r.frames(kind="gradient_health", layer="conv1")]
    assert got == [(5, "healthy", "stalled"), (10, "healthy", "stalled"), (15, "stalled", "stalled")]


@pytest.mark.parametrize("thread", ["training", "background"])
def test_a_resumed_runs_trajectory_goes_on_with_its_path(digits, lenet, tmp_path, thread) -> None:
    # close() keeps each layer's trajectory tracker in the run; resume=True goes on with it, so
    # the path a view draws spans both parts. Where the run went on without it (a killed
    # process), or the checkpoint is older than the path's end, the path starts again.
    from convscope.frames import Frame
    from convscope.store import RunStore

    model = lenet()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    options = {"logdir": tmp_path, "run": "job", "budget": None, "every": 5, "record": ["trajectory"], "analysis_thread": thread}
    with convscope.watch(model, optimizer=opt, **options) as mon:
        _train(model, opt, digits, 40, monitor=mon)
    with convscope.watch(model, optimizer=opt, resume=True, **options) as mon2:
        assert mon2.layers["conv2"].trajectory.updates == 8
        _train(model, opt, digits, 20, monitor=mon2)
    store = RunStore(tmp_path)
    with store.open_run("job") as r:
        last = r.frames(kind="trajectory", layer="conv2")[-1]
    assert last.step == 60 and last.payload["path_steps"].tolist() == list(range(5, 65, 5))  # one path, both parts
    assert np.isfinite(last.payload["pca_path"]).all()
    # the checkpoint was older than the path's end: the weights went back, the path starts again
    with convscope.watch(model, optimizer=opt, resume=True, start_step=50, **options) as mon3:
        assert mon3.layers["conv2"].trajectory is None
    # a later part of the run whose process was killed before it kept its tracker: the path goes
    # on from the last one kept, straight to the next point
    writer = store.resume_run("job")
    writer.write(Frame(run="job", step=70, kind="trajectory", layer="conv2", payload=last.payload))
    writer.close()
    with convscope.watch(model, optimizer=opt, resume=True, **options) as mon4:
        assert mon4.step_count == 70 and mon4.layers["conv2"].trajectory.updates == 12
        _train(model, opt, digits, 5, monitor=mon4)
    with store.open_run("job") as r:
        assert r.frames(kind="trajectory", layer="conv2")[-1].payload["path_steps"].tolist() == [*range(5, 65, 5), 75]
    # a framework that says its own step after watch() started (Lightning's fit(ckpt_path=...)),
    # older than the path's end: the path starts again there too
    with convscope.watch(model, optimizer=opt, resume=True, **options) as mon5:
        assert mon5.layers["conv2"].trajectory is not None
        mon5._start_at(30)
        assert mon5.layers["conv2"].trajectory is None and mon5.step_count == 30


def test_the_trajectories_are_kept_in_the_run_while_training_runs(digits, lenet, tmp_path, monkeypatch) -> None:
    # (at most once a minute; here after every batch of recordings) so that a process that is
    # killed leaves all of its path but the last minute's for a resume
    import io

    from convscope.insitu import _monitor
    from convscope.store import RunStore

    monkeypatch.setattr(_monitor, "_KEEP_TRAJECTORIES_S", 0.0)
    monkeypatch.setattr(_monitor, "_KEEP_SHARE", 0)
    model = lenet()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with convscope.watch(model, optimizer=opt, logdir=tmp_path, run="job", budget=None, every=5, record=["trajectory"]) as mon:
        _train(model, opt, digits, 20, monitor=mon)
        mon._pipeline.drain()
        with RunStore(tmp_path).open_run("job") as r:  # (read while the run is live)
            assert r.status() == "live"
            with np.load(io.BytesIO(r.state("trajectory/conv1")), allow_pickle=False) as kept:
                assert kept["monitor_steps"].tolist()[-1] == 20 and kept["counts"].tolist()[1] == 4


def test_a_killed_trainings_resumed_run_goes_on_with_the_path_it_kept(lenet, tmp_path) -> None:
    script = (
        "import sys, time, torch, convscope\n"
        "from convscope.insitu import _monitor\n"
        "_monitor._KEEP_TRAJECTORIES_S, _monitor._KEEP_SHARE = 0.0, 0  # (kept after every batch)\n"
        "torch.manual_seed(0)\n"
        "net = convscope.load_model('lenet5-simplified', pretrained=False).module\n"
        "opt = torch.optim.SGD(net.parameters(), lr=0.05)\n"
        "mon = convscope.watch(net, optimizer=opt, logdir=sys.argv[1], run='killed', every=5, budget=None, record=['trajectory'])\n"
        "for _ in range(40):\n"
        "    loss = net(torch.randn(8, 1, 28, 28)).square().mean(); opt.zero_grad(); loss.backward(); opt.step()\n"
        "mon._pipeline.drain(); mon._store.flush()\n"
        "print('ready', flush=True)\n"
        "time.sleep(120)\n"
    )
    with subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        try:
            ready = proc.stdout.readline().strip()
        finally:
            proc.kill()  # (SIGKILL: no close(), no atexit)
            _, err = proc.communicate(timeout=30)
    assert ready == "ready", err[-2000:]
    model = lenet()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with convscope.watch(model, optimizer=opt, logdir=tmp_path, run="killed", resume=True, every=5, budget=None, record=["trajectory"]) as mon:
        assert mon.step_count == 40 and mon.layers["conv1"].trajectory.updates == 8
        for _ in range(10):
            loss = model(torch.randn(8, 1, 28, 28)).square().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    from convscope.store import RunStore

    with RunStore(tmp_path).open_run("killed") as r:
        assert r.frames(kind="trajectory", layer="conv1")[-1].payload["path_steps"].tolist() == list(range(5, 55, 5))


def test_a_long_paths_trajectory_is_kept_whichever_point_came_last(lenet, tmp_path) -> None:
    # past 256 updates the monitor forgets the steps of points the tracker no longer keeps; the
    # last point's step stays, the one a resumed run's path goes on from (kept or not)
    import io

    from convscope.store import RunStore

    torch.manual_seed(0)
    model = lenet()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with convscope.watch(model, optimizer=opt, logdir=tmp_path, run="long", budget=None, every=1, record=["trajectory"]) as mon:
        for _ in range(302):
            loss = model(torch.randn(4, 1, 28, 28)).square().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    assert mon.layers["conv1"].trajectory.updates == 302
    with RunStore(tmp_path).open_run("long") as r, np.load(io.BytesIO(r.state("trajectory/conv1")), allow_pickle=False) as kept:
        assert kept["monitor_steps"].tolist()[-1] == 302 and kept["monitor_ordinals"].tolist()[-1] == 301
        assert kept["monitor_ordinals"].tolist()[:-1] == kept["steps"].tolist()  # (301 is not kept: the stride is 4 by then)


@pytest.mark.parametrize("ending", ["end", "raise"])
def test_a_script_that_never_closes_its_monitor_ends_its_run_at_exit(tmp_path, ending) -> None:
    # A script that ends without close(), or that an exception ends, has its monitor closed as
    # the interpreter exits: every recording is stored and the run is finished (or failed),
    # where it used to read as crashed and lose the recordings of its last seconds.
    from convscope.store import RunStore

    code = (
        "import sys, torch, convscope\n"
        "torch.manual_seed(0)\n"
        "net = convscope.models.create_model('lenet5-simplified')\n"
        "opt = torch.optim.SGD(net.parameters(), lr=0.05)\n"
        "mon = convscope.watch(net, optimizer=opt, every=10, budget=None, logdir='runs', run='r', batch_window=60)\n"
        "x, y = torch.randn(32, 1, 28, 28), torch.randint(0, 10, (32,))\n"
        "for _ in range(100):\n"
        "    loss = torch.nn.functional.cross_entropy(net(x), y)\n"
        "    opt.zero_grad(); loss.backward(); opt.step(); mon.log(loss=loss)\n"
        "print(mon.stats.recorded_steps, flush=True)\n"
        f"if {ending == 'raise'}:\n"
        "    raise RuntimeError('the loop broke')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == (1 if ending == "raise" else 0), out.stderr
    assert out.stdout.strip() == "10"
    # (batch_window=60: nothing was analysed while training ran; all of it at exit)
    with RunStore(tmp_path / "runs").open_run("r") as run:
        assert run.status() == ("failed" if ending == "raise" else "finished")
        assert run.steps(kind="distribution", layer="conv1") == list(range(10, 101, 10))
        assert run.steps(kind="scalars")[-1] == 100

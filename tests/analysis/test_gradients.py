"""Gradient health in real small training runs: healthy, vanishing, exploding, stalled, non-finite."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch

import convscope
from convscope.analysis import GradientHealthTracker, HealthThresholds, gradient_health
from convscope.errors import DataError
from convscope.models.zoo import create_model

LAYERS = ("conv1", "conv2", "fc1", "fc2")


@pytest.fixture(scope="module")
def digits() -> tuple[torch.Tensor, torch.Tensor]:
    spec = convscope.load_model("lenet5-simplified").input_spec
    data = convscope.load_dataset("mnist-5k", split="train", spec=spec)
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(0))[:192]
    return data.images[order], data.labels[order]


def _train(
    digits: tuple[torch.Tensor, torch.Tensor],
    *,
    lr: float,
    steps: int = 6,
    prepare: Callable[[torch.nn.Module], None] | None = None,
    corrupt: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> list[dict[str, object]]:
    """Train a fresh simplified LeNet-5 with SGD and check every layer after every step, as the
    in situ monitor does (gradients before the step, weights right before and after it)."""
    torch.manual_seed(0)
    net = create_model("lenet5-simplified")
    if prepare is not None:
        prepare(net)
    opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=lr)
    tracker = GradientHealthTracker(patience=3)
    acts: dict[str, torch.Tensor] = {}
    hooks = [
        net.relu1.register_forward_hook(lambda _m, _i, o: acts.__setitem__("conv1", o.detach())),
        net.relu2.register_forward_hook(lambda _m, _i, o: acts.__setitem__("conv2", o.detach())),
        net.relu3.register_forward_hook(lambda _m, _i, o: acts.__setitem__("fc1", o.detach())),
    ]
    x, y = digits
    out = []
    try:
        for step in range(steps):
            xb, yb = x[step * 32 : (step + 1) * 32], y[step * 32 : (step + 1) * 32]
            if corrupt is not None:
                xb = corrupt(xb)
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(xb), yb).backward()
            before = {n: getattr(net, n).weight.detach().clone() for n in LAYERS}
            opt.step()
            out.append({
                n: tracker.update(n, getattr(net, n).weight.grad, getattr(net, n).weight, step=step,
                                  previous_weight=before[n], activations=acts.get(n))
                for n in LAYERS
            })
    finally:
        for h in hooks:
            h.remove()
    return out


def test_ordinary_training_is_healthy(digits) -> None:
    checks = _train(digits, lr=0.05)
    for check in checks:
        for name, h in check.items():
            assert h.status == "healthy" and h.raw_status == "healthy", (name, h)
            assert 1e-5 < h.update_ratio < 0.1 and h.nonfinite == 0
    # the measured update ratio of plain SGD is lr * |g| / |w|
    h = gradient_health(torch.ones(4, 4), torch.full((4, 4), 2.0), lr=0.01)
    assert h.update_ratio == pytest.approx(0.01 * 4 / 8)


def test_a_huge_learning_rate_explodes_at_once(digits) -> None:
    checks = _train(digits, lr=5.0, steps=3)
    first = checks[0]
    assert all(h.status == "exploding" for h in first.values())  # no patience for exploding
    assert any("update ratio" in r for h in first.values() for r in h.reasons)
    assert all(h.update_ratio > 0.1 for h in first.values())
    # and a gradient far beyond any healthy layer's is exploding on its own
    w = torch.randn(8, 8)
    assert gradient_health(torch.full_like(w, 1e3), w).status == "exploding"


def test_a_deep_sigmoid_stack_vanishes_and_the_tracker_waits_for_patience() -> None:
    torch.manual_seed(0)
    deep = torch.nn.Sequential(*[m for _ in range(12) for m in (torch.nn.Linear(32, 32), torch.nn.Sigmoid())],
                               torch.nn.Linear(32, 10))
    opt = torch.optim.SGD(deep.parameters(), lr=0.1)
    x, y = torch.randn(64, 32), torch.randint(0, 10, (64,))
    tracker = GradientHealthTracker(patience=3)
    first, last = [], []
    for _ in range(4):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(deep(x), y).backward()
        before = [deep[0].weight.detach().clone(), deep[-1].weight.detach().clone()]
        opt.step()
        first.append(tracker.update("first", deep[0].weight.grad, deep[0].weight, previous_weight=before[0]))
        last.append(tracker.update("last", deep[-1].weight.grad, deep[-1].weight, previous_weight=before[1]))
    assert [h.raw_status for h in first] == ["vanishing"] * 4
    assert [h.status for h in first] == ["healthy", "healthy", "vanishing", "vanishing"]
    assert first[0].grad_rms < 1e-7 and first[0].update_ratio < 1e-6
    assert all(h.status == "healthy" for h in last)
    assert tracker.history("first") == ["vanishing"] * 4
    assert set(tracker.latest()) == {"first", "last"}


def test_a_zero_learning_rate_or_a_frozen_layer_is_stalled(digits) -> None:
    checks = _train(digits, lr=0.0, steps=4)
    assert [c["conv2"].status for c in checks] == ["healthy", "healthy", "stalled", "stalled"]
    assert all(c["conv2"].raw_status == "stalled" and c["conv2"].update_ratio == 0 for c in checks)
    assert any("not moving" in r for r in checks[-1]["conv2"].reasons)

    def freeze(net: torch.nn.Module) -> None:
        net.conv1.weight.requires_grad_(False)

    frozen = _train(digits, lr=0.05, steps=3, prepare=freeze)
    assert frozen[-1]["conv1"].status == "stalled" and frozen[-1]["conv1"].zero_fraction == 1.0
    assert frozen[-1]["conv2"].status == "healthy"


def test_dead_relus_stall_their_layer(digits) -> None:
    # TensorView's case: after a bad update every conv1 unit is negative, so its ReLUs never fire
    def kill(net: torch.nn.Module) -> None:
        with torch.no_grad():
            net.conv1.bias.fill_(-100.0)

    checks = _train(digits, lr=0.05, steps=3, prepare=kill)
    h = checks[-1]["conv1"]
    assert h.status == "stalled" and h.dead_fraction == 1.0 and h.zero_fraction == 1.0
    assert any("never active" in r for r in h.reasons)


def test_an_inf_in_the_input_is_nonfinite_at_once(digits) -> None:
    def poison(x: torch.Tensor) -> torch.Tensor:
        x = x.clone()
        x[0, 0, 14, 14] = math.inf
        return x

    checks = _train(digits, lr=0.05, steps=1, corrupt=poison)
    for name, h in checks[0].items():
        assert h.status == "nonfinite" and h.nonfinite > 0, name
        assert math.isfinite(h.grad_norm)  # the norm of what is finite, still reported
    assert checks[0]["fc2"].to_payload()["status"] == "nonfinite"


def test_norms_of_huge_finite_gradients_do_not_overflow() -> None:
    w = torch.ones(4)
    g = torch.full((4,), 1e30)  # squares overflow float32
    h = gradient_health(g, w)
    assert h.nonfinite == 0 and h.grad_norm == pytest.approx(2e30) and h.status == "exploding"


def test_thresholds_payload_and_errors() -> None:
    w = torch.randn(16, 1, 3, 3, generator=torch.Generator().manual_seed(0))
    g = torch.full_like(w, 1e-3)
    assert gradient_health(g, w).status == "healthy"
    strict = HealthThresholds(vanishing_rms=1e-2)
    assert gradient_health(g, w, thresholds=strict).status == "vanishing"
    h = gradient_health(g, w, previous_weight=w - 0.5 * g, steps=2, activations=torch.randn(4, 16, 5, 5).relu())
    assert h.update_ratio == pytest.approx(float((0.5 * g).norm() / w.norm()) / 2, rel=1e-4)  # float32 difference
    payload = h.to_payload()
    assert set(payload) == {"status", "grad_norm", "update_ratio", "zero_fraction", "dead_fraction", "nonfinite", "reasons", "raw_status"}
    assert payload["reasons"] == [] and payload["raw_status"] == "healthy"
    vanishing = gradient_health(g, w, thresholds=strict).to_payload()
    assert vanishing["reasons"] == ["gradient RMS 0.001 < 0.01"] and vanishing["raw_status"] == "vanishing"
    assert isinstance(payload["nonfinite"], int) and isinstance(payload["grad_norm"], float)
    assert math.isnan(gradient_health(g, w).dead_fraction) and math.isnan(gradient_health(g, w).update_ratio)
    with pytest.raises(DataError, match="does not match"):
        gradient_health(torch.zeros(3), w)
    with pytest.raises(DataError, match="pruned"):
        gradient_health(g, w, previous_weight=torch.zeros(3))
    with pytest.raises(DataError, match="patience"):
        GradientHealthTracker(patience=0)
    tracker = GradientHealthTracker()
    tracker.update("a", g, w, step=5)
    with pytest.raises(DataError, match="not after"):
        tracker.update("a", g, w, step=5)
    tracker.reset("a")
    assert tracker.history("a") == []
    resumed = GradientHealthTracker(thresholds=strict)
    resumed.restore("b", ["healthy", "vanishing", "vanishing"])  # two checks before: the third reports it
    assert resumed.update("b", g, w, step=1).status == "vanishing" and resumed.history("b")[-1] == "vanishing"
    with pytest.raises(DataError, match="unknown gradient-health statuses"):
        resumed.restore("b", ["fine"])
    held = GradientHealthTracker(thresholds=strict).update("b", g, w, step=1).to_payload()  # patience 3: held back
    assert held["status"] == "healthy" and held["raw_status"] == "vanishing"
    assert held["reasons"] == ["gradient RMS 0.001 < 0.01", "vanishing for 1 of 3 checks"]


def test_checks_measured_together_equal_checks_one_by_one(digits) -> None:
    # the in situ monitor measures a batch of recordings at once (update_many) and gives the
    # distribution's per-channel maxima instead of the maps: the same results as one by one
    torch.manual_seed(0)
    net = create_model("lenet5-simplified")
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    acts: dict[str, torch.Tensor] = {}
    net.relu1.register_forward_hook(lambda _m, _i, o: acts.__setitem__("conv1", o.detach().clone()))
    x, y = digits
    checks = []
    for step in range(6):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x[step * 32 : (step + 1) * 32]), y[step * 32 : (step + 1) * 32]).backward()
        before = net.conv1.weight.detach().clone()
        if step == 3:
            net.conv1.weight.grad[0, 0, 0, 0] = float("nan")  # one check with a NaN gradient
        opt.step()
        checks.append({"grad": net.conv1.weight.grad.clone(), "weight": net.conv1.weight.detach().clone(), "step": step,
                       "previous_weight": before, "activations": acts["conv1"], "lr": 0.05})
    one_by_one, together = GradientHealthTracker(patience=2), GradientHealthTracker(patience=2)
    expected = [one_by_one.update("conv1", **c) for c in checks]
    maxima = [{**c, "activations": None, "channel_max": c["activations"].amax(dim=(0, 2, 3))} for c in checks]
    got = together.update_many("conv1", maxima)
    assert [h.status for h in got] == [h.status for h in expected] and got[3].status == "nonfinite"
    for a, b in zip(got, expected, strict=True):
        assert a.nonfinite == b.nonfinite and a.reasons == b.reasons and a.raw_status == b.raw_status
        for key in ("grad_norm", "update_ratio", "zero_fraction", "dead_fraction"):
            assert getattr(a, key) == pytest.approx(getattr(b, key), rel=1e-6), key
    assert together.history("conv1") == one_by_one.history("conv1")
    # without previous weights the tracker measures against the last check's weights, within a batch too
    plain = GradientHealthTracker()
    seq = [plain.update("conv1", c["grad"], c["weight"], step=c["step"]) for c in checks[:3]]
    batch = GradientHealthTracker().update_many("conv1", [{"grad": c["grad"], "weight": c["weight"], "step": c["step"]} for c in checks[:3]])
    assert [h.update_ratio for h in batch][1:] == pytest.approx([h.update_ratio for h in seq][1:], rel=1e-6)
    assert math.isnan(batch[0].update_ratio) and math.isnan(seq[0].update_ratio)

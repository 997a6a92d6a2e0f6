"""The slowdown meter: how much the background thread's CPU slows training, from the steps."""

from __future__ import annotations

import numpy as np
import pytest

from convscope.insitu._budget import SlowdownMeter


def _steps(meter: SlowdownMeter, factor: float, n: int, *, seed: int = 0, noise: float = 0.0003) -> None:
    """``n`` steps of 5 ms each (jittered), a quarter of them with background work slowing them by ``factor``."""
    rng = np.random.default_rng(seed)
    for _ in range(n):
        cpu = float(rng.uniform(0.0005, 0.004)) if rng.random() < 0.25 else 0.0
        meter.add(0.005 + factor * cpu + float(rng.normal(0, noise)), cpu)


@pytest.mark.parametrize("factor", [0.0, 0.3, 1.0, 1.5, 2.5])
def test_the_factor_is_found_from_jittered_steps(factor: float) -> None:
    meter = SlowdownMeter()
    _steps(meter, factor, 3000)
    assert meter.factor == pytest.approx(factor, abs=0.08)


def test_until_the_steps_tell_the_factor_is_the_prior() -> None:
    meter = SlowdownMeter(prior=1.0)
    assert meter.factor == 1.0
    for _ in range(100):  # steps without any background work say nothing about the slope
        meter.add(0.005, 0.0)
    assert meter.factor == 1.0
    # a few noisy steps move it only part of the way towards what they show
    few = SlowdownMeter(prior=1.0)
    _steps(few, 3.0, 12, noise=0.002)
    assert 1.0 < few.factor < 3.0
    many = SlowdownMeter(prior=1.0)
    _steps(many, 3.0, 3000, noise=0.002)
    assert abs(many.factor - 3.0) < abs(few.factor - 3.0)


def test_a_negative_slope_counts_as_free_and_a_pinned_prior_never_moves() -> None:
    meter = SlowdownMeter()
    _steps(meter, -1.0, 3000)
    assert meter.factor == 0.0
    pinned = SlowdownMeter(prior=2.0, prior_sd=1e-9)
    _steps(pinned, 0.0, 3000)
    assert pinned.factor == pytest.approx(2.0, abs=1e-3)


def test_long_pauses_between_steps_do_not_count_as_slowdown() -> None:
    # an evaluation pass between two optimizer steps takes a second while the background
    # thread catches up: those steps are left out instead of making the factor huge
    meter = SlowdownMeter()
    rng = np.random.default_rng(1)
    for i in range(3000):
        if i % 500 == 499:
            meter.add(1.0, 0.05)
        else:
            cpu = float(rng.uniform(0.0005, 0.004)) if rng.random() < 0.25 else 0.0
            meter.add(0.005 + 1.0 * cpu + float(rng.normal(0, 0.0003)), cpu)
    assert meter.factor == pytest.approx(1.0, abs=0.08)
    assert meter.outliers == 6 and meter.n == 3000 - 6


def test_marks_of_step_ends_fit_the_steps_between_them_and_a_gap_breaks_the_chain() -> None:
    # marks are (clock, background CPU, hook seconds) at each step's end; a step is the time
    # between two, less the hooks' seconds in it. A gap (a pause) leaves the next step out.
    rng = np.random.default_rng(2)
    marked, added = SlowdownMeter(), SlowdownMeter()
    now = cpu = hooks = 0.0
    marked.mark(now, cpu, hooks)
    for i in range(1500):  # three folds of MARKS held marks on the way
        if i == 700:
            marked.gap()
            now += 5.0  # the pause: no step
        spent = float(rng.uniform(0.0005, 0.004)) if rng.random() < 0.25 else 0.0
        hook = float(rng.uniform(0.0, 0.001))
        step = 0.005 + 1.5 * spent + float(rng.normal(0, 0.0003))
        now, cpu, hooks = now + step + hook, cpu + spent, hooks + hook
        marked.mark(now, cpu, hooks)
        if i != 700:
            added.add(step, spent)
    assert marked.last_mark == (now, cpu, hooks, False)
    assert marked.n == added.n == 1499 and marked.outliers == 0
    assert marked.factor == pytest.approx(added.factor, rel=1e-9)
    assert marked.factor == pytest.approx(1.5, abs=0.1)


def test_time_that_was_not_this_trainings_is_left_out_of_the_next_step() -> None:
    for fold_first in (False, True):
        meter = SlowdownMeter()
        meter.mark(0.98, 0.0, 0.0)
        meter.mark(1.0, 0.0, 0.0)
        if fold_first:
            meter.fold()  # the last mark is then held apart from the list
        meter.skip(0.25)  # another model's step
        meter.mark(1.26, 0.0, 0.0)
        meter.fold()
        # (the step that ended before it keeps its 20 ms: only the next one leaves the 0.25 s out)
        assert meter.n == 2 and meter.mean_step == pytest.approx(0.015)


def _touched_steps(meter: SlowdownMeter, excess: float, n: int, *, seed: int = 3, noise: float = 0.0003) -> None:
    """5 ms steps (jittered), background work in a quarter of them (factor 1.5), and the three
    steps of every ten that a recording touches ``excess`` seconds longer."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        cpu = float(rng.uniform(0.0005, 0.004)) if rng.random() < 0.25 else 0.0
        touched = i % 10 < 3
        meter.add(0.005 + 1.5 * cpu + excess * touched + float(rng.normal(0, noise)), cpu, touched=touched)


@pytest.mark.parametrize("excess", [0.0, 0.00004, 0.0002])
def test_what_the_monitors_work_costs_the_steps_it_touches_is_found_beside_the_factor(excess: float) -> None:
    meter = SlowdownMeter()
    _touched_steps(meter, excess, 6000)
    assert meter.touched == 1800
    assert meter.after == pytest.approx(excess, abs=0.000015)
    assert meter.factor == pytest.approx(1.5, abs=0.08)  # the second term leaves the first alone


def test_the_excess_of_touched_steps_starts_at_none_and_needs_steps_to_show() -> None:
    meter = SlowdownMeter()
    assert meter.after == 0.0
    for i in range(100):  # every step alike: nothing to tell touched ones apart by
        meter.add(0.005, 0.0, touched=i % 2 == 0)
    assert meter.after == 0.0
    few, many = SlowdownMeter(), SlowdownMeter()
    _touched_steps(few, 0.0002, 30, noise=0.002)
    _touched_steps(many, 0.0002, 6000, noise=0.002)
    # (a few noisy steps move it only part of the way; the prior's scale is 2% of a step, 100 us)
    assert few.after < 0.0002 and abs(many.after - 0.0002) < 0.00006

"""How much the monitor's background thread slows training, measured while training runs.

The background thread's CPU does not cost training the same everywhere. With a core of its own
(a GPU doing the training, or fewer torch threads than cores) it overlaps almost for free. When
training's threads keep every core busy, each CPU second it takes costs training about a second,
and more where a parallel region waits for the training thread that lost its core (measured in
``benchmarks/bench_insitu.py``: 1.0 to 1.7 seconds on a 2-core machine).

:class:`SlowdownMeter` finds out which case it is in from the steps themselves: it fits each
step's duration against the background thread's CPU during that step, and the slope is the
factor by which that CPU slows training.
"""

from __future__ import annotations

import math

__all__ = ["SlowdownMeter"]


class SlowdownMeter:
    """Least-squares fit of ``step seconds = base + factor * background CPU seconds in the step``.

    Every step is one point, steps without background work included (they fix ``base``). The
    slope starts at ``prior`` (1: the background thread's CPU costs training as much) and moves
    to what the steps show as fast as their scatter allows: the prior counts as one more
    measurement with standard deviation ``prior_sd``. Steps far longer than usual (an evaluation
    pass or a checkpoint between two optimizer steps) are left out, so that work the background
    thread does meanwhile does not look like a slowdown.

    Example:
        >>> meter = SlowdownMeter()
        >>> for i in range(200):
        ...     cpu = 0.002 if i % 4 == 0 else 0.0
        ...     meter.add(0.005 + 1.5 * cpu, cpu)
        >>> round(meter.factor, 2)
        1.5
    """

    #: a step longer than this many times the mean step is an outlier (after the first 20)
    OUTLIER = 10.0

    def __init__(self, prior: float = 1.0, prior_sd: float = 0.5) -> None:
        self.prior = prior
        self.prior_precision = 1.0 / prior_sd**2
        self.n = 0
        #: steps left out as outliers
        self.outliers = 0
        self._mx = self._my = 0.0
        self._cxx = self._cxy = self._cyy = 0.0

    def add(self, seconds: float, cpu: float) -> None:
        """One step: its wall seconds (the hooks' own time already taken off) and the background CPU in it."""
        if self.n >= 20 and seconds > self.OUTLIER * self._my:
            self.outliers += 1
            return
        self.n += 1
        dx = cpu - self._mx
        self._mx += dx / self.n
        dy = seconds - self._my
        self._my += dy / self.n
        self._cxx += dx * (cpu - self._mx)
        self._cxy += dx * (seconds - self._my)
        self._cyy += dy * (seconds - self._my)

    @property
    def factor(self) -> float:
        """Seconds of training lost per CPU second of the background thread (at least 0)."""
        if self.n < 3 or self._cxx <= 0.0:
            return self.prior
        slope = self._cxy / self._cxx
        residual = max(self._cyy - slope * self._cxy, 0.0) / (self.n - 2)
        if residual == 0.0:
            return max(0.0, slope)
        precision = self._cxx / residual  # of the slope, from the steps' scatter
        if not math.isfinite(precision):
            return max(0.0, slope)
        return max(0.0, (self.prior * self.prior_precision + slope * precision) / (self.prior_precision + precision))

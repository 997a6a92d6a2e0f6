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
    #: marks held before they are fitted (see :meth:`mark`)
    MARKS = 512

    def __init__(self, prior: float = 1.0, prior_sd: float = 0.5) -> None:
        self.prior = prior
        self.prior_precision = 1.0 / prior_sd**2
        self._n = 0
        self._outliers = 0
        self._mx = self._my = 0.0
        self._cxx = self._cxy = self._cyy = 0.0
        #: the ends of steps not fitted yet, as :meth:`mark` takes them (``None``: a gap)
        self.marks: list[tuple[float, float, float] | None] = []
        self._last: tuple[float, float, float] | None = None

    def mark(self, now: float, cpu: float, hooks: float) -> None:
        """The end of a step: the clock, the background thread's CPU seconds and the hooks' own
        seconds so far. The step is the time from the last mark, less the hooks' seconds in it.

        Only kept here, and fitted when the factor (or a count) is read, or every ``MARKS``
        steps: a call right after a training step costs several times what it costs in a loop
        (the step has evicted the caches), so the step's own share is one append.
        """
        self.marks.append((now, cpu, hooks))
        if len(self.marks) >= self.MARKS:
            self.fold()

    def gap(self) -> None:
        """The next mark ends no step (a pause lies between): it only starts the next one."""
        self.marks.append(None)

    def skip(self, seconds: float) -> None:
        """``seconds`` since the last mark were not this training's (another model's step ran
        between two of its steps): the step that ends at the next mark leaves them out."""
        if self.marks and self.marks[-1] is not None:
            now, cpu, hooks = self.marks[-1]
            self.marks[-1] = (now + seconds, cpu, hooks)
        elif not self.marks and self._last is not None:
            now, cpu, hooks = self._last
            self._last = (now + seconds, cpu, hooks)

    @property
    def last_mark(self) -> tuple[float, float, float] | None:
        """The latest mark (``None`` before the first, or right after a gap)."""
        return self.marks[-1] if self.marks else self._last

    def fold(self) -> None:
        """Fit the steps between the marks held so far."""
        marks, self.marks = self.marks, []
        last = self._last
        for mark in marks:
            if mark is not None and last is not None:
                self.add(mark[0] - last[0] - (mark[2] - last[2]), mark[1] - last[1])
            last = mark
        self._last = last

    @property
    def n(self) -> int:
        """Steps fitted."""
        if self.marks:
            self.fold()
        return self._n

    @property
    def outliers(self) -> int:
        """Steps left out as outliers."""
        if self.marks:
            self.fold()
        return self._outliers

    def add(self, seconds: float, cpu: float) -> None:
        """One step: its wall seconds (the hooks' own time already taken off) and the background CPU in it."""
        if self._n >= 20 and seconds > self.OUTLIER * self._my:
            self._outliers += 1
            return
        self._n += 1
        dx = cpu - self._mx
        self._mx += dx / self._n
        dy = seconds - self._my
        self._my += dy / self._n
        self._cxx += dx * (cpu - self._mx)
        self._cxy += dx * (seconds - self._my)
        self._cyy += dy * (seconds - self._my)

    @property
    def factor(self) -> float:
        """Seconds of training lost per CPU second of the background thread (at least 0)."""
        if self.marks:
            self.fold()
        if self._n < 3 or self._cxx <= 0.0:
            return self.prior
        slope = self._cxy / self._cxx
        residual = max(self._cyy - slope * self._cxy, 0.0) / (self._n - 2)
        if residual == 0.0:
            return max(0.0, slope)
        precision = self._cxx / residual  # of the slope, from the steps' scatter
        if not math.isfinite(precision):
            return max(0.0, slope)
        return max(0.0, (self.prior * self.prior_precision + slope * precision) / (self.prior_precision + precision))

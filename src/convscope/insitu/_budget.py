"""How much the monitor's background thread slows training, measured while training runs.

The background thread's CPU does not cost training the same everywhere. With a core of its own
(a GPU doing the training, or fewer torch threads than cores) it overlaps almost for free. When
training's threads keep every core busy, each CPU second it takes costs training about a second,
and more where a parallel region waits for the training thread that lost its core (measured in
``benchmarks/bench_insitu.py``: 1.0 to 1.7 seconds on a 2-core machine).

:class:`SlowdownMeter` finds out which case it is in from the steps themselves: it fits each
step's duration against the background thread's CPU during that step, and the slope is the
factor by which that CPU slows training.

It also measures what the monitor's work on the training thread costs beyond the time its own
timers count: a recording step runs its forward pass through torch's hook machinery, and the
steps right after a recording or an analysis start on caches that work has evicted. On LeNet-5
on two busy vCPUs, timing every step, a recording step took 50 to 110 us longer than a quiet
one besides the hooks' own time, and the two after it 20 to 45 us each, which no timer sees.
The fit's second term is that excess per such step: 17 to 26 us there.
"""

from __future__ import annotations

import math

__all__ = ["SlowdownMeter"]


class SlowdownMeter:
    """Least-squares fit of ``step seconds = base + factor * background CPU seconds in the step
    + after * (1 if the step is one the monitor's work touched, else 0)``.

    Every step is one point, steps without background work included (they fix ``base``). Each
    coefficient starts at its prior and moves to what the steps show as fast as their scatter
    allows: ``factor`` from ``prior`` (1: the background thread's CPU costs training as much),
    counted as one more measurement with standard deviation ``prior_sd``; ``after`` from 0,
    with a standard deviation of 2% of the mean step. A step the monitor's work touched is a
    recording step or one of the two after a recording or an analysis on the training thread
    (``touched=`` of :meth:`mark`); :attr:`touched` counts them, so ``after * touched`` is what
    they cost beyond the hooks' own time. Steps far longer than usual (an evaluation pass or a
    checkpoint between two optimizer steps) are left out, so that work the background thread
    does meanwhile does not look like a slowdown.

    Example:
        >>> meter = SlowdownMeter()
        >>> for i in range(200):
        ...     cpu = 0.002 if i % 4 == 0 else 0.0
        ...     meter.add(0.005 + 1.5 * cpu + 0.0001 * (i % 10 < 3), cpu, touched=i % 10 < 3)
        >>> round(meter.factor, 2), round(meter.after * 1e6), meter.touched
        (1.5, 100, 60)
    """

    #: a step longer than this many times the mean step is an outlier (after the first 20)
    OUTLIER = 10.0
    #: marks held before they are fitted (see :meth:`mark`)
    MARKS = 512
    #: the prior standard deviation of :attr:`after`, as a share of the mean step
    AFTER_SD = 0.02

    def __init__(self, prior: float = 1.0, prior_sd: float = 0.5) -> None:
        self.prior = prior
        self.prior_precision = 1.0 / prior_sd**2
        self._n = 0
        self._outliers = 0
        self._touched = 0
        # running means of (CPU, touched, seconds) and their co-moments (Welford)
        self._mean = [0.0, 0.0, 0.0]
        self._c = [[0.0] * 3 for _ in range(3)]
        self._fit: tuple[float, float] | None = None  # (factor, after), until the next step
        #: the ends of steps not fitted yet, as :meth:`mark` takes them (``None``: a gap;
        #: ``(seconds,)``: time left out of the next step, see :meth:`skip`)
        self.marks: list[tuple[float, float, float, bool] | tuple[float] | None] = []
        self._last: tuple[float, float, float, bool] | None = None

    def mark(self, now: float, cpu: float, hooks: float, touched: bool = False) -> None:
        """The end of a step: the clock, the background thread's CPU seconds and the hooks' own
        seconds so far, and whether the monitor's work touched the step (see the class). The
        step is the time from the last mark, less the hooks' seconds in it.

        Only kept here, and fitted when the factor (or a count) is read, or every ``MARKS``
        steps: a call right after a training step costs several times what it costs in a loop
        (the step has evicted the caches), so the step's own share is one append.
        """
        self.marks.append((now, cpu, hooks, touched))
        if len(self.marks) >= self.MARKS:
            self.fold()

    def gap(self) -> None:
        """The next mark ends no step (a pause lies between): it only starts the next one."""
        self.marks.append(None)

    def skip(self, seconds: float) -> None:
        """``seconds`` since the last mark were not this training's (another model's step ran
        between two of its steps): the step that ends at the next mark leaves them out."""
        if self.marks:
            if self.marks[-1] is not None:  # (held: the step that ends at the last mark keeps its time)
                self.marks.append((seconds,))
        elif self._last is not None:  # (fitted already)
            now, cpu, hooks, touched = self._last
            self._last = (now + seconds, cpu, hooks, touched)

    @property
    def last_mark(self) -> tuple[float, float, float, bool] | None:
        """The latest mark (``None`` before the first, or right after a gap)."""
        if self.marks:
            self.fold()
        return self._last

    def fold(self) -> None:
        """Fit the steps between the marks held so far."""
        marks, self.marks = self.marks, []
        last = self._last
        skipped = 0.0  # seconds before the next mark that were not this training's (see skip)
        for mark in marks:
            if mark is not None and len(mark) == 1:
                skipped += mark[0]
                continue
            if mark is not None and last is not None:
                self.add(mark[0] - last[0] - skipped - (mark[2] - last[2]), mark[1] - last[1], touched=mark[3])
            last, skipped = mark, 0.0
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

    @property
    def mean_step(self) -> float:
        """The mean of the steps fitted, seconds (the hooks' own time taken off)."""
        if self.marks:
            self.fold()
        return self._mean[2]

    @property
    def touched(self) -> int:
        """Steps fitted that the monitor's work touched."""
        if self.marks:
            self.fold()
        return self._touched

    def add(self, seconds: float, cpu: float, *, touched: bool = False) -> None:
        """One step: its wall seconds (the hooks' own time already taken off), the background
        CPU in it, and whether the monitor's work touched it."""
        if self._n >= 20 and seconds > self.OUTLIER * self._mean[2]:
            self._outliers += 1
            return
        self._n += 1
        self._touched += touched
        self._fit = None
        x = (cpu, 1.0 if touched else 0.0, seconds)
        mean, c = self._mean, self._c
        d = [x[i] - mean[i] for i in range(3)]
        for i in range(3):
            mean[i] += d[i] / self._n
        for i in range(3):
            for j in range(i, 3):
                c[i][j] += d[i] * (x[j] - mean[j])

    @property
    def factor(self) -> float:
        """Seconds of training lost per CPU second of the background thread (at least 0)."""
        return self._solve()[0]

    @property
    def after(self) -> float:
        """Seconds each step the monitor's work touched took beyond the others (at least 0),
        besides the hooks' own time."""
        return self._solve()[1]

    def _solve(self) -> tuple[float, float]:
        if self.marks:
            self.fold()
        if self._fit is None:
            self._fit = self._posterior()
        return self._fit

    def _posterior(self) -> tuple[float, float]:
        """The two coefficients: least squares, each combined with its prior by precision."""
        c, n = self._c, self._n
        if n < 4 or (c[0][0] <= 0.0 and c[1][1] <= 0.0):
            return self.prior, 0.0
        after_precision = 1.0 / (self.AFTER_SD * max(self._mean[2], 1e-9)) ** 2
        sxx = [[c[0][0], c[0][1]], [c[0][1], c[1][1]]]
        sxy = [c[0][2], c[1][2]]
        # the scatter around the least-squares fit (each term alone where the other does not vary)
        det = sxx[0][0] * sxx[1][1] - sxx[0][1] ** 2
        if det > 1e-12 * max(sxx[0][0] * sxx[1][1], 1e-300):
            b = ((sxx[1][1] * sxy[0] - sxx[0][1] * sxy[1]) / det, (sxx[0][0] * sxy[1] - sxx[0][1] * sxy[0]) / det)
        else:
            b = (sxy[0] / sxx[0][0] if sxx[0][0] > 0 else 0.0, sxy[1] / sxx[1][1] if sxx[1][1] > 0 else 0.0)
        residual = max(c[2][2] - b[0] * sxy[0] - b[1] * sxy[1], 0.0) / (n - 3)
        if residual == 0.0:  # (exact steps: the fit itself)
            return max(0.0, b[0]) if sxx[0][0] > 0 else self.prior, max(0.0, b[1])
        # posterior mean: (Sxx / s2 + P0)^-1 (Sxy / s2 + P0 b0), P0 = diag(the priors' precisions)
        a00 = sxx[0][0] / residual + self.prior_precision
        a11 = sxx[1][1] / residual + after_precision
        a01 = sxx[0][1] / residual
        r0 = sxy[0] / residual + self.prior_precision * self.prior
        r1 = sxy[1] / residual
        det = a00 * a11 - a01 * a01
        if not math.isfinite(det) or det <= 0.0:
            return max(0.0, b[0]), max(0.0, b[1])
        return max(0.0, (a11 * r0 - a01 * r1) / det), max(0.0, (a00 * r1 - a01 * r0) / det)

"""Gradient health: is a layer learning, or have its gradients vanished, exploded or stalled?

For one layer at one check, :func:`gradient_health` measures (on the tensors' device, with
one transfer of six numbers to the host):

* ``grad_norm`` - the L2 norm of the gradient, and ``grad_rms`` = norm / sqrt(numel), the
  size of a typical element whatever the layer size;
* ``update_ratio`` - how fast the weights move per step relative to their size:
  ``|w - w_prev| / |w| / steps`` when the previous weights are given, else the plain-SGD
  estimate ``lr * |g| / |w|`` when a learning rate is given, else NaN (unknown);
* ``zero_fraction`` - share of gradient elements that are exactly 0 (dead units give
  exact zeros; vanishing gradients are small but not zero);
* ``dead_fraction`` - when the layer's (post-ReLU) activations are given, the share of
  channels (units) that are ``<= 0`` for every sample and position of the batch (NaN
  when not given);
* ``nonfinite`` - how many NaN/Inf values the gradient and the weights hold.

The status is the first rule that holds, in this order (thresholds in
:class:`HealthThresholds`, all documented there):

1. ``nonfinite`` - any NaN/Inf in the gradient or the weights;
2. ``exploding`` - ``grad_norm > exploding_norm`` or ``update_ratio > exploding_update_ratio``;
3. ``stalled`` - the layer gets no learning signal although something is wrong rather than
   small: ``zero_fraction >= stalled_zero_fraction`` (dead units: gradients exactly 0), or
   ``dead_fraction >= stalled_dead_fraction``, or ``update_ratio < stalled_update_ratio``
   while ``grad_rms >= vanishing_rms`` (a real gradient, yet the weights do not move:
   frozen, left out of the optimizer, or a learning rate of 0). This is TensorView's case
   of a far-too-high learning rate: the first huge steps kill the ReLUs and the weights stop;
4. ``vanishing`` - ``grad_rms < vanishing_rms`` or ``update_ratio < vanishing_update_ratio``;
5. ``healthy`` otherwise.

:class:`GradientHealthTracker` keeps per-layer state over steps (previous weights, a short
history) so the update ratio is measured, and so ``stalled`` and ``vanishing`` - which a
single quiet step can mimic - are only reported after ``patience`` consecutive checks;
``nonfinite`` and ``exploding`` are reported at once.

Example:
    >>> import torch
    >>> w = torch.randn(16, 1, 3, 3)
    >>> gradient_health(torch.full_like(w, 1e-9), w).status
    'vanishing'
    >>> gradient_health(torch.full_like(w, 1e4), w).status
    'exploding'
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from convscope.analysis._tensors import accumulator
from convscope.errors import DataError

__all__ = ["STATUSES", "GradientHealth", "GradientHealthTracker", "HealthThresholds", "gradient_health"]

STATUSES = ("healthy", "vanishing", "exploding", "stalled", "nonfinite")


@dataclass(frozen=True)
class HealthThresholds:
    """The limits behind each status (see the module docstring for the order of the rules).

    Attributes:
        vanishing_rms: a gradient whose RMS element is below this carries no signal a
            float32 weight of usual size (1e-2 .. 1) can feel. 1e-7.
        vanishing_update_ratio: weights moving less than this fraction of their norm per
            step learn nothing in a run of 1e5 steps (drift under 10 %). 1e-6.
        exploding_norm: a gradient L2 norm above this is far beyond a healthy layer's
            (0.01 .. 10 for usual losses and initialisations). 1e3.
        exploding_update_ratio: weights moving more than this fraction of their norm in
            one step are being thrown around, not trained (healthy: 1e-4 .. 1e-2). 0.1.
        stalled_update_ratio: weights moving less than this per step (float32 rounding
            level) are standing still. 1e-8.
        stalled_zero_fraction: share of exactly-zero gradient elements from which the
            layer is cut off (its units are dead). 0.99.
        stalled_dead_fraction: share of dead channels (never positive on the batch) from
            which the layer is stalled. 0.9.
    """

    vanishing_rms: float = 1e-7
    vanishing_update_ratio: float = 1e-6
    exploding_norm: float = 1e3
    exploding_update_ratio: float = 1e-1
    stalled_update_ratio: float = 1e-8
    stalled_zero_fraction: float = 0.99
    stalled_dead_fraction: float = 0.9


@dataclass(frozen=True)
class GradientHealth:
    """One layer's gradient health at one check.

    Attributes:
        status: one of :data:`STATUSES`.
        grad_norm: L2 norm of the gradient.
        grad_rms: ``grad_norm / sqrt(numel)``.
        update_ratio: weight change per step relative to the weights (NaN if unknown).
        zero_fraction: share of exactly-zero gradient elements.
        dead_fraction: share of channels never positive on the batch (NaN if not measured).
        nonfinite: count of NaN/Inf values in the gradient and the weights.
        reasons: the rules that fired, in words.
        raw_status: the single-check status (the tracker may hold back a quiet one).
    """

    status: str
    grad_norm: float
    grad_rms: float
    update_ratio: float
    zero_fraction: float
    dead_fraction: float
    nonfinite: int
    reasons: tuple[str, ...] = ()
    raw_status: str = ""

    def to_payload(self) -> dict[str, Any]:
        """The ``gradient_health`` frame payload."""
        return {
            "status": self.status,
            "grad_norm": float(self.grad_norm),
            "update_ratio": float(self.update_ratio),
            "zero_fraction": float(self.zero_fraction),
            "dead_fraction": float(self.dead_fraction),
            "nonfinite": int(self.nonfinite),
            "reasons": list(self.reasons),
            "raw_status": self.raw_status or self.status,
        }


def gradient_health(
    grad: torch.Tensor | None,
    weight: torch.Tensor,
    *,
    previous_weight: torch.Tensor | None = None,
    steps: int = 1,
    lr: float | None = None,
    activations: torch.Tensor | None = None,
    channel_max: torch.Tensor | None = None,
    thresholds: HealthThresholds | None = None,
) -> GradientHealth:
    """Judge one layer's gradient at one check.

    Args:
        grad: the weight's gradient (``weight.grad``); ``None`` counts as all zeros.
        weight: the weight tensor now.
        previous_weight: the weights at the previous check, for the measured update ratio.
        steps: optimizer steps between ``previous_weight`` and ``weight``.
        lr: learning rate, for the SGD estimate ``lr * |g| / |w|`` when no previous weights.
        activations: the layer's activations after its non-linearity (``N x F x ...``),
            for the dead-unit fraction.
        channel_max: instead of ``activations``, each channel's maximum over them (``F``),
            where it is known already (the distribution view has it): no pass over the maps.
        thresholds: the limits; default :class:`HealthThresholds`.

    Returns:
        A :class:`GradientHealth`.

    Example:
        >>> import torch
        >>> _ = torch.manual_seed(0)
        >>> conv = torch.nn.Conv2d(1, 4, 3)
        >>> conv(torch.randn(2, 1, 8, 8)).square().mean().backward()
        >>> h = gradient_health(conv.weight.grad, conv.weight, lr=0.01)
        >>> h.status, h.nonfinite
        ('healthy', 0)
    """
    check = _Check.of(grad, weight, previous_weight, steps, lr, activations, channel_max)
    return _assess(check, _measure([check])[0], thresholds or HealthThresholds())


@dataclass
class _Check:
    """One layer's tensors at one check, validated, in float32."""

    g: torch.Tensor
    w: torch.Tensor
    previous: torch.Tensor | None  # the weights before the update (float32, on the weights' device)
    steps: int
    lr: float | None
    activations: torch.Tensor | None
    channel_max: torch.Tensor | None

    @classmethod
    def of(
        cls,
        grad: torch.Tensor | None,
        weight: torch.Tensor,
        previous_weight: torch.Tensor | None,
        steps: int,
        lr: float | None,
        activations: torch.Tensor | None,
        channel_max: torch.Tensor | None,
    ) -> _Check:
        if not isinstance(weight, torch.Tensor):
            raise DataError(f"weight must be a torch.Tensor, got {type(weight).__name__}")
        w = weight.detach()
        g = torch.zeros_like(w) if grad is None else grad.detach()
        if g.shape != w.shape:
            raise DataError(f"gradient shape {tuple(g.shape)} does not match weight shape {tuple(w.shape)}; pass weight.grad")
        if previous_weight is not None and previous_weight.shape != w.shape:
            raise DataError(
                f"previous weights have shape {tuple(previous_weight.shape)} but the weights now have {tuple(w.shape)} "
                "(pruned?); drop previous_weight for this check"
            )
        if steps < 1:
            raise DataError(f"steps between checks must be at least 1, got {steps}")
        if activations is not None and activations.dim() < 2:
            raise DataError(f"activations must be N x F x ..., got shape {tuple(activations.shape)}")
        wf = w.to(torch.float32)
        previous = None if previous_weight is None else previous_weight.detach().to(device=wf.device, dtype=torch.float32)
        return cls(g.to(torch.float32), wf, previous, steps, lr, activations, channel_max)

    @property
    def delta(self) -> torch.Tensor | None:
        """The update (the weights less the previous ones), where there are previous weights."""
        return None if self.previous is None else self.w - self.previous

    @property
    def key(self) -> tuple[object, ...]:
        """What must agree for checks to be measured together."""
        return (self.w.shape, self.w.device, self.previous is not None, self.channel_max is not None or self.activations is not None)


def _measure(checks: list[_Check]) -> list[list[float]]:
    """Per check: gradient norm, weight norm, exact-zero gradients, then the update's norm (with
    previous weights), the dead channels' share (with activations), and last the count of NaN/Inf
    values. Checks of one shape are stacked, so each quantity is one operation for all of them,
    and every number crosses to the host in one transfer. Norms over NaN/Inf are taken again
    over the finite elements."""
    first = checks[0]
    if len(checks) > 1 and any(c.key != first.key for c in checks):
        return [row for c in checks for row in _measure([c])]
    g = torch.stack([c.g.reshape(-1) for c in checks]) if len(checks) > 1 else first.g.reshape(1, -1)
    w = torch.stack([c.w.reshape(-1) for c in checks]) if len(checks) > 1 else first.w.reshape(1, -1)
    # Fast path: plain norms. NaN/Inf anywhere make a norm non-finite, so only then are the
    # elements counted and the norms taken over the finite ones (in float64, where squares of
    # huge finite values cannot overflow).
    stats = [torch.linalg.vector_norm(g, dim=1), torch.linalg.vector_norm(w, dim=1), (g == 0).sum(dim=1).to(torch.float32)]
    if first.previous is not None:  # (the updates of all the checks as one subtraction)
        previous = torch.stack([c.previous.reshape(-1) for c in checks]) if len(checks) > 1 else first.previous.reshape(1, -1)  # type: ignore[union-attr]
        stats.append(torch.linalg.vector_norm(w - previous, dim=1))
    if first.channel_max is not None or first.activations is not None:
        maxima = [c.channel_max if c.channel_max is not None else _channel_max(c.activations) for c in checks]  # type: ignore[arg-type]
        stats.append((torch.stack([m.to(w.device) for m in maxima]) <= 0).to(torch.float32).mean(dim=1))
    rows: list[list[float]] = torch.stack(stats, dim=1).tolist()  # the one device -> host transfer
    for c, row in zip(checks, rows, strict=True):
        if all(math.isfinite(v) for v in row[:2] + ([row[3]] if c.previous is not None else [])):
            row.append(0.0)
        else:
            _finite_norms(c, row)
    return rows


def _channel_max(a: torch.Tensor) -> torch.Tensor:
    a = a.detach()
    return a.reshape(a.shape[0], a.shape[1], -1).amax(dim=(0, 2))


def _finite_norms(c: _Check, row: list[float]) -> None:
    """The norms of ``row`` taken again over the finite elements, and the nonfinite count appended."""
    acc = accumulator(c.w.device)
    gfin, wfin = torch.isfinite(c.g), torch.isfinite(c.w)
    row[0] = float(torch.linalg.vector_norm(torch.where(gfin, c.g, 0.0).to(acc)))
    row[1] = float(torch.linalg.vector_norm(torch.where(wfin, c.w, 0.0).to(acc)))
    delta = c.delta
    if delta is not None:
        row[3] = float(torch.linalg.vector_norm(torch.where(torch.isfinite(delta), delta, 0.0).to(acc)))
    row.append(float(int((~gfin).sum()) + int((~wfin).sum())))


def _assess(c: _Check, values: list[float], t: HealthThresholds) -> GradientHealth:
    """The measured numbers of one check (see :func:`_measure`), judged."""
    numel = max(1, c.w.numel())
    has_dead = c.channel_max is not None or c.activations is not None
    nonfinite = int(values[-1])
    g_norm, w_norm, zeros = values[0], values[1], values[2]
    rest = values[3:-1]
    update = math.nan
    if c.previous is not None:
        update = _ratio(rest.pop(0), w_norm) / c.steps
    elif c.lr is not None:
        update = _ratio(float(c.lr) * g_norm, w_norm)
    dead = rest.pop(0) if has_dead else math.nan
    rms = g_norm / math.sqrt(numel)
    status, reasons = _judge(t, g_norm, rms, update, zeros / numel, dead, nonfinite)
    return GradientHealth(
        status=status,
        grad_norm=g_norm,
        grad_rms=rms,
        update_ratio=update,
        zero_fraction=zeros / numel,
        dead_fraction=dead,
        nonfinite=nonfinite,
        reasons=reasons,
        raw_status=status,
    )


def _ratio(num: float, den: float) -> float:
    if den > 0:
        return num / den
    return 0.0 if num == 0 else math.inf


def _judge(
    t: HealthThresholds, norm: float, rms: float, update: float, zero: float, dead: float, nonfinite: int
) -> tuple[str, tuple[str, ...]]:
    if nonfinite > 0:
        return "nonfinite", (f"{nonfinite} NaN/Inf values in the gradient or weights",)
    reasons = []
    if norm > t.exploding_norm:
        reasons.append(f"gradient norm {norm:.3g} > {t.exploding_norm:g}")
    if update > t.exploding_update_ratio:
        reasons.append(f"update ratio {update:.3g} per step > {t.exploding_update_ratio:g}")
    if reasons:
        return "exploding", tuple(reasons)
    if zero >= t.stalled_zero_fraction:
        reasons.append(f"{zero:.1%} of gradients exactly zero (>= {t.stalled_zero_fraction:.0%}): units dead")
    if dead >= t.stalled_dead_fraction:
        reasons.append(f"{dead:.1%} of channels never active (>= {t.stalled_dead_fraction:.0%})")
    if update < t.stalled_update_ratio and rms >= t.vanishing_rms:
        reasons.append(f"weights not moving (update ratio {update:.3g} < {t.stalled_update_ratio:g}) despite gradient RMS {rms:.3g}")
    if reasons:
        return "stalled", tuple(reasons)
    if rms < t.vanishing_rms:
        reasons.append(f"gradient RMS {rms:.3g} < {t.vanishing_rms:g}")
    if update < t.vanishing_update_ratio:
        reasons.append(f"update ratio {update:.3g} per step < {t.vanishing_update_ratio:g}")
    if reasons:
        return "vanishing", tuple(reasons)
    return "healthy", ()


@dataclass
class _LayerState:
    weight: torch.Tensor | None = None
    step: int | None = None
    history: deque[str] = field(default_factory=deque)
    last: GradientHealth | None = None


class GradientHealthTracker:
    """Gradient health of several layers over training, with memory of past checks.

    Per layer it keeps a copy of the weights at the last check (to measure the real update
    ratio; memory = the watched weights once more, on their device - pass
    ``keep_weights=False`` and give ``lr`` to estimate instead) and the last ``history``
    single-check statuses. ``stalled`` and ``vanishing`` are reported once they held for
    ``patience`` consecutive checks (until then the status is ``healthy`` and
    :attr:`GradientHealth.raw_status` tells); ``nonfinite`` and ``exploding`` at once.

    Args:
        thresholds: the limits; default :class:`HealthThresholds`.
        patience: consecutive checks before ``stalled``/``vanishing`` is reported (>= 1).
        history: statuses remembered per layer.
        keep_weights: keep the previous weights to measure updates.

    Example:
        >>> import torch
        >>> layer = torch.nn.Linear(4, 3)
        >>> tracker = GradientHealthTracker(patience=2)
        >>> for step in range(3):   # gradients arrive but the weights never move
        ...     layer.weight.grad = torch.ones_like(layer.weight)
        ...     h = tracker.update("fc", layer.weight.grad, layer.weight, step=step)
        >>> h.status, tracker.history("fc")
        ('stalled', ['healthy', 'stalled', 'stalled'])
    """

    def __init__(
        self,
        *,
        thresholds: HealthThresholds | None = None,
        patience: int = 3,
        history: int = 16,
        keep_weights: bool = True,
    ) -> None:
        if patience < 1:
            raise DataError(f"patience must be at least 1 check, got {patience}")
        if history < patience:
            raise DataError(f"history ({history}) must hold at least patience ({patience}) checks")
        self.thresholds = thresholds or HealthThresholds()
        self.patience = patience
        self.keep_weights = keep_weights
        self._history = history
        self._layers: dict[str, _LayerState] = {}

    def update(
        self,
        layer: str,
        grad: torch.Tensor | None,
        weight: torch.Tensor,
        *,
        step: int | None = None,
        lr: float | None = None,
        activations: torch.Tensor | None = None,
        channel_max: torch.Tensor | None = None,
        previous_weight: torch.Tensor | None = None,
    ) -> GradientHealth:
        """Check one layer now; ``step`` is the optimizer step (default: one more than last time).

        ``previous_weight``: the weights right before this step's update, when the caller has
        them (the in situ monitor does); the update ratio is then exact for this one step.
        ``channel_max``: see :func:`gradient_health`.
        """
        return self.update_many(
            layer,
            [{"grad": grad, "weight": weight, "step": step, "lr": lr, "activations": activations,
              "channel_max": channel_max, "previous_weight": previous_weight}],
        )[0]

    def update_many(self, layer: str, checks: Sequence[Mapping[str, Any]]) -> list[GradientHealth]:
        """Several checks of one layer in order, as many :meth:`update` calls (each check a dict of
        its keyword arguments, ``grad`` and ``weight`` included), measured together: one operation
        per quantity for all of them, and one transfer to the host (the in situ monitor checks the
        recordings it gathers this way)."""
        state = self._layers.setdefault(layer, _LayerState(history=deque(maxlen=self._history)))
        prepared = []
        last_step, last_weight = state.step, state.weight
        for check in checks:
            weight = check["weight"]
            step = check.get("step")
            if step is None:
                step = 0 if last_step is None else last_step + 1
            prev = last_weight
            steps = 1 if last_step is None else step - last_step
            if check.get("previous_weight") is not None:
                prev, steps = check["previous_weight"], 1
            if prev is not None and prev.shape != weight.shape:
                prev = None  # pruned: start measuring again
            if prev is not None and steps < 1:
                raise DataError(f"layer {layer!r}: step {step} is not after the last checked step {last_step}")
            prepared.append((step, _Check.of(
                check.get("grad"), weight, prev, max(1, steps), check.get("lr"), check.get("activations"), check.get("channel_max")
            )))
            last_step, last_weight = step, (weight if self.keep_weights else None)
        measured = _measure([c for _, c in prepared])
        results = []
        for (step, c), values in zip(prepared, measured, strict=True):
            raw = _assess(c, values, self.thresholds)
            results.append(self._hold(state, raw))
            state.step = step
        if self.keep_weights and checks:
            state.weight = checks[-1]["weight"].detach().clone()
        return results

    def _hold(self, state: _LayerState, raw: GradientHealth) -> GradientHealth:
        """``raw`` with ``stalled``/``vanishing`` held back until they last ``patience`` checks."""
        state.history.append(raw.status)
        status, reasons = raw.status, raw.reasons
        if raw.status in ("stalled", "vanishing"):
            recent = list(state.history)[-self.patience :]
            if len(recent) < self.patience or any(s != raw.status for s in recent):
                held = sum(1 for _ in _tail_run(state.history, raw.status))
                status = "healthy"
                reasons = (*raw.reasons, f"{raw.status} for {held} of {self.patience} checks")
        result = GradientHealth(
            status=status,
            grad_norm=raw.grad_norm,
            grad_rms=raw.grad_rms,
            update_ratio=raw.update_ratio,
            zero_fraction=raw.zero_fraction,
            dead_fraction=raw.dead_fraction,
            nonfinite=raw.nonfinite,
            reasons=reasons,
            raw_status=raw.status,
        )
        state.last = result
        return result

    def restore(self, layer: str, statuses: Sequence[str]) -> None:
        """Go on from a layer's earlier checks (a resumed run's, read from its frames'
        ``raw_status``): their single-check statuses, oldest first. A quiet status that lasted
        before is then reported once it has lasted ``patience`` checks over both parts."""
        unknown = sorted(set(statuses) - set(STATUSES))
        if unknown:
            raise DataError(f"unknown gradient-health statuses {unknown}; they are {', '.join(STATUSES)}")
        self._layers[layer] = _LayerState(history=deque(statuses, maxlen=self._history))

    def history(self, layer: str) -> list[str]:
        """The remembered single-check statuses of a layer, oldest first."""
        state = self._layers.get(layer)
        return [] if state is None else list(state.history)

    def latest(self) -> dict[str, GradientHealth]:
        """The last result of every layer checked so far."""
        return {name: s.last for name, s in self._layers.items() if s.last is not None}

    def reset(self, layer: str | None = None) -> None:
        """Forget one layer (or all), e.g. after pruning."""
        if layer is None:
            self._layers.clear()
        else:
            self._layers.pop(layer, None)


def _tail_run(history: deque[str], status: str) -> list[str]:
    run: list[str] = []
    for s in reversed(history):
        if s != status:
            break
        run.append(s)
    return run

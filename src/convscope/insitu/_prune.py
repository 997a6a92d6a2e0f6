"""Online pruning: remove filters the correlation groups call redundant, while training goes on.

Called on the training thread right after ``optimizer.step()``, so nothing else touches the
model at that moment. The plan comes from the correlation matrix of the latest recorded step
(the pruning step waits for the background thread to get there), regrouped at the pruning
threshold; the surgery (the layer, every layer
that depends on it, and the optimizer's parameters and state) is
:func:`convscope.analysis.prune_filters`.
"""

from __future__ import annotations

import functools
import math
import warnings
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from convscope.insitu._monitor import Monitor

__all__ = ["maybe_prune"]


def maybe_prune(monitor: Monitor, step: int) -> None:
    """Prune each configured layer if this is a pruning step and its groups show redundancy."""
    import torch

    from convscope.analysis import filter_groups, plan_pruning, prune_filters
    from convscope.errors import DataError

    config = monitor.prune
    if config is None or step < config.start or (step - config.start) % config.every:
        return
    if any(name in monitor.layers and monitor.layers[name].prunes < config.times for name in config.layers or ()):
        # The background thread may run behind training: wait until it has
        # analysed every step recorded so far, so that the plan always comes from the latest
        # recorded correlation and a run prunes the same filters on any machine. Rare and short.
        monitor._pipeline.drain(timeout=60.0)  # type: ignore[union-attr]
    for name in config.layers or ():
        state = monitor.layers.get(name)
        if state is None or state.prunes >= config.times or state.correlation is None:
            continue
        corr = state.correlation
        current = state.filters
        if corr.filters != current:
            continue  # the matrix predates an earlier pruning
        budget = min(
            current - config.min_filters,
            math.floor(state.original_filters * config.max_fraction) - (state.original_filters - current),
        )
        if budget <= 0:
            continue
        groups = filter_groups(corr, threshold=config.threshold, method=config.method)
        remove = sorted(plan_pruning(groups.labels, corr.matrix))[:budget]
        if not remove:
            continue
        param = next(monitor.model.parameters())
        shape = monitor.input_shape
        try:
            if shape is None:  # (a model called with keyword arguments only shows the first forward hook none)
                raise DataError("the model's input shape is unknown: pass input_shape= to watch()")
            example = torch.zeros((1, *shape), dtype=param.dtype, device=param.device)
            result = prune_filters(monitor.model, {name: remove}, example_inputs=example, optimizer=monitor.optimizer)
        except Exception as exc:
            warnings.warn(
                f"convscope could not prune {name} at step {step} ({type(exc).__name__}: {exc}); "
                "training goes on unpruned",
                RuntimeWarning,
                stacklevel=4,
            )
            config.times = 0
            return
        state.prunes += 1
        for other in monitor.layers.values():  # shapes may have changed downstream too
            other.prev_weight = None
        for lname in (name, *result.coupled):  # (layers joined to it lost the same filters)
            changed = monitor.layers.get(lname)
            if changed is not None:
                changed.correlation = changed.groups = None
                if changed.health is not None:
                    changed.health.reset(lname)
        kept = [i for i in range(current) if i not in set(remove)]
        reason = f"correlation >= {config.threshold} ({config.method} groups)"
        if result.coupled:  # a residual add or a depthwise conv joins these layers' channels: they go together
            reason += f"; {', '.join(result.coupled)} lost the same filters (joined to {name}'s)"
        payload: dict[str, Any] = {
            "removed": [int(i) for i in remove],
            "kept": kept,
            "before": current,
            "after": state.filters,
            "reason": reason,
            "params_before": int(result.params_before),
            "params_after": int(result.params_after),
            "groups": [[int(i) for i in g] for g in groups.groups.values() if len(g) > 1],
        }
        if result.coupled:
            payload["coupled"] = {other: [int(i) for i in idx] for other, idx in result.coupled.items()}
        record = {"step": step, "layer": name, **payload}
        monitor.stats.prunings.append(record)
        frame = monitor._frame(step, name, "pruning", payload)
        monitor._pipeline.submit(functools.partial(list, (frame,)))  # type: ignore[union-attr]

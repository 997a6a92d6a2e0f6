"""Online pruning: remove filters the correlation groups call redundant, while training goes on.

Called on the training thread right after ``optimizer.step()``, so nothing else touches the
model at that moment. The plan comes from the correlation matrix of the latest recorded step
(the pruning step waits for the background thread to get there), regrouped at the pruning
threshold; the surgery (the layer, every layer
that depends on it, and the optimizer's parameters and state) is
:func:`convscope.analysis.prune_filters`.

A setting that could never prune, or only break the model, is refused before training instead:
a layer that ``min_filters`` and ``max_fraction`` leave nothing to lose at ``watch()``
(:func:`check_budget`), one whose pruning would reach a grouped conv or the model's output, or
whose channels are split in ``forward`` (``torch.chunk``, ``torch.split`` ...), or whose pruning
breaks the forward pass of a copy of the model (a size written in ``forward``, such as
``x.view(-1, 16 * 5 * 5)``), as soon as the input shape is known, at ``watch()`` or the first
forward pass (:func:`check_reach`). What that still misses, the pruning step finds: the pruned
model is run once, and where it breaks it is put back as it was, that layer is no longer
pruned, and training goes on.
"""

from __future__ import annotations

import functools
import math
import warnings
from typing import TYPE_CHECKING, Any

from convscope.errors import DataError

if TYPE_CHECKING:
    import torch

    from convscope.insitu._monitor import Monitor, PruneConfig, _LayerState

__all__ = ["check_budget", "check_reach", "maybe_prune", "removable"]


def maybe_prune(monitor: Monitor, step: int) -> None:
    """Prune each configured layer if this is a pruning step and its groups show redundancy."""
    from convscope.analysis import filter_groups, plan_pruning, prune_filters

    config = monitor.prune
    if config is None or step < config.start or (step - config.start) % config.every:
        return
    if any(_pending(config, monitor.layers.get(name)) for name in config.layers or ()):
        # The background thread may run behind training: wait until it has
        # analysed every step recorded so far, so that the plan always comes from the latest
        # recorded correlation and a run prunes the same filters on any machine. Rare and short.
        monitor._pipeline.drain(timeout=60.0)  # type: ignore[union-attr]
    for name in config.layers or ():
        state = monitor.layers.get(name)
        if state is None or not _pending(config, state) or state.correlation is None:
            continue
        corr = state.correlation
        current = state.filters
        if corr.filters != current:
            continue  # the matrix predates an earlier pruning
        budget = removable(config, state.original_filters, current)
        if budget <= 0:
            continue
        groups = filter_groups(corr, threshold=config.threshold, method=config.method)
        remove = sorted(plan_pruning(groups.labels, corr.matrix))[:budget]
        if not remove:
            continue
        shape = monitor.input_shape
        try:
            if shape is None:  # (a model called with keyword arguments only shows the first forward hook none)
                raise DataError("the model's input shape is unknown: pass input_shape= to watch()")
            example = _example(monitor, shape)
        except Exception as exc:
            warnings.warn(
                f"convscope could not prune {name} at step {step} ({type(exc).__name__}: {exc}); "
                "training goes on unpruned",
                RuntimeWarning,
                stacklevel=4,
            )
            config.times = 0  # (the monitor's own copy: the caller's PruneConfig is left as given)
            return
        try:
            result = prune_filters(monitor.model, {name: remove}, example_inputs=example, optimizer=monitor.optimizer)
        except Exception as exc:  # (the model and the optimizer are as they were: see prune_filters)
            warnings.warn(
                f"convscope could not prune {name} at step {step} ({type(exc).__name__}: {exc}); "
                f"{name} is not pruned again, and training goes on",
                RuntimeWarning,
                stacklevel=4,
            )
            state.prune_failed = True
            continue
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
        if result.inputs:  # (the layers reading it: their input channels, numbered as before)
            payload["inputs"] = {other: [int(i) for i in idx] for other, idx in result.inputs.items()}
        record = {"step": step, "layer": name, **payload}
        monitor.stats.prunings.append(record)
        frame = monitor._frame(step, name, "pruning", payload)
        monitor._pipeline.submit(functools.partial(list, (frame,)))  # type: ignore[union-attr]


def _pending(config: PruneConfig, state: _LayerState | None) -> bool:
    """Whether a watched layer may still be pruned: rounds are left, and none of it has failed."""
    return state is not None and not state.prune_failed and state.prunes < config.times


def removable(config: PruneConfig, original: int, current: int) -> int:
    """How many more filters a layer of ``original`` filters, ``current`` of them left, may lose."""
    return min(current - config.min_filters, math.floor(original * config.max_fraction) - (original - current))


def check_budget(monitor: Monitor) -> None:
    """At ``watch()``: a clear error for a layer of ``prune=`` that could never lose a filter
    (``min_filters`` and ``max_fraction`` leave none to remove), rather than a run that never
    prunes it and says nothing."""
    config = monitor.prune
    if config is None or not config.times:
        return
    stuck = []
    for name in config.layers or ():
        n = monitor.layers[name].original_filters
        if removable(config, n, n) > 0:
            continue
        if n <= config.min_filters:
            stuck.append(f"{name!r} has {n} filters and min_filters={config.min_filters} keeps {config.min_filters}")
        else:
            most = math.floor(n * config.max_fraction)
            stuck.append(f"{name!r} has {n} filters and max_fraction={config.max_fraction} lets it lose {most}")
    if stuck:
        raise DataError(
            f"prune= would never remove a filter: {'; '.join(stuck)}; lower min_filters, raise max_fraction "
            "or prune other layers"
        )


def check_reach(monitor: Monitor, shape: tuple[int, ...]) -> None:
    """Before the first training step: a clear error for a layer of ``prune=`` whose pruning
    would reach a grouped conv or change the model's output, or whose channels are split in
    ``forward`` (see :func:`convscope.analysis.pruning.unprunable`), or whose pruning breaks
    the forward pass of a copy of the model (see
    :func:`convscope.analysis.pruning.breaks_forward`), rather than a warning at the first
    pruning step, deep into training. A model that cannot be traced here is left to that step,
    which says why it cannot prune."""
    import torch

    from convscope.analysis.pruning import breaks_forward, unprunable

    config = monitor.prune
    if config is None or not config.times or not config.layers:
        return
    kinds = torch.nn.modules.conv._ConvNd | torch.nn.Linear
    others = [  # the other watched layers that pruning could take, named in the message
        name
        for name, state in monitor.layers.items()
        if name not in config.layers and isinstance(state.module, kinds) and removable(config, n := state.original_filters, n) > 0
    ]
    try:
        example = _example(monitor, shape)
        why = unprunable(monitor.model, [*config.layers, *others], example_inputs=example)
    except Exception:  # noqa: BLE001  (an input of zeros the model cannot take: the pruning step says so)
        return
    # a size written in forward that assumes the channels shows in no trace: prune a copy and run it
    # (the layers of prune= only: the others named below as prunable are judged by the trace)
    why |= breaks_forward(monitor.model, [n for n in config.layers if n not in why], example_inputs=example)
    refused = [f"{name!r} ({reason})" for name, reason in why.items() if name in config.layers]
    if not refused:
        return
    ok = [repr(name) for name in others if name not in why]
    raise DataError(
        f"prune= cannot take filters from {' or '.join(refused)}"
        + (
            "; it prunes the first watched conv by default: name other layers with PruneConfig(layers=...)"
            if monitor._prune_default
            else f"; leave {'it' if len(refused) == 1 else 'them'} out of PruneConfig(layers=...)"
        )
        + (f" ({', '.join(ok)} can be pruned)" if ok else "")
    )


def _example(monitor: Monitor, shape: tuple[int, ...]) -> torch.Tensor:
    """One input of zeros of ``shape``, of the model's dtype on its device, to trace it with."""
    import torch

    param = next(monitor.model.parameters())
    return torch.zeros((1, *shape), dtype=param.dtype, device=param.device)

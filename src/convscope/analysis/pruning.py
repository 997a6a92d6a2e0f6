"""Pruning redundant filters: which to remove (from correlation groups) and the surgery itself.

**The plan.** Filters in one correlation group produce nearly the same feature maps (up to
scale and offset), so one can stand for the others. :func:`plan_pruning` keeps, per group,
the *most central* member (the highest mean correlation with the rest of its group) and
removes the others. Filters in no group are always kept.

**The surgery.** :func:`prune_filters` removes output channels structurally with
Torch-Pruning's dependency graph: the layer loses the filters, and every layer that consumes
them (batch norm, the next conv's input channels, a dense layer after a flatten) loses the
matching slices. Torch-Pruning gives the pruned tensors new ``Parameter`` objects, so for
*online* pruning the optimizer is mended too: its parameter groups get the new objects and
every per-parameter state tensor of the old shape (SGD momentum, Adam's moments) is sliced to
the kept channels; counters such as Adam's ``step`` are kept. The slicing is checked: the new
parameter must equal the old one restricted to the kept indices, else the state of that
parameter is reset (and said so in :attr:`PruneResult.reset_state`).

**What it refuses.** A layer whose channels reach a grouped conv other than a depthwise one,
or are split in ``forward`` (``torch.chunk``, ``torch.split``, ``unbind``, a slice or an index
of channels, a ``view`` or ``reshape`` that cuts them): Torch-Pruning would send the kept
channels to the wrong group or part, and the sizes written in the code would no longer fit the
pruned tensor, so the model would raise at its next forward pass. The channels are followed
through ``forward`` (from dim 1 of a conv's output or the last of a dense layer's, through
permutes, transposes, ``movedim``, views, reshapes and flattens), so a cut counts only where it
cuts the dim that holds them: a crop of rows in channels-last layout cuts none, however long its
dim. Where an op leaves no telling which dim holds them (a pixel shuffle, an unfold, a matrix
product, a pad before them, a flip or roll of them) and a cut or reshape follows, or a layer
that the pruning would change (the next conv's inputs, a conv added to them), the layer is
refused too: Torch-Pruning passes the pruned indices through such an op as if it were
element-wise, so that layer would lose other channels than the pruned filters gave. Where they
are only reduced away (a mean over them, a loss term of one value a sample), nothing is refused.
A ``torch.cat`` is mapped by where the channels lie: its parts along the dim that holds them,
in channels-last layout too and after inputs that need no gradient (the model's input); whole,
along another dim. A ``torch.stack`` is followed too (the stacked layers lose the same filters, as
stacked tensors keep one shape), unless a reshape then merges its dim with the channels after it
(``torch.stack([a, b], 1).flatten(1, 2)``: Torch-Pruning would map each filter's maps as if they lay
side by side; ``torch.cat`` gives the same tensor, and is mapped). A pixel shuffle of the channels,
which takes them r² at a time, is refused whatever reads it, and so is a conv that reads them along
another dim than its input channels' (a ``Conv3d`` after a stack along dim 1: its depth).
:func:`unprunable` lists the layers it refuses up front; :func:`prune_filters` raises before anything
is pruned.

**What no trace shows.** A size written in ``forward`` that assumes the channels, such as the
PyTorch tutorial's ``x.view(-1, 16 * 5 * 5)``, passes the trace (one sample of 400 values is
one row of 400) but not the pruned model: the view still asks for 400 values a row, so the next
forward pass raises (or, with other sizes, silently regroups the batch). :func:`breaks_forward`
finds such a layer by pruning one filter of it on a copy of the model and running the copy;
:func:`prune_filters` runs the pruned model once before it mends the optimizer and, where it
raises or its output changes shape, puts every parameter, buffer and attribute back as it was
and raises.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from convscope._optional import require
from convscope.errors import ConvscopeError, DataError, LayerNotFoundError

if TYPE_CHECKING:
    import torch

__all__ = ["PruneResult", "breaks_forward", "plan_pruning", "prune_filters", "unprunable"]


def plan_pruning(labels: Any, matrix: Any, *, min_keep: int = 1) -> list[int]:
    """Filters to remove so that each correlation group keeps ``min_keep`` representatives.

    Args:
        labels: group id per filter (``-1``: in no group), as in ``FilterGroups.labels``.
        matrix: the ``F x F`` correlation matrix the groups came from.
        min_keep: members kept per group, the most central first.

    Returns:
        Sorted filter indices to remove.

    Example:
        >>> import numpy as np
        >>> c = np.array([[1, .95, .9, 0], [.95, 1, .97, 0], [.9, .97, 1, 0], [0, 0, 0, 1.]])
        >>> plan_pruning([0, 0, 0, -1], c)   # filter 1 is the most central of group 0
        [0, 2]
    """
    labels = np.asarray(labels).astype(np.int64).ravel()
    m = np.nan_to_num(np.asarray(matrix, dtype=np.float64))
    if m.shape != (labels.size, labels.size):
        raise DataError(f"the correlation matrix is {m.shape} but there are {labels.size} labels")
    if min_keep < 1:
        raise DataError(f"min_keep must be at least 1, got {min_keep}")
    remove: list[int] = []
    for gid in sorted(set(labels[labels >= 0].tolist())):
        members = np.flatnonzero(labels == gid)
        if members.size <= min_keep:
            continue
        sub = m[np.ix_(members, members)]
        centrality = (sub.sum(axis=1) - np.diag(sub)) / (members.size - 1)
        order = members[np.argsort(-centrality, kind="stable")]
        remove += order[min_keep:].tolist()
    return sorted(int(i) for i in remove)


@dataclass
class PruneResult:
    """What :func:`prune_filters` did.

    Attributes:
        removed: layer -> removed filter indices (in the layer's numbering before pruning).
        kept: layer -> kept filter indices (same numbering).
        params_before, params_after: parameter counts of the whole model.
        changed: qualified names of every parameter that was replaced.
        reset_state: parameters whose optimizer state could not be sliced and was reset.
        coupled: other conv and dense layers that lost the same output channels, because their
            outputs are joined to the pruned layer's (a residual add, a depthwise conv that
            reads it): layer -> removed indices.
        inputs: conv and dense layers that lost input channels with it (the layers that read a
            pruned layer, directly or through activations, pooling, normalisation ...; for a
            dense layer after a flatten, its input features): layer -> removed input indices,
            in that layer's numbering before pruning.
    """

    removed: dict[str, list[int]]
    kept: dict[str, list[int]]
    params_before: int
    params_after: int
    changed: list[str] = field(default_factory=list)
    reset_state: list[str] = field(default_factory=list)
    coupled: dict[str, list[int]] = field(default_factory=dict)
    inputs: dict[str, list[int]] = field(default_factory=dict)


def prune_filters(
    module: torch.nn.Module,
    plan: Mapping[str, Sequence[int]],
    *,
    example_inputs: torch.Tensor | tuple[torch.Tensor, ...],
    optimizer: torch.optim.Optimizer | None = None,
) -> PruneResult:
    """Remove the given output filters (conv) or units (dense) and mend what depends on them.

    Args:
        module: the model, changed in place.
        plan: layer name (as in ``named_modules()``) -> filter indices to remove.
        example_inputs: an input batch, to trace the dependencies and to run the pruned model
            once (one sample is enough).
        optimizer: the optimizer training ``module``, if any; it is updated in place.

    Raises:
        DataError: a layer that cannot lose these filters (nothing is pruned), or a pruned model
            whose forward pass raises or gives an output of another shape than before: every
            parameter, buffer and attribute that pruning changed is then put back as it was, and
            the optimizer is left untouched (as after any error Torch-Pruning raises).

    Example:
        >>> import torch
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Conv2d(4, 2, 3))
        >>> r = prune_filters(net, {"0": [1, 2]}, example_inputs=torch.zeros(1, 1, 8, 8))
        >>> net[0].out_channels, net[2].in_channels, r.kept, r.inputs
        (2, 2, {'0': [0, 3]}, {'2': [1, 2]})
    """
    import torch

    tp = require("torch_pruning", feature="pruning", extra="analysis")
    modules = dict(module.named_modules())
    handlers = []
    for name, idxs in plan.items():
        layer, handler, size = _root(tp, modules, name)
        chosen = sorted({int(i) for i in idxs})
        if not chosen:
            continue
        if chosen[0] < 0 or chosen[-1] >= size:
            raise DataError(f"layer {name!r} has {size} filters; cannot remove {chosen}")
        if len(chosen) >= size:
            raise DataError(f"layer {name!r} would lose all its {size} filters; keep at least one")
        handlers.append((name, layer, handler, chosen, size))

    before = {n: p for n, p in module.named_parameters()}
    params_before = sum(p.numel() for p in before.values())
    removed_at: dict[tuple[int, str], list[int]] = {}  # (id(module), "out"|"in") -> removed indices
    result = PruneResult(removed={}, kept={}, params_before=params_before, params_after=params_before)
    graph, seen, gives = _traced(tp, module, example_inputs)
    names = {id(m): n for n, m in modules.items()}
    output = False  # whether pruning changes the model's output (its last layer's filters), as it may offline
    for name, layer, handler, _, size in handlers:  # (all checked before any is pruned)
        # every filter at once: the group then reaches every layer and op that some choice of filters would
        group = graph.get_pruning_group(layer, handler, idxs=list(range(size)))
        output = output or any(_passes_on(item) and not item.dep.target.outputs for item in group)
        why = _refusal(tp, group, names, seen, gives)
        if why is not None:
            raise DataError(f"{name!r} cannot be pruned: {why}")
    expected, runs = None, bool(handlers)  # what the model gives now, to know the pruned one by
    if runs:
        try:
            expected = _output_shape(module, example_inputs)
        except Exception:  # noqa: BLE001  (it ran with gradients for the trace, not without: left unchecked)
            runs = False
    saved = _attributes(module)
    name = ""  # (the layer being pruned, for an error of Torch-Pruning's)
    try:
        for name, layer, handler, chosen, size in handlers:
            group = graph.get_pruning_group(layer, handler, idxs=chosen)
            now: dict[tuple[int, str], set[int]] = {}  # this group's, numbered after the groups before
            for item in group:
                dep, idxs = item.dep, item.idxs
                fn = getattr(dep.handler, "__name__", str(dep.handler))
                direction = "out" if "out" in fn else "in" if "in" in fn else None
                target = dep.target.module
                if direction is not None and isinstance(target, torch.nn.Module):
                    now.setdefault((id(target), direction), set()).update(int(getattr(i, "idx", i)) for i in idxs)
            for key, taken in now.items():  # (a layer that several groups reach, such as one reading a cat of two pruned layers)
                removed_at[key] = _merged_removals(removed_at.get(key, []), taken)
            group.prune()
            result.removed[name] = chosen
            result.kept[name] = [i for i in range(size) if i not in set(chosen)]
        if runs:  # (before the optimizer is mended: a model put back needs its old state)
            _check_forward(module, example_inputs, None if output else expected, [h[0] for h in handlers])
    except BaseException as exc:
        _restore(saved)
        if isinstance(exc, Exception) and not isinstance(exc, ConvscopeError):
            # (Torch-Pruning's own failure, an IndexError say, on a model it does not follow)
            raise DataError(
                f"{name!r} cannot be pruned: Torch-Pruning failed on this model ({type(exc).__name__}: {exc}); "
                "the model is left as it was"
            ) from exc
        raise

    for lname, layer in modules.items():
        lost = removed_at.get((id(layer), "out"))
        if lost and lname not in plan and isinstance(layer, torch.nn.modules.conv._ConvNd | torch.nn.Linear):
            result.coupled[lname] = lost
        lost_in = removed_at.get((id(layer), "in"))
        if lost_in and isinstance(layer, torch.nn.modules.conv._ConvNd | torch.nn.Linear):
            result.inputs[lname] = lost_in
    after = dict(module.named_parameters())
    result.params_after = sum(p.numel() for p in after.values())
    for pname, new in after.items():
        old = before.get(pname)
        if old is None or new is old:
            continue
        result.changed.append(pname)
        if optimizer is not None:
            owner = modules.get(pname.rpartition(".")[0])
            keep = _kept_indices(old, new, owner, removed_at)
            if not _swap_in_optimizer(optimizer, old, new, keep):
                result.reset_state.append(pname)
    return result


def unprunable(
    module: torch.nn.Module,
    layers: Sequence[str],
    *,
    example_inputs: torch.Tensor | tuple[torch.Tensor, ...],
) -> dict[str, str]:
    """Of ``layers``, those that :func:`prune_filters` cannot take filters from, whichever filters
    it is given, and why: their pruning would reach a grouped conv other than a depthwise one,
    or their channels are split in ``forward`` (``torch.chunk``, ``torch.split``, a slice of
    channels ..., found on whichever dim holds the channels there, in channels-last layout too),
    or pass an op after which that cannot be told (an unfold, a matrix product ...) and then a
    cut, or a layer that their pruning would change, or a pixel shuffle, or a stack whose dim a
    reshape merges with them, or reach a conv along another dim than its input channels' (all of
    which it refuses), or it would change the model's own output (a classifier's classes, which
    online pruning must not). Only a layer whose channels reach the split or the op is refused:
    the layers that read the parts, or the op's output, can be pruned. Nothing is pruned:
    :func:`convscope.watch` asks this before training.

    Args:
        module: the model (its train/eval modes are kept).
        layers: conv or dense layer names, as in ``named_modules()``.
        example_inputs: an input batch, to trace the dependencies (one sample is enough).

    Returns:
        layer -> why it cannot be pruned; empty where every layer can be.

    Example:
        >>> import torch
        >>> from convscope.analysis import unprunable
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Conv2d(4, 2, 3))
        >>> unprunable(net, ["0", "2"], example_inputs=torch.zeros(1, 1, 8, 8))
        {'2': "its filters are the model's output, which would change shape"}

        A layer whose output is chunked in ``forward``, each half read by its own head:

        >>> class TwoHeads(torch.nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.body, self.left, self.right = torch.nn.Conv2d(1, 4, 3), torch.nn.Conv2d(2, 3, 1), torch.nn.Conv2d(2, 3, 1)
        ...         self.fc = torch.nn.Linear(6, 2)
        ...     def forward(self, x):
        ...         left, right = torch.chunk(self.body(x), 2, dim=1)
        ...         return self.fc(torch.cat([self.left(left), self.right(right)], 1).mean((2, 3)))
        >>> print(unprunable(TwoHeads(), ["body", "left"], example_inputs=torch.zeros(1, 1, 8, 8))["body"])
        its channels are split in forward (torch.split or torch.chunk), in sizes that the code fixes and pruning cannot change; prune the layers that read the parts instead
    """
    tp = require("torch_pruning", feature="pruning", extra="analysis")
    modules = dict(module.named_modules())
    roots = {name: _root(tp, modules, name) for name in layers}
    graph, seen, gives = _traced(tp, module, example_inputs)
    names = {id(m): n for n, m in modules.items()}
    why: dict[str, str] = {}
    for name, (layer, handler, size) in roots.items():
        # every filter at once: the group then reaches every layer that some choice of filters would
        group = graph.get_pruning_group(layer, handler, idxs=list(range(size)))
        refused = _refusal(tp, group, names, seen, gives)
        if refused is not None:
            why[name] = refused
        elif any(_passes_on(item) and not item.dep.target.outputs for item in group):
            why[name] = "its filters are the model's output, which would change shape"
    return why


def breaks_forward(
    module: torch.nn.Module,
    layers: Sequence[str],
    *,
    example_inputs: torch.Tensor | tuple[torch.Tensor, ...],
) -> dict[str, str]:
    """Of ``layers``, those whose pruning breaks the model's forward pass, and how. This finds
    what no trace shows (see :func:`unprunable`): a size written in ``forward`` that assumes the
    channels, such as ``x.view(-1, 16 * 5 * 5)``. One filter of each layer is pruned on a copy
    of ``module``, which then runs two samples in training mode without gradients; a pass that
    raises, or gives an output of another shape than the unpruned copy's, names the layer.

    The copy has its own modules and buffers and shares the parameters (pruning gives the pruned
    ones new objects, and a pass without gradients changes none), so it costs little memory even
    for a large model. The model, its gradients and the random number generators are left as
    they were. Hooks attached to the model run on the copy too (a weight norm's computes the
    weight; a convscope monitor's ignore the monitor's own checks). A model that cannot be
    copied, or run on this input, names no layer: :func:`prune_filters` still checks its result.

    Args:
        module: the model (left unchanged).
        layers: conv or dense layer names, as in ``named_modules()``.
        example_inputs: an input batch of one sample (run twice over: batch norm in training
            mode cannot take one sample).

    Returns:
        layer -> why its pruning breaks the forward pass; empty where it breaks for none.

    Example:
        >>> import torch
        >>> class Net(torch.nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.conv, self.fc = torch.nn.Conv2d(1, 4, 3), torch.nn.Linear(4 * 6 * 6, 2)
        ...     def forward(self, x):
        ...         return self.fc(torch.relu(self.conv(x)).view(-1, 4 * 6 * 6))
        >>> print(breaks_forward(Net(), ["conv"], example_inputs=torch.zeros(1, 1, 8, 8))["conv"])
        pruning a filter breaks the model's forward pass (RuntimeError: shape '[-1, 144]' is invalid for input of size 216); a size written in forward (a view or reshape) probably assumes its channels: use torch.flatten(x, 1)
    """
    import torch

    tp = require("torch_pruning", feature="pruning", extra="analysis")
    modules = dict(module.named_modules())
    for name in layers:
        _root(tp, modules, name)  # (a clear error for a name that is no conv or dense layer)
    inputs = _inputs(example_inputs)
    twice = tuple(torch.cat([x, x]) if isinstance(x, torch.Tensor) and x.dim() else x for x in inputs)
    why: dict[str, str] = {}
    devices = sorted({p.device.index for p in module.parameters() if p.device.type == "cuda"})
    with torch.random.fork_rng(devices=devices):  # (a dropout's draws: the run's own random numbers are left as they were)
        try:
            spare: Any = _trial_copy(module).train()
            expected = _output_shape(spare, twice, training=True)
        except Exception:  # noqa: BLE001  (a model that cannot be copied, or run on this input)
            return why
        for name in layers:
            try:
                trial = _trial_copy(module).train() if spare is None else spare  # (the first: the unpruned one)
                spare = None
                layer, handler, _ = _root(tp, dict(trial.named_modules()), name)
                _traced(tp, trial, inputs)[0].get_pruning_group(layer, handler, idxs=[0]).prune()
            except Exception:  # noqa: BLE001  (Torch-Pruning could not: prune_filters says why, at its turn)
                continue
            try:
                got = _output_shape(trial, twice, training=True)
            except Exception as exc:  # noqa: BLE001  (what the pruned model raises is the finding)
                why[name] = f"pruning a filter breaks the model's forward pass ({_said(exc)}); {_SIZE_HINT}"
                continue
            if got != expected:
                why[name] = f"pruning a filter changes the model's output from {expected} to {got}; {_SIZE_HINT}"
    return why


#: what a pruned model that breaks its forward pass most likely has, and what to do
_SIZE_HINT = "a size written in forward (a view or reshape) probably assumes its channels: use torch.flatten(x, 1)"


def _trial_copy(module: Any) -> Any:
    """A copy of ``module`` to prune and run without touching the model: its own modules (whose
    attributes and parameters pruning replaces) and buffers (which a pass in training mode
    updates), the model's parameters themselves (a pass without gradients changes none), and the
    model's hooks, in dicts of its own."""
    memo: dict[int, Any] = {id(p): p for p in module.parameters()}
    for m in module.modules():
        for key, value in vars(m).items():
            if key.endswith("hooks") and isinstance(value, dict):
                memo[id(value)] = copy.copy(value)  # (a hook is called, not copied: it may hold the monitor)
    return copy.deepcopy(module, memo)


def _inputs(example_inputs: Any) -> tuple[Any, ...]:
    """The model's positional inputs: a lone batch is one input (Torch-Pruning, calling
    ``module(*example_inputs)`` first, unpacked it into its samples)."""
    import torch

    return (example_inputs,) if isinstance(example_inputs, torch.Tensor) else tuple(example_inputs)


def _output_shape(module: Any, example_inputs: Any, *, training: bool = False) -> Any:
    """The shape of what ``module`` gives for ``example_inputs`` (a tensor's; those of a tuple,
    list or dict of them), run once without gradients with every module in training mode or, by
    default, in eval mode, as Torch-Pruning's trace runs it: no batch-norm statistics change and
    no dropout draws. Every module's own mode is put back."""
    import torch

    modes = [(m, m.training) for m in module.modules()]
    try:
        module.train(training)
        with torch.no_grad():
            return _shape(module(*_inputs(example_inputs)))
    finally:
        for m, mode in modes:
            m.training = mode


def _shape(out: Any) -> Any:
    if hasattr(out, "shape") and hasattr(out, "dim"):
        return tuple(int(d) for d in out.shape)
    if isinstance(out, tuple | list):
        return type(out)(_shape(o) for o in out)
    if isinstance(out, Mapping):
        return {k: _shape(v) for k, v in out.items()}
    return type(out).__name__


def _check_forward(module: Any, example_inputs: Any, expected: Any, layers: Sequence[str]) -> None:
    """Raise where the pruned ``module`` cannot run ``example_inputs``, or gives an output of
    another shape than ``expected`` (None: pruning changes the output's own shape)."""
    which = " and ".join(repr(n) for n in layers)
    hint = f"so the model is left as it was; {_SIZE_HINT}, or prune other layers"
    try:
        got = _output_shape(module, example_inputs)
    except Exception as exc:
        raise DataError(f"pruning {which} breaks the model's forward pass ({_said(exc)}), {hint}") from exc
    if expected is not None and got != expected:
        raise DataError(f"pruning {which} changes the model's output from {expected} to {got}, {hint}")


def _said(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


#: where a module keeps what Torch-Pruning replaces, besides its plain attributes (out_channels ...)
_SLOTS = ("_parameters", "_buffers", "_modules")


def _attributes(module: Any) -> list[tuple[Any, dict[str, Any], list[dict[str, Any]]]]:
    """Every module's attributes, parameters, buffers and submodules, as :func:`_restore` puts
    them back: the objects themselves, not copies (Torch-Pruning makes new ones, and changes no
    tensor in place), so this costs no memory."""
    return [(m, dict(vars(m)), [dict(getattr(m, slot)) for slot in _SLOTS]) for m in module.modules()]


def _restore(saved: list[tuple[Any, dict[str, Any], list[dict[str, Any]]]]) -> None:
    for m, attrs, slots in saved:
        for slot, was in zip(_SLOTS, slots, strict=True):
            _put_back(attrs[slot], was)  # (the very dict the module had, and has)
        _put_back(vars(m), attrs)


def _put_back(held: dict[str, Any], was: dict[str, Any]) -> None:
    """``held`` made equal to ``was`` in place, never empty on the way (another thread may read it)."""
    for key in [k for k in held if k not in was]:
        del held[key]
    held.update(was)


def _root(tp: Any, modules: Mapping[str, Any], name: str) -> tuple[Any, Any, int]:
    """The layer called ``name``, Torch-Pruning's handler for its output channels, and their count."""
    import torch

    layer = modules.get(name)
    if layer is None:
        raise LayerNotFoundError(f"layer {name!r} not found; pass names as in model.named_modules()")
    if isinstance(layer, torch.nn.modules.conv._ConvNd):
        return layer, tp.prune_conv_out_channels, layer.out_channels
    if isinstance(layer, torch.nn.Linear):
        return layer, tp.prune_linear_out_channels, layer.out_features
    raise DataError(f"layer {name!r} is a {type(layer).__name__}; only conv and dense layers can lose filters")


def _traced(tp: Any, module: Any, example_inputs: Any) -> tuple[Any, dict[Any, _Seen], dict[Any, _Place]]:
    """Torch-Pruning's dependency graph of ``module``, where each of its nodes finds channels in
    the tensor it takes and where it gives them (see :func:`_channel_places`). Its trace puts the
    whole model in eval mode and leaves it there: every module's own mode is put back (a model
    pruned while it trains went on training with dropout off and batch norm frozen). A slice,
    split or unbind of another dim than the channels' passes them whole (see
    :func:`_unmap_other_cuts`), and a cat is mapped by where the channels lie (see :func:`_map_cats`)."""
    import torch

    modes = [(m, m.training) for m in module.modules()]
    try:
        with torch.enable_grad():  # (the trace follows autograd)
            graph = tp.DependencyGraph().build_dependency(module, example_inputs=_inputs(example_inputs))
    finally:
        for m, training in modes:
            m.training = training
    seen, gives = _channel_places(graph)
    _unmap_other_cuts(tp, graph, seen)
    _map_cats(tp, graph, gives)
    return graph, seen, gives


def _passes_on(item: Any) -> bool:
    """Whether a pruning group's ``item`` takes channels from its target's output (the pruned
    layer's own, a coupled one's, an element-wise op's), not from a consumer's input."""
    return "out" in getattr(item.dep.handler, "__name__", "")


def _refusal(
    tp: Any, group: Any, names: Mapping[int, str], seen: Mapping[Any, _Seen], gives: Mapping[Any, _Place]
) -> str | None:
    """Why a pruning group (of a layer's every filter) cannot be pruned, whichever filters are
    chosen: it reaches a grouped conv other than a depthwise one, the layer's channels are
    stacked and merged by a reshape, split or pixel-shuffled in ``forward``, or they pass an op
    after which convscope cannot tell which dim holds them and then one that may cut them or a
    layer that the group prunes (see :func:`_unfollowed`), or they reach a layer the group leaves
    out, or a conv along another dim than its input channels'; ``None`` where none of these."""
    # (each check says its own reason; the first that finds one answers)
    return (
        _grouped_reason(_grouped_convs(group, names))
        or _stacked_merge(group, names, seen)
        or _split_reason(_splits(group, names, seen))
        or _shuffled(group, names, seen)
        or _lost(group, names, seen)
        or _unfollowed(tp, group, names, gives)
        or _unreached(group, names, gives)
        or _misread(group, names, seen)
    )


def _grouped_reason(grouped: Sequence[str]) -> str | None:
    if not grouped:
        return None
    return (
        f"its pruning would change {' and '.join(grouped)}, whose groups cannot lose channels one by one "
        "(depthwise convs, one filter per input, can be pruned)"
    )


def _grouped_convs(group: Any, names: Mapping[int, str]) -> list[str]:
    """The grouped convs (``1 < groups``) other than depthwise ones (one filter per input channel)
    that a pruning group reaches, each said with its groups: Torch-Pruning slices their channels
    as if their groups were one, so the filters it keeps would read other inputs than before (a
    silently different model), or their weight would lose every input."""
    import torch

    found: list[str] = []
    for item in group:
        target = item.dep.target.module
        if (
            isinstance(target, torch.nn.modules.conv._ConvNd)
            and target.groups > 1
            and not target.groups == target.in_channels == target.out_channels
        ):
            said = (
                f"{names.get(id(target), type(target).__name__)!r}, a conv of {target.groups} groups "
                f"({target.in_channels} inputs, {target.out_channels} filters)"
            )
            if said not in found:
                found.append(said)
    return found


#: autograd ops that take some of a tensor's entries along one dim (``split`` and ``chunk``, whose
#: sizes the code fixes, ``unbind``, ``x[:, a:b]``, ``narrow``, ``tensor_split``, ``x[:, i]``,
#: ``index_select``, ``x[:, [i, j]]``), and how a message says them where they cut channels
_CUTS = {
    "SplitBackward": "torch.split or torch.chunk",
    "SplitWithSizesBackward": "torch.split or torch.chunk",
    "UnbindBackward": "unbind",
    "SliceBackward": "a slice of channels",
    "SelectBackward": "one channel taken alone",
    "IndexSelectBackward": "an index of channels",
    "IndexBackward": "an index of channels",
}
#: reshapes followed by the sizes before and after them, which may cut channels over two dims
_RESHAPES = ("ViewBackward", "ReshapeAliasBackward", "UnsafeViewBackward")
#: how a message says the ops of :data:`_CUTS` and :data:`_RESHAPES` where the channels' dim is not known
_MAY_CUT = {
    **dict.fromkeys(("SplitBackward", "SplitWithSizesBackward"), "torch.split or torch.chunk"),
    "UnbindBackward": "unbind",
    "SliceBackward": "a slice",
    **dict.fromkeys(("SelectBackward", "IndexSelectBackward", "IndexBackward"), "an index"),
    **dict.fromkeys(_RESHAPES, "a view or reshape"),
}
#: autograd ops that contract a dim with another tensor's (matrix products, a conv that is no
#: layer): the channels of what they give are not the ones they took, wherever those lay
_MIXES = (
    "MmBackward", "BmmBackward", "MvBackward", "DotBackward", "AddmmBackward", "AddbmmBackward",
    "BaddbmmBackward", "AddmvBackward", "ConvolutionBackward",
)
#: autograd ops that move entries along some dims and keep the tensor's shape there (a flip, a
#: roll, a sort, a gather): along the channels' dim they reorder them, and what a layer reads
#: after it is no longer channel i at index i
_REORDERS = ("FlipBackward", "RollBackward", "SortBackward", "GatherBackward")


@dataclass(frozen=True)
class _Channels:
    """Where a tensor in ``forward`` holds a layer's channels: along ``dims``, outermost first
    (one dim, unless a reshape spread them over several), each channel ``inner`` entries of the
    last of them (more than one where a flatten merged the dims after the channels into theirs);
    ``turned``: a permute or transpose moved them on the way."""

    dims: tuple[int, ...]
    inner: int = 1
    turned: bool = False


#: where a tensor holds channels: a :class:`_Channels`, a ``str`` naming the op after which that
#: cannot be told, or ``None`` (the tensor holds no layer's channels: an input, a parameter, a
#: sum over the channels)
_Place = _Channels | str | None
#: what an op of the trace takes: where that tensor holds channels, and its shape
_Seen = tuple[_Place, tuple[int, ...]]


def _channel_places(graph: Any) -> tuple[dict[Any, _Seen], dict[Any, _Place]]:
    """Where, in ``forward``, each node of Torch-Pruning's ``graph`` finds channels in the tensor
    it takes, with that tensor's shape (as the trace saw it), and where it gives them. Channels
    start on dim 1 of a conv's output and on the last dim of a dense layer's (an embedding's, an
    attention's, a recurrent layer's), and are followed from there op by op (see :func:`_carried`),
    so that a cut counts as a cut of channels exactly where it cuts the dim that holds them. A
    layer's own channels need nothing before it, so a layer called on its own output is followed
    too; an op that the trace reaches only through itself is given up on."""
    nodes = list(graph.module2node.values())
    by_fn = {id(n.grad_fn): n for n in nodes}
    out: dict[Any, _Place] = {n: place for n in nodes if (place := _own_channels(n)) is not None}
    waiting = {n: len(n.inputs) for n in nodes}
    ready = [n for n in nodes if not waiting[n] or n in out]
    seen: dict[Any, _Seen] = {}
    while ready:
        node = ready.pop()
        edges: list[_Seen] = []
        operands: list[tuple[Any, _Seen] | None] = []  # (each input of the op: its node and edge; None: none)
        for fn, nr, source in _sources(node, by_fn):
            if source is not None:  # (not a parameter's gradient, which the graph leaves out)
                shapes = _shapes(fn)
                edges.append((out.get(source), shapes[nr] if nr < len(shapes) else ()))
            operands.append(None if source is None else (source, edges[-1]))
        held = [(place, shape) for place, shape in edges if place is not None]
        seen[node] = held[0] if held else (None, edges[0][1] if edges else ())
        if node not in out:
            out[node] = _carried(node, held, alone=len(edges) == 1, operands=operands)
        for after in node.outputs:
            waiting[after] -= 1
            if not waiting[after] and after not in seen and after not in ready:
                ready.append(after)
    for node in nodes:
        if node not in seen:
            seen[node] = ("a layer called on its own output", ())
            out.setdefault(node, "a layer called on its own output")
    return seen, out


def _sources(node: Any, by_fn: Mapping[int, Any]) -> list[tuple[Any, int, Any]]:
    """Each input of the autograd op of ``node``: that op's input op (``None``: a tensor outside
    autograd), which of its outputs, and its node in the graph (``None``: none, as for a
    parameter that the graph leaves out). A layer called more than once has one node, which holds
    one call's op: another call's is the node among ``node``'s inputs of the same kind."""
    inputs = list(getattr(node.grad_fn, "next_functions", ()))
    spare = [n for n in node.inputs if not any(n.grad_fn is fn for fn, _ in inputs)]
    found = []
    for fn, nr in inputs:
        source = None if fn is None else by_fn.get(id(fn))
        if source is None and fn is not None:
            source = next((n for n in spare if _kind(n.grad_fn) == _kind(fn)), None)
            if source is not None:
                spare.remove(source)
        found.append((fn, nr, source))
    return found


def _own_channels(node: Any) -> _Channels | None:
    """The channels a conv or dense layer (an embedding, an attention, a recurrent layer) gives:
    on dim 1 of a conv's output (``N x C x ...``), on the last dim of a dense layer's."""
    import torch

    shapes = _shapes(node.grad_fn)
    if not shapes or not shapes[0]:
        return None
    if isinstance(node.module, torch.nn.modules.conv._ConvNd):
        return _Channels((len(shapes[0]) - 1 - len(node.module.kernel_size),))
    if isinstance(node.module, torch.nn.Linear | torch.nn.Embedding | torch.nn.MultiheadAttention | torch.nn.RNNBase):
        return _Channels((len(shapes[0]) - 1,))
    return None


def _carried(
    node: Any, held: Sequence[_Seen], *, alone: bool, operands: Sequence[tuple[Any, _Seen] | None] = ()
) -> _Place:
    """Where the output of ``node`` holds channels, given where its inputs ``held`` them (and the
    inputs' shapes); ``alone``: the op takes one tensor (a layer's own are :func:`_own_channels`);
    ``operands``: each input of the op, in order, with its node (``None``: outside the graph).
    A permute, transpose or movedim moves them; a view, reshape or flatten is followed
    by the sizes before and after it (:func:`_reshaped`), a squeeze or unsqueeze by the dims it
    takes out or puts in; a cut of another dim, a reduction of other dims, a cat or stack, and
    element-wise ops (pooling, normalisation, activations, broadcasting) keep them where their
    sizes do, and so does a pad after them (which leaves them where they start) or a flip, roll,
    sort or gather of other dims. The matrix product inside a dense layer called on more than two
    dims passes them to the layer, and so does a product by a tensor outside autograd that keeps
    the dim holding them (see :func:`_multiplied`). Any other op (another matrix product, a pixel
    shuffle, an unfold, a pad before them, a flip of them ...) loses them: the place is then the
    op's name. A reduction to one value a sample holds none, wherever they were."""
    fn = node.grad_fn
    shapes = _shapes(fn)
    if not held:
        return None
    lost = next((place for place, _ in held if isinstance(place, str)), None)
    if lost is not None:
        if shapes and int(np.prod(shapes[0][1:])) == 1 and (not shapes[0] or hasattr(fn, "_saved_keepdim")):
            return None  # (a reduction to one value a sample, or to a scalar: none are left, wherever they were)
        return lost
    kind = _kind(fn)
    name = _said_op(kind)
    places = [(place, shape) for place, shape in held if isinstance(place, _Channels)]
    at, before = places[0]
    if not shapes or not all(shape for _, shape in places):
        return None if shapes == [()] else name  # (a scalar holds no channels)
    after = shapes[0]
    if kind == "PermuteBackward":
        order = [_signed(d) % len(after) for d in fn._saved_dims]
        return _moved(at, tuple(order.index(d) for d in at.dims))
    if kind in ("TransposeBackward", "TBackward"):
        a, b = (_signed(fn._saved_dim0), _signed(fn._saved_dim1)) if kind == "TransposeBackward" else (0, -1)
        swap = {a % len(after): b % len(after), b % len(after): a % len(after)}
        return _moved(at, tuple(swap.get(d, d) for d in at.dims))
    if kind == "UnsqueezeBackward":
        k = _signed(fn._saved_dim) % len(after)
        return replace(at, dims=tuple(d + (d >= k) for d in at.dims))
    if kind in ("SelectBackward", "UnbindBackward", "SqueezeBackward"):
        gone = set(_dims(fn, len(before)) if hasattr(fn, "_saved_dim") else range(len(before)))
        if kind == "SqueezeBackward":
            gone = {k for k in gone if before[k] == 1}  # (a squeeze of a longer dim keeps it)
        dims = tuple(d - sum(k < d for k in gone) for d in at.dims if d not in gone)
        return replace(at, dims=dims) if dims else None  # (one channel taken alone: a cut, refused)
    if kind in ("SliceBackward", "SplitBackward", "SplitWithSizesBackward", "IndexSelectBackward"):
        return at
    if kind == "IndexBackward":
        index = [i for i in fn._saved_indices if i is not None]
        return at if len(index) == 1 and index[0].dim() == 1 else "an index of several dims at once"
    if kind in _RESHAPES:
        moved = _reshaped(at, before, after)
        return moved if moved is not None else f"a view or reshape of {before[1:]} as {after[1:]} per sample"
    if hasattr(fn, "_saved_keepdim"):  # a reduction: sum, mean, amax, max along dims, norm ...
        reduced = set(_dims(fn, len(before)))
        if not reduced or reduced & set(at.dims):
            return None  # (of every dim, or of the channels: none are left)
        return replace(at, dims=at.dims if fn._saved_keepdim else tuple(d - sum(k < d for k in reduced) for d in at.dims))
    if kind in _REORDERS and set(_reordered(fn, len(before))) & set(at.dims):
        return name
    if kind == "ConstantPadNdBackward":  # (a pad after them keeps their indices; one before them shifts them)
        return at if _padded_after(fn._saved_pad, at.dims, len(before)) else name
    if kind in ("MmBackward", "BmmBackward"):
        return _multiplied(operands, len(after)) or name
    if kind in _MIXES:
        return at if _in_dense(node, fn, at, len(before)) else name
    # element-wise ops, broadcasting (which aligns the last dims), a cat (whose dim may be theirs,
    # each input's channels then a part of it) or a stack (which puts a new dim in)
    joined = _signed(fn._saved_dim) % len(after) if kind in ("CatBackward", "StackBackward") else -1
    moved_to: list[_Channels] = []
    for place, shape in places:
        shift = len(after) - len(shape)
        if kind == "StackBackward":
            dims = tuple(d + (d >= joined) for d in place.dims)
        elif shift >= 0 and (not alone or not shift or kind in ("ExpandBackward", "RepeatBackward")):
            dims = tuple(d + shift for d in place.dims)
        else:
            return name
        sizes = [(after[d], shape[c]) for d, c in zip(dims, place.dims, strict=True) if d != joined or kind == "StackBackward"]
        if any(a != b for a, b in sizes):
            return name  # (their sizes changed: a pixel shuffle, a pad of channels ...)
        moved_to.append(replace(place, dims=dims))
    first = moved_to[0]
    if any((p.dims, p.inner) != (first.dims, first.inner) for p in moved_to[1:]):
        return f"{name}, where they meet channels that lie along another dim"
    if kind == "CatBackward" and joined in first.dims:  # (see _map_cats)
        if len(first.dims) > 1 or first.inner > 1:
            return f"a {name} of flattened channels"
        outside = "".join("o" if f is None else "." for f, _ in fn.next_functions)  # (o: a tensor outside autograd)
        if len([run for run in outside.split(".") if run]) > 1:
            return f"a {name} of tensors outside autograd on more than one side of them"
    return replace(first, turned=any(p.turned for p in moved_to))


def _in_dense(node: Any, fn: Any, at: _Channels, ndim: int) -> bool:
    """Whether ``node`` (of autograd op ``fn``) is the matrix product of a dense layer called on
    more than two dims, whose node is the view back to them: it takes the channels ``at`` as the
    layer's inputs, on the last dim."""
    import torch

    return (
        bool(node.outputs)
        and at.dims == (ndim - 1,)
        and at.inner == 1
        and all(
            isinstance(o.module, torch.nn.Linear)
            and _kind(o.grad_fn) in _RESHAPES
            and any(f is fn for f, _ in o.grad_fn.next_functions)
            for o in node.outputs
        )
    )


def _multiplied(operands: Sequence[tuple[Any, _Seen] | None], ndim: int) -> _Channels | None:
    """Where the product ``a @ b`` (``torch.mm`` or ``torch.bmm``: ``ndim`` dims) of the channels
    and a tensor outside autograd (a buffer, a constant) holds them, on the dim it keeps: the
    rows of ``a`` (its dim -2), the columns of ``b`` (its last). ``None`` where it contracts them,
    or where the other operand is in the graph: a parameter, or what one makes, Torch-Pruning
    would prune with them as if the product were element-wise."""
    inside = [(k, o[1][0]) for k, o in enumerate(operands) if o is not None]
    if len(operands) != 2 or len(inside) != 1:
        return None
    k, at = inside[0]
    return at if isinstance(at, _Channels) and at.dims == (ndim - 2 + k,) else None


def _reordered(fn: Any, ndim: int) -> tuple[int, ...]:
    """The dims along which the autograd op ``fn`` (of :data:`_REORDERS`) moves entries."""
    dims = getattr(fn, "_saved_dims", None)
    if dims is None:
        return _dims(fn, ndim)
    return tuple(_signed(int(d)) % ndim for d in dims) if len(dims) else tuple(range(ndim))  # (a roll of it flattened)


def _padded_after(pad: Sequence[int], dims: Sequence[int], ndim: int) -> bool:
    """Whether a constant ``pad`` (as ``torch.nn.functional.pad`` takes it: from the last dim back)
    leaves ``dims`` where they start, and cuts none of them."""
    for d in dims:
        k = 2 * (ndim - 1 - d)
        before, after = (pad[k], pad[k + 1]) if k + 1 < len(pad) else (0, 0)
        if before or after < 0:
            return False
    return True


def _moved(at: _Channels, dims: tuple[int, ...]) -> _Channels:
    return replace(at, dims=dims, turned=at.turned or dims != at.dims)


def _reshaped(at: _Channels, before: Sequence[int], after: Sequence[int]) -> _Channels | None:
    """Where the channels ``at`` a tensor of shape ``before`` lie once it is viewed as ``after``:
    the dims of ``after`` that start where they started (not the batch's dim 0, unless they were
    on it) and hold them whole, alone or merged with what came after them (a flatten); more than
    one where the reshape cuts them (``view(n, 2, c // 2, h, w)``). ``None``: no dims hold them
    so (merged with the batch, or after other entries, as a flatten of channels last puts them)."""
    first, last = at.dims[0], at.dims[-1]
    if at.dims != tuple(range(first, last + 1)):
        return None
    lead, count = int(np.prod(before[:first])), int(np.prod(before[first : last + 1])) // at.inner
    for j in range(1 if first else 0, len(after)):
        if int(np.prod(after[:j])) != lead or (after[j] == 1 and count > 1):
            continue  # (not where they start, or a dim of one before them)
        held = 1
        for k in range(j, len(after)):
            if count % held:
                return None  # (a dim shared by channels and other entries, not after them)
            held *= after[k]
            if held % count == 0:
                return replace(at, dims=tuple(range(j, k + 1)), inner=held // count)
        return None
    return None


def _unmap_other_cuts(tp: Any, graph: Any, seen: Mapping[Any, _Seen]) -> None:
    """Make each slice, split and unbind of ``graph`` that cuts another dim than the channels'
    pass them whole, as an element-wise op does. Torch-Pruning 1.6 maps pruned channels through
    such an op wherever it cuts dim 1 (of a 4-d tensor), however the channels lie: after a
    permute to channels last, a crop of rows (dim 1) sent the pruned filters 2 and 5 to the next
    conv as its inputs 1 and 4 (a silently different model), and filter 0 to none (a model that
    raised). A cut of the channels themselves keeps its mapping: a group that reaches it is refused."""
    cutters = {tp.ops.OPTYPE.SLICE: "inputs", tp.ops.OPTYPE.SPLIT: "outputs", tp.ops.OPTYPE.UNBIND: "outputs"}
    for node in graph.module2node.values():
        side = cutters.get(node.type)
        at, shape = seen.get(node, (None, ()))
        kind = _kind(node.grad_fn)
        if side is None or not isinstance(at, _Channels) or kind not in _CUTS:
            continue
        if set(_cut_dims(node.grad_fn, kind, len(shape))) & set(at.dims):
            continue
        node.type, node.enable_index_mapping = tp.ops.OPTYPE.ELEMENTWISE, False  # (its mapping is not made again)
        near = node.inputs if side == "inputs" else node.outputs
        for dep in node.dependencies:
            if any(dep.target is n for n in near):
                dep.index_mapping[0] = None
        for other in near:
            for dep in other.dependencies:
                if dep.target is node:
                    dep.index_mapping[0] = None


def _map_cats(tp: Any, graph: Any, gives: dict[Any, _Place]) -> None:
    """Map each cat of ``graph`` by where its inputs hold channels (see :func:`_channel_places`):
    along the dim that holds them, each input's channels are its own part of the cat's, at the
    offset that the inputs before it take (their sizes as the trace saw them, inputs outside
    autograd too); along another dim, every input holds the same channels, as an element-wise op
    does. Torch-Pruning 1.6 maps a cat only where its dim is 1 (or was given as a negative one),
    however the channels lie, with offsets from the traced inputs alone: after a permute to
    channels last, a cat along dim 3 gave a second conv's pruned filters 1 and 4 to the next
    conv as its inputs 1 and 4 instead of 9 and 12, and pruned the first conv's filters 1 and 4
    with them (the pruned model raised); a cat along dim 1 after the model's input (``torch.cat([x, conv(x)], 1)``) gave
    the conv's pruned filters 0 and 5 to the next conv as its inputs 0 and 5 instead of 3 and 8,
    a silently different model. A cat where convscope cannot tell the parts (of flattened
    channels, or of tensors outside autograd on more than one side of the channels, whose sizes
    the trace does not show) passes them on to what reads it (see :func:`_unjoin`): a group that
    reaches a layer so is refused (see :func:`_unfollowed`)."""
    by_fn = {id(n.grad_fn): n for n in graph.module2node.values()}
    for node in graph.module2node.values():
        fn, place = node.grad_fn, gives.get(node)
        shapes = _shapes(fn)
        if node.type != tp.ops.OPTYPE.CONCAT or _kind(fn) != "CatBackward" or place is None or not shapes:
            continue
        joined = _signed(fn._saved_dim) % len(shapes[0])
        if isinstance(place, str):
            _unjoin(node, joined, gives)
            continue
        parts: list[tuple[Any, int | None]] = []
        for f, nr, source in _sources(node, by_fn):
            size = _size(f, nr, joined)
            if not (size is None and source is None and parts and parts[-1] == (None, None)):
                parts.append((source, size))  # (tensors outside autograd side by side are one part)
        along = joined in place.dims
        if along:
            unknown = [i for i, (_, size) in enumerate(parts) if size is None]
            if len(unknown) > 1:  # (no telling the offsets: _carried gave most such cats no place)
                gives[node] = "a cat of parts whose sizes the trace does not show"
                _unjoin(node, joined, gives)
                continue
            if unknown:  # (its size: what the others leave of the cat's)
                parts[unknown[0]] = (None, shapes[0][joined] - sum(size or 0 for _, size in parts))
            node.module.concat_sizes = [int(size or 0) for _, size in parts]  # (made smaller as inputs lose channels)
        node.enable_index_mapping = False  # (Torch-Pruning's own mapping, made again for each group, is not)
        positions: dict[int, list[int]] = {}  # input node -> its places among the cat's inputs (cat([a, a]): two)
        for i, (source, _) in enumerate(parts):
            if source is not None:
                positions.setdefault(id(source), []).append(i)
        # the k-th dependency between the cat and an input stands for that input's k-th place, as in Torch-Pruning
        taken: dict[tuple[int, bool], int] = {}
        for owner in [node, *{id(n): n for n in node.inputs}.values()]:
            inward = owner is node  # (the cat's dependencies on its inputs: from its channels to theirs)
            for dep in owner.dependencies:
                other = dep.target if inward else owner
                if not (any(other is n for n in node.inputs) if inward else dep.target is node):
                    continue  # (not between the cat and one of its inputs)
                order = positions.get(id(other), [])
                k = taken[(id(other), inward)] = taken.get((id(other), inward), -1) + 1
                part = _CatPart(node.module, order[min(k, len(order) - 1)], inward=inward) if along and order else None
                dep.index_mapping[1] = part


def _unjoin(node: Any, joined: int, gives: Mapping[Any, _Place]) -> None:
    """Keep a cat that joins channels along ``joined`` and cannot be mapped (see :func:`_carried`)
    from tying its inputs' channels to each other: the indices that reach it from one input go on
    to what reads the cat (where a layer is refused: see :func:`_unfollowed`), not back to the
    others. Torch-Pruning takes such a cat for an element-wise op, and the indices went back and
    forth between its inputs through their flattens, each time spread and gathered again: for
    maps of 8 x 8 it had not ended after two minutes."""
    inputs = [gives.get(n) for n in node.inputs]
    if not all(isinstance(p, _Channels) and joined in p.dims for p in inputs if p is not None):
        return
    node.enable_index_mapping = False
    for dep in node.dependencies:
        if any(dep.target is n for n in node.inputs):
            dep.index_mapping[1] = _nothing


def _nothing(idxs: Sequence[Any]) -> list[Any]:
    return []


def _size(fn: Any, nr: int, dim: int) -> int | None:
    """The size along ``dim`` of output ``nr`` of autograd op ``fn`` (``None``: not known, as for a
    tensor outside autograd)."""
    shapes = [] if fn is None else _shapes(fn)
    return shapes[nr][dim] if nr < len(shapes) and len(shapes[nr]) > dim else None


class _CatPart:
    """Torch-Pruning's index mapping between a cat's channels and those of its input at
    ``position``: from the cat's (``inward``) to the input's own, or back. The offset comes from
    the cat op's ``concat_sizes``, which Torch-Pruning makes smaller as the inputs lose channels,
    so that the next layer of a plan is mapped on the cat as it is by then."""

    def __init__(self, op: Any, position: int, *, inward: bool) -> None:
        self.op, self.position, self.inward = op, position, inward

    def __call__(self, idxs: Sequence[Any]) -> list[Any]:
        sizes = self.op.concat_sizes
        start = sum(sizes[: self.position])
        if self.inward:
            end = start + sizes[self.position]
            return [i._replace(idx=i.idx - start) for i in idxs if start <= i.idx < end]
        return [i._replace(idx=i.idx + start) for i in idxs]


def _unfollowed(tp: Any, group: Any, names: Mapping[int, str], gives: Mapping[Any, _Place]) -> str | None:
    """Why a pruning group cannot pass the channels through an op in whose output convscope
    cannot follow them, on to a layer that it changes (naming that op, and the first such layer
    other than the group's root); ``None`` where none. Such an op leaves no dim holding them as they were (a
    pixel shuffle, an unfold, a matrix product, a pad before them, a flip or roll of them ...;
    see :func:`_carried`), or holds none of them (a mean over them). Torch-Pruning passes the
    pruned indices through it as if it were element-wise: after a pixel shuffle of 16 channels
    into 4, filters 0, 5, 6 and 7 cost the next conv its input 0 alone; after a pad of two
    channels before them, a flip or a roll, the next conv lost its inputs 0, 5, 6 and 7, which
    held other maps; and the filters 0 and 3 of a conv whose maps are added to them so padded (a
    CIFAR ResNet's shortcut) were pruned with filters 0 and 3, not 2 and 5: each pruned model
    ran, silently different.

    Torch-Pruning's traversal is walked again with every filter, each path marked by whether
    every tensor it passes holds followed channels (for a step back to an op's input, the op's
    own output too); a layer counts where some of its indices come by such paths alone, so an op
    whose output meets the channels again whole (a norm over them that divides them, a gate of
    one value a sample) refuses nothing."""
    root = group[0].dep
    start = [tp._helpers._HybridIndex(idx=int(i), root_idx=int(i)) for i in group[0].idxs]
    stack: list[tuple[Any, Any, list[Any], str | None]] = [(root.target, root.handler, start, None)]
    done: set[tuple[int, Any, str | None, frozenset[int]]] = set()
    reached: dict[tuple[int, Any], tuple[Any, set[int], dict[int, str]]] = {}  # (layer, handler) -> node, followed, not
    while stack:
        node, handler, idxs, lost = stack.pop()
        for dep in node.dependencies:
            if not dep.is_triggered_by(handler):
                continue
            new = idxs
            for mapping in dep.index_mapping:
                if mapping is not None:
                    new = mapping(new)
            target = dep.target
            if not new:
                continue
            # (forward: the op's output; back to an input: the op's and the input's)
            passed = [node] if any(o is target for o in node.outputs) else [node, target]
            clean = all(isinstance(gives.get(n), _Channels) for n in passed)
            where = lost if lost is not None or clean else _said_place(node, gives)
            key = (id(target), dep.handler, where, frozenset(int(i.idx) for i in new))
            if key in done:
                continue
            done.add(key)
            if id(target.module) in names and target is not root.target:
                _, followed, unfollowed = reached.setdefault((id(target), dep.handler), (target, set(), {}))
                for i in new:
                    if where is None:
                        followed.add(int(i.idx))
                    else:
                        unfollowed.setdefault(int(i.idx), where)
            stack.append((target, dep.handler, new, where))
    for target, followed, unfollowed in reached.values():
        guessed = [where for i, where in unfollowed.items() if i not in followed]
        if guessed:
            layer = names[id(target.module)]
            return (
                f"in forward, its channels pass through {guessed[0]}, after which convscope cannot tell which channels "
                f"of {layer!r} they are; it refuses rather than guess: prune the layers after it instead"
            )
    return None


def _unreached(group: Any, names: Mapping[int, str], gives: Mapping[Any, _Place]) -> str | None:
    """Why a pruning group cannot leave out a layer that the group's root's channels reach in
    ``forward`` (each op on the way holding them where convscope follows them), naming it and
    the first op on the way that the group leaves out too; ``None`` where none. Torch-Pruning stops at some
    ops it takes for others: a ``repeat_interleave`` of the channels (an unsqueeze, an expand and
    a view), mapped by its rule for grouped-query attention, passes no index on, so the layer
    after it kept all its inputs, which then read other maps (a crop back to the channels'
    count kept the sizes, and the model ran, silently different)."""
    root = group[0].dep.target
    kept = {id(item.dep.target) for item in group}
    stack: list[tuple[Any, str | None]] = [(out, None) for out in root.outputs]
    seen: set[int] = set()
    while stack:
        node, first = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if id(node.module) in names:
            if id(node) not in kept:
                where, layer = first or _said_op(_kind(node.grad_fn)), names[id(node.module)]
                return (
                    f"in forward, its channels reach {layer!r} through {where}, along which Torch-Pruning does not "
                    f"carry the pruned filters to {layer!r} (its inputs would stay as they are, and read other maps); "
                    "it refuses rather than prune it so: prune the layers after it instead"
                )
            continue  # (its output holds its own channels)
        if not isinstance(gives.get(node), _Channels):
            continue  # (lost, or none left: said elsewhere, or nothing to carry)
        if first is None and id(node) not in kept:
            first = _said_op(_kind(node.grad_fn))
        stack.extend((out, first) for out in node.outputs)
    return None


def _said_place(node: Any, gives: Mapping[Any, _Place]) -> str:
    """The op after which ``node``'s output holds no channels that convscope follows, as a message says it."""
    place = gives.get(node)
    return place if isinstance(place, str) else _said_op(_kind(node.grad_fn))


def _group_ops(group: Any, names: Mapping[int, str], seen: Mapping[Any, _Seen]) -> Any:
    """The ops of ``forward`` (not the model's layers) that a pruning group reaches: each one's
    autograd node, kind (as :data:`_CUTS` names them), and where its input holds channels (with
    that input's shape)."""
    for item in group:
        node = item.dep.target
        kind = _kind(node.grad_fn)
        if id(node.module) in names or kind is None:
            continue  # (a layer of the model, not an op of its forward)
        at, shape = seen.get(node, (None, ()))
        yield node.grad_fn, kind, at, shape


def _splits(group: Any, names: Mapping[int, str], seen: Mapping[Any, _Seen]) -> list[str]:
    """Where, in ``forward``, the channels that a pruning group carries are cut into parts (see
    :data:`_CUTS`) or reshaped other than whole (``view(n, 2, c // 2, h, w)``; a flatten keeps
    them whole), said as in :data:`_CUTS` (and "after a permute" where one moved them).
    Torch-Pruning 1.6 maps pruned channels to the parts as if they were cut along dim 1, and
    cannot change the sizes the code gives, so the pruned model raises (or reads other channels
    than before) at its next forward pass.

    A cut counts where it cuts the dim that holds the channels at that point of ``forward``, as
    :func:`_channel_places` follows them (dim 1 of a conv's output, the last of a dense layer's,
    moved by a permute or transpose, spread by a reshape): a crop, a split of the batch or of a
    sequence cuts none, in channels-last layout too, however long its dim."""
    said: list[str] = []
    for fn, kind, at, shape in _group_ops(group, names, seen):
        if not isinstance(at, _Channels):
            continue
        what = None
        if kind in _CUTS and set(_cut_dims(fn, kind, len(shape))) & set(at.dims):
            what = _CUTS[kind] + (" after a permute" if at.turned else "")
        elif kind in _RESHAPES and len(at.dims) == 1 and (result := _shapes(fn)):
            moved = _reshaped(at, shape, result[0])
            if moved is None or len(moved.dims) > 1:
                what = f"a view or reshape of {shape[1:]} as {result[0][1:]} per sample"
        if what is not None and what not in said:
            said.append(what)
    return said


def _stacked_merge(group: Any, names: Mapping[int, str], seen: Mapping[Any, _Seen]) -> str | None:
    """Why a pruning group cannot pass a reshape that merges the channels with the dim that a
    ``torch.stack`` put just before them (``torch.stack([a, b], 1).flatten(1, 2)``); ``None``
    where it reaches none. Each filter's maps then lie once per stacked tensor, a channel count
    apart, and Torch-Pruning 1.6 maps a reshape that multiplies the channels' count as if each
    channel's entries lay side by side: filters 0 and 5 of 8 cost the next conv its inputs 0, 1,
    10 and 11, not 0, 5, 8 and 13, and the pruned model ran, silently different. Following that
    layout would take a mapping whose channel count shrinks as filters go, which Torch-Pruning
    keeps for a cat alone (and the flattens after it infer their strides from that count too);
    ``torch.cat`` along the stack's dim gives the same tensor, and :func:`_map_cats` maps it.
    (Stacked tensors must keep one shape, so the stacked layers lose the same filters: a stack
    whose dim comes after the channels, or that no reshape merges with them, is followed.)"""
    for fn, kind, at, shape in _group_ops(group, names, seen):
        if kind not in _RESHAPES or not isinstance(at, _Channels) or len(at.dims) != 1 or not (result := _shapes(fn)):
            continue
        stack = _stack_before(fn, shape)
        if stack is None:
            continue
        s, after = _signed(stack._saved_dim) % len(shape), result[0]
        merged = (
            at.dims == (s + 1,)
            and s >= 1
            and len(after) > s
            and int(np.prod(after[:s])) == int(np.prod(shape[:s]))
            and after[s] % (shape[s] * shape[s + 1]) == 0
        )
        if merged:
            return (
                f"its channels are stacked in forward (torch.stack along dim {s}, the dim before theirs) and then "
                f"merged with the stack's dim (a view or reshape of {shape[1:]} as {after[1:]} per sample): each "
                f"filter's maps then lie once per stacked tensor, {shape[s + 1]} channels apart, and Torch-Pruning "
                "would map them as if they lay side by side (the next layer would lose other inputs than the pruned "
                f"filters gave); torch.cat along dim {s} gives the same tensor, and convscope maps it: use it "
                "instead, or prune the layers after it"
            )
    return None


def _stack_before(fn: Any, shape: Sequence[int]) -> Any:
    """The ``torch.stack`` (its autograd op) that made the tensor of ``shape`` that the autograd
    op ``fn`` takes, directly or through ops of that tensor alone that keep its shape (an
    activation, a dropout); ``None`` where none."""
    while True:
        inputs = [f for f, _ in getattr(fn, "next_functions", ()) if f is not None]
        if len(inputs) != 1 or _shapes(inputs[0])[:1] != [tuple(shape)]:
            return None
        fn = inputs[0]
        if _kind(fn) == "StackBackward":
            return fn


def _shuffled(group: Any, names: Mapping[int, str], seen: Mapping[Any, _Seen]) -> str | None:
    """Why a pruning group cannot pass a pixel shuffle of its channels; ``None`` where it
    reaches none. ``pixel_shuffle(x, r)`` makes each ``r * r`` channels one channel of ``r x r``
    pixels: a count that is not a multiple of ``r * r`` makes it raise (which only the pruned
    model's forward pass showed, with a hint about views), and Torch-Pruning passes the pruned
    filters through it as if it were element-wise, so that even where the count fits, each
    channel after it is made of other filters' maps than before (filters 0, 5, 6 and 7 of 16,
    before a shuffle that is the model's output: its channel 0 was then made of filters 1 to 4).
    Refused whatever reads it, before anything is pruned."""
    for fn, kind, at, shape in _group_ops(group, names, seen):
        if kind == "PixelShuffleBackward" and isinstance(at, _Channels) and len(shape) >= 3 and len(shape) - 3 in at.dims:
            r = int(fn._saved_upscale_factor)
            return (
                f"in forward, its channels pass through pixel_shuffle (upscale factor {r}), which makes each {r * r} "
                f"of them one channel of {r} x {r} pixels: a count of them that is not a multiple of {r * r} makes it "
                "raise, and Torch-Pruning would pass the pruned filters on as if it were element-wise, so that what "
                "follows would read channels made of other filters' maps than before; prune other layers instead"
            )
    return None


def _misread(group: Any, names: Mapping[int, str], seen: Mapping[Any, _Seen]) -> str | None:
    """Why a pruning group cannot take input channels from a conv layer whose input holds the
    channels along another dim than the layer reads its input channels from; ``None`` where
    none. A ``torch.stack`` along dim 1 read by a ``Conv3d`` puts
    them on its depth: Torch-Pruning cut the conv's input channels for them all the same, and only
    the pruned model's forward pass, which raised, stopped it (with a hint about views)."""
    import torch

    for item in group:
        node, layer = item.dep.target, item.dep.target.module
        if _passes_on(item) or id(layer) not in names or not isinstance(layer, torch.nn.modules.conv._ConvNd):
            continue
        at, shape = seen.get(node, (None, ()))
        own = len(shape) - 1 - len(layer.kernel_size)
        if isinstance(at, _Channels) and own >= 0 and own not in at.dims:
            name = names[id(layer)]
            return (
                f"in forward, its channels reach {name!r} along dim {at.dims[0]} of its input, not along dim {own}, "
                f"which {name!r} reads as its input channels; Torch-Pruning would take input channels of {name!r} "
                "for them all the same, and the pruned model would not run: prune the layers after it instead"
            )
    return None


def _lost(group: Any, names: Mapping[int, str], seen: Mapping[Any, _Seen]) -> str | None:
    """Why a pruning group cannot pass an op that may cut channels (see :data:`_MAY_CUT`) where
    it cannot be told which dim holds them (naming the op after which that was lost, and the
    first such cut); ``None`` where none."""
    for _, kind, at, _ in _group_ops(group, names, seen):
        if isinstance(at, str) and kind in _MAY_CUT:
            return (
                f"in forward, its channels pass through {at}, after which convscope cannot tell which dim holds "
                f"them, and then through {_MAY_CUT[kind]}, which may cut them; it refuses rather than guess: prune "
                "the layers after it instead"
            )
    return None


def _kind(fn: Any) -> str | None:
    """An autograd node's op, as :data:`_CUTS` names them (``None``: no op, as for a parameter)."""
    return fn.name().rstrip("0123456789") if hasattr(fn, "name") else None


def _said_op(kind: str | None) -> str:
    """An autograd op as a message says it: ``PixelShuffleBackward`` as ``pixel_shuffle``."""
    return re.sub(r"(?<=[a-z])(?=[A-Z])", "_", (kind or "an unknown op").removesuffix("Backward")).lower()


def _shapes(fn: Any) -> list[tuple[int, ...]]:
    """The shapes of what the op of autograd node ``fn`` gave, as the trace saw them."""
    return [tuple(int(d) for d in m.shape) for m in getattr(fn, "_input_metadata", ())]


def _signed(dim: int) -> int:
    return dim - 2**64 if dim >= 2**63 else dim  # (a negative dim is kept as an unsigned 64-bit one)


def _dims(fn: Any, ndim: int) -> tuple[int, ...]:
    """The dims (from 0) that the autograd op ``fn`` was given (``dim=``; none where it had none)."""
    dim = getattr(fn, "_saved_dim", None)
    dims = dim if isinstance(dim, tuple | list) else () if dim is None else (dim,)
    return tuple(_signed(int(d)) % ndim for d in dims) if ndim else ()


def _cut_dims(fn: Any, kind: str, ndim: int) -> tuple[int, ...]:
    """The dims along which the autograd op ``fn`` (of :data:`_CUTS`) took its parts."""
    if kind == "IndexBackward":  # x[:, [i, j]]: the dims given an index
        return tuple(i for i, index in enumerate(getattr(fn, "_saved_indices", ())) if index is not None)
    return _dims(fn, ndim)


def _split_reason(cuts: Sequence[str]) -> str | None:
    if not cuts:
        return None
    return (
        f"its channels are split in forward ({', '.join(cuts)}), in sizes that the code fixes and pruning "
        "cannot change; prune the layers that read the parts instead"
    )


def _merged_removals(before: list[int], now: Iterable[int]) -> list[int]:
    """The indices of a dim removed so far, numbered as before any was: ``before`` (so numbered,
    sorted) and ``now``, numbered as the dim is after those.

    Example:
        >>> _merged_removals([1, 4], [1, 3])  # (now 0 2 3 5 6 ... of before: its 1 and 3 are 2 and 5)
        [1, 2, 4, 5]
    """
    out = set(before)
    for i in now:
        for gone in before:
            if gone > i:
                break
            i += 1
        out.add(i)
    return sorted(out)


def _kept_indices(old: Any, new: Any, owner: Any, removed_at: dict[tuple[int, str], list[int]]) -> dict[int, list[int]] | None:
    """dim -> kept indices such that ``new == old`` restricted to them; None if not derivable."""
    import torch

    keep: dict[int, list[int]] = {}
    for dim in range(old.dim()):
        if old.shape[dim] == new.shape[dim]:
            continue
        lost = old.shape[dim] - new.shape[dim]
        candidates = [removed_at.get((id(owner), d)) for d in ("out", "in")]
        match = next((c for c in candidates if c is not None and len(c) == lost), None)
        if match is None:
            return None
        gone = set(match)
        keep[dim] = [i for i in range(old.shape[dim]) if i not in gone]
    sliced = old.detach()
    for dim, idx in keep.items():
        sliced = sliced.index_select(dim, torch.tensor(idx, device=sliced.device))
    if sliced.shape != new.shape or not torch.equal(sliced, new.detach()):
        return None
    return keep


def _swap_in_optimizer(optimizer: Any, old: Any, new: Any, keep: dict[int, list[int]] | None) -> bool:
    """Point the optimizer at ``new`` instead of ``old``; slice (or, if unknown, drop) its state."""
    import torch

    for group in optimizer.param_groups:
        for i, p in enumerate(group["params"]):
            if p is old:
                group["params"][i] = new
    state = optimizer.state.pop(old, None)
    if state is None:
        return True
    if keep is None:
        return False  # the new parameter starts with fresh state
    fresh = {}
    for key, value in state.items():
        if isinstance(value, torch.Tensor) and value.shape == old.shape:
            for dim, idx in keep.items():
                value = value.index_select(dim, torch.tensor(idx, device=value.device))
            fresh[key] = value.contiguous()
        else:
            fresh[key] = value
    optimizer.state[new] = fresh
    return True

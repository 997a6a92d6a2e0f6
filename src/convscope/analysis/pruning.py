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
dim. Where an op leaves no telling which dim holds them (a pixel shuffle, a matrix product) and
a cut or reshape follows, the layer is refused too. :func:`unprunable` lists such layers up
front; :func:`prune_filters` raises before anything is pruned.

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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from convscope._optional import require
from convscope.errors import DataError, LayerNotFoundError

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
    graph, seen = _traced(tp, module, example_inputs)
    names = {id(m): n for n, m in modules.items()}
    output = False  # whether pruning changes the model's output (its last layer's filters), as it may offline
    for name, layer, handler, _, size in handlers:  # (all checked before any is pruned)
        # every filter at once: the group then reaches every layer and op that some choice of filters would
        group = graph.get_pruning_group(layer, handler, idxs=list(range(size)))
        output = output or any(_passes_on(item) and not item.dep.target.outputs for item in group)
        why = _refusal(group, names, seen)
        if why is not None:
            raise DataError(f"{name!r} cannot be pruned: {why}")
    expected, runs = None, bool(handlers)  # what the model gives now, to know the pruned one by
    if runs:
        try:
            expected = _output_shape(module, example_inputs)
        except Exception:  # noqa: BLE001  (it ran with gradients for the trace, not without: left unchecked)
            runs = False
    saved = _attributes(module)
    try:
        for name, layer, handler, chosen, size in handlers:
            group = graph.get_pruning_group(layer, handler, idxs=chosen)
            for item in group:
                dep, idxs = item.dep, item.idxs
                fn = getattr(dep.handler, "__name__", str(dep.handler))
                direction = "out" if "out" in fn else "in" if "in" in fn else None
                target = dep.target.module
                if direction is not None and isinstance(target, torch.nn.Module):
                    removed_at[(id(target), direction)] = sorted(int(getattr(i, "idx", i)) for i in idxs)
            group.prune()
            result.removed[name] = chosen
            result.kept[name] = [i for i in range(size) if i not in set(chosen)]
        if runs:  # (before the optimizer is mended: a model put back needs its old state)
            _check_forward(module, example_inputs, None if output else expected, [h[0] for h in handlers])
    except BaseException:
        _restore(saved)
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
    or pass an op after which that cannot be told and then a cut (all of which it refuses), or
    it would change the model's own output (a classifier's classes, which online pruning must
    not). Only a layer whose channels reach the split is refused: the layers that read the parts
    can be pruned. Nothing is pruned: :func:`convscope.watch` asks this before training.

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
    graph, seen = _traced(tp, module, example_inputs)
    names = {id(m): n for n, m in modules.items()}
    why: dict[str, str] = {}
    for name, (layer, handler, size) in roots.items():
        # every filter at once: the group then reaches every layer that some choice of filters would
        group = graph.get_pruning_group(layer, handler, idxs=list(range(size)))
        refused = _refusal(group, names, seen)
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


def _traced(tp: Any, module: Any, example_inputs: Any) -> tuple[Any, dict[Any, _Seen]]:
    """Torch-Pruning's dependency graph of ``module``, and where each of its ops finds channels
    in the tensor it takes (see :func:`_channel_places`). Its trace puts the whole model in eval
    mode and leaves it there: every module's own mode is put back (a model pruned while it
    trains went on training with dropout off and batch norm frozen). A slice, split or unbind
    of another dim than the channels' passes them whole (see :func:`_unmap_other_cuts`)."""
    import torch

    modes = [(m, m.training) for m in module.modules()]
    try:
        with torch.enable_grad():  # (the trace follows autograd)
            graph = tp.DependencyGraph().build_dependency(module, example_inputs=_inputs(example_inputs))
    finally:
        for m, training in modes:
            m.training = training
    seen = _channel_places(graph)
    _unmap_other_cuts(tp, graph, seen)
    return graph, seen


def _passes_on(item: Any) -> bool:
    """Whether a pruning group's ``item`` takes channels from its target's output (the pruned
    layer's own, a coupled one's, an element-wise op's), not from a consumer's input."""
    return "out" in getattr(item.dep.handler, "__name__", "")


def _refusal(group: Any, names: Mapping[int, str], seen: Mapping[Any, _Seen]) -> str | None:
    """Why a pruning group (of a layer's every filter) cannot be pruned, whichever filters are
    chosen: it reaches a grouped conv other than a depthwise one, the layer's channels are split
    in ``forward``, or they pass an op after which convscope cannot tell which dim holds them
    and then one that may cut them; ``None`` where none of these."""
    grouped = _grouped_convs(group, names)
    if grouped:
        return (
            f"its pruning would change {' and '.join(grouped)}, whose groups cannot lose channels one by one "
            "(depthwise convs, one filter per input, can be pruned)"
        )
    cuts = _splits(group, names, seen)
    if cuts:
        return _split_reason(cuts)
    lost = _lost(group, names, seen)
    if lost is None:
        return None
    where, cut = lost
    return (
        f"in forward, its channels pass through {where}, after which convscope cannot tell which dim holds "
        f"them, and then through {cut}, which may cut them; it refuses rather than guess: prune the layers "
        "after it instead"
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


def _channel_places(graph: Any) -> dict[Any, _Seen]:
    """Where, in ``forward``, each node of Torch-Pruning's ``graph`` finds channels in the tensor
    it takes, with that tensor's shape (as the trace saw it). Channels start on dim 1 of a conv's
    output and on the last dim of a dense layer's (an embedding's, an attention's, a recurrent
    layer's), and are followed from there op by op (see :func:`_carried`), so that a cut counts
    as a cut of channels exactly where it cuts the dim that holds them. A layer's own channels
    need nothing before it, so a layer called on its own output is followed too; an op that the
    trace reaches only through itself is given up on."""
    nodes = list(graph.module2node.values())
    by_fn = {id(n.grad_fn): n for n in nodes}
    out: dict[Any, _Place] = {n: place for n in nodes if (place := _own_channels(n)) is not None}
    waiting = {n: len(n.inputs) for n in nodes}
    ready = [n for n in nodes if not waiting[n] or n in out]
    seen: dict[Any, _Seen] = {}
    while ready:
        node = ready.pop()
        edges: list[_Seen] = []
        for fn, nr in getattr(node.grad_fn, "next_functions", ()):
            source = None if fn is None else by_fn.get(id(fn))
            if source is not None:  # (not a parameter's gradient, which the graph leaves out)
                shapes = _shapes(source.grad_fn)
                edges.append((out.get(source), shapes[nr] if nr < len(shapes) else ()))
        held = [(place, shape) for place, shape in edges if place is not None]
        seen[node] = held[0] if held else (None, edges[0][1] if edges else ())
        if node not in out:
            out[node] = _carried(node, held, alone=len(edges) == 1)
        for after in node.outputs:
            waiting[after] -= 1
            if not waiting[after] and after not in seen and after not in ready:
                ready.append(after)
    for node in nodes:
        if node not in seen:
            seen[node] = ("a layer called on its own output", ())
    return seen


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


def _carried(node: Any, held: Sequence[_Seen], *, alone: bool) -> _Place:
    """Where the output of ``node`` holds channels, given where its inputs ``held`` them (and the
    inputs' shapes); ``alone``: the op takes one tensor (a layer's own are :func:`_own_channels`).
    A permute, transpose or movedim moves them; a view, reshape or flatten is followed
    by the sizes before and after it (:func:`_reshaped`), a squeeze or unsqueeze by the dims it
    takes out or puts in; a cut of another dim, a reduction of other dims, a cat or stack, and
    element-wise ops (pooling, normalisation, activations, broadcasting) keep them where their
    sizes do. Any other op (a matrix product, a pixel shuffle, an unfold ...) loses them: the
    place is then the op's name."""
    fn = node.grad_fn
    shapes = _shapes(fn)
    if not held:
        return None
    lost = next((place for place, _ in held if isinstance(place, str)), None)
    if lost is not None:
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
    if kind in _MIXES:
        return name
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
    return replace(first, turned=any(p.turned for p in moved_to))


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


def _lost(group: Any, names: Mapping[int, str], seen: Mapping[Any, _Seen]) -> tuple[str, str] | None:
    """The first op of a pruning group that may cut channels (see :data:`_MAY_CUT`) where it
    cannot be told which dim holds them: the op after which that was lost, and the cut."""
    for _, kind, at, _ in _group_ops(group, names, seen):
        if isinstance(at, str) and kind in _MAY_CUT:
            return at, _MAY_CUT[kind]
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


def _split_reason(cuts: Sequence[str]) -> str:
    return (
        f"its channels are split in forward ({', '.join(cuts)}), in sizes that the code fixes and pruning "
        "cannot change; prune the layers that read the parts instead"
    )


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

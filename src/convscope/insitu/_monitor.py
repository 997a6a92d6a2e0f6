"""``convscope.watch``: the training-time monitor.

The monitor follows the optimizer's steps itself (``register_step_post_hook``), so a training
loop needs no call per step. On a recording step it reduces what it needs on the model's
device (correlation matrices, histograms, small images, weight copies, gradient norms) right
after ``optimizer.step()``, hands the small results to a background thread, and returns. The
background thread turns them into frames and feeds the sinks; nothing there can block or
crash training.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import numbers
import os
import sys
import threading
import time
import warnings
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, NamedTuple, TypeGuard, cast

import numpy as np

from convscope._names import near_misses
from convscope.errors import DataError, LayerNotFoundError
from convscope.frames import Frame
from convscope.insitu import _reduce
from convscope.insitu._budget import SlowdownMeter
from convscope.insitu._pipeline import FramePipeline
from convscope.insitu._reduce import on_grid

if TYPE_CHECKING:
    import torch

    from convscope.models import LoadedModel, ModelGraph
    from convscope.sinks import Sink

__all__ = ["VIEWS", "Monitor", "PruneConfig", "watch"]

#: Every view the monitor can record, with how often by default (in optimizer steps).
VIEWS: dict[str, int] = {
    "weights": 10,
    "trajectory": 10,
    "distribution": 10,
    "feature_maps": 50,
    "correlation": 10,
    "gradients": 10,
    "lr": 10,
}
_ACTIVATION_VIEWS = ("distribution", "feature_maps", "correlation")
#: the views that read the grid of a layer's output the forward hooks copy
_GRID_VIEWS = ("distribution", "correlation", "gradients")
#: CPU seconds the overhead budget lends at the start, so the first recordings are never skipped;
#: a loan, not a gift: once the budget's share of the watched time is larger it stands alone
#: (added to it, the loan put +0.2 points on a 10 s LeNet-5 run's overhead for good)
_BUDGET_ALLOWANCE_S = 0.02
#: the steps a recording or an analysis on the training thread touches: its own and the next
#: two, which start on the caches it evicted (see :class:`~convscope.insitu._budget.SlowdownMeter`)
_TOUCHED_STEPS = 3
#: while training runs, the trajectory trackers are kept in the run (for a resume) at most this
#: often, after a batch of recordings is analysed: a process that is killed then goes on with all
#: of its path but the last minute's. A tracker holds up to 4 MB (a LeNet-5's conv2), so a big
#: model's trackers take longer to keep: the next time is then put off to keep this cost at
#: most ``1 / _KEEP_SHARE`` of the time (a save of 0.5 s, every 500 s at least)
_KEEP_TRAJECTORIES_S = 60.0
_KEEP_SHARE = 1000
#: the default ``batch_window``: seconds the background thread waits for more recordings to work
#: through together (view by view, on warm caches); views lag by that much more. Per LeNet-5
#: recording (every=10, live): 0.2 s gathers about 4 and costs 3.8 ms of CPU, 0.5 s about 9 and
#: 3.2 ms, 1 s 3.1 ms; one at a time, 5.6 ms. Without a budget a LeNet-5 batch gathers for the
#: whole 2 s (30 to 40 recordings: see ``_QUEUE_SIZE``); with the default budget, recordings are
#: sparse, and 2 s rather than 0.5 s makes a quarter to three quarters more of them in the same
#: overhead (benchmarks/bench_insitu.py, one-process table)
_BATCH_WINDOW_S = 2.0
#: the default ``queue_size``: most work items waiting (beyond it the oldest are dropped and
#: counted); a batch is full at half of it. A LeNet-5 recording of every view is 9 items, so
#: 1024 lets the 2 s window gather 30 to 40 recordings of a 5 ms step rather than 14 at 256:
#: their analysis on the training thread costs 0.56-0.75 ms per recording against 0.74-0.90
#: (three runs of each in turn, 3000 steps, every=10, no budget, 2 vCPUs). Under the default
#: budget, bench_paired recorded 175 of 200 steps for +3.2% against 86 for +2.7% (5 runs each,
#: with the budget of 758e48f, before it counted the touched steps and training's own time)
_QUEUE_SIZE = 1024
#: where the analysis runs (``analysis_thread=``)
_ANALYSIS_THREADS = ("auto", "background", "training")


def _is_int(value: object) -> TypeGuard[int]:
    """An integer (numpy's too), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_)


def _is_number(value: object) -> TypeGuard[float]:
    """A real number (numpy's too), not a bool."""
    return isinstance(value, int | float | np.floating | np.integer) and not isinstance(value, bool | np.bool_)


def _did_you_mean(word: Any, choices: Iterable[str]) -> str:
    """``" (did you mean 'x'?)"`` for a near miss of ``word`` among ``choices``, else ``""``."""
    close = near_misses(word, choices, n=2)
    return f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""


def _check_choice(label: str, value: Any, choices: Sequence[str]) -> None:
    """A clear error unless ``value`` is one of ``choices`` (``label``: the option as it is written)."""
    if value not in choices:
        raise DataError(f"{label} is one of {', '.join(map(repr, choices))}; got {value!r}{_did_you_mean(value, choices)}")


def _option_names() -> tuple[str, ...]:
    """The options of :func:`watch`: the keyword arguments of :class:`Monitor`."""
    import inspect

    params = inspect.signature(Monitor.__init__).parameters.values()
    return tuple(p.name for p in params if p.kind is p.KEYWORD_ONLY)


def check_options(
    options: Mapping[str, Any], where: str = "watch()", *, set_by: Mapping[str, str] | None = None, values: bool = False
) -> None:
    """A clear error, before anything starts, for an option that ``where`` does not take: a
    misspelt one (with the one meant), or one that ``set_by`` says ``where`` sets itself (and why).
    With ``values``, ``record=`` and ``every=`` are checked too, which need no model: a callback
    is made before its model is known, and says them where it is made rather than at ``fit()``."""
    known = [name for name in _option_names() if not (set_by and name in set_by)]
    for name in options:
        if set_by and name in set_by:
            raise TypeError(f"{where} sets {name}= itself ({set_by[name]}); leave it out")
        if name not in known:
            close = near_misses(name, known, n=1)
            hint = f"did you mean {close[0]}=? " if close else ""
            raise TypeError(f"{where} got an unexpected option {name}=; {hint}its options are {', '.join(known)}")
    if values:
        _schedule(options.get("every"), _views(options.get("record")))


def _group_methods() -> tuple[str, ...]:
    """The filter-grouping methods (``group_method=``, a pruning's ``method``), their aliases first."""
    from convscope.analysis.groups import _ALIASES, METHODS

    return (*_ALIASES, *METHODS)


def _count(name: str, value: Any, what: str, *, none: bool = False) -> Any:
    """``value`` as an int, with a clear error unless it is a positive integer (or ``None`` where ``none``)."""
    if value is None and none:
        return None
    if not _is_int(value) or value < 1:
        raise DataError(f"{name}= is a positive number of {what}{', or None' if none else ''}; got {value!r}")
    return int(value)


class _FrozenHeap:
    """``gc_freeze=``: the objects alive when the first monitor starts are frozen (``gc.freeze``:
    left out of every collection) until the last one closes, and then put back (``gc.unfreeze``).

    A full collection goes through every object the process tracks, about 300,000 once torch,
    NumPy and SciPy are imported, and took 95 to 140 ms here, on the training thread. Plain
    training hardly starts one (none in 8000 LeNet-5 steps), but a monitor's frames and
    trackers outlive a few young collections, and once enough have, a full one runs: about one
    in 8000 watched steps, 20.7 us a step of collecting in all against 3.8 us with the heap
    frozen (benchmarks/bench_insitu.py ``--collections``). Its 140 ms also fell inside an
    analysis, which the overhead budget then paid back by recording nothing for seconds. A
    process that has frozen objects itself is left as it is.
    """

    _lock = threading.Lock()
    _users = 0
    _froze = False

    @classmethod
    def acquire(cls) -> None:
        with cls._lock:
            if cls._users == 0:
                cls._froze = gc.isenabled() and gc.get_freeze_count() == 0
                if cls._froze:
                    gc.freeze()
            cls._users += 1

    @classmethod
    def release(cls) -> None:
        with cls._lock:
            cls._users -= 1
            if cls._users == 0 and cls._froze:
                gc.unfreeze()
                cls._froze = False


#: the monitor now watching each model (a model that is garbage collected drops out)
_WATCHING: weakref.WeakKeyDictionary[Any, Monitor] = weakref.WeakKeyDictionary()
_WATCHING_LOCK = threading.Lock()
#: monitors started and not closed yet, closed when the interpreter exits (see _close_at_exit)
_OPEN: weakref.WeakSet[Monitor] = weakref.WeakSet()


def _close_at_exit() -> None:
    """Close the monitors still open as the interpreter exits: a script that never called
    ``close()``, or one that an exception ended (a Keras ``fit()`` that raised: Keras calls no
    callback then). Their recordings still queued are analysed and stored, and the run ends
    ``finished``, or ``failed`` after an uncaught exception. Without this the run read as
    ``crashed`` and lost the recordings of its last seconds (half of a 300-step LeNet-5 run).
    The background thread is a daemon: it still runs while the interpreter's exit handlers do.
    (In IPython or Jupyter, ``sys.last_value`` is any earlier cell's error, and a monitor open
    at the kernel's end was left open on purpose, across cells: its run ends ``finished``.)"""
    from convscope.notebook import ipython_shell

    status = "failed" if getattr(sys, "last_value", None) is not None and ipython_shell() is None else "finished"
    for monitor in list(_OPEN):
        try:
            monitor.close(status=status)
        except Exception as exc:  # noqa: BLE001  (the others are closed all the same)
            print(f"convscope could not close run {monitor.run_id or monitor.run_name} at exit ({type(exc).__name__}: {exc})", file=sys.stderr)


atexit.register(_close_at_exit)


@dataclass
class PruneConfig:
    """Online pruning of redundant filters found by the correlation groups. The monitor works on
    a copy: one config can set up several runs, each from the same settings.

    Attributes:
        layers: conv layers to prune (default: the first watched conv layer). One whose pruning
            would reach a grouped conv (other than a depthwise one) or the model's output, or
            whose channels are split in ``forward`` (``torch.chunk``, ``torch.split``, a slice of
            channels ...), or whose pruning breaks the forward pass of a copy of the model (a
            size written in ``forward``, ``x.view(-1, 16 * 5 * 5)``), is refused before
            training: at ``watch()`` where ``input_shape=`` or ``probe=`` tells the input's
            shape, else at the first forward pass. A pruning that still breaks the model is
            undone at its step, with a warning, and that layer is not pruned again.
        threshold: correlation at or above which filters are redundant.
        start: first step at which pruning may happen (let groups settle first).
        every: steps between pruning checks after ``start``.
        max_fraction: at most this share of a layer's original filters is ever removed.
        min_filters: never go below this many filters.
        times: how many pruning rounds at most, per layer.
        method: grouping method (``"union"`` or ``"hierarchical"``).
    """

    layers: tuple[str, ...] | None = None
    threshold: float = 0.9
    start: int = 200
    every: int = 200
    max_fraction: float = 0.5
    min_filters: int = 2
    times: int = 1
    method: str = "union"


class Activations(NamedTuple):
    """What a forward hook keeps of a layer's output for one recording."""

    grid: torch.Tensor | None  #: ``N x F x ...`` on the grid (every position where the maps are small)
    image: torch.Tensor | None  #: ``1 x F x ...``: sample 0 whole, where the images are due


@dataclass
class _LayerState:
    name: str
    module: torch.nn.Module
    original_filters: int
    layout: str = "torch"  # "keras": kernel is (k..., in, out) or (in, out), outputs channels-last
    #: a keras depthwise conv: its kernel is (k..., in, multiplier), output channel i * multiplier + m
    depthwise: bool = False
    #: a transposed conv's groups (0 for any other layer): its weight is ``in x out/groups x k...``
    transposed: int = 0
    trajectory: Any = None
    trajectory_shape: tuple[int, ...] | None = None
    trajectory_steps: dict[int, int] = field(default_factory=dict)  # the tracker's update count -> training step
    #: the last path sent: (tracker, its path_version, kept update counts, path steps, coordinates)
    trajectory_path: tuple[Any, int, list[int], Any, Any] | None = None
    health: Any = None
    groups: Any = None
    correlation: Any = None
    prev_weight: torch.Tensor | None = None
    prunes: int = 0
    prune_failed: bool = False  #: a pruning of it broke the model, which was put back: not pruned again
    #: views this layer cannot have (a Conv3d's weight grid and images)
    skip: frozenset[str] = frozenset()
    spare: _Spare = field(default_factory=lambda: _Spare())  # the grids' copies
    image_spare: _Spare = field(default_factory=lambda: _Spare())  # sample 0's, for the images

    @property
    def param(self) -> torch.Tensor:
        """The live parameter tensor (its ``.grad`` is the layer's gradient)."""
        # (cast: torch types a module's attributes as a tensor or a module; a keras layer's kernel is
        # a keras variable)
        if self.layout == "keras":
            return cast(Any, self.module).kernel.value
        return cast("torch.Tensor", self.module.weight)

    def weight(self) -> torch.Tensor:
        """A detached copy in torch layout: filters first (``F x C x kh x kw`` or ``out x in``)."""
        return self.filters_first(self.param.detach()).clone()

    def grad(self, step: int | None = None) -> torch.Tensor | None:
        """A detached copy of the gradient, filters first: the one taken before the optimizer
        step ``step`` (:meth:`Monitor._take_gradients`, before clipping) where there is one."""
        taken = self.taken_grad
        if taken is not None and taken[0] == step:
            self.taken_grad = None
            return taken[1]
        g = self.param.grad
        return None if g is None else self.filters_first(g.detach()).clone()

    #: (step, gradient) taken before that step's optimizer step, for its recording (see grad())
    taken_grad: tuple[int, torch.Tensor | None] | None = None

    def filters_first(self, t: torch.Tensor) -> torch.Tensor:
        """The layer's weight (or its gradient) ``t`` as a conv's, filters first: a keras kernel
        permuted, and a transposed conv's ``in x out/groups x k...`` as the ``out x in/groups x k...``
        of the conv that makes its output channels (filter ``f``'s weights in row ``f``)."""
        if self.transposed:
            g = self.transposed
            return t.unflatten(0, (g, t.shape[0] // g)).transpose(1, 2).flatten(0, 1)
        return _torch_layout(t, self.layout, depthwise=self.depthwise)

    def activations(
        self, out: torch.Tensor, max_samples: int | None = None, *, max_values: int | None = None, grid: bool = True, image: bool = False
    ) -> Activations:
        """Copies of the layer's output (the first ``max_samples`` samples, filters first): if
        ``grid``, the grid of at most ``max_values`` values a filter that the histograms,
        correlations and dead-channel share read (see :func:`~convscope.insitu._reduce.on_grid`),
        and, if ``image``, sample 0 whole for the feature-map images. Only these are copied: a VGG-16 conv1 batch of 8 is 103 MB, its grid
        0.9 MB. Each is made in one of the layer's earlier copies when no one holds it any more:
        see :class:`_Spare`."""
        out = out.detach()
        if max_samples is not None and out.dim() >= 2:
            out = out[:max_samples]
        if self.layout == "keras" and out.dim() >= 3:  # (channels last, for 1-, 2- and 3-D convs)
            out = out.movedim(-1, 1)
        first = self.image_spare.copy(out[:1]) if image and out.dim() >= 2 else None
        return Activations(self.spare.copy(on_grid(out, max_values)) if grid else None, first)

    @property
    def filters(self) -> int:
        return int(self.filters_first(self.param).shape[0])


class _Spare:
    """The copies of one layer's activations that recordings were made of, reused once no one
    holds them.

    A fresh copy of a big layer's maps costs far more than the copying: a VGG-16 conv1 batch of
    8 (103 MB) took 81 ms as ``clone()`` and 16 ms copied into memory already touched, where
    the rest is the kernel's zeroed pages coming in on first touch, and their unmapping when
    the copy is freed. So a recording's copy is kept here after the analysis has let it go
    and the next recording of that shape copies into it. A copy is free only when nothing else
    refers to it: no other Python reference (the pipeline's recording, a frame's payload) and no
    view or ``numpy()`` array of its memory (the storage's use count). At most ``keep`` are held:
    the peak memory is that of as many recordings in flight at once, which the budget's backlog
    rule keeps to about three (and a batch of small ones, up to ``keep_bytes``); it is held until
    ``close()`` instead of returned between recordings.
    """

    #: ``sys.getrefcount`` of a free copy where :meth:`copy` tests it: the list, the loop
    #: variable and the call's argument
    _FREE_REFS = 3

    def __init__(self, keep: int = 3, keep_bytes: int = 16 << 20, most: int = 64) -> None:
        self.keep, self.keep_bytes, self.most = keep, keep_bytes, most
        self.held: list[torch.Tensor] = []
        self._next = 0  # where the search for a free copy starts: after the last one reused

    def copy(self, src: torch.Tensor) -> torch.Tensor:
        import torch

        use_count = getattr(torch._C, "_storage_Use_Count", None)
        if use_count is not None:  # (private: without it, no reuse)
            held = self.held
            # Round the list from after the last copy reused: the copies are taken in turn and a
            # batch of recordings frees them together, so the next free one is usually the first
            # looked at (from the start, a recording passed every copy the batch in flight holds).
            start = self._next if self._next < len(held) else 0
            for i in (*range(start, len(held)), *range(start)):
                copy = held[i]
                if (
                    copy.shape == src.shape
                    and copy.dtype == src.dtype
                    and copy.device == src.device
                    and sys.getrefcount(copy) == self._FREE_REFS
                    and use_count(copy.untyped_storage()._cdata) == 2  # its own and this call's
                ):
                    self._next = i + 1
                    return copy.copy_(src)
        out = src.clone(memory_format=torch.contiguous_format)
        # as many as a batch of recordings holds (the pipeline gathers up to 16 MiB), at least
        # ``keep``; another shape - a pruned layer, a last short batch - replaces the oldest
        keep = min(self.most, max(self.keep, self.keep_bytes // max(1, out.numel() * out.element_size())))
        self.held = [*self.held[max(0, len(self.held) + 1 - keep) :], out]
        self._next = 0
        return out

    def clear(self) -> None:
        self.held = []
        self._next = 0


def _one_value(name: str, v: Any) -> Any:
    """``v`` (a tensor or a NumPy array) if it holds one value, else the error that ``log()`` gives."""
    size = v.size if isinstance(v, np.ndarray) else v.numel()
    if size != 1:
        raise DataError(f"log() takes single numbers; {name}= has {size} values (log a mean, or one name per value)")
    return v


def _probe_hint(probe: Any) -> str:
    """How to make a batch of inputs of what was passed as ``probe=``, where a user is likely to pass it."""
    if isinstance(probe, np.ndarray):
        return "; make one of a NumPy array with torch.from_numpy(array)"
    if isinstance(probe, tuple | list) and probe and hasattr(probe[0], "shape"):
        return "; of an (inputs, labels) batch pass the inputs, probe=batch[0]"
    if hasattr(probe, "dataset") and hasattr(probe, "__iter__"):
        return "; take one batch of a DataLoader: probe=next(iter(loader))[0]"
    return ""


def watched_modules(model: torch.nn.Module, layers: str | Iterable[str] | Mapping[str, Any] | None) -> dict[str, Any]:
    """The modules ``watch(model, layers=...)`` watches, by name: ``layers`` as a name, names or a
    name-to-module mapping, or every conv layer for ``None``; a missing name, or a model without
    conv layers to watch by default, is a :class:`LayerNotFoundError`."""
    import torch

    if isinstance(layers, Mapping):
        return dict(layers)
    names: Any = [layers] if isinstance(layers, str) else layers  # (one layer's name)
    modules = dict(model.named_modules())
    if names is not None:
        names = _layer_names(names, modules)
    if names is None:
        names = [n for n, m in modules.items() if isinstance(m, torch.nn.modules.conv._ConvNd)]
        if not names:
            dense = [n for n, m in modules.items() if isinstance(m, torch.nn.Linear)]
            raise LayerNotFoundError(
                f"{type(model).__name__} has no conv layers to watch by default; pass layers=[...] "
                f"with the names of the layers to watch{' (its dense layers: ' + ', '.join(dense) + ')' if dense else ''}"
            )
    names = list(names)
    missing = [n for n in names if n not in modules]
    if missing:
        known = [n for n, m in modules.items() if isinstance(m, torch.nn.modules.conv._ConvNd | torch.nn.Linear)]
        raise LayerNotFoundError(
            f"layers {missing} not found; the model's conv and dense layers are {', '.join(known)}{_layer_hint(missing[0], known)}"
        )
    return {n: modules[n] for n in names}


def _layer_names(layers: Any, modules: Mapping[str, Any]) -> list[str]:
    """``layers=`` as a list of names, with a clear error for what is not one: the modules
    themselves (named as ``layers=`` wants them) or anything else."""
    import torch

    if not isinstance(layers, Iterable | torch.nn.Module):
        raise DataError(f"layers= is a layer's name or a list of names (e.g. ['conv1', 'conv2']); got {layers!r}")
    given: list[Any] = [layers] if isinstance(layers, torch.nn.Module) else list(layers)
    if all(isinstance(n, str) for n in given):
        if not given:
            raise DataError("layers= names no layer to watch; name the conv or dense layers to watch, or leave it out for every conv layer")
        return cast("list[str]", given)
    named = {id(m): n for n, m in modules.items()}
    if any(isinstance(n, torch.nn.Module) for n in given):
        names = [n if isinstance(n, str) else named.get(id(n), "?") for n in given]
        if "?" not in names:
            raise DataError(f"layers= takes the layers' names, not the modules: pass layers={names}")
        raise DataError("layers= takes the names of the model's layers, and a module given is not in the model")
    raise DataError(f"layers= takes the layers' names (str), got {', '.join(type(n).__name__ for n in given if not isinstance(n, str))}")


def _layer_hint(name: str, known: Sequence[str]) -> str:
    """The layer meant by a name not found: one inside a wrapper (``conv1`` for ``net.conv1``), the
    layer of a parameter's name (``conv1.weight``) or a near miss; else ``""``."""
    meant = [n for n in known if n.endswith(f".{name}") or name.startswith(f"{n}.")][:2]
    if meant:
        return f" (did you mean {' or '.join(map(repr, meant))}?)"
    return _did_you_mean(name, known)


def _dashboard_url(server: str, run_id: str | None) -> str:
    """The dashboard page of ``run_id`` on ``server``, whose query (a ``?token=``) stays before the
    ``#`` where the browser reads it (after it, the page's route would swallow it).

    Example:
        >>> _dashboard_url("http://h:8765/?token=k", "r1")
        'http://h:8765/?token=k#/runs/r1'
    """
    from urllib.parse import urlsplit, urlunsplit

    if not run_id:
        return server
    parts = urlsplit(server)
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/") + "/", parts.query, f"/runs/{run_id}"))


def _torch_layout(t: torch.Tensor, layout: str, *, depthwise: bool = False) -> torch.Tensor:
    """A keras kernel as torch's weight of the same layer, filters first: a conv's (k..., in, out)
    as (out, in, k...), a depthwise conv's (k..., in, multiplier) as (in * multiplier, 1, k...)
    (output channel i * multiplier + m, as torch's groups=in conv), a dense (in, out) as (out, in)."""
    if layout != "keras":
        return t
    d = t.dim()
    if d == 2:
        return t.t()
    if d < 3:
        return t
    spatial = tuple(range(d - 2))
    if depthwise:
        return t.permute(d - 2, d - 1, *spatial).flatten(0, 1).unsqueeze(1)
    return t.permute(d - 1, d - 2, *spatial)


@dataclass
class MonitorStats:
    steps: int = 0
    recorded_steps: int = 0
    seconds_in_step_hooks: float = 0.0
    frames: int = 0
    dropped: int = 0
    sink_failures: dict[str, int] = field(default_factory=dict)
    prunings: list[dict[str, Any]] = field(default_factory=list)
    #: recording steps skipped because the analysis was over its overhead budget
    deferred: int = 0
    #: CPU seconds convscope used: on the training thread (hooks) and in the background
    analysis_cpu_seconds: float = 0.0
    #: seconds of training lost per CPU second of the background thread, measured from the
    #: steps' durations (see ``budget=`` in :func:`watch`); set by ``close()``
    slowdown_factor: float = 1.0
    #: seconds each step that the monitor's work touched (a recording step and the two after it,
    #: or after an analysis on the training thread) took beyond the others and the hooks' own
    #: time, measured from the steps' durations like ``slowdown_factor``; set by ``close()``
    touched_step_seconds: float = 0.0
    #: what convscope cost training by that measure (the hooks, the background thread's CPU times
    #: ``slowdown_factor``, and the touched steps' excess) as a share of training's own time
    #: (the watched wall time less that cost), as ``budget=`` counts it; set by ``close()``
    overhead_estimate: float = 0.0


class Monitor:
    """Watches a model while it trains; see :func:`watch` for the options."""

    def __init__(
        self,
        model: torch.nn.Module | LoadedModel,
        *,
        optimizer: torch.optim.Optimizer | None = None,
        layers: str | Sequence[str] | Mapping[str, torch.nn.Module] | None = None,
        every: int | Mapping[str, int] | None = None,
        record: str | Iterable[str] | None = None,
        probe: torch.Tensor | None = None,
        logdir: str | os.PathLike[str] | None = "convscope-runs",
        run: str | None = None,
        resume: bool = False,
        start_step: int | None = None,
        sinks: Sequence[Sink] | Sink | None = (),
        serve: bool | str = False,
        serve_port: int = 0,
        prune: PruneConfig | bool | Mapping[str, Any] | None = None,
        all_ranks: bool = False,
        input_shape: tuple[int, ...] | None = None,
        image_size: int = 64,
        max_samples: int | None = 8,
        max_values: int | None = 4096,
        image_normalisation: str = "per_map",
        bins: int = 32,
        group_threshold: float = 0.9,
        group_method: str = "union",
        health_thresholds: Any = None,
        trajectory_dims: Sequence[int] | None = None,
        queue_size: int = _QUEUE_SIZE,
        switch_interval: float | None = 0.0005,
        gc_freeze: bool = True,
        worker_nice: int = 0,
        batch_window: float = _BATCH_WINDOW_S,
        analysis_thread: str = "auto",
        budget: float | None = 0.03,
        seed: int = 0,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        import torch

        from convscope.analysis import HealthThresholds
        from convscope.analysis.images import NORMALISATIONS
        from convscope.models import LoadedModel

        if isinstance(model, LoadedModel):  # (convscope.load_model's result: the module it holds trains)
            model = model.module
        if isinstance(model, type):
            raise DataError(f"watch() takes the model being trained, got the class {model.__name__}: make the model first, {model.__name__}(...)")
        if not hasattr(model, "named_modules") and not isinstance(layers, Mapping):
            raise DataError(
                f"watch() takes the torch.nn.Module being trained, got {type(model).__name__}"
                + ("; a model file is opened with convscope.load_model(path)" if isinstance(model, str | os.PathLike) else "")
            )
        #: a torch.compile'd model: its layers' hooks are attached for good (see _set_hooks)
        self._compiled = _is_compiled(model)
        self.model = _unwrap(model)
        if optimizer is not None and not (hasattr(optimizer, "register_step_post_hook") and hasattr(optimizer, "param_groups")):
            raise DataError(
                f"optimizer= is the torch.optim.Optimizer that trains the model (its steps are followed), got "
                f"{type(optimizer).__name__}; without one, leave it out and call monitor.step() after each step"
            )
        self.optimizer = optimizer
        if optimizer is not None:  # its steps are counted: a step() besides would count each twice (see _step_followed)
            self.step = self._step_followed  # type: ignore[method-assign]
        self.record = _views(record)
        self.every = _schedule(every, self.record)
        self._periods = tuple(sorted(set(self.every.values())))
        self._next_due = self._first_due(1)  # the next step at which any view is due
        if probe is not None and not isinstance(probe, torch.Tensor):
            raise DataError(f"probe= is a batch of inputs as a torch.Tensor (N x ...), got {type(probe).__name__}{_probe_hint(probe)}")
        if probe is not None and (probe.dim() == 0 or probe.shape[0] == 0):
            raise DataError(f"probe= is a batch of at least one input (N x ...), got one of shape {tuple(probe.shape)}")
        self.probe = probe
        self.image_size = _count("image_size", image_size, "pixels a side of the feature-map images", none=True)
        self.max_samples = _count("max_samples", max_samples, "samples of the training batch that the activation views read", none=True)
        self.max_values = _count("max_values", max_values, "values a filter", none=True)
        self.bins = _count("bins", bins, "bins of the feature-map histograms")
        if not _is_number(group_threshold) or not 0 < group_threshold <= 1:
            raise DataError(f"group_threshold= is the correlation from which filters group, in (0, 1] (0.9 is usual), got {group_threshold!r}")
        self.group_threshold = float(group_threshold)
        _check_choice("group_method=", group_method, _group_methods())
        self.group_method = group_method
        _check_choice("image_normalisation=", image_normalisation, NORMALISATIONS)
        self.image_normalisation = image_normalisation
        if health_thresholds is not None and not isinstance(health_thresholds, HealthThresholds):
            raise DataError(f"health_thresholds= is a convscope.analysis.HealthThresholds, or None; got {type(health_thresholds).__name__}")
        self.health_thresholds = health_thresholds
        dims = None if trajectory_dims is None else list(trajectory_dims)
        if dims is not None and (len(dims) != 3 or len(set(dims)) != 3 or any(not _is_int(i) or i < 0 for i in dims)):
            raise DataError(f"trajectory_dims= is 3 distinct flat indices of a layer's weights (e.g. (0, 1, 2)), or None; got {trajectory_dims!r}")
        self.trajectory_dims = None if dims is None else tuple(int(i) for i in dims)
        if not _is_int(seed):
            raise DataError(f"seed= is an int, got {seed!r}")
        self.seed = int(seed)
        if budget is not None and (not _is_number(budget) or not 0 < budget <= 1):
            raise DataError(f"budget= is a share of training time between 0 and 1 (e.g. 0.03), or None; got {budget!r}")
        self.budget = None if budget is None else float(budget)
        self._budget_step = -1
        self._budget_ok = True
        self._budget_reported = 0
        self._recordings: deque[int] = deque()  # pipeline item counts that end each pending recording
        self._t0: float | None = None
        self._meter = SlowdownMeter()
        self._busy_step = -_TOUCHED_STEPS  # the last step the monitor worked on the training thread (see _measure_step)
        self._paused_at: float | None = None
        if input_shape is not None and not (
            isinstance(input_shape, tuple | list) and all(_is_int(d) and d > 0 for d in input_shape)
        ):
            raise DataError(f"input_shape= is the shape of one input without the batch (e.g. (1, 28, 28)), or None; got {input_shape!r}")
        self.input_shape = None if input_shape is None else tuple(int(d) for d in input_shape)
        if self.input_shape is not None and probe is not None and len(self.input_shape) == probe.dim():
            raise DataError(
                f"input_shape= is one input's shape, without the batch: the probe's inputs are {tuple(probe.shape[1:])}, "
                f"got {self.input_shape}"
            )
        for name, flag in (("resume", resume), ("all_ranks", all_ranks), ("gc_freeze", gc_freeze)):
            if not isinstance(flag, bool | np.bool_):
                raise DataError(f"{name}= is True or False, got {flag!r}")
        # on a copy: the monitor fills in its default layers and turns pruning off after a failed
        # one, and the caller's config may set up another run too
        self.prune = _prune_config(replace(prune) if isinstance(prune, PruneConfig) else prune)
        self.rank, self.world = _rank()
        self.active = all_ranks or self.rank == 0
        if config is not None and not isinstance(config, Mapping):
            raise DataError(f"config= is a dict shown with the run (hyperparameters ...), got {type(config).__name__}")
        self.config = dict(config or {})
        self.layers = {}
        for n, m in watched_modules(self.model, layers).items():
            layout = "keras" if getattr(m, "weight", None) is None and getattr(m, "kernel", None) is not None else "torch"
            if layout == "torch" and not isinstance(getattr(m, "weight", None), torch.Tensor):
                raise DataError(f"layer {n!r} ({type(m).__name__}) has no weight to watch; watch conv or dense layers")
            state = _LayerState(n, m, 0, layout=layout, depthwise=layout == "keras" and type(m).__name__.startswith("DepthwiseConv"))
            if isinstance(m, torch.nn.modules.conv._ConvTransposeNd):
                state.transposed = int(m.groups)
            state.original_filters = state.filters
            if state.param.dim() > 4:  # (Conv3d: its kernels and maps have a depth too)
                state.skip = frozenset(("weights", "feature_maps"))
            self.layers[n] = state
        if not self.layers:
            raise DataError("layers= names no layer to watch; name the conv or dense layers to watch, or leave it out for every conv layer")
        if self.trajectory_dims is not None and "trajectory" in self.record:
            small = [f"{n} ({st.param.numel()})" for n, st in self.layers.items() if max(self.trajectory_dims) >= st.param.numel()]
            if small:
                raise DataError(
                    f"trajectory_dims= {self.trajectory_dims} are flat indices into each watched layer's weights, and "
                    f"{', '.join(small)} {'has' if len(small) == 1 else 'have'} fewer weights; pass indices below "
                    f"{min(st.param.numel() for st in self.layers.values())}"
                )
        if optimizer is not None:
            trained = {id(p) for group in optimizer.param_groups for p in group["params"]}
            # (a frozen layer, requires_grad=False, is left out of the optimizer on purpose)
            untrained = [n for n, st in self.layers.items() if st.layout == "torch" and st.param.requires_grad and id(st.param) not in trained]
            if untrained:
                warnings.warn(
                    f"convscope: the optimizer followed (optimizer=) does not train {', '.join(untrained)} (another model's?); "
                    "its steps are still the ones counted, and those layers' update ratios have no learning rate",
                    RuntimeWarning,
                    stacklevel=3,
                )
        flat = [f"{n} ({type(st.module).__name__})" for n, st in self.layers.items() if st.skip]
        if flat:
            warnings.warn(
                f"convscope watches {', '.join(flat)} without its weight grid and feature-map images, which show "
                "2-D kernels and maps; every other view is recorded",
                RuntimeWarning,
                stacklevel=3,
            )
        if self.prune is not None:
            from convscope.insitu import _prune

            _check_prune(self.prune)
            self._prune_default = self.prune.layers is None
            if self.prune.layers is None:
                convs = [n for n, st in self.layers.items() if isinstance(st.module, torch.nn.modules.conv._ConvNd)]
                self.prune.layers = tuple(convs[:1])
            if not self.prune.layers:
                raise DataError(
                    "prune= has no layer to prune (by default the first watched torch conv layer, and the watched layers, "
                    f"{', '.join(self.layers) or 'none'}, have none); name the conv or dense layers with PruneConfig(layers=...)"
                )
            prunable = torch.nn.modules.conv._ConvNd | torch.nn.Linear
            bad = [
                n for n in self.prune.layers
                if n not in self.layers or self.layers[n].layout != "torch" or not isinstance(self.layers[n].module, prunable)
            ]
            if bad:
                raise DataError(
                    f"prune= layers {bad} are not watched torch conv/dense layers{_layer_hint(bad[0], list(self.layers))}; "
                    "watch them or prune others"
                )
            _prune.check_budget(self)
            if self.world > 1:
                raise DataError(
                    "online pruning under torch.distributed is not supported: every rank would have to prune "
                    "the same filters at the same step; prune after training or train on one process"
                )
        if resume and (run is None or logdir is None):
            raise DataError(
                "resume=True goes on with a stored run: name it with run=... (the name it was started with) "
                "and keep logdir= pointing at its run store"
            )
        if resume and isinstance(serve, str):
            raise DataError("resume=True continues a run in the local run store (logdir=); a remote server's runs are not resumed")
        if start_step is not None and (isinstance(start_step, bool) or not isinstance(start_step, int) or start_step < 0):
            raise DataError(f"start_step= is the training step the loop starts after (a checkpoint's step), 0 or more; got {start_step!r}")
        self._resume = bool(resume)
        self._start_step = start_step
        if run is not None and not isinstance(run, str):
            raise DataError(f"run= is the run's name (a str), or None for the model's name and the time; got {run!r}")
        self.run_name = run or _run_name(self.model)
        if self.world > 1 and all_ranks:
            self.run_name = f"{self.run_name}.rank{self.rank}"
        if logdir is not None and not isinstance(logdir, str | os.PathLike):
            raise DataError(f"logdir= is the run store's directory (a str or a path), or None for no store; got {logdir!r}")
        self.logdir = None if logdir is None else str(logdir)
        if sinks is None or callable(getattr(sinks, "write", None)):  # (none, or one sink alone)
            sinks = () if sinks is None else [cast("Sink", sinks)]
        elif not isinstance(sinks, Iterable):
            raise DataError(f"sinks= is a list of sinks (convscope.sinks.Sink: objects with write(frame)), got {type(sinks).__name__}")
        odd = [type(sink).__name__ for sink in sinks if not callable(getattr(sink, "write", None))]
        if odd:
            raise DataError(f"sinks= takes sinks (convscope.sinks.Sink: objects with write(frame)), got {', '.join(odd)}")
        self._extra_sinks = list(sinks)
        if isinstance(serve, str) and not serve.startswith(("http://", "https://")):
            raise DataError(
                "serve= is True for a dashboard of its own, or the address of a running `convscope serve` to send to "
                f"(http://host:port, as it printed it, ?token= and all); got {serve!r}"
            )
        # (any true value but a URL is True: start() gives serve=True without a logdir a run store of its own)
        self._serve = serve if isinstance(serve, str) else bool(serve)
        if not _is_int(serve_port) or not 0 <= serve_port <= 65535:
            raise DataError(f"serve_port= is a TCP port from 0 (any free one) to 65535, got {serve_port!r}")
        self._serve_port = int(serve_port)
        self.server_url: str | None = None
        self.stats = MonitorStats()
        self.step_count = start_step or 0
        self._acts: dict[str, Activations] = {}
        self._handles: list[Any] = []
        # attached only for the steps that need them (see _arm): the layers' forward hooks and
        # the optimizer's pre-step hook
        self._layer_hooks: list[Any] = []
        self._fixed_hooks: list[Any] = []  # a compiled model's, attached at start until close()
        self._hooks_live = False  # whether the layers' hooks copy activations this step
        self._hooks_missed = False  # said once: the hooks did not run on a step that needed them
        self._pre_hook: Any = None
        self._pipeline: FramePipeline | None = None
        if isinstance(queue_size, bool) or not isinstance(queue_size, int) or queue_size < 2:
            raise DataError(f"queue_size= is a number of work items of at least 2, got {queue_size!r}")
        self._queue_size = queue_size
        if switch_interval is not None and (not _is_number(switch_interval) or not switch_interval > 0):
            raise DataError(f"switch_interval= is seconds (more than 0), or None to leave Python's as it is; got {switch_interval!r}")
        self._switch_interval = switch_interval
        self.gc_freeze = bool(gc_freeze)
        self._frozen = False  # whether this monitor holds the heap frozen (see _FrozenHeap)
        if isinstance(worker_nice, bool) or not isinstance(worker_nice, int) or not 0 <= worker_nice <= 19:
            raise DataError(f"worker_nice= is a Linux nice increment from 0 to 19, got {worker_nice!r}")
        self.worker_nice = worker_nice
        if isinstance(batch_window, bool) or not isinstance(batch_window, int | float) or not 0 <= batch_window <= 60:
            raise DataError(f"batch_window= is seconds from 0 to 60, got {batch_window!r}")
        self.batch_window = float(batch_window)
        _check_choice("analysis_thread=", analysis_thread, _ANALYSIS_THREADS)
        #: where the analysis runs: "background" or "training" ("auto" is decided by start())
        self.analysis_thread = analysis_thread
        self._analysis_seconds = 0.0  # on the training thread (analysis_thread="training")
        self._previous_switch: float | None = None
        self._graph: ModelGraph | None = None
        self._started = False
        self._closed = False
        self._scalars: list[tuple[int, str, Any, float]] = []  # (step, name, value, perf_counter)
        self._scalars_sent = 0.0
        self._drops_before: dict[str, int] = {}  # a resumed run's dropped counts so far, by sink
        self._store: Any = None
        self.server: Any = None
        self.run_id: str | None = None

    # --- lifecycle ------------------------------------------------------------------------------
    def start(self) -> Monitor:
        """Attach the hooks and start the background thread (idempotent)."""
        if self._closed:
            raise DataError(
                f"this monitor is closed (its run {self.run_id or self.run_name} ended) and does not start again; "
                "watch the model again for a new run: convscope.watch(model, ...)"
            )
        if self._started or not self.active:
            self._started = True
            return self
        self._replace_earlier()
        self._started = True
        try:
            self._start()
        except BaseException:  # (a probe the model cannot take, a run store that cannot be made ...)
            # nothing is left behind: no hooks, no thread, no open run, no monitor said to watch the model
            self.close(status="failed")
            self._remove_new_run()
            raise
        return self

    def _remove_new_run(self) -> None:
        """The run a failed start() created, removed: it holds no training (the start failed before
        the first step), and the Runs page would list an empty "failed" run for every retry (a
        dashboard port already taken, say). A resumed run stays as it was."""
        store = self._store
        if store is None or store.resumed_from is not None:
            return
        path = store.writer.path
        for suffix in ("", "-wal", "-shm", "-journal"):
            with contextlib.suppress(OSError):
                os.unlink(f"{path}{suffix}")
        self.run_id = None

    def _start(self) -> None:
        if self.probe is not None and not self._compiled:  # (a compiled model would compile its eval graph now)
            self._check_probe(self.probe)
        if self.prune is not None and (self.input_shape is not None or self.probe is not None):
            self._check_pruning(self.input_shape or tuple(int(d) for d in self.probe.shape[1:]))  # type: ignore[union-attr]
        _OPEN.add(self)
        sinks = list(self._extra_sinks)
        if self._serve is True and self.logdir is None:
            import tempfile

            self.logdir = tempfile.mkdtemp(prefix="convscope-runs-")
        if self.logdir is not None:
            from convscope.sinks.store import StoreSink

            self._store = StoreSink(
                self.logdir, run=self.run_name, model=type(self.model).__name__, config=self._config(), resume=self._resume
            )
            self.run_id = self._store.run_id
            sinks.insert(0, self._store)
            if self._store.resumed_from is not None:
                if self._start_step is None:
                    self.step_count = self.stats.steps = self._store.resumed_from  # the steps go on where the run stopped
                self._drops_before = self._store.writer.dropped_totals()
                self._restore_state(self._store.resumed_from)
        self._next_due = self._first_due(self.step_count + 1)
        self._begin_step = self.step_count
        self._trajectories_kept = time.perf_counter()
        if self._serve:
            sinks.extend(self._start_server())
        if self.analysis_thread == "auto":
            self.analysis_thread = _auto_analysis_thread(self.model)
        self._pipeline = FramePipeline(
            sinks, maxsize=self._queue_size, nice=self.worker_nice, on_dropped=self._dropped_frame,
            linger=self.batch_window, inline=self.analysis_thread == "training",
        )
        # Python hands its interpreter lock between threads every 5 ms by default: when the
        # background thread holds it, the training thread can wait that long between two torch
        # calls. A shorter interval while watching removes that wait (measured in
        # benchmarks/bench_insitu.py); the previous value is restored on close().
        if self._switch_interval is not None and sys.getswitchinterval() > self._switch_interval:
            self._previous_switch = sys.getswitchinterval()
            sys.setswitchinterval(self._switch_interval)
        self._pipeline.start()
        # Import the analysis (and its eigen-solver) now, before the first step, so that its
        # one-time import cost (~0.3 s of CPU for SciPy) neither competes with training on the
        # background thread nor uses up the overhead budget of the first recordings.
        from convscope.analysis import trajectory

        trajectory.warm_up()
        if self.gc_freeze:  # (after the imports: their objects are frozen too)
            _FrozenHeap.acquire()
            self._frozen = True

        if self.optimizer is not None:
            self._handles.append(self.optimizer.register_step_post_hook(self._after_step))
        self._first_handle = self.model.register_forward_pre_hook(_opaque_to_compile(self._first_forward))
        if self._compiled and self.probe is None:
            self._fixed_hooks = self._attach_layer_hooks()
        self._handles.append(self._first_handle)
        self._arm(self.step_count + 1)
        # a resumed run's start is a "resume" (its step is where the new process took over)
        resumed = self._store is not None and self._store.resumed_from is not None
        self._submit_meta("resume" if resumed else "start", status="live")

    def _restore_state(self, last: int) -> None:
        """A resumed run goes on where it stopped (its last step ``last``): filter groups keep
        their ids, each layer's next grouping matched to the last one the run stored (a layer
        whose filter count changed starts again), and gradient health goes on from the checks
        stored before, so a quiet status held back then counts on."""
        from convscope.analysis import GradientHealthTracker
        from convscope.analysis.groups import FilterGroups
        from convscope.frames import decode
        from convscope.store._reader import RunReader

        assert self._store is not None
        period = self.every.get("gradients")
        try:
            with RunReader(self._store.store.path(self.run_id)) as reader:
                groups = [decode(data) for _, data in reader.raw_frames(kind="groups", latest=True)]
                health = [] if period is None else [
                    decode(data) for _, data in reader.raw_frames(kind="gradient_health", start=max(0, last - 16 * period), end=last)
                ]
                if "trajectory" in self.every:
                    lasts = {row["layer"]: row["last_step"] for row in reader.series() if row["kind"] == "trajectory"}
                    for name in self.layers:
                        self._restore_trajectory(name, reader.state(f"trajectory/{name}"), lasts.get(name))
        except Exception as exc:  # noqa: BLE001  (they start again; the run goes on)
            warnings.warn(
                f"convscope could not read where the run's groups, gradient health and trajectories stopped ({exc}); they start again",
                RuntimeWarning,
                stacklevel=3,
            )
            return
        for frame in groups:
            state = self.layers.get(frame.layer)
            if state is not None and len(frame.payload["labels"]) == state.filters:
                state.groups = FilterGroups.from_payload(frame.payload)
        checks: dict[str, list[str]] = {}
        for frame in health:  # (by step, as stored)
            if frame.layer in self.layers:
                checks.setdefault(frame.layer, []).append(str(frame.payload.get("raw_status", frame.payload["status"])))
        for name, statuses in checks.items():
            tracker = self.layers[name].health = GradientHealthTracker(thresholds=self.health_thresholds)
            tracker.restore(name, statuses)

    def _analysed_all(self) -> bool:
        """Every recording analysed (not necessarily delivered: a slow sink does not hold this up
        beyond a moment), so the trackers are final."""
        pipeline = self._pipeline
        assert pipeline is not None
        if pipeline.inline:  # (on this thread)
            pipeline.analyse_due(force=True)
            return True
        return pipeline.drain(timeout=2.0)

    _trajectories_kept = 0.0  # when the trackers were last kept in the run (time.perf_counter())
    _keep_every = 0.0  # seconds between two times, from what the last one took (see _KEEP_SHARE)

    def _keep_trajectories(self) -> list[Frame]:
        """A work item: the trackers as this batch left them, kept in the run (no frames)."""
        start = time.perf_counter()
        self._save_trajectories()
        self._keep_every = _KEEP_SHARE * (time.perf_counter() - start)
        return []

    def _save_trajectories(self) -> None:
        """Keep each layer's trajectory tracker in the run, so that a training resumed from its
        checkpoint (``resume=True``) goes on with the same path rather than starting a new one.
        Made at ``close()``, and at most every ``_KEEP_TRAJECTORIES_S`` while training runs."""
        import io

        assert self._store is not None
        for name, state in self.layers.items():
            tracker = state.trajectory
            if tracker is None or not tracker.updates or (tracker.updates - 1) not in state.trajectory_steps:
                continue
            ordinals = [k for k in tracker.path()[0].tolist() if k != tracker.updates - 1] + [tracker.updates - 1]  # kept ones, the last
            steps = [state.trajectory_steps[k] for k in ordinals if k in state.trajectory_steps]
            if len(steps) != len(ordinals):
                continue
            buf = io.BytesIO()
            np.savez(
                buf, **tracker.state_dict(), monitor_ordinals=np.asarray(ordinals, dtype=np.int64),
                monitor_steps=np.asarray(steps, dtype=np.int64), monitor_shape=np.asarray(state.trajectory_shape, dtype=np.int64),
            )
            try:
                self._store.writer.put_state(f"trajectory/{name}", buf.getvalue())
            except Exception as exc:  # noqa: BLE001  (a resumed run's path would start again; nothing else is lost)
                warnings.warn(f"convscope could not keep layer {name}'s trajectory for a resume ({exc})", RuntimeWarning, stacklevel=3)
                return

    def _restore_trajectory(self, name: str, data: bytes | None, last_frame: int | None) -> None:
        """The trajectory tracker :meth:`_save_trajectories` kept, where it is not newer than the
        layer's last trajectory frame, training goes on from the end of that frame's path (an
        older checkpoint took the weights back: a new path) and the layer has the same weights'
        shape. Points recorded after it was kept (by a process killed before it kept them) are
        not on the path: it goes straight from the last kept one to the next."""
        import io

        from convscope.analysis import TrajectoryTracker

        state = self.layers[name]
        if data is None:
            return
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as saved:
                arrays = dict(saved)
            shape = tuple(int(v) for v in arrays.pop("monitor_shape"))
            ordinals, steps = arrays.pop("monitor_ordinals").tolist(), arrays.pop("monitor_steps").tolist()
            # (a checkpoint older than the path's end, start_step=, took the weights back: a new path)
            if last_frame is None or not steps or steps[-1] > last_frame or self.step_count < last_frame or shape != tuple(state.filters_first(state.param).shape):
                return
            tracker = TrajectoryTracker(dims=self.trajectory_dims, seed=self.seed, refresh=_reduce._TRAJECTORY_REFRESH)
            tracker.load_state_dict(arrays, device=state.param.device)
        except Exception as exc:  # noqa: BLE001  (another seed or dims, a damaged state: this path starts again)
            warnings.warn(f"convscope starts layer {name}'s trajectory again ({type(exc).__name__}: {exc})", RuntimeWarning, stacklevel=4)
            return
        state.trajectory, state.trajectory_shape = tracker, shape
        state.trajectory_steps = dict(zip(ordinals, steps, strict=True))
        state.trajectory_path = None

    def _replace_earlier(self) -> None:
        """A model that an open monitor watches already (a notebook cell run again, a loop
        restarted without ``close()``) is watched by this one alone: the earlier one is closed
        (its run finished, with what it recorded) and a warning says so. Two monitors would both
        record every step, at twice the cost, into two runs."""
        try:
            with _WATCHING_LOCK:
                earlier = _WATCHING.get(self.model)
                _WATCHING[self.model] = self
        except TypeError:  # a model that cannot be a weak dictionary's key (not hashable): not followed
            return
        if earlier is not None and earlier is not self and not earlier._closed:
            warnings.warn(
                f"convscope: {type(self.model).__name__} was already watched (run {earlier.run_id or earlier.run_name}); "
                "that monitor is closed and its run finished, and this one takes over",
                RuntimeWarning,
                stacklevel=4,
            )
            try:
                earlier.close()
            except Exception as exc:  # noqa: BLE001  (its failure must not stop the new monitor)
                warnings.warn(f"convscope: closing the earlier monitor failed ({type(exc).__name__}: {exc})", RuntimeWarning, stacklevel=4)

    def close(self, *, status: str = "finished") -> None:
        """Remove every hook, drain the queue and close the sinks (idempotent)."""
        from convscope.store._schema import CLOSED_STATUSES

        _check_choice("close(status=)", status, CLOSED_STATUSES)
        if self._closed:
            return
        self._closed = True
        # (instead of the methods, so that the steps before pay nothing for it)
        self.log = self.step = self._after_close  # type: ignore[method-assign]
        _OPEN.discard(self)
        with _WATCHING_LOCK:
            try:
                if _WATCHING.get(self.model) is self:
                    del _WATCHING[self.model]
            except TypeError:
                pass
        end = self._paused_at or time.perf_counter()  # of the watched time
        self._disarm()
        self._detach(self._fixed_hooks)
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        if self._previous_switch is not None and sys.getswitchinterval() == self._switch_interval:
            sys.setswitchinterval(self._previous_switch)
            self._previous_switch = None
        if self._frozen:
            self._frozen = False
            _FrozenHeap.release()
        self._acts.clear()
        if self._pipeline is not None:
            self._send_scalars()
            for item, _, _ in self._budget_report(self.step_count):
                self._pipeline.submit(item)
            if self._store is not None and "trajectory" in self.every and self._analysed_all():
                self._save_trajectories()  # (the trackers are final)
            self._submit_meta("end", status=status)
            self._pipeline.close(status=status)
            for state in self.layers.values():
                state.spare.clear()
                state.image_spare.clear()
            self.stats.frames = self._pipeline.stats.frames
            self.stats.dropped = self._pipeline.stats.dropped
            self.stats.analysis_cpu_seconds = self._pipeline.stats.cpu_seconds + self.stats.seconds_in_step_hooks
            self.stats.slowdown_factor = self._meter.factor
            self.stats.touched_step_seconds = self._meter.after
            if self._t0 is not None and end > self._t0:
                cost = self.stats.seconds_in_step_hooks + self._meter.factor * self._pipeline.stats.cpu_seconds
                cost += self._meter.after * self._meter.touched
                self.stats.overhead_estimate = cost / max(end - self._t0 - cost, 1e-9)  # (of training's own time)
            self.stats.sink_failures = dict(self._pipeline.stats.sink_failures)
        elif self._store is not None:  # start() failed between the run store and the pipeline: the run ends
            try:
                self._store.close(status=status)
            except Exception:  # noqa: BLE001, S110  (start()'s own error is the one that matters)
                pass
        if self.optimizer is None and self.step_count == self._begin_step and self._forwarded and status == "finished":
            self._no_steps_said(closing=True)  # (the model ran, and no step was counted; said once all is closed)

    _said_closed = False

    def _after_close(self, *_: Any, **__: Any) -> None:
        """``log()`` and ``step()`` of a closed monitor: nothing to record any more, said once."""
        if not self._said_closed:
            self._said_closed = True
            warnings.warn(
                f"convscope: this monitor is closed (its run {self.run_id or self.run_name} ended), so log() and step() "
                "record nothing; call them before close() (the end of its with block), or watch the model again for a new run",
                RuntimeWarning,
                stacklevel=2,
            )

    _said_followed = False

    def _step_followed(self) -> None:
        """``step()`` where the optimizer's steps are followed: not counted again, said once."""
        if not self._said_followed:
            self._said_followed = True
            warnings.warn(
                "convscope follows the optimizer's steps (optimizer=), so monitor.step() is not needed and is ignored; "
                "call it only without optimizer=",
                RuntimeWarning,
                stacklevel=2,
            )

    def _repr_html_(self) -> str | None:
        """In Jupyter, a monitor that serves shows its live dashboard inline (see convscope.notebook)."""
        if not self.server_url:
            return None
        from convscope.notebook import View

        return View(self.server_url, 900, f"run {self.run_name}")._repr_html_()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "paused" if self.paused else "watching" if self._started else "not started"
        where = self.server_url or (f"{self.logdir}" if self.logdir is not None else "its sinks")
        live = self._pipeline is not None and not self._closed  # (the stats take the pipeline's counts at close())
        frames, dropped = (self._pipeline.stats.frames, self._pipeline.stats.dropped) if live else (self.stats.frames, self.stats.dropped)  # type: ignore[union-attr]
        return (
            f"<convscope Monitor of {type(self.model).__name__}: {state}, run {self.run_id or self.run_name!r} in {where}; "
            f"layers {', '.join(self.layers)}; step {self.step_count}, {self.stats.recorded_steps} recorded, "
            f"{frames} frames, {dropped} dropped>"
        )

    def __enter__(self) -> Monitor:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        self.close(status="finished" if exc_type is None else "failed")

    # --- public calls in a training loop -------------------------------------------------------------
    def pause(self) -> None:
        """Stop watching until :meth:`resume`: nothing is recorded and no activations are copied.

        Steps are still counted, so that step numbers keep matching the optimizer's, and the
        overhead budget's clock stops (its share is of the watched time). The background thread
        finishes the recordings it already has. For stretches not worth watching, such as a
        second training in the same process.
        """
        if self._paused_at is None:
            self._paused_at = time.perf_counter()
            self._disarm()
            if self._pipeline is not None and self._pipeline.inline:  # what is gathered, analysed now
                self._analyse_due(force=True)

    def resume(self) -> None:
        """Watch again after :meth:`pause`."""
        if self._paused_at is None:
            return
        if self._t0 is not None:
            self._t0 += time.perf_counter() - self._paused_at
        self._paused_at = None
        self._meter.gap()  # the pause is no training step to measure
        if not self._closed and self._pipeline is not None:
            self._next_due = self._first_due(self.step_count + 1)
            self._arm(self.step_count + 1)

    @property
    def paused(self) -> bool:
        return self._paused_at is not None

    def step(self) -> None:
        """Mark the end of one training step, for loops without an optimizer object (with
        ``optimizer=`` its steps are counted, and a call of this is ignored with a warning)."""
        self._after_step()

    def _start_at(self, step: int) -> None:
        """Count the steps from ``step`` on: for a framework that restores its step count from a
        checkpoint after the monitor started (Lightning's ``fit(ckpt_path=...)``)."""
        self.step_count = self.stats.steps = self._begin_step = step
        self._next_due = self._first_due(step + 1)
        for state in self.layers.values():  # (a resumed path that went past the checkpoint: a new path, see _restore_trajectory)
            if state.trajectory is not None and state.trajectory_steps and max(state.trajectory_steps.values()) > step:
                state.trajectory = state.trajectory_path = None
                state.trajectory_steps = {}
        if self._started and self.active and not self._closed:
            self._arm(step + 1)

    def log(self, **scalars: float | torch.Tensor) -> None:
        """Record scalars (loss, accuracy ...) at the current step; tensors on an accelerator
        are read later, off the step (reading one now would wait for the device)."""
        if not self.active or self._pipeline is None:
            return
        start = time.perf_counter()  # (counted with the hooks: the budget sees it)
        step = self.step_count
        v: Any  # a float or a tensor, told apart by hasattr() below, which mypy cannot narrow a union by
        for k, v in scalars.items():
            if hasattr(v, "detach"):
                # a CPU tensor is read now: holding on to a tensor per step until the batch is
                # read costs a CPU training more (its allocations) than reading it (~1 us); as
                # few torch calls as can be, since each costs several us right after a step
                if v.is_cpu:
                    try:
                        v = v.item()
                    except RuntimeError:  # not one value
                        v = _one_value(k, v)
                else:
                    v = _one_value(k, v).detach()
            elif type(v) is not float and not isinstance(v, numbers.Real):
                if isinstance(v, np.ndarray) and v.dtype.kind in "biuf":  # (a NumPy result: one value, or said as a tensor is)
                    v = _one_value(k, v).item()
                else:
                    raise DataError(f"log() takes numbers or one-value tensors; {k}= is a {type(v).__name__}")
            self._scalars.append((step, k, v, start))
        if step == self._begin_step and self.optimizer is None:
            self._no_steps_said()
        self._scalars_due(start)
        if self._paused_at is None:
            self.stats.seconds_in_step_hooks += time.perf_counter() - start

    _logs_at_zero = 0
    _forwarded = False  # whether the model has run since watching started
    _begin_step = 0  # the step count when watching started

    def _no_steps_said(self, *, closing: bool = False) -> None:
        """Without an optimizer the steps are counted by ``step()``: a loop that never calls it
        would record nothing but its first step, silently, so it is said once."""
        self._logs_at_zero += 1
        if self._logs_at_zero == 16 or (closing and self._logs_at_zero < 16):
            warnings.warn(
                f"convscope counted no training step ({'training ended' if closing else 'log() was called 16 times'} "
                f"at step {self._begin_step}): "
                "pass optimizer= to watch() so it follows the optimizer's steps, or call monitor.step() after each one",
                RuntimeWarning,
                stacklevel=3,
            )

    def _scalars_due(self, now: float) -> None:
        # batched: one work item and one ``scalars`` frame per name each second (or 256 values),
        # not a frame per value: the background thread wakes rarely (see FramePipeline's
        # idle_interval), and encodes and stores one frame where it did about a hundred
        if len(self._scalars) >= 256 or now - self._scalars_sent >= 1.0:
            self._send_scalars(now)

    def _send_scalars(self, now: float | None = None) -> None:
        batch, self._scalars = self._scalars, []
        self._scalars_sent = time.perf_counter() if now is None else now
        if batch and self._pipeline is not None:
            self._pipeline.submit(lambda: self._scalar_frames(batch))

    def _scalar_frames(self, batch: list[tuple[int, str, Any, float]]) -> list[Frame]:
        """One ``scalars`` frame per name of a batch of logged values (read now, off the step)."""
        to_wall = time.time() - time.perf_counter()
        by_name: dict[str, list[tuple[int, Any, float]]] = {}
        for step, name, value, at in batch:
            by_name.setdefault(name, []).append((step, value, at))
        frames = []
        for name, points in by_name.items():
            steps, values, times = zip(*points, strict=True)
            payload = {
                "name": name,
                "steps": np.asarray(steps, dtype=np.int64),
                "values": np.asarray([float(v) for v in values], dtype=np.float64),
                "wall_times": np.asarray(times, dtype=np.float64) + to_wall,
            }
            frames.append(self._frame(steps[-1], "", "scalars", payload, wall_time=times[-1] + to_wall))
        return frames

    @property
    def graph(self) -> ModelGraph | None:
        return self._graph

    # --- hooks ----------------------------------------------------------------------------------
    def _due(self, view: str, step: int) -> bool:
        n = self.every.get(view)
        return n is not None and step % n == 0

    def _first_due(self, step: int) -> int:
        """The first step from ``step`` on at which any view is due."""
        return min((-(-step // n) * n for n in self._periods), default=sys.maxsize)

    def _arm(self, step: int) -> None:
        """Attach the hooks that step ``step`` needs, and take off those it does not.

        The layers' forward hooks (which copy activations) and the optimizer's pre-step hook
        (the weights before the update) are there only for a recording step within the budget:
        on every other step the layers and the optimizer run as if nothing watched them, without
        torch's hook machinery and a call of ours in each (about a tenth of a millisecond per
        LeNet-5 step on a CPU, measured in benchmarks/bench_insitu.py).
        """
        acts = grads = False
        if step == self._next_due and self._paused_at is None and self._within_budget(step):
            due = self._due_at(step)
            acts = self.probe is None and not due.isdisjoint(_ACTIVATION_VIEWS)
            grads = self.optimizer is not None and "gradients" in due
            if acts:
                self._copies = self._copies_for(due)
        if acts or grads:  # (its forward pass and update run through torch's hook machinery)
            self._busy_step = step
        # The weights before the update: copied by the forward hooks where they run anyway (the
        # optimizer has not stepped yet), else by the optimizer's pre-step hook, which costs its
        # attaching and taking off besides (unless the hooks failed to run once: see _record).
        self._weights_in_forward = acts and grads and not self._hooks_missed
        self._set_hooks(acts=acts, grads=grads and not self._weights_in_forward)

    _weights_in_forward = False  # whether this step's forward hooks copy the weights before the update

    def _due_at(self, step: int) -> set[str]:
        """The views due at ``step`` (one pass over the schedule; kept for the step's recording
        once its hooks are armed). Not to be changed by the caller."""
        if self._due_cache[0] != step:
            self._due_cache = (step, {view for view, n in self.every.items() if step % n == 0})
        return self._due_cache[1]

    _due_cache: tuple[int, set[str]] = (-1, set())

    @staticmethod
    def _copies_for(due: set[str]) -> tuple[bool, bool]:
        """What the forward hooks copy for a recording step of the views ``due``: the grid (for
        the distribution, correlation or gradient health) and sample 0 whole (for the images)."""
        return not due.isdisjoint(_GRID_VIEWS), "feature_maps" in due

    def _disarm(self) -> None:
        self._set_hooks(acts=False, grads=False)

    def _set_hooks(self, *, acts: bool, grads: bool) -> None:
        """The layers' forward hooks attached if ``acts``, the optimizer's pre-step hook if ``grads``.

        A compiled model's layer hooks stay attached from the start (``torch.compile`` takes in
        the hooks a module has when it compiles it, and does not see those attached later): they
        only copy while ``acts`` holds, and return at once on the other steps."""
        self._hooks_live = acts
        if not self._compiled:
            if acts and not self._layer_hooks:
                self._layer_hooks = self._attach_layer_hooks()
            elif not acts:
                self._detach(self._layer_hooks)
        if grads and self._pre_hook is None:
            self._pre_hook = self.optimizer.register_step_pre_hook(lambda *_: self._before_step())  # type: ignore[union-attr]
        elif not grads and self._pre_hook is not None:
            self._pre_hook.remove()
            self._pre_hook = None

    def _attach_layer_hooks(self) -> list[Any]:
        # The hooks are made once (and again once the compiler is loaded, see _opaque_to_compile):
        # made at every recording step, right after a training step, they cost about 40 us a
        # layer there, twice what registering them costs (LeNet-5 on a CPU).
        opaque = "torch._dynamo" in sys.modules
        if self._hook_fns is None or self._hook_fns[0] != opaque:
            self._hook_fns = (opaque, {name: self._make_forward_hook(name) for name in self.layers})
        fns = self._hook_fns[1]
        return [state.module.register_forward_hook(fns[state.name]) for state in self.layers.values()]

    _hook_fns: tuple[bool, dict[str, Callable[..., None]]] | None = None

    @staticmethod
    def _detach(handles: list[Any]) -> None:
        for handle in handles:
            handle.remove()
        handles.clear()

    def _within_budget(self, step: int) -> bool:
        """Whether recording step ``step`` fits in the overhead budget (decided once per step).

        Two rules; a step that breaks either is skipped whole, so that every view keeps to the
        same steps, and counted in ``stats.deferred`` (and in a ``dropped`` frame with
        ``sink="budget"``):

        * *cost*: what convscope has cost training, with this recording at the mean cost so far,
          may be at most ``budget`` times training's own time (the wall time watched less that
          cost), or a small allowance at the start while that is less. The
          hooks on the training thread cost their time; the background thread costs its CPU
          times the slowdown the steps show for it
          (:class:`~convscope.insitu._budget.SlowdownMeter`: about 0 with a core of its own, 1
          or more when training's threads fill the cores; 1 until the steps tell); and the
          steps the monitor's work touched (a recording step and the two after it, or after
          an analysis on this thread) cost what they took beyond the others, as measured.
        * *backlog*: a step is not recorded while the background thread still has two earlier
          recordings to finish (not counting those held back for a moment to work through
          several together; with ``analysis_thread="training"``, two analysed recordings whose
          frames the sinks have not taken yet). So a slow analysis or sink means fewer
          recordings, never a queue that overflows and loses parts of recordings.

        The views then come less often than ``every=`` asks on a busy machine, and never cost
        training more than about the budget.
        """
        pipeline = self._pipeline
        if self.budget is None or pipeline is None or self._t0 is None:
            return True
        if self._budget_step != step:
            while self._recordings and self._recordings[0] <= pipeline.stats.completed:
                self._recordings.popleft()
            # what the worker has used, and what the recordings it has not finished and this one
            # will use (at the mean so far): it gathers several before it starts on them, and a
            # recording that would pass the budget is not started (a big model's recording can
            # cost seconds)
            # (until a recording is finished there is no mean: the worker's CPU so far went to the
            # run's start, its graph and scalars, and the start allowance covers the first ones)
            done = self.stats.recorded_steps - len(self._recordings)
            coming = (len(self._recordings) + 1) / done if done > 0 else 0.0  # per finished one
            used = pipeline.worker_cpu()
            spent = self.stats.seconds_in_step_hooks + self._meter.factor * (used + coming * pipeline.stats.cpu_seconds)
            # the steps the monitor's work touched, this recording's among them, beyond the hooks' time
            spent += self._meter.after * (self._meter.touched + _TOUCHED_STEPS)
            spent += coming * self._analysis_seconds  # (inline: what the training thread will spend on them)
            # the budget is a share of training's own time, the watched time less convscope's
            # cost: a cost c in w seconds watched is c / (w - c), so c may be budget / (1 + budget) of w
            allowed = max(self.budget / (1 + self.budget) * (time.perf_counter() - self._t0), _BUDGET_ALLOWANCE_S)
            self._budget_step = step
            # the backlog: recordings out of the queue and not finished, and those still queued
            # unless they wait on purpose, to be worked through together (pipeline.holding)
            behind = sum(1 for end in self._recordings if end <= pipeline.left_queue)
            if not pipeline.holding:
                behind = len(self._recordings)
            self._budget_ok = spent <= allowed and behind < 2
        return self._budget_ok

    def _make_forward_hook(self, name: str) -> Callable[..., None]:
        def hook(_m: torch.nn.Module, _args: Any, out: Any) -> None:
            # (attached only for a step that records activations, or a probe's pass: see _arm;
            # a compiled model's, at every step)
            if self._building or not (self._collecting or (self._hooks_live and self._paused_at is None)):
                return
            start = time.perf_counter()
            # a copy: an in-place activation (ReLU(inplace=True)) would change the output later
            if isinstance(out, tuple | list):
                out = out[0]
            if hasattr(out, "detach"):
                # (a probe's pass: the probe whole, as its maker chose it)
                state = self.layers[name]
                self._acts[name] = state.activations(
                    out, None if self._collecting else self.max_samples, max_values=self.max_values, grid=self._copies[0], image=self._copies[1]
                )
                if self._weights_in_forward and not self._collecting:  # (see _arm)
                    state.prev_weight = state.weight()
            if not self._collecting:  # a probe's pass is timed with the step that runs it
                self.stats.seconds_in_step_hooks += time.perf_counter() - start

        return _opaque_to_compile(hook)

    _collecting = False
    _building = False
    _copies = (True, False)  # what the hooks copy: the grid, sample 0 whole (see _copies_for)

    def _first_forward(self, _module: torch.nn.Module, args: tuple[Any, ...]) -> None:
        if self._building:  # (a pass of the monitor's own: the pruning check's trace)
            return
        self._forwarded = True
        if self._t0 is None and self._paused_at is None:  # the overhead budget counts from the first forward pass
            self._t0 = time.perf_counter()
        # The graph needs an input shape: take it from the first batch the model sees.
        if self._graph is None and not self._graph_pending and args and hasattr(args[0], "shape"):
            shape = tuple(int(d) for d in args[0].shape[1:])
            if self.input_shape is not None and len(self.input_shape) == len(shape) + 1:
                warnings.warn(
                    f"convscope: input_shape= is one input's shape, without the batch; {self.input_shape} has the batch's "
                    f"dimension too, and the model's first batch has inputs of {shape}, which the model graph is built with",
                    RuntimeWarning,
                    stacklevel=2,
                )
                self.input_shape = shape
            self.input_shape = self.input_shape or shape
            self._graph_pending = True
        elif self._graph is None and not self._graph_pending and self.input_shape is not None:
            self._graph_pending = True  # (called with keyword arguments only: input_shape= was given)
        if self.prune is not None and not self._prune_checked and self.input_shape is not None:
            try:  # (the first batch told the input shape: before it trains, not at the first pruning step)
                self._check_pruning(self.input_shape)
            except BaseException:
                # the model is left as it was, unwatched, and the run (not a step in it) is not kept
                self.close(status="failed")
                self._remove_new_run()
                raise
        if self._t0 is not None and (self._graph is not None or self._graph_pending) and self._first_handle is not None:
            # its work is done: without it, the model's own call skips torch's hook machinery
            # at every step (a graph that fails to build is not tried again at every step either)
            self._first_handle.remove()
            self._first_handle = None

    _first_handle: Any = None

    _graph_pending = False
    _prune_checked = False
    _prune_default = False  # (whether prune= chose its layers: the first watched conv)

    def _check_pruning(self, shape: tuple[int, ...]) -> None:
        """Refuse now, once, a layer of ``prune=`` that pruning could not change safely (see
        :func:`convscope.insitu._prune.check_reach`); the trace's pass, and those of the pruned
        copy (which keeps the model's hooks, these among them), are no steps of training.
        The first forward may run under ``torch.inference_mode()`` (Lightning's sanity check),
        where no tensor could be traced."""
        import torch

        from convscope.insitu import _prune

        self._prune_checked = True
        self._building = True  # (the layers' hooks and the first forward hook ignore it)
        try:
            with torch.inference_mode(False):
                _prune.check_reach(self, shape)
        finally:
            self._building = False

    def _build_graph(self) -> None:
        from convscope.models import build_graph

        self._graph_pending = False
        self._building = True  # building runs the model once; the hooks ignore that pass
        acts = dict(self._acts)  # this step's activations, still to be recorded
        try:
            # (zeros of the model's own dtype, on its device: a half-precision or GPU model works)
            self._graph = build_graph(self.model, input_shape=self.input_shape or ())
        except Exception as exc:  # a graph is nice to have; training must go on without it
            warnings.warn(f"convscope could not build the model graph ({type(exc).__name__}: {exc})", RuntimeWarning, stacklevel=3)
            return
        finally:
            self._building = False
            self._acts = acts
        self._submit_meta("graph", status="live")

    def _before_step(self) -> None:
        # Weights right before a recording step's update give the exact update-to-weight ratio.
        if not self.active or self._closed or self._paused_at is not None or not self._due("gradients", self.step_count + 1):
            return
        if not self._within_budget(self.step_count + 1):
            return
        start = time.perf_counter()
        for state in self.layers.values():
            state.prev_weight = state.weight()
        self.stats.seconds_in_step_hooks += time.perf_counter() - start

    def _after_step(self, *_: Any) -> None:
        """The end of a training step (the optimizer's post-step hook, called with the optimizer,
        its arguments and keyword arguments; :meth:`step` without them)."""
        start = time.perf_counter()
        pipeline = self._pipeline
        if pipeline is None or self._closed or not self.active:
            return
        # A quiet step (most of them: nothing due now or next, nothing to prune, no hooks to take
        # off, no analysis due) only marks its end for the slowdown meter, in as few operations
        # as can be: right after a step each costs several times what it costs in a loop (the
        # step evicted the caches). Timed on LeNet-5 steps, old and new code alternating, about
        # 3 us less a quiet step than the general path below (11-13 against 14-15 us), which
        # does the same for it.
        step = self.step_count + 1
        if (
            step + 1 < self._next_due
            and self._paused_at is None
            and self.prune is None
            and not self._graph_pending
            and not self._layer_hooks
            and not self._hooks_live
            and self._pre_hook is None
            and time.monotonic() < pipeline.due_at  # (infinite unless the analysis is inline)
        ):
            self.step_count = self.stats.steps = step
            self._measure_step(start)
            self.stats.seconds_in_step_hooks += time.perf_counter() - start
            return
        try:
            self.step_count += 1
            step = self.step_count
            if self._paused_at is not None:
                return
            self._measure_step(start)
            if self._graph_pending:
                self._build_graph()
            if step == self._next_due:
                if self._within_budget(step):
                    self._record(step)
                    self.stats.recorded_steps += 1
                    self._busy_step = step
                else:
                    self.stats.deferred += 1
            if step >= self._next_due:  # (past it where a recording raised before moving it on)
                self._next_due = self._first_due(step + 1)
            if self.prune is not None:
                self._maybe_prune(step)
            if pipeline.inline and self._analyse_due():
                self._busy_step = step
            if self._layer_hooks or self._hooks_live or self._pre_hook is not None or self._next_due == step + 1:
                self._arm(step + 1)
            # Without an optimizer to hook before its update, the weights after this step stand in.
            if self.optimizer is None and self._due("gradients", step + 1):
                self._before_step()
        except Exception as exc:
            warnings.warn(f"convscope skipped step {self.step_count} ({type(exc).__name__}: {exc}); training goes on", RuntimeWarning, stacklevel=2)
        finally:
            self._acts.clear()
            self.stats.steps = self.step_count
            self.stats.seconds_in_step_hooks += time.perf_counter() - start

    def _analyse_due(self, *, force: bool = False) -> bool:
        """analysis_thread="training": the gathered recordings, analysed on this thread when due
        (whether it analysed any)."""
        pipeline = self._pipeline
        if pipeline is None or not (force or time.monotonic() >= pipeline.due_at):  # (most steps)
            return False
        start = time.perf_counter()
        if pipeline.analyse_due(force=force):
            self._analysis_seconds += time.perf_counter() - start
            return True
        return False

    def _measure_step(self, now: float) -> None:
        """Mark the end of a step for the slowdown meter, which fits its duration without the
        hooks' own time against the background thread's CPU during it, and against whether the
        monitor's work touched it (a recording step, or one of the two after a recording or an
        analysis on this thread), later (see :meth:`~convscope.insitu._budget.SlowdownMeter.mark`)."""
        touched = self.step_count - self._busy_step < _TOUCHED_STEPS
        self._meter.mark(now, self._pipeline.worker_cpu(), self.stats.seconds_in_step_hooks, touched)  # type: ignore[union-attr]

    # --- recording ------------------------------------------------------------------------------
    def _record(self, step: int) -> None:
        acts = self._acts
        due = self._due_at(step)
        if self.probe is not None and not due.isdisjoint(_ACTIVATION_VIEWS):
            self._copies = self._copies_for(due)
            acts = self._probe_activations()
        elif self._hooks_live and not acts and not self._hooks_missed:
            self._hooks_missed = True
            warnings.warn(
                "convscope: the watched layers' forward hooks did not run on a recording step, so the feature-map "
                "views (distribution, correlation, groups, images) stay empty. torch.compile does not see hooks added "
                "after it compiled a model (or another model of its class, in this process): pass the compiled module "
                "to watch() before any such model runs compiled, or call torch._dynamo.reset() before watch()",
                RuntimeWarning,
                stacklevel=2,
            )
        items: list[tuple[Callable[[], list[Frame]], int, int]] = []
        # (no torch.no_grad(): every snapshot is of detached tensors, and the context costs
        # several us right after a step)
        for state in self.layers.values():
            items.extend(_reduce.layer_items(self, state, step, acts.get(state.name), due))
        if "lr" in due and self.optimizer is not None:  # (batched with the logged values)
            self._record_lr(step)
        items.extend(self._budget_report(step))
        now = time.perf_counter()
        if self._store is not None and "trajectory" in due and now - self._trajectories_kept >= max(_KEEP_TRAJECTORIES_S, self._keep_every):
            self._trajectories_kept = now  # (after this batch's trajectory items: the highest key)
            items.append((self._keep_trajectories, 0, _reduce.LAST_KEY))
        self._scalars_due(now)
        self._pipeline.submit_many(items)  # type: ignore[union-attr]
        self._recordings.append(self._pipeline.stats.submitted)  # type: ignore[union-attr]

    def _take_gradients(self) -> None:
        """Copy the watched layers' gradients now, for the coming optimizer step's recording if
        it is one that records gradient health: a framework that clips gradients between the
        backward pass and the step calls this before clipping (Lightning's callback, in
        ``on_before_optimizer_step``), so the view judges the gradients the model made, not
        the clipped ones. Without it the gradients are read after the step."""
        step = self.step_count + 1
        if step != self._next_due or self._paused_at is not None or self._closed or not self.active or "gradients" not in self._due_at(step):
            return
        for state in self.layers.values():
            if "gradients" not in state.skip and state.param.requires_grad:
                state.taken_grad = (step, state.grad())

    _lr_groups = False  # whether the optimizer's parameter groups have had different learning rates

    def _record_lr(self, step: int) -> None:
        """The learning rate: the first parameter group's as ``lr``, and once the groups' rates
        have differed (a lower one for a pretrained backbone, say), each other group's as
        ``lr/group1``, ``lr/group2`` ... from then on."""
        now = time.perf_counter()
        rates = [float(group.get("lr", float("nan"))) for group in self.optimizer.param_groups]  # type: ignore[union-attr]
        self._lr_groups = self._lr_groups or len(set(rates)) > 1
        self._scalars.append((step, "lr", rates[0], now))
        if self._lr_groups:
            self._scalars.extend((step, f"lr/group{i}", rate, now) for i, rate in enumerate(rates[1:], start=1))

    def _probe_activations(self) -> dict[str, Activations]:
        import torch

        was_training = self.model.training
        self._collecting = True
        self._acts = {}
        added = [] if self._layer_hooks or self._fixed_hooks else self._attach_layer_hooks()
        try:
            self.model.eval()  # batch norm statistics and dropout stay untouched by the probe
            with torch.no_grad():
                self.model(self.probe)
            return dict(self._acts)
        finally:
            self._detach(added)
            self._collecting = False
            self.model.train(was_training)

    def _check_probe(self, probe: torch.Tensor) -> None:
        """The probe batch run through the model once, as a recording runs it (eval mode, no
        gradients): one that the model cannot take is said now, rather than at every recording."""
        try:
            self._probe_activations()
        except Exception as exc:  # noqa: BLE001  (whatever the model raises, said with the probe's shape)
            weight = next(iter(self.model.parameters()), None)
            model = "" if weight is None else f" (its weights are {weight.dtype}, on {weight.device})"
            raise DataError(
                f"the probe batch (shape {tuple(probe.shape)}, {probe.dtype}, on {probe.device}) cannot run through "
                f"the model ({type(exc).__name__}: {exc}); pass probe= a batch the model takes, on its device{model}"
            ) from None
        finally:
            self._acts = {}

    def _maybe_prune(self, step: int) -> None:
        from convscope.insitu import _prune

        _prune.maybe_prune(self, step)

    # --- frames ---------------------------------------------------------------------------------
    def _frame(self, step: int, layer: str, kind: str, payload: dict[str, Any], wall_time: float | None = None) -> Frame:
        wall = time.time() if wall_time is None else wall_time
        return Frame(run=self.run_id or self.run_name, step=step, wall_time=wall, layer=layer, kind=kind, payload=payload)

    def _dropped_frame(self, count: int, *, sink: str = "queue", step: int | None = None) -> Frame:
        # (a resumed run's counts go on from what its earlier processes reported: they are the run's totals)
        count = int(count) + self._drops_before.get(sink, 0)
        return self._frame(self.step_count if step is None else step, "", "dropped", {"count": count, "sink": sink})

    def _budget_report(self, step: int) -> list[tuple[Callable[[], list[Frame]], int, int]]:
        """A work item with a ``dropped`` frame (sink ``budget``) if steps were deferred since the last one."""
        if self.stats.deferred <= self._budget_reported:
            return []
        self._budget_reported = deferred = self.stats.deferred
        return [(lambda: [self._dropped_frame(deferred, sink="budget", step=step)], 0, 0)]

    def _config(self) -> dict[str, Any]:
        return {
            "layers": list(self.layers),
            "every": dict(self.every),
            "budget": self.budget,
            "probe": None if self.probe is None else list(self.probe.shape),
            "prune": None if self.prune is None else {k: v for k, v in vars(self.prune).items()},
            "world_size": self.world,
            "rank": self.rank,
            **self.config,
        }

    def _submit_meta(self, event: str, *, status: str) -> None:
        if self._pipeline is None:
            return
        graph = None if self._graph is None else self._graph.to_dict()
        step = self.step_count
        config = self._config()
        self._pipeline.submit(lambda: [self._frame(step, "", "run_meta", {"event": event, "graph": graph, "config": config, "status": status})])

    def _start_server(self) -> list[Sink]:
        """``serve=True``: a local server on the run store; ``serve="http://..."``: ship to that server."""
        if isinstance(self._serve, str):
            from convscope.sinks.http import HttpSink

            sink = HttpSink(self._serve, run=self.run_name, model=type(self.model).__name__, config=self._config())
            self.server_url = _dashboard_url(self._serve, getattr(sink, "run_id", None))
            return [sink]
        from convscope.server import start_local_server

        assert self.logdir is not None  # (serve=True without one: start() made one)
        handle = start_local_server(self.logdir, port=self._serve_port)
        self.server = handle
        run_id = getattr(self._store, "run_id", None)
        self.server_url = _dashboard_url(handle.url, run_id)
        print(f"convscope: live dashboard at {self.server_url}", flush=True)
        return []


def _is_compiled(model: Any) -> bool:
    """Whether ``model`` is, or wraps, ``torch.compile``'s OptimizedModule."""
    return any(type(m).__name__ == "OptimizedModule" for m in _wrappers(model))


def _opaque_to_compile(hook: Callable[..., None]) -> Callable[..., None]:
    """``hook`` run as it is under ``torch.compile``: the compiler calls it between graphs instead
    of tracing its Python (copies into reused buffers, reference counts, clocks), which it cannot
    compile: traced, every recording step recompiled the model, and a watched LeNet-5 trained
    about 9x slower compiled than eager. Only where the compiler is loaded: loading it to wrap
    the hook would cost every watch() about 0.8 s, for processes that never compile."""
    if "torch._dynamo" not in sys.modules:
        return hook
    import torch

    disable = getattr(getattr(torch, "compiler", None), "disable", None)
    return hook if disable is None else disable(hook, recursive=True)


def _auto_analysis_thread(model: torch.nn.Module) -> str:
    """``"training"`` where a model on the CPU trains with as many threads as the process has
    cores (torch's default): a background thread would take its cycles from training's own and
    cost more than its CPU time; else ``"background"`` (a GPU, or cores to spare)."""
    import torch

    param = next(iter(model.parameters()), None)
    if param is not None and param.device.type != "cpu":
        return "background"
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return "training" if torch.get_num_threads() >= cores else "background"


def _wrappers(model: Any) -> Iterator[Any]:
    """``model``, then what each wrapper holds in turn: DistributedDataParallel / DataParallel keep
    the real model in ``.module``, torch.compile's OptimizedModule in ``._orig_mod``."""
    while model is not None:
        yield model
        kind = type(model).__name__
        if kind in ("DistributedDataParallel", "DataParallel"):
            model = getattr(model, "module", None)
        elif kind == "OptimizedModule":
            model = getattr(model, "_orig_mod", None)
        else:
            model = None


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside its wrappers (a compiled model's layers have their own names there, and
    its graph is built by running it as it is, not compiled once more)."""
    *_, inner = _wrappers(model)
    return inner


def _rank() -> tuple[int, int]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _run_name(model: torch.nn.Module) -> str:
    return time.strftime("%Y%m%d-%H%M%S-") + type(model).__name__.lower() + f"-{os.getpid()}"


def _views(record: str | Iterable[str] | None) -> set[str]:
    """The views ``record=`` names: one alone, several, or ``None`` for all of them."""
    if record is None:
        return set(VIEWS)
    if isinstance(record, str):  # (one view alone, not a list of letters)
        record = [record]
    elif not isinstance(record, Iterable) or isinstance(record, Mapping):
        raise DataError(f"record= is a view's name or a list of them (any of {', '.join(VIEWS)}), or None for every view; got {record!r}")
    views = list(record)
    unknown = [v for v in views if v not in VIEWS]
    if unknown:
        raise DataError(f"unknown views {unknown}{_did_you_mean(unknown[0], VIEWS)}; record= takes any of {', '.join(VIEWS)}")
    if not views:
        raise DataError(f"record= names no view, so nothing would be recorded; name some of {', '.join(VIEWS)}, or leave it out for all")
    return set(views)


def _schedule(every: int | Mapping[str, int] | None, record: set[str]) -> dict[str, int]:
    out = {v: n for v, n in VIEWS.items() if v in record}
    if _is_int(every):
        if every < 1:
            raise DataError(f"every= must be a positive number of steps, got {every}")
        n = int(every)
        out = {v: (n * 5 if v == "feature_maps" else n) for v in out}
    elif isinstance(every, Mapping):
        for view, n in every.items():
            if view not in VIEWS:
                raise DataError(f"unknown view {view!r} in every={_did_you_mean(view, VIEWS)}; views are {', '.join(VIEWS)}")
            if not _is_int(n) or n < 1:
                raise DataError(f"every[{view!r}] must be a positive number of steps, got {n!r}")
            if view in record:
                out[view] = int(n)
        left = [view for view in every if view not in record]
        if left:  # (a likely slip: it was ignored without a word)
            warnings.warn(
                f"convscope: every= sets {', '.join(left)}, which record= leaves out: not recorded; add them to record= to record them",
                RuntimeWarning,
                stacklevel=4,
            )
    elif every is not None:
        raise DataError(f"every= is a number of steps, or {{view: steps}} (e.g. {{'weights': 10, 'feature_maps': 50}}); got {every!r}")
    return out


def _prune_config(prune: PruneConfig | bool | Mapping[str, Any] | None) -> PruneConfig | None:
    if prune is None or prune is False:
        return None
    if prune is True:
        return PruneConfig()
    if isinstance(prune, PruneConfig):
        if isinstance(prune.layers, str):  # one layer's name
            prune.layers = (prune.layers,)
        return prune
    if not isinstance(prune, Mapping):
        raise DataError(f"prune= is True, a PruneConfig or a dict of its fields, or None; got {prune!r}")
    known = {f.name for f in fields(PruneConfig)}
    unknown = sorted(map(str, set(prune) - known))
    if unknown:
        hint = _did_you_mean(unknown[0], known)
        raise DataError(f"prune= has no fields {unknown}; PruneConfig's are {', '.join(sorted(known))}{hint}")
    config = PruneConfig(**dict(prune))
    if config.layers is not None:
        config.layers = tuple([config.layers] if isinstance(config.layers, str) else config.layers)
    return config


def _check_prune(config: PruneConfig) -> None:
    """A clear error for a pruning setting out of its range (said at ``watch()``, not at the first pruning)."""
    def share(name: str, value: Any, what: str) -> None:
        if not _is_number(value) or not 0 < value <= 1:
            raise DataError(f"prune {name}= is {what}, in (0, 1]; got {value!r}")

    share("threshold", config.threshold, "the correlation at or above which filters are redundant")
    share("max_fraction", config.max_fraction, "the most of a layer's original filters ever removed")
    for name, least in (("start", 0), ("every", 1), ("min_filters", 1), ("times", 0)):
        value = getattr(config, name)
        if not _is_int(value) or value < least:
            raise DataError(f"prune {name}= is an integer of {least} or more; got {value!r}")
    _check_choice("prune method=", config.method, _group_methods())


def watch(model: torch.nn.Module, *given: Any, **options: Any) -> Monitor:
    """Watch a model while it trains: at most three lines in an existing loop.

    One monitor watches a model at a time: watching a model that an open monitor watches
    already (a notebook cell run again, a loop restarted without ``close()``) closes that one
    first, its run finished with what it recorded, and a warning says so. A ``torch.compile``d
    model is passed as the compiled module, before its first step (the compiler does not see
    hooks added after it compiled a model).

    Every option is checked here, before training starts: a misspelt one is a ``TypeError``
    that names the option meant, a value of the wrong kind a :class:`~convscope.errors.DataError`
    that says what the option takes.

    Args:
        model: the ``torch.nn.Module`` being trained (DDP-wrapped is fine), or the ``LoadedModel``
            that :func:`convscope.load_model` gave.
        optimizer: followed automatically: every ``optimizer.step()`` is a step (and
            ``monitor.step()`` is not called). Default ``None``: call ``monitor.step()`` once per
            training step instead.
        layers: module names to watch (one name alone is one layer); default every conv layer.
        record: views to record (one alone, or several; default all of :data:`VIEWS`).
        every: steps between recordings, one number or ``{view: steps}``. One number is
            every view's but the feature-map images', which come at five times it (the
            largest frames: by default every 10 steps and every 50).
        probe: a fixed batch to compute feature-map views on, a ``torch.Tensor`` of the model's
            dtype and on its device (default ``None``: the training batch). It runs through the
            model once at ``watch()``, in eval mode, so that one the model cannot take is refused there.
        max_samples: the activation views (distribution, images, correlation) use at most
            this many samples of the training batch (default 8; ``None``: all), which bounds
            their cost: most of it is in proportion to the values, and 8 samples of a 26 x 26
            map give each filter 5408 values (1352 on the grid, see ``max_values``). Fewer
            samples read further from the whole batch: on LeNet-5, the correlations from 8
            were 0.026 to 0.030 from the whole batch's on average, from 16 0.018 to 0.020, from
            4 0.034 to 0.043 (benchmarks/bench_samples.py). A ``probe`` is used whole.
        max_values: the distribution and correlation views (and the dead-channel share of
            gradient health, which reuses the distribution's maxima) take each filter's values
            on a grid of every ``s``-th row and column of its maps, ``s`` the smallest stride
            that leaves at most this many values a filter (default 4096; ``None``: every value).
            Neighbouring values of a feature map move together, so a grid keeps the histogram's
            shape and the correlations at a fraction of the cost: LeNet-5's conv1 (8 samples of
            26 x 26) is read on a 13 x 13 grid, and its correlations move by about 0.01 on
            average (0.07 at most) over training, less than with 4 samples instead of 8. The
            benchmark's VGG-16-sized block (two layers of 64 filters, 224 x 224) is read on
            21 x 21, and its analysis took 10 ms a recording instead of 158 (benchmarks/
            bench_insitu.py's machine). The images use every value of sample 0. Only the grid
            is copied off the layer's output (and sample 0, on the steps the images are due),
            which keeps a big model's recordings small in memory too.
        logdir: where the run store writes (default ``"convscope-runs"``; ``None``: no store).
        run: the run's name (default: time, model class and process id).
        resume: (default ``False``) go on with the stored run named ``run`` (in ``logdir``) instead of starting
            ``run-2``: for training resumed from a checkpoint after its process ended (a
            crashed, finished, failed or interrupted run; a live one is refused). Its frames stay, new ones
            follow, and the steps count on from its last step unless ``start_step`` says
            otherwise. Where no such run exists, it is started. Filter groups keep their ids,
            gradient health goes on from the checks before, and the trajectory goes on with its
            path (kept in the run at ``close()`` and about once a minute while training runs: a
            killed process's last minute is not on it). After a ``start_step`` before the end of
            the run's path, the path starts again.
        start_step: the step the loop starts after (the checkpoint's), so that frames carry
            the training's own step numbers. Default 0, or with ``resume`` the run's last step.
            Frames the run holds beyond it (recorded after the checkpoint, before the process
            ended) are kept; the views show the new ones after them.
        sinks: extra sinks (CSV, VTK, TensorBoard, your own), or one alone (default: none).
        serve: ``True`` starts a local live server (127.0.0.1, port ``serve_port`` or a free
            one) and prints its URL; a URL (``"http://host:8765"``) sends to a running
            ``convscope serve`` instead. Default ``False``.
        serve_port: the port of ``serve=True``'s server (default 0: a free one).
        prune: online pruning of redundant filters (``True``, a dict or :class:`PruneConfig`;
            default ``None``: none).
        all_ranks: under ``torch.distributed``, record every rank (default ``False``: rank 0 only).
        input_shape: one input's shape, without the batch (e.g. ``(1, 28, 28)``), for the model
            graph and the pruning check (default ``None``: the first batch's). Needed where the
            model is called with keyword arguments only.
        image_size: the feature-map images are shrunk so that neither side exceeds this many
            pixels (default 64; ``None``: full size).
        image_normalisation: ``"per_map"`` (default: each map its own grey scale) or
            ``"shared"`` (one scale for all maps of the sample).
        bins: bins of the feature-map histograms (default 32).
        group_threshold: the correlation from which filters group (default 0.9).
        group_method: how filters are grouped: ``"union"`` (default, alias of ``"pairs"``) or
            ``"hierarchical"``.
        health_thresholds: a :class:`~convscope.analysis.HealthThresholds` with the limits of
            gradient health (default ``None``: its defaults).
        trajectory_dims: the three weights (flat indices into each layer's weights) that the
            trajectory's chosen axes follow (default ``None``: three drawn from ``seed``).
        seed: seeds the trajectory's random axes and sketch (default 0).
        config: a dict shown with the run (hyperparameters ...; default none).
        switch_interval: while watching, Python's thread switch interval is lowered to this
            (seconds; default 0.5 ms) so the background thread never holds the training
            thread up for long; ``None`` leaves it alone. Restored by ``close()``.
        gc_freeze: while watching, the objects alive at the start are left out of Python's
            garbage collections (default ``True``; ``gc.freeze()``; ``close()`` puts them back with
            ``gc.unfreeze()``, once the last monitor of the process closes). A full collection
            otherwise goes through all of them (about 300,000 with torch imported: 0.1 s on the
            training thread), and a monitor's frames make one come every few thousand steps.
            Garbage among those objects (a reference cycle let go of while watching) is then
            freed only after ``close()``. ``False`` leaves the collector alone; a process that
            has frozen objects itself is left alone either way.
        worker_nice: run the background thread this much lower than training (a Linux ``nice``
            increment for that thread alone; elsewhere ignored). Default 0: on a machine whose
            cores training keeps busy, a lowered thread gets little time, so fewer steps are
            recorded for about the same overhead (benchmarks/bench_insitu.py); on a machine with
            idle cores it makes no difference. 19 gives training every cycle it can use.
        batch_window: seconds the background thread waits for more recordings before it works
            through them together, view by view on warm caches (default 2; at most 16 MB of
            snapshots, or half of ``queue_size`` work items, are held back). That costs about
            40% less CPU per recording than one at a time on a small model, and under the
            budget makes a quarter to three quarters more recordings than 0.5 s; live views
            then trail training by up to about that long. 0 analyses each recording at once.
        queue_size: most work items (a LeNet-5 recording of every view is 9) waiting for the
            analysis or a sink; beyond it the oldest are dropped and counted in ``dropped``
            frames (default 1024; 512 MB of snapshots is the other bound, and as many bytes of
            analysed frames waiting for a slow sink, with ``analysis_thread="training"``).
        analysis_thread: where the recordings are analysed. ``"background"``: on the
            background thread, beside training. ``"training"``: on the training thread, a batch
            at a time after a step once ``batch_window`` has passed (``pause()`` and ``close()``
            finish what is gathered); the background thread then only writes the frames to the
            sinks, so a slow sink still never holds training up. ``"auto"`` (default) chooses
            ``"training"`` where a model on the CPU trains with as many torch threads as the
            process has cores (torch's default), else ``"background"``: a background thread
            that computes while training's threads fill every core takes their cycles and
            slows the steps by more than its own CPU time (about 1.2x on LeNet-5 with two
            cores), where on the training thread the same work costs its own time, shared by
            torch's threads. With a GPU, or cores to spare, the background thread costs
            training next to nothing.
        budget: the overhead budget, what convscope may add to training's time as a share of
            it (default 0.03: 100 s of training take at most about 103 s watched), as measured
            while training runs. The hooks (and the analysis) on the
            training thread count their own time. The background thread's CPU counts by how much it slows the
            steps: each step's duration is fitted against that CPU during the step. The slope
            is about 0 where the thread has a core to itself, and 1 or more where training's
            threads fill the cores; it counts as 1 until the steps show otherwise. A recording
            step and the two after it (or after an analysis on the training thread) count
            what they take beyond the other steps, measured in the same fit: torch's hook
            machinery and caches the work evicted, which no timer sees. Recording
            steps are also skipped while the background thread still has two earlier
            recordings to finish. Skipped steps are skipped whole and counted in
            ``stats.deferred`` and in ``dropped`` frames with ``sink="budget"``, so the views
            come less often than ``every=`` asks on a busy CPU. ``None`` records exactly
            every ``every`` steps, whatever it costs. What was measured is in
            ``stats.slowdown_factor``, ``stats.touched_step_seconds`` and
            ``stats.overhead_estimate`` after ``close()``.

    Example:
        >>> import torch, convscope
        >>> net = convscope.models.create_model("lenet5-simplified")
        >>> opt = torch.optim.SGD(net.parameters(), lr=0.01)
        >>> with convscope.watch(net, optimizer=opt, logdir=None) as mon:
        ...     for _ in range(3):
        ...         loss = net(torch.randn(8, 1, 28, 28)).square().mean()
        ...         opt.zero_grad(); loss.backward(); opt.step()
        ...         mon.log(loss=loss)
        >>> mon.step_count
        3
    """
    if given:  # (watch(model, opt) said "takes 1 positional argument but 2 were given")
        what = "an optimizer" if hasattr(given[0], "param_groups") else f"a {type(given[0]).__name__}"
        raise TypeError(
            f"watch() takes the model alone by position, and {what} was passed after it; its options go by name: "
            "watch(model, optimizer=opt, ...)"
        )
    check_options(options)
    return Monitor(model, **options).start()

"""What the monitor does for one watched layer on a recording step.

Split in two on purpose. On the training thread, :func:`layer_items` only *snapshots* what the
next optimizer step would change (weights, gradients, the activations of this batch): device
copies that launch asynchronously on a GPU. Everything else (correlation, groups, histograms,
images, trajectories, gradient health) runs in the returned work items on the monitor's
background thread, still on the model's device, and only the small results cross to the host
when a work item turns them into frames. The items of one layer run in order, so stateful
trackers (trajectory PCA, stable group ids, gradient-health patience) see every update in turn.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from convscope.insitu._pipeline import GroupItem

if TYPE_CHECKING:
    import torch

    from convscope.analysis import TrajectoryPoint, TrajectoryTracker
    from convscope.analysis.correlation import CorrelationResult
    from convscope.frames import Frame
    from convscope.insitu._monitor import Activations, Monitor, _LayerState

__all__ = ["layer_items"]

#: a work item, the bytes of tensor snapshots it holds, and its key: the pipeline runs a batch of
#: recordings view by view (items of one key in submission order), each view on warm caches
Item = tuple[Callable[[], list["Frame"]], int, int]
#: the trajectory's principal axes are computed again every this many recordings, at least,
#: and every eighth of the path's length (its updates, of which the tracker keeps at most 128
#: evenly spread): new points are put on the last axes in between, so the part of the path
#: they place is at most about a ninth of it. The eigen-solver and the placing around it are
#: the largest cost of a trajectory update, and the axes of a long path barely move over an
#: eighth more of it. Measured on 14 LeNet-5 recordings at a time (caches evicted first): 164
#: and 203 us per update for conv1 and conv2 at every eighth of the points kept (16 at most),
#: 94 and 143 at every 64.
_TRAJECTORY_REFRESH = 4
#: (the activation views before the gradients, whose dead-channel share reuses the distribution's maxima)
_KEYS = {view: i + 1 for i, view in enumerate(("weights", "trajectory", "distribution", "correlation", "feature_maps", "gradients"))}
#: after every view's items of a batch (the monitor keeps the trajectory trackers in the run then)
LAST_KEY = len(_KEYS) + 1


def layer_items(monitor: Monitor, state: _LayerState, step: int, acts: Activations | None, due: set[str]) -> list[Item]:
    """Snapshot this layer's tensors for ``step`` and return the work items that analyse the
    views ``due`` then."""
    if state.skip:
        due = due - state.skip
    if "gradients" in due and not state.param.requires_grad:
        # a frozen layer (fine-tuning a head, say) has no gradient by choice: judged, it read
        # "stalled: units dead" at every check
        due = due - {"gradients"}
        state.prev_weight = None
    items: list[Item] = []
    w = None
    if due & {"weights", "trajectory", "gradients"}:
        w = state.weight()
        if "weights" in due:
            items.append((GroupItem(("weights", state.name), functools.partial(_weight_frames, monitor, state), (step, w)), 0, _KEYS["weights"]))
    if "trajectory" in due:
        items.append((GroupItem(("trajectory", state.name), functools.partial(_trajectory_frames, monitor, state), (step, w)), 0, _KEYS["trajectory"]))
    size = 0 if w is None else w.numel() * w.element_size() * 2
    shared: dict[str, torch.Tensor] = {}  # what one item of this recording hands to a later one
    stats = None if acts is None else acts.grid  # what the histograms and correlations read
    if stats is not None and due & {"distribution", "correlation"}:
        size += stats.numel() * stats.element_size()
        if {"distribution", "correlation"} <= due:  # one item: they share their passes over the maps
            run = functools.partial(_activation_frames, monitor, state)
            items.append((GroupItem(("activations", state.name), run, (step, stats, shared)), 0, _KEYS["distribution"]))
        elif "distribution" in due:
            items.append((lambda: [_distribution_frame(monitor, state, step, stats)], 0, _KEYS["distribution"]))
        else:
            from convscope.analysis import feature_correlation

            items.append((lambda: _correlation_frames(monitor, state, step, feature_correlation(stats)), 0, _KEYS["correlation"]))
    image = None if acts is None else acts.image
    if image is not None and "feature_maps" in due:
        size += image.numel() * image.element_size()
        items.append((lambda: [_images_frame(monitor, state, step, image)], 0, _KEYS["feature_maps"]))
    if "gradients" in due:
        grad = state.grad(step)
        prev = state.prev_weight
        state.prev_weight = None
        check = {"step": step, "grad": grad, "weight": w, "previous_weight": prev, "lr": _lr(monitor, state.param), "activations": stats}
        run = functools.partial(_health_frames, monitor, state)
        items.append((GroupItem(("gradients", state.name), run, (check, shared)), 0, _KEYS["gradients"]))
    if items:  # the first item carries the memory the snapshots hold
        items[0] = (items[0][0], size, items[0][2])
    return items


# --- the work items (background thread) -------------------------------------------------------


def _weight_frames(monitor: Monitor, state: _LayerState, args: list[tuple[int, torch.Tensor]]) -> list[list[Frame]]:
    """Weight grids of a layer's recordings, their largest weights found in one pass (a recording
    refused, NaN weights say, raises: the pipeline then runs each alone)."""
    from convscope.analysis import weight_grids

    grids = weight_grids([w for _, w in args])
    return [[monitor._frame(step, state.name, "weight_grid", grid.to_payload())] for (step, _), grid in zip(args, grids, strict=True)]


def _trajectory_frames(
    monitor: Monitor, state: _LayerState, args: list[tuple[int, torch.Tensor]]
) -> list[list[Frame] | Exception]:
    """Trajectory points of a layer's recordings, each with the whole kept path on the axes of its
    update (the tracker takes the weights of one shape together: one product for all of them).
    Never raises: the tracker has state, so a recording it refuses (NaN weights) gets its error
    in its place and the others go on, each added once."""
    from convscope.analysis import TrajectoryTracker

    out: list[list[Frame] | Exception] = []
    i = 0
    while i < len(args):
        shape = tuple(args[i][1].shape)
        j = i + 1
        while j < len(args) and tuple(args[j][1].shape) == shape:
            j += 1
        if state.trajectory is None or state.trajectory_shape != shape:
            # a new tracker after pruning changed the layer's shape; the path starts again
            state.trajectory = TrajectoryTracker(dims=monitor.trajectory_dims, seed=monitor.seed, refresh=_TRAJECTORY_REFRESH)
            state.trajectory_shape = shape
            state.trajectory_steps = {}
        tracker = state.trajectory
        # (the axes are refreshed every max(4, updates / 8) updates, fixed for one batch; one
        # that falls due in a batch is made at its last update, the one a live view shows)
        tracker.refresh = max(_TRAJECTORY_REFRESH, tracker.updates // 8)
        steps = iter([step for step, _ in args[i:j]])

        def frame(
            point: TrajectoryPoint, steps: Iterator[int] = steps, tracker: TrajectoryTracker = tracker, shape: tuple[int, ...] = shape
        ) -> None:
            step = next(steps)
            payload = point.to_payload()
            known = state.trajectory_steps
            known[point.step] = step  # (the tracker counts its updates: point.step is this one's)
            # the whole kept path on the current principal axes, so a view can redraw it
            # consistently; while the path stays as it was (a point only placed on the axes: most
            # of them, once the tracker keeps every few), its arrays are the last frame's, shared
            # (frames are not changed once made)
            last = state.trajectory_path
            if last is not None and last[0] is tracker and last[1] == tracker.path_version:
                kept, path_steps, coords = last[2], last[3], last[4]
            else:
                ordinals, coords = tracker.path()
                kept = ordinals.tolist()
                if last is not None and last[0] is tracker and len(kept) == len(last[2]) + 1 and kept[:-1] == last[2]:
                    path_steps = np.append(last[3], known[kept[-1]])  # (one point kept: most changes)
                else:
                    path_steps = np.asarray([known[k] for k in kept], dtype=np.int64)
                state.trajectory_path = (tracker, tracker.path_version, kept, path_steps, coords)
            payload["path_steps"] = path_steps
            if len(known) > 2 * tracker.max_points:  # only the kept points' steps are asked for again (and
                # the last one's, which a resumed run's path goes on from)
                state.trajectory_steps = {k: known[k] for k in (*kept, point.step)}
            payload["pca_path"] = coords
            payload["shape"] = list(shape)
            out.append([monitor._frame(step, state.name, "trajectory", payload)])

        try:  # all of them checked before any is added
            tracker.update_many([w for _, w in args[i:j]], each=frame, defer=True)
        except Exception:  # noqa: BLE001  (one by one: only the one that fails alone is lost)
            for _, w in args[i:j]:
                try:
                    tracker.update_many([w], each=frame)
                except Exception as exc:  # noqa: BLE001
                    next(steps)
                    out.append(exc)
        i = j
    return out


def _health_frames(monitor: Monitor, state: _LayerState, args: list[tuple[dict[str, Any], dict[str, torch.Tensor]]]) -> list[list[Frame]]:
    """Gradient health of a layer's recordings, measured together; the dead-channel share from
    the distribution's per-filter maxima where that item has run (no second pass over the maps)."""
    from convscope.analysis import GradientHealthTracker

    if state.health is None:
        state.health = GradientHealthTracker(thresholds=monitor.health_thresholds)
    checks = []
    for check, shared in args:  # (previous weights of another shape, after pruning: the tracker drops them)
        if "channel_max" in shared and check["activations"] is not None:
            check = {**check, "channel_max": shared["channel_max"], "activations": None}
        checks.append(check)
    results = state.health.update_many(state.name, checks)
    return [[monitor._frame(check["step"], state.name, "gradient_health", h.to_payload())] for check, h in zip(checks, results, strict=True)]


def _distribution_frame(monitor: Monitor, state: _LayerState, step: int, a: torch.Tensor) -> Frame:
    from convscope.analysis import feature_distribution

    return monitor._frame(step, state.name, "distribution", feature_distribution(a, bins=monitor.bins).to_payload())


def _images_frame(monitor: Monitor, state: _LayerState, step: int, a: torch.Tensor) -> Frame:
    from convscope.analysis import feature_images

    images = feature_images(a, sample=0, normalisation=monitor.image_normalisation, max_size=monitor.image_size)
    return monitor._frame(step, state.name, "feature_maps", images.to_payload())


def _activation_frames(monitor: Monitor, state: _LayerState, args: list[tuple[int, torch.Tensor, dict[str, torch.Tensor]]]) -> list[list[Frame]]:
    """Distribution, correlation and groups of a layer's recordings, the analysis over all of
    them at once (stacked: one operation each, however many recordings)."""
    from convscope.analysis import feature_distributions_and_correlations

    results = feature_distributions_and_correlations([a for _, a, _ in args], bins=monitor.bins)
    out = []
    for (step, _, shared), (dist, corr) in zip(args, results, strict=True):
        shared["channel_max"] = dist.max
        out.append([monitor._frame(step, state.name, "distribution", dist.to_payload()), *_correlation_frames(monitor, state, step, corr)])
    return out


def _correlation_frames(monitor: Monitor, state: _LayerState, step: int, corr: CorrelationResult) -> list[Frame]:
    """The correlation frame and the filter groups found in it (stable ids across recordings)."""
    from convscope.analysis import filter_groups

    previous = state.groups
    if previous is not None and len(previous.labels) != corr.filters:
        previous = None  # the layer was pruned: ids start again
    groups = filter_groups(corr, threshold=monitor.group_threshold, method=monitor.group_method, previous=previous)
    state.correlation = corr
    state.groups = groups
    return [
        monitor._frame(step, state.name, "correlation", corr.to_payload()),
        monitor._frame(step, state.name, "groups", groups.to_payload()),
    ]


# --- helpers ----------------------------------------------------------------------------------


def on_grid(acts: torch.Tensor, max_values: int | None) -> torch.Tensor:
    """``acts`` (``N x F x ...``) on a grid of every ``s``-th position along each spatial
    dimension (a view), ``s`` the smallest stride leaving at most ``max_values`` values a filter
    (a grid of such a grid is itself: its stride is 1)."""
    s = 1 if max_values is None or acts.dim() < 3 else _grid_stride(tuple(acts.shape), max_values)
    return acts if s == 1 else acts[(slice(None), slice(None), *(slice(None, None, s) for _ in acts.shape[2:]))]


@functools.lru_cache(maxsize=64)
def _grid_stride(shape: tuple[int, ...], max_values: int) -> int:
    n, spatial = shape[0], shape[2:]
    s = 1
    while n * math.prod(-(-d // s) for d in spatial) > max_values and s < max(spatial):
        s += 1
    return s


def _lr(monitor: Monitor, weight: torch.Tensor) -> float | None:
    if monitor.optimizer is None:
        return None
    for group in monitor.optimizer.param_groups:
        if any(p is weight for p in group["params"]):
            return float(group.get("lr", 0.0))
    return None


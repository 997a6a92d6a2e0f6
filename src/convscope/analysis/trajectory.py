"""Weight trajectories: where a layer's weights travel while it trains.

Two views of one trajectory, updated each time the tracker sees the weights:

* **chosen dimensions** (TensorView) - three coordinates of the flattened weight tensor,
  picked by the user or at random from a seed; exact;
* **principal components** - the current weights projected on the first three principal
  components of the trajectory so far (centred on its mean), the view that shows the path
  best; approximate in two documented ways, so that memory and time stay bounded.

**Bounded memory.** The tracker keeps at most ``max_points`` past points and their Gram
matrix (inner products), never the whole history:

* *thinning* - every point is kept until the buffer is full; then every other kept point
  is dropped and from then on only every 2nd (later 4th, 8th ...) update is kept. The kept
  points are evenly spaced over the whole run, so their PCA is the PCA of a uniform
  subsample of the path (on a curving test path of 300 updates, the explained-variance
  ratios of 38 kept points are within 0.01 of the whole path's; of 10 points, 0.13).
  The current point always takes part.
* *sketching* - a layer with more than ``sketch_dim`` weights is compressed to
  ``sketch_dim`` numbers by a count sketch: weight ``i`` is added, multiplied by a random
  sign, to bucket ``i mod sketch_dim``. The signs repeat with a prime period (65521) that
  shares no factor with the bucket count, so two weights that share a bucket get
  independent signs; the sketch is linear and keeps inner products in expectation (a
  Johnson-Lindenstrauss-type projection). Distances, and so the PCA, are then approximate,
  to a relative error of about ``1/sqrt(sketch_dim)`` (1.6 % at the default 4096;
  ``tests/analysis`` measures it against numpy's exact SVD).

So the tracker holds ``max_points * min(numel, sketch_dim)`` float64 values (4 MiB at the
defaults) on the weights' device, a ``max_points``-square Gram matrix on the host, and for
a sketched layer a 4 MiB table of signs. Points are stored relative to the first one, so
the inner products keep their digits even when the weights move little compared to their
size (the usual case: 1e-4 .. 1e-2 of their norm per step).

**Cost per update.** One pass over the weights (copy or sketch), ``max_points`` inner
products of length ``min(numel, sketch_dim)``, and the three leading eigenpairs of the
centred ``max_points``-square Gram matrix on the host (about 0.35 ms at 128 points with SciPy). The
principal coordinates come from that decomposition (``U * sqrt(lambda)``), so no
``points x weights`` product is ever formed.

**Fixed axes between refreshes.** With ``refresh=R`` > 1 the decomposition runs only every
``R`` updates (and right after thinning). In between, each new point is placed on the axes
of the last decomposition from its inner products with the points that decomposition saw
(``(b_i - m) . (x - m)`` needs only ``b_i . x``, the Gram row means and ``|m|^2``), which
costs one pass over the kept points and no eigen-solver. A point that is not kept either
(once thinning has begun, most of them) needs even less: the axes, written once per
decomposition as vectors of the (sketched) weights, give its coordinates from four inner
products, so it never reads the kept points; its ``explained_variance`` is the
last decomposition's. The axes then lag the trajectory by at most ``R - 1`` updates, and the
projected path does not move between refreshes. The in situ monitor uses ``R = 4`` (more
on a long path) and :meth:`~TrajectoryTracker.update_many`'s ``defer``: a decomposition due
in a batch of recordings is made at its last update, the one a live view shows.

**Undefined and signed components.** A component is defined only once the trajectory
spreads in that many directions, so ``pca[k]`` and ``explained_variance[k]`` are NaN until
then (with one point, all three; with two, the 2nd and 3rd). Principal axes have no
natural sign: a new axis is oriented so that the current point lies on its positive side,
and after that each axis is flipped, if needed, to agree with the previous update's
coordinates of the points both updates share, so the projected path does not jump.
``explained_variance`` is the *ratio* of the trajectory's variance that each component
explains (as sklearn's ``explained_variance_ratio_``).

Example:
    >>> import torch
    >>> t = TrajectoryTracker(dims=[0, 1, 2])
    >>> for step in range(4):
    ...     p = t.update(torch.arange(6.0) * step)
    >>> p.dims.tolist(), round(float(p.explained_variance[0]), 6)
    ([0.0, 3.0, 6.0], 1.0)
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch

from convscope.analysis._tensors import accumulator
from convscope.errors import DataError

__all__ = ["TrajectoryPoint", "TrajectoryTracker", "warm_up"]

# Sign period of the sketch: a prime, so it shares no factor with any bucket count below it
# (and with all but its own multiples above it).
_SIGN_PERIOD = 65521
_SIGN_PERIOD_ALT = 65519
_SIGN_REPEATS = 8  # signs are tiled this many periods: chunks of ~524k weights per step


@dataclass(frozen=True)
class TrajectoryPoint:
    """Where the weights are at one update.

    Attributes:
        step: how many updates came before this one.
        dims: ``float32[3]``: the three chosen weights.
        dim_index: ``int64[3]``: their indices in the flattened weight tensor.
        pca: ``float32[3]``: projection on the first three principal components of the
            trajectory so far (NaN where a component is not defined yet).
        explained_variance: ``float32[3]``: share of the trajectory's variance each
            component explains (NaN where not defined).
    """

    step: int
    dims: np.ndarray
    dim_index: np.ndarray
    pca: np.ndarray
    explained_variance: np.ndarray

    def to_payload(self) -> dict[str, Any]:
        """The ``trajectory`` frame payload: ``dims f32[3], dim_index i64[3], pca f32[3], explained_variance f32[3]``."""
        return {
            "dims": self.dims.astype(np.float32),
            "dim_index": self.dim_index.astype(np.int64),
            "pca": self.pca.astype(np.float32),
            "explained_variance": self.explained_variance.astype(np.float32),
        }


class TrajectoryTracker:
    """Follow one weight tensor over training: three chosen coordinates and a running PCA.

    Args:
        dims: three indices into the flattened weights (ints, or index tuples such as
            ``(filter, channel, row, col)``), or ``None`` for three distinct random ones
            drawn from ``seed`` when the first weights arrive.
        seed: seeds the random dimensions and the sketch's signs.
        max_points: most past points kept for the PCA (>= 4); the decomposition grows with
            its cube (at 128 points about 0.35 ms with SciPy, 0.95 ms with torch's solver).
        sketch_dim: layers with more weights than this are count-sketched to this many
            dimensions before the PCA (see the module docstring).
        refresh: recompute the principal axes every ``refresh`` updates (and whenever
            thinning changes the kept points); in between, each point is put on the last axes
            in O(points), without a decomposition (see "Fixed axes between refreshes" in the
            module docstring). 1, the default, decomposes at every update.

    Example:
        >>> import torch
        >>> net = torch.nn.Linear(10, 4)
        >>> tracker = TrajectoryTracker(seed=1)
        >>> point = tracker.update(net.weight)
        >>> point.dim_index.shape, bool(np.isnan(point.pca).all())
        ((3,), True)
    """

    def __init__(
        self,
        *,
        dims: Sequence[int | Sequence[int]] | None = None,
        seed: int = 0,
        max_points: int = 128,
        sketch_dim: int = 4096,
        refresh: int = 1,
    ) -> None:
        if isinstance(max_points, bool) or not isinstance(max_points, int) or max_points < 4:
            raise DataError(f"max_points must be an integer of at least 4 to define three components, got {max_points!r}")
        if isinstance(sketch_dim, bool) or not isinstance(sketch_dim, int) or sketch_dim < 3:
            raise DataError(f"sketch_dim must be an integer of at least 3, got {sketch_dim!r}")
        if isinstance(refresh, bool) or not isinstance(refresh, int) or refresh < 1:
            raise DataError(f"refresh must be a positive integer (updates between decompositions), got {refresh!r}")
        if dims is not None and len(dims) != 3:
            raise DataError(f"dims must name exactly 3 weights, got {len(dims)}: {list(dims)!r}; or pass dims=None")
        self._requested = None if dims is None else list(dims)
        self.seed = int(seed)
        self.max_points = max_points
        self.sketch_dim = sketch_dim
        self.refresh = refresh
        self._path_version = 0  # counts the changes of the path, resets included (see path_version)
        self.reset()

    def reset(self) -> None:
        """Forget the trajectory (for example after the layer was pruned); dims are re-validated."""
        self._shape: tuple[int, ...] | None = None
        self._index: torch.Tensor | None = None
        self._anchor: torch.Tensor | None = None
        self._points: torch.Tensor | None = None  # max_points x d, relative to the anchor
        self._gram = np.zeros((self.max_points, self.max_points))
        self._steps: list[int] = []
        self._stride = 1
        self._count = 0
        self._signs: torch.Tensor | None = None
        self._coords = np.zeros((0, 3), dtype=np.float64)  # kept points on the last axes
        self._coord_steps: list[int] = []
        self._axes: _Axes | None = None  # the last decomposition (see refresh)
        self._since = 0  # updates since it
        self._path: tuple[np.ndarray, np.ndarray] | None = None  # path(), until the path changes
        self._path_version += 1
        self._index_host = np.zeros(0, dtype=np.int64)  # _index on the host

    @property
    def dim_index(self) -> np.ndarray | None:
        """The three flat indices followed (``None`` before the first update)."""
        return None if self._index is None else self._index.cpu().numpy()

    @property
    def sketched(self) -> bool:
        """Whether the PCA runs on a count sketch rather than on the weights themselves."""
        return self._shape is not None and math.prod(self._shape) > self.sketch_dim

    @property
    def updates(self) -> int:
        """How many updates the tracker has seen: the path's length, of which it keeps :attr:`kept`."""
        return self._count

    @property
    def kept(self) -> int:
        """How many past points the tracker holds now (at most ``max_points - 1`` after an update)."""
        return len(self._steps)

    def update(self, weights: torch.Tensor) -> TrajectoryPoint:
        """Add the current weights to the trajectory and say where they are.

        Args:
            weights: the layer's weight tensor (any shape; the same every call).

        Returns:
            A :class:`TrajectoryPoint` (three small host arrays).
        """
        flat = self._flat(weights)
        embedded = self._embed(flat)
        anchor = self._anchor
        first = anchor is None
        v = embedded - (embedded if anchor is None else anchor)
        axes = self._axes
        # neither kept nor a new decomposition: four inner products put the point on the last
        # axes, where the path's inner products would read every kept point
        quick = self._on_last_axes(0, 0) is False
        dots = self._axis_dots(axes, v) if quick else self._dots(v, len(self._steps))  # type: ignore[arg-type]
        self._check_finite(dots[-1:], flat, embedded if first else None)
        if first:
            self._begin(embedded)
        dims = self._dims(flat)
        if quick:
            step = self._count
            self._count += 1
            self._since += 1
            pca, ratio = self._from_axis_dots(axes, dots)  # type: ignore[arg-type]
            return TrajectoryPoint(step=step, dims=dims, dim_index=self._index_host.copy(), pca=pca, explained_variance=ratio)
        return self._advance(v, dims, dots, lambda n: self._dots(v, n), None)

    def update_many(
        self, weights: Sequence[torch.Tensor], *, each: Callable[[TrajectoryPoint], object] | None = None, defer: bool = False
    ) -> list[TrajectoryPoint]:
        """:meth:`update` with several weights in turn (the in situ monitor's recordings of one
        batch), the same points (up to float rounding) for less work: one product of the kept
        points and the new ones with the new ones gives every inner product the updates need,
        so each update is host arithmetic. All the weights are checked before any is added: a
        NaN in one raises and leaves the trajectory as it was. ``each(point)`` is called after
        each update, with :meth:`path` and :attr:`path_version` as :meth:`update` would leave
        them (the rest of the tracker may be further on: runs of points on the same axes are
        added together).

        ``defer=True``: a decomposition that falls due inside the batch (``refresh``) is made at
        its last update instead, the updates before it placed on the last axes: at most one a
        batch (and one after thinning, or while the axes have fewer than three components), and
        the batch's last point, which a live view shows, is always on fresh axes. The in situ
        monitor works this way.
        """
        weights = list(weights)
        if len(weights) < 2:  # alone, the four-inner-product path of update() reads less
            points = [self.update(w) for w in weights]
            if points and each is not None:
                each(points[0])
            return points
        flat = torch.stack([self._flat(w) for w in weights])
        embedded = self._embed(flat)
        first = self._anchor is None
        anchor = embedded[0].clone() if first else self._anchor
        assert anchor is not None
        v = embedded - anchor
        n = len(self._steps)
        axes = self._axes
        known = [cast(torch.Tensor, self._points)[:n]] if n else []  # (points kept: _begin made their room)
        extra_row = None  # the last decomposition's extra point, a row of the products too
        if axes is not None and axes.extra is not None:
            extra_row = n
            known.append(axes.extra.unsqueeze(0))
        # (kept [+ extra] + R) x R inner products; each block its own product: a cat of the kept
        # points would copy all of them (4 MiB at the defaults) for nothing
        host = torch.cat([block @ v.T for block in (*known, v)]).to("cpu", torch.float64).numpy()
        vv = host[len(host) - len(weights) :]
        self._check_finite(np.diagonal(vv), flat, anchor if first else None)
        if first:
            self._begin(anchor)
        dims = self._dims(flat)
        start = self._count
        old_steps = np.asarray(self._steps, dtype=np.int64)

        def kept_dots(i: int, count: int, kept: int | None = None) -> np.ndarray:
            """Points ``i .. i + count - 1`` against the first ``kept`` points kept now (all of them
            by default): ``kept x count``, from the products."""
            steps = np.asarray(self._steps[:kept], dtype=np.int64)
            out = np.empty((len(steps), count))
            new = steps >= start  # kept in this batch, or before it (rows of the product)
            out[new] = vv[steps[new] - start, i : i + count]
            out[~new] = host[np.searchsorted(old_steps, steps[~new]), i : i + count]
            return out

        def dots(i: int) -> np.ndarray:  # point i against the points kept now, then itself
            return np.append(kept_dots(i, 1)[:, 0], vv[i, i])

        def extra_dot(i: int) -> float | None:
            ax = self._axes
            if ax is None or ax.extra is None:
                return None
            if ax.extra_step is not None and ax.extra_step >= start:
                return float(vv[ax.extra_step - start, i])
            if extra_row is not None:
                return float(host[extra_row, i])
            return ax.extra_dot(v[i])

        def on_axes(i: int, count: int, kept: list[int]) -> None:
            """Updates ``i .. i + count - 1`` on the last axes, those at ``kept`` (batch positions)
            kept as well, none of them thinning or due a decomposition: the inner products with
            the axes' points as one product, the kept ones' Gram rows and points in one copy each,
            and each point's path a prefix of the block's (what :meth:`_advance` and
            :meth:`_on_axes` would do one point at a time, in the first ``max_points`` updates
            for every point)."""
            ax = self._axes
            assert ax is not None and self._points is not None
            n = len(self._steps)
            self._steps.extend(self._count + j - i for j in kept)
            g = kept_dots(i, count)  # (kept now, the block's among them) x count
            d = g[: ax.kept].T
            if ax.extra is not None:
                d = np.column_stack([d, [extra_dot(j) for j in range(i, i + count)]])
            coords = ax.coords(d)
            pcas = coords.astype(np.float32)
            paths: tuple[np.ndarray, np.ndarray] | None = None
            if kept:
                cols = [j - i for j in kept]
                end = n + len(kept)
                self._gram[n:end, :end] = g[:, cols].T
                self._gram[:end, n:end] = g[:, cols]
                self._points[n:end] = v[kept[0] : kept[-1] + 1 : self._stride]  # (every stride-th)
                self._coords = np.vstack([self._coords, coords[cols]])
                self._coord_steps = [*self._coord_steps, *self._steps[n:]]
                self._path = None
                paths = self.path()
                self._path = (paths[0][:n], paths[1][:n])  # (until the block's first kept one)
            ordinal = self._count
            self._count += count
            self._since += count
            version = self._path_version
            at = n
            for j in range(i, i + count):
                if paths is not None and at < len(self._steps) and self._steps[at] == ordinal + j - i:
                    at += 1  # a kept one: the path as it stood after this update, a prefix of the block's
                    version += 1
                    self._path, self._path_version = (paths[0][:at], paths[1][:at]), version
                points.append(
                    TrajectoryPoint(step=ordinal + j - i, dims=dims[j], dim_index=self._index_host.copy(), pca=pcas[j - i].copy(), explained_variance=ax.ratio.copy())
                )
                if each is not None:
                    each(points[-1])
            if paths is not None:
                self._path, self._path_version = paths, version

        points = []
        last = len(weights) - 1
        i = 0
        while i < len(weights):
            count = 0  # the updates from i on that go on the last axes: none thins or is due a decomposition
            kept: list[int] = []  # of which those kept (batch positions)
            while i + count < len(weights):
                fate = self._on_last_axes(count, len(kept), hold=defer and i + count < last)
                if fate is None:
                    break
                if fate:
                    kept.append(i + count)
                count += 1
            if count:
                on_axes(i, count, kept)
                i += count
                continue
            points.append(self._advance(v[i], dims[i], dots(i), lambda _n, i=i: dots(i), extra_dot(i), hold=defer and i < last))
            if each is not None:
                each(points[-1])
            i += 1
        return points

    def _on_last_axes(self, ahead: int, kept: int, *, hold: bool = False) -> bool | None:
        """For the update ``ahead`` updates from now (those in between on the last axes, ``kept``
        of them kept): ``None`` if it thins the kept points or is due a decomposition (``hold``: a
        decomposition waits), else whether it is kept."""
        if self._axes is None or not (self._holding(hold) or self._since + ahead + 1 < self.refresh):
            return None
        if (self._count + ahead) % self._stride:
            return False
        return None if len(self._steps) + kept + 1 >= self.max_points else True

    def _holding(self, hold: bool) -> bool:
        """Whether a due decomposition may wait (``hold``): only on axes with all three components
        (an early path's first axes, from two or three points, are replaced at once)."""
        return hold and self._axes is not None and self._axes.weights.shape[1] == 3

    def _flat(self, weights: torch.Tensor) -> torch.Tensor:
        """The weights flattened, checked against the trajectory's shape (which the first sets)."""
        if not isinstance(weights, torch.Tensor):
            raise DataError(f"weights must be a torch.Tensor, got {type(weights).__name__}")
        w = weights.detach()
        shape = tuple(w.shape)
        if self._shape is None:
            self._start(shape, w.device)
        elif shape != self._shape:
            raise DataError(
                f"weights changed shape from {self._shape} to {shape} (pruned?); call reset() to start a new trajectory"
            )
        return w.reshape(-1)

    def _check_finite(self, norms: np.ndarray, flat: torch.Tensor, embedded: torch.Tensor | None) -> None:
        """NaN or Inf anywhere makes |v|^2 and |embedded|^2 (the first time) non-finite; so do
        weights beyond 1e150, which no PCA in float64 survives either."""
        if np.isfinite(norms).all() and (embedded is None or math.isfinite(float(embedded @ embedded))):
            return
        bad = not bool(torch.isfinite(flat).all())
        raise DataError(
            "weights contain NaN or Inf; training has diverged - see the layer's gradient health"
            if bad else "weights are too large (beyond 1e150) to follow"
        )

    def _begin(self, embedded: torch.Tensor) -> None:
        self._anchor = embedded
        self._points = torch.empty(self.max_points, embedded.numel(), dtype=embedded.dtype, device=embedded.device)

    def _dims(self, flat: torch.Tensor) -> np.ndarray:
        """The three followed weights (of each row of ``flat``), float32 on the host."""
        if flat.device.type == "cpu" and flat.dtype in (torch.float32, torch.float64):
            return flat.numpy()[..., self._index_host].astype(np.float32)  # (a tensor index costs ~25 us)
        assert self._index is not None
        return flat[..., self._index.to(flat.device)].to(torch.float32).cpu().numpy()

    def _advance(
        self,
        v: torch.Tensor,
        dims: np.ndarray,
        dots: np.ndarray,
        dots_again: Callable[..., np.ndarray],  # (takes n; ``...`` as mypy cannot type update_many's lambda)
        extra_dot: float | None,
        *,
        hold: bool = False,
    ) -> TrajectoryPoint:
        """Add point ``v`` (inner products ``dots`` with the kept points and itself), keeping it and
        thinning as the stride says, and place it: on new axes when a decomposition is due, else
        on the last ones. ``dots_again(n)`` gives its inner products with the points kept after
        thinning; ``extra_dot`` its inner product with the last decomposition's extra point.
        ``hold``: no decomposition for being due (only where there are no axes, or after thinning)."""
        assert self._points is not None
        step = self._count
        self._count += 1
        n = len(self._steps)
        thinned = False
        if step % self._stride == 0:
            self._path = None
            self._path_version += 1
            self._points[n] = v
            self._gram[n, :n] = dots[:n]
            self._gram[:n, n] = dots[:n]
            self._gram[n, n] = dots[n]
            self._steps.append(step)
            if n + 1 >= self.max_points:
                self._thin()
                thinned = True
        n = len(self._steps)
        kept = bool(self._steps) and self._steps[-1] == step
        current = n - 1 if kept else n
        if thinned and not kept:  # thinning dropped the new point and half the others
            dots = dots_again(n)
        self._since += 1
        if self._axes is None or thinned or (self._since >= self.refresh and not self._holding(hold)):
            if kept:
                gram = self._gram[:n, :n]
            else:
                gram = np.empty((n + 1, n + 1))
                gram[:n, :n] = self._gram[:n, :n]
                gram[n, :] = dots
                gram[:, n] = dots
            pca, ratio = self._project(gram, current, step, v)
            self._path = None
            self._path_version += 1
        else:
            pca, ratio = self._on_axes(dots, v, step, kept, extra_dot)
        return TrajectoryPoint(step=step, dims=dims, dim_index=self._index_host.copy(), pca=pca, explained_variance=ratio)

    def state_dict(self) -> dict[str, np.ndarray]:
        """What the tracker holds of the path, as host arrays (``np.savez`` writes them and
        ``np.load`` reads them back without pickling): enough for :meth:`load_state_dict` in
        another process, a training resumed from its checkpoint, to go on with the same path.
        The principal axes are not among them: the first update after loading makes them again."""
        if self._shape is None or self._anchor is None or self._points is None:
            return {"shape": np.zeros(0, dtype=np.int64)}  # nothing seen yet
        n = len(self._steps)
        return {
            "shape": np.asarray(self._shape, dtype=np.int64),
            "settings": np.asarray([self.seed, self.max_points, self.sketch_dim], dtype=np.int64),
            "index": self._index_host.copy(),
            "anchor": self._anchor.to("cpu").numpy().copy(),
            "points": self._points[:n].to("cpu").numpy().copy(),
            "gram": self._gram[:n, :n].copy(),
            "steps": np.asarray(self._steps, dtype=np.int64),
            "counts": np.asarray([self._stride, self._count], dtype=np.int64),
            "coords": np.asarray(self._coords, dtype=np.float64),
            "coord_steps": np.asarray(self._coord_steps, dtype=np.int64),
        }

    def load_state_dict(self, state: Mapping[str, np.ndarray], *, device: str | torch.device = "cpu") -> None:
        """Go on with the path of :meth:`state_dict` (another tracker's, made with the same
        ``seed``, ``max_points``, ``sketch_dim`` and ``dims``), its points on ``device``."""
        self.reset()
        shape = tuple(int(v) for v in np.asarray(state["shape"]).ravel())
        if not shape:
            return
        try:
            settings = [int(v) for v in np.asarray(state["settings"]).ravel()]
            steps = np.asarray(state["steps"], dtype=np.int64).ravel()
            points, gram = np.asarray(state["points"]), np.asarray(state["gram"])
            stride, count = (int(v) for v in np.asarray(state["counts"]).ravel())
            coords = np.asarray(state["coords"], dtype=np.float64).reshape(-1, 3)
            coord_steps = np.asarray(state["coord_steps"], dtype=np.int64).ravel()
            anchor = np.asarray(state["anchor"]).ravel()
        except (KeyError, ValueError, TypeError) as exc:
            raise DataError(f"not a trajectory tracker's state ({type(exc).__name__}: {exc})") from exc
        if settings != [self.seed, self.max_points, self.sketch_dim]:
            raise DataError(
                f"this state was made with seed, max_points, sketch_dim = {settings}; this tracker has "
                f"{[self.seed, self.max_points, self.sketch_dim]}"
            )
        n = len(steps)
        d = min(math.prod(shape), self.sketch_dim)
        if n >= self.max_points or points.shape != (n, d) or gram.shape != (n, n) or anchor.shape != (d,) or stride < 1 or count < n:
            raise DataError(f"a trajectory tracker's state of {n} points does not hold together (points {points.shape}, gram {gram.shape})")
        self._start(shape, torch.device(device))
        if not np.array_equal(self._index_host, np.asarray(state["index"], dtype=np.int64).ravel()):
            raise DataError("this state follows other weights (dims) than this tracker would")
        self._begin(torch.from_numpy(anchor.copy()).to(device=device, dtype=accumulator(torch.device(device))))
        assert self._points is not None
        self._points[:n] = torch.from_numpy(points.copy()).to(self._points)
        self._gram[:n, :n] = gram
        self._steps = steps.tolist()
        self._stride, self._count = stride, count
        self._coords, self._coord_steps = coords, coord_steps.tolist()

    @property
    def path_version(self) -> int:
        """A number that changes whenever :meth:`path` would give another path (a point kept,
        the axes moved); while it stays, the path is the one :meth:`path` gave last."""
        return self._path_version

    def path(self) -> tuple[np.ndarray, np.ndarray]:
        """The kept points on the latest principal axes: ``(steps int64[P], coords float32[P, 3])``.

        ``steps`` count updates (0 for the first); coordinates are NaN where a component is
        not defined. Lets a view redraw the whole (thinned) path in the latest PCA frame.
        """
        if self._path is None:  # the path changes only when a point is kept or the axes move
            steps = np.asarray(self._steps, dtype=np.int64)
            coords = np.full((len(steps), 3), np.nan, dtype=np.float32)
            if self._coord_steps and len(steps):
                placed = np.asarray(self._coord_steps, dtype=np.int64)  # ascending, as the kept steps
                at = np.minimum(np.searchsorted(placed, steps), len(placed) - 1)
                hit = placed[at] == steps
                coords[hit] = self._coords[at[hit]]
            self._path = (steps, coords)
        steps, coords = self._path
        return steps.copy(), coords.copy()

    # -- internals ------------------------------------------------------------------------

    def _start(self, shape: tuple[int, ...], device: torch.device) -> None:
        numel = math.prod(shape)
        if numel < 3:
            raise DataError(f"a trajectory follows 3 weights but this tensor has only {numel}")
        rng = np.random.default_rng(self.seed)
        if self._requested is None:
            chosen: list[int] = []
            while len(chosen) < 3:  # rejection keeps this O(1) even for 100M-weight layers
                i = int(rng.integers(numel))
                if i not in chosen:
                    chosen.append(i)
            flat = sorted(chosen)
        else:
            flat = [self._flat_index(d, shape, numel) for d in self._requested]
            if len(set(flat)) != 3:
                raise DataError(f"dims must be 3 distinct weights, got {self._requested!r} (flat indices {flat})")
        self._shape = shape
        self._index = torch.tensor(flat, dtype=torch.long, device=device)
        self._index_host = np.asarray(flat, dtype=np.int64)
        if numel > self.sketch_dim:
            period = _SIGN_PERIOD if self.sketch_dim % _SIGN_PERIOD else _SIGN_PERIOD_ALT
            signs = torch.from_numpy(rng.integers(0, 2, size=period).astype(np.float64) * 2 - 1)
            self._signs = signs.repeat(_SIGN_REPEATS).to(device=device, dtype=accumulator(device))

    @staticmethod
    def _flat_index(d: int | Sequence[int], shape: tuple[int, ...], numel: int) -> int:
        if isinstance(d, Sequence):
            if len(d) != len(shape) or any(not 0 <= int(v) < s for v, s in zip(d, shape, strict=False)):
                raise DataError(f"dims entry {tuple(d)} is not an index into weights of shape {shape}")
            return int(np.ravel_multi_index(tuple(int(v) for v in d), shape))
        i = int(d)
        if not 0 <= i < numel:
            raise DataError(f"dims entry {i} is out of range: the flattened weights have {numel} entries (0..{numel - 1})")
        return i

    def _embed(self, flat: torch.Tensor) -> torch.Tensor:
        """The weights themselves (float64 copy), or their count sketch for big layers (of each
        row, for several weights)."""
        acc = accumulator(flat.device)
        if self._signs is None:
            return flat.to(acc).clone()
        d, signs = self.sketch_dim, self._signs
        chunk = signs.numel()  # a whole number of sign periods: chunk starts stay aligned
        numel = flat.shape[-1]
        if numel <= chunk:  # (most layers) whole rows of buckets summed, then the rest: no padded copy
            signed = torch.mul(flat, signs[:numel])  # promotes to the accumulator type
            rows, rest = divmod(numel, d)
            out = signed[..., : rows * d].reshape(*flat.shape[:-1], rows, d).sum(dim=-2)
            if rest:
                out[..., :rest] += signed[..., rows * d :]
            return out
        if flat.dim() > 1:
            return torch.stack([self._embed(row) for row in flat])
        out = torch.zeros(d, dtype=acc, device=flat.device)
        for start in range(0, flat.numel(), chunk):
            piece = flat[start : start + chunk]
            signed = torch.mul(piece, signs[: piece.numel()])  # promotes to the accumulator type
            offset = start % d
            padded = torch.nn.functional.pad(signed, (offset, (-(offset + piece.numel())) % d))
            out += padded.view(-1, d).sum(dim=0)
        return out

    def _dots(self, v: torch.Tensor, n: int) -> np.ndarray:
        """Inner products of ``v`` with the ``n`` kept points and itself, on the host (float64)."""
        if self._points is None:
            out = (v @ v).reshape(1)
        else:  # v in the free row after the kept points: one product gives v . v as well
            self._points[n].copy_(v)
            out = self._points[: n + 1] @ v
        return out.to("cpu", torch.float64).numpy()

    def _axis_dots(self, axes: _Axes, v: torch.Tensor) -> np.ndarray:
        """``v`` against the last axes in weight space (and the basis mean), then ``v . v``."""
        if axes.space is None:  # once per decomposition: the axes as vectors of the (sketched) weights
            assert self._points is not None
            basis = self._points[: axes.kept]
            if axes.extra is not None:
                basis = torch.cat([basis, axes.extra.unsqueeze(0)])
            weights = torch.from_numpy(axes.weights).to(basis.device, basis.dtype)
            # and a free last row for v, so that one product gives v . v as well
            axes.space = torch.cat([weights.T @ basis, basis.mean(dim=0, keepdim=True), basis[:1]])
        axes.space[-1].copy_(v)
        return (axes.space @ v).to("cpu", torch.float64).numpy()

    def _from_axis_dots(self, axes: _Axes, dots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`_on_axes` for a point that is not kept, from :meth:`_axis_dots`: with ``d_i = b_i . x``,
        ``sum_i w_ik (d_i - mean(d) - r_i + t) = (W^T B x)_k - (m . x) sum_i w_ik - sum_i w_ik (r_i - t)``."""
        k = axes.weights.shape[1]
        coords = np.full(3, np.nan)
        coords[:k] = dots[:k] - dots[k] * axes.weights.sum(axis=0) - (axes.row_means - axes.mean_norm) @ axes.weights
        return coords.astype(np.float32), axes.ratio.copy()

    def _thin(self) -> None:
        assert self._points is not None
        keep = list(range(0, len(self._steps), 2))
        idx = torch.tensor(keep, dtype=torch.long)
        self._points[: len(keep)] = self._points[idx.to(self._points.device)]
        sub = self._gram[np.ix_(keep, keep)]
        self._gram[: len(keep), : len(keep)] = sub
        self._steps = [self._steps[i] for i in keep]
        self._stride *= 2

    def _project(self, gram: np.ndarray, current: int, step: int, v: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Principal axes of the points in ``gram`` (the kept ones, then the current one if it is
        not kept): the current point's coordinates and the explained-variance ratios."""
        pca = np.full(3, np.nan, dtype=np.float32)
        ratio = np.full(3, np.nan, dtype=np.float32)
        self._since = 0
        self._axes = None
        # centre the Gram matrix: <x_i - m, x_j - m> = G_ij - r_i - r_j + t
        r = gram.mean(axis=1)
        t = float(r.mean())
        centred = gram - r[None, :] - r[:, None] + t
        centred = (centred + centred.T) / 2
        evals, evecs = _top_eigh(centred, 3)
        # the total variance is the trace (the sum of every eigenvalue; negative ones are
        # rounding noise of a positive semi-definite matrix and are left out)
        total = max(float(np.trace(centred)), 0.0)
        steps = [*self._steps] if current < len(self._steps) else [*self._steps, step]
        if total <= 0:
            self._coords, self._coord_steps = np.zeros((0, 3)), []
            return pca, ratio
        # Components with negligible variance are noise of the arithmetic, not directions.
        k = int(min(3, int((evals > total * 1e-12).sum())))
        coords = np.full((gram.shape[0], 3), np.nan, dtype=np.float64)
        scale = np.sqrt(evals[:k])
        coords[:, :k] = evecs[:, :k] * scale
        row = {s: i for i, s in enumerate(self._coord_steps)}
        common = [(i, row[s]) for i, s in enumerate(steps) if s in row]
        new_rows = [i for i, _ in common]
        old_rows = [j for _, j in common]
        for axis in range(k):
            agree = 0.0
            if common:
                old = self._coords[old_rows, axis]
                if np.isfinite(old).all():
                    agree = float(coords[new_rows, axis] @ old)
            if agree == 0.0:  # a new axis: the current point on its positive side
                agree = coords[current, axis] or float(coords[np.abs(coords[:, axis]).argmax(), axis])
            if agree < 0:
                coords[:, axis] = -coords[:, axis]
                evecs[:, axis] = -evecs[:, axis]
        ratio[:k] = evals[:k] / total
        # what later updates need to put new points on these axes without a decomposition
        self._axes = _Axes(
            kept=len(self._steps),
            extra=None if current < len(self._steps) else v,
            extra_step=None if current < len(self._steps) else step,
            row_means=r,
            mean_norm=t,
            weights=evecs[:, :k] / scale,
            ratio=ratio.copy(),
        )
        if current < len(self._steps):  # the current point is kept: it is part of the path
            self._coords, self._coord_steps = coords, steps
        else:
            self._coords, self._coord_steps = coords[:-1], steps[:-1]
        pca[:] = coords[current]
        return pca, ratio

    def _on_axes(
        self, dots: np.ndarray, v: torch.Tensor, step: int, kept: bool, extra_dot: float | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The current point on the axes of the last decomposition (``refresh`` > 1).

        ``(b_i - m) . (x - m) = d_i - mean(d) - r_i + t`` for the basis points ``b_i`` (mean
        ``m``, Gram row means ``r``, ``t = m . m``) and ``d_i = b_i . x``; the coordinate on
        axis ``k`` is that vector times ``u_k / sqrt(lambda_k)``: O(points), no decomposition.
        """
        axes = self._axes
        assert axes is not None
        d = dots[: axes.kept]
        if axes.extra is not None:
            d = np.append(d, axes.extra_dot(v) if extra_dot is None else extra_dot)
        coords = axes.coords(d)
        if kept:  # a new kept point: it joins the path on the same axes
            self._coords = np.vstack([self._coords, coords])
            self._coord_steps = [*self._coord_steps, step]
        return coords.astype(np.float32), axes.ratio.copy()


@dataclass
class _Axes:
    """One decomposition of the trajectory, kept so later points can be put on its axes."""

    kept: int  # it was computed from the first ``kept`` kept points, then ``extra`` if set
    extra: torch.Tensor | None  # a point that was current but not kept at that update
    extra_step: int | None  # that update
    row_means: np.ndarray  # of the Gram matrix of the basis
    mean_norm: float  # |mean of the basis|^2
    weights: np.ndarray  # basis x k: eigenvectors / sqrt(eigenvalues)
    ratio: np.ndarray  # explained-variance ratios of that decomposition
    #: the axes (rows ``W^T B``) and the basis mean as vectors of the embedded weights, made
    #: when a point first needs them (see ``TrajectoryTracker._axis_dots``)
    space: torch.Tensor | None = None

    def extra_dot(self, v: torch.Tensor) -> float:
        """The inner product of a point with the last decomposition's extra point (on the device)."""
        assert self.extra is not None
        return float((self.extra @ v).to("cpu", torch.float64))

    def coords(self, dots: np.ndarray) -> np.ndarray:
        """Points on these axes from their inner products with the basis points (``... x basis``):
        ``... x 3``, NaN on the axes that are not defined."""
        centred = dots - dots.mean(axis=-1, keepdims=True) - self.row_means + self.mean_norm
        out = np.full((*dots.shape[:-1], 3), np.nan)
        out[..., : self.weights.shape[1]] = centred @ self.weights
        return out


def warm_up() -> None:
    """Load the eigen-solver now (SciPy's linear algebra and its thread control, when installed).

    Loading takes about 0.3 s of CPU once per process. The in situ monitor calls this in
    ``start()``, before training runs, so that the first decomposition does not pay it on the
    background thread while training competes for the cores.
    """
    _scipy_solver()


@functools.cache
def _scipy_solver() -> tuple[Callable[..., Any], Callable[[], Any]] | None:
    """SciPy's ``eigh`` and a context that keeps its BLAS on one thread, or ``None``.

    One thread, because a 128-point problem gains nothing from more, and OpenBLAS's own threads
    wait behind torch's busy OpenMP threads for the cores: measured here, a decomposition beside
    a 2-thread torch took 8 ms instead of 0.35 ms. Without threadpoolctl to set that, torch's
    solver is used instead (it follows torch's thread settings).
    """
    try:
        from scipy.linalg import eigh
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    controller = ThreadpoolController()
    return eigh, lambda: controller.limit(limits=1, user_api="blas")


def _top_eigh(matrix: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` largest eigenvalues (descending) and their eigenvectors of a symmetric matrix.

    With SciPy, only those ``k`` pairs are computed (LAPACK's MRRR driver): about 3x faster than
    a full decomposition at 128 points (0.35 against 0.95 ms here). Otherwise torch's full ``eigh``.
    """
    n = matrix.shape[0]
    solver = _scipy_solver() if n > 2 * k else None
    if solver is not None:
        eigh, one_thread = solver
        with one_thread():
            evals, evecs = eigh(matrix, subset_by_index=[n - k, n - 1], driver="evr")
        return evals[::-1].copy(), evecs[:, ::-1].copy()
    evals, evecs = torch.linalg.eigh(torch.from_numpy(matrix))
    return evals.flip(0)[:k].numpy().copy(), evecs.flip(1)[:, :k].numpy().copy()

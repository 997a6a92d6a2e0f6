"""Weight trajectories: where a layer's weights travel while it trains.

Two views of one trajectory, updated each time the tracker sees the weights:

* **chosen dimensions** (TensorView) - three coordinates of the flattened weight tensor,
  picked by the user or at random from a seed;
* **principal components** - the current weights projected on the first three principal
  components of the trajectory so far (centred on its mean), the plane that shows the
  path best.

Memory is bounded whatever the layer size and the run length:

* **points**: at most ``max_points`` past weight vectors are kept, uniformly thinned:
  every point is kept until the buffer is full; then every other kept point is dropped
  and only every 2nd (then 4th, 8th ...) new point is kept. The kept points are evenly
  spaced over the whole run, and the current point always takes part in the PCA.
* **dimensions**: a layer with more than ``sketch_dim`` weights is first compressed by a
  *count sketch* (feature hashing): weight ``i`` is added, with a hashed sign, to one of
  ``sketch_dim`` buckets. The sketch is linear and keeps inner products in expectation
  (a Johnson-Lindenstrauss-type random projection), so distances between points and so
  the PCA are approximate to about ``1/sqrt(sketch_dim)`` (1.6 % at the default 4096). It
  is computed in chunks by hashing indices, so nothing of the layer's size is stored.

So the tracker holds at most ``max_points * min(numel, sketch_dim)`` float64 values
(8 MiB at the defaults) plus three indices, on the weights' device.

A component is defined only once the trajectory spreads in that many directions, so
``pca[k]`` and ``explained_variance[k]`` are NaN until then (with one point, all three;
with two, the 2nd and 3rd). Principal axes have no natural sign; each step's axes are
flipped to agree with the previous step's, so the projected path does not jump.
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

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from convscope.errors import DataError

__all__ = ["TrajectoryPoint", "TrajectoryTracker"]

_P = 2_147_483_647  # 2**31 - 1, a prime: hashes stay below 2**62, so int64 never overflows
_HASH_CHUNK = 1 << 22


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
        """The ``trajectory`` frame payload."""
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
        seed: seeds the random dimensions and the sketch's hash.
        max_points: most past weight vectors kept for the PCA (>= 4).
        sketch_dim: layers with more weights than this are count-sketched to this many
            dimensions before the PCA (see the module docstring).

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
        max_points: int = 256,
        sketch_dim: int = 4096,
    ) -> None:
        if max_points < 4:
            raise DataError(f"max_points must be at least 4 to define three components, got {max_points}")
        if sketch_dim < 3:
            raise DataError(f"sketch_dim must be at least 3, got {sketch_dim}")
        if dims is not None and len(dims) != 3:
            raise DataError(f"dims must name exactly 3 weights, got {len(dims)}: {list(dims)!r}; or pass dims=None")
        self._requested = None if dims is None else list(dims)
        self.seed = int(seed)
        self.max_points = int(max_points)
        self.sketch_dim = int(sketch_dim)
        self.reset()

    def reset(self) -> None:
        """Forget the trajectory (for example after the layer was pruned); dims are re-validated."""
        self._shape: tuple[int, ...] | None = None
        self._index: torch.Tensor | None = None
        self._buffer: list[torch.Tensor] = []
        self._steps: list[int] = []
        self._stride = 1
        self._count = 0
        self._axes: torch.Tensor | None = None
        self._mean: torch.Tensor | None = None
        self._hash: tuple[int, int, int, int] | None = None

    @property
    def dim_index(self) -> np.ndarray | None:
        """The three flat indices followed (``None`` before the first update)."""
        return None if self._index is None else self._index.cpu().numpy()

    @property
    def sketched(self) -> bool:
        """Whether the PCA runs on a count sketch rather than on the weights themselves."""
        return self._shape is not None and math.prod(self._shape) > self.sketch_dim

    def update(self, weights: torch.Tensor) -> TrajectoryPoint:
        """Add the current weights to the trajectory and say where they are.

        Args:
            weights: the layer's weight tensor (any shape; the same every call).

        Returns:
            A :class:`TrajectoryPoint` (three small host arrays).
        """
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
        flat = w.reshape(-1)
        assert self._index is not None
        index = self._index.to(flat.device)
        dims = flat[index].to(torch.float32).cpu().numpy()
        vector = self._embed(flat)
        step = self._count
        if step % self._stride == 0:
            self._buffer.append(vector)
            self._steps.append(step)
            if len(self._buffer) >= self.max_points:
                self._buffer = self._buffer[::2]
                self._steps = self._steps[::2]
                self._stride *= 2
        self._count += 1
        points = self._buffer if self._steps and self._steps[-1] == step else [*self._buffer, vector]
        pca, ratio = self._project(torch.stack(points), vector)
        return TrajectoryPoint(
            step=step,
            dims=dims,
            dim_index=index.cpu().numpy().astype(np.int64),
            pca=pca,
            explained_variance=ratio,
        )

    def path(self) -> tuple[np.ndarray, np.ndarray]:
        """The kept points projected on the current axes: ``(steps int64[P], coords float32[P, 3])``.

        Lets a view redraw the whole (thinned) path in the latest PCA frame.
        """
        if not self._buffer:
            return np.zeros(0, dtype=np.int64), np.zeros((0, 3), dtype=np.float32)
        x = torch.stack(self._buffer)
        coords = np.full((x.shape[0], 3), np.nan, dtype=np.float32)
        if self._axes is not None:
            centred = x - self._mean
            proj = (centred @ self._axes.T).cpu().numpy()
            coords[:, : proj.shape[1]] = proj
        return np.asarray(self._steps, dtype=np.int64), coords

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
        a, b, c, d = (int(v) for v in rng.integers(1, _P, size=4))
        self._hash = (a, b, c, d)

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
        n = flat.numel()
        if n <= self.sketch_dim:
            return flat.to(torch.float64).clone()
        assert self._hash is not None
        a, b, c, d = self._hash
        out = torch.zeros(self.sketch_dim, dtype=torch.float64, device=flat.device)
        for start in range(0, n, _HASH_CHUNK):
            idx = torch.arange(start, min(n, start + _HASH_CHUNK), dtype=torch.int64, device=flat.device)
            bucket = ((idx * a + b) % _P) % self.sketch_dim
            sign = (((idx * c + d) % _P) % 2) * 2 - 1
            out.index_add_(0, bucket, flat[start : start + idx.numel()].to(torch.float64) * sign)
        return out

    def _project(self, points: torch.Tensor, current: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        pca = np.full(3, np.nan, dtype=np.float32)
        ratio = np.full(3, np.nan, dtype=np.float32)
        mean = points.mean(dim=0)
        centred = points - mean
        # Eigen-decomposition of the small P x P Gram matrix instead of an SVD of P x D.
        gram = centred @ centred.T
        evals, evecs = torch.linalg.eigh(gram)
        evals, evecs = evals.flip(0), evecs.flip(1)
        total = float(evals.clamp(min=0).sum())
        if total <= 0:
            self._axes = None
            return pca, ratio
        # Components with negligible variance are noise of the arithmetic, not directions.
        k = int(min(3, int((evals > total * 1e-12).sum())))
        axes = (evecs[:, :k].T @ centred) / evals[:k].sqrt().unsqueeze(1)
        before = 0 if self._axes is None else self._axes.shape[0]
        for i in range(k):
            # Agree with last step's axis; a brand-new axis points its largest loading up.
            reference = float(axes[i] @ self._axes[i]) if i < before else float(axes[i][axes[i].abs().argmax()])
            if reference < 0:
                axes[i] = -axes[i]
        self._axes = axes
        self._mean = mean
        pca[:k] = (axes @ (current - mean)).cpu().numpy()
        ratio[:k] = (evals[:k] / total).cpu().numpy()
        return pca, ratio

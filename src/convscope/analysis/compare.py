"""Comparing two inputs layer by layer: where they part ways, and which filters changed most.

Given the captured outputs of the same layers for input A and input B (``capture(...).outputs``
of each; one sample of each is compared, e.g. a digit and its adversarial or noisy twin):

* per layer: the L2 distance ``|a - b|``, the cosine similarity ``a.b / (|a| |b|)`` and the
  relative change ``|a - b| / |a|`` (A is the reference);
* per filter (channel ``f`` of an ``F x H x W`` or ``F x L`` output; unit ``f`` of a dense
  ``F`` output, where the cosine reduces to sign agreement: 1, 0 or -1): the same three;
* the filters that changed most, ranked by their L2 distance (``rank_by="l2"``, default:
  the absolute change, which a filter silent in A cannot inflate) or by relative change;
* the layer where the inputs **part ways**: the first layer, in the order compared (forward
  order for ``capture`` outputs), whose relative change reaches ``threshold`` (default 0.5:
  the difference is half the size of the signal) and stays at or above it in every later
  compared layer; ``None`` if that never happens. "Stays" makes it robust to one noisy early
  layer whose difference later layers wash out again.

Conventions for zeros: two all-zero vectors have cosine 1 and relative change 0; one zero
vector against a non-zero one has cosine 0; a change from zero has relative change ``inf``.

Example:
    >>> import torch
    >>> a = {"c": torch.ones(1, 2, 3, 3)}; b = {"c": torch.ones(1, 2, 3, 3) * 2}
    >>> r = compare_pair(a, b)
    >>> r.layer("c").relative, r.diverges_at
    (1.0, 'c')
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from convscope.analysis._tensors import accumulator
from convscope.errors import DataError

__all__ = ["LayerDifference", "PairComparison", "compare_pair"]

RANKINGS = ("l2", "relative")


@dataclass(frozen=True)
class LayerDifference:
    """How one layer's output differs between input A and input B.

    Attributes:
        layer: the layer's name.
        l2, cosine, relative: over the whole output (see the module docstring).
        filter_l2, filter_cosine, filter_relative: ``float64[F]`` per filter (or unit);
            ``None`` for a layer whose output is a single number.
        top_filters: indices of the filters that changed most, most first.
    """

    layer: str
    l2: float
    cosine: float
    relative: float
    filter_l2: np.ndarray | None = None
    filter_cosine: np.ndarray | None = None
    filter_relative: np.ndarray | None = None
    top_filters: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class PairComparison:
    """The comparison of two inputs over several layers.

    Attributes:
        layers: one :class:`LayerDifference` per compared layer, in the order compared.
        diverges_at: the layer where the inputs part ways, or ``None``.
        threshold: the relative change that counts as parting ways.
        rank_by: what :attr:`LayerDifference.top_filters` are ranked by.
    """

    layers: list[LayerDifference]
    diverges_at: str | None
    threshold: float
    rank_by: str = "l2"

    def layer(self, name: str) -> LayerDifference:
        """The difference at one layer."""
        for d in self.layers:
            if d.layer == name:
                return d
        raise DataError(f"layer {name!r} was not compared; compared layers are {[d.layer for d in self.layers]}")

    def to_payload(self) -> dict[str, Any]:
        """Numpy arrays and scalars: ``layers`` (names), ``l2``, ``cosine``, ``relative``
        (``float64[L]``), ``diverges_at`` (name or ``None``), ``threshold``, ``rank_by``,
        ``top_filters`` (a list per layer), ``filter_l2``, ``filter_cosine``,
        ``filter_relative`` (a ``float64[F]`` array or ``None`` per layer)."""
        return {
            "layers": [d.layer for d in self.layers],
            "l2": np.array([d.l2 for d in self.layers], dtype=np.float64),
            "cosine": np.array([d.cosine for d in self.layers], dtype=np.float64),
            "relative": np.array([d.relative for d in self.layers], dtype=np.float64),
            "diverges_at": self.diverges_at,
            "threshold": float(self.threshold),
            "rank_by": self.rank_by,
            "top_filters": [list(d.top_filters) for d in self.layers],
            "filter_l2": [d.filter_l2 for d in self.layers],
            "filter_cosine": [d.filter_cosine for d in self.layers],
            "filter_relative": [d.filter_relative for d in self.layers],
        }

    def to_dict(self) -> dict[str, Any]:
        """The same as plain JSON values (lists; ``inf`` and NaN become ``None``)."""

        def num(v: float) -> float | None:
            return float(v) if math.isfinite(v) else None

        def arr(a: np.ndarray | None) -> list[float | None] | None:
            return None if a is None else [num(v) for v in a.tolist()]

        return {
            "diverges_at": self.diverges_at,
            "threshold": float(self.threshold),
            "rank_by": self.rank_by,
            "layers": [
                {
                    "layer": d.layer,
                    "l2": num(d.l2),
                    "cosine": num(d.cosine),
                    "relative": num(d.relative),
                    "top_filters": list(d.top_filters),
                    "filter_l2": arr(d.filter_l2),
                    "filter_cosine": arr(d.filter_cosine),
                    "filter_relative": arr(d.filter_relative),
                }
                for d in self.layers
            ],
        }


def compare_pair(
    a: Mapping[str, torch.Tensor],
    b: Mapping[str, torch.Tensor],
    *,
    layers: Sequence[str] | None = None,
    sample: int = 0,
    threshold: float = 0.5,
    top: int = 5,
    rank_by: str = "l2",
) -> PairComparison:
    """Compare two inputs' captured outputs layer by layer and filter by filter.

    Args:
        a: layer -> ``N x ...`` output for input A (the reference), e.g. ``capture(...).outputs``.
        b: the same layers for input B.
        layers: which layers, in this order; default every layer of ``a`` also in ``b``,
            in ``a``'s order.
        sample: which sample of each batch to compare.
        threshold: relative change from which the inputs have parted ways (> 0).
        top: how many most-changed filters to list per layer.
        rank_by: ``"l2"`` or ``"relative"``.

    Returns:
        A :class:`PairComparison` (host numbers; computed in float64 on the outputs' device).

    Example:
        >>> import torch
        >>> a = {"conv": torch.zeros(1, 3, 4, 4)}
        >>> b = {"conv": torch.zeros(1, 3, 4, 4)}; b["conv"][0, 2] = 1.0
        >>> compare_pair(a, b).layer("conv").top_filters[0]
        2
    """
    if not threshold > 0:
        raise DataError(f"threshold must be a positive relative change (0.5: half the signal), got {threshold}")
    if rank_by not in RANKINGS:
        raise DataError(f"rank_by must be one of {', '.join(RANKINGS)}, got {rank_by!r}")
    if isinstance(top, bool) or not isinstance(top, int) or top < 0:
        raise DataError(f"top must be a number of filters (0 or more), got {top!r}")
    names = list(layers) if layers is not None else [k for k in a if k in b]
    if not names:
        raise DataError(
            f"no layer was captured for both inputs (A has {list(a)[:8]}, B has {list(b)[:8]}); "
            "capture the same layers for A and B"
        )
    out = []
    for name in names:
        if name not in a or name not in b:
            where = "A" if name not in a else "B"
            raise DataError(f"layer {name!r} is missing from {where}; captured there: {list(a if where == 'A' else b)[:8]}")
        x, y = _sample(a[name], name, "A", sample), _sample(b[name], name, "B", sample)
        if x.shape != y.shape:
            raise DataError(f"layer {name!r} has shape {tuple(x.shape)} for A but {tuple(y.shape)} for B")
        y = y.to(x.device)
        l2, cos, rel = (float(v) for v in torch.stack(_stats(x.reshape(1, -1), y.reshape(1, -1))).reshape(3).tolist())
        if x.dim() == 0 or x.numel() == 1:
            out.append(LayerDifference(layer=name, l2=l2, cosine=cos, relative=rel))
            continue
        per = _stats(x.reshape(x.shape[0], -1), y.reshape(y.shape[0], -1))
        fl2, fcos, frel = (t.to("cpu", torch.float64).numpy() for t in per)
        key = fl2 if rank_by == "l2" else np.nan_to_num(frel, nan=0.0, posinf=np.finfo(np.float64).max)
        order = np.argsort(-key, kind="stable")
        out.append(
            LayerDifference(
                layer=name, l2=l2, cosine=cos, relative=rel,
                filter_l2=fl2, filter_cosine=fcos, filter_relative=frel,
                top_filters=[int(i) for i in order[:top]],
            )
        )
    diverges = None
    for i, d in enumerate(out):
        if all(e.relative >= threshold for e in out[i:]):
            diverges = d.layer
            break
    return PairComparison(layers=out, diverges_at=diverges, threshold=float(threshold), rank_by=rank_by)


def _sample(t: Any, name: str, which: str, sample: int) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise DataError(f"layer {name!r} of {which} is a {type(t).__name__}, not a tensor; pass capture(...).outputs")
    if t.dim() == 0:
        raise DataError(f"layer {name!r} of {which} is a scalar; outputs must be batched (N x ...)")
    n = int(t.shape[0])
    if isinstance(sample, bool) or not isinstance(sample, int) or not -n <= sample < n:
        raise DataError(f"sample {sample!r} is out of range: layer {name!r} of {which} holds {n} samples (0..{n - 1})")
    return t.detach()[sample]


def _stats(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Row-wise L2 distance, cosine similarity and relative change of two ``R x D`` matrices."""
    acc = accumulator(a.device)
    a, b = a.to(acc), b.to(acc)
    l2 = torch.linalg.vector_norm(a - b, dim=1)
    na, nb = torch.linalg.vector_norm(a, dim=1), torch.linalg.vector_norm(b, dim=1)
    one, zero = torch.ones_like(l2), torch.zeros_like(l2)
    both = (na > 0) & (nb > 0)
    cos = torch.where(both, (a * b).sum(dim=1) / torch.where(both, na * nb, one), torch.where((na == 0) & (nb == 0), one, zero))
    rel = torch.where(na > 0, l2 / torch.where(na > 0, na, one), torch.where(l2 > 0, torch.full_like(l2, math.inf), zero))
    return l2, cos.clamp(-1.0, 1.0), rel

"""Comparing two inputs layer by layer: where they part ways, and which filters changed most.

Given the captured outputs of the same layers for input A and input B (one sample each, e.g.
a digit and its adversarial twin), per layer: the L2 distance, the cosine similarity and the
relative change ``|a - b| / |a|``; per filter of conv/dense layers, the same three. The layer
where the inputs *part ways* is the first layer, in forward order, whose relative change
reaches ``threshold`` (default 0.5: the difference is half the size of the signal) and stays at
or above it in every later compared layer; ``None`` if they never do.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from convscope.errors import DataError

if TYPE_CHECKING:
    import torch

__all__ = ["LayerDifference", "PairComparison", "compare_pair"]


@dataclass
class LayerDifference:
    layer: str
    l2: float
    cosine: float
    relative: float
    filter_l2: np.ndarray | None = None
    filter_cosine: np.ndarray | None = None
    filter_relative: np.ndarray | None = None
    top_filters: list[int] = field(default_factory=list)


@dataclass
class PairComparison:
    layers: list[LayerDifference]
    diverges_at: str | None
    threshold: float

    def layer(self, name: str) -> LayerDifference:
        for d in self.layers:
            if d.layer == name:
                return d
        raise DataError(f"layer {name!r} was not compared; compared layers are {[d.layer for d in self.layers]}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "diverges_at": self.diverges_at,
            "threshold": self.threshold,
            "layers": [
                {"layer": d.layer, "l2": d.l2, "cosine": d.cosine, "relative": d.relative, "top_filters": d.top_filters,
                 "filter_relative": None if d.filter_relative is None else d.filter_relative.tolist()}
                for d in self.layers
            ],
        }


def _stats(a: torch.Tensor, b: torch.Tensor, dim: int | None) -> tuple[Any, Any, Any]:
    import torch

    if dim is None:
        a, b = a.reshape(1, -1), b.reshape(1, -1)
    else:
        a, b = a.movedim(dim, 0).reshape(a.shape[dim], -1), b.movedim(dim, 0).reshape(b.shape[dim], -1)
    a, b = a.to(torch.float64), b.to(torch.float64)
    l2 = (a - b).norm(dim=1)
    na, nb = a.norm(dim=1), b.norm(dim=1)
    cos = torch.where((na > 0) & (nb > 0), (a * b).sum(dim=1) / (na * nb).clamp(min=1e-300), torch.where((na == 0) & (nb == 0), 1.0, 0.0))
    rel = torch.where(na > 0, l2 / na.clamp(min=1e-300), torch.where(l2 > 0, torch.inf, 0.0))
    return l2, cos, rel


def compare_pair(
    a: Mapping[str, torch.Tensor],
    b: Mapping[str, torch.Tensor],
    *,
    layers: Sequence[str] | None = None,
    threshold: float = 0.5,
    top: int = 5,
) -> PairComparison:
    """Compare two inputs' captured outputs (``capture(...).outputs``), one sample each.

    Example:
        >>> import torch
        >>> a = {"c": torch.ones(1, 2, 3, 3)}; b = {"c": torch.ones(1, 2, 3, 3) * 2}
        >>> r = compare_pair(a, b)
        >>> r.layer("c").relative, r.diverges_at
        (1.0, 'c')
    """
    names = list(layers) if layers is not None else [k for k in a if k in b]
    if not names:
        raise DataError("no layer was captured for both inputs; capture the same layers for A and B")
    out = []
    for name in names:
        if name not in a or name not in b:
            raise DataError(f"layer {name!r} is missing from {'A' if name not in a else 'B'}")
        x, y = a[name].detach(), b[name].detach()
        if x.shape != y.shape:
            raise DataError(f"layer {name!r} has shape {tuple(x.shape)} for A but {tuple(y.shape)} for B")
        if x.dim() >= 1 and x.shape[0] == 1:
            x, y = x[0], y[0]
        l2, cos, rel = _stats(x, y, None)
        diff = LayerDifference(layer=name, l2=float(l2[0]), cosine=float(cos[0]), relative=float(rel[0]))
        if x.dim() >= 1 and x.shape[0] > 1:
            fl2, fcos, frel = _stats(x, y, 0)
            diff.filter_l2, diff.filter_cosine, diff.filter_relative = fl2.numpy(), fcos.numpy(), frel.numpy()
            order = np.argsort(-np.nan_to_num(diff.filter_relative, posinf=np.finfo(float).max), kind="stable")
            diff.top_filters = [int(i) for i in order[:top]]
        out.append(diff)
    diverges = None
    for i, d in enumerate(out):
        if all(e.relative >= threshold for e in out[i:]):
            diverges = d.layer
            break
    return PairComparison(layers=out, diverges_at=diverges, threshold=threshold)

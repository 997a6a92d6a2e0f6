"""Pearson correlation between the filters of one layer (TensorView's PCC view).

Each filter's feature maps over the whole batch are flattened into one vector; the
correlation of two filters is the Pearson correlation of their vectors. The computation
streams over the flattened dimension in chunks (two passes: sums, minima and maxima, then
the Gram matrix of the centred maps), on the maps' own device, without copying them
(when they are contiguous).

**Memory.** Beyond the maps themselves, one call holds a single ``F x chunk`` buffer (the
centred chunk; at most about 4 million values, 16 MiB in float32, whatever the layer's
size) and a few ``F x F`` and ``F`` tensors. For VGG-16's conv1 on 8 images at 224x224
(64 filters x 401,408 values, 103 MB of maps) a chunk is one image's maps: 12.8 MB added
to the peak resident memory, against 98 MB for ``torch.corrcoef`` and 197 MB for
``numpy.corrcoef`` of the ``F x values`` matrix, which itself costs another 103 MB to make
from the maps (``tests/analysis/test_correlation.py`` and ``benchmarks/bench_analysis.py``
measure it). Only the ``F x F`` matrix and the ``F`` dead mask are results.

Example:
    >>> import torch
    >>> maps = torch.randn(4, 3, 5, 5)
    >>> maps[:, 1] = 2 * maps[:, 0] + 1          # filter 1 repeats filter 0
    >>> maps[:, 2] = 0                           # filter 2 never fires
    >>> r = feature_correlation(maps)
    >>> round(float(r.matrix[0, 1]), 6), r.dead.tolist()
    (1.0, [False, False, True])
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from convscope.analysis._tensors import accumulator
from convscope.errors import DataError

__all__ = ["CorrelationResult", "feature_correlation"]

# A chunk holds about this many values (16 MiB in float32): the working memory of one call.
_CHUNK_VALUES = 1 << 22


@dataclass(frozen=True)
class CorrelationResult:
    """Filter-by-filter Pearson correlation of one layer's feature maps.

    Attributes:
        matrix: ``F x F`` float32 tensor on the maps' device. Symmetric, in ``[-1, 1]``,
            1 on the diagonal of live filters; rows and columns of dead filters are 0
            (their diagonal too). Never NaN.
        dead: ``F`` bool tensor: filters whose maps are constant over the whole batch
            (for example a ReLU that never fires), for which a correlation is undefined.
    """

    matrix: torch.Tensor
    dead: torch.Tensor
    #: the same on the host as numpy ``(float32[F, F], bool[F])``, where they were made there
    #: (a stack of recordings' results: read without a torch call per recording)
    host: tuple[Any, Any] | None = field(default=None, repr=False, compare=False)

    @property
    def filters(self) -> int:
        return int(self.matrix.shape[0])

    def to_payload(self) -> dict[str, Any]:
        """The ``correlation`` frame payload: ``{"matrix": float32[F, F], "dead": bool[F]}``."""
        import numpy as np

        if self.host is not None:
            return {"matrix": self.host[0], "dead": self.host[1]}
        return {
            "matrix": self.matrix.detach().to("cpu", dtype=torch.float32).numpy().astype(np.float32, copy=False),
            "dead": self.dead.detach().cpu().numpy().astype(bool, copy=False),
        }


def feature_correlation(
    maps: torch.Tensor,
    *,
    chunk_size: int | None = None,
    dtype: torch.dtype | None = None,
) -> CorrelationResult:
    """Pearson correlation between filters, each filter's maps over the batch flattened.

    Args:
        maps: ``N x F x H x W`` feature maps (``N x F`` for a dense layer, or any
            ``N x F x ...``); filter ``f``'s vector is ``maps[:, f]`` flattened.
        chunk_size: how many positions of the flattened dimension one step handles;
            default so that a chunk holds about 4 million values (16 MiB in float32).
            Smaller bounds memory tighter; the result does not depend on it.
        dtype: type of the Gram product; default float32 after centring with float64
            means (float32 sums on devices without float64, such as Apple's MPS), which
            agrees with numpy's float64 ``corrcoef`` to a few 1e-6 on feature maps
            (measured: 2e-6 on LeNet-5, 6e-6 on VGG-16 conv1) and is several times faster;
            pass ``torch.float64`` for the last digits.

    Returns:
        A :class:`CorrelationResult` on the maps' device.

    Raises:
        DataError: the maps have fewer than two dimensions, no values, or NaN/Inf.

    Example:
        >>> import torch
        >>> r = feature_correlation(torch.randn(8, 16, 26, 26))
        >>> tuple(r.matrix.shape), bool((r.matrix.diagonal() == 1).all())
        ((16, 16), True)
    """
    if not isinstance(maps, torch.Tensor):
        raise DataError(f"feature maps must be a torch.Tensor (N x F x ...), got {type(maps).__name__}")
    if maps.dim() < 2:
        raise DataError(
            f"feature maps must be N x F x H x W (or N x F for a dense layer), got shape {tuple(maps.shape)}; "
            "add the batch dimension with maps.unsqueeze(0)"
        )
    n, f = int(maps.shape[0]), int(maps.shape[1])
    m = maps.numel() // max(f, 1)
    if f == 0 or m == 0:
        raise DataError(f"feature maps of shape {tuple(maps.shape)} hold no values; pass at least one sample and one filter")
    if not maps.is_floating_point():
        maps = maps.float()
    # sums and means in float64 where the device has it; the Gram product of the centred maps in
    # float32 by default (4-6x faster on CPU, agrees with float64 to a few 1e-6 on feature maps)
    acc = dtype or torch.float32
    sums = torch.float32 if maps.device.type == "mps" else torch.float64
    x = maps.detach().reshape(n, f, -1)
    if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1):
        raise DataError(f"chunk_size must be a positive number of positions, got {chunk_size!r}")
    cols = chunk_size or max(1, _CHUNK_VALUES // f)

    gram, dead, acc = _gram(x, f, m, cols, sums, acc)
    if not bool(torch.isfinite(gram).all()):
        # Huge activations (a diverging run reaches 1e20 and more) overflow the float32 Gram
        # product. Pearson correlation ignores each filter's scale, so divide every filter by
        # its largest |value| and compute again; NaN or Inf in the maps themselves is an error.
        if not bool(torch.isfinite(x).all()):
            raise DataError(
                "the feature maps contain NaN or Inf (the run has diverged?); their correlation is undefined"
            )
        peak = x.abs().amax(dim=(0, 2)).to(torch.float64)
        x = (x.to(torch.float64) / torch.where(peak > 0, peak, torch.ones_like(peak)).view(1, f, 1)).to(x.dtype)
        gram, dead, acc = _gram(x, f, m, cols, sums, acc)
    return CorrelationResult(*_pearson(gram, dead))


def _pearson(gram: torch.Tensor, dead: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Correlations (float32) and dead filters from centred Gram matrices (``... x F x F``,
    overwritten) and the constant filters (``... x F``, overwritten): one layer's, or a stack of
    several recordings'. Few operations on purpose: the in situ monitor runs this on every recording."""
    var = gram.diagonal(dim1=-2, dim2=-1)
    live = (var > 0).logical_and_(dead.logical_not_())
    scale = torch.where(live, var.rsqrt(), 0.0)  # dead filters' rows and columns become 0
    corr = gram.mul_(scale.unsqueeze(-1) * scale.unsqueeze(-2)).clamp_(-1.0, 1.0)
    corr.diagonal(dim1=-2, dim2=-1).copy_(live)
    return corr.to(torch.float32), live.logical_not_()


def _gram(
    x: torch.Tensor, f: int, m: int, cols: int, sums: torch.dtype, acc: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor, torch.dtype]:
    blocks = list(_blocks(x, cols))  # views
    if len(blocks) == 1:  # the whole maps in one chunk: one centred copy
        work = torch.promote_types(x.dtype, acc)
        c, lo, hi, _mean = _centred([x], work)
        return c[0] @ c[0].T, lo[0] == hi[0], work
    gram, dead = _gram_streamed(x, blocks, f, m, sums, acc)
    return gram, dead, acc


def _gram_streamed(
    x: torch.Tensor, blocks: list[torch.Tensor], f: int, m: int, sums: torch.dtype, acc: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """Centred Gram matrix and dead mask in two passes over the blocks, one reused buffer."""
    # Pass 1: per-filter sum, min and max (min == max is the exact test for a dead filter).
    # Each block is summed in float32 (pairwise, ~1e-7 relative) and the blocks in float64;
    # NaN/Inf show in the min/max, so no separate finiteness pass is needed.
    total = torch.zeros(f, dtype=sums, device=x.device)
    lo = torch.full((f,), float("inf"), dtype=x.dtype, device=x.device)
    hi = torch.full((f,), float("-inf"), dtype=x.dtype, device=x.device)
    partial = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
    for block in blocks:
        total += block.sum(dim=(1, 2), dtype=partial).to(sums)
        lo = torch.minimum(lo, block.amin(dim=(1, 2)))
        hi = torch.maximum(hi, block.amax(dim=(1, 2)))
    _check_finite(lo, hi)
    if not bool(torch.isfinite(total).all()):  # finite values near the float32 limit overflowed a block sum
        total = sum((b.sum(dim=(1, 2), dtype=sums) for b in blocks), torch.zeros_like(total))
    mean = total / m
    dead = lo == hi

    # Pass 2: centred Gram matrix. Centring before the product avoids the cancellation
    # of sum(xy) - n*mean_x*mean_y, which loses digits when means dwarf the spread (ReLU maps).
    # Each block is centred into one reused buffer (the only working memory: F x chunk values).
    gram = torch.zeros(f, f, dtype=acc, device=x.device)
    centre = mean.to(acc).view(f, 1, 1)
    buffer = torch.empty(max(b.numel() for b in blocks), dtype=acc, device=x.device)
    for block in blocks:
        c = buffer[: block.numel()].view(block.shape)
        torch.sub(block, centre, out=c)
        c = c.view(f, -1)
        gram.addmm_(c, c.T)
    return gram, dead


def _centred(
    xs: Sequence[torch.Tensor], dtype: torch.dtype, what: str = "a correlation"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``R x F x values`` copy of ``R`` maps of one shape (each ``N x F x ...``, a strided view
    too: it is read once, into the copy) in ``dtype``, each
    filter's mean taken off, with each filter's minimum, maximum and mean (``R x F``; the means
    in float64, float32 on MPS): the one pass over small maps that the correlation and the
    distribution (:mod:`convscope.analysis.distribution`) share. ``R`` is 1 for one layer's maps,
    more for several recordings of one layer worked through at once.

    Few operations on purpose, and the same count for any ``R``: the in situ monitor runs this on
    every recording, and there the count of operations (each with cold caches after a training
    step) costs more than the data. NaN or Inf raise a :class:`DataError` saying that ``what``
    is undefined.
    """
    n, f, *rest = xs[0].shape
    c = torch.empty((len(xs), f, n, *rest), dtype=dtype, device=xs[0].device)
    for i, x in enumerate(xs):
        c[i].copy_(x.transpose(0, 1))  # transposed (and widened) in one pass; worked on in place below
    c = c.view(len(xs), f, -1)
    m = c.shape[2]
    lo, hi = c.amin(dim=2), c.amax(dim=2)  # (aminmax along a dim is ~10x slower on CPU)
    wide = accumulator(c.device)
    total = c.sum(dim=2).to(wide)  # (4x faster than summing into float64 directly)
    # NaN or Inf anywhere makes the sums non-finite; so can huge finite values, summed again wider
    if not math.isfinite(float(total.sum())):
        for r in range(len(xs)):
            _check_finite(lo[r], hi[r], what)
        total = c.sum(dim=2, dtype=wide)
    mean = total / m
    c -= mean.to(dtype).unsqueeze(2)
    return c, lo, hi, mean


def _check_finite(lo: torch.Tensor, hi: torch.Tensor, what: str = "a correlation") -> None:
    if not bool(torch.isfinite(lo).all() & torch.isfinite(hi).all()):
        bad = [i for i in range(lo.numel()) if not (math.isfinite(float(lo[i])) and math.isfinite(float(hi[i])))]
        raise DataError(
            f"feature maps contain NaN or Inf in filters {bad[:10]}{' ...' if len(bad) > 10 else ''}; "
            f"{what} is undefined there - check the layer's gradient health (training may have diverged)"
        )


def _blocks(x: torch.Tensor, cols: int) -> Iterator[torch.Tensor]:
    """``F x a x b`` views of ``x`` (``N x F x S``) whose flattening is an ``F x c`` slice of the
    ``F x (N*S)`` matrix, with ``c <= cols``: whole samples are grouped when maps are small,
    single samples are cut when they are large. Nothing is copied."""
    n, f, s = x.shape
    if s >= cols:
        for i in range(n):
            for start in range(0, s, cols):
                yield x[i, :, start : start + cols].unsqueeze(1)
    else:
        per = max(1, cols // s)
        for start in range(0, n, per):
            yield x[start : start + per].permute(1, 0, 2)


def _chunks(x: torch.Tensor, cols: int) -> Iterator[torch.Tensor]:
    """``F x c`` slices of the ``F x (N*S)`` matrix, taken from ``x`` (``N x F x S``) without
    materialising its transpose: whole samples are grouped when maps are small, single
    samples are cut when they are large."""
    n, f, s = x.shape
    if s >= cols:
        for i in range(n):
            for start in range(0, s, cols):
                yield x[i, :, start : start + cols]
    else:
        per = max(1, cols // s)
        for start in range(0, n, per):
            block = x[start : start + per]
            yield block.permute(1, 0, 2).reshape(f, -1)

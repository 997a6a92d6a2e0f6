"""Per-filter value distributions of feature maps (TensorView's histogram view).

Each filter's values - over the whole batch, or over one sample - are normalised to
``[0, 1]`` by that filter's own minimum and maximum and counted into ``bins`` equal bins
(bin ``k`` holds ``k/bins <= v < (k+1)/bins``; the last bin also holds ``v = 1``, as
``numpy.histogram`` does). A filter whose values are all equal (a constant map, such as a
ReLU that never fires) cannot be normalised: all its values go to bin 0 and it is flagged
in :attr:`Distribution.constant` (and has ``min == max`` in the payload).

The raw minimum, maximum, mean and (population, ``ddof=0``) standard deviation come
along, so the normalised histogram can be read back in the layer's units. Everything is
computed on the maps' device. Maps of up to 4 million values take one pass over a centred
float32 filter-major copy (sums widened to float64, float32 on Apple's MPS): the moments
agree with numpy's float64 ones to about 1e-6, and a value within about 1e-7 of its
filter's span from a bin edge, at the limit of float32 itself, may be counted in the bin
beside. Larger maps take two streaming passes over float64 chunks of about that size
(bounded working memory, about 64 MiB). Only ``F x bins`` counts and four ``F`` vectors
are results. :func:`feature_distribution_and_correlation` computes this and the filters'
Pearson correlations together, sharing the passes; for larger maps it streams float32
chunks centred as the one-copy path centres them (a VGG-16 conv1 batch of 8: about half
the time of the two functions apart).

Example:
    >>> import torch
    >>> maps = torch.arange(8.0).reshape(1, 2, 2, 2)   # filter 0: 0..3, filter 1: 4..7
    >>> d = feature_distribution(maps, bins=4)
    >>> d.counts.tolist(), d.min.tolist()
    ([[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]], [0.0, 4.0])
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from convscope.analysis._tensors import accumulator
from convscope.analysis.correlation import CorrelationResult, _centred, _chunks, _pearson, feature_correlation
from convscope.errors import DataError

__all__ = ["Distribution", "feature_distribution", "feature_distribution_and_correlation", "feature_distributions_and_correlations"]

_CHUNK_VALUES = 1 << 22
#: :func:`feature_distributions_and_correlations` stacks at most about this many values of maps:
#: a stack's copies (2 MiB of float32 each at this size) stay in the CPU's caches through its
#: dozen passes. Measured on 14 LeNet-5 recordings of two layers, caches evicted first as a
#: training step evicts them: 0.49 ms per recording at 512k values, 0.68 at 2M, 1.16 one by one.
_STACK_VALUES = 1 << 19


@dataclass(frozen=True)
class Distribution:
    """Histograms and moments of each filter's values.

    Attributes:
        counts: ``F x bins`` float32 tensor of counts of min-max normalised values.
        bins: the number of bins.
        min, max, mean, std: ``F`` float32 tensors of the raw values.
        constant: ``F`` bool tensor: filters whose values are all equal (counted in bin 0).
        sample: the sample the histograms describe (0-based), or ``None`` for the whole batch.
    """

    counts: torch.Tensor
    bins: int
    min: torch.Tensor
    max: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor
    constant: torch.Tensor
    sample: int | None = None
    #: ``counts`` and the four moments (``float32[F, bins]``, ``float32[4, F]``) as numpy, where
    #: they were made on the host (a stack of recordings' results: no torch call per recording)
    host: tuple[Any, Any] | None = field(default=None, repr=False, compare=False)

    def to_payload(self) -> dict[str, Any]:
        """The ``distribution`` frame payload."""
        if self.host is not None:
            counts, moments = self.host
        else:
            # the four vectors cross to the host as one array (one copy instead of four)
            counts = self.counts.detach().to("cpu", torch.float32).numpy()
            moments = torch.stack([self.min, self.max, self.mean, self.std]).detach().to("cpu", torch.float32).numpy()
        return {
            "counts": counts,
            "bins": int(self.bins),
            "min": moments[0],
            "max": moments[1],
            "mean": moments[2],
            "std": moments[3],
        }


def feature_distribution(maps: torch.Tensor, *, bins: int = 32, sample: int | None = None) -> Distribution:
    """Histogram each filter's min-max normalised values into fixed bins.

    Args:
        maps: ``N x F x H x W`` feature maps (``N x F`` for a dense layer, or any
            ``N x F x ...``).
        bins: number of equal bins over ``[0, 1]``.
        sample: describe only this sample (negative counts from the end); default the
            whole batch.

    Returns:
        A :class:`Distribution` on the maps' device.

    Example:
        >>> import torch
        >>> d = feature_distribution(torch.rand(8, 16, 26, 26), bins=32)
        >>> tuple(d.counts.shape), int(d.counts.sum(dim=1)[0])
        ((16, 32), 5408)
    """
    x = _as_nfs(maps, "feature_distribution")
    _check_bins(bins)
    if sample is not None:
        sample = _sample_index(sample, x.shape[0])
        x = x[sample : sample + 1]
    n, f, s = x.shape
    m = n * s
    if n * f * s <= _CHUNK_VALUES:
        return _small(x, bins, sample)
    cols = max(1, _CHUNK_VALUES // f)
    acc = accumulator(x.device)
    total, lo, hi = _first_pass(x, cols)
    if not (bool(torch.isfinite(lo).all()) and bool(torch.isfinite(hi).all())):
        raise DataError(
            "feature maps contain NaN or Inf; their distribution is undefined - "
            "check the layer's gradient health (training may have diverged)"
        )
    if not bool(torch.isfinite(total).all()):  # finite values near the float32 limit overflowed a chunk sum
        total = sum((c.sum(dim=1, dtype=acc) for c in _chunks(x, cols)), torch.zeros_like(total))
    mean = total / m
    constant = lo == hi
    lo_acc = lo.to(acc).unsqueeze(1)
    span = torch.where(constant, torch.ones_like(lo_acc.squeeze(1)), hi.to(acc) - lo.to(acc))

    counts = torch.zeros(f, bins, dtype=torch.int64, device=x.device)
    sq = torch.zeros(f, dtype=acc, device=x.device)
    for chunk in _chunks(x, cols):
        d = chunk.to(acc, copy=True).sub_(lo_acc)  # as in _small
        sq += torch.linalg.vector_norm(d, dim=1).square()
        counts += _bincount_rows(d, span, bins)
    mean_d = mean - lo_acc.squeeze(1)
    std = (sq / m - mean_d.square()).clamp_(min=0).sqrt()
    return _result(counts, f, bins, lo, hi, mean, std, constant, sample)


def _result(counts: torch.Tensor, f: int, bins: int, lo: torch.Tensor, hi: torch.Tensor, mean: torch.Tensor,
            std: torch.Tensor, constant: torch.Tensor, sample: int | None) -> Distribution:
    f32 = torch.float32
    return Distribution(
        counts=counts.view(f, bins).to(f32), bins=bins, min=lo.to(f32), max=hi.to(f32),
        mean=mean.to(f32), std=std.to(f32), constant=constant, sample=sample,
    )


def _small(x: torch.Tensor, bins: int, sample: int | None) -> Distribution:
    """The same numbers from one centred float32 filter-major copy (maps of up to 4M values)."""
    c, lo, hi, mean = _centred([x], torch.promote_types(x.dtype, torch.float32), "a distribution")
    acc = accumulator(x.device)
    var = torch.linalg.vector_norm(c, dim=2).to(acc).square_().div_(c.shape[2])
    if not math.isfinite(float(var.sum())):  # the float32 squares of huge values overflowed
        var = c.to(acc).square_().mean(dim=2)
    counts, std, constant = _histograms(c, lo, hi, mean, var, bins)
    return _result(counts[0], x.shape[1], bins, lo[0], hi[0], mean[0], std[0], constant[0], sample)


def feature_distribution_and_correlation(maps: torch.Tensor, *, bins: int = 32) -> tuple[Distribution, CorrelationResult]:
    """:func:`feature_distribution` and :func:`~convscope.analysis.feature_correlation` of the same
    maps at once, sharing their passes over the values: one filter-major copy, its minima, maxima
    and sums, and its centring. The Gram matrix of the centred maps gives the correlations, and
    its diagonal the standard deviations. What the in situ monitor runs when both views are due.

    The results equal the two functions' (up to float32 rounding: maps of more than about 4
    million values are streamed in float32 chunks, where :func:`feature_distribution` works in
    float64, so a value within about 1e-7 of its filter's span from a bin edge may be counted in
    the bin beside; maps so large that their float32 squares overflow take those functions' own
    paths).

    Example:
        >>> import torch
        >>> d, r = feature_distribution_and_correlation(torch.rand(8, 16, 26, 26), bins=32)
        >>> tuple(d.counts.shape), tuple(r.matrix.shape)
        ((16, 32), (16, 16))
    """
    x = _as_nfs(maps, "feature_distribution_and_correlation")
    _check_bins(bins)
    shared = _shared_streamed(x, bins) if x.numel() > _CHUNK_VALUES else _shared_passes([x], bins)
    if shared is None:  # huge maps overflow float32 products: rescaled there
        return feature_distribution(maps, bins=bins), feature_correlation(maps)
    counts, lo, hi, mean, std, constant, corr, dead = shared
    f = x.shape[1]
    return _result(counts[0], f, bins, lo[0], hi[0], mean[0], std[0], constant[0], None), CorrelationResult(corr[0], dead[0])


def feature_distributions_and_correlations(
    maps: Sequence[torch.Tensor], *, bins: int = 32
) -> list[tuple[Distribution, CorrelationResult]]:
    """:func:`feature_distribution_and_correlation` of several recordings of one layer at once.

    Maps of one shape are stacked, a few recordings at a time, and each operation runs once
    over the stack: for small maps the count of operations, not the data, is most of the cost,
    so the in situ monitor works through the recordings it gathers this way. The numbers equal
    those of each recording alone (up to float32 rounding in the sums), and the results of a
    stack cross to the host in one copy: the returned tensors are on the CPU. Maps of another
    shape start a new stack; large maps (over about 4 million values) take the one-recording path.

    Example:
        >>> import torch
        >>> out = feature_distributions_and_correlations([torch.rand(8, 16, 26, 26) for _ in range(3)])
        >>> len(out), tuple(out[0][0].counts.shape), tuple(out[0][1].matrix.shape)
        (3, (16, 32), (16, 16))
    """
    _check_bins(bins)
    # (as they are: a strided view, the in situ monitor's grid over big maps, is read once, when stacked)
    xs = [_as_floating_maps(m, "feature_distributions_and_correlations") for m in maps]
    out: list[tuple[Distribution, CorrelationResult]] = []
    i = 0
    while i < len(xs):
        x = xs[i]
        j = i + 1
        per = max(1, _STACK_VALUES // x.numel())
        while j < len(xs) and j - i < per and (xs[j].shape, xs[j].dtype, xs[j].device) == (x.shape, x.dtype, x.device):
            j += 1
        shared = None if j - i == 1 or x.numel() > _CHUNK_VALUES else _shared_passes(xs[i:j], bins)
        if shared is None:
            out.extend(feature_distribution_and_correlation(m, bins=bins) for m in maps[i:j])
        else:
            out.extend(_on_host(shared, bins))
        i = j
    return out


def _shared_passes(xs: list[torch.Tensor], bins: int) -> tuple[torch.Tensor, ...] | None:
    """Counts, minima, maxima, means, standard deviations and constant filters, then correlations
    and dead filters, of ``R`` maps of one shape (each result with a leading ``R``); ``None``
    where the float32 products overflow (huge maps: the callers rescale)."""
    c, lo, hi, mean = _centred(xs, torch.promote_types(xs[0].dtype, torch.float32), "a distribution")
    gram = torch.bmm(c, c.transpose(1, 2))
    var = gram.diagonal(dim1=1, dim2=2).to(accumulator(c.device)) / c.shape[2]  # a copy: _pearson works in place
    if not math.isfinite(float(var.sum())):
        return None
    counts, std, constant = _histograms(c, lo, hi, mean, var, bins)
    return (counts, lo, hi, mean, std, constant, *_pearson(gram, lo == hi))


def _first_pass(x: torch.Tensor, cols: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each filter's sum (float64, float32 on MPS), minimum and maximum of ``x`` (``N x F x S``),
    streamed over ``F x cols`` chunks; NaN or Inf show in the minima and maxima."""
    f = x.shape[1]
    acc = accumulator(x.device)
    total = torch.zeros(f, dtype=acc, device=x.device)
    lo = torch.full((f,), float("inf"), dtype=x.dtype, device=x.device)
    hi = torch.full((f,), float("-inf"), dtype=x.dtype, device=x.device)
    partial = torch.promote_types(x.dtype, torch.float32)
    for chunk in _chunks(x, cols):
        total += chunk.sum(dim=1, dtype=partial).to(acc)  # pairwise in the chunk, float64 across
        lo = torch.minimum(lo, chunk.amin(dim=1))
        hi = torch.maximum(hi, chunk.amax(dim=1))
    return total, lo, hi


def _shared_streamed(x: torch.Tensor, bins: int) -> tuple[torch.Tensor, ...] | None:
    """:func:`_shared_passes` of one layer's large maps (``N x F x S``), streamed: one pass for the
    minima, maxima and sums, one that centres each chunk into a reused float32 buffer, adds its
    product to the Gram matrix and then counts it into the histograms. The numbers are those of
    the one-copy path (float32 centred values, float64 sums); the working memory is one chunk."""
    n, f, s = x.shape
    cols = max(1, _CHUNK_VALUES // f)
    acc = accumulator(x.device)
    work = torch.promote_types(x.dtype, torch.float32)
    total, lo, hi = _first_pass(x, cols)
    lo, hi = lo.to(work), hi.to(work)
    if not (math.isfinite(float(total.sum())) and bool(torch.isfinite(lo).all() & torch.isfinite(hi).all())):
        return None  # NaN or Inf (the callers' own paths say which filters), or sums that overflow
    m = n * s
    mean = total / m
    centre = mean.to(work).unsqueeze(1)
    shift = centre - lo.unsqueeze(1)  # x - lo = (x - mean) + (mean - lo), as in _histograms
    span = hi - lo
    constant = span == 0
    span.masked_fill_(constant, 1.0)
    gram = torch.zeros(f, f, dtype=work, device=x.device)
    rest = torch.zeros(f, dtype=acc, device=x.device)
    sq = torch.zeros(f, dtype=acc, device=x.device)
    counts = torch.zeros(f, bins, dtype=torch.int64, device=x.device)
    buffer = torch.empty(f * min(cols, n * s), dtype=work, device=x.device)
    squares = torch.empty_like(buffer)
    for chunk in _chunks(x, cols):
        c = buffer[: chunk.numel()].view(chunk.shape)
        torch.sub(chunk, centre, out=c)
        gram.addmm_(c, c.T)
        # (the squares apart from the product, summed pairwise: a BLAS product, or a float32
        # vector_norm, sums a million terms to only about 1e-4 or 1e-3)
        sq += torch.mul(c, c, out=squares[: chunk.numel()].view(chunk.shape)).sum(dim=1).to(acc)
        rest += c.sum(dim=1).to(acc)
        counts += _bincount_rows(c.add_(shift), span, bins)
    var = sq / m
    if not (math.isfinite(float(var.sum())) and bool(torch.isfinite(gram.diagonal()).all())):
        return None
    rest /= m
    std = var.sub_(rest.square_()).clamp_(min=0).sqrt_().masked_fill_(constant, 0.0)
    one = [t.unsqueeze(0) for t in (counts, lo, hi, mean, std, constant)]
    return (*one, *_pearson(gram.unsqueeze(0), constant.unsqueeze(0).clone()))


def _on_host(shared: tuple[torch.Tensor, ...], bins: int) -> list[tuple[Distribution, CorrelationResult]]:
    """:func:`_shared_passes`' results, one pair per recording, copied to the host at once."""
    counts, lo, hi, mean, std, constant, corr, dead = shared
    r, f = lo.shape
    f32 = torch.float32
    parts = [counts, lo, hi, mean, std, constant, corr, dead]
    host = torch.cat([t.reshape(r, -1).to(f32) for t in parts], dim=1).cpu()  # counts are exact in float32 below 2**24
    sizes = [f * bins, f, f, f, f, f, f * f, f]
    c, lo, hi, mean, std, constant, corr, dead = host.split(sizes, dim=1)
    # each recording's tensors are views of the stack's (unbind: one call for all of them),
    # and its payload's arrays views of the stack's numpy (the moments lie side by side)
    array = host.numpy()
    at = np.cumsum([0, *sizes])
    moments = array[:, at[1] : at[5]].reshape(r, 4, f)
    dead_mask = dead > 0
    dead_host = dead_mask.numpy()
    views = zip(
        c.reshape(r, f, bins).unbind(0), lo.unbind(0), hi.unbind(0), mean.unbind(0), std.unbind(0),
        (constant > 0).unbind(0), corr.reshape(r, f, f).unbind(0), dead_mask.unbind(0), strict=True,
    )
    return [
        (
            Distribution(
                counts=ci, bins=bins, min=lo_i, max=hi_i, mean=mean_i, std=std_i, constant=const_i,
                host=(array[i, : at[1]].reshape(f, bins), moments[i]),
            ),
            CorrelationResult(matrix=corr_i, dead=dead_i, host=(array[i, at[6] : at[7]].reshape(f, f), dead_host[i])),
        )
        for i, (ci, lo_i, hi_i, mean_i, std_i, const_i, corr_i, dead_i) in enumerate(views)
    ]


def _histograms(
    c: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, mean: torch.Tensor, var: torch.Tensor, bins: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Counts (``R x F x bins``), standard deviations and constant filters (``R x F``) from
    :func:`~convscope.analysis.correlation._centred`'s results and each filter's variance
    (``c`` and ``var`` are overwritten)."""
    span = hi - lo
    constant = span == 0
    span.masked_fill_(constant, 1.0)
    # the float32 mean misses the true one by up to half an ulp: what that leaves in c is taken off
    # (it matters where a filter's spread is tiny against its mean); a constant filter's is 0
    rest = c.sum(dim=-1).to(var.dtype).div_(c.shape[-1])
    std = var.sub_(rest.square_()).clamp_(min=0).sqrt_().masked_fill_(constant, 0.0)
    # x - lo = c + (mean - lo), in place; a constant filter's values are then about 0: bin 0
    d = c.add_((mean.to(c.dtype) - lo).unsqueeze(-1))
    return _bincount_rows(d, span, bins), std, constant


def _bincount_rows(d: torch.Tensor, span: torch.Tensor, bins: int) -> torch.Tensor:
    """Counts of each row of ``d`` (``... x values``) in ``[0, span]`` (``d`` is overwritten), as
    ``... x bins`` int64: row ``r``'s value ``v`` goes to bin ``floor(v / span * bins)``, the
    largest (``v == span``) to the row's last bin. One ``bincount`` over every row: row ``r``'s
    bins are indices ``r * bins`` onwards."""
    rows = span.numel()
    index = torch.int32 if rows * bins < 2**31 else torch.int64  # int32 indices are cheaper to make
    k = d.div_(span.unsqueeze(-1)).mul_(bins).to(index).clamp_(max=bins - 1)  # truncation is floor: v >= 0
    k += _row_offsets(rows, bins, d.device, index).view(*span.shape, 1)
    return torch.bincount(k.reshape(-1), minlength=rows * bins).view(*span.shape, bins)


@functools.lru_cache(maxsize=32)
def _row_offsets(f: int, bins: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """``F x 1`` index of each row's first bin (cached: the monitor asks for the same ones every time)."""
    return (torch.arange(f, device=device, dtype=dtype) * bins).unsqueeze(1)


def _check_bins(bins: Any) -> None:
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
        raise DataError(f"bins must be a positive integer, got {bins!r}")


def _as_nfs(maps: Any, who: str) -> torch.Tensor:
    """``N x F x S`` floating view of ``N x F x ...`` maps, with a clear error otherwise."""
    x = _as_floating_maps(maps, who)
    return x.reshape(x.shape[0], x.shape[1], -1)


def _as_floating_maps(maps: Any, who: str) -> torch.Tensor:
    """``N x F x ...`` maps as they are (a strided view stays one), floating, with a clear error otherwise."""
    if not isinstance(maps, torch.Tensor):
        raise DataError(f"{who} needs feature maps as a torch.Tensor (N x F x ...), got {type(maps).__name__}")
    if maps.dim() < 2:
        raise DataError(
            f"feature maps must be N x F x H x W (or N x F for a dense layer), got shape {tuple(maps.shape)}; "
            "add the batch dimension with maps.unsqueeze(0)"
        )
    if maps.numel() == 0:
        raise DataError(f"feature maps of shape {tuple(maps.shape)} hold no values")
    x = maps.detach()
    return x if x.is_floating_point() else x.float()


def _sample_index(sample: int, n: int) -> int:
    if isinstance(sample, bool) or not isinstance(sample, int) or not -n <= sample < n:
        raise DataError(f"sample {sample!r} is out of range: the batch holds {n} samples (0..{n - 1})")
    return sample % n

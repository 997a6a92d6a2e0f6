"""How many samples the activation views need: fidelity and cost of ``max_samples`` / ``max_values``.

Run: python benchmarks/bench_samples.py [--steps N] [--rounds N]

The in situ monitor computes the distribution, correlation and filter-group views of a layer
from the first ``max_samples`` samples of the training batch, on a grid of at most ``max_values``
values a filter (``watch()``'s defaults: 8 and 4096). This trains the simplified LeNet-5 (batch
64, as benchmarks/bench_insitu.py does) and, every 10th step, computes the views from each
setting and from the whole batch at full resolution, the reference. Fidelity: how far each
setting's correlations and moments are from the reference's, and how often its groups of similar
filters are the reference's. Cost: what the monitor's work on the training thread takes per
recording of both layers for each setting (copying the grid, then the stacked analysis and the
groups of 20 recordings at once, as a batch of the monitor runs them, each setting run once
untimed before it is timed); medians of several rounds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_insitu as insitu  # noqa: E402
from _harness import machine, table  # noqa: E402

from convscope.analysis import (  # noqa: E402
    feature_distribution_and_correlation,
    feature_distributions_and_correlations,
    filter_groups,
)
from convscope.insitu._reduce import on_grid  # noqa: E402

#: (max_samples, max_values); None: the whole batch, every value
SETTINGS = [(4, 4096), (8, 4096), (16, 4096), (8, 1024), (None, None)]
DEFAULT = (8, 4096)
#: recordings analysed together in the cost measure (a batch of the monitor gathers 20 to 40)
BATCH = 20


def _label(setting: tuple[int | None, int | None]) -> str:
    samples, values = setting
    text = f"{'all 64' if samples is None else samples} samples, " + ("every value" if values is None else f"at most {values} values")
    return text + (" (default)" if setting == DEFAULT else "")


def _grid(out: torch.Tensor, setting: tuple[int | None, int | None]) -> torch.Tensor:
    samples, values = setting
    return on_grid(out if samples is None else out[:samples], values)


def _pairs(matrix: np.ndarray, iu: tuple[np.ndarray, np.ndarray]) -> set[tuple[int, int]]:
    return {(int(i), int(j)) for i, j in zip(*iu, strict=True) if matrix[i, j] >= 0.9}


def _grouped(labels: np.ndarray, iu: tuple[np.ndarray, np.ndarray]) -> set[tuple[int, int]]:
    return {(int(i), int(j)) for i, j in zip(*iu, strict=True) if labels[i] >= 0 and labels[i] == labels[j]}


def fidelity(steps: int) -> tuple[str, dict[str, list[torch.Tensor]]]:
    """The fidelity table, and the last ``BATCH`` recordings' outputs of each layer (for the cost)."""
    insitu.WORKLOAD.update(name="lenet", batch=64, warmup=0, device="cpu")
    data = insitu._data("lenet")
    model, opt = insitu._setup()
    layers = {n: m for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)}
    outs: dict[str, torch.Tensor] = {}
    for name, module in layers.items():
        module.register_forward_hook(lambda _m, _a, out, n=name: outs.__setitem__(n, out.detach().clone()))
    kept: dict[str, list[torch.Tensor]] = {n: [] for n in layers}
    found: dict[tuple[str, tuple], dict[str, list[float]]] = {}
    for step in range(steps):
        insitu._train_step(model, opt, data, step)
        if step % 10 or step == 0:
            continue
        for name, out in outs.items():
            kept[name] = [*kept[name][-(BATCH - 1):], out]
            ref_dist, ref_corr = feature_distribution_and_correlation(out)
            ref = ref_corr.matrix.numpy()
            iu = np.triu_indices(ref.shape[0], 1)
            ref_pairs, ref_groups = _pairs(ref, iu), _grouped(filter_groups(ref_corr).labels, iu)
            spread = ref_dist.std.numpy() + 1e-12
            for setting in SETTINGS[:-1]:
                grid = _grid(out, setting)
                dist, corr = feature_distribution_and_correlation(grid)
                r = corr.matrix.numpy()
                both = np.isfinite(r[iu]) & np.isfinite(ref[iu])
                diff = np.abs(r[iu][both] - ref[iu][both])
                pairs = _pairs(r, iu)
                f = found.setdefault((name, setting), {k: [] for k in ("values", "mae", "p95", "jaccard", "groups", "mean", "std")})
                f["values"].append(grid[:, 0].numel())
                f["mae"].append(float(diff.mean()))
                f["p95"].append(float(np.percentile(diff, 95)))
                f["jaccard"].append(1.0 if not pairs | ref_pairs else len(pairs & ref_pairs) / len(pairs | ref_pairs))
                f["groups"].append(float(_grouped(filter_groups(corr).labels, iu) == ref_groups))
                f["mean"].append(float(np.median(np.abs(dist.mean.numpy() - ref_dist.mean.numpy()) / spread)))
                f["std"].append(float(np.median(np.abs(dist.std.numpy() / spread - 1))))
    rows = []
    for (name, setting), f in found.items():
        rows.append((
            name, _label(setting), f"{statistics.mean(f['values']):.0f}", f"{statistics.mean(f['mae']):.3f}", f"{statistics.mean(f['p95']):.3f}",
            f"{statistics.mean(f['jaccard']):.2f}", f"{100 * statistics.mean(f['groups']):.0f}%",
            f"{statistics.mean(f['mean']):.3f}", f"{statistics.mean(f['std']):.3f}",
        ))
    recordings = len(next(iter(found.values()))["mae"])
    text = f"## simplified LeNet-5, batch 64, {steps} steps, views of {recordings} recordings a layer against the whole batch's\n\n" + table(
        ("layer", "setting", "values a filter", "|r - r_all| mean", "|r - r_all| p95", "similar pairs (r >= 0.9), Jaccard",
         "groups as the whole batch's", "mean error / std", "std error (relative)"),
        rows,
    ) + (
        "\n\nEvery 10th step of one training, each layer's views from the setting's samples and grid against the same\n"
        "views from all 64 samples at every value. r: the Pearson correlation of two filters' maps (every pair of\n"
        "filters); similar pairs: those at 0.9 or more (what the groups join), the overlap of the setting's with the\n"
        "reference's; groups: the share of recordings whose filter groups equal the reference's; the moments: each\n"
        "filter's mean error and standard deviation error over the reference's standard deviation (median over filters)."
    )
    return text, kept


def cost(kept: dict[str, list[torch.Tensor]], rounds: int) -> str:
    """The training thread's work per recording for each setting: grid copies, stacked analysis, groups."""
    def work(setting: tuple[int | None, int | None]) -> None:
        for outs in kept.values():
            grids = [_grid(out, setting).clone() for out in outs]
            for _dist, corr in feature_distributions_and_correlations(grids):
                filter_groups(corr)

    results: dict[tuple, list[float]] = {s: [] for s in SETTINGS}
    for _ in range(rounds):
        for setting in SETTINGS:
            work(setting)  # untimed: the first pass after another setting's meets memory not yet touched
            start = time.perf_counter()
            work(setting)
            results[setting].append((time.perf_counter() - start) / BATCH)
    base = statistics.median(results[DEFAULT])
    rows = [
        (_label(s), f"{statistics.median(t) * 1e6:.0f}", f"x{statistics.median(t) / base:.2f}") for s, t in results.items()
    ]
    return f"## simplified LeNet-5, the activation views' work per recording of both layers, {BATCH} recordings at a time, {rounds} rounds\n\n" + table(
        ("setting", "us a recording (median)", "against the default"), rows
    ) + (
        "\n\nCopying each layer's grid of the batch's output, then the distributions and correlations of the\n"
        f"{BATCH} recordings stacked (one operation each) and each recording's filter groups: the part of a recording's\n"
        "cost that the setting changes, on the training thread (benchmarks/bench_insitu.py has the whole)."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=2000, help="training steps (a recording every 10)")
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    print(f"# how many samples the activation views need ({machine()})\n")
    text, kept = fidelity(args.steps)
    print(text + "\n")
    print(cost(kept, args.rounds))


if __name__ == "__main__":
    main()

"""The in situ TensorView case study: simplified LeNet-5 on MNIST with and without online pruning.

Same seed, same data order, same schedule; the only difference is online pruning of conv1
filters that the correlation groups call redundant. Prints conv1's filters at the end and the
final test accuracy of both, per seed, and the accuracy difference (the paper reached 12 of 16
filters with no loss of accuracy).

Run: python benchmarks/bench_casestudy.py [--steps 1500] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import machine, table  # noqa: E402

from convscope.insitu.demo import run_demo  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    print(f"# case study: simplified LeNet-5, {args.steps} steps, batch 64, SGD 0.05 momentum 0.9 ({machine()})\n")
    rows, diffs = [], []
    for seed in args.seeds:
        plain = run_demo(steps=args.steps, logdir=None, serve=False, prune=False, seed=seed, progress=False)
        pruned = run_demo(steps=args.steps, logdir=None, serve=False, prune=True, seed=seed, progress=False)
        filters = pruned.prunings[-1]["after"] if pruned.prunings else 16
        when = ", ".join(f"{p['before']}->{p['after']} at {p['step']}" for p in pruned.prunings) or "none"
        diff = (pruned.test_accuracy - plain.test_accuracy) * 100
        diffs.append(diff)
        rows.append((seed, f"{plain.test_accuracy:.2%}", f"{pruned.test_accuracy:.2%}", f"{diff:+.2f}", filters, when))
    print(table(("seed", "test acc, no pruning", "test acc, pruned", "difference (points)", "conv1 filters", "prunings"), rows))
    print(f"\nmedian difference {statistics.median(diffs):+.2f} points; test set: 1,000 held-out digits of mnist-5k")


if __name__ == "__main__":
    main()

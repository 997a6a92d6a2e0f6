"""Cost of each analysis on real feature maps, and the correlation against numpy.corrcoef.

Workloads: the simplified LeNet-5's conv1 and conv2 on 64 bundled digits, and VGG-16's conv1
(64 filters) on 8 photographs at 224x224 (random-initialised weights: the cost does not depend
on them). Medians of several rounds on this machine's CPU; saliency and attacks on LeNet.

Run: python benchmarks/bench_analysis.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import machine, table, timeit  # noqa: E402

import convscope  # noqa: E402
from convscope import analysis as A  # noqa: E402


def _maps():
    lenet = convscope.load_model("lenet5-simplified")
    digits = convscope.load_dataset("mnist-5k", split="test", spec=lenet.input_spec).images[:64]
    out = convscope.capture(lenet, digits, layers=["conv1", "conv2"]).outputs
    vgg = convscope.load_model("vgg16", pretrained=False)
    photos = convscope.load_dataset("foolbox-imagenet", spec=vgg.input_spec).images[:8]
    v = convscope.capture(vgg, photos, layers=["features.0"]).outputs["features.0"]
    weights = {"lenet conv1": lenet.module.conv1.weight.detach(), "lenet conv2": lenet.module.conv2.weight.detach(),
               "vgg16 conv1": vgg.module.features[0].weight.detach()}
    return {"lenet conv1": out["conv1"], "lenet conv2": out["conv2"], "vgg16 conv1": v}, weights, lenet, digits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    maps, weights, lenet, digits = _maps()
    print(f"# analysis costs ({machine()})\n")
    rows = []
    for name, m in maps.items():
        w = weights[name]
        tracker = A.TrajectoryTracker()
        health = A.GradientHealthTracker()
        corr = A.feature_correlation(m)
        fns = {
            "correlation": lambda m=m: A.feature_correlation(m),
            "groups (union)": lambda c=corr: A.filter_groups(c, threshold=0.9),
            "distribution (32 bins)": lambda m=m: A.feature_distribution(m, bins=32),
            "images (1 sample)": lambda m=m: A.feature_images(m, sample=0),
            "weight grid": lambda w=w: A.weight_grid(w).to_payload(),
            "trajectory point": lambda w=w, t=tracker: t.update(w + 1e-3 * torch.randn_like(w)),
            "gradient health": lambda w=w, h=health, m=m: h.update("x", w, w, activations=m),
        }
        for label, fn in fns.items():
            t = timeit(fn, rounds=args.rounds)
            rows.append((name, tuple(m.shape), label, f"{t['median'] * 1000:.2f}"))
    print(table(("layer", "maps", "analysis", "median ms"), rows))
    print()
    rows = []
    for name, m in maps.items():
        f = m.shape[1]
        flat = m.transpose(0, 1).reshape(f, -1).numpy()
        ours = timeit(lambda m=m: A.feature_correlation(m), rounds=args.rounds)["median"]
        ref = timeit(lambda flat=flat: np.corrcoef(flat), rounds=args.rounds)["median"]
        err = float(np.nanmax(np.abs(A.feature_correlation(m).matrix.numpy() - np.nan_to_num(np.corrcoef(flat.astype(np.float64))))))
        rows.append((name, f"{f} x {flat.shape[1]:,}", f"{ours * 1000:.1f}", f"{ref * 1000:.1f}", f"{ref / ours:.2f}x", f"{err:.1e}"))
    print(table(("layer", "filters x values", "convscope ms", "numpy.corrcoef ms", "speed-up", "max difference"), rows))
    print()
    rows = []
    x = convscope.load_dataset("mnist-5k", split="test").images[:8]
    for method in ("gradient", "integrated_gradients", "gradcam", "occlusion"):
        t = timeit(lambda method=method: A.saliency(lenet, x, method=method), rounds=max(2, args.rounds // 2))
        rows.append((f"saliency {method}", 8, f"{t['median'] * 1000:.0f}"))
    for attack, params in (("fgsm", {"eps": 0.3}), ("pgd", {"eps": 0.3}), ("deepfool", {"max_iter": 20}), ("cw", {})):
        t = timeit(lambda attack=attack, params=params: A.perturb(lenet, x, attack=attack, **params), rounds=1, warmup=0)
        rows.append((f"attack {attack}", 8, f"{t['median'] * 1000:.0f}"))
    print(table(("explorer computation (LeNet-5, 28x28)", "inputs", "median ms"), rows))


if __name__ == "__main__":
    main()

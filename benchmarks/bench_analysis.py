"""Cost of each analysis on real feature maps; correlation time and peak memory against numpy/torch.

Workloads: the simplified LeNet-5's conv1 and conv2 on 64 bundled digits, and VGG-16's conv1
(64 filters) on 8 photographs at 224x224 (random-initialised weights: the cost does not depend
on them). Medians of several rounds on this machine's CPU. The trajectory tracker is measured
with a full point buffer (its steady state), the gradient-health tracker with the previous
weights and the activations, as the in situ monitor calls them. Saliency and attacks on LeNet.

Peak memory of the correlation is measured in a fresh process per method: the peak resident
size (``VmHWM``) is reset right before the call, so the figure is what the call adds on top of
the maps (Linux only).

Run: python benchmarks/bench_analysis.py [--rounds 5] [--no-explorer]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap
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
    out = convscope.capture(lenet, digits, layers=["relu1", "relu2"]).outputs
    vgg = convscope.load_model("vgg16", pretrained=False)
    photos = convscope.load_dataset("foolbox-imagenet", spec=vgg.input_spec).images[:8]
    v = convscope.capture(vgg, photos, layers=["features.1"]).outputs["features.1"]
    weights = {"lenet conv1": lenet.module.conv1.weight.detach(), "lenet conv2": lenet.module.conv2.weight.detach(),
               "vgg16 conv1": vgg.module.features[0].weight.detach()}
    return {"lenet conv1": out["relu1"], "lenet conv2": out["relu2"], "vgg16 conv1": v}, weights, lenet, digits


def _full_tracker(w: torch.Tensor) -> A.TrajectoryTracker:
    tracker = A.TrajectoryTracker()
    gen = torch.Generator().manual_seed(0)
    for _ in range(tracker.max_points + 40):  # past the first thinning: the steady state
        w = w + 1e-3 * torch.randn(w.shape, generator=gen)
        tracker.update(w)
    return tracker


_PEAK = textwrap.dedent(
    """
    import json, sys, numpy as np, torch
    from convscope.analysis import feature_correlation

    def status(key):
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith(key + ":")) / 1024

    torch.set_num_threads(1)
    maps = torch.randn(8, 64, 224, 224, generator=torch.Generator().manual_seed(0)).relu_()
    flat = maps.transpose(0, 1).reshape(64, -1)  # the F x values matrix numpy and torch need (a copy)
    fns = {"convscope": lambda: feature_correlation(maps), "torch.corrcoef": lambda: torch.corrcoef(flat),
           "numpy.corrcoef": lambda: np.corrcoef(flat.numpy())}
    fn = fns[sys.argv[1]]
    feature_correlation(maps[:1, :, :8, :8])
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = status("VmRSS")
    fn()
    print(json.dumps({"peak_mb": status("VmHWM") - before}))
    """
)


def _peak_mb(method: str) -> float:
    out = subprocess.run([sys.executable, "-c", _PEAK, method], capture_output=True, text=True, check=True)
    return float(json.loads(out.stdout.strip().splitlines()[-1])["peak_mb"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-explorer", action="store_true", help="skip saliency and attacks")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    maps, weights, lenet, digits = _maps()
    print(f"# analysis costs ({machine()})\n")
    rows = []
    totals = {}
    for name, m in maps.items():
        w = weights[name]
        tracker = _full_tracker(w)
        health = A.GradientHealthTracker()
        corr = A.feature_correlation(m)
        grad = torch.randn_like(w) * 1e-2
        fns = {
            "correlation": lambda m=m: A.feature_correlation(m).to_payload(),
            "groups (pairs, 0.9)": lambda c=corr: A.filter_groups(c, threshold=0.9).to_payload(),
            "groups (hierarchical, 0.9)": lambda c=corr: A.filter_groups(c, threshold=0.9, method="hierarchical"),
            "distribution (32 bins)": lambda m=m: A.feature_distribution(m, bins=32).to_payload(),
            "images (1 sample, 64 px)": lambda m=m: A.feature_images(m, sample=0, max_size=64).to_payload(),
            "weight grid": lambda w=w: A.weight_grid(w).to_payload(),
            "trajectory point (128 kept)": lambda w=w, t=tracker: t.update(w + 1e-3 * torch.randn_like(w)).to_payload(),
            "gradient health": lambda w=w, g=grad, h=health, m=m: h.update("x", g, w, previous_weight=w - g, activations=m),
        }
        totals[name] = 0.0
        for label, fn in fns.items():
            t = timeit(fn, rounds=args.rounds)
            rows.append((name, "x".join(map(str, m.shape)), label, f"{t['median'] * 1000:.2f}"))
            if "hierarchical" not in label:
                totals[name] += t["median"]
        rows.append((name, "", "all per-step analyses (pairs groups)", f"{totals[name] * 1000:.2f}"))
    print(table(("layer", "maps", "analysis", "median ms"), rows))
    print()

    a = convscope.capture(lenet, digits[:1], layers=["conv1", "conv2", "fc1", "fc2"]).outputs
    b = convscope.capture(lenet, (digits[:1] + 0.3 * torch.randn_like(digits[:1])), layers=["conv1", "conv2", "fc1", "fc2"]).outputs
    t = timeit(lambda: A.compare_pair(a, b), rounds=args.rounds)
    print(table(("pair comparison", "layers", "median ms"), [("lenet digit vs noisy copy", 4, f"{t['median'] * 1000:.2f}")]))
    print()

    rows = []
    for name, m in maps.items():
        f = m.shape[1]
        flat = m.transpose(0, 1).reshape(f, -1).contiguous()
        ours = timeit(lambda m=m: A.feature_correlation(m), rounds=args.rounds)["median"]
        ref_t = timeit(lambda flat=flat: torch.corrcoef(flat), rounds=args.rounds)["median"]
        ref_n = timeit(lambda flat=flat: np.corrcoef(flat.numpy()), rounds=args.rounds)["median"]
        with np.errstate(invalid="ignore", divide="ignore"):
            exact = np.corrcoef(flat.double().numpy())
        r = A.feature_correlation(m)
        live = ~r.dead.numpy()
        err = float(np.abs(r.matrix.numpy() - exact)[np.ix_(live, live)].max())
        rows.append((name, f"{f} x {flat.shape[1]:,}", f"{ours * 1000:.1f}", f"{ref_t * 1000:.1f}", f"{ref_n * 1000:.1f}",
                     f"{ref_n / ours:.1f}x", f"{err:.1e}", int(r.dead.sum())))
    print(table(("layer", "filters x values", "convscope ms", "torch.corrcoef ms", "numpy.corrcoef ms",
                 "vs numpy", "max |diff| (live)", "dead"), rows))
    print()
    if sys.platform.startswith("linux"):
        rows = [(method, f"{_peak_mb(method):.1f}") for method in ("convscope", "torch.corrcoef", "numpy.corrcoef")]
        print(table(("correlation of 8x64x224x224 maps (103 MB)", "peak MB added"), rows))
        print()

    if args.no_explorer:
        return
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

"""Load VGG-16 (and the LeNets) into canonical form and capture every layer's output.

Run: python benchmarks/bench_load_capture.py [--rounds N]
Prints medians of several rounds on CPU; machines here are shared and noisy.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import machine, table, timeit  # noqa: E402

import convscope  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"# load + capture every layer ({machine()})\n")
    rows = []
    for name, pretrained in (("lenet5-simplified", True), ("vgg12", False), ("vgg16", False), ("resnet50", False)):
        load = timeit(lambda n=name, p=pretrained: convscope.load_model(n, pretrained=p), rounds=max(2, args.rounds // 2))
        model = convscope.load_model(name, pretrained=pretrained)
        x = torch.rand(1, *model.input_spec.shape)
        layers = model.graph.layer_ids(hookable=True)
        plain = timeit(lambda m=model, x=x: m.predict(x), rounds=args.rounds)
        cap = timeit(lambda m=model, x=x: convscope.capture(m, m.input_spec.prepare(x)), rounds=args.rounds)
        out = convscope.capture(model, model.input_spec.prepare(x))
        mb = sum(t.numel() * t.element_size() for t in out.outputs.values()) / 2**20
        rows.append(
            (
                name,
                "x".join(map(str, model.input_spec.shape)),
                len(layers),
                f"{load['median']:.3f}",
                f"{plain['median'] * 1000:.1f}",
                f"{cap['median'] * 1000:.1f}",
                f"{cap['median'] / plain['median']:.2f}",
                f"{mb:.1f}",
            )
        )
    print(
        table(
            ("model", "input", "layers", "load s", "forward ms", "capture all ms", "capture/forward", "outputs MiB"),
            rows,
        )
    )


if __name__ == "__main__":
    main()

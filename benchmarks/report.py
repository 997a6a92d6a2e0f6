"""Regenerate benchmarks/RESULTS.md: every benchmark of the project, its tables and plots.

Each benchmark script runs in its own process (so one's memory and threads never touch the
next); its Markdown output is kept in ``benchmarks/results/<name>.md`` and a plot is drawn from
each of its tables into ``benchmarks/results/img/``. RESULTS.md gathers them under the
machine's details and a guide to reading them. Run one benchmark again with ``--only NAME``:
the others' kept outputs are reused.

Run:
    python benchmarks/report.py            # everything, full settings (about an hour)
    python benchmarks/report.py --quick    # everything, short settings (about 15 minutes)
    python benchmarks/report.py --only insitu export
    python benchmarks/report.py --only insitu --args '--rounds 3 --block 0'   # one, with other settings
    python benchmarks/report.py --list
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import shlex
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

import _harness

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
IMG = RESULTS / "img"


@dataclass(frozen=True)
class Bench:
    name: str
    script: str
    title: str
    about: str
    full: list[str] = field(default_factory=list)
    quick: list[str] = field(default_factory=list)


BENCHES = [
    Bench("insitu", "bench_insitu.py", "In situ overhead against TensorBoard",
          "Training steps per second with convscope watching (every 10 steps and every step) and with TensorBoard "
          "histograms of every parameter and gradient, for the simplified LeNet-5 and a VGG-16-sized first block.",
          ["--rounds", "5"], ["--rounds", "2", "--steps", "150", "--vgg-steps", "12"]),
    Bench("scaling", "bench_scaling.py", "In situ cost against the number of filters and layers",
          "What one full recording costs as networks grow.", ["--rounds", "3"], ["--rounds", "1", "--steps", "6"]),
    Bench("casestudy", "bench_casestudy.py", "The TensorView case study: online pruning of LeNet-5",
          "conv1's filters and test accuracy with and without online pruning, same seeds.",
          [], ["--steps", "600", "--seeds", "0"]),
    Bench("samples", "bench_samples.py", "How many samples the activation views need",
          "Fidelity and cost of the distribution, correlation and group views from max_samples samples on a grid of "
          "max_values values a filter, against the whole batch's.", [], ["--steps", "600", "--rounds", "5"]),
    Bench("analysis", "bench_analysis.py", "Cost of each analysis",
          "Correlation, groups, trajectory, distribution, gradient health, saliency and attacks on real maps.",
          ["--rounds", "5"], ["--rounds", "2"]),
    Bench("load_capture", "bench_load_capture.py", "Loading models and capturing every layer",
          "Time to load each format and to capture every layer's output.", ["--rounds", "5"], ["--rounds", "2"]),
    Bench("data", "bench_data.py", "Bundled data sets", "Time to load the bundled data sets.", ["--rounds", "5"], ["--rounds", "2"]),
    Bench("store", "bench_store.py", "Run store and server reads",
          "Writes, reads on a long run, the same over HTTP, size on disk, and idle live viewers.",
          [], ["--steps", "20000", "--rounds", "3", "--viewers", "10"]),
    Bench("dashboard", "bench_dashboard.py", "The live path: training to browser",
          "Latency from a frame's creation to its drawing in Chromium, ingest and fan-out rates, opening a long run.",
          [], ["--seconds", "5", "--viewers", "2"]),
    Bench("load", "bench_load.py", "Load: several live runs and viewers on one server",
          "Frames lost, latency and the server's memory with several trainings and viewers at once, for minutes.",
          ["--seconds", "180"], ["--seconds", "30", "--runs", "2", "--viewers", "2"]),
    Bench("explorer", "bench_explorer.py", "Model explorer",
          "From selecting an input to every layer drawn, and opening a 50-layer residual network.",
          [], ["--rounds", "2"]),
    Bench("export", "bench_export.py", "Exports against CSV, and ParaView",
          "VGG-16 conv1 feature maps of 8 images: size, write and load time of CSV, VTK and npy; ParaView's load time.",
          [], ["--rounds", "1"]),
]


def machine_details() -> list[tuple[str, str]]:
    cpu = _harness.cpu()
    mem = "?"
    try:
        kib = int(next(x for x in Path("/proc/meminfo").read_text().splitlines() if x.startswith("MemTotal")).split()[1])
        mem = f"{kib / 2**20:.0f} GiB"
    except (OSError, StopIteration, ValueError):
        pass
    try:
        import torch

        torch_v = f"{torch.__version__} ({torch.get_num_threads()} threads)"
    except ImportError:
        torch_v = "not installed"
    commit = _git("rev-parse", "--short", "HEAD")
    # (the report's own outputs, rewritten by every run, do not make the code dirty)
    dirty = " (with uncommitted changes)" if _git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!benchmarks/RESULTS.md", ":!benchmarks/results") else ""
    return [
        ("CPU", f"{cpu}, {os.cpu_count()} logical cores"),
        ("memory", mem),
        ("system", f"{platform.system()} {platform.release()}"),
        ("Python", platform.python_version()),
        ("torch", torch_v),
        ("convscope commit", f"{commit or '?'}{dirty}"),
    ]


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=HERE.parent, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def run(bench: Bench, quick: bool, details: dict[str, str], given: list[str] | None = None) -> str:
    """Run one benchmark (with its full or quick settings, or the ``given`` arguments); its Markdown
    output with a footer: command, time, and ``details`` (the machine)."""
    args = given if given is not None else bench.quick if quick else bench.full
    cmd = [sys.executable, str(HERE / bench.script), *args]
    print(f"== {bench.name}: {' '.join(cmd[1:])}", flush=True)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=HERE.parent, capture_output=True, text=True)
    took = time.perf_counter() - start
    out = proc.stdout.strip()
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        out += f"\n\n**This benchmark failed** (exit {proc.returncode}); the end of its error output:\n\n```\n{tail}\n```"
    stamp = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    where = f"{details['CPU']}, torch {details['torch']}, commit {details['convscope commit']}"
    out += f"\n\n<sub>`python benchmarks/{bench.script} {' '.join(args)}`, {took:.0f} s, {stamp}; {where}</sub>\n"
    print(f"   {took:.0f} s, exit {proc.returncode}", flush=True)
    return out


# --- plots ---------------------------------------------------------------------------------------
_NUMBER = re.compile(r"^[+-]?[\d,]*\.?\d+(?:e[+-]?\d+)?")


def tables(markdown: str) -> list[tuple[str, list[str], list[list[str]]]]:
    """Every Markdown table with the heading above it: (heading, headers, rows)."""
    found, heading, lines = [], "", markdown.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        if line.startswith("|") and i + 1 < len(lines) and set(lines[i + 1].replace("|", "").strip()) <= set("-: "):
            headers = [c.strip() for c in line.strip("|").split("|")]
            rows, i = [], i + 2
            while i < len(lines) and lines[i].startswith("|"):
                rows.append([c.strip() for c in lines[i].strip("|").split("|")])
                i += 1
            found.append((heading, headers, rows))
            continue
        i += 1
    return found


def number(cell: str) -> float | None:
    m = _NUMBER.match(cell.replace("\u2212", "-").strip().lstrip("x×"))
    if not m:
        return None
    try:
        return float(m.group(0).replace(",", ""))
    except ValueError:
        return None


def _plot_column(headers: list[str], rows: list[list[str]]) -> int | None:
    """The column to draw: the first measured one (time, rate, share or size) with numbers in most rows."""
    units = ("ms", " s", "s)", "/s", "%", "mib", "mb", "kib", "overhead", "latency", "time", "ratio", "speed")
    for j, h in enumerate(headers[1:], start=1):
        if any(u in h.lower() for u in units):
            values = [number(r[j]) for r in rows if j < len(r)]
            if sum(v is not None for v in values) >= max(2, len(rows) // 2):
                return j
    return None


def plot(name: str, index: int, heading: str, headers: list[str], rows: list[list[str]]) -> str | None:
    """A horizontal bar chart of the table's first measured column; the image's path, or None."""
    j = _plot_column(headers, rows)
    if j is None or len(rows) < 2:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [r[0] for r in rows if j < len(r) and number(r[j]) is not None]
    values = [number(r[j]) for r in rows if j < len(r) and number(r[j]) is not None]
    colours = ["#c0392b" if "tensorboard" in lab.lower() or "csv" in lab.lower() or "naive" in lab.lower()
               else "#2c6fbb" for lab in labels]
    fig, ax = plt.subplots(figsize=(7.5, 0.42 * len(labels) + 1.2), dpi=110)
    ax.barh(range(len(values)), values, color=colours)
    ax.set_yticks(range(len(values)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(headers[j], fontsize=9)
    # over the whole figure, not the axes: long bar labels push the axes right and cut a centred title
    fig.suptitle("\n".join(textwrap.wrap(heading, 80)[:2]), fontsize=10)
    if values and min(values) > 0 and max(values) / min(values) > 200:
        ax.set_xscale("log")
    for k, v in enumerate(values):
        ax.text(v, k, f" {_short(v)}", va="center", fontsize=7)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    IMG.mkdir(parents=True, exist_ok=True)
    path = IMG / f"{name}-{index}.png"
    fig.savefig(path)
    plt.close(fig)
    return f"results/img/{path.name}"


def _short(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"


def with_plots(name: str, markdown: str) -> str:
    """The benchmark's Markdown with a plot after each table that has a measured column."""
    found = iter(tables(markdown))
    out: list[str] = []
    lines = markdown.splitlines()
    for i, line in enumerate(lines):
        out.append(line)
        ends_table = line.startswith("|") and (i + 1 == len(lines) or not lines[i + 1].startswith("|"))
        if ends_table and i >= 1 and lines[i - 1].startswith("|"):
            k = len([x for x in out if x.startswith("![")])
            heading, headers, rows = next(found)
            image = plot(name, k, heading, headers, rows)
            if image:
                out += ["", f"![{heading or name}]({image})"]
    return "\n".join(out) + "\n"


GUIDE = """\
## How to read these figures

* **Medians and ratios.** The machines are shared and noisy: every timing is a median of
  several rounds, and comparisons (convscope against TensorBoard, VTK against CSV) are measured
  side by side in the same run, interleaved where the benchmark says so. Trust the ratios more
  than the absolute figures, which move with the machine and its load.
* **Overhead** is (time with it / time without it - 1); +3% means three hundredths slower.
  convscope's in situ monitor has an overhead budget (3% of training time by default): rows
  that say "no budget" record every asked-for view whatever it costs, the others show how many
  recordings the budget allowed. The in situ table times the steady state (an untimed warm-up
  first, reported as start-up; the analysis still queued at close() is counted) and gives the
  median and interquartile range of per-round paired ratios.
* **Plots** draw the first measured column of each table (blue: convscope; red: the tool or
  method it is compared with). A log scale is used where values span more than 200x.
* A benchmark that could not run here (no browser, no ParaView) says so in its section.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short settings (for a quick look, not for quoting)")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these benchmarks, reuse the others' kept outputs")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument("--no-run", action="store_true", help="only rebuild RESULTS.md from the kept outputs")
    parser.add_argument(
        "--args", metavar="ARGS", help="the arguments of the one benchmark named by --only, instead of its full settings "
        "(quoted: --only insitu --args '--rounds 3 --block 0'); the footer shows them",
    )
    args = parser.parse_args()
    if args.list:
        for b in BENCHES:
            print(f"{b.name:14} {b.script:24} {b.title}")
        return
    names = {b.name for b in BENCHES}
    unknown = set(args.only or ()) - names
    if unknown:
        parser.error(f"unknown benchmark(s) {sorted(unknown)}; --list shows them")
    if args.args is not None and (not args.only or len(args.only) != 1 or args.quick):
        parser.error("--args goes with --only and one benchmark's name (and not with --quick)")
    given = None if args.args is None else shlex.split(args.args)
    RESULTS.mkdir(exist_ok=True)
    here = machine_details()  # before the runs write their outputs (which git would call uncommitted changes)
    for bench in BENCHES:
        if args.no_run or (args.only and bench.name not in args.only):
            continue
        (RESULTS / f"{bench.name}.md").write_text(run(bench, args.quick, dict(here), given))

    sections, toc = [], []
    for bench in BENCHES:
        kept = RESULTS / f"{bench.name}.md"
        body = kept.read_text() if kept.exists() else "_Not run yet: `python benchmarks/report.py --only " + bench.name + "`._\n"
        body = re.sub(r"^# .*\n", "", body, count=1)  # the script's own title; ours is the section's
        body = re.sub(r"^(#+) ", lambda m: "#" * (len(m.group(1)) + 1) + " ", body, flags=re.M)
        anchor = bench.name.replace("_", "-")
        toc.append(f"* [{bench.title}](#{anchor})")
        sections.append(f'<a id="{anchor}"></a>\n\n## {bench.title}\n\n{bench.about}\n\n{with_plots(bench.name, body)}')
    if args.no_run:  # nothing ran here: this machine says nothing about the figures
        intro = (f"Rebuilt from the kept outputs by `python benchmarks/report.py --no-run` on {dt.date.today().isoformat()}; "
                 "each section ends with the command, time and (since 2026-12-03) machine of its own run.\n\n")
    else:
        machine = "\n".join(f"| {k} | {v} |" for k, v in here)
        mode = "quick settings" if args.quick else "full settings"
        ran = "every benchmark" if not args.only else ", ".join(args.only)
        intro = (
            f"Generated by `python benchmarks/report.py` on {dt.date.today().isoformat()} ({mode}). This run measured "
            f"{ran} on the machine below; each section ends with the command, time and (since 2026-12-03) machine "
            f"of its own run.\n\n| machine | |\n|---|---|\n{machine}\n\n"
        )
    text = "# convscope benchmark results\n\n" + intro + f"{GUIDE}\n## Contents\n\n" + "\n".join(toc) + "\n\n" + "\n\n".join(sections)
    (HERE / "RESULTS.md").write_text(text)
    print(f"wrote {HERE / 'RESULTS.md'}")


if __name__ == "__main__":
    main()

"""The ``convscope`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from convscope.errors import ConvscopeError, DataError

if TYPE_CHECKING:
    import torch

    from convscope.models._spec import LoadedModel

__all__ = ["main"]

_SUMMARY_EXAMPLES = """\
examples:
  convscope summary lenet5-simplified            a bundled model on a bundled digit
  convscope summary model.onnx --input cat.png   any format, your own image
  convscope summary weights.safetensors --arch vgg12
  convscope summary whole_model.pt --trust       a pickled model you trust
"""

_ZOO_EXAMPLES = """\
examples:
  convscope zoo                          list the bundled models
  convscope zoo train lenet5-simplified  (re)train its weights on the bundled digits
"""

_ZOO_TRAIN_EXAMPLES = """\
examples:
  convscope zoo train lenet5-simplified                 retrain the cached weights
  convscope zoo train lenet5 --epochs 2 --out lenet5.safetensors
"""


_DEMO_EXAMPLES = """examples:
  convscope demo                      # train, open the live dashboard, keep serving
  convscope demo --steps 2000 --every 5 --no-browser
  convscope demo --no-serve --logdir runs   # only write the run; `convscope serve --logdir runs` later
"""

_RUNS_EXAMPLES = """examples:
  convscope runs                                # ./convscope-runs
  convscope runs --logdir runs --json
"""

_SERVE_EXAMPLES = """examples:
  convscope serve                               # ./convscope-runs on http://127.0.0.1:8765
  convscope serve --logdir runs --port 0 --open
  convscope serve --host 0.0.0.0 --token s3cret # reachable from other machines: token required
"""


MODEL_HELP = "zoo name (see `convscope zoo`) or model file (.pt2 .pt .pth .bin .safetensors .onnx .keras .h5 .hdf5)"


def positive_int(text: str) -> int:
    """An option's value that counts something (steps, epochs): a whole number above 0."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number above 0, not {text!r}")
    return value


def port_number(*, free: bool = True) -> Callable[[str], int]:
    """An option's value that is a TCP port: 1 to 65535, or 0 (any free one) where ``free``."""
    lowest = 0 if free else 1

    def port(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = -1
        if not lowest <= value <= 65535:
            raise argparse.ArgumentTypeError(
                f"must be a port from {lowest}{' (any free one)' if free else ''} to 65535, not {text!r}"
            )
        return value

    return port


def check_folder(path: str | Path, *, option: str) -> None:
    """Say before any work that ``path`` cannot become a folder: it, or a folder above it, is a file."""
    blocking = _file_in_the_way(Path(path))
    if blocking is not None:
        where = "is a file" if blocking == Path(path) else f"lies under {blocking}, which is a file"
        raise DataError(f"{option} {path} {where}, not a folder; pass {option} a folder")


def _file_in_the_way(path: Path) -> Path | None:
    """The file that ``path`` is or lies under (so no folder can be made there), else None."""
    for existing in (path, *path.absolute().parents):
        if existing.exists():
            return None if existing.is_dir() else existing
    return None


def add_model_options(p: argparse.ArgumentParser, *, trust_help: str) -> None:
    """The options of commands that load a model: --arch, --input-shape, --trust, --untrained."""
    p.add_argument("--arch", metavar="ARCH", help="architecture for a state dict: zoo name or package.module:Class")
    p.add_argument("--input-shape", metavar="C,H,W", help="input shape where the file does not say, e.g. 1,28,28")
    p.add_argument("--trust", action="store_true", help=trust_help)
    p.add_argument("--untrained", action="store_true", help="for zoo models: skip training/loading weights")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="convscope",
        description="See inside convolutional networks while they train and after.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run `convscope COMMAND --help` for each command's options and examples.",
    )
    parser.add_argument("--version", action="version", version=f"convscope {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "summary",
        help="print a model's structure table and its prediction for one input",
        description="Load a model (zoo name or file), print every layer with its shapes and parameters, "
        "and the prediction for one input (a bundled sample unless --input is given).",
        epilog=_SUMMARY_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", help=MODEL_HELP)
    p.add_argument("--input", metavar="FILE", help="an image (PNG/JPEG) or .npy array to predict; default a bundled sample")
    add_model_options(p, trust_help="allow a pickled whole model (runs code from the file)")
    p.add_argument("--json", action="store_true", help="print the ModelGraph as JSON instead of a table")

    z = sub.add_parser(
        "zoo",
        help="list bundled models, or train one's weights",
        description="The bundled models. MNIST models are trained on the bundled digits on first use and cached.",
        epilog=_ZOO_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    zsub = z.add_subparsers(dest="zoo_command", metavar="ACTION")
    zt = zsub.add_parser(
        "train",
        help="train a zoo model on its bundled data and cache the weights",
        description="Train a zoo model on its bundled data set and cache its weights (or write them to --out).",
        epilog=_ZOO_TRAIN_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    zt.add_argument("name", help="the zoo model (see `convscope zoo`)")
    zt.add_argument("--epochs", type=positive_int, default=8, metavar="N", help="passes over the training data (default 8)")
    zt.add_argument("--seed", type=int, default=0, metavar="N", help="random seed (default 0)")
    zt.add_argument("--out", metavar="FILE", help="write the weights here instead of the cache")

    d = sub.add_parser(
        "demo",
        help="train the simplified LeNet-5 in situ and watch it live in the browser",
        description="Train the simplified LeNet-5 of the in situ TensorView paper on the bundled MNIST digits "
        "with every view recorded and online pruning of redundant conv1 filters, and open the live dashboard.",
        epilog=_DEMO_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    d.add_argument("--steps", type=positive_int, default=600, metavar="N", help="training steps (default 600, about 10 s on 2 CPU cores)")
    d.add_argument("--every", type=positive_int, default=10, metavar="N", help="record the views every N steps (default 10)")
    d.add_argument("--logdir", default="convscope-runs", metavar="DIR", help="where the run is stored (default ./convscope-runs)")
    d.add_argument("--port", type=port_number(), default=0, help="dashboard port (default: a free one)")
    d.add_argument("--no-serve", action="store_true", help="no dashboard: only write the run store")
    d.add_argument("--no-browser", action="store_true", help="print the dashboard's address instead of opening a browser")
    d.add_argument("--no-prune", action="store_true", help="leave conv1's filters alone")
    d.add_argument("--exit", action="store_true", help="stop the dashboard when training ends instead of serving on")

    s_ = sub.add_parser(
        "serve",
        help="serve the runs of a log directory: API, live streams and dashboard",
        description="Serve runs (live and finished) to the browser dashboard and to live monitors. "
        "Binds 127.0.0.1 unless --host says otherwise; any other address requires a token (one is made "
        "and printed if --token is not given).",
        epilog=_SERVE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s_.add_argument("--logdir", default="convscope-runs", metavar="DIR", help="the runs' directory (default ./convscope-runs)")
    s_.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    s_.add_argument("--port", type=port_number(), default=8765, help="port (default 8765; 0 = a free one)")
    s_.add_argument("--token", default=None, help="require this token (made for you on non-loopback addresses)")
    s_.add_argument("--open", action="store_true", help="open the dashboard in a browser")
    s_.add_argument("--trust", action="store_true", help="let the model explorer open pickled whole models (runs their code)")

    r = sub.add_parser(
        "runs",
        help="list the runs of a log directory: status, steps, frames, frames lost",
        description="List the runs stored in a log directory, newest first: each run's id (what "
        "`convscope export` and the dashboard's address take), its status (live, finished, failed, "
        "crashed: its process died without closing it; what it committed is readable; or interrupted: "
        "the server stopped while a monitor was streaming the run, frames sent after that were not "
        "received, and the run resumes as live if its training reconnects), the steps "
        "it recorded and its frames; what it lost (frames dropped by the monitor's full queue or by "
        "a sink, such as the run store or the HTTP sink, that could not deliver them) and the recording "
        "steps its overhead budget deferred on purpose, where there are any (--json: each run's "
        "\"dropped\", by cause; \"budget\" is the deferred steps).",
        epilog=_RUNS_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    r.add_argument("--logdir", default="convscope-runs", metavar="DIR", help="the runs' directory (default ./convscope-runs)")
    r.add_argument("--json", action="store_true", help="print the summaries as JSON (one list), for scripts")

    from convscope.explorer._open import add_open_parser

    add_open_parser(sub)

    sub.add_parser(
        "data",
        help="list bundled data sets",
        description="Data sets that ship inside installed packages (nothing is downloaded).",
        epilog="example:\n  convscope data",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )

    from convscope.export._cli import add_export_parser
    from convscope.paraview._cli import add_paraview_parser

    add_export_parser(sub)
    add_paraview_parser(sub)
    _whole_options_only(parser)
    return parser


def _whole_options_only(parser: argparse.ArgumentParser) -> None:
    """Refuse shortened options in ``parser`` and every (sub-)command under it: argparse would
    take ``--epoch 2`` for ``--epochs 2`` (and ``zoo train`` then overwrites the cached weights);
    a misspelt option is said with the one meant instead (see :func:`_unrecognized`)."""
    parser.allow_abbrev = False
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _whole_options_only(child)


def _version() -> str:
    from convscope import __version__

    return __version__


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``convscope`` command."""
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == "open" and extra and not any(word.startswith("-") for word in extra):
        # (images after an option: argparse fills INPUT ... where it first meets it, and only there)
        args.inputs, extra = [*args.inputs, *extra], []
    if extra:  # (said by the command's own parser, with its usage and the option meant)
        _unrecognized(_command_parser(parser, args), extra)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        if getattr(args, "handler", None) is not None:  # commands that live in their own module
            return int(args.handler(args))
        if args.command == "summary":
            return _summary(args)
        if args.command == "zoo":
            return _zoo(args)
        if args.command == "data":
            return _data()
        if args.command == "demo":
            return _demo(args)
        if args.command == "runs":
            return _runs(args)
        if args.command == "serve":
            from convscope.server import serve

            check_folder(args.logdir, option="--logdir")
            serve(args.logdir, host=args.host, port=args.port, token=args.token, open_browser=args.open, trust=args.trust)
            return 0
        if args.command == "open":
            from convscope.explorer._open import run_open

            return run_open(args)
    except ConvscopeError as exc:
        from rich.console import Console

        Console(stderr=True).print(f"[bold red]error:[/] {exc}", highlight=False)
        return 2
    parser.error(f"unknown command {args.command!r}")
    return 2


def _command_parser(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The parser of the (sub-)command that ``args`` holds: ``convscope``, ``convscope export``, ``convscope zoo train``."""
    for dest in ("command", "zoo_command"):
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        name = getattr(args, dest, None)
        if not subs or name is None:
            break
        parser = subs[0].choices[name]
    return parser


def _unrecognized(parser: argparse.ArgumentParser, extra: Sequence[str]) -> None:
    """Exit as argparse does on words the command does not take, naming the options meant."""
    from convscope._names import near_misses

    options = [s for a in parser._actions for s in a.option_strings if s.startswith("--")]
    meant = [
        close[0]
        for word in extra
        if word.startswith("-") and (close := near_misses(word.split("=", 1)[0], options, n=1, key=str))
    ]
    hint = f" (did you mean {', '.join(meant)}?)" if meant else ""
    parser.error(f"unrecognized arguments: {' '.join(extra)}{hint}; see `{parser.prog} --help`")


def _shape_arg(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        return tuple(int(v) for v in text.replace("x", ",").split(",") if v.strip())
    except ValueError:
        raise DataError(f"--input-shape must look like 1,28,28; got {text!r}") from None


def _summary(args: argparse.Namespace) -> int:
    import torch
    from rich.console import Console
    from rich.table import Table

    from convscope.models import load_model

    console = Console()
    with console.status(f"loading {args.model} ..."):
        model = load_model(
            args.model,
            architecture=args.arch,
            input_shape=_shape_arg(args.input_shape),
            trust=args.trust,
            pretrained=not args.untrained,
        )
    if args.json:
        print(model.graph.to_json(indent=2))
        return 0
    images, label, what = _summary_input(model, args.input)  # (a bad --input is said before the table)
    table = Table(title=f"{model.name or args.model}  ({model.format}: {model.source})", title_justify="left")
    for col in ("layer", "kind", "input", "output", "params", "attributes"):
        table.add_column(col, justify="right" if col == "params" else "left", no_wrap=col != "attributes")
    for layer, row in zip(model.graph.layers, model.graph.summary_rows(), strict=True):
        attrs = ", ".join(f"{k}={_fmt_attr(v)}" for k, v in layer.attributes.items() if k not in ("bias", "in_channels", "in_features"))
        table.add_row(*row, attrs)
    console.print(table)
    console.print(
        f"{len(model.graph.layers) - 1} layers, {model.graph.total_params:,} parameters, "
        f"input {'x'.join(map(str, model.input_spec.shape))}"
        + (
            f", largest difference from the original runtime {model.reference_max_abs_diff:.2e}"
            if model.reference_max_abs_diff is not None
            else ""
        )
    )
    logits = model.predict(images)
    probs = torch.softmax(logits, dim=1)[0]
    top = torch.topk(probs, k=min(5, probs.numel()))
    names = model.input_spec.class_names
    console.print(f"\nprediction for {what}" + (f" (true label {_class(names, label)})" if label is not None and label >= 0 else ""))
    for p, idx in zip(top.values.tolist(), top.indices.tolist(), strict=True):
        bar = "█" * int(round(p * 30))
        console.print(f"  {_class(names, idx):>12}  {p:6.1%}  {bar}")
    return 0


def _class(names: Sequence[str] | None, idx: int) -> str:
    return names[idx] if names is not None and 0 <= idx < len(names) else str(idx)


def _fmt_attr(v: object) -> str:
    if isinstance(v, tuple) and len(set(v)) == 1:
        return str(v[0])
    if isinstance(v, tuple):
        return "x".join(map(str, v))
    return str(v)


def _summary_input(model: LoadedModel, path: str | None) -> tuple[torch.Tensor, int | None, str]:
    """The input to predict: the user's file, or a bundled sample that fits the model."""
    import numpy as np
    import torch

    from convscope.data import fit_to_spec, load_dataset

    spec = model.input_spec
    if path is not None:
        if path.lower().endswith(".npy"):
            arr = np.load(path, allow_pickle=False)
            x = torch.from_numpy(np.asarray(arr, dtype=np.float32))
            while x.dim() < 4:
                x = x.unsqueeze(0)
        else:
            from convscope.data import load_image

            x = load_image(path)
        return fit_to_spec(x, spec), None, path
    channels = spec.shape[0] if len(spec.shape) == 3 else None
    candidates = ["mnist-5k"] if channels == 1 else ["foolbox-cifar10"] if spec.shape[-1] <= 64 else ["foolbox-imagenet"]
    for name in candidates:
        try:
            ds = load_dataset(name, split="test") if name == "mnist-5k" else load_dataset(name)
        except ConvscopeError:
            continue
        return fit_to_spec(ds.images[:1], spec), int(ds.labels[0]), f"the first sample of bundled {name!r}"
    return torch.zeros((1, *spec.shape)), None, "an all-zero input (no bundled sample fits this model)"


def _zoo(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from convscope.models.zoo import list_models, train_zoo_model, weights_path

    console = Console()
    if args.zoo_command == "train":
        if args.out is not None:  # (said now, not after minutes of training)
            out = Path(args.out)
            if out.is_dir():
                raise DataError(f"--out {args.out} is a folder; pass a file name for the weights, e.g. {out / args.name}.safetensors")
            blocking = _file_in_the_way(out.parent)
            if blocking is not None:
                raise DataError(f"cannot write --out {args.out}: {blocking} is a file, not a folder; pass a path in a folder")
        result = train_zoo_model(args.name, epochs=args.epochs, seed=args.seed, out=args.out, progress=True)
        console.print(
            f"trained {args.name} in {result['seconds']:.1f} s: train accuracy {result['train_accuracy']:.2%}, "
            f"test accuracy {result['test_accuracy']:.2%}; weights in {args.out or weights_path(args.name)}"
        )
        return 0
    table = Table(title="bundled models", title_justify="left")
    for col in ("name", "input", "weights", "description"):
        table.add_column(col)
    for entry in list_models():
        if entry.train_data is None:
            weights = "your own file"
        else:
            weights = "cached" if weights_path(entry.name).exists() else f"trained on {entry.train_data} at first use"
        table.add_row(entry.name, "x".join(map(str, entry.input_spec.shape)), weights, entry.description)
    console.print(table)
    return 0


def _demo(args: argparse.Namespace) -> int:
    import time
    import webbrowser

    from rich.console import Console

    from convscope.insitu.demo import run_demo

    console = Console()
    serve = not args.no_serve
    # (the browser opens as training starts: the dashboard is live, not a record of what was)
    show = None if args.no_browser else webbrowser.open
    result = run_demo(steps=args.steps, every=args.every, logdir=args.logdir, serve=serve, prune=not args.no_prune, port=args.port,
                      on_serve=show)
    pruned = ", ".join(f"{p['layer']} {p['before']}->{p['after']} filters at step {p['step']}" for p in result.prunings) or "nothing"
    console.print(
        f"trained {result.steps} steps in {result.seconds:.1f} s: test accuracy {result.test_accuracy:.1%}; "
        f"pruned {pruned}; {result.frames} frames ({result.dropped} dropped) in run [bold]{result.run_id}[/] under {result.logdir}"
    )
    if not serve or result.url is None:
        console.print(f"see it with: convscope serve --logdir {result.logdir} --open")
        return 0
    console.print(f"dashboard: [link={result.url}]{result.url}[/link]")
    if args.exit:
        return 0
    console.print("serving until Ctrl-C")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return 0


def _runs(args: argparse.Namespace) -> int:
    import json
    import time

    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from convscope.errors import NotFoundError
    from convscope.store import RUN_SUFFIX, RunStore

    logdir = Path(args.logdir)
    if not logdir.is_dir():
        found = "is a file, not a folder" if logdir.exists() else "does not exist"
        raise NotFoundError(
            f"log directory {args.logdir} {found}; pass --logdir the folder the runs were written to "
            "(watch(logdir=...); default ./convscope-runs)"
        )
    store = RunStore(logdir)
    runs = store.list_runs()  # (each with ``dropped``: one row of the run's state)
    unreadable = sorted(set(store.run_ids()) - {run["id"] for run in runs})
    if unreadable:  # (on stderr: --json stays one list for scripts)
        Console(stderr=True).print(
            f"[yellow]note:[/] left out {len(unreadable)} file{'s' if len(unreadable) > 1 else ''} of {args.logdir} that "
            f"{'are not readable runs' if len(unreadable) > 1 else 'is not a readable run'} (or one being created): "
            + ", ".join(f"{i}{RUN_SUFFIX}" for i in unreadable) + f"; `convscope export {logdir / unreadable[0]}{RUN_SUFFIX} --out x` says why",
            highlight=False,
        )
    if args.json:
        print(json.dumps(runs, indent=1))
        return 0
    console = Console()
    if not runs:
        console.print(f"no runs in {args.logdir}")
        return 0
    now = time.time()
    lost = [", ".join(f"{cause} {n:,}" for cause, n in run["dropped"].items() if cause != _DEFERRED and n) for run in runs]
    deferred = [f"{run['dropped'][_DEFERRED]:,}" if run["dropped"].get(_DEFERRED) else "" for run in runs]
    # (lost and deferred are columns only where a run has some: a log directory without drops lists as before)
    drops = {col: cells for col, cells in (("lost", lost), ("deferred", deferred)) if any(cells)}
    rows = [
        {
            "run": run["id"], "status": run["status"], "steps": "" if run["first_step"] is None else f"{run['first_step']}-{run['last_step']}",
            "frames": f"{run['frames']:,}", **{col: cells[i] for col, cells in drops.items()}, "updated": _ago(run.get("updated"), now),
        }
        for i, run in enumerate(runs)
    ]
    captions = {
        "lost": "lost: frames dropped by the monitor's full queue or a sink (store: failed commits)",
        "deferred": "deferred: recording steps the overhead budget skipped on purpose",
    }
    table = Table(title=f"runs in {args.logdir}, newest first", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    # every column but the model's at its full width (the id is what the other commands take)
    for col in rows[0]:
        justify: Literal["left", "right"] = "right" if col in ("steps", "frames") else "left"
        table.add_column(col, justify=justify, no_wrap=True, min_width=max(len(col), *(len(row[col]) for row in rows)))
    table.add_column("model", no_wrap=True, overflow="ellipsis")
    statuses = {"live": "green", "failed": "red", "crashed": "yellow", "interrupted": "dark_orange"}
    for row, run in zip(rows, runs, strict=True):
        styles = {"status": statuses.get(row["status"], ""), "lost": "yellow", "deferred": "dim"}
        table.add_row(*(Text(cell, style=styles.get(col, "")) for col, cell in row.items()), str(run.get("model") or ""))
    console.print(table)
    for col in drops:  # (below the table, not its caption: a caption is cut at the table's width)
        console.print(Text(captions[col], style="dim"))
    return 0


#: the cause of the ``dropped`` frames that count recording steps the overhead budget deferred:
#: on purpose, not a loss
_DEFERRED = "budget"


def _when(t: float | None) -> str:
    import time

    return "" if t is None else time.strftime("%b %d %H:%M", time.localtime(t))


def _ago(t: float | None, now: float) -> str:
    """How long ago ``t`` was, to the unit that matters ("12 s ago", "3 min ago", "5 h ago"), or the date."""
    if t is None:
        return ""
    age = max(0.0, now - t)
    if age < 90:
        return f"{age:.0f} s ago"
    if age < 90 * 60:
        return f"{age / 60:.0f} min ago"
    if age < 36 * 3600:
        return f"{age / 3600:.0f} h ago"
    return _when(t)


def _data() -> int:
    from rich.console import Console
    from rich.table import Table

    from convscope.data import list_datasets

    table = Table(title="bundled data sets (nothing is downloaded)", title_justify="left")
    for col in ("name", "size", "shape", "classes", "source", "description"):
        table.add_column(col)
    for info in list_datasets():
        table.add_row(info.name, f"{info.size:,}", "x".join(map(str, info.shape)), str(info.classes), info.source, info.description)
    Console().print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())

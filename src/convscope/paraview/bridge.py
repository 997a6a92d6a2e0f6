"""The Catalyst bridge: follow a run on a convscope server and feed ParaView Catalyst.

Run it under ParaView's own Python, never import it in a training process::

    pvpython --no-mpi bridge.py --run RUN [--url http://127.0.0.1:8765] [--live 22222] [--extracts DIR]

(``convscope paraview`` builds this command line and the environment it needs.) It polls the
server's REST API (``GET /api/runs/{run}/frames?start=...``, standard library only), decodes
frames with :mod:`convscope.frames` (numpy only), builds the scenes of
:mod:`convscope.export._scenes` for one layer, and hands them to Catalyst (legacy bridge, the
shipped ``# script-version: 2`` pipeline) once per recorded step: Catalyst Live to a
``paraview --live=PORT`` client and/or data and PNG extracts.

The newest step is held back until a later step appears, the run ends, or nothing new came for
``--settle`` seconds, so a step whose frames arrive in two polls is shown whole. The bridge ends
when the run does (finished, failed, crashed); an interrupted run, whose server stopped while it
streamed, is followed on until its training reconnects and ends it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

VIEW_KINDS = ("weight_grid", "trajectory", "distribution", "feature_maps", "correlation", "groups")
CHANNELS = {"weights": "polydata", "trajectory": "polydata", "pca": "polydata", "distribution": "polydata", "feature_maps": "image",
            "correlation": "image", "groups": "image"}
#: the array (and its type) of an image channel's placeholder: the one its view colours by
PLACEHOLDERS = {"feature_maps": ("activation", "uint8"), "correlation": ("r", "float32"), "groups": ("group", "int32")}


def _args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bridge.py", description="Feed a convscope run to ParaView Catalyst.")
    p.add_argument("--run", required=True)
    p.add_argument("--url", default="http://127.0.0.1:8765")
    p.add_argument("--token", default=os.environ.get("CONVSCOPE_TOKEN"))
    p.add_argument("--layer", default=None, help="the layer to show (default: the first with a weight grid)")
    p.add_argument("--live", type=int, default=None, help="port of a `paraview --live=PORT` client on this machine")
    p.add_argument("--live-host", default="localhost")
    p.add_argument("--extracts", default=None, help="folder for data extracts and PNGs")
    p.add_argument("--no-png", action="store_true", help="data extracts only (no rendering, no display needed)")
    p.add_argument(
        "--pipeline", default=str(Path(__file__).resolve().parent / "pipelines" / "convscope_views.py"),
        help="a Catalyst pipeline script of your own ('# script-version: 2', channels as convscope's pipelines/convscope_views.py); "
        "convscope.paraview.looks has its colours, its layout and quiet_first_repeat (ParaView 5.11's first-step warnings)",
    )
    p.add_argument("--poll", type=float, default=0.5, help="seconds between polls of the server")
    p.add_argument("--settle", type=float, default=1.0, help="show the newest step after this many quiet seconds")
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many steps were shown")
    p.add_argument("--timeout", type=float, default=None, help="give up after this many seconds")
    p.add_argument("--timing", default=None, help="write per-step costs (JSON lines) here")
    return p.parse_args(argv)


def _channel(series: str) -> str:
    """The Catalyst channel of a scene series (``weights-conv1`` -> ``weights``)."""
    if series.startswith("trajectory-pca-"):
        return "pca"
    if series.startswith("trajectory-dims-"):
        return "trajectory"
    return series.split("-", 1)[0]


class Server:
    """The few REST calls the bridge needs, with the standard library."""

    def __init__(self, url: str, run: str, token: str | None) -> None:
        self.base = url.rstrip("/") + "/api/runs/" + urllib.parse.quote(run, safe="")
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def _get(self, path: str, query: list[tuple[str, str]] | None = None) -> bytes:
        url = self.base + path + ("?" + urllib.parse.urlencode(query) if query else "")
        request = urllib.request.Request(url, headers=self.headers)
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.read()

    def info(self) -> dict:
        return json.loads(self._get(""))

    def status(self) -> str:
        return self.info()["status"]

    def runs(self) -> list[str]:
        """The ids of the runs on the server ([] when they cannot be listed)."""
        url = self.base.rsplit("/", 1)[0]
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=self.headers), timeout=30) as response:
                return [str(r["id"]) for r in json.loads(response.read())]
        except (OSError, ValueError, KeyError, TypeError):
            return []

    def frames(self, start: int, layer: str | None) -> bytes:
        query = [("start", str(start))] + [("kind", k) for k in VIEW_KINDS]
        if layer is not None:
            query.append(("layer", layer))
        return self._get("/frames", query)


class Bridge:
    """Turns frames into Catalyst channels and calls the coprocessor once per step."""

    def __init__(self, args: argparse.Namespace) -> None:
        from paraview.catalyst import bridge  # before paraview.simple: Catalyst initialises ParaView

        # pvpython has always initialised ParaView before a script runs, so the bridge's check
        # would warn on every start; with pvpython the options it warns about are the ones we want
        bridge._sanity_check = lambda: None
        self.catalyst = bridge
        os.environ["CONVSCOPE_LIVE"] = f"{args.live_host}:{args.live}" if args.live is not None else ""
        os.environ["CONVSCOPE_EXTRACTS"] = os.path.abspath(args.extracts) if args.extracts else ""
        os.environ["CONVSCOPE_PNG"] = "0" if args.no_png else "1"
        if args.extracts:
            os.makedirs(args.extracts, exist_ok=True)
        bridge.initialize()
        bridge.add_pipeline(args.pipeline, 2)
        from paraview.modules.vtkPVCatalyst import vtkCPDataDescription

        from convscope.export._vtk import _Trajectories
        from convscope.paraview import _vtk

        self.description = vtkCPDataDescription
        self.vtk = _vtk
        self.trajectories = _Trajectories()
        self.channels = {name: _vtk.empty_like(kind, *PLACEHOLDERS.get(name, ("activation", "uint8"))) for name, kind in CHANNELS.items()}
        self.timings: list[dict[str, float]] = []

    def show(self, step: int, frames: list) -> dict[str, float]:
        from convscope.export._vtk import scenes_of

        t0 = time.perf_counter()
        for frame in frames:
            for series, scene in scenes_of(frame, self.trajectories).items():
                channel = _channel(series)
                if channel in self.channels:
                    self.channels[channel] = self.vtk.to_vtk(scene)
        t1 = time.perf_counter()
        desc = self.description()
        for name in self.channels:
            desc.AddInput(name)
        desc.SetTimeData(float(step), int(step))
        coprocessor = self.catalyst.coprocessor
        if coprocessor.RequestDataDescription(desc):
            for name, data in self.channels.items():
                desc.GetInputDescriptionByName(name).SetGrid(data)
            coprocessor.CoProcess(desc)
        t2 = time.perf_counter()
        return {"step": step, "frames": len(frames), "build_s": t1 - t0, "coprocess_s": t2 - t1}

    def finish(self) -> None:
        self.catalyst.finalize()


def follow(args: argparse.Namespace) -> int:
    from convscope.frames import decode_stream

    server = Server(args.url, args.run, args.token)
    bridge = Bridge(args)
    layer = args.layer
    next_step = 0
    held: dict[tuple[str, str, int], object] = {}
    last_new = time.monotonic()
    started = time.monotonic()
    shown = 0
    timing = open(args.timing, "w", encoding="utf-8") if args.timing else None  # noqa: SIM115
    status = "live"
    said_interrupted = False
    layer_checked = False
    waiting = ""  # what the bridge said it waits for (said once, until a poll gets through)

    def wait(why: str) -> None:
        nonlocal waiting
        if why != waiting:
            print(why, file=sys.stderr, flush=True)
            waiting = why
        time.sleep(max(args.poll, 1.0))

    def emit(step: int, fetch_s: float) -> None:
        nonlocal shown
        frames = [f for (k, _l, s), f in sorted(held.items(), key=lambda kv: VIEW_KINDS.index(kv[0][0])) if s == step]
        for key in [k for k in held if k[2] == step]:
            del held[key]
        record = bridge.show(step, frames)
        record["fetch_s"] = fetch_s  # the poll that brought the step's last frames
        shown += 1
        if timing is not None:
            timing.write(json.dumps(record) + "\n")
            timing.flush()
        bridge.timings.append(record)
        print(f"step {step}: {len(frames)} frames, build {record['build_s'] * 1e3:.1f} ms, "
              f"catalyst {record['coprocess_s'] * 1e3:.1f} ms", flush=True)

    try:
        while True:
            if args.timeout is not None and time.monotonic() - started > args.timeout:
                print("timed out", file=sys.stderr, flush=True)
                return 3
            t_fetch = time.perf_counter()
            try:
                body = server.frames(next_step, layer)
                if not held and not body:
                    status = server.status()
                    if status not in ("live", "interrupted"):  # (frames its writer stored before it closed,
                        body = server.frames(next_step, layer)  # after the read above, come with this one)
            except urllib.error.HTTPError as exc:
                if exc.code != 404:
                    raise
                runs = server.runs()
                there = f"; the server has {', '.join(runs[:10])}{' ...' if len(runs) > 10 else ''}" if runs else ""
                wait(f"run {args.run!r} is not on the server (yet); waiting (Ctrl-C to stop){there}")
                continue
            except (urllib.error.URLError, OSError) as exc:
                wait(f"server not reachable ({getattr(exc, 'reason', exc)}); retrying every {max(args.poll, 1.0):g} s")
                continue
            if waiting:
                print("server reached; following the run", file=sys.stderr, flush=True)
                waiting = ""
            if not layer_checked and args.layer is not None:
                # (a misspelt --layer asked the server for frames no layer has: the bridge showed
                # nothing, then ended with status 0 as the run did, or waited for ever on a live one)
                layers = [str(name) for name in server.info().get("layers") or []]
                if layers and args.layer not in layers:
                    print(f"error: run {args.run!r} has no layer {args.layer!r}; it has {', '.join(layers)} — pass one "
                          "of these to --layer", file=sys.stderr, flush=True)
                    return 2
                layer_checked = True
            fetch_s = time.perf_counter() - t_fetch
            new = 0
            for frame in decode_stream(body):
                if layer is None and frame.kind == "weight_grid":
                    layer = frame.layer
                if layer is not None and frame.layer != layer:
                    continue
                key = (frame.kind, frame.layer, frame.step)
                if key not in held:
                    new += 1
                held[key] = frame
            if layer is not None:  # frames that came before the layer was known
                held = {k: f for k, f in held.items() if k[1] == layer}
            if new:
                last_new = time.monotonic()
            steps = sorted({k[2] for k in held})
            quiet = time.monotonic() - last_new > args.settle
            # (an interrupted run, whose server stopped while it streamed, goes on when its training
            # reconnects: followed as a live one, until it ends or --timeout)
            if status == "interrupted" and not said_interrupted:
                print(f"run {args.run!r} is interrupted (its server stopped while it streamed); waiting for its "
                      "training to reconnect", file=sys.stderr, flush=True)
                said_interrupted = True
            done = status not in ("live", "interrupted")
            for step in steps:
                if step < steps[-1] or quiet or done:
                    emit(step, fetch_s)
                    next_step = step + 1
                    if args.max_steps is not None and shown >= args.max_steps:
                        return 0
            if held:
                next_step = min(k[2] for k in held)
            if done and not held:
                if not body:
                    return 0
            time.sleep(args.poll)
    finally:
        bridge.finish()
        if timing is not None:
            timing.close()
        if bridge.timings:
            cop = [t["coprocess_s"] for t in bridge.timings[1:]] or [bridge.timings[0]["coprocess_s"]]
            build = [t["build_s"] for t in bridge.timings]
            print(f"shown {len(bridge.timings)} steps; median per step: build {statistics.median(build) * 1e3:.1f} ms, "
                  f"catalyst {statistics.median(cop) * 1e3:.1f} ms (after the first)", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    # pvpython's logger turns Ctrl-C into a fatal signal with a stack trace, and the pipeline
    # is left as it was; as a KeyboardInterrupt, the bridge closes it and says what it showed
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        rc = follow(args)
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr, flush=True)
        rc = 130
    # ParaView 5.11 can fail while tearing down an offscreen (Xvfb) render window at exit
    # ("GLXBadContext"), turning a finished run into exit status 1; everything is written by now.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)


if __name__ == "__main__":
    sys.exit(main())

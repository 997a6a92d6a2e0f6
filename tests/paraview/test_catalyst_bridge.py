"""The Catalyst bridge under pvpython: data extracts of a stored run, and Catalyst Live of a training run."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from samples import every_kind

from convscope.paraview import bridge_command
from convscope.store import RunStore

HERE = Path(__file__).resolve().parent
pytestmark = [pytest.mark.paraview, pytest.mark.slow]


def test_bridge_writes_extracts_of_every_step_with_the_sent_values(tmp_path, pvrun) -> None:
    pytest.importorskip("vtkmodules.vtkIOXML", reason="pip install 'convscope[vtk]'")
    from convscope.paraview._vtk import read_vtk
    from convscope.server import start_local_server

    sent, correlations = {}, {}
    with RunStore(tmp_path / "runs").create_run("r") as w:
        for s in range(4):
            for f in every_kind(s):
                w.write(f)
                if f.kind == "weight_grid":
                    sent[s] = f.payload["weights"]
                if f.kind == "correlation":
                    correlations[s] = f.payload["matrix"]
    server = start_local_server(tmp_path / "runs")
    try:
        cmd = bridge_command(run="r", url=server.url, extracts=tmp_path / "ext", png=False, poll=0.1,
                             timing=tmp_path / "timing.jsonl")
        pvrun(*cmd[2:], "--timeout", "60")  # pvrun adds pvpython --no-mpi
    finally:
        server.stop()
    ext = tmp_path / "ext"
    for s, weights in sent.items():
        assert (ext / f"weights_{s:06d}.pvtp").is_file()
        d = read_vtk(ext / f"weights_{s:06d}" / f"weights_{s:06d}_0.vtp")
        assert np.array_equal(d["cell_data"]["value"][::6], weights.ravel())
        assert d["field_data"]["step"].tolist() == [s]
        maps = read_vtk(ext / f"feature_maps_{s:06d}" / f"feature_maps_{s:06d}_0.vti")
        assert maps["point_data"]["activation"].size == 4 * 8 * 8
        assert maps["direction"] == (1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)  # row 0 at the top, as exported
        corr = read_vtk(ext / f"correlation_{s:06d}" / f"correlation_{s:06d}_0.vti")
        assert np.array_equal(corr["point_data"]["r"].reshape(correlations[s].shape), correlations[s])
        assert corr["direction"] == maps["direction"]
        groups = read_vtk(ext / f"groups_{s:06d}" / f"groups_{s:06d}_0.vti")
        assert groups["point_data"]["group"].tolist() == [0, 0, 1, 2]
    timings = [json.loads(line) for line in (tmp_path / "timing.jsonl").read_text().splitlines()]
    assert [t["step"] for t in timings] == [0, 1, 2, 3]
    # weight grid, trajectory, distribution, feature maps, correlation, groups
    assert all(t["frames"] == 6 for t in timings)


def _bridged(tmp_path, pvrun, *, png: bool):
    """The bridge run to its end on a stored run "r" of three steps of every kind, served from
    ``tmp_path / "runs"``, its extracts (and PNGs, drawn under Xvfb) in ``tmp_path / "ext"``; the
    finished pvpython process."""
    from convscope.server import start_local_server

    with RunStore(tmp_path / "runs").create_run("r") as w:
        for s in range(3):
            for f in every_kind(s):
                w.write(f)
    server = start_local_server(tmp_path / "runs")
    try:
        cmd = bridge_command(run="r", url=server.url, extracts=tmp_path / "ext", png=png, poll=0.1)
        return pvrun(*cmd[2:], "--timeout", "60", xvfb=png)
    finally:
        server.stop()


def test_the_bridge_is_quiet_about_time_steps_and_extracts_every_step(tmp_path, pvrun) -> None:
    # (ParaView said "New time step is not after last time step" once a channel on the first step:
    # its legacy Catalyst gives each producer the first step twice, at import and at execute)
    proc = _bridged(tmp_path, pvrun, png=False)
    assert "New time step is not after last time step" not in proc.stdout + proc.stderr, proc.stderr
    channels = {"weights": "pvtp", "trajectory": "pvtp", "pca": "pvtp", "distribution": "pvtp",
                "feature_maps": "pvti", "correlation": "pvti", "groups": "pvti"}
    for s in range(3):
        for name, ext in channels.items():
            assert (tmp_path / "ext" / f"{name}_{s:06d}.{ext}").is_file(), (name, s)
            assert any((tmp_path / "ext" / f"{name}_{s:06d}").iterdir()), (name, s)
    # a time that really does not advance is still said, once a channel
    script = tmp_path / "repeat.py"
    script.write_text(
        "import sys\n"
        "from convscope.paraview import bridge\n"
        "b = bridge.Bridge(bridge._args(['--run', 'r', '--extracts', sys.argv[1], '--no-png']))\n"
        "for step in (1, 1, 2):\n"
        "    b.show(step, [])\n"
        "b.finish()\n"
    )
    proc = pvrun(str(script), str(tmp_path / "again"))
    assert (proc.stdout + proc.stderr).count("New time step is not after last time step") == 7, proc.stderr


def test_the_png_of_each_step_is_drawn_from_that_steps_data(tmp_path, pvrun) -> None:
    # (the pipeline read the weights' range and bounds for the step before, and ParaView said
    # "Cannot produce requested time" every step)
    proc = _bridged(tmp_path, pvrun, png=True)
    assert sorted(p.name for p in (tmp_path / "ext").glob("views_*.png")) == [f"views_{s:06d}.png" for s in range(3)]
    assert "Cannot produce requested time" not in proc.stdout + proc.stderr


def _unshare_works() -> str | None:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "needs unshare (util-linux) and ip (iproute2)"
    proc = subprocess.run(["unshare", "-n", "sh", "-c", "ip link set lo up"], capture_output=True, text=True)
    if proc.returncode != 0:
        return f"cannot make a private network namespace here (unshare -n: {proc.stderr.strip()}); needs root or user namespaces"
    return None


def test_catalyst_live_receives_the_weights_of_a_live_training_run(tmp_path) -> None:
    # VTK's live listener binds every interface: run it where only loopback exists
    reason = _unshare_works()
    if reason:
        pytest.skip(reason)
    script = f"ip link set lo up; exec {sys.executable} {HERE / 'live_scenario.py'} {tmp_path} 22222"
    proc = subprocess.run(["unshare", "-n", "sh", "-c", script], capture_output=True, text=True, timeout=300)
    logs = "\n".join(p.read_text() for p in tmp_path.glob("*.log"))
    assert proc.returncode == 0, proc.stdout + proc.stderr + logs
    assert (tmp_path / "rc.txt").read_text().split() == ["0", "0"], logs
    sent = np.load(tmp_path / "sent.npz")
    received = [json.loads(line) for line in (tmp_path / "received.jsonl").read_text().splitlines()]
    assert len({r["step"] for r in received}) >= 4, logs
    for r in received:
        weights = sent[str(r["step"])]  # conv1 of LeNet-5: [16, 1, 3, 3]
        assert r["cells"] == weights.size * 6
        value = np.asarray(r["arrays"]["value"], np.float64)
        assert np.array_equal(value[::6].astype(np.float32), weights.ravel())  # exactly what training sent
        assert r["arrays"]["sign"][::6] == np.sign(weights.ravel()).astype(int).tolist()


def test_the_bridge_waits_on_an_interrupted_run_and_follows_it_when_it_resumes(tmp_path, pvrun) -> None:
    # an interrupted run (its server stopped while a monitor streamed it) goes on when its training
    # reconnects: the bridge keeps following it, where a finished run would end it
    from convscope.paraview import pvpython_env
    from convscope.server import start_local_server

    store = RunStore(tmp_path / "runs")
    w = store.create_run("r")
    for s in range(2):
        for f in every_kind(s):
            w.write(f)
    w.close(status="interrupted")
    server = start_local_server(tmp_path / "runs")
    ext = tmp_path / "ext"
    cmd = bridge_command(run="r", url=server.url, extracts=ext, png=False, poll=0.1)
    bridge = subprocess.Popen([*cmd, "--timeout", "90"], env=pvpython_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (ext / "weights_000001.pvtp").is_file() and bridge.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(2.0)  # (past the bridge's settle time: a finished run would have ended it by now)
        assert bridge.poll() is None, "the bridge ended on an interrupted run: " + "".join(bridge.communicate())
        assert (ext / "weights_000001.pvtp").is_file()
        with store.resume_run("r") as again:  # its training reconnects, records two more steps and ends
            for s in range(2, 4):
                for f in every_kind(s):
                    again.write(f)
        out, err = bridge.communicate(timeout=60)
    finally:
        if bridge.poll() is None:
            bridge.kill()
        server.stop()
    assert bridge.returncode == 0, out + err
    assert "is interrupted" in err and "waiting for its training to reconnect" in err
    assert sorted(p.name for p in ext.glob("weights_*.pvtp")) == [f"weights_{s:06d}.pvtp" for s in range(4)]


def test_the_bridge_says_once_that_the_server_is_not_reachable_and_follows_the_run_once_it_is(tmp_path, pvrun) -> None:
    # (it said "server not reachable; retrying" at every poll, for as long as the server was away)
    import socket

    from convscope.paraview import pvpython_env
    from convscope.server import start_local_server

    store = RunStore(tmp_path / "runs")
    with store.create_run("r") as w:
        for f in every_kind(0):
            w.write(f)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # (free: nothing listens there until the server below starts)
    ext = tmp_path / "ext"
    cmd = bridge_command(run="r", url=f"http://127.0.0.1:{port}/", extracts=ext, png=False, poll=0.1)
    bridge = subprocess.Popen([*cmd, "--timeout", "90"], env=pvpython_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    server = None
    try:
        time.sleep(4.0)  # (a few polls, a second apart, with no server)
        assert bridge.poll() is None
        server = start_local_server(tmp_path / "runs", port=port)
        out, err = bridge.communicate(timeout=60)
    finally:
        if bridge.poll() is None:
            bridge.kill()
        if server is not None:
            server.stop()
    assert bridge.returncode == 0, out + err
    assert err.count("server not reachable") == 1 and "retrying every 1 s" in err, err
    assert err.count("server reached; following the run") == 1, err
    assert (ext / "weights_000000.pvtp").is_file()


def test_a_misspelt_layer_is_said_with_the_runs_layers(tmp_path, pvrun) -> None:
    # (the bridge asked for frames of a layer the run does not have, showed nothing, and ended
    # with status 0 as the run did; on a live run it waited for ever)
    from convscope.server import start_local_server

    with RunStore(tmp_path / "runs").create_run("r") as w:
        for f in every_kind(0):
            w.write(f)
    server = start_local_server(tmp_path / "runs")
    try:
        cmd = bridge_command(run="r", url=server.url, extracts=tmp_path / "ext", png=False, layer="conv9", poll=0.1)
        proc = pvrun(*cmd[2:], "--timeout", "60", check=False)
    finally:
        server.stop()
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "run 'r' has no layer 'conv9'; it has conv1 — pass one of these to --layer" in proc.stderr
    assert not list((tmp_path / "ext").glob("weights_*"))


def test_waiting_for_a_run_names_the_runs_there_and_ctrl_c_stops_it_cleanly(tmp_path) -> None:
    # (a misspelt run was waited for with nothing to say it was misspelt; Ctrl-C ended the bridge
    # with ParaView's "Loguru caught a signal: SIGINT" and a stack trace)
    import os
    import signal

    from convscope.paraview import pvpython_env
    from convscope.server import start_local_server

    with RunStore(tmp_path / "runs").create_run("mnist") as w:
        for f in every_kind(0):
            w.write(f)
    server = start_local_server(tmp_path / "runs")
    cmd = bridge_command(run="mnsit", url=server.url, extracts=tmp_path / "ext", png=False, poll=0.1)
    bridge = subprocess.Popen([*cmd, "--timeout", "60"], env=pvpython_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        assert bridge.stderr is not None
        said = bridge.stderr.readline()
        while "waiting" not in said and time.monotonic() < deadline and bridge.poll() is None:
            said = bridge.stderr.readline()
        os.killpg(bridge.pid, signal.SIGINT)  # (what Ctrl-C in a terminal does)
        out, err = bridge.communicate(timeout=30)
    finally:
        if bridge.poll() is None:
            bridge.kill()
        server.stop()
    assert "run 'mnsit' is not on the server (yet); waiting (Ctrl-C to stop); the server has mnist" in said
    assert bridge.returncode == 130 and "stopped" in err and "Loguru caught a signal" not in out + err, out + err


def test_the_pngs_lay_the_views_out_as_the_exports_do(tmp_path, pvrun) -> None:
    # (the distribution was drawn at its own scale, one unit a bin, wider than the weight grid,
    # and the feature maps were not drawn; the correlation matrix and its groups were not drawn)
    from PIL import Image

    from convscope.server import start_local_server

    with RunStore(tmp_path / "runs").create_run("r") as w:
        for f in every_kind(0):
            if f.kind == "distribution":
                f.payload["counts"][:] = 1  # (every bin the row's peak: the distribution is all yellow)
            w.write(f)
    server = start_local_server(tmp_path / "runs")
    try:
        cmd = bridge_command(run="r", url=server.url, extracts=tmp_path / "ext", png=True, poll=0.1)
        pvrun(*cmd[2:], "--timeout", "60", xvfb=True)
    finally:
        server.stop()
    shot = np.asarray(Image.open(tmp_path / "ext" / "views_000000.png").convert("RGB")).astype(int)
    rgb = shot[:, : int(shot.shape[1] * 0.82)]  # (left of the colour legends)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    yellow = (r > 180) & (g > 180) & (b < 120)  # viridis' top: the distribution
    yellow &= yellow.sum(axis=1, keepdims=True) > 10  # (less a stray pixel where two colours meet)
    beside = np.zeros_like(yellow)  # the rows the distribution spans: the grid's (the correlation is under them)
    beside[np.nonzero(yellow.any(axis=1))[0].min() : np.nonzero(yellow.any(axis=1))[0].max() + 1] = True
    signed = ((r > 120) & (g < 90) & (b < 90)) | ((b > 120) & (r < 90))  # red or blue
    weights = signed & beside  # the blocks
    grey = (abs(r - g) < 6) & (abs(g - b) < 6) & (r < 80)  # the feature map's dark pixels (pale blocks are grey too)
    assert weights.sum() > 1000 and yellow.sum() > 500 and grey.sum() > 500
    cols = [np.nonzero(m.any(axis=0))[0] for m in (weights, yellow)]
    assert cols[1].min() > cols[0].max()  # the distribution right of the grid
    assert cols[1].max() - cols[1].min() < cols[0].max() - cols[0].min()  # and narrower than it
    rows = [np.nonzero(m.any(axis=1))[0] for m in (weights, grey)]
    assert rows[1].min() > rows[0].max()  # the feature map under the grid
    # the correlation matrix under the distribution (red diagonal), its groups in a strip beside it
    under = np.zeros_like(yellow)
    under[rows[0].max() + 1 :, cols[1].min() :] = True
    orange = (r > 200) & (g > 90) & (g < 160) & (b < 60)  # group 0
    assert (signed & under).sum() > 500 and (orange & under).sum() > 50
    # as large as the exports draw it: its diagonal, red from corner to corner, a third of the grid's width
    band = np.zeros_like(yellow)
    band[rows[0].max() + 1 :] = True
    matrix = np.nonzero((signed & band).any(axis=0))[0]
    assert matrix.max() - matrix.min() > 0.3 * (cols[0].max() - cols[0].min())
    # the groups' key left of it: group 0's swatch (orange, as its strips), far left of the strip
    # down the matrix's left edge, with words between them
    seen = np.unique(np.nonzero(orange & band)[1])
    clusters = np.split(seen, np.nonzero(np.diff(seen) > 10)[0] + 1)
    assert len(clusters) == 3, "group 0's orange is only in its strips: the groups have no key"
    swatch, down, _along = clusters  # (the key's swatch, the strip down the left edge, the one along the top)
    assert down.min() - swatch.max() > 3 * (down.max() - down.min())
    key_rows = np.nonzero((orange & band)[:, swatch].any(axis=1))[0]
    dark = (r < 90) & (g < 90) & (b < 90) & (abs(r - b) < 20)
    assert dark[key_rows.min() - 5 : key_rows.max() + 5, swatch.max() + 1 : down.min()].sum() > 50, "no words beside the swatch"

"""The Catalyst Live scenario, run inside a private network namespace by test_catalyst_bridge.py.

    unshare -n sh -c 'ip link set lo up; python3 live_scenario.py OUT_DIR PORT'

A convscope server, a headless ParaView receiver listening on PORT (as ``paraview --live=PORT``
does, on every interface: hence the namespace), the bridge following the run, and a real
training run of LeNet-5 on bundled digits streaming to the server. Writes OUT_DIR/received.jsonl
(what ParaView received) and OUT_DIR/sent.npz (the weight grids the run sent, by step).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent


def _listening(port: int) -> bool:
    """Whether a TCP socket listens on ``port`` in this network namespace (/proc/net/tcp and tcp6)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            local, state = row.split()[1], row.split()[3]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:  # (0A: LISTEN)
                return True
    return False


def main() -> int:
    out, port = Path(sys.argv[1]), int(sys.argv[2])
    import convscope
    from convscope.data import load_dataset
    from convscope.models.zoo import load_zoo_model
    from convscope.paraview import bridge_command, pvpython_env
    from convscope.server import start_local_server
    from convscope.store import RunStore

    server = start_local_server(out / "runs", poll_seconds=0.05)
    env = pvpython_env()
    pv = bridge_command(run="live", url=server.url, live=port, poll=0.2, max_steps=6)[0]
    received = out / "received.jsonl"
    receiver = subprocess.Popen([pv, "--no-mpi", str(HERE / "pv_live_receiver.py"), str(port), str(received),
                                 "--steps", "4", "--timeout", "120"], env=env, stdout=open(out / "receiver.log", "w"),
                                stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while not Path(str(received) + ".ready").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    # the listener opens right after the ready mark: wait until the port listens (read off the
    # kernel's table, not by connecting, which the listener would take for ParaView's client)
    while not _listening(port) and time.monotonic() < deadline:
        time.sleep(0.1)
    bridge = subprocess.Popen(bridge_command(run="live", url=server.url, live=port, poll=0.2, max_steps=6)
                              + ["--timeout", "120", "--settle", "0.5"],
                              env=env, stdout=open(out / "bridge.log", "w"), stderr=subprocess.STDOUT)
    try:
        torch.manual_seed(0)
        lm = load_zoo_model("lenet5-simplified", pretrained=False)
        net = lm.module.train()
        data = load_dataset("mnist-5k", spec=lm.input_spec)
        opt = torch.optim.SGD(net.parameters(), lr=0.05)
        with convscope.watch(net, optimizer=opt, logdir=None, serve=server.url, run="live", every=1, budget=None,
                             layers=["conv1"]) as mon:
            for i in range(8):
                idx = torch.arange(i * 16, i * 16 + 16)
                loss = torch.nn.functional.cross_entropy(net(data.images[idx]), data.labels[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                mon.log(loss=loss)
                time.sleep(0.4)  # the bridge shows a step once a later one arrived
        rc_bridge = bridge.wait(timeout=120)
        rc_receiver = receiver.wait(timeout=120)
        with RunStore(out / "runs").open_run("live") as reader:
            grids = reader.frames(kind="weight_grid", layer="conv1")
        np.savez(out / "sent.npz", **{str(f.step): f.payload["weights"] for f in grids})
        (out / "rc.txt").write_text(f"{rc_bridge} {rc_receiver}\n")
    finally:
        for proc in (bridge, receiver):
            if proc.poll() is None:
                proc.kill()
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

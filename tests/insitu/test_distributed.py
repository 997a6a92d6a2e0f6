"""Under DDP (two CPU processes, gloo, launched as torchrun would), rank 0 records the all-reduced gradients."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from convscope.frames import decode_stream

WORKER = Path(__file__).with_name("ddp_worker.py")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(out: Path, all_ranks: bool) -> None:
    port = _free_port()
    procs = []
    for rank in range(2):
        env = dict(os.environ, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", LOCAL_WORLD_SIZE="2",
                   MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), OMP_NUM_THREADS="1")
        procs.append(subprocess.Popen([sys.executable, str(WORKER), str(out), "1" if all_ranks else "0"], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    for rank, p in enumerate(procs):
        output, _ = p.communicate(timeout=240)
        assert p.returncode == 0, f"rank {rank} exited with {p.returncode}:\n{output}"


@pytest.mark.slow
def test_rank_zero_records_all_reduced_gradients(tmp_path: Path) -> None:
    _launch(tmp_path, all_ranks=False)
    frames0 = list(decode_stream((tmp_path / "frames_rank0.bin").read_bytes()))
    frames1 = list(decode_stream((tmp_path / "frames_rank1.bin").read_bytes()))
    assert frames0 and not frames1  # rank 1 records nothing by default
    health = [f for f in frames0 if f.kind == "gradient_health" and f.layer == "conv1"]
    assert [f.step for f in health] == [1, 2, 3]
    for f in health:
        g0 = torch.load(tmp_path / f"grad_rank0_step{f.step}.pt")
        g1 = torch.load(tmp_path / f"grad_rank1_step{f.step}.pt")
        reduced = (g0 + g1) / 2
        assert f.payload["grad_norm"] == pytest.approx(float(reduced.norm()), rel=1e-4)
        assert abs(f.payload["grad_norm"] - float(g0.norm())) > 1e-3 * float(g0.norm())  # not the local one
    meta = next(f for f in frames0 if f.kind == "run_meta")
    assert meta.payload["config"]["world_size"] == 2
    # one consistent run in the store: rank 0's, with the all-reduced statistics
    from convscope.store import RunStore

    runs = RunStore(tmp_path / "runs").list_runs()
    assert [(r["id"], r["status"], r["last_step"]) for r in runs] == [("ddp", "finished", 3)]
    stored = RunStore(tmp_path / "runs").open_run("ddp").frames(kind="gradient_health", layer="conv1")
    assert [f.payload["grad_norm"] for f in stored] == [f.payload["grad_norm"] for f in health]


@pytest.mark.slow
def test_all_ranks_records_every_rank_as_its_own_run(tmp_path: Path) -> None:
    _launch(tmp_path, all_ranks=True)
    runs = set()
    for rank in range(2):
        frames = list(decode_stream((tmp_path / f"frames_rank{rank}.bin").read_bytes()))
        assert any(f.kind == "weight_grid" for f in frames)
        runs |= {f.run for f in frames}
    assert len(runs) == 2 and all(r.endswith((".rank0", ".rank1")) for r in runs)
    from convscope.store import RunStore

    assert sorted(r["id"] for r in RunStore(tmp_path / "runs").list_runs()) == ["ddp.rank0", "ddp.rank1"]

"""One rank of a two-process DDP run, started the way torchrun starts it (env variables).

Usage: python ddp_worker.py OUT_DIR ALL_RANKS(0|1). Writes the run store under OUT_DIR/runs, the frames its
monitor produced and
each step's local (not yet all-reduced) conv1 gradient, so the test can check the monitor saw
the all-reduced one.
"""

from __future__ import annotations

import gc
import os
import sys

import torch
import torch.distributed as dist

import convscope
from convscope.frames import encode
from convscope.models.zoo import load_zoo_model
from convscope.sinks.memory import MemorySink


def main() -> None:
    out, all_ranks = sys.argv[1], sys.argv[2] == "1"
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    torch.manual_seed(0)
    model = load_zoo_model("lenet5-simplified", pretrained=False).module.train()
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.SGD(ddp.parameters(), lr=0.05)
    gen = torch.Generator().manual_seed(100 + rank)  # every rank sees different data
    sink = MemorySink()
    logdir = os.path.join(out, "runs")
    mon = convscope.watch(ddp, optimizer=opt, logdir=logdir, run="ddp", sinks=[sink], every=1, all_ranks=all_ranks, budget=None)
    for step in range(1, 4):
        x = torch.randn(16, 1, 28, 28, generator=gen)
        y = torch.randint(0, 10, (16,), generator=gen)
        local = load_zoo_model("lenet5-simplified", pretrained=False).module.train()
        local.load_state_dict(model.state_dict())
        torch.nn.functional.cross_entropy(local(x), y).backward()
        torch.save(local.conv1.weight.grad, os.path.join(out, f"grad_rank{rank}_step{step}.pt"))
        loss = torch.nn.functional.cross_entropy(ddp(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        mon.log(loss=loss)
    mon.close()
    with open(os.path.join(out, f"frames_rank{rank}.bin"), "wb") as f:
        for frame in sink.frames:
            f.write(encode(frame))
    # Tear down while the interpreter is fully alive, then leave without its finalization. The DDP
    # reducer holds the process group; left to interpreter shutdown, gloo's and the store's C++
    # threads can be destroyed unjoined and abort the process ("terminate called without an
    # active exception", seen twice in CI, never here in 110 runs). Every file above is closed.
    print(f"rank {rank}: frames written", flush=True)  # says how far a rank got, should one ever fail
    del ddp, opt, mon, model
    gc.collect()
    dist.barrier()
    dist.destroy_process_group()
    print(f"rank {rank}: process group destroyed", flush=True)
    sys.stderr.flush()  # (stdout is flushed by the print above; os._exit flushes nothing)
    os._exit(0)


if __name__ == "__main__":
    main()

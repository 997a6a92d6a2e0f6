from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from convscope.frames import Frame

# the frame samples of every kind are shared with the store tests
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "store"))


@pytest.fixture
def awkward_weights() -> np.ndarray:
    """float32 weights whose shortest decimal needs all 9 digits, with zeros and signs."""
    rng = np.random.default_rng(7)
    w = (rng.normal(size=(3, 2, 3, 3)) / 3).astype(np.float32)
    w[0, 0, 0, 0] = np.float32(0.1)  # 0.100000001 as float32
    w[0, 0, 0, 1] = np.nextafter(np.float32(1.0), np.float32(2.0))  # 1.00000012
    w[0, 0, 0, 2] = np.float32(-3.4028235e38)
    w[1, 1, 1, 1] = np.float32(1e-45)  # the smallest subnormal
    w[2, 0, 2, 2] = 0.0
    return w


@pytest.fixture
def weight_frame(awkward_weights: np.ndarray) -> Frame:
    return Frame(run="r", step=7, kind="weight_grid", layer="features.0",
                 payload={"weights": awkward_weights, "vmax": float(np.abs(awkward_weights).max())}, wall_time=1234.5)


@pytest.fixture
def train_watched():
    """``train_watched(sinks)``: four SGD steps of an untrained LeNet-5 on random digits, conv1
    watched every 2 steps into ``sinks`` (no run store), the loss logged at each; gives the network."""

    def train(sinks: list) -> torch.nn.Module:
        import convscope
        from convscope.models.zoo import load_zoo_model

        torch.manual_seed(0)
        net = load_zoo_model("lenet5-simplified", pretrained=False).module.train()
        opt = torch.optim.SGD(net.parameters(), lr=0.05)
        x, y = torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,))
        with convscope.watch(net, optimizer=opt, logdir=None, sinks=sinks, every=2, budget=None, layers=["conv1"]) as mon:
            for _ in range(4):
                loss = torch.nn.functional.cross_entropy(net(x), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
                mon.log(loss=loss)
        return net

    return train

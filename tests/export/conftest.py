from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

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

"""Small shared helpers of the analysis modules."""

from __future__ import annotations

import torch


def accumulator(device: torch.device) -> torch.dtype:
    """The widest float type a device computes in: float64, or float32 on Apple's MPS (which has no float64)."""
    return torch.float32 if device.type == "mps" else torch.float64

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "analysis"))  # (pruning_models)


@pytest.fixture(scope="session")
def digits() -> tuple[torch.Tensor, torch.Tensor]:
    """512 real MNIST digits (bundled), normalised for LeNet."""
    from convscope.data import load_dataset
    from convscope.models.zoo import load_zoo_model

    spec = load_zoo_model("lenet5-simplified", pretrained=False).input_spec
    data = load_dataset("mnist-5k", spec=spec)
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(0))[:512]
    return data.images[order], data.labels[order]


@pytest.fixture
def lenet():
    """A factory of freshly initialised simplified LeNet-5 modules (seeded)."""
    from convscope.models.zoo import load_zoo_model

    def make(seed: int = 0) -> torch.nn.Module:
        torch.manual_seed(seed)
        return load_zoo_model("lenet5-simplified", pretrained=False).module.train()

    return make

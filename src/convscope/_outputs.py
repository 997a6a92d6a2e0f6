"""What a model returns, as the one tensor convscope reads: its output, or the first tensor of a
model with several (an ONNX model with two heads returns a list)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from convscope.errors import DataError

if TYPE_CHECKING:
    import torch


def first_tensor(out: Any) -> torch.Tensor:
    """``out`` if it is a tensor, else the first tensor of a list, tuple or dict of outputs.

    Example:
        >>> import torch
        >>> first_tensor((torch.ones(2), torch.zeros(3))).tolist()
        [1.0, 1.0]
    """
    import torch

    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, list | tuple):
        for item in out:
            if isinstance(item, torch.Tensor):
                return item
    if isinstance(out, dict):
        for item in out.values():
            if isinstance(item, torch.Tensor):
                return item
    raise DataError(f"the model returned {type(out).__name__}, not a tensor; convscope needs tensor outputs")


def first_output(module: torch.nn.Module) -> torch.nn.Module:
    """``module`` itself where it returns a tensor, else a module that returns its first tensor
    (what saliency's and the attacks' libraries take: one logits tensor)."""
    import torch

    class FirstOutput(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = module

        def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor:
            return first_tensor(self.inner(*args, **kwargs))

    return FirstOutput()

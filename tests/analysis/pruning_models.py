"""Models the pruning tests share (tests/analysis and, through its conftest, tests/insitu)."""

from __future__ import annotations

import threading
from collections.abc import Callable

import torch


class TutorialNet(torch.nn.Module):
    """The PyTorch tutorial's LeNet for 3 x 32 x 32 images, with a batch norm after ``conv2`` (6 -> 16
    filters) and a dropout: ``forward`` flattens conv2's 16 maps of 5 x 5 with a size written in the
    code, ``view(-1, 16 * 5 * 5)`` (or, ``flatten``, with ``torch.flatten(x, 1)``). ``lock``: it holds
    a lock (for a cache of its own, say), so that it cannot be copied."""

    def __init__(self, *, flatten: bool = False, lock: bool = False) -> None:
        super().__init__()
        self.flatten, self.lock = flatten, threading.Lock() if lock else None
        self.conv1, self.pool = torch.nn.Conv2d(3, 6, 5), torch.nn.MaxPool2d(2, 2)
        self.conv2, self.bn2 = torch.nn.Conv2d(6, 16, 5), torch.nn.BatchNorm2d(16)
        self.fc1, self.drop = torch.nn.Linear(16 * 5 * 5, 120), torch.nn.Dropout(0.5)
        self.fc2, self.fc3 = torch.nn.Linear(120, 84), torch.nn.Linear(84, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(torch.relu(self.conv1(x)))
        x = self.pool(torch.relu(self.bn2(self.conv2(x))))
        x = torch.flatten(x, 1) if self.flatten else x.view(-1, 16 * 5 * 5)
        return self.fc3(torch.relu(self.fc2(self.drop(torch.relu(self.fc1(x))))))


class Reordered(torch.nn.Module):
    """``body`` (3 -> ``filters``, 3 x 3 and padded: maps as large as the image) read by ``head``
    (1 x 1, to 2 maps) through ``op``, which lays the maps out channels last (a permute, a
    transpose, a movedim), crops or cuts them there, and lays them out back. With 16 filters on
    16 x 16 images the maps are as tall and as wide as there are channels: only where the
    channels are followed can a crop of rows be told from a cut of channels."""

    def __init__(self, op: Callable[[torch.Tensor], torch.Tensor], *, filters: int = 16, size: int = 16) -> None:
        super().__init__()
        self.op = op
        self.body = torch.nn.Conv2d(3, filters, 3, padding=1)
        self.head = torch.nn.Conv2d(op(torch.zeros(1, filters, size, size)).shape[1], 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.op(torch.relu(self.body(x))))


class Joined(torch.nn.Module):
    """``left`` (3 -> ``left`` filters) and ``right`` (3 -> ``right``), 3 x 3 and padded, read the
    image; ``op(x, a, b)`` joins the image ``x`` and their maps ``a`` and ``b`` (a cat, in
    channels-last layout or not ...), and ``head`` reads what it gives: a 1 x 1 conv to 2 maps, a
    1 x 1 x 1 one where ``op`` stacks (a Conv3d), or, where ``op`` flattens, a dense layer to 2 units."""

    def __init__(
        self,
        op: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
        *,
        left: int = 8,
        right: int = 6,
        size: int = 16,
    ) -> None:
        super().__init__()
        self.op = op
        self.left = torch.nn.Conv2d(3, left, 3, padding=1)
        self.right = torch.nn.Conv2d(3, right, 3, padding=1)
        joined = op(torch.zeros(1, 3, size, size), torch.zeros(1, left, size, size), torch.zeros(1, right, size, size))
        self.head: torch.nn.Module = (
            torch.nn.Conv2d(joined.shape[1], 2, 1) if joined.dim() == 4
            else torch.nn.Conv3d(joined.shape[1], 2, 1) if joined.dim() == 5
            else torch.nn.Linear(joined.shape[1], 2)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.op(x, torch.relu(self.left(x)), torch.relu(self.right(x))))


class Shortcut(torch.nn.Module):
    """A CIFAR ResNet block with the "option A" shortcut: ``stem`` (3 -> 4) feeds ``c1`` (4 -> 8,
    stride 2) and ``c2`` (8 -> 8), whose maps are added to stem's, subsampled and padded with two
    zero channels before them and two after (4 + 4 -> 8); ``head`` (8 -> 2, 1 x 1) reads the sum."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.c1 = torch.nn.Conv2d(4, 8, 3, stride=2, padding=1)
        self.c2 = torch.nn.Conv2d(8, 8, 3, padding=1)
        self.head = torch.nn.Conv2d(8, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.stem(x))
        short = torch.nn.functional.pad(y[:, :, ::2, ::2], (0, 0, 0, 0, 2, 2))
        return self.head(torch.relu(self.c2(torch.relu(self.c1(y))) + short))


class SpatialAttention(torch.nn.Module):
    """CBAM's spatial attention: ``body`` (3 -> 8) is weighted by a map that ``spatial`` (2 -> 1,
    7 x 7) makes from the mean and the max over body's channels; ``head`` (8 -> 2, 1 x 1) reads it."""

    def __init__(self) -> None:
        super().__init__()
        self.body = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.spatial = torch.nn.Conv2d(2, 1, 7, padding=3)
        self.head = torch.nn.Conv2d(8, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.body(x))
        weight = torch.sigmoid(self.spatial(torch.cat([y.mean(1, keepdim=True), y.amax(1, keepdim=True)], 1)))
        return self.head(y * weight)

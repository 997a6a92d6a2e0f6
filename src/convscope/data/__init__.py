"""Bundled data sets and loaders for a user's own files. Nothing is ever downloaded.

Example:
    >>> from convscope.data import list_datasets, load_dataset
    >>> "digits" in [info.name for info in list_datasets()]
    True
"""

from __future__ import annotations

from convscope.data import _bundled  # noqa: F401  (registers the bundled data sets)
from convscope.data._bundled import CIFAR10, DIGITS, FASHION, mnist_like
from convscope.data._files import load_cifar_batches, load_image_folder, load_mnist_idx
from convscope.data._images import IMAGE_FORMATS, MAX_PIXELS, load_image, load_image_with_info
from convscope.data._registry import Dataset, DatasetInfo, list_datasets, load_dataset, register_dataset
from convscope.data._torchvision import from_torchvision, load_torchvision_dataset
from convscope.data._transforms import fit_to_spec

__all__ = [
    "CIFAR10",
    "DIGITS",
    "FASHION",
    "IMAGE_FORMATS",
    "MAX_PIXELS",
    "Dataset",
    "DatasetInfo",
    "fit_to_spec",
    "from_torchvision",
    "list_datasets",
    "load_cifar_batches",
    "load_dataset",
    "load_image",
    "load_image_folder",
    "load_image_with_info",
    "load_mnist_idx",
    "load_torchvision_dataset",
    "mnist_like",
    "register_dataset",
]

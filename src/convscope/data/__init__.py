"""Bundled data sets and loaders for a user's own files. Nothing is ever downloaded."""

from __future__ import annotations

from convscope.data import _bundled  # noqa: F401  (registers the bundled data sets)
from convscope.data._files import load_cifar_batches, load_image_folder, load_mnist_idx
from convscope.data._images import load_image, load_image_with_info
from convscope.data._registry import Dataset, DatasetInfo, list_datasets, load_dataset, register_dataset
from convscope.data._transforms import fit_to_spec

__all__ = [
    "Dataset",
    "DatasetInfo",
    "fit_to_spec",
    "list_datasets",
    "load_cifar_batches",
    "load_dataset",
    "load_image_folder",
    "load_mnist_idx",
    "load_image",
    "load_image_with_info",
    "register_dataset",
]

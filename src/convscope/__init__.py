"""convscope: see inside convolutional networks while they train and after.

The public surface fits on one screen; everything else lives in private modules.

Example:
    >>> import convscope
    >>> m = convscope.load_model("lenet5-simplified", pretrained=False)
    >>> [l.id for l in m.graph.layers][:3]
    ['input', 'conv1', 'relu1']
"""

from __future__ import annotations

from convscope import errors
from convscope.capture import CaptureResult, Recorder, capture
from convscope.data import Dataset, list_datasets, load_dataset
from convscope.insitu import Monitor, PruneConfig, watch
from convscope.models import InputSpec, LoadedModel, ModelGraph, list_models, load_model

__version__ = "0.1.0"

__all__ = [
    "CaptureResult",
    "Dataset",
    "InputSpec",
    "LoadedModel",
    "ModelGraph",
    "Monitor",
    "PruneConfig",
    "Recorder",
    "__version__",
    "capture",
    "errors",
    "list_datasets",
    "list_models",
    "load_dataset",
    "load_model",
    "watch",
]

"""convscope: see inside convolutional networks while they train and after.

The public surface fits on one screen; everything else lives in private modules.

Example:
    >>> import convscope
    >>> m = convscope.load_model("lenet5-simplified", pretrained=False)
    >>> [l.id for l in m.graph.layers][:3]
    ['input', 'conv1', 'relu1']
"""

from __future__ import annotations

import importlib.util
from typing import Any

from convscope import errors

__version__ = "0.1.0"

if importlib.util.find_spec("torch") is not None:
    from convscope.capture import CaptureResult, Recorder, capture
    from convscope.data import Dataset, list_datasets, load_dataset
    from convscope.insitu import Monitor, PruneConfig, watch
    from convscope.models import InputSpec, LoadedModel, ModelGraph, list_models, load_model
else:
    # Without torch (ParaView's own Python running the bridge, a plain Python reading frames)
    # the torch-free parts still import: convscope.frames, convscope.store, convscope.export.

    def __getattr__(name: str) -> Any:
        if name in __all__ and name not in ("errors", "__version__"):
            raise errors.MissingDependencyError(
                f"convscope.{name} needs torch, which is not installed in this Python; "
                'install it with: pip install torch "convscope"'
            )
        raise AttributeError(f"module 'convscope' has no attribute {name!r}")


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

"""Every error convscope raises on purpose.

One tree, so callers can catch broadly or narrowly. Built-in bases are mixed in
where they fit, so ``except ValueError`` keeps working for code that does not know
convscope::

    ConvscopeError
    ├── ModelLoadError (ValueError)          a model file or object could not be loaded
    │   ├── UnsupportedFormatError           unknown extension / object type
    │   ├── CorruptModelError                truncated, random bytes, unreadable archive
    │   ├── UntrustedModelError              a pickle that would run code, refused
    │   ├── StateDictMismatchError           missing / unexpected / mis-shaped keys
    │   └── ConversionError                  ONNX or Keras conversion failed or disagrees
    ├── NotFoundError (LookupError)          a named thing does not exist
    │   ├── LayerNotFoundError               layer name not in the model
    │   ├── UnknownModelError                zoo name not registered
    │   └── UnknownDatasetError              data set name not registered
    ├── RegistryError                        two implementations claim one name
    ├── MissingDependencyError (ImportError) an optional extra is not installed or broken
    ├── DataError (ValueError)               input data of the wrong shape, type or content
    ├── FrameError (ValueError)              a frame that cannot be encoded or decoded
    ├── StoreError                           the run store cannot be opened or read
    └── ServerError                          carries an HTTP status for the API layer

Every message says what happened, what was found, and what to do.
"""

from __future__ import annotations

__all__ = [
    "ConvscopeError",
    "ConversionError",
    "CorruptModelError",
    "DataError",
    "FrameError",
    "LayerNotFoundError",
    "MissingDependencyError",
    "ModelLoadError",
    "NotFoundError",
    "RegistryError",
    "ServerError",
    "StateDictMismatchError",
    "StoreError",
    "UnknownDatasetError",
    "UnknownModelError",
    "UnsupportedFormatError",
    "UntrustedModelError",
]


class ConvscopeError(Exception):
    """Base of every error convscope raises on purpose."""


class ModelLoadError(ConvscopeError, ValueError):
    """A model file or object could not be turned into a torch module and graph."""


class UnsupportedFormatError(ModelLoadError):
    """The source is not a format convscope can load."""


class CorruptModelError(ModelLoadError):
    """The file has a known extension but its content is damaged or not that format."""


class UntrustedModelError(ModelLoadError):
    """Loading would execute code from the file (a pickle) and trust was not given."""


class StateDictMismatchError(ModelLoadError):
    """A state dict does not fit the architecture it was given with."""

    def __init__(
        self,
        message: str,
        *,
        missing: list[str] | None = None,
        unexpected: list[str] | None = None,
        mismatched: list[str] | None = None,
    ) -> None:
        super().__init__(message)
        self.missing = list(missing or [])
        self.unexpected = list(unexpected or [])
        self.mismatched = list(mismatched or [])


class ConversionError(ModelLoadError):
    """A model converted from ONNX or Keras failed, or disagrees with its reference."""


class NotFoundError(ConvscopeError, LookupError):
    """A named thing (layer, model, data set, run) does not exist."""


class LayerNotFoundError(NotFoundError):
    """A layer name that the model does not have."""


class UnknownModelError(NotFoundError):
    """A zoo model name that is not registered."""


class UnknownDatasetError(NotFoundError):
    """A data set name that is not registered."""


class RegistryError(ConvscopeError):
    """Two implementations were registered under one name."""


class MissingDependencyError(ConvscopeError, ImportError):
    """An optional dependency is missing or broken; the message names the extra to install."""


class DataError(ConvscopeError, ValueError):
    """Input data that has the wrong shape, type or content."""


class FrameError(ConvscopeError, ValueError):
    """A frame that cannot be encoded, or bytes that do not decode to a frame."""


class StoreError(ConvscopeError):
    """The run store cannot be opened, written or read."""


class ServerError(ConvscopeError):
    """An error the API turns into an HTTP response with ``status_code``."""

    def __init__(self, message: str, *, status_code: int = 400) -> None:
        super().__init__(message)
        self.status_code = status_code

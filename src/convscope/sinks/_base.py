"""The one interface every consumer of frames implements."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from convscope.errors import DataError, NotFoundError, RegistryError

if TYPE_CHECKING:
    from convscope.frames import Frame

__all__ = ["Sink", "create_sink", "list_sinks", "register_sink"]


class Sink:
    """A consumer of frames: the run store, the live server, CSV/VTK writers ...

    Sinks run on the monitor's background thread, never on the training thread. ``write``
    may raise: the pipeline counts the failure, warns once and keeps training going.

    A sink may also define ``write_many(frames)``, which takes the frames of one work item at
    once (cheaper per frame) and writes all of them or, raising, none: the pipeline then
    writes them one by one, so that only a frame that fails alone is lost.
    """

    name = "sink"
    #: whether ``write`` encodes each frame with :func:`convscope.frames.encode`: the monitor's
    #: pipeline then encodes each frame once, ahead, for all the sinks that do (on the thread
    #: that analyses), and ``encode`` returns those bytes at once
    encodes = False

    def write(self, frame: Frame) -> None:
        raise NotImplementedError

    def flush(self) -> None:
        """Make everything written so far durable or visible (called periodically)."""

    def close(self, *, status: str = "finished") -> None:
        """Release resources; ``status`` is how the run ended (finished, failed, crashed)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


_SINKS: dict[str, Callable[..., Sink]] = {}


def register_sink(name: str) -> Callable[[Callable[..., Sink]], Callable[..., Sink]]:
    """Register a sink factory under ``name`` (``@register_sink("csv")``)."""

    def decorate(factory: Callable[..., Sink]) -> Callable[..., Sink]:
        if name in _SINKS:
            raise RegistryError(f"sink {name!r} is registered twice")
        _SINKS[name] = factory
        return factory

    return decorate


# modules that register sinks when imported; create_sink/list_sinks import them on demand
_BUILTIN = ("memory", "store", "http", "csv", "vtk", "tensorboard")


def _load_builtin() -> None:
    import importlib

    for module in _BUILTIN:
        try:
            importlib.import_module(f"convscope.sinks.{module}")
        except ImportError:
            pass  # not written yet, or its optional dependency is missing


def list_sinks() -> list[str]:
    _load_builtin()
    return sorted(_SINKS)


def create_sink(name: str, **options: Any) -> Sink:
    if name not in _SINKS:
        _load_builtin()
    try:
        factory = _SINKS[name]
    except KeyError:
        raise NotFoundError(f"sink {name!r} does not exist; choose one of {', '.join(list_sinks())}") from None
    try:
        inspect.signature(factory).bind(**options)
    except TypeError as exc:  # (options the sink does not take, or one it needs left out)
        raise DataError(f"sink {name!r} takes {_options_of(factory)}; {exc}") from None
    except ValueError:  # no signature to read: the factory says itself
        pass
    return factory(**options)


def _options_of(factory: Callable[..., Any]) -> str:
    """``factory``'s keyword options as a user writes them: ``out=..., kinds=None``."""
    params = [p for p in inspect.signature(factory).parameters.values() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    return ", ".join(f"{p.name}=..." if p.default is p.empty else f"{p.name}={p.default!r}" for p in params) or "no options"

"""Import optional dependencies with messages that say which extra to install."""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

from convscope.errors import MissingDependencyError

__all__ = ["available", "require"]


def available(*modules: str) -> bool:
    """Whether every one of ``modules`` can be imported here, without importing it.

    A module set to ``None`` in ``sys.modules`` (marked absent on purpose) is not available.

    Example:
        >>> available("numpy"), available("no_such_module_here")
        (True, False)
    """
    import importlib.util

    for module in modules:
        if module in sys.modules:
            if sys.modules[module] is None:
                return False
            continue
        try:
            if importlib.util.find_spec(module) is None:
                return False
        except (ImportError, ValueError):  # a parent package is missing or marked absent
            return False
    return True


def require(module: str, *, feature: str, extra: str, pip_hint: str | None = None) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` naming what to install.

    "Not installed" and "installed but broken" get different messages, because the
    fixes differ (install it, versus repair or pin it).

    Example:
        >>> np = require("numpy", feature="analysis", extra="core")
    """
    install = pip_hint or f'pip install "convscope[{extra}]"'
    if module in sys.modules and sys.modules[module] is None:
        # Someone (often a test) marked it as absent on purpose.
        raise MissingDependencyError(
            f"{feature} needs the optional package '{module}', which is not installed; "
            f"install it with: {install}"
        ) from None
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        missing = exc.name or module
        raise MissingDependencyError(
            f"{feature} needs the optional package '{missing}', which is not installed; "
            f"install it with: {install}"
        ) from None
    except Exception as exc:  # installed, but importing it fails
        raise MissingDependencyError(
            f"{feature} needs '{module}', which is installed but failed to import "
            f"({type(exc).__name__}: {exc}); reinstall it with: {install}"
        ) from exc

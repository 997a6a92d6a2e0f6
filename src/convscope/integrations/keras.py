"""A Keras 3 callback: ``model.fit(x, y, callbacks=[ConvscopeCallback(every=10)])``.

On Keras's torch backend every view is recorded: Keras layers are torch modules, so forward
hooks see the activations (channels-last, turned channels-first) and the gradients are the
torch gradients Keras computed. On other backends the weight views (weight grid and
trajectory) are recorded from the variables' values after each batch; activation and gradient
views need the torch backend. Kernels are shown in torch's layout (filters first) like every
other model in convscope. Steps are the optimizer's iterations, so a model saved and trained on
(``initial_epoch=``) goes on counting; ``run=`` with ``resume=True`` goes on with its stored run.

Keras calls no callback when ``fit()`` raises. The run is still ended, as ``failed``: in
Jupyter or IPython once the cell has ended, in a script when the interpreter exits (every
monitor still open is closed then). Its recordings up to the error are kept.

Example:
    >>> from convscope.integrations.keras import ConvscopeCallback
    >>> cb = ConvscopeCallback(every=10, logdir="convscope-runs")
"""

from __future__ import annotations

import math
import os
import sys
import threading
import warnings
import weakref
from collections.abc import Iterable
from typing import Any

from convscope._optional import require

if "keras" not in sys.modules:
    os.environ.setdefault("KERAS_BACKEND", "torch")  # convscope's compute core; set yours before importing

require("keras", feature="the Keras callback", extra="keras")

import keras  # noqa: E402

from convscope.errors import DataError  # noqa: E402
from convscope.insitu import Monitor  # noqa: E402
from convscope.insitu._monitor import _did_you_mean, check_options  # noqa: E402
from convscope.notebook import ipython_shell  # noqa: E402

__all__ = ["ConvscopeCallback", "keras_layers"]

_CONV = ("Conv1D", "Conv2D", "Conv3D", "DepthwiseConv2D")
#: conv layers without one kernel (a depthwise and a pointwise one), which convscope cannot watch
_UNWATCHABLE = ("SeparableConv1D", "SeparableConv2D")


def _walk(model: Any, *, dense: bool) -> list[tuple[str, Any]]:
    """(path, layer) of the model's conv layers (and dense ones), nested models walked: a path is
    the names of the nested models a layer is in and its own, joined by ``/`` (``block/conv``)."""
    found: list[tuple[str, Any]] = []
    seen: set[int] = set()

    def walk(layer: Any, path: str) -> None:
        for sub in getattr(layer, "layers", []):
            walk(sub, f"{path}{sub.name}/")
        kind = type(layer).__name__
        built = kind in _UNWATCHABLE or getattr(layer, "kernel", None) is not None
        if built and (kind in _CONV or kind in _UNWATCHABLE or (dense and kind == "Dense")):
            if id(layer) not in seen:  # (a nested model used twice: its layers once)
                seen.add(id(layer))
                found.append((path.rstrip("/"), layer))

    walk(model, "")
    return found


def _by_name(found: list[tuple[str, Any]]) -> dict[str, Any]:
    """The layers by name, or by path where nested models hold layers of the same name."""
    names = [layer.name for _, layer in found]
    return {layer.name if names.count(layer.name) == 1 else path: layer for path, layer in found}


def keras_layers(model: Any, *, dense: bool = False) -> dict[str, Any]:
    """The model's conv layers (and dense ones with ``dense=True``), nested models walked, by
    name; where nested models hold layers of the same name, by path (``block/conv``)."""
    return {n: layer for n, layer in _by_name(_walk(model, dense=dense)).items() if type(layer).__name__ not in _UNWATCHABLE}


#: callbacks whose ``fit()`` has begun and not ended (see _after_cell)
_IN_FIT: weakref.WeakSet[ConvscopeCallback] = weakref.WeakSet()
_following_cells = False


def _after_cell(result: Any = None) -> None:
    """IPython's ``post_run_cell``: a cell has ended in error while a ``fit()`` that it ran on
    the main thread had begun and not ended, so that ``fit()`` raised (Keras calls no callback
    then); its run ends as ``failed`` and its hooks come off."""
    if getattr(result, "error_in_exec", None) is None:
        return
    for callback in list(_IN_FIT):
        if callback._fit_thread == threading.main_thread().ident:
            callback._end("failed")


def _follow_cells() -> None:
    """Follow the cells of the IPython shell this process runs, if any (once)."""
    global _following_cells
    if _following_cells:
        return
    shell = ipython_shell()
    if shell is not None:
        shell.events.register("post_run_cell", _after_cell)
        _following_cells = True


class ConvscopeCallback(keras.callbacks.Callback):
    """Watch a Keras model while it trains; takes the options of :func:`convscope.watch` but
    ``optimizer`` (its steps are the training batches), checked here rather than at ``fit()``.

    ``layers`` may name Keras layers, or a nested model's layer by its path (``block/conv``)
    (default: every conv layer but separable ones). The training loss and metrics are logged
    after every batch, the validation's at the end of every epoch.
    """

    def __init__(self, **watch_options: Any) -> None:
        super().__init__()
        check_options(
            watch_options, "ConvscopeCallback()", set_by={"optimizer": "its steps are the training batches Keras runs"}, values=True
        )
        self.options = watch_options
        self.monitor: Monitor | None = None

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        options = dict(self.options)
        names = options.pop("layers", None)
        if isinstance(names, str):  # one layer's name
            names = [names]
        found = _walk(self.model, dense=True)
        available = _by_name(found)
        paths = dict(found)
        unwatchable = [n for n, layer in available.items() if type(layer).__name__ in _UNWATCHABLE]
        if names is None:
            chosen = {n: layer for n, layer in available.items() if n not in unwatchable and type(layer).__name__ != "Dense"}
            if not chosen:
                dense = [n for n, layer in available.items() if type(layer).__name__ == "Dense"]
                raise DataError(
                    f"the Keras model {self.model.name!r} has no conv layers to watch by default; pass layers=[...] with the names of the layers "
                    f"to watch{' (its dense layers: ' + ', '.join(dense) + ')' if dense else ''}"
                )
            if unwatchable:
                warnings.warn(
                    f"convscope does not watch {', '.join(unwatchable)}: a separable conv has two kernels (depthwise and "
                    "pointwise), not one; a DepthwiseConv2D and a 1x1 Conv2D in its place can be watched",
                    RuntimeWarning,
                    stacklevel=2,
                )
        else:
            if not isinstance(names, Iterable):
                raise DataError(f"layers= is a layer's name or a list of names (e.g. ['conv1', 'conv2']); got {names!r}")
            names = list(names)
            if not names:
                raise DataError("layers= names no layer to watch; name the conv or dense layers to watch, or leave it out for every conv layer")
            missing = [n for n in names if n not in available and n not in paths]
            if missing:
                raise DataError(
                    f"Keras layers {missing} not found{_did_you_mean(missing[0], [*available, *paths])}; conv and dense layers "
                    f"are {', '.join(available)} (a nested model's layer may also be named by its path, block/conv)"
                )
            bad = [n for n in names if type(available.get(n, paths.get(n))).__name__ in _UNWATCHABLE]
            if bad:
                raise DataError(
                    f"Keras layers {bad} are separable convs, with two kernels (depthwise and pointwise), which convscope "
                    "cannot watch; watch other layers, or use a DepthwiseConv2D and a 1x1 Conv2D in their place"
                )
            chosen = {n: available.get(n, paths.get(n)) for n in names}
        backend = keras.backend.backend()
        if backend != "torch":
            record = options.get("record", ("weights", "trajectory"))
            options["record"] = [v for v in ([record] if isinstance(record, str) else record) if v in ("weights", "trajectory")]
        options.setdefault("config", {})
        options["config"] = {"trainer": "keras", "backend": backend, **options["config"]}
        # steps are the optimizer's iterations (as Keras's TensorBoard callback counts them), so a
        # fit that goes on from a saved model (its optimizer's state restored) goes on counting
        iterations = getattr(getattr(self.model, "optimizer", None), "iterations", None)
        if "start_step" not in options and iterations is not None:
            options["start_step"] = int(keras.ops.convert_to_numpy(iterations))
        if self.monitor is not None:  # (still open only after an earlier fit() with this callback that raised)
            self._end("failed")
        self.monitor = Monitor(self.model, optimizer=None, layers=chosen, **options).start()
        self._fit_thread = threading.get_ident()
        _IN_FIT.add(self)
        _follow_cells()

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self.monitor is None:
            return
        self.monitor.step()
        self._log(logs)

    def _log(self, logs: dict[str, Any] | None) -> None:
        scalars = {}
        for key, value in (logs or {}).items():
            try:
                number = float(value)
            except (TypeError, ValueError):
                continue
            if math.isfinite(number):
                scalars[key] = number
        if scalars and self.monitor is not None:
            self.monitor.log(**scalars)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        # the validation's loss and metrics (the training's came with its batches)
        if self.monitor is not None:
            self._log({k: v for k, v in (logs or {}).items() if k.startswith("val_")})

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        self._end("finished")

    _fit_thread: int | None = None

    def _end(self, status: str) -> None:
        _IN_FIT.discard(self)
        if self.monitor is not None:
            self.monitor.close(status=status)

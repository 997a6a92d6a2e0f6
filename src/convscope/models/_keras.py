"""Keras 3 models (``.keras``, ``.h5``) run on Keras's torch backend.

A Keras model on the torch backend is a ``torch.nn.Module`` whose layers are modules too, so
hooks, gradients and freezing work as for any torch model. Keras is channels-last (NHWC); the
loaded module takes channels-first input like every other convscope model (it transposes at
its entry), the graph's shapes are channels-first, and capture turns the layers' NHWC
outputs channels-first (``layer_layouts``).

Files are checked before Keras reads them: a ``.keras`` file must be a zip archive of bounded
size and member count, an ``.h5`` file must be HDF5. Keras loads in safe mode, which refuses
``Lambda`` layers (arbitrary code) unless the caller passes ``trust=True``.
"""

from __future__ import annotations

import os
import sys
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from convscope._optional import require
from convscope.errors import ConversionError, CorruptModelError, UntrustedModelError
from convscope.models._graph import Edge, Layer, ModelGraph, canonical_kind, category_of
from convscope.models._spec import InputSpec, LoadedModel

if TYPE_CHECKING:
    import torch

__all__ = ["load_keras", "import_keras"]

MAX_ARCHIVE_MEMBERS = 10_000
MAX_ARCHIVE_BYTES = 8 << 30  # uncompressed


def import_keras() -> Any:
    """Import Keras on its torch backend (chosen here unless the user chose before)."""
    if "keras" not in sys.modules:
        os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = require("keras", feature="loading Keras models", extra="keras")
    backend = keras.backend.backend()
    if backend != "torch":
        raise ConversionError(
            f"Keras runs on its {backend!r} backend in this process; convscope needs the torch backend: "
            "set KERAS_BACKEND=torch before keras is first imported"
        )
    return keras


def _check_file(path: Path) -> None:
    ext = path.suffix.lower()
    if ext == ".keras":
        if not zipfile.is_zipfile(path):
            raise CorruptModelError(f"{path.name!r} is not a Keras archive (a .keras file is a zip archive)")
        try:
            with zipfile.ZipFile(path) as archive:
                infos = archive.infolist()
        except zipfile.BadZipFile as exc:
            raise CorruptModelError(f"{path.name!r} is a damaged archive: {exc}") from None
        if len(infos) > MAX_ARCHIVE_MEMBERS or sum(i.file_size for i in infos) > MAX_ARCHIVE_BYTES:
            raise CorruptModelError(f"{path.name!r} unpacks to more than {MAX_ARCHIVE_MEMBERS} files or 8 GiB; refused")
        names = {i.filename for i in infos}
        if "config.json" not in names:
            raise CorruptModelError(f"{path.name!r} has no config.json: not a Keras 3 model archive")
    else:
        h5py = require("h5py", feature="loading .h5 Keras models", extra="keras")
        if not h5py.is_hdf5(str(path)):
            raise CorruptModelError(f"{path.name!r} is not an HDF5 file (legacy Keras .h5 models are HDF5)")


def _wrapper_class() -> type:
    import torch

    class ChannelsFirst(torch.nn.Module):
        """A Keras model behind a channels-first (NCHW) entrance."""

        def __init__(self, model: Any, image: bool) -> None:
            super().__init__()
            self.keras_model = model
            self.image = image

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if self.image and x.dim() == 4:
                x = x.permute(0, 2, 3, 1)
            out = self.keras_model(x)
            return out[0] if isinstance(out, list | tuple) else out

    return ChannelsFirst


def load_keras(path: Path, *, spec: InputSpec | None = None, check: bool = True, trust: bool = False) -> LoadedModel:
    """Load a ``.keras`` or ``.h5`` file into canonical form (see :func:`convscope.load_model`)."""
    import numpy as np
    import torch

    _check_file(path)
    keras = import_keras()
    try:
        model = keras.saving.load_model(str(path), compile=False, safe_mode=not trust)
    except Exception as exc:
        text = str(exc)
        if "safe_mode" in text or "Lambda" in text or "lambda" in text:
            raise UntrustedModelError(
                f"{path.name!r} contains code (a Lambda layer or a custom function) that Keras would run; "
                "load it only if you trust it: load_model(..., trust=True) (CLI: --trust)"
            ) from None
        raise CorruptModelError(f"Keras could not load {path.name!r}: {type(exc).__name__}: {text[:300]}") from None
    if len(model.inputs) != 1:
        raise ConversionError(f"{path.name!r} has {len(model.inputs)} inputs; convscope handles models with one input")
    keras_shape = tuple(model.inputs[0].shape[1:])
    if any(d is None for d in keras_shape):
        if spec is None:
            raise ConversionError(f"{path.name!r} does not fix its input shape {keras_shape}; pass input_shape=(C, H, W)")
    image = len(keras_shape) == 3
    if spec is None:
        shape = (keras_shape[2], keras_shape[0], keras_shape[1]) if image else keras_shape
        spec = InputSpec(shape=tuple(int(d) for d in shape))
    module = _wrapper_class()(model, image).eval()
    graph, layer_modules, layouts = _graph(model, spec)
    diff = None
    if check:
        gen = torch.Generator().manual_seed(0)
        x = torch.randn((2, *spec.shape), generator=gen)
        with torch.no_grad():
            ours = module(x).detach().cpu().numpy()
        ref = model.predict(x.permute(0, 2, 3, 1).numpy() if image else x.numpy(), verbose=0)
        ref = np.asarray(ref[0] if isinstance(ref, list) else ref)
        diff = float(np.max(np.abs(ours - ref)))
        if not diff <= 1e-4 * max(1.0, float(np.max(np.abs(ref)))):
            raise ConversionError(f"the channels-first module differs from Keras's own predict by {diff:.3g}")
    return LoadedModel(
        module=module,
        graph=graph,
        input_spec=spec,
        format="keras",
        source=str(path),
        reference_max_abs_diff=diff,
        layer_modules=layer_modules,
        layer_layouts=layouts,
        name=model.name or path.stem,
    )


def _cf(shape: Any) -> tuple[int, ...]:
    dims = tuple(int(d) if d is not None else -1 for d in tuple(shape)[1:])
    return (dims[2], dims[0], dims[1]) if len(dims) == 3 else dims


def _attributes(layer: Any) -> dict[str, Any]:
    cfg = layer.get_config()
    attrs: dict[str, Any] = {}
    for ours, theirs in (("filters", "filters"), ("units", "units"), ("kernel", "kernel_size"), ("stride", "strides"),
                         ("padding", "padding"), ("activation", "activation"), ("pool", "pool_size"), ("rate", "rate")):
        if theirs in cfg and cfg[theirs] is not None:
            value = cfg[theirs]
            attrs[ours] = tuple(value) if isinstance(value, list) else value
    return attrs


def _graph(model: Any, spec: InputSpec) -> tuple[ModelGraph, dict[str, Any], dict[str, str]]:
    layers = [Layer(id="input", kind="input", type="input", category="io", output_shape=tuple(spec.shape), hookable=False)]
    edges: list[Edge] = []
    modules: dict[str, Any] = {}
    layouts: dict[str, str] = {}
    previous = "input"
    for layer in model.layers:
        kind = canonical_kind(type(layer).__name__)
        if kind == "inputlayer":
            continue
        try:
            out_shape = _cf(layer.output.shape)
        except (AttributeError, ValueError):
            out_shape = None
        try:
            inputs = layer.input if isinstance(layer.input, list) else [layer.input]
            in_shapes = tuple(_cf(t.shape) for t in inputs)
            sources = []
            for t in inputs:
                history = getattr(t, "_keras_history", None)
                op = history[0] if history else None
                name = getattr(op, "name", None)
                sources.append("input" if op is None or canonical_kind(type(op).__name__) == "inputlayer" else name)
        except (AttributeError, ValueError):
            in_shapes, sources = (), [previous]
        layers.append(
            Layer(
                id=layer.name,
                kind=kind,
                type=type(layer).__name__,
                category=category_of(kind),
                input_shapes=in_shapes,
                output_shape=out_shape,
                params=int(layer.count_params()) if layer.built else 0,
                attributes=_attributes(layer),
            )
        )
        for source in sources or [previous]:
            edges.append(Edge(source=source or previous, target=layer.name))
        modules[layer.name] = layer
        if out_shape is not None and len(out_shape) == 3:
            layouts[layer.name] = "NHWC"
        previous = layer.name
    graph = ModelGraph(layers=layers, edges=edges, containers=[], input_shape=tuple(spec.shape), method="keras")
    return graph, modules, layouts

"""Keras 3 models (``.keras``, ``.h5``) run on Keras's torch backend.

A Keras model on the torch backend is a ``torch.nn.Module`` whose layers are modules too, so
hooks, gradients and freezing work as for any torch model. Keras is channels-last (NHWC); the
loaded module takes channels-first image batches like every other convscope model (it
transposes 4-D inputs at its entry; other inputs, such as 28x28 images without a channel axis,
stay as they are), the graph's shapes are channels-first, and capture turns the layers'
channels-last outputs (``N x H x W x C``, ``N x T x C``) channels-first (``layer_layouts``).

Files are checked before Keras reads them: a ``.keras`` file must be a zip archive within
member-count, size and compression-ratio limits, with safe member names and a bounded
``config.json``; an ``.h5`` file must be HDF5 without external links, external or virtual
datasets, and without datasets that declare far more than they store. Keras loads in safe
mode, which refuses ``Lambda`` layers (arbitrary code) unless the caller passes ``trust=True``.
"""

from __future__ import annotations

import functools
import os
import re
import sys
import zipfile
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from convscope._optional import require
from convscope.errors import ConversionError, CorruptModelError, UntrustedModelError
from convscope.models._graph import Container, Edge, Layer, ModelGraph, canonical_kind, category_of
from convscope.models._spec import InputSpec, LoadedModel

if TYPE_CHECKING:
    import torch

__all__ = [
    "MAX_ARCHIVE_BYTES",
    "MAX_ARCHIVE_MEMBERS",
    "MAX_COMPRESSION_RATIO",
    "MAX_CONFIG_BYTES",
    "TOLERANCE",
    "import_keras",
    "load_keras",
]

#: a ``.keras`` archive may hold at most this many members ...
MAX_ARCHIVE_MEMBERS = 10_000
#: ... unpacking to at most this many bytes in all ...
MAX_ARCHIVE_BYTES = 8 << 30
#: ... and no member above 64 MiB may expand more than this (Keras stores members uncompressed)
MAX_COMPRESSION_RATIO = 100
#: the largest ``config.json`` read (it is parsed in memory)
MAX_CONFIG_BYTES = 64 << 20
#: an HDF5 file may hold at most this many objects
MAX_H5_OBJECTS = 100_000
#: largest allowed difference from Keras's own ``predict``, relative to ``max(1, max|y|)``
TOLERANCE = 1e-4
_RATIO_FLOOR = 64 << 20


def import_keras() -> Any:
    """Import Keras on its torch backend.

    The backend must be chosen before Keras is first imported: convscope sets
    ``KERAS_BACKEND=torch`` if nothing was chosen, and says so clearly if another backend
    was chosen or is already running.

    Example:
        >>> import_keras().backend.backend()
        'torch'
    """
    if sys.modules.get("keras") is None:
        chosen = os.environ.get("KERAS_BACKEND")
        if chosen and chosen != "torch":
            raise ConversionError(
                f"KERAS_BACKEND is {chosen!r}; convscope runs Keras models on the torch backend - set "
                "KERAS_BACKEND=torch (or unset it) before starting Python"
            )
        os.environ["KERAS_BACKEND"] = "torch"
    keras = require("keras", feature="loading Keras models", extra="keras")
    backend = keras.backend.backend()
    if backend != "torch":
        raise ConversionError(
            f"Keras already runs on its {backend!r} backend in this process; convscope needs the torch backend: "
            "set KERAS_BACKEND=torch before keras is first imported (a new Python process)"
        )
    return keras


# --- checks before Keras reads a byte ----------------------------------------------------------


def _check_file(path: Path) -> None:
    from convscope.models._load import _check_nonempty

    _check_nonempty(path)
    if path.suffix.lower() == ".keras":
        _check_archive(path)
    else:
        _check_h5(path)


def _check_archive(path: Path) -> None:
    if not zipfile.is_zipfile(path):
        raise CorruptModelError(
            f"{path.name!r} is not a Keras archive (a .keras file is a zip archive); it may be truncated - "
            "re-save it with model.save('model.keras')"
        )
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            if len(infos) > MAX_ARCHIVE_MEMBERS:
                raise CorruptModelError(
                    f"{path.name!r} holds {len(infos)} archive members (at most {MAX_ARCHIVE_MEMBERS}); refused"
                )
            total = sum(i.file_size for i in infos)
            if total > MAX_ARCHIVE_BYTES:
                raise CorruptModelError(
                    f"{path.name!r} unpacks to {total / 2**30:.1f} GiB (at most {MAX_ARCHIVE_BYTES / 2**30:.1f} GiB); refused"
                )
            for info in infos:
                name = PurePosixPath(info.filename.replace("\\", "/"))
                if name.is_absolute() or ".." in name.parts or ":" in info.filename:
                    raise CorruptModelError(f"{path.name!r} has an archive member with an unsafe path {info.filename!r}; refused")
                if info.file_size > _RATIO_FLOOR and info.file_size > MAX_COMPRESSION_RATIO * max(1, info.compress_size):
                    raise CorruptModelError(
                        f"{path.name!r}: member {info.filename!r} expands {info.file_size / max(1, info.compress_size):.0f}x "
                        f"(to {info.file_size / 2**20:.0f} MiB); a decompression bomb, refused"
                    )
            config = next((i for i in infos if i.filename == "config.json"), None)
            if config is None:
                raise CorruptModelError(
                    f"{path.name!r} has no config.json: not a Keras 3 model archive (saved weights only? "
                    "save the whole model with model.save('model.keras'))"
                )
            if config.file_size > MAX_CONFIG_BYTES:
                raise CorruptModelError(
                    f"{path.name!r} has a {config.file_size / 2**20:.0f} MiB config.json (at most "
                    f"{MAX_CONFIG_BYTES / 2**20:.0f} MiB); refused"
                )
            bad = archive.testzip()  # CRCs: a damaged archive fails here, not inside Keras
            if bad is not None:
                raise CorruptModelError(f"{path.name!r} is damaged: archive member {bad!r} fails its checksum")
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:
        raise CorruptModelError(f"{path.name!r} is a damaged archive ({type(exc).__name__}: {exc}); re-save it") from None


def _check_h5(path: Path) -> None:
    h5py = require("h5py", feature="loading .h5 Keras models", extra="keras")
    if not h5py.is_hdf5(str(path)):
        raise CorruptModelError(
            f"{path.name!r} is not an HDF5 file (legacy Keras .h5 models are HDF5); it may be truncated or another "
            "format with the wrong extension"
        )
    try:
        with h5py.File(str(path), "r") as f:
            _walk_h5(h5py, f, path, [0], f.id.get_filesize())
    except CorruptModelError:
        raise
    except Exception as exc:  # h5py raises OSError, KeyError, RuntimeError ... for damaged files
        raise CorruptModelError(
            f"{path.name!r} is a damaged HDF5 file ({type(exc).__name__}: {str(exc)[:200]}); re-save it"
        ) from None


def _walk_h5(h5py: Any, group: Any, path: Path, count: list[int], file_size: int) -> None:
    for name in group:
        count[0] += 1
        if count[0] > MAX_H5_OBJECTS:
            raise CorruptModelError(f"{path.name!r} holds more than {MAX_H5_OBJECTS} HDF5 objects; refused")
        link = group.get(name, getlink=True)
        if isinstance(link, h5py.ExternalLink):
            raise CorruptModelError(
                f"{path.name!r} links to another file ({link.filename!r}:{link.path}); refused - a model file "
                "must not read other files"
            )
        if isinstance(link, h5py.SoftLink):
            continue  # points inside this file; its target is walked where it lives
        obj = group[name]
        if isinstance(obj, h5py.Group):
            _walk_h5(h5py, obj, path, count, file_size)
        elif isinstance(obj, h5py.Dataset):
            if obj.external or obj.is_virtual:
                raise CorruptModelError(
                    f"{path.name!r}: dataset {obj.name!r} reads its data from other files; refused"
                )
            declared = int(obj.size) * obj.dtype.itemsize
            if declared > _RATIO_FLOOR and declared > 1000 * max(1, obj.id.get_storage_size()):
                raise CorruptModelError(
                    f"{path.name!r}: dataset {obj.name!r} declares {declared / 2**20:.0f} MiB but stores "
                    f"{obj.id.get_storage_size()} bytes; a decompression bomb, refused"
                )


# --- the channels-first module --------------------------------------------------------------------


@functools.cache
def _wrapper_class() -> type:
    import torch

    class KerasChannelsFirst(torch.nn.Module):
        """A Keras model behind a channels-first (``N x C x H x W``) entrance."""

        def __init__(self, model: Any, channels_last: bool) -> None:
            super().__init__()
            self.keras_model = model
            self.channels_last = channels_last

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if self.channels_last and x.dim() == 4:
                x = x.movedim(1, -1)
            out = self.keras_model(x)
            return out[0] if isinstance(out, list | tuple) else out

    return KerasChannelsFirst


def load_keras(path: Path, *, spec: InputSpec | None = None, check: bool = True, trust: bool = False) -> LoadedModel:
    """Load a ``.keras`` or ``.h5`` file into canonical form (see :func:`convscope.load_model`).

    Example:
        >>> m = load_keras(Path("cnn.keras"))  # doctest: +SKIP
        >>> m.input_spec.shape, m.layer_layouts["conv1"]  # doctest: +SKIP
        ((1, 28, 28), 'NHWC')
    """
    import numpy as np
    import torch

    from convscope.models._load import check_input_size

    _check_file(path)
    keras = import_keras()
    try:
        model = keras.saving.load_model(str(path), compile=False, safe_mode=not trust)
    except Exception as exc:
        text = str(exc)
        if "safe_mode" in text:
            raise UntrustedModelError(
                f"{path.name!r} contains code (a Lambda layer or a Python function) that Keras would run; "
                "load it only if you trust where it came from: load_model(..., trust=True) (CLI: --trust)"
            ) from None
        if "Could not locate" in text or "Unknown layer" in text or "custom_objects" in text:
            # Keras reports the outermost object that failed (often the whole Sequential); the
            # class it could not find is named further down its message
            found = re.search(r"Could not locate (?:class|function) '([^']+)'|Unknown \w+: '([^']+)'", text)
            what = (f"the custom Keras class {next(g for g in found.groups() if g)!r}" if found
                    else f"a custom Keras class ({_first_line(text)})")
            raise ConversionError(
                f"{path.name!r} uses {what}, which is not registered in this process; import the module that "
                "registers it (@keras.saving.register_keras_serializable) before loading"
            ) from None
        raise CorruptModelError(
            f"Keras could not load {path.name!r} ({type(exc).__name__}: {_first_line(text)}); it may be damaged - "
            "re-save it"
        ) from None
    if len(model.inputs) != 1:
        raise ConversionError(f"{path.name!r} has {len(model.inputs)} inputs; convscope handles models with one input")
    layers = _all_layers(model)
    channels_last = not any(getattr(layer, "data_format", None) == "channels_first" for layer in layers)
    keras_shape = tuple(model.inputs[0].shape[1:])
    if spec is None:
        if any(d is None for d in keras_shape):
            raise ConversionError(
                f"{path.name!r} does not fix its input shape {keras_shape}; pass input_shape=(C, H, W) "
                "(CLI: --input-shape)"
            )
        shape = _channels_first(keras_shape) if channels_last and len(keras_shape) == 3 else keras_shape
        spec = InputSpec(shape=tuple(int(d) for d in shape))
    check_input_size(spec.shape, batch=2, source=path.name)
    module = _wrapper_class()(model, channels_last).eval()
    shapes = _observed_shapes(module, layers, spec, channels_last)
    graph, layer_modules = _graph(model, spec, shapes)
    layouts = {
        lid: "NHWC"
        for lid, layer in layer_modules.items()
        if channels_last and (out := shapes.get(id(layer), (None, None))[1]) is not None and len(out) >= 2
    }
    diff = None
    if check:
        diff = _check_against_keras(model, module, spec, channels_last, np, torch)
    return LoadedModel(
        module=module,
        graph=graph,
        input_spec=spec,
        format="keras",
        source=str(path),
        reference_max_abs_diff=diff,
        layer_modules=layer_modules,
        layer_layouts=layouts,
        name=path.stem,
    )


def _check_against_keras(model: Any, module: Any, spec: InputSpec, channels_last: bool, np: Any, torch: Any) -> float:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn((2, *spec.shape), generator=gen)
    try:
        with torch.no_grad():
            ours = module(x).detach().cpu().to(torch.float64).numpy()
        ref = model.predict(x.movedim(1, -1).numpy() if channels_last and x.dim() == 4 else x.numpy(), verbose=0)
    except Exception as exc:
        raise ConversionError(
            f"running the Keras model on a sample of shape {tuple(x.shape)} failed ({type(exc).__name__}: "
            f"{_first_line(str(exc))}); if the input shape is wrong, pass input_shape=(C, H, W)"
        ) from None
    ref = np.asarray(ref[0] if isinstance(ref, list | tuple) else ref, dtype=np.float64)
    if ours.shape != ref.shape:
        raise ConversionError(f"the channels-first module's output {ours.shape} differs in shape from Keras's {ref.shape}")
    diff = float(np.max(np.abs(ours - ref))) if ref.size else 0.0
    allowed = TOLERANCE * max(1.0, float(np.max(np.abs(ref))) if ref.size else 1.0)
    if not diff <= allowed:
        raise ConversionError(
            f"the channels-first module differs from Keras's own predict by {diff:.3g} (allowed {allowed:.3g}); "
            "pass check=False to load it anyway"
        )
    return diff


# --- the graph from Keras's own layer list --------------------------------------------------------


def _is_model(layer: Any) -> bool:
    return hasattr(layer, "layers") and hasattr(layer, "inputs") and hasattr(layer, "outputs")


def _all_layers(model: Any) -> list[Any]:
    out = []
    for layer in model.layers:
        out.append(layer)
        if _is_model(layer):
            out.extend(_all_layers(layer))
    return out


def _channels_first(dims: tuple[Any, ...]) -> tuple[Any, ...]:
    """Per-sample dims, channels-last -> channels-first (``(H, W, C)`` -> ``(C, H, W)``, ``(T, C)`` -> ``(C, T)``)."""
    return (dims[-1], *dims[:-1]) if len(dims) >= 2 else dims


def _observed_shapes(
    module: Any, layers: list[Any], spec: InputSpec, channels_last: bool
) -> dict[int, tuple[tuple[tuple[int, ...], ...], tuple[int, ...] | None]]:
    """Per-sample input and output shapes of every layer, from one forward pass (works where
    Keras's symbolic shapes have ``None`` dimensions)."""
    import torch

    shapes: dict[int, tuple[tuple[tuple[int, ...], ...], tuple[int, ...] | None]] = {}

    def per_sample(t: torch.Tensor) -> tuple[int, ...]:
        dims = tuple(int(d) for d in t.shape[1:])
        return _channels_first(dims) if channels_last and t.dim() >= 3 else dims

    def tensors(obj: Any) -> list[torch.Tensor]:
        if isinstance(obj, torch.Tensor):
            return [obj]
        if isinstance(obj, list | tuple):
            return [t for item in obj for t in tensors(item)]
        if isinstance(obj, dict):
            return [t for item in obj.values() for t in tensors(item)]
        return []

    def hook(layer: Any) -> Any:
        def record(_m: Any, args: Any, out: Any) -> None:
            if id(layer) not in shapes:
                outs = tensors(out)
                shapes[id(layer)] = (tuple(per_sample(t) for t in tensors(args)), per_sample(outs[0]) if outs else None)

        return record

    handles = []
    try:
        for layer in layers:
            if isinstance(layer, torch.nn.Module):
                handles.append(layer.register_forward_hook(hook(layer)))
        with torch.no_grad():
            module(torch.zeros((1, *spec.shape)))
    except Exception as exc:
        raise ConversionError(
            f"the Keras model does not run on inputs of shape {(1, *spec.shape)} ({type(exc).__name__}: "
            f"{_first_line(str(exc))}); pass the right input_shape=(C, H, W)"
        ) from None
    finally:
        for handle in handles:
            handle.remove()
    return shapes


def _inbound(layer: Any) -> list[Any]:
    """The operations whose outputs feed ``layer`` (empty where Keras cannot say)."""
    try:
        inputs = layer.input
    except (AttributeError, ValueError, RuntimeError):
        return []
    inputs = inputs if isinstance(inputs, list | tuple) else [inputs]
    ops = []
    for tensor in inputs:
        history = getattr(tensor, "_keras_history", None)
        ops.append(history[0] if history else None)
    return ops


def _attributes(layer: Any, kind: str, in_shapes: tuple[tuple[int, ...], ...], out_shape: tuple[int, ...] | None) -> dict[str, Any]:
    """Keras config, in the attribute names torch layers use (``kernel_size`` -> ``kernel`` ...)."""
    cfg = layer.get_config()
    attrs: dict[str, Any] = {}
    names = (
        ("filters", "filters"), ("units", "units"), ("kernel", "kernel_size"), ("kernel", "pool_size"),
        ("stride", "strides"), ("padding", "padding"), ("dilation", "dilation_rate"), ("groups", "groups"),
        ("activation", "activation"), ("bias", "use_bias"), ("p", "rate"), ("eps", "epsilon"),
        ("momentum", "momentum"), ("negative_slope", "negative_slope"), ("depth_multiplier", "depth_multiplier"),
    )
    for ours, theirs in names:
        value = cfg.get(theirs)
        if value is not None and ours not in attrs:
            attrs[ours] = tuple(value) if isinstance(value, list | tuple) else value
    category = category_of(kind)
    if category == "conv":
        if out_shape:
            attrs.setdefault("filters", int(out_shape[0]))
        if in_shapes and in_shapes[0]:
            attrs["in_channels"] = int(in_shapes[0][0])
    elif category == "dense" and in_shapes and in_shapes[0]:
        attrs["in_features"] = int(in_shapes[0][-1])
    if category == "activation" and "activation" not in attrs:
        attrs["activation"] = kind
    return attrs


def _graph(model: Any, spec: InputSpec, shapes: dict[int, Any]) -> tuple[ModelGraph, dict[str, Any]]:
    layers = [Layer(id="input", kind="input", type="input", category="io", output_shape=tuple(spec.shape), hookable=False)]
    edges: list[Edge] = []
    containers: list[Container] = []
    modules: dict[str, Any] = {}
    _walk(model, prefix="", parent=None, entry=["input"], shapes=shapes, layers=layers, edges=edges,
          containers=containers, modules=modules)
    graph = ModelGraph(layers=layers, edges=edges, containers=containers, input_shape=tuple(spec.shape), method="keras")
    return graph, modules


def _walk(
    model: Any,
    *,
    prefix: str,
    parent: str | None,
    entry: list[str],
    shapes: dict[int, Any],
    layers: list[Layer],
    edges: list[Edge],
    containers: list[Container],
    modules: dict[str, Any],
) -> str:
    """Add ``model``'s layers (nested models become containers); return the id of its output."""
    produced: dict[int, str] = {}
    for i, tensor in enumerate(model.inputs):
        history = getattr(tensor, "_keras_history", None)
        if history:
            produced[id(history[0])] = entry[min(i, len(entry) - 1)]
    previous = entry[0]
    for layer in model.layers:
        kind = canonical_kind(type(layer).__name__)
        if kind == "inputlayer":
            continue
        sources = [produced.get(id(op), previous) for op in _inbound(layer)] or [previous]
        lid = prefix + layer.name
        if _is_model(layer):
            out_id = _walk(layer, prefix=lid + ".", parent=lid, entry=sources, shapes=shapes, layers=layers,
                           edges=edges, containers=containers, modules=modules)
            children = [c.id for c in layers if c.parent == lid] + [c.id for c in containers if c.parent == lid]
            params = int(layer.count_params()) if layer.built else 0
            containers.append(Container(id=lid, type=type(layer).__name__, parent=parent, children=tuple(children), params=params))
            produced[id(layer)] = previous = out_id
            continue
        in_shapes, out_shape = shapes.get(id(layer), ((), None))
        layers.append(
            Layer(
                id=lid,
                kind=kind,
                type=type(layer).__name__,
                category=category_of(kind),
                input_shapes=tuple(in_shapes),
                output_shape=out_shape,
                params=int(layer.count_params()) if layer.built else 0,
                attributes=_attributes(layer, kind, in_shapes, out_shape),
                parent=parent,
            )
        )
        for source in dict.fromkeys(sources):
            edges.append(Edge(source=source, target=lid))
        modules[lid] = layer
        produced[id(layer)] = previous = lid
    outputs = [getattr(t, "_keras_history", None) for t in model.outputs]
    return produced.get(id(outputs[0][0]), previous) if outputs and outputs[0] else previous


def _first_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0][:200] if lines else ""

"""``load_model``: every supported source becomes a :class:`LoadedModel`.

Model files are untrusted. A file is never allowed to run code unless the caller says
``trust=True``: state dicts load with ``torch.load(weights_only=True)`` or safetensors,
``torch.export`` programs without pickle, ONNX through protobuf, Keras in safe mode.
"""

from __future__ import annotations

import importlib
import os
import pickle
import re
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from convscope.errors import (
    CorruptModelError,
    DataError,
    ModelLoadError,
    StateDictMismatchError,
    UnknownModelError,
    UnsupportedFormatError,
    UntrustedModelError,
)
from convscope.models._graph import build_graph
from convscope.models._spec import InputSpec, LoadedModel

if TYPE_CHECKING:
    import torch

__all__ = ["load_model", "resolve_architecture", "SUPPORTED_EXTENSIONS"]

SUPPORTED_EXTENSIONS = (".pt", ".pth", ".bin", ".safetensors", ".pt2", ".onnx", ".keras", ".h5", ".hdf5")


def load_model(
    source: Any,
    *,
    architecture: str | None = None,
    input_shape: tuple[int, ...] | None = None,
    input_spec: InputSpec | None = None,
    trust: bool = False,
    pretrained: bool = True,
    check: bool = True,
) -> LoadedModel:
    """Load any supported model into canonical form: torch module + ``ModelGraph``.

    Args:
        source: a ``torch.nn.Module``; a zoo name (``"lenet5-simplified"``); or a path to a
            ``.pt2`` export program, a state dict (``.pt``/``.pth``/``.bin``/``.safetensors``),
            a whole pickled model (only with ``trust=True``), an ``.onnx`` file, or a Keras
            ``.keras``/``.h5`` file.
        architecture: for state dicts, the module to load into: a zoo name or
            ``"package.module:Class"`` (imported and called without arguments).
        input_shape: one sample's shape, channels-first, where the source does not say.
        input_spec: the full input specification (overrides ``input_shape``).
        trust: allow loading a whole pickled model, which executes code from the file.
        pretrained: for zoo names, use (and if needed make) the trained weights.
        check: for converted models (ONNX, Keras), compare with the original runtime.

    Raises:
        UnsupportedFormatError, CorruptModelError, UntrustedModelError,
        StateDictMismatchError, ConversionError: see :mod:`convscope.errors`.

    Example:
        >>> m = load_model("lenet5", pretrained=False)
        >>> m.graph.layer("conv1").attributes["filters"]
        6
    """
    import torch

    spec = input_spec or (InputSpec(shape=tuple(input_shape)) if input_shape is not None else None)
    if isinstance(source, torch.nn.Module):
        return _from_module(source, spec=spec, fmt="torch", origin=type(source).__name__)
    if isinstance(source, str) and not os.path.exists(source) and _looks_like_zoo_name(source):
        from convscope.models.zoo import load_zoo_model

        loaded = load_zoo_model(source, pretrained=pretrained)
        if spec is not None:
            loaded.input_spec = spec
        return loaded
    if not isinstance(source, str | os.PathLike):
        raise UnsupportedFormatError(
            f"cannot load a {type(source).__name__}; pass a torch.nn.Module, a zoo name or a file path "
            f"({', '.join(SUPPORTED_EXTENSIONS)})"
        )
    path = Path(source)
    if not path.exists():
        raise ModelLoadError(f"model file {str(path)!r} does not exist; check the path")
    if path.is_dir():
        raise UnsupportedFormatError(f"{str(path)!r} is a folder; pass a model file ({', '.join(SUPPORTED_EXTENSIONS)})")
    ext = path.suffix.lower()
    if ext == ".pt2":
        return _load_export(path, spec=spec)
    if ext in (".pt", ".pth", ".bin"):
        return _load_torch_file(path, architecture=architecture, spec=spec, trust=trust)
    if ext == ".safetensors":
        return _load_safetensors(path, architecture=architecture, spec=spec)
    if ext == ".onnx":
        from convscope.models._onnx import load_onnx

        return load_onnx(path, spec=spec, check=check)
    if ext in (".keras", ".h5", ".hdf5"):
        from convscope.models._keras import load_keras

        return load_keras(path, spec=spec, check=check, trust=trust)
    raise UnsupportedFormatError(
        f"unknown model file extension {ext or '(none)'!r} for {path.name!r}; convscope loads "
        f"{', '.join(SUPPORTED_EXTENSIONS)} - rename the file if it has the wrong extension"
    )


def _looks_like_zoo_name(source: str) -> bool:
    from convscope.models.zoo import list_models

    names = {e.name for e in list_models()}
    if source in names:
        return True
    if "/" not in source and "\\" not in source and not Path(source).suffix:
        raise UnknownModelError(
            f"{source!r} is neither a file nor a zoo model; zoo models are {', '.join(sorted(names))} (see `convscope zoo`)"
        )
    return False


def _from_module(
    module: torch.nn.Module,
    *,
    spec: InputSpec | None,
    fmt: str,
    origin: str,
    layer_modules: dict[str, torch.nn.Module] | None = None,
) -> LoadedModel:
    if spec is None:
        spec = _guess_spec(module)
    module.eval()
    graph = build_graph(module, input_shape=spec.shape)
    return LoadedModel(
        module=module,
        graph=graph,
        input_spec=spec,
        format=fmt,
        source=origin,
        layer_modules=layer_modules if layer_modules is not None else {n: m for n, m in module.named_modules() if n},
    )


def _guess_spec(module: torch.nn.Module) -> InputSpec:
    raise DataError(
        f"cannot tell the input shape of {type(module).__name__}; pass input_shape=(C, H, W) "
        "(for example input_shape=(1, 28, 28)) or input_spec=InputSpec(...)"
    )


# --- architectures for state dicts -------------------------------------------------------------


def resolve_architecture(architecture: str) -> tuple[torch.nn.Module, InputSpec | None]:
    """A fresh module for ``architecture``: a zoo name or ``"package.module:Class"``."""
    import torch

    from convscope.models.zoo import _ZOO

    if architecture in _ZOO:
        entry = _ZOO[architecture]
        return entry.factory(), entry.input_spec
    if ":" not in architecture:
        raise UnknownModelError(
            f"architecture {architecture!r} is neither a zoo name ({', '.join(sorted(_ZOO))}) "
            "nor a 'package.module:Class' reference"
        )
    mod_name, _, attr = architecture.partition(":")
    try:
        obj: Any = importlib.import_module(mod_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise UnknownModelError(
            f"cannot import architecture {architecture!r} ({type(exc).__name__}: {exc}); "
            "check that the package is installed and the class name is right"
        ) from None
    module = obj() if callable(obj) and not isinstance(obj, torch.nn.Module) else obj
    if not isinstance(module, torch.nn.Module):
        raise UnknownModelError(f"architecture {architecture!r} gave a {type(module).__name__}, not a torch.nn.Module")
    return module, None


def _apply_state_dict(path: Path, state: Mapping[str, Any], *, architecture: str | None, spec: InputSpec | None, fmt: str) -> LoadedModel:
    import torch

    if architecture is None:
        raise ModelLoadError(
            f"{path.name!r} holds only weights (a state dict of {len(state)} tensors); say which architecture "
            'they belong to: architecture="lenet5-simplified" (a zoo name) or "package.module:Class" '
            "(CLI: --arch)"
        )
    module, zoo_spec = resolve_architecture(architecture)
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in expected
        if k in state and isinstance(state[k], torch.Tensor) and tuple(state[k].shape) != tuple(expected[k].shape)
    ]
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"missing keys: {_preview(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {_preview(unexpected)}")
        if mismatched:
            parts.append(f"wrong shapes: {_preview(mismatched)}")
        raise StateDictMismatchError(
            f"the weights in {path.name!r} do not fit architecture {architecture!r}: " + "; ".join(parts)
            + " - check that the file and the architecture belong together",
            missing=missing,
            unexpected=unexpected,
            mismatched=mismatched,
        )
    module.load_state_dict(dict(state))
    loaded = _from_module(module, spec=spec or zoo_spec, fmt=fmt, origin=f"{path.name} + {architecture}")
    loaded.name = path.stem
    return loaded


def _preview(items: list[str], limit: int = 8) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... ({len(items)} in all)" if len(items) > limit else "")


def _load_torch_file(path: Path, *, architecture: str | None, spec: InputSpec | None, trust: bool) -> LoadedModel:
    import torch

    _check_nonempty(path)
    if not _is_torch_save_file(path):
        raise CorruptModelError(
            f"{path.name!r} is not a PyTorch file (neither a torch.save zip archive nor a legacy torch.save "
            "pickle); it may be another format with the wrong extension - re-save it with torch.save"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about unusual pickle protocols; the outcome is what counts
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        reason = _needs_code(exc)
        if reason is None:
            raise CorruptModelError(
                f"{path.name!r} holds a damaged pickle ({_first_line(exc)}); it may be truncated - re-save it"
            ) from None
        if not trust:
            raise UntrustedModelError(
                f"{path.name!r} is a pickle that needs code to load ({reason}); loading it would run "
                "that code. Only if you trust where it came from, pass trust=True (CLI: --trust); better, save "
                "a state dict (torch.save(model.state_dict(), ...)) or a torch.export program (.pt2)"
            ) from None
        obj = _load_trusted_pickle(path)
    except Exception as exc:  # damaged archives raise RuntimeError, EOFError, KeyError, ValueError ...
        raise CorruptModelError(
            f"{path.name!r} is not a readable PyTorch file ({type(exc).__name__}: {_first_line(exc)}); it may be "
            "truncated - re-save it with torch.save"
        ) from None
    if isinstance(obj, torch.nn.Module):
        loaded = _from_module(obj, spec=spec, fmt="pickle", origin=str(path.name))
        loaded.name = path.stem
        return loaded
    state = _extract_state_dict(obj, path)
    return _apply_state_dict(path, state, architecture=architecture, spec=spec, fmt="state_dict")


# torch.save's legacy (pre-1.6) format starts with a pickled magic number
_LEGACY_TORCH_MAGIC = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19."


def _is_torch_save_file(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(len(_LEGACY_TORCH_MAGIC))
    return head.startswith(_LEGACY_TORCH_MAGIC) or zipfile.is_zipfile(path)


def _needs_code(exc: BaseException) -> str | None:
    """Why torch's weights-only unpickler refused: a global it would have to import and call
    (the file needs code), or ``None`` when the pickle itself is malformed."""
    text = str(exc)
    found = re.search(r"GLOBAL [\w.]+", text)
    if found:
        return f"unpickling imports {found.group(0)}"
    for line in text.splitlines():
        if "add_safe_globals" in line or "allowlisted" in line:
            return line.strip()[:200]
    return None


def _load_trusted_pickle(path: Path) -> Any:
    import torch

    try:
        return torch.load(str(path), map_location="cpu", weights_only=False)
    except Exception as exc:
        raise CorruptModelError(
            f"{path.name!r} could not be unpickled even with trust ({type(exc).__name__}: {_first_line(exc)}); the "
            "classes it refers to must be importable here"
        ) from None


def _extract_state_dict(obj: Any, path: Path) -> Mapping[str, Any]:
    import torch

    if isinstance(obj, Mapping):
        for key in ("state_dict", "model_state_dict", "model"):
            inner = obj.get(key)
            if isinstance(inner, Mapping) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
                return inner
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return obj
    raise CorruptModelError(
        f"{path.name!r} holds a {type(obj).__name__}, not a model or a state dict of tensors; save "
        "model.state_dict() or the model itself"
    )


def _load_safetensors(path: Path, *, architecture: str | None, spec: InputSpec | None) -> LoadedModel:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    _check_nonempty(path)
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CorruptModelError(
            f"{path.name!r} is not a readable safetensors file ({_first_line(exc)}); it may be truncated - re-save it"
        ) from None
    return _apply_state_dict(path, state, architecture=architecture, spec=spec, fmt="safetensors")


def _load_export(path: Path, *, spec: InputSpec | None) -> LoadedModel:
    import torch

    _check_nonempty(path)
    if not zipfile.is_zipfile(path):
        raise CorruptModelError(
            f"{path.name!r} is not a torch.export program (a .pt2 file is a zip archive); it may be truncated - "
            "re-save it with torch.export.save"
        )
    try:
        program = torch.export.load(str(path))
    except Exception as exc:  # torch raises many types for damaged archives
        raise CorruptModelError(
            f"{path.name!r} is not a readable torch.export program ({type(exc).__name__}: {_first_line(exc)}); "
            "re-save it with torch.export.save"
        ) from None
    example = _export_example_shape(program)
    if spec is None:
        if example is None:
            raise DataError(f"cannot tell the input shape of {path.name!r}; pass input_shape=(C, H, W)")
        spec = InputSpec(shape=example[1:])
    module = _ExportedModule(program)
    loaded = _from_module(module, spec=spec, fmt="export", origin=str(path.name), layer_modules=None)
    loaded.layer_modules = {n: m for n, m in module.inner.named_modules() if n}
    loaded.graph = _restore_export_kinds(build_graph(module.inner, input_shape=spec.shape), program, module.inner)
    loaded.name = path.stem
    return loaded


def run_in_batches(module: Any, x: Any, batch: int | None) -> Any:
    """Run a program compiled for a fixed ``batch`` on any number of samples: in chunks of that
    size, the last one padded with zeros and cut back (tuple outputs are cut element-wise)."""
    import torch

    if batch is None or x.shape[0] == batch:
        return module(x)
    chunks = []
    for start in range(0, x.shape[0], batch):
        part = x[start : start + batch]
        n = part.shape[0]
        if n < batch:
            part = torch.cat([part, part.new_zeros((batch - n, *part.shape[1:]))])
        out = module(part)
        chunks.append(out[:n] if isinstance(out, torch.Tensor) else type(out)(o[:n] for o in out))
    if isinstance(chunks[0], torch.Tensor):
        return torch.cat(chunks)
    return type(chunks[0])(torch.cat(parts) for parts in zip(*chunks, strict=True))


def _restore_export_kinds(graph: Any, program: Any, inner: Any) -> Any:
    """Unflattened submodules are generic interpreters: take each layer's original class from
    the program's module-stack metadata, and its parameters and filters from its weights."""
    from convscope.models._graph import canonical_kind, category_of

    original: dict[str, str] = {}
    for node in program.graph.nodes:
        stack = node.meta.get("nn_module_stack") or {}
        for fqn, kind in stack.values():
            original.setdefault(str(fqn), str(getattr(kind, "__name__", kind)).rsplit(".", 1)[-1])
    from dataclasses import replace

    from convscope.models._graph import ModelGraph

    modules = dict(inner.named_modules())
    layers = []
    for layer in graph.layers:
        name = layer.id.split("#")[0]
        if layer.kind != "interpretermodule" or name not in original:
            layers.append(layer)
            continue
        kind = canonical_kind(original[name])
        params = dict(modules[name].named_parameters()) if name in modules else {}
        attributes = dict(layer.attributes)
        weight = params.get("weight")
        if weight is not None and category_of(kind) == "conv" and weight.dim() >= 3:
            attributes.update(filters=int(weight.shape[0]), kernel=tuple(int(d) for d in weight.shape[2:]))
        elif weight is not None and category_of(kind) == "dense" and weight.dim() == 2:
            attributes.update(units=int(weight.shape[0]), in_features=int(weight.shape[1]))
        attributes.update(_export_op_attributes(modules.get(name), kind))
        if category_of(kind) == "activation":
            attributes.setdefault("activation", kind)
        layers.append(replace(layer, type=original[name], kind=kind, category=category_of(kind),
                              params=sum(int(v.numel()) for v in params.values()), attributes=attributes))
    return ModelGraph(layers=layers, edges=graph.edges, containers=graph.containers, input_shape=graph.input_shape, method=graph.method)


# aten argument names -> convscope attribute names, for the ops behind conv and pooling layers
_EXPORT_ARGS = {"stride": "stride", "padding": "padding", "dilation": "dilation", "groups": "groups", "kernel_size": "kernel"}


def _export_op_attributes(module: Any, kind: str) -> dict[str, Any]:
    """Stride, padding, dilation, groups (and a pool's kernel) from the aten call inside an
    unflattened layer, with the op schema's defaults for arguments the program leaves out."""
    from convscope.models._graph import category_of

    graph = getattr(module, "graph", None)
    if graph is None or category_of(kind) not in ("conv", "pool"):
        return {}
    for node in graph.nodes:
        schema = getattr(node.target, "_schema", None)
        if node.op != "call_function" or schema is None:
            continue
        if not any(key in node.target.__name__ for key in ("conv", "pool")):
            continue
        values: dict[str, Any] = {}
        for i, arg in enumerate(schema.arguments):
            if i < len(node.args):
                values[arg.name] = node.args[i]
            elif arg.name in node.kwargs:
                values[arg.name] = node.kwargs[arg.name]
            elif arg.has_default_value():
                values[arg.name] = arg.default_value
        attrs: dict[str, Any] = {}
        for theirs, ours in _EXPORT_ARGS.items():
            value = values.get(theirs)
            if isinstance(value, list | tuple) and value:
                attrs[ours] = tuple(int(v) for v in value)
            elif isinstance(value, int) and not isinstance(value, bool):
                attrs[ours] = value if ours == "groups" else (value, value)
            elif isinstance(value, str):
                attrs[ours] = value  # padding="same"
        if "stride" in attrs and not attrs["stride"] and "kernel" in attrs:
            attrs["stride"] = attrs["kernel"]  # max_pool2d: an empty stride means the kernel size
        weight = values.get("weight")
        if category_of(kind) == "conv" and weight is not None and hasattr(weight, "meta"):
            val = weight.meta.get("val")
            if val is not None:
                attrs["in_channels"] = int(val.shape[1]) * int(attrs.get("groups", 1))
            attrs["bias"] = values.get("bias") is not None
        return attrs
    return {}


def _export_example_shape(program: Any) -> tuple[int, ...] | None:
    for node in program.graph.nodes:
        if node.op == "placeholder" and node.name in program.graph_signature.user_inputs:
            val = node.meta.get("val")
            if val is not None and hasattr(val, "shape"):
                try:
                    return tuple(int(d) for d in val.shape)
                except TypeError:  # symbolic batch dimension
                    return (1, *(int(d) for d in val.shape[1:]))
    return None


def _exported_module_class() -> type:
    import torch

    class ExportedModule(torch.nn.Module):
        """A ``torch.export`` program as a module whose submodules keep their original names.

        ``torch.export.unflatten`` restores the module hierarchy, so forward hooks attach to
        ``conv1`` as they would on the original model. A program exported with a fixed batch
        size is run in chunks of that size.
        """

        def __init__(self, program: Any) -> None:
            super().__init__()
            self.inner = torch.export.unflatten(program)
            shape = _export_example_shape(program)
            self.static_batch: int | None = None
            for node in program.graph.nodes:
                if node.op == "placeholder" and node.name in program.graph_signature.user_inputs:
                    val = node.meta.get("val")
                    if val is not None and isinstance(val.shape[0], int):
                        self.static_batch = int(val.shape[0])
                    break
            self.example_shape = shape

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return run_in_batches(self.inner, x, self.static_batch)

    return ExportedModule


def _ExportedModule(program: Any) -> Any:  # noqa: N802 - reads like a class at call sites
    return _exported_module_class()(program)


def _check_nonempty(path: Path) -> None:
    if path.stat().st_size == 0:
        raise CorruptModelError(f"{path.name!r} is empty (0 bytes); the file was not saved completely")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__

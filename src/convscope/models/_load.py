"""``load_model``: every supported source becomes a :class:`LoadedModel`.

Model files are untrusted. A file is never allowed to run code unless the caller says
``trust=True``: state dicts load with ``torch.load(weights_only=True)`` or safetensors,
``torch.export`` programs without pickle, ONNX through protobuf, Keras in safe mode.
"""

from __future__ import annotations

import importlib
import io
import operator
import os
import pickle
import re
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from convscope.errors import (
    ConversionError,
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

__all__ = ["MAX_INPUT_VALUES", "SUPPORTED_EXTENSIONS", "check_input_size", "load_model", "resolve_architecture"]

SUPPORTED_EXTENSIONS = (".pt", ".pth", ".bin", ".safetensors", ".pt2", ".onnx", ".keras", ".h5", ".hdf5")

#: the most values a batch that loading runs through a model may hold (graph shapes, the reference
#: check): a file that declares a gigantic input must not make loading allocate gigabytes
MAX_INPUT_VALUES = 1 << 27


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

        _no_architecture(architecture, f"{source!r} is a zoo model, which has its own")
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
    if ext not in SUPPORTED_EXTENSIONS:
        raise UnsupportedFormatError(
            f"unknown model file extension {ext or '(none)'!r} for {path.name!r}; convscope loads "
            f"{', '.join(SUPPORTED_EXTENSIONS)} - {_rename_hint(path)}"
        )
    try:
        loaded = _load_file(path, ext, architecture=architecture, spec=spec, trust=trust, check=check)
    except CorruptModelError as exc:
        found = _sniff(path)
        if found is None or _FORMATS[found][1] == _FORMAT_OF_EXTENSION[ext]:
            raise
        raise CorruptModelError(f"{exc} ({_rename_hint(path)})") from None
    if ext not in _WEIGHTS_ONLY:  # (said once the file proved what its name says: else the name is the mistake)
        _no_architecture(architecture, f"a {ext} file holds its architecture")
    return loaded


#: the extensions of files that may hold weights alone (state dicts), which ``architecture=`` completes
_WEIGHTS_ONLY = (".pt", ".pth", ".bin", ".safetensors")


def _no_architecture(architecture: str | None, why: str) -> None:
    """Refuse an ``architecture`` that would be ignored, saying ``why``."""
    if architecture is not None:
        raise ModelLoadError(
            f"architecture {architecture!r} is for files of weights alone ({', '.join(_WEIGHTS_ONLY)} state dicts); "
            f"{why}: leave out the architecture (--arch)"
        )


def _load_file(
    path: Path, ext: str, *, architecture: str | None, spec: InputSpec | None, trust: bool, check: bool
) -> LoadedModel:
    if ext == ".pt2":
        return _load_export(path, spec=spec)
    if ext in (".pt", ".pth", ".bin"):
        return _load_torch_file(path, architecture=architecture, spec=spec, trust=trust)
    if ext == ".safetensors":
        return _load_safetensors(path, architecture=architecture, spec=spec)
    if ext == ".onnx":
        from convscope.models._onnx import load_onnx

        return load_onnx(path, spec=spec, check=check)
    from convscope.models._keras import load_keras

    return load_keras(path, spec=spec, check=check, trust=trust)


# --- what a file holds, whatever its name says ---------------------------------------------------

# sniffed format -> (what it is, its family: extensions of one family share a loader)
_FORMATS = {
    ".pt": ("a torch.save file (state dict or pickle)", "torch"),
    ".safetensors": ("a safetensors file", "safetensors"),
    ".pt2": ("a torch.export program", "export"),
    ".onnx": ("an ONNX model", "onnx"),
    ".keras": ("a Keras 3 archive", "keras"),
    ".h5": ("an HDF5 file (legacy Keras model)", "hdf5"),
}
_FORMAT_OF_EXTENSION = {".pt": "torch", ".pth": "torch", ".bin": "torch", ".safetensors": "safetensors",
                        ".pt2": "export", ".onnx": "onnx", ".keras": "keras", ".h5": "hdf5", ".hdf5": "hdf5"}
# ModelProto's fields come in field-number order: ir_version (tag 0x08) first, then a
# producer, a domain, a graph ... (tags of fields 2-8)
_ONNX_SECOND_TAGS = frozenset(b"\x12\x1a\x22\x28\x32\x3a\x42")
_MAX_SNIFFED_MEMBERS = 1000


def _sniff(source: Path | bytes) -> str | None:
    """The extension of the format a file's bytes (or ``source``, the bytes themselves) look
    like, or ``None``. Reads a few bytes and, for zip archives, the member names; never parses
    or unpickles anything."""
    try:
        path: Path | io.BytesIO
        if isinstance(source, bytes):
            size, head, path = len(source), source[:16], io.BytesIO(source)
        else:
            size, path = source.stat().st_size, source
            with open(source, "rb") as f:
                head = f.read(16)
        if head.startswith(b"\x89HDF\r\n\x1a\n"):
            return ".h5"
        if head.startswith(_LEGACY_TORCH_MAGIC):
            return ".pt"
        if len(head) >= 9 and head[8:9] == b"{" and 0 < int.from_bytes(head[:8], "little") <= size - 8:
            return ".safetensors"
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()[:_MAX_SNIFFED_MEMBERS]
            if "config.json" in names:
                return ".keras"
            if any(n.endswith("/archive_format") for n in names):
                return ".pt2"
            if any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
                return ".pt"
            return None
    except Exception:  # a damaged file: the hint is best effort, the loader's own error stands
        return None
    if len(head) >= 3 and head[0] == 0x08 and 1 <= head[1] <= 32 and head[2] in _ONNX_SECOND_TAGS:
        return ".onnx"
    return None


def _rename_hint(path: Path, data: bytes | None = None) -> str:
    """What ``path``'s content (or ``data``, an upload named ``path``) looks like, and the name to give it."""
    found = _sniff(path if data is None else data)
    if found is None:
        return "rename the file if it has the wrong extension"
    return f"its content looks like {_FORMATS[found][0]}: rename it to {path.stem + found!r}"


def _looks_like_zoo_name(source: str) -> bool:
    from convscope.models.zoo import list_models

    names = {e.name for e in list_models()}
    if source in names:
        return True
    if "/" not in source and "\\" not in source and not Path(source).suffix:
        raise UnknownModelError(
            f"{source!r} is neither a file nor a zoo model; zoo models are {', '.join(sorted(names))} "
            f"(see `convscope zoo`){_did_you_mean(source, names)}"
        )
    return False


def _did_you_mean(name: str, names: set[str]) -> str:
    """``"; did you mean 'vgg16'?"`` for a near miss (case, dashes, a typo), else ``""``."""
    from convscope._names import near_misses

    def key(text: str) -> str:
        return re.sub(r"[-_. ]", "", text.lower())

    close = near_misses(name, sorted(names), cutoff=0.75, key=key)
    close += sorted(n for n in names if key(name) and key(n).startswith(key(name)) and n not in close)
    return f"; did you mean {' or '.join(repr(n) for n in close[:3])}?" if close else ""


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
    check_input_size(spec.shape, batch=1, source=origin)
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


def check_input_size(shape: tuple[int, ...], *, batch: int, source: str) -> None:
    """Refuse a per-sample input ``shape`` that is not positive, or so large that a batch of
    ``batch`` samples (what loading runs through the model) would hold over
    :data:`MAX_INPUT_VALUES` values.

    Example:
        >>> check_input_size((3, 224, 224), batch=2, source="net.onnx")
    """
    try:
        dims = [operator.index(d) for d in shape]
    except TypeError:
        dims = []
    if not dims or min(dims) < 1:
        raise ConversionError(
            f"{source!r}: the input shape {tuple(shape)} is not a list of positive sizes; pass input_shape=(C, H, W)"
        )
    values = batch
    for d in dims:
        values *= d
    if values > MAX_INPUT_VALUES:
        raise ConversionError(
            f"{source!r} takes inputs of {'x'.join(map(str, shape))} per sample; loading runs a batch of {batch} "
            f"through the model, {values:,} values ({values * 4 / 2**30:.1f} GiB as float32 for the input alone, "
            f"at most {MAX_INPUT_VALUES:,} allowed) - pass a smaller input_shape=(C, H, W) if the model accepts one"
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
            f"nor a 'package.module:Class' reference{_did_you_mean(architecture, set(_ZOO))}"
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
    state = _without_wrapper_prefix(state, expected)
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


#: what torch's wrappers put before every key of the module they wrap: DataParallel and
#: DistributedDataParallel ("module."), torch.compile ("_orig_mod.")
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")


def _without_wrapper_prefix(state: Mapping[str, Any], expected: Mapping[str, Any]) -> Mapping[str, Any]:
    """``state`` with a wrapper's prefix taken off every key, where every key has it and the
    keys then are the architecture's (a state dict saved from a DDP or compiled model); else as it is."""
    for prefix in _WRAPPER_PREFIXES:
        if state and all(k.startswith(prefix) for k in state):
            stripped = {k[len(prefix):]: v for k, v in state.items()}
            if set(stripped) == set(expected):
                return stripped
    return state


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
    user_inputs = _export_user_inputs(program)
    if len(user_inputs) != 1:
        raise ConversionError(
            f"{path.name!r} is a program with {len(user_inputs)} inputs ({', '.join(user_inputs) or 'none'}); "
            "convscope handles models with one image input - export a wrapper that takes one tensor"
        )
    example = _export_example_shape(program)
    if spec is None:
        if example is None:
            raise DataError(f"cannot tell the input shape of {path.name!r}; pass input_shape=(C, H, W)")
        spec = InputSpec(shape=example[1:])
    module = _ExportedModule(program)
    check_input_size(spec.shape, batch=module.static_batch or 1, source=path.name)
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


def _export_user_inputs(program: Any) -> list[str]:
    return [n.name for n in program.graph.nodes if n.op == "placeholder" and n.name in program.graph_signature.user_inputs]


def _export_example_shape(program: Any) -> tuple[int, ...] | None:
    """The shape the program was exported with: symbolic dimensions at their example value
    (a symbolic batch as 1), or ``None`` where a dimension has no example value."""
    for node in program.graph.nodes:
        if node.op == "placeholder" and node.name in program.graph_signature.user_inputs:
            val = node.meta.get("val")
            if val is None or not hasattr(val, "shape"):
                return None
            dims = [_dim_hint(d) for d in val.shape]
            if dims and not isinstance(val.shape[0], int):
                dims[0] = 1
            return tuple(d for d in dims if d is not None) if None not in dims else None
    return None


def _dim_hint(dim: Any) -> int | None:
    # int() on a SymInt adds a guard to the program's shape environment, which pins that
    # dimension to its example value: the program then refuses every other size
    if isinstance(dim, int):
        return dim
    hint = getattr(getattr(dim, "node", None), "hint", None)
    return int(hint) if isinstance(hint, int) else None


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

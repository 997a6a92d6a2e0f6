"""ONNX models: converted to torch with onnx2torch and checked against onnxruntime at load.

onnx2torch declares torchvision as a dependency but only two of its converters use it
(NonMaxSuppression and RoiAlign). Where torchvision cannot be imported, convscope imports
onnx2torch with a stand-in ``torchvision`` module present only during that import (and
removed right after, so nothing else ever sees it); a model that needs one of those two
operators then fails to convert with a clear :class:`ConversionError`. See docs/formats.md.

onnx2torch names its modules after the ONNX nodes (``layer1/layer1/0/conv1/Conv``); convscope
renames them back into the dotted module paths they came from (``layer1.0.conv1``) and nests
them, so layer ids read like the original model's and the graph has containers to collapse.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
import types
import warnings
from collections import Counter
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from convscope._optional import require
from convscope.errors import ConversionError, CorruptModelError
from convscope.models._spec import InputSpec, LoadedModel

if TYPE_CHECKING:
    import torch

__all__ = ["TOLERANCE", "import_onnx2torch", "load_onnx", "readable_names"]

#: largest allowed difference from onnxruntime, relative to the output's scale: ``TOLERANCE * max(1, max|y|)``
TOLERANCE = 1e-4
_TORCHVISION_OPS = ("NonMaxSuppression", "RoiAlign")
_PIP_HINT = "pip install onnx onnxruntime && pip install --no-deps onnx2torch"


def import_onnx2torch() -> types.ModuleType:
    """Import onnx2torch, with a temporary torchvision stand-in where torchvision is unusable.

    ``sys.modules`` is left as it was found apart from onnx2torch itself: the stand-in is
    removed after the import and any previous ``torchvision`` entries are put back.

    Example:
        >>> import_onnx2torch().__name__
        'onnx2torch'
    """
    if sys.modules.get("onnx2torch") is not None:
        return sys.modules["onnx2torch"]
    require("onnx", feature="loading ONNX models", extra="onnx", pip_hint=_PIP_HINT)
    if _torchvision_usable():
        return require("onnx2torch", feature="loading ONNX models", extra="onnx", pip_hint=_PIP_HINT)
    previous = {n: m for n, m in sys.modules.items() if n == "torchvision" or n.startswith("torchvision.")}
    for name in previous:
        del sys.modules[name]  # a half-imported, broken torchvision must not be picked up
    standin = types.ModuleType("torchvision", "convscope's placeholder: torchvision is not importable here")
    ops = types.ModuleType("torchvision.ops")
    standin.__convscope_standin__ = ops.__convscope_standin__ = True  # type: ignore[attr-defined]

    def unavailable(*_args: Any, **_kwargs: Any) -> Any:
        raise ConversionError(
            "this ONNX operator (NonMaxSuppression or RoiAlign) needs torchvision, which is not importable here; "
            "install a torchvision that matches your torch to load this model"
        )

    for attr in ("nms", "batched_nms", "roi_align", "box_convert"):
        setattr(ops, attr, unavailable)
    standin.ops = ops  # type: ignore[attr-defined]
    sys.modules["torchvision"], sys.modules["torchvision.ops"] = standin, ops
    try:
        return require("onnx2torch", feature="loading ONNX models", extra="onnx", pip_hint=_PIP_HINT)
    finally:
        for name in ("torchvision.ops", "torchvision"):
            if sys.modules.get(name) in (standin, ops):
                del sys.modules[name]
        sys.modules.update(previous)


def _torchvision_usable() -> bool:
    if "torchvision" in sys.modules and sys.modules["torchvision"] is None:
        return False  # marked absent on purpose
    try:
        if importlib.util.find_spec("torchvision") is None:
            return False
    except (ImportError, ValueError):
        return False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a mismatched torchvision warns before it fails
            importlib.import_module("torchvision.ops")
        return True
    except Exception:
        return False


def load_onnx(path: Path, *, spec: InputSpec | None = None, check: bool = True) -> LoadedModel:
    """Convert an ``.onnx`` file into canonical form (see :func:`convscope.load_model`).

    Example:
        >>> m = load_onnx(Path("lenet.onnx"))  # doctest: +SKIP
        >>> m.graph.layer("conv1").attributes["filters"], m.reference_max_abs_diff < 1e-4  # doctest: +SKIP
        (16, True)
    """
    from convscope.models._graph import build_graph
    from convscope.models._load import _check_nonempty, check_input_size

    _check_nonempty(path)
    proto = _read_proto(path)
    inputs = _graph_inputs(proto)
    if len(inputs) != 1:
        names = ", ".join(name for name, _, _ in inputs) or "none"
        raise ConversionError(
            f"{path.name!r} has {len(inputs)} inputs ({names}); convscope handles models with one image input"
        )
    in_name, dims, elem_type = inputs[0]
    if spec is None:
        shape = tuple(dims[1:])
        if not shape or any(not isinstance(d, int) or d <= 0 for d in shape):
            raise ConversionError(
                f"{path.name!r} does not fix its input shape ({_fmt_dims(dims)}); pass input_shape=(C, H, W) "
                "(CLI: --input-shape)"
            )
        spec = InputSpec(shape=tuple(int(d) for d in shape))
    static_batch = dims[0] if dims and isinstance(dims[0], int) and dims[0] > 0 else None
    check_input_size(spec.shape, batch=static_batch or 2, source=path.name)
    needs_tv = sorted({n.op_type for n in proto.graph.node} & set(_TORCHVISION_OPS))
    onnx2torch = import_onnx2torch()
    if needs_tv and not _torchvision_usable():
        raise ConversionError(
            f"{path.name!r} uses {', '.join(needs_tv)}, which onnx2torch converts with torchvision; torchvision "
            "is not importable here (see docs/formats.md); install a torchvision that matches your torch"
        )
    _drop_identities(proto.graph)
    _fold_constants(proto.graph)
    _check_converters(path, proto)
    try:
        converted = onnx2torch.convert(proto)
    except ConversionError:
        raise
    except Exception as exc:
        raise ConversionError(
            f"onnx2torch could not convert {path.name!r} ({type(exc).__name__}: {_first_line(exc)}); "
            "the model may use an operator or opset onnx2torch does not support"
        ) from None
    inner, op_types = _renamed(converted, proto)
    module = inner if static_batch is None else _static_batch_class()(inner, static_batch)
    module.eval()
    diff = _check_against_onnxruntime(path, module, in_name, elem_type, spec, static_batch) if check else None
    graph = _onnx_kinds(build_graph(inner, input_shape=spec.shape, example=_zeros(spec, static_batch)), inner, op_types)
    return LoadedModel(
        module=module,
        graph=graph,
        input_spec=spec,
        format="onnx",
        source=str(path),
        reference_max_abs_diff=diff,
        layer_modules={n: m for n, m in inner.named_modules() if n},
        name=path.stem,
    )


def _read_proto(path: Path) -> Any:
    """Parse and check the protobuf; external data must lie inside the model's folder."""
    onnx = require("onnx", feature="loading ONNX models", extra="onnx", pip_hint=_PIP_HINT)
    from onnx import external_data_helper

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise CorruptModelError(
            f"{path.name!r} is not a readable ONNX file ({type(exc).__name__}: {_first_line(exc)}); it may be "
            "truncated or not ONNX at all - re-export it"
        ) from None
    base = path.resolve().parent
    external = [t for t in _all_tensors(proto.graph) if external_data_helper.uses_external_data(t)]
    for tensor in external:
        location = external_data_helper.ExternalDataInfo(tensor).location
        target = (base / location).resolve()
        if Path(location).is_absolute() or ".." in Path(location).parts or not target.is_relative_to(base):
            raise CorruptModelError(
                f"{path.name!r} points tensor {tensor.name!r} at external data {location!r} outside its folder; "
                "refused (external data files must sit beside the model)"
            )
        if not target.is_file():
            raise CorruptModelError(
                f"{path.name!r} keeps tensor {tensor.name!r} in {location!r}, which is missing; copy the external "
                "data file next to the model (an upload of the .onnx file alone cannot carry it: save the model as "
                "one file, onnx.save(proto, path, save_as_external_data=False), or open it from its folder)"
            )
    try:
        if external:
            external_data_helper.load_external_data_for_model(proto, str(base))
        onnx.checker.check_model(proto)
    except Exception as exc:
        raise CorruptModelError(
            f"{path.name!r} is not a valid ONNX model ({type(exc).__name__}: {_first_line(exc)}); re-export it"
        ) from None
    if not proto.graph.node:
        raise CorruptModelError(f"{path.name!r} is an ONNX file without any operators; re-export the model")
    return proto


def _drop_identities(graph: Any) -> None:
    """Remove ``Identity`` nodes (exporters emit them for shared weights; onnx2torch knows
    Identity only up to opset 16) by reading their input directly. Graph outputs stay."""
    outputs = {o.name for o in graph.output}
    rename: dict[str, str] = {}
    kept = []
    for node in graph.node:
        if node.op_type == "Identity" and node.domain in ("", "ai.onnx") and node.output[0] not in outputs:
            rename[node.output[0]] = rename.get(node.input[0], node.input[0])
        else:
            kept.append(node)
    if not rename:
        return
    _rename_inputs(kept, rename)
    del graph.node[:]
    graph.node.extend(kept)


def _fold_constants(graph: Any) -> None:
    """Turn ``Constant`` nodes into initializers. onnx2torch converts Constant only up to
    version 13, while torch exports opset 19-20, where Constant is version 19 (new element
    types only); an initializer is the same value without an operator."""
    import numpy as np
    from onnx import helper, numpy_helper

    outputs = {o.name for o in graph.output}
    kept = []
    for node in graph.node:
        value = None
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx") and node.output[0] not in outputs \
                and len(node.attribute) == 1:
            attr = node.attribute[0]
            if attr.name == "value":
                value = helper.get_attribute_value(attr)
                value.name = node.output[0]
            elif attr.name in ("value_float", "value_floats", "value_int", "value_ints"):
                dtype = np.float32 if attr.name.startswith("value_float") else np.int64
                value = numpy_helper.from_array(np.asarray(helper.get_attribute_value(attr), dtype=dtype), node.output[0])
        if value is None:
            kept.append(node)
        else:
            graph.initializer.append(value)
    if len(kept) != len(graph.node):
        del graph.node[:]
        graph.node.extend(kept)


def _check_converters(path: Path, proto: Any) -> None:
    """Name every operator onnx2torch has no converter for, and the opset to export at instead."""
    from onnx import defs
    from onnx2torch.node_converters import get_converter

    opsets = {imp.domain or "": int(imp.version) for imp in proto.opset_import}
    missing: dict[tuple[str, str], int] = {}
    for node in proto.graph.node:
        domain = "" if node.domain in ("", "ai.onnx") else node.domain
        opset = opsets.get(domain, 1)
        if (domain, node.op_type) not in missing and not _has_converter(get_converter, node.op_type, opset, domain):
            missing[(domain, node.op_type)] = opset
    if not missing:
        return
    parts, ceilings = [], []
    for (domain, op), opset in missing.items():
        name = f"{domain}.{op}" if domain else op
        try:
            version = defs.get_schema(op, max_inclusive_version=opset, domain=domain).since_version
        except Exception:
            version = None
        older = next((v for v in range(opset - 1, 0, -1) if _has_converter(get_converter, op, v, domain)), None)
        if older is None:
            parts.append(f"{name} (not supported at any opset)")
        else:
            parts.append(f"{name} (version {version} at opset {opset}; converted up to opset {older})")
            ceilings.append(older)
    if len(ceilings) == len(parts):
        advice = (f"re-export the model at opset {min(ceilings)} (torch.onnx.export(..., opset_version={min(ceilings)})), "
                  "where onnx2torch converts these operators")
    else:
        advice = "replace the operators it cannot convert at any opset in the model before exporting"
    raise ConversionError(
        f"onnx2torch cannot convert {path.name!r}: it has no converter for {', '.join(parts)}; {advice}"
    )


def _has_converter(get_converter: Any, op: str, opset: int, domain: str) -> bool:
    try:
        get_converter(op, opset, domain or "")
    except NotImplementedError:
        return False
    return True


def _rename_inputs(nodes: Sequence[Any], rename: dict[str, str]) -> None:
    for node in nodes:
        node.input[:] = [rename.get(name, name) for name in node.input]
        for attr in node.attribute:  # subgraphs may read outer values
            for sub in [attr.g] if attr.HasField("g") else list(attr.graphs):
                _rename_inputs(sub.node, rename)


def _all_tensors(graph: Any) -> list[Any]:
    """Initializers and attribute tensors of a graph and of its subgraphs (If, Loop, Scan bodies)."""
    tensors = list(graph.initializer)
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                tensors.append(attr.t)
            tensors.extend(attr.tensors)
            if attr.HasField("g"):
                tensors.extend(_all_tensors(attr.g))
            for sub in attr.graphs:
                tensors.extend(_all_tensors(sub))
    return tensors


def _graph_inputs(proto: Any) -> list[tuple[str, list[int | str], int]]:
    initializers = {i.name for i in proto.graph.initializer}
    out = []
    for value in proto.graph.input:
        if value.name in initializers:
            continue
        dims: list[int | str] = []
        for d in value.type.tensor_type.shape.dim:
            dims.append(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?"))
        out.append((value.name, dims, int(value.type.tensor_type.elem_type)))
    return out


def _fmt_dims(dims: Sequence[int | str]) -> str:
    return "x".join(str(d) for d in dims) or "no shape"


# --- readable layer names ------------------------------------------------------------------


def readable_names(nodes: Sequence[tuple[str, str]], *, reserved: Collection[str] = ()) -> list[str]:
    """Dotted module paths for ONNX nodes given as ``(node name, op type)``.

    Exporters name nodes after the module path and the operator
    (``/layer1/layer1.0/conv1/Conv``); the path is what a person knows the layer by. The
    operator is dropped unless the path alone is ambiguous (a functional ``Add`` inside
    ``layer1.0``, which is also a container, becomes ``layer1.0.add``); nameless nodes are
    named after their operator. The names are unique, none is a prefix-path of another, and
    none contains ``#`` (reserved for repeated calls); a path part found in ``reserved``
    (attribute names of the module class that will hold them) gets a trailing ``_``.

    Example:
        >>> readable_names([("/layer1/layer1.0/downsample/downsample.0/Conv", "Conv"), ("/layer1/layer1.0/Add", "Add"),
        ...                 ("/Flatten_1", "Flatten")])
        ['layer1.0.downsample.0', 'layer1.0.add', 'flatten']
    """
    paths: list[list[str]] = []
    for name, op in nodes:
        parts = [p for p in name.replace("#", "_").split("/") if p]
        op_key = op.lower()
        drop_op = bool(parts) and re.fullmatch(re.escape(op_key) + r"(_\d+)?", parts[-1].lower()) is not None
        path: list[str] = []
        for part in parts[:-1] if drop_op else parts:
            joined = ".".join(path)
            if joined and part.startswith(joined + "."):
                path = part.split(".")  # a scope that repeats the full path
            elif path and part.startswith(path[-1] + "."):
                path = path[:-1] + part.split(".")  # "/layer1/layer1.0": a Sequential's child repeats its name
            else:
                path.extend(p for p in part.split(".") if p)
        path = path if path else [op_key or "node"]
        paths.append([f"{p}_" if p in reserved else p for p in path])
    candidates = [".".join(p) for p in paths]
    counts = Counter(candidates)
    containers = {".".join(p[:i]) for p in paths for i in range(1, len(p))}
    names: list[str] = []
    used: set[str] = set()
    for (_, op), name in zip(nodes, candidates, strict=True):
        if name in containers or counts[name] > 1:
            if not name.endswith("." + op.lower()) and name != op.lower():
                name = f"{name}.{op.lower()}"
        base, k = name, 1
        while name in used or name in containers:
            k += 1
            name = f"{base}_{k}"
        used.add(name)
        names.append(name)
    return names


def _renamed(gm: Any, proto: Any) -> tuple[Any, dict[str, str]]:
    """The converted GraphModule with modules renamed to readable, nested paths, and each
    module's ONNX operator type."""
    import torch
    import torch.fx as fx

    call_nodes = [n for n in gm.graph.nodes if n.op == "call_module"]
    onnx_nodes = list(proto.graph.node)
    if len(call_nodes) != len(onnx_nodes):  # an onnx2torch version that maps nodes differently
        return gm, {}
    reserved = set(dir(fx.GraphModule)) | {"initializers"}
    new_names = readable_names([(n.name, n.op_type) for n in onnx_nodes], reserved=reserved)
    graph = fx.Graph()
    graph.output(graph.graph_copy(gm.graph, {}))
    call_nodes = [n for n in graph.nodes if n.op == "call_module"]
    root = torch.nn.Module()
    node_modules = {str(n.target) for n in call_nodes}
    for child_name, child in gm.named_children():
        if child_name not in node_modules:
            root.add_module(child_name, child)  # the initializers container
    for node, new_name in zip(call_nodes, new_names, strict=True):
        owner = root
        *parents, leaf = new_name.split(".")
        for part in parents:
            if not hasattr(owner, part):
                owner.add_module(part, torch.nn.Module())
            owner = getattr(owner, part)
        owner.add_module(leaf, gm.get_submodule(str(node.target)))
        node.target = new_name
    graph.lint()
    op_types = {name: node.op_type for name, node in zip(new_names, onnx_nodes, strict=True)}
    return fx.GraphModule(root, graph, class_name="OnnxModel"), op_types


def _onnx_kinds(graph: Any, inner: Any, op_types: dict[str, str]) -> Any:
    """onnx2torch's own modules (``OnnxBinaryMathOperation`` ...) say little; their layers take
    the ONNX operator as kind and type (``Add`` -> ``add``). Torch modules keep theirs."""
    from dataclasses import replace

    from convscope.models._graph import ModelGraph, canonical_kind, category_of, module_name_of

    modules = dict(inner.named_modules())
    layers = []
    for layer in graph.layers:
        name = module_name_of(layer.id)
        module = modules.get(name)
        op = op_types.get(name)
        if op is None or module is None or not type(module).__module__.startswith("onnx2torch"):
            layers.append(layer)
            continue
        kind = canonical_kind(op)
        attributes = dict(layer.attributes)
        if category_of(kind) == "activation":
            attributes.setdefault("activation", kind)
        layers.append(replace(layer, kind=kind, type=op, category=category_of(kind), attributes=attributes))
    return ModelGraph(layers=layers, edges=graph.edges, containers=graph.containers, input_shape=graph.input_shape,
                      method=graph.method)


def _static_batch_class() -> type:
    import torch

    class StaticBatch(torch.nn.Module):
        """An ONNX model exported for a fixed batch size, run in padded chunks of that size."""

        def __init__(self, inner: torch.nn.Module, static_batch: int) -> None:
            super().__init__()
            self.inner = inner
            self.static_batch = static_batch

        def forward(self, x: torch.Tensor) -> Any:
            from convscope.models._load import run_in_batches

            return run_in_batches(self.inner, x, self.static_batch)

    return StaticBatch


def _zeros(spec: InputSpec, static_batch: int | None) -> torch.Tensor:
    import torch

    return torch.zeros((static_batch or 1, *spec.shape))


# --- checking against onnxruntime --------------------------------------------------------------


def _check_against_onnxruntime(
    path: Path, module: torch.nn.Module, in_name: str, elem_type: int, spec: InputSpec, static_batch: int | None
) -> float:
    import numpy as np
    import onnx
    import torch

    ort = require("onnxruntime", feature="checking converted ONNX models", extra="onnx", pip_hint=_PIP_HINT)
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ConversionError(
            f"onnxruntime cannot run {path.name!r} to check the conversion ({type(exc).__name__}: {_first_line(exc)}); "
            "pass check=False to load it unchecked"
        ) from None
    try:
        np_dtype = onnx.helper.tensor_dtype_to_np_dtype(elem_type)
    except Exception:
        np_dtype = np.dtype(np.float32)
    if not np.issubdtype(np_dtype, np.floating):
        raise ConversionError(
            f"{path.name!r} takes {np_dtype} input; convscope feeds images as floating point - re-export the model "
            "with a float input, or pass check=False"
        )
    gen = torch.Generator().manual_seed(0)
    x = torch.randn((static_batch or 2, *spec.shape), generator=gen)
    try:
        sample = x.numpy().astype(np_dtype)
        with torch.no_grad():
            ours = module(torch.from_numpy(sample))
        references = session.run(None, {in_name: sample})
    except Exception as exc:
        raise ConversionError(
            f"running {path.name!r} on a sample of shape {tuple(x.shape)} failed ({type(exc).__name__}: "
            f"{_first_line(exc)}); if the input shape is wrong, pass input_shape=(C, H, W)"
        ) from None
    ours_all = list(ours) if isinstance(ours, tuple | list) else [ours]
    if len(ours_all) != len(references):
        raise ConversionError(
            f"the converted model gives {len(ours_all)} outputs, onnxruntime {len(references)}; pass check=False to "
            "load it anyway"
        )
    worst = 0.0
    for i, (mine, ref) in enumerate(zip(ours_all, references, strict=True)):  # every output, not only the first
        ours_np = torch.as_tensor(mine).detach().to(torch.float64).numpy()
        theirs = np.asarray(ref, dtype=np.float64)
        which = f"output {i}" if len(references) > 1 else "output"
        if ours_np.shape != theirs.shape:
            raise ConversionError(
                f"the converted model's {which} shape {ours_np.shape} differs from onnxruntime's {theirs.shape}"
            )
        diff = float(np.max(np.abs(ours_np - theirs))) if theirs.size else 0.0
        scale = max(1.0, float(np.max(np.abs(theirs))) if theirs.size else 1.0)
        if not diff <= TOLERANCE * scale:  # also catches NaN
            raise ConversionError(
                f"the converted model's {which} differs from onnxruntime by {diff:.3g} (allowed {TOLERANCE * scale:.3g} "
                f"= {TOLERANCE:g} x max(1, max|y|)); onnx2torch may mis-convert an operator here - pass check=False to "
                "load it anyway"
            )
        worst = max(worst, diff)
    return worst


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__

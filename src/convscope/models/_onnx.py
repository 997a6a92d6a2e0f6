"""ONNX models: converted to torch with onnx2torch and checked against onnxruntime at load.

onnx2torch declares torchvision as a dependency but only two of its converters use it
(NonMaxSuppression and RoiAlign). Where torchvision cannot be imported, convscope imports
onnx2torch with a stand-in ``torchvision`` module present only during that import (and
removed right after, so nothing else ever sees it); a model that needs one of those two
operators then fails to convert with a clear :class:`ConversionError`. See docs/formats.md.
"""

from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path
from typing import TYPE_CHECKING, Any

from convscope._optional import require
from convscope.errors import ConversionError, CorruptModelError
from convscope.models._spec import InputSpec, LoadedModel

if TYPE_CHECKING:
    import torch

__all__ = ["load_onnx", "import_onnx2torch", "TOLERANCE"]

#: largest allowed difference from onnxruntime, relative to the output's scale (max |y|, at least 1)
TOLERANCE = 1e-4
_TORCHVISION_OPS = ("NonMaxSuppression", "RoiAlign")


def import_onnx2torch() -> types.ModuleType:
    """Import onnx2torch, with a temporary torchvision stand-in where torchvision is unusable."""
    if "onnx2torch" in sys.modules:
        return sys.modules["onnx2torch"]
    require("onnx", feature="loading ONNX models", extra="onnx")
    try:
        importlib.import_module("torchvision.ops")
        have_torchvision = True
    except Exception:
        have_torchvision = False
        for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
            del sys.modules[name]  # a half-imported, broken torchvision must not be reused
    if have_torchvision:
        return require("onnx2torch", feature="loading ONNX models", extra="onnx", pip_hint="pip install --no-deps onnx2torch")
    standin = types.ModuleType("torchvision")
    ops = types.ModuleType("torchvision.ops")

    def unavailable(*_args: Any, **_kwargs: Any) -> Any:
        raise ConversionError("this ONNX operator needs torchvision, which is not importable here")

    ops.roi_align = unavailable  # type: ignore[attr-defined]
    ops.nms = unavailable  # type: ignore[attr-defined]
    ops.batched_nms = unavailable  # type: ignore[attr-defined]
    standin.ops = ops  # type: ignore[attr-defined]
    sys.modules["torchvision"], sys.modules["torchvision.ops"] = standin, ops
    try:
        return require("onnx2torch", feature="loading ONNX models", extra="onnx", pip_hint="pip install --no-deps onnx2torch")
    finally:
        for name in ("torchvision.ops", "torchvision"):
            if sys.modules.get(name) in (standin, ops):
                del sys.modules[name]


def load_onnx(path: Path, *, spec: InputSpec | None = None, check: bool = True) -> LoadedModel:
    """Convert an ``.onnx`` file into canonical form (see :func:`convscope.load_model`)."""
    import numpy as np
    import torch

    onnx = require("onnx", feature="loading ONNX models", extra="onnx")
    try:
        proto = onnx.load(str(path))
        onnx.checker.check_model(proto)
    except Exception as exc:
        raise CorruptModelError(f"{path.name!r} is not a valid ONNX model ({type(exc).__name__}: {str(exc)[:200]})") from None
    ops = {n.op_type for n in proto.graph.node}
    needs_tv = sorted(ops & set(_TORCHVISION_OPS))
    inputs = _graph_inputs(proto)
    if len(inputs) != 1:
        raise ConversionError(f"{path.name!r} has {len(inputs)} inputs; convscope handles models with one image input")
    in_name, dims = inputs[0]
    if spec is None:
        shape = tuple(d for d in dims[1:])
        if not shape or any(not isinstance(d, int) or d <= 0 for d in shape):
            raise ConversionError(
                f"{path.name!r} does not fix its input shape ({dims}); pass input_shape=(C, H, W) (CLI: --input-shape)"
            )
        spec = InputSpec(shape=shape)
    onnx2torch = import_onnx2torch()
    if needs_tv and "torchvision" not in sys.modules:
        try:
            importlib.import_module("torchvision.ops")
        except Exception:
            raise ConversionError(
                f"{path.name!r} uses {', '.join(needs_tv)}, which onnx2torch converts with torchvision; "
                "torchvision is not importable here (see docs/formats.md)"
            ) from None
    try:
        module = onnx2torch.convert(proto)
    except Exception as exc:
        raise ConversionError(f"onnx2torch could not convert {path.name!r}: {type(exc).__name__}: {str(exc)[:300]}") from None
    module.eval()
    diff = None
    if check:
        diff = _check_against_onnxruntime(path, module, in_name, spec, np)
    from convscope.models._load import _from_module

    loaded = _from_module(module, spec=spec, fmt="onnx", origin=str(path))
    loaded.reference_max_abs_diff = diff
    loaded.name = path.stem
    del torch
    return loaded


def _graph_inputs(proto: Any) -> list[tuple[str, list[int | str]]]:
    initializers = {i.name for i in proto.graph.initializer}
    out = []
    for value in proto.graph.input:
        if value.name in initializers:
            continue
        dims: list[int | str] = []
        for d in value.type.tensor_type.shape.dim:
            dims.append(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?"))
        out.append((value.name, dims))
    return out


def _check_against_onnxruntime(path: Path, module: torch.nn.Module, in_name: str, spec: InputSpec, np: Any) -> float:
    import torch

    ort = require("onnxruntime", feature="checking converted ONNX models", extra="onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    batch = _fixed_batch(session) or 2
    gen = torch.Generator().manual_seed(0)
    x = torch.randn((batch, *spec.shape), generator=gen)
    with torch.no_grad():
        ours = module(x)
    ours = ours[0] if isinstance(ours, tuple | list) else ours
    theirs = session.run(None, {in_name: x.numpy()})[0]
    ours_np = ours.detach().numpy()
    if ours_np.shape != theirs.shape:
        raise ConversionError(f"the converted model's output shape {ours_np.shape} differs from onnxruntime's {theirs.shape}")
    diff = float(np.max(np.abs(ours_np - theirs))) if theirs.size else 0.0
    scale = max(1.0, float(np.max(np.abs(theirs))) if theirs.size else 1.0)
    if not diff <= TOLERANCE * scale:
        raise ConversionError(
            f"the converted model differs from onnxruntime by {diff:.3g} (allowed {TOLERANCE * scale:.3g}); "
            "pass check=False to load it anyway"
        )
    return diff


def _fixed_batch(session: Any) -> int | None:
    dim = session.get_inputs()[0].shape[0]
    return dim if isinstance(dim, int) and dim > 0 else None

"""``ModelGraph``: the framework-neutral structure of a model.

A graph holds layers in execution (topological) order, the edges of the real data flow
(so skip connections and branches show up, not just module order) and the container
hierarchy used to collapse and expand big models. It is plain data and round-trips
through JSON; the 3-D view draws it.

Shapes are per sample (no batch dimension) and channels-first, whatever the framework.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from convscope.errors import LayerNotFoundError

if TYPE_CHECKING:
    import torch

__all__ = [
    "Container",
    "Edge",
    "Layer",
    "ModelGraph",
    "build_graph",
    "call_id",
    "canonical_kind",
    "category_of",
    "module_name_of",
]

Shape = tuple[int, ...]

# Framework class / op names -> one canonical kind. Keys are lower-case, without "_".
_KIND_ALIASES: dict[str, str] = {
    "dense": "linear",
    "gemm": "linear",
    "conv": "conv2d",
    "conv2d": "conv2d",
    "conv1d": "conv1d",
    "conv3d": "conv3d",
    "convtranspose2d": "convtranspose2d",
    "conv2dtranspose": "convtranspose2d",
    "maxpooling2d": "maxpool2d",
    "maxpool": "maxpool2d",
    "averagepooling2d": "avgpool2d",
    "averagepool": "avgpool2d",
    "globalaveragepooling2d": "globalavgpool2d",
    "globalaveragepool": "globalavgpool2d",
    "adaptiveavgpool2d": "adaptiveavgpool2d",
    "batchnormalization": "batchnorm2d",
    "batchnorm": "batchnorm2d",
    "iadd": "add",
    "addv2": "add",
    "cat": "concat",
    "concatenate": "concat",
    "matmul": "linear",
    "relu": "relu",
    "relu6": "relu6",
    "leakyrelu": "leakyrelu",
    "onnxbinarymathoperation": "binary",
}

_CATEGORIES: dict[str, tuple[str, ...]] = {
    "conv": ("conv1d", "conv2d", "conv3d", "convtranspose2d", "depthwiseconv2d", "separableconv2d"),
    "dense": ("linear", "bilinear"),
    "activation": (
        "relu", "relu6", "leakyrelu", "elu", "gelu", "silu", "sigmoid", "tanh", "softmax",
        "logsoftmax", "hardswish", "hardtanh", "prelu", "mish", "softplus", "activation",
    ),
    "pool": (
        "maxpool1d", "maxpool2d", "maxpool3d", "avgpool1d", "avgpool2d", "adaptiveavgpool2d",
        "adaptivemaxpool2d", "globalavgpool2d", "globalmaxpool2d",
    ),
    "norm": ("batchnorm1d", "batchnorm2d", "batchnorm3d", "layernorm", "groupnorm", "instancenorm2d"),
    "reshape": ("flatten", "reshape", "view", "permute", "transpose", "squeeze", "unsqueeze"),
    "merge": ("add", "concat", "mul", "sub", "binary"),
    "regularization": ("dropout", "dropout2d", "alphadropout"),
    "io": ("input", "output"),
}
_CATEGORY_OF_KIND = {kind: cat for cat, kinds in _CATEGORIES.items() for kind in kinds}


def canonical_kind(name: str) -> str:
    """Map a framework's class or op name to convscope's kind (``"Conv2D"`` -> ``"conv2d"``)."""
    key = name.split(".")[-1].lower().replace("_", "")
    if key.startswith("onnx") and key not in _KIND_ALIASES:
        key = key[4:]
    return _KIND_ALIASES.get(key, key)


def category_of(kind: str) -> str:
    """The broad family of a kind: conv, dense, activation, pool, norm, reshape, merge, ..."""
    return _CATEGORY_OF_KIND.get(kind, "other")


@dataclass(frozen=True)
class Layer:
    """One node of the graph: a leaf module, or a functional op such as a skip ``add``.

    Attributes:
        id: stable identifier; the qualified module name for modules (``"layer1.0.conv1"``),
            the op's node name for functional ops (``"add_1"``), ``"input"`` for the input.
        kind: canonical kind (``"conv2d"``, ``"linear"``, ``"relu"``, ``"add"`` ...).
        type: the original class or op name (``"Conv2d"``, ``"Conv2D"``, ``"add"``).
        category: broad family (``"conv"``, ``"dense"``, ``"activation"`` ...).
        input_shapes: per-sample shapes of the inputs, channels-first.
        output_shape: per-sample shape of the output, channels-first (``None`` if not a tensor).
        params: number of parameters owned by the layer.
        attributes: filters, kernel, stride, padding, units, activation ... where they apply.
        parent: id of the enclosing container, ``None`` at the top level.
        hookable: whether capture can observe it (modules are, functional ops are not).
    """

    id: str
    kind: str
    type: str
    category: str
    input_shapes: tuple[Shape, ...] = ()
    output_shape: Shape | None = None
    params: int = 0
    attributes: dict[str, Any] = field(default_factory=dict)
    parent: str | None = None
    hookable: bool = True

    @property
    def name(self) -> str:
        return self.id


@dataclass(frozen=True)
class Edge:
    """Data flows from layer ``source`` to layer ``target``."""

    source: str
    target: str


@dataclass(frozen=True)
class Container:
    """A module that holds other modules (``nn.Sequential``, a residual block ...)."""

    id: str
    type: str
    parent: str | None
    children: tuple[str, ...]
    params: int = 0


@dataclass
class ModelGraph:
    """The structure of a model, framework-neutral and JSON-serialisable.

    Example:
        >>> import torch
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU())
        >>> g = build_graph(net, input_shape=(1, 8, 8))
        >>> [(l.id, l.kind, l.output_shape) for l in g.layers]
        [('input', 'input', (1, 8, 8)), ('0', 'conv2d', (4, 6, 6)), ('1', 'relu', (4, 6, 6))]
    """

    layers: list[Layer]
    edges: list[Edge]
    containers: list[Container] = field(default_factory=list)
    input_shape: Shape = ()
    method: str = "fx"

    def __post_init__(self) -> None:
        self._by_id = {layer.id: layer for layer in self.layers}

    # --- lookup -------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Layer]:
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    def __contains__(self, layer_id: object) -> bool:
        return layer_id in self._by_id

    def layer(self, layer_id: str) -> Layer:
        """The layer with this id, or :class:`LayerNotFoundError` listing the real ones."""
        try:
            return self._by_id[layer_id]
        except KeyError:
            raise LayerNotFoundError(
                f"layer {layer_id!r} not found; the model has {_preview(self.layer_ids())} "
                "- pass one of these"
            ) from None

    def layer_ids(self, *, category: str | None = None, hookable: bool | None = None) -> list[str]:
        """Layer ids in execution order, optionally only one category or hookable ones."""
        return [
            layer.id
            for layer in self.layers
            if (category is None or layer.category == category)
            and (hookable is None or layer.hookable == hookable)
            and layer.kind != "input"
        ]

    def predecessors(self, layer_id: str) -> list[str]:
        self.layer(layer_id)
        return [e.source for e in self.edges if e.target == layer_id]

    def successors(self, layer_id: str) -> list[str]:
        self.layer(layer_id)
        return [e.target for e in self.edges if e.source == layer_id]

    @property
    def total_params(self) -> int:
        return sum(layer.params for layer in self.layers)

    # --- serialisation --------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "version": 1,
            "input_shape": list(self.input_shape),
            "method": self.method,
            "layers": [_layer_to_dict(layer) for layer in self.layers],
            "edges": [[e.source, e.target] for e in self.edges],
            "containers": [
                {**asdict(c), "children": list(c.children)} for c in self.containers
            ],
        }

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelGraph:
        layers = [
            Layer(
                id=d["id"],
                kind=d["kind"],
                type=d["type"],
                category=d["category"],
                input_shapes=tuple(tuple(s) for s in d["input_shapes"]),
                output_shape=None if d["output_shape"] is None else tuple(d["output_shape"]),
                params=int(d["params"]),
                attributes=_attributes_from_json(d["attributes"]),
                parent=d["parent"],
                hookable=bool(d["hookable"]),
            )
            for d in data["layers"]
        ]
        return cls(
            layers=layers,
            edges=[Edge(s, t) for s, t in data["edges"]],
            containers=[
                Container(
                    id=c["id"],
                    type=c["type"],
                    parent=c["parent"],
                    children=tuple(c["children"]),
                    params=int(c.get("params", 0)),
                )
                for c in data["containers"]
            ],
            input_shape=tuple(data["input_shape"]),
            method=data.get("method", "fx"),
        )

    @classmethod
    def from_json(cls, text: str) -> ModelGraph:
        return cls.from_dict(json.loads(text))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ModelGraph) and self.to_dict() == other.to_dict()

    def summary_rows(self) -> list[tuple[str, str, str, str, str]]:
        """Rows (id, kind, input shape, output shape, params) for tables."""
        rows = []
        for layer in self.layers:
            ins = ", ".join(_fmt_shape(s) for s in layer.input_shapes) or "-"
            rows.append(
                (layer.id, layer.kind, ins, _fmt_shape(layer.output_shape), f"{layer.params:,}")
            )
        return rows


def _fmt_shape(shape: Shape | None) -> str:
    return "-" if shape is None else "x".join(str(d) for d in shape) or "scalar"


def _preview(names: list[str], limit: int = 12) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def _layer_to_dict(layer: Layer) -> dict[str, Any]:
    d = asdict(layer)
    d["input_shapes"] = [list(s) for s in layer.input_shapes]
    d["output_shape"] = None if layer.output_shape is None else list(layer.output_shape)
    d["attributes"] = _attributes_to_json(layer.attributes)
    return d


def _attributes_to_json(attrs: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in attrs.items()}


def _attributes_from_json(attrs: dict[str, Any]) -> dict[str, Any]:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in attrs.items()}


# ---------------------------------------------------------------------------------------
# Building a graph from a torch module
# ---------------------------------------------------------------------------------------


def module_attributes(module: torch.nn.Module) -> dict[str, Any]:
    """The attributes a person looks for in a layer: filters, kernel, stride, units ..."""
    import torch.nn as nn

    attrs: dict[str, Any] = {}
    if isinstance(module, nn.modules.conv._ConvNd):
        attrs.update(
            filters=module.out_channels,
            in_channels=module.in_channels,
            kernel=tuple(module.kernel_size),
            stride=tuple(module.stride),
            padding=module.padding if isinstance(module.padding, str) else tuple(module.padding),
            dilation=tuple(module.dilation),
            groups=module.groups,
            bias=module.bias is not None,
        )
    elif isinstance(module, nn.Linear):
        attrs.update(units=module.out_features, in_features=module.in_features, bias=module.bias is not None)
    elif isinstance(module, nn.modules.pooling._MaxPoolNd | nn.modules.pooling._AvgPoolNd):
        attrs.update(kernel=_tuple(module.kernel_size), stride=_tuple(module.stride), padding=_tuple(module.padding))
    elif isinstance(module, nn.modules.pooling._AdaptiveAvgPoolNd | nn.modules.pooling._AdaptiveMaxPoolNd):
        attrs.update(output_size=_tuple(module.output_size))
    elif isinstance(module, nn.modules.batchnorm._BatchNorm):
        attrs.update(num_features=module.num_features, eps=module.eps, momentum=module.momentum)
    elif isinstance(module, nn.modules.dropout._DropoutNd):
        attrs.update(p=module.p)
    elif isinstance(module, nn.LeakyReLU):
        attrs.update(negative_slope=module.negative_slope)
    if category_of(canonical_kind(type(module).__name__)) == "activation":
        attrs.setdefault("activation", canonical_kind(type(module).__name__))
    return attrs


def _tuple(v: Any) -> Any:
    if isinstance(v, int):
        return (v, v)
    return tuple(v) if isinstance(v, list | tuple) else v


def _own_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters(recurse=True))


def _is_leaf(module: torch.nn.Module) -> bool:
    return next(iter(module.children()), None) is None


def _containers(model: torch.nn.Module) -> list[Container]:
    out = []
    for name, module in model.named_modules():
        if not name or _is_leaf(module):
            continue
        children = tuple(f"{name}.{child}" for child, _ in module.named_children())
        parent = name.rsplit(".", 1)[0] if "." in name else None
        out.append(Container(id=name, type=type(module).__name__, parent=parent, children=children, params=_own_params(module)))
    return out


def _parent_of(qualname: str) -> str | None:
    return qualname.rsplit(".", 1)[0] if "." in qualname else None


def call_id(module_name: str, call: int) -> str:
    """Layer id of the ``call``-th call (1-based) of a module: ``relu``, ``relu#2``, ``relu#3`` ..."""
    return module_name if call == 1 else f"{module_name}#{call}"


def module_name_of(layer_id: str) -> str:
    """The module behind a layer id (``"layer1.0.relu#2"`` -> ``"layer1.0.relu"``)."""
    return layer_id.split("#", 1)[0]


def _per_sample(shape: Iterable[int]) -> Shape:
    dims = tuple(int(d) for d in shape)
    return dims[1:] if dims else dims


def build_graph(
    model: torch.nn.Module,
    *,
    input_shape: Shape,
    example: torch.Tensor | None = None,
) -> ModelGraph:
    """Build the :class:`ModelGraph` of a torch module for one input shape.

    Every leaf module becomes a layer; functional operations between modules (a skip
    ``x + y``, ``torch.cat``, ``F.relu``) become layers too, so edges follow the real
    data flow. Uses ``torch.fx`` symbolic tracing, and falls back to recording the order
    in which hooks fire when the model cannot be traced (the graph then says
    ``method="hooks"`` and unknown links follow execution order).

    Args:
        model: the module; its train/eval mode is restored afterwards.
        input_shape: one sample's shape, channels-first (``(1, 28, 28)``).
        example: an example batch to propagate instead of zeros (zeros of the dtype and on
            the device of the model's first floating-point parameter, float32 on the CPU
            without one).
    """
    import torch

    was_training = model.training
    model.eval()
    try:
        x = example
        if x is None:
            p = next((p for p in model.parameters() if p.is_floating_point()), None)
            x = torch.zeros((1, *input_shape)) if p is None else torch.zeros((1, *input_shape), dtype=p.dtype, device=p.device)
        try:
            return _build_fx(model, x, tuple(input_shape))
        except Exception:  # untraceable forward (data-dependent control flow, custom types)
            return _build_hooks(model, x, tuple(input_shape))
    finally:
        model.train(was_training)


def _build_fx(model: torch.nn.Module, x: torch.Tensor, input_shape: Shape) -> ModelGraph:
    import torch
    import torch.fx as fx
    from torch.fx.passes.shape_prop import ShapeProp

    class _LeafTracer(fx.Tracer):
        def is_leaf_module(self, m: torch.nn.Module, qualname: str) -> bool:
            return _is_leaf(m) or super().is_leaf_module(m, qualname)

    tracer = _LeafTracer()
    fx_graph = tracer.trace(model)
    gm = fx.GraphModule(tracer.root, fx_graph)
    with torch.no_grad():
        ShapeProp(gm).propagate(x)

    modules = dict(model.named_modules())
    layers: list[Layer] = []
    visible: dict[fx.Node, set[str]] = {}  # node -> ids of the visible layers it stands for
    edges: list[Edge] = []
    seen_edges: set[tuple[str, str]] = set()
    used_ids: set[str] = set()
    calls: dict[str, int] = {}  # a module called several times gives one layer per call

    def out_shape(node: fx.Node) -> Shape | None:
        meta = node.meta.get("tensor_meta")
        return _per_sample(meta.shape) if meta is not None and hasattr(meta, "shape") else None

    def sources(node: fx.Node) -> list[fx.Node]:
        return [a for a in node.all_input_nodes]

    for node in fx_graph.nodes:
        ins = sources(node)
        upstream: set[str] = set()
        for a in ins:
            upstream |= visible.get(a, set())
        shape = out_shape(node)
        if node.op == "placeholder":
            layers.append(Layer(id="input", kind="input", type="input", category="io", output_shape=input_shape, hookable=False))
            visible[node] = {"input"}
            continue
        if node.op == "call_module":
            target = str(node.target)
            module = modules[target]
            kind = canonical_kind(type(module).__name__)
            calls[target] = calls.get(target, 0) + 1
            layer = Layer(
                id=call_id(target, calls[target]),
                kind=kind,
                type=type(module).__name__,
                category=category_of(kind),
                input_shapes=tuple(s for s in (out_shape(a) for a in ins) if s is not None),
                output_shape=shape,
                params=_own_params(module),
                attributes=module_attributes(module),
                parent=_parent_of(target),
                hookable=True,
            )
        elif node.op in ("call_function", "call_method") and shape is not None and upstream:
            fname = node.target if isinstance(node.target, str) else getattr(node.target, "__name__", str(node.target))
            if node.target in (operator.getitem,) or fname in ("size", "dim", "contiguous", "to", "type_as"):
                visible[node] = upstream
                continue
            kind = canonical_kind(fname)
            stack = node.meta.get("nn_module_stack") or {}
            parent = next(reversed(stack.values()))[0] if stack else None
            if isinstance(parent, str) and not parent:
                parent = None
            node_id = node.name if node.name not in modules else f"{node.name}_op"
            layer = Layer(
                id=node_id,
                kind=kind,
                type=fname,
                category=category_of(kind),
                input_shapes=tuple(s for s in (out_shape(a) for a in ins) if s is not None),
                output_shape=shape,
                params=0,
                attributes={"activation": kind} if category_of(kind) == "activation" else {},
                parent=parent if isinstance(parent, str) else None,
                hookable=False,
            )
        else:
            # get_attr, output, non-tensor ops: pass data flow through without a layer.
            visible[node] = upstream
            continue
        if layer.id in used_ids:
            continue
        used_ids.add(layer.id)
        layers.append(layer)
        visible[node] = {layer.id}
        for src in sorted(upstream):
            if (src, layer.id) not in seen_edges:
                seen_edges.add((src, layer.id))
                edges.append(Edge(src, layer.id))
    return ModelGraph(layers=layers, edges=edges, containers=_containers(model), input_shape=input_shape, method="fx")


def _build_hooks(model: torch.nn.Module, x: torch.Tensor, input_shape: Shape) -> ModelGraph:
    """Fallback: observe leaf modules as they run; link by tensor identity, else by order."""
    import torch

    leaves = [(name, m) for name, m in model.named_modules() if name and _is_leaf(m)]
    order: list[tuple[str, tuple[Shape, ...], Shape | None, list[int]]] = []
    producer: dict[int, str] = {id(x): "input"}
    keep_alive: list[Any] = []

    def first_tensor(obj: Any) -> torch.Tensor | None:
        if isinstance(obj, torch.Tensor):
            return obj
        if isinstance(obj, list | tuple) and obj:
            return first_tensor(obj[0])
        return None

    def make_hook(name: str) -> Any:
        def hook(_m: torch.nn.Module, args: tuple[Any, ...], out: Any) -> None:
            tensors = [a for a in args if isinstance(a, torch.Tensor)]
            out_t = first_tensor(out)
            order.append(
                (
                    name,
                    tuple(_per_sample(t.shape) for t in tensors),
                    None if out_t is None else _per_sample(out_t.shape),
                    [id(t) for t in tensors],
                )
            )
            if out_t is not None:
                producer[id(out_t)] = call_id(name, sum(1 for o in order if o[0] == name))
                keep_alive.append(out_t)

        return hook

    handles = []
    try:
        for name, module in leaves:
            handles.append(module.register_forward_hook(make_hook(name)))
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    modules = dict(leaves)
    layers = [Layer(id="input", kind="input", type="input", category="io", output_shape=input_shape, hookable=False)]
    edges: list[Edge] = []
    seen: set[str] = set()
    previous = "input"
    calls: dict[str, int] = {}
    for base, in_shapes, shape, in_ids in order:
        calls[base] = calls.get(base, 0) + 1
        name = call_id(base, calls[base])
        if name in seen:
            continue
        seen.add(name)
        module = modules[base]
        kind = canonical_kind(type(module).__name__)
        layers.append(
            Layer(
                id=name,
                kind=kind,
                type=type(module).__name__,
                category=category_of(kind),
                input_shapes=in_shapes,
                output_shape=shape,
                params=_own_params(module),
                attributes=module_attributes(module),
                parent=_parent_of(base),
                hookable=True,
            )
        )
        srcs = {producer[i] for i in in_ids if i in producer and producer[i] != name}
        for src in sorted(srcs or {previous}):
            edges.append(Edge(src, name))
        previous = name
    return ModelGraph(layers=layers, edges=edges, containers=_containers(model), input_shape=input_shape, method="hooks")

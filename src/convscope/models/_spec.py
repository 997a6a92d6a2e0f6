"""What a loaded model is: the torch module, its graph, its input specification, its origin."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from convscope.errors import DataError

if TYPE_CHECKING:
    import torch

    from convscope.models._graph import ModelGraph

__all__ = ["CHANNEL_ORDERS", "InputSpec", "LoadedModel"]

#: what ``InputSpec.channel_order`` may be, and how many channels each needs (``None``: any)
CHANNEL_ORDERS: dict[str, int | None] = {"RGB": None, "BGR": 3, "L": 1}


@dataclass(frozen=True)
class InputSpec:
    """How inputs must look before they reach the module.

    Images are described per sample and channels-first (``(C, H, W)``) whatever the
    original framework used: convscope adapts channels-last models (Keras) so that
    everything downstream sees one convention.

    Raw pixel values live in ``value_range`` (``(0, 1)`` by default) and are RGB (or grey);
    ``prepare`` maps them to what the module expects: for ``channel_order="BGR"`` (models
    converted from Caffe or OpenCV) it reverses the channels, then it normalises by
    ``(x - mean) / std`` per channel. ``mean`` and ``std`` are in the model's own channel
    order, as such models publish them: for BGR, blue first. ``"RGB"`` (the default, also
    for specs of grey or non-image inputs that do not say) and ``"L"`` (grey, one channel)
    leave the channels as they are.

    Example:
        >>> spec = InputSpec(shape=(1, 28, 28), mean=(0.1307,), std=(0.3081,))
        >>> spec.channels, spec.height, spec.width
        (1, 28, 28)
    """

    shape: tuple[int, ...]
    channel_order: str = "RGB"
    value_range: tuple[float, float] = (0.0, 1.0)
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    class_names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        order = self.channel_order
        if order not in CHANNEL_ORDERS:
            close = [k for k in CHANNEL_ORDERS if str(order).upper() == k]
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise DataError(
                f"channel_order {order!r} is not known; {hint}give one of "
                f"{', '.join(repr(k) for k in CHANNEL_ORDERS)} (the order of the channels the model takes)"
            )
        for name, values in (("mean", self.mean), ("std", self.std)):
            if values is not None and len(values) not in (1, self.channels):
                raise DataError(
                    f"the input spec's {name} has {len(values)} values for {self.channels} channel(s) (shape {tuple(self.shape)}); "
                    f"give one {name} per channel, or one for all"
                )
        if self.std is not None and any(not v > 0 for v in self.std):
            raise DataError(f"the input spec's std must be above 0 (it divides), got {tuple(self.std)}")
        needs = CHANNEL_ORDERS[order]
        if needs is not None and self.channels != needs:
            raise DataError(
                f"channel_order {order!r} needs {needs} channel(s), but the input shape {tuple(self.shape)} "
                f"has {self.channels}; fix the shape, or give channel_order='RGB' (or 'L' for one channel)"
            )

    @property
    def channels(self) -> int:
        return int(self.shape[0]) if len(self.shape) == 3 else 1

    @property
    def height(self) -> int | None:
        return int(self.shape[-2]) if len(self.shape) >= 2 else None

    @property
    def width(self) -> int | None:
        return int(self.shape[-1]) if len(self.shape) >= 2 else None

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """Map raw images (``N x C x H x W`` RGB or grey, in ``value_range``) to the module's input:
        channels reversed for a BGR model, then normalised with ``mean`` and ``std``.

        Example:
            >>> import torch
            >>> spec = InputSpec(shape=(3, 1, 1), channel_order="BGR", mean=(0.25, 0.0, 0.0), std=(1.0, 1.0, 1.0))
            >>> spec.prepare(torch.tensor([[[[0.75]], [[0.5]], [[0.25]]]])).flatten().tolist()  # R, G, B in; B first out
            [0.0, 0.5, 0.75]
        """
        import torch

        x = images.to(torch.float32)
        if self.channel_order == "BGR":
            x = x.flip(1)
        if self.mean is None or self.std is None:
            return x
        shape = (1, -1) + (1,) * (x.dim() - 2)
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(shape)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(shape)
        return (x - mean) / std

    def unprepare(self, inputs: torch.Tensor) -> torch.Tensor:
        """Invert :meth:`prepare`: module inputs back to raw pixel values."""
        import torch

        x = inputs
        if self.mean is not None and self.std is not None:
            shape = (1, -1) + (1,) * (inputs.dim() - 2)
            mean = torch.tensor(self.mean, dtype=inputs.dtype, device=inputs.device).view(shape)
            std = torch.tensor(self.std, dtype=inputs.dtype, device=inputs.device).view(shape)
            x = inputs * std + mean
        return x.flip(1) if self.channel_order == "BGR" else x

    def to_dict(self) -> dict[str, Any]:
        return {
            "shape": list(self.shape),
            "channel_order": self.channel_order,
            "value_range": list(self.value_range),
            "mean": None if self.mean is None else list(self.mean),
            "std": None if self.std is None else list(self.std),
            "class_names": None if self.class_names is None else list(self.class_names),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InputSpec:
        return cls(
            shape=tuple(int(v) for v in data["shape"]),
            channel_order=str(data.get("channel_order", "RGB")),
            value_range=tuple(float(v) for v in data.get("value_range", (0.0, 1.0))),  # type: ignore[arg-type]
            mean=None if data.get("mean") is None else tuple(float(v) for v in data["mean"]),
            std=None if data.get("std") is None else tuple(float(v) for v in data["std"]),
            class_names=None
            if data.get("class_names") is None
            else tuple(str(v) for v in data["class_names"]),
        )


@dataclass
class LoadedModel:
    """A model in convscope's canonical form.

    Attributes:
        module: the ``torch.nn.Module``, in eval mode, taking channels-first inputs.
        graph: its :class:`~convscope.models.ModelGraph`.
        input_spec: how inputs must look (:class:`InputSpec`).
        format: where it came from: ``"torch"``, ``"export"``, ``"state_dict"``,
            ``"safetensors"``, ``"pickle"``, ``"onnx"``, ``"keras"`` or ``"zoo"``.
        source: a human description of the origin (a path, a zoo name, a class name).
        reference_max_abs_diff: for converted models (ONNX, Keras), the largest absolute
            difference between the torch module and the original runtime at load time.
        layer_modules: graph layer id -> the module whose forward hooks observe it.
        layer_layouts: graph layer id -> ``"NHWC"`` for layers whose raw activations are
            channels-last (capture turns them channels-first).
    """

    module: torch.nn.Module
    graph: ModelGraph
    input_spec: InputSpec
    format: str
    source: str
    reference_max_abs_diff: float | None = None
    layer_modules: dict[str, torch.nn.Module] = field(default_factory=dict)
    layer_layouts: dict[str, str] = field(default_factory=dict)
    name: str | None = None

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """Logits for raw images (``N x C x H x W`` in the spec's value range)."""
        import torch

        with torch.no_grad():
            return self.module(self.input_spec.prepare(images))

    def __repr__(self) -> str:
        return (
            f"LoadedModel(format={self.format!r}, source={self.source!r}, "
            f"layers={len(self.graph.layers)}, params={self.graph.total_params:,}, "
            f"input={tuple(self.input_spec.shape)})"
        )

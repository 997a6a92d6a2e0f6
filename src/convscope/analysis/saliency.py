"""Which input pixels decided a prediction: saliency maps with Captum, at input resolution.

Methods: ``"gradient"`` (|d logit / d pixel|, Simonyan et al.), ``"integrated_gradients"``
(Sundararajan et al.; from an all-black baseline by default, ``steps=50``), ``"gradcam"``
(Selvaraju et al.; at a conv layer, default the last one, upsampled bilinearly to the input)
and ``"occlusion"`` (the drop of the logit when a ``window`` x ``window`` patch is blanked,
moved by ``stride``). Inputs are raw images; the model's normalisation is applied inside, so
attributions are per raw pixel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from convscope._optional import require
from convscope.errors import DataError, LayerNotFoundError

if TYPE_CHECKING:
    import torch

__all__ = ["METHODS", "SaliencyResult", "saliency"]

METHODS = ("gradient", "integrated_gradients", "gradcam", "occlusion")


@dataclass
class SaliencyResult:
    """Attributions for a batch.

    Attributes:
        raw: ``N x C x H x W`` attributions as the method gives them (signed where it is).
        maps: ``N x H x W``: summed over channels (absolute for ``gradient``), at input resolution.
        normalised: ``maps`` scaled per sample to ``[0, 1]`` (positive evidence only for
            signed methods), ready to overlay.
        target: the class explained per sample; method; layer (Grad-CAM).
    """

    raw: torch.Tensor
    maps: torch.Tensor
    normalised: torch.Tensor
    target: np.ndarray
    method: str
    layer: str | None = None

    def to_payload(self) -> dict[str, Any]:
        return {
            "maps": self.maps.detach().cpu().numpy().astype(np.float32),
            "normalised": self.normalised.detach().cpu().numpy().astype(np.float32),
            "target": self.target.astype(np.int64),
            "method": self.method,
            "layer": self.layer,
        }


def saliency(
    model: Any,
    inputs: torch.Tensor,
    *,
    method: str = "gradient",
    target: int | list[int] | np.ndarray | None = None,
    layer: str | None = None,
    steps: int = 50,
    baseline: float = 0.0,
    window: int = 4,
    stride: int = 2,
) -> SaliencyResult:
    """Attribute the prediction for ``target`` (default: the predicted class) to the input pixels.

    Args:
        model: a :class:`convscope.LoadedModel` (raw images are normalised by its spec) or a module.
        inputs: ``N x C x H x W`` raw images.
        method: one of :data:`METHODS`.
        target: the class to explain, one for all or one per sample.
        layer: Grad-CAM's conv layer (graph layer id); default the last conv layer.
        steps, baseline: Integrated Gradients' path steps and constant baseline pixel value.
        window, stride: occlusion's patch size and step, in pixels.

    Example:
        >>> import convscope
        >>> m = convscope.load_model("lenet5-simplified")
        >>> x = convscope.load_dataset("mnist-5k", split="test").images[:2]
        >>> tuple(saliency(m, x, method="gradcam").maps.shape)
        (2, 28, 28)
    """
    import torch

    captum = require("captum.attr", feature="saliency maps", extra="analysis")
    if method not in METHODS:
        raise DataError(f"unknown saliency method {method!r}; choose one of {', '.join(METHODS)}")
    wrapped, modules, graph = _wrap(model)
    x = inputs.detach().to(torch.float32)
    if x.dim() != 4:
        raise DataError(f"inputs must be N x C x H x W raw images, got shape {tuple(x.shape)}")
    with torch.no_grad():
        logits = wrapped(x)
    if target is None:
        targets = logits.argmax(1)
    else:
        targets = torch.as_tensor(np.broadcast_to(np.asarray(target, dtype=np.int64).reshape(-1), (x.shape[0],)).copy())
        if int(targets.min()) < 0 or int(targets.max()) >= logits.shape[1]:
            raise DataError(f"target classes must be in [0, {logits.shape[1]})")
    chosen = None
    if method == "gradient":
        raw = captum.Saliency(wrapped).attribute(x.clone().requires_grad_(True), target=targets, abs=True)
        maps = raw.sum(dim=1)
    elif method == "integrated_gradients":
        raw = captum.IntegratedGradients(wrapped).attribute(x, baselines=torch.full_like(x, baseline), target=targets, n_steps=steps)
        maps = raw.sum(dim=1)
    elif method == "occlusion":
        c = x.shape[1]
        raw = captum.Occlusion(wrapped).attribute(
            x, target=targets, sliding_window_shapes=(c, window, window), strides=(c, stride, stride), baselines=baseline
        )
        maps = raw.sum(dim=1)
    else:
        chosen = layer or _last_conv(graph, modules)
        if chosen not in modules:
            raise LayerNotFoundError(f"Grad-CAM layer {chosen!r} not found; conv layers are {', '.join(_convs(graph, modules))}")
        cam = captum.LayerGradCam(wrapped, modules[chosen]).attribute(x, target=targets)
        cam = torch.relu(cam)
        maps = torch.nn.functional.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
        raw = maps.unsqueeze(1).expand_as(x)
    positive = maps.clamp(min=0) if method in ("integrated_gradients", "occlusion") else maps
    peak = positive.flatten(1).amax(dim=1).clamp(min=1e-12).view(-1, 1, 1)
    return SaliencyResult(
        raw=raw.detach(),
        maps=maps.detach(),
        normalised=(positive / peak).detach(),
        target=targets.numpy(),
        method=method,
        layer=chosen,
    )


def _wrap(model: Any) -> tuple[Any, dict[str, Any], Any]:
    import torch

    from convscope._outputs import first_output, first_tensor
    from convscope.models._spec import LoadedModel

    if isinstance(model, LoadedModel):
        spec, module = model.input_spec, model.module.eval()

        class Raw(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.inner = module

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return first_tensor(self.inner(spec.prepare(x)))  # (a model of several outputs: its first)

        return Raw(), dict(model.layer_modules), model.graph
    if isinstance(model, torch.nn.Module):
        return first_output(model.eval()), {n: m for n, m in model.named_modules() if n}, None
    raise DataError(f"expected a convscope LoadedModel or a torch.nn.Module, got {type(model).__name__}")


def _convs(graph: Any, modules: dict[str, Any]) -> list[str]:
    import torch

    if graph is not None:
        return [layer.id for layer in graph.layers if layer.category == "conv" and layer.id in modules]
    return [n for n, m in modules.items() if isinstance(m, torch.nn.modules.conv._ConvNd)]


def _last_conv(graph: Any, modules: dict[str, Any]) -> str:
    convs = _convs(graph, modules)
    if not convs:
        raise LayerNotFoundError("the model has no conv layer for Grad-CAM; pass layer=")
    return convs[-1]

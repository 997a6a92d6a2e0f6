"""``ExplorerSession``: the models and inputs a person explores, and what they reveal.

The session is the model explorer without HTTP: the server's ``/api/explorer`` routes and
scripts call the same methods. Everything heavy (capture, saliency, attacks) runs under one
lock, so two requests never fight over the CPU's cores, and captures are cached per
``(model, input, freeze set)``: selecting an input again, or opening another layer of it,
costs no forward pass.
"""

from __future__ import annotations

import base64
import itertools
import math
import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from convscope.errors import (
    DataError,
    LayerNotFoundError,
    NotFoundError,
    ServerError,
    UnsupportedFormatError,
    UntrustedModelError,
)

if TYPE_CHECKING:
    import torch

    from convscope.models._spec import LoadedModel

__all__ = ["ExplorerInput", "ExplorerLimits", "ExplorerModel", "ExplorerSession", "SAMPLE_SETS"]

#: bundled data sets offered as inputs, by the model input they suit (channels, side)
SAMPLE_SETS: dict[tuple[int, int], tuple[str, ...]] = {
    (1, 28): ("foolbox-mnist", "mnist-5k", "digits", "foolbox-fashion-mnist"),
    (3, 32): ("foolbox-cifar10", "foolbox-cifar100"),
    (3, 224): ("foolbox-imagenet", "photos"),
}
#: the longest side an input image is kept at (bigger uploads are shrunk once, on arrival)
MAX_KEPT_SIDE = 1024
#: occlusion saliency visits at most about this many patch positions along each side
OCCLUSION_STEPS = 16
#: the most pixels the one-pixel attack may change (``th``): ART's own search for the fewest tries 1..127
PIXEL_MAX_TH = 127
#: whole attacks ART's search for the fewest pixels (``th=None``) runs at most: halving 1..127
PIXEL_SEARCH_RUNS = 7


@dataclass(frozen=True)
class ExplorerLimits:
    """What one session accepts.

    Attributes:
        max_models: models held at once.
        max_inputs: inputs held at once (adversarial results count).
        max_model_bytes: the largest model file accepted by upload.
        max_image_bytes: the largest image file accepted by upload.
        max_cached_bytes: captured layer outputs kept for reuse (least recently used go first).
        max_attack_iterations: the most iterations one adversarial attack may run (``max_iter``,
            times ``binary_search_steps`` for C&W): heavy work holds the session's lock, so an
            attack asked for a billion steps would stall every other request.
        max_image_pixels: the most pixels an uploaded image may decode to (a JPEG counts those of
            the reduced scale it is decoded at). Images are shrunk to ``MAX_KEPT_SIDE`` while
            decoding, but PIL holds the whole 8-bit picture once: 4 bytes a pixel at most.
    """

    max_models: int = 8
    max_inputs: int = 200
    max_model_bytes: int = 512 << 20
    max_image_bytes: int = 16 << 20
    max_cached_bytes: int = 768 << 20
    max_attack_iterations: int = 1000
    max_image_pixels: int = 25_000_000


@dataclass
class ExplorerModel:
    """A model in the session and its freeze set (layer -> frozen filter indices)."""

    id: str
    name: str
    loaded: LoadedModel
    origin: str
    freeze: dict[str, list[int]] = field(default_factory=dict)

    def info(self) -> dict[str, Any]:
        m = self.loaded
        return {
            "id": self.id,
            "name": self.name,
            "format": m.format,
            "source": m.source,
            "origin": self.origin,
            "layers": len(m.graph.layers) - 1,
            "params": int(m.graph.total_params),
            "input_spec": m.input_spec.to_dict(),
            "freeze": {k: list(v) for k, v in self.freeze.items()},
            "reference_max_abs_diff": m.reference_max_abs_diff,
        }


@dataclass
class ExplorerInput:
    """An input image: raw pixels in ``[0, 1]``, ``C x H x W`` at its own resolution."""

    id: str
    name: str
    image: torch.Tensor
    kind: str  # sample, upload, sketch, adversarial, tensor
    steps: list[dict[str, Any]] = field(default_factory=list)
    label: int | None = None
    parent: str | None = None
    adversarial: dict[str, Any] | None = None

    def info(self) -> dict[str, Any]:
        c, h, w = (int(v) for v in self.image.shape)
        return {
            "id": self.id,
            "name": self.name,
            "kind": self.kind,
            "shape": [c, h, w],
            "steps": list(self.steps),
            "label": self.label,
            "parent": self.parent,
            "adversarial": self.adversarial,
        }


class ExplorerSession:
    """Models and inputs under exploration, with cached captures.

    Args:
        trust: allow model files that are pickles of whole models (they run code when loaded).
        limits: counts and sizes accepted (:class:`ExplorerLimits`).

    Example:
        >>> s = ExplorerSession()
        >>> m = s.add_model("lenet5-simplified", pretrained=False)
        >>> x = s.add_sample("foolbox-mnist", index=0)
        >>> [layer["layer"] for layer in s.layer_outputs(m.id, x.id, max_size=8)["layers"]][:3]
        ['conv1', 'relu1', 'pool1']
    """

    def __init__(self, *, trust: bool = False, limits: ExplorerLimits | None = None) -> None:
        self.trust = trust
        self.limits = limits or ExplorerLimits()
        self.models: dict[str, ExplorerModel] = {}
        self.inputs: dict[str, ExplorerInput] = {}
        self._ids = itertools.count(1)
        self._lock = threading.RLock()  # one heavy computation at a time: the cores are shared
        self._captures: OrderedDict[tuple[Any, ...], tuple[dict[str, torch.Tensor], torch.Tensor, int]] = OrderedDict()
        self._cached_bytes = 0

    # --- models ---------------------------------------------------------------------------------
    def add_model(
        self,
        source: Any,
        *,
        name: str | None = None,
        architecture: str | None = None,
        input_shape: tuple[int, ...] | None = None,
        pretrained: bool = True,
        origin: str | None = None,
    ) -> ExplorerModel:
        """Add a model: a zoo name, a file path, a ``torch.nn.Module`` or a ``LoadedModel``.

        Files follow :func:`convscope.load_model`'s safety rules with this session's ``trust``.
        """
        from convscope.models import LoadedModel, load_model

        self._check_room("models", len(self.models), self.limits.max_models)
        with self._lock:
            if isinstance(source, LoadedModel):
                loaded = source
            else:
                loaded = load_model(source, architecture=architecture, input_shape=input_shape, trust=self.trust, pretrained=pretrained)
        if name is None:
            name = loaded.name or (Path(source).name if isinstance(source, str | os.PathLike) else type(loaded.module).__name__)
        kind = origin or ("zoo" if loaded.format == "zoo" else "file" if isinstance(source, str | os.PathLike) else "object")
        return self._register_model(loaded, name=name, origin=kind)

    def add_model_bytes(
        self,
        data: bytes,
        *,
        filename: str,
        architecture: str | None = None,
        input_shape: tuple[int, ...] | None = None,
    ) -> ExplorerModel:
        """Add a model from an uploaded file's bytes; ``filename``'s extension says the format."""
        from convscope.models._load import SUPPORTED_EXTENSIONS, _rename_hint

        if len(data) > self.limits.max_model_bytes:
            raise ServerError(
                f"the model file is {len(data):,} bytes, over this session's limit of {self.limits.max_model_bytes:,}; "
                "open big models from the command line instead: convscope open MODEL",
                status_code=413,
            )
        if not data:
            raise ServerError("the uploaded model file is empty", status_code=422)
        base = os.path.basename(filename.replace("\\", "/")) or "model"
        ext = Path(base).suffix.lower()
        if ext not in SUPPORTED_EXTENSIONS:
            raise UnsupportedFormatError(
                f"{base!r} has the extension {ext or '(none)'!r}; the explorer opens {', '.join(SUPPORTED_EXTENSIONS)}"
                f" - {_rename_hint(Path(base), data)}"
            )
        if architecture and ":" in architecture and not self.trust:
            raise UntrustedModelError(
                f"the architecture {architecture!r} names Python code to import; an uploaded state dict may only "
                "name a zoo architecture (start the server with --trust to allow package.module:Class)"
            )
        self._check_room("models", len(self.models), self.limits.max_models)
        with tempfile.TemporaryDirectory(prefix="convscope-upload-") as tmp:
            path = Path(tmp) / _safe_name(base, f"model{ext}")
            path.write_bytes(data)
            model = self.add_model(path, name=base, architecture=architecture, input_shape=input_shape, origin="upload")
        model.loaded.source = f"upload:{base}"
        return model

    def _register_model(self, loaded: LoadedModel, *, name: str, origin: str) -> ExplorerModel:
        with self._lock:
            self._check_room("models", len(self.models), self.limits.max_models)
            model = ExplorerModel(id=f"m{next(self._ids)}", name=name, loaded=loaded, origin=origin)
            self.models[model.id] = model
        return model

    def model(self, model_id: str) -> ExplorerModel:
        try:
            return self.models[model_id]
        except KeyError:
            raise NotFoundError(f"no model {model_id!r} in this session; models are {', '.join(self.models) or 'none yet'}") from None

    def remove_model(self, model_id: str) -> None:
        with self._lock:
            self.model(model_id)
            del self.models[model_id]
            self._forget(lambda key: key[0] == model_id)

    def set_freeze(self, model_id: str, freeze: Mapping[str, Iterable[int]]) -> dict[str, list[int]]:
        """Replace the model's freeze set (``{layer: [filters]}``; empty lists drop a layer)."""
        model = self.model(model_id)
        graph = model.loaded.graph
        hookable = set(self._hookable(model))
        clean: dict[str, list[int]] = {}
        for layer, filters in freeze.items():
            if layer not in hookable:
                raise LayerNotFoundError(f"layer {layer!r} cannot be frozen; freezable layers are {_preview(sorted(hookable))}")
            filters = list(filters)
            odd = [i for i in filters if isinstance(i, bool) or not isinstance(i, int | np.integer)]
            if odd:
                raise DataError(
                    f"filters to freeze are whole numbers; layer {layer!r} got {_preview([repr(i) for i in odd], 5)} "
                    f"({type(odd[0]).__name__})"
                )
            idx = sorted({int(i) for i in filters})
            shape = graph.layer(layer).output_shape
            channels = int(shape[0]) if shape else 0
            bad = [i for i in idx if not 0 <= i < channels]
            if bad:
                shown = _preview([str(i) for i in bad], 10)
                raise DataError(f"layer {layer!r} has {channels} filters (0..{channels - 1}); cannot freeze [{shown}]")
            if idx:
                clean[layer] = idx
        with self._lock:
            model.freeze = clean
        return dict(clean)

    # --- inputs ---------------------------------------------------------------------------------
    def add_input_bytes(self, data: bytes, *, name: str = "upload", kind: str = "upload") -> ExplorerInput:
        """Add an image file's bytes (PNG, JPEG, BMP, GIF, WebP); ``kind="sketch"`` for drawings."""
        from convscope.data import load_image_with_info
        from convscope.data._images import TooManyPixelsError

        if len(data) > self.limits.max_image_bytes:
            raise ServerError(
                f"the image is {len(data):,} bytes, over this session's limit of {self.limits.max_image_bytes:,}", status_code=413
            )
        if kind not in ("upload", "sketch"):
            raise DataError(f"kind must be 'upload' or 'sketch', not {kind!r}")
        if not data:
            raise DataError("the uploaded image file is empty (0 bytes); choose a PNG, JPEG, BMP, GIF or WebP file")
        try:
            # shrunk while decoding: a 7000 x 7000 PNG decoded whole into floats took 1.1 GB (2.2 GB with alpha)
            image, info = load_image_with_info(
                bytes(data), max_side=MAX_KEPT_SIDE, max_pixels=self.limits.max_image_pixels, name=f"image {name!r}"
            )
        except TooManyPixelsError as exc:
            (w, h), decoded = exc.size, exc.decoded
            at = f" (decoded at {decoded[0]}x{decoded[1]})" if decoded != exc.size else ""
            raise ServerError(
                f"the image is {w}x{h}{at} = {exc.pixels:,} pixels, over this session's limit of {exc.limit:,} pixels "
                f"(ExplorerLimits.max_image_pixels); scale it down (it is kept at {MAX_KEPT_SIDE} px on its longest side anyway)",
                status_code=413,
            ) from None
        steps = list(info.get("steps", []))
        if kind == "sketch":
            image = image.mean(dim=0, keepdim=True)
            steps.append({"op": "sketch", "text": "sketch: grey ink on black, framed like MNIST for 28x28 grey models"})
        return self._register_input(ExplorerInput(id="", name=os.path.basename(name) or kind, image=image, kind=kind, steps=steps))

    def add_sample(self, dataset: str, *, index: int = 0) -> ExplorerInput:
        """Add sample ``index`` of a bundled data set (see :func:`convscope.list_datasets`)."""
        from convscope.data import load_dataset

        ds = load_dataset(dataset)
        if not 0 <= index < len(ds):
            raise DataError(f"data set {dataset!r} has {len(ds)} samples (0..{len(ds) - 1}); index {index} is out of range")
        label = int(ds.labels[index])
        names = ds.class_names
        title = ds.sample_names[index] if ds.sample_names else (names[label] if 0 <= label < len(names) else f"#{index}")
        return self._register_input(
            ExplorerInput(
                id="",
                name=f"{dataset}[{index}] {title}",
                image=ds.images[index].clone(),
                kind="sample",
                steps=[{"op": "bundled", "text": f"bundled sample {index} of {dataset}"}],
                label=label if label >= 0 else None,
            )
        )

    def add_image(self, image: torch.Tensor, *, name: str = "tensor", label: int | None = None) -> ExplorerInput:
        """Add a raw ``C x H x W`` image (values in ``[0, 1]``) from a script."""
        if image.dim() == 4 and image.shape[0] == 1:
            image = image[0]
        if image.dim() != 3:
            raise DataError(f"an input image is C x H x W, got shape {tuple(image.shape)}")
        return self._register_input(ExplorerInput(id="", name=name, image=image.detach().float().cpu().clone(), kind="tensor", label=label))

    def default_inputs(self, model_id: str, *, count: int = 4) -> list[ExplorerInput]:
        """Add the first ``count`` samples of a bundled data set that suits the model."""
        sets = self.sample_sets(model_id)
        return [self.add_sample(sets[0], index=i) for i in range(count)] if sets else []

    def sample_sets(self, model_id: str) -> list[str]:
        """Bundled data sets that suit the model's input and whose package is installed here."""
        spec = self.model(model_id).loaded.input_spec
        key = (spec.channels, int(spec.width or 0))
        if key in SAMPLE_SETS:
            sets = list(SAMPLE_SETS[key])
        else:
            sets = ["foolbox-mnist", "mnist-5k"] if spec.channels == 1 else ["foolbox-imagenet", "photos"]
        from convscope.data import list_datasets

        here = {info.name for info in list_datasets() if info.available}
        return [name for name in sets if name in here]

    def _register_input(self, item: ExplorerInput) -> ExplorerInput:
        with self._lock:
            self._check_room("inputs", len(self.inputs), self.limits.max_inputs)
            item.id = f"i{next(self._ids)}"
            self.inputs[item.id] = item
        return item

    def input(self, input_id: str) -> ExplorerInput:
        try:
            return self.inputs[input_id]
        except KeyError:
            raise NotFoundError(f"no input {input_id!r} in this session; inputs are {_preview(list(self.inputs)) or 'none yet'}") from None

    def remove_input(self, input_id: str) -> None:
        with self._lock:
            self.input(input_id)
            del self.inputs[input_id]
            self._forget(lambda key: key[1] == input_id)

    def fitted(self, model_id: str, input_id: str) -> torch.Tensor:
        """The input as the model sees it before normalisation: ``1 x C x H x W`` raw pixels."""
        from convscope.data import fit_to_spec

        model, item = self.model(model_id), self.input(input_id)
        spec = model.loaded.input_spec
        if item.kind == "sketch" and spec.channels == 1 and tuple(spec.shape[-2:]) == (28, 28):
            from convscope.data import mnist_like

            return mnist_like(item.image[0:1].numpy())
        return fit_to_spec(item.image, spec)

    def fit_steps(self, model_id: str, input_id: str) -> list[str]:
        """What is done to the input for this model, for a person to read."""
        model, item = self.model(model_id), self.input(input_id)
        spec = model.loaded.input_spec
        c, h, w = (int(v) for v in item.image.shape)
        steps = [s["text"] for s in item.steps]
        if item.kind == "sketch" and spec.channels == 1 and tuple(spec.shape[-2:]) == (28, 28):
            steps.append("ink cropped, scaled to 20 px and centred by mass in 28x28 (the MNIST recipe)")
        else:
            if c != spec.channels:
                steps.append(f"channels {c} -> {spec.channels}" + (" (BT.601 luma)" if spec.channels == 1 else " (grey repeated)"))
            if (h, w) != (spec.height, spec.width):
                steps.append(f"resized {w}x{h} -> {spec.width}x{spec.height} (bilinear, antialiased)")
        if spec.channel_order == "BGR":
            steps.append("channels reversed, RGB -> BGR (the model's order)")
        if spec.mean is not None and spec.std is not None:
            steps.append(f"normalised (x - mean) / std with mean {_nums(spec.mean)}, std {_nums(spec.std)}")
        return steps

    # --- what a model does with an input -------------------------------------------------------
    def capture(self, model_id: str, input_id: str) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Every observable layer's output and the logits, with the model's freeze set (cached)."""
        from convscope.capture import Recorder

        model = self.model(model_id)
        key = (model_id, input_id, _freeze_key(model.freeze))
        with self._lock:
            hit = self._captures.get(key)
            if hit is not None:
                self._captures.move_to_end(key)
                return hit[0], hit[1]
            x = model.loaded.input_spec.prepare(self.fitted(model_id, input_id))
            result = Recorder(model.loaded, freeze=model.freeze).run(x)
            outputs = {k: v.cpu() for k, v in result.outputs.items()}
            size = sum(v.numel() * v.element_size() for v in outputs.values())
            self._captures[key] = (outputs, result.logits.cpu(), size)
            self._cached_bytes += size
            while self._cached_bytes > self.limits.max_cached_bytes and len(self._captures) > 1:
                _key, (_o, _l, old) = self._captures.popitem(last=False)
                self._cached_bytes -= old
            return outputs, result.logits.cpu()

    def layer_outputs(
        self,
        model_id: str,
        input_id: str,
        *,
        layers: Iterable[str] | None = None,
        max_size: int | None = 32,
        max_maps: int | None = 64,
    ) -> dict[str, Any]:
        """Every layer's output (or ``layers``') as images and statistics, plus the prediction.

        Each layer gives ``shape`` (per sample, channels-first), ``stats`` (min, max, mean, std,
        fraction of zeros) over the whole output, and ``maps``: up to ``max_maps`` maps as
        8-bit images no bigger than ``max_size`` (base64 ``F x H x W`` bytes with each map's
        ``vmin``/``vmax``, the values drawn black and white).
        """
        model = self.model(model_id)
        outputs, logits = self.capture(model_id, input_id)
        order = [lid for lid in self._hookable(model) if lid in outputs]
        if layers is not None:
            wanted = list(layers)
            missing = [lid for lid in wanted if lid not in outputs]
            if missing:
                raise LayerNotFoundError(f"layers {missing} have no output here; observable layers are {_preview(order)}")
            order = wanted
        with self._lock:
            views = [self._layer_view(model, lid, outputs[lid], max_size=max_size, max_maps=max_maps) for lid in order]
        return {"model": model_id, "input": input_id, "layers": views, "prediction": self._prediction(model, logits), "freeze": model.freeze}

    def prediction(self, model_id: str, input_id: str) -> dict[str, Any]:
        _outputs, logits = self.capture(model_id, input_id)
        return self._prediction(self.model(model_id), logits)

    def compare(
        self,
        model_id: str,
        a: str,
        b: str,
        *,
        layers: Iterable[str] | None = None,
        max_size: int | None = 64,
        max_maps: int | None = 64,
    ) -> dict[str, Any]:
        """Compare two inputs layer by layer: divergence of every layer, maps of ``layers``.

        Returns the per-layer L2, cosine and relative change of :func:`convscope.analysis.compare_pair`
        (A is the reference) for every observable layer, where the inputs part ways, both
        predictions, and for each layer in ``layers`` the maps of A, of B and of B - A
        (signed: ``vmax`` is the largest absolute difference, 128 is no difference).
        """
        from convscope.analysis import compare_pair

        model = self.model(model_id)
        out_a, logits_a = self.capture(model_id, a)
        out_b, logits_b = self.capture(model_id, b)
        order = [lid for lid in self._hookable(model) if lid in out_a and lid in out_b]
        chosen = list(layers) if layers is not None else []
        missing = [lid for lid in chosen if lid not in order]
        if missing:
            raise LayerNotFoundError(f"layers {missing} cannot be compared; observable layers are {_preview(order)}")
        with self._lock:
            result = compare_pair(out_a, out_b, layers=order)
            shown = []
            for lid in chosen:
                va = self._layer_view(model, lid, out_a[lid], max_size=max_size, max_maps=max_maps)
                vb = self._layer_view(model, lid, out_b[lid], max_size=max_size, max_maps=max_maps)
                shown.append({"layer": lid, "shape": va["shape"], "a": va["maps"], "b": vb["maps"],
                              "diff": _signed_maps(out_b[lid] - out_a[lid], max_size=max_size, max_maps=max_maps)})
        data = result.to_dict()
        for d in data["layers"]:
            for key in ("filter_l2", "filter_cosine", "filter_relative"):
                d.pop(key, None)
        return {
            "model": model_id,
            "a": a,
            "b": b,
            "diverges_at": data["diverges_at"],
            "threshold": data["threshold"],
            "layers": data["layers"],
            "maps": shown,
            "prediction_a": self._prediction(model, logits_a),
            "prediction_b": self._prediction(model, logits_b),
        }

    def saliency(self, model_id: str, input_id: str, *, method: str = "gradient", target: int | None = None) -> dict[str, Any]:
        """Which input pixels decided the prediction (see :func:`convscope.analysis.saliency`).

        The map is at the model's input resolution, scaled to ``[0, 1]`` and sent as 8-bit.
        The freeze set is not applied: saliency explains the model as it is. Occlusion's patch
        grows with the input, so it takes at most about 16 x 16 forward passes (a 4-pixel patch
        every 2 pixels on 28 x 28 inputs; a fixed one would take 12,000 passes on 224 x 224).
        """
        from convscope.analysis import saliency

        model = self.model(model_id)
        x = self.fitted(model_id, input_id)
        stride = max(2, math.ceil(max(int(x.shape[-2]), int(x.shape[-1])) / OCCLUSION_STEPS))
        with self._lock:
            result = saliency(model.loaded, x, method=method, target=target, window=2 * stride, stride=stride)
        norm = result.normalised[0].clamp(0, 1).numpy()
        h, w = norm.shape
        return {
            "model": model_id,
            "input": input_id,
            "method": method,
            "layer": result.layer,
            "target": int(result.target[0]),
            "target_name": _class_name(model.loaded, int(result.target[0])),
            "width": int(w),
            "height": int(h),
            "data": _b64(np.round(norm * 255).astype(np.uint8)),
            "peak": float(result.maps[0].abs().max()),
        }

    def adversarial(
        self,
        model_id: str,
        input_id: str,
        *,
        attack: str = "pgd",
        params: Mapping[str, Any] | None = None,
        target: int | None = None,
        seed: int = 0,
    ) -> ExplorerInput:
        """Make an adversarial twin of an input for a model; it joins the inputs.

        The new input's ``adversarial`` holds the attack, its parameters, the predictions
        before and after, whether it succeeded and the perturbation's L2 and L-infinity norms
        (pixel units, at the model's input resolution).

        The attack runs on the model as it is, without its freeze set (as saliency explains it):
        the result is a property of the model, not of one experiment on it, and it stays valid
        when the freeze set changes. With filters frozen, ``freeze`` records the set and
        ``with_freeze`` the predictions of the original and the result with it applied (what the
        page's Prediction panel shows), so "1 -> 3" and a frozen model's "5" are both explained.
        """
        from convscope.analysis import perturb

        model, item = self.model(model_id), self.input(input_id)
        self._check_room("inputs", len(self.inputs), self.limits.max_inputs)
        checked = _attack_params(attack, params or {}, max_iterations=self.limits.max_attack_iterations)
        x = self.fitted(model_id, input_id)
        with self._lock:
            freeze = {k: list(v) for k, v in model.freeze.items()}
            result = perturb(model.loaded, x, attack=attack, target=target, seed=seed, **checked)
        before, after = int(result.original_prediction[0]), int(result.adversarial_prediction[0])
        meta = {
            "model": model_id,
            "attack": attack,
            "params": {k: v for k, v in result.params.items()},
            "target": target,
            "original_prediction": before,
            "original_name": _class_name(model.loaded, before),
            "prediction": after,
            "prediction_name": _class_name(model.loaded, after),
            "success": bool(result.success[0]),
            "l2": float(result.l2[0]),
            "linf": float(result.linf[0]),
            "freeze": freeze,
            "with_freeze": None,
        }
        steps = [{"op": "adversarial", "text": f"{attack} on {item.name} for {model.name} ({_params_text(result.params)})"}]
        if freeze:
            import torch

            from convscope.capture import Recorder

            with self._lock:  # both through the frozen model, as the Prediction panel shows them
                both = model.loaded.input_spec.prepare(torch.cat([x, result.adversarial[:1]]))
                logits = Recorder(model.loaded, layers=[], freeze=freeze).run(both).logits
            was, now = self._prediction(model, logits[0:1]), self._prediction(model, logits[1:2])
            meta["with_freeze"] = {"original_prediction": was["predicted"], "original_name": was["predicted_name"],
                                   "prediction": now["predicted"], "prediction_name": now["predicted_name"]}
            steps[0]["text"] += f"; attacked without the model's frozen filters (with them: {was['predicted_name']} -> {now['predicted_name']})"
        return self._register_input(
            ExplorerInput(id="", name=f"{attack}({item.name})", image=result.adversarial[0].clone(), kind="adversarial",
                          steps=steps, label=item.label, parent=input_id, adversarial=meta)
        )

    def input_png(self, input_id: str, *, model_id: str | None = None) -> bytes:
        """The input as a PNG: as stored, or as ``model_id`` sees it (resized, channels fitted)."""
        import io

        from PIL import Image

        x = self.fitted(model_id, input_id)[0] if model_id is not None else self.input(input_id).image
        arr = (x.clamp(0, 1).numpy() * 255).round().astype(np.uint8)
        img = Image.fromarray(arr[0]) if arr.shape[0] == 1 else Image.fromarray(np.ascontiguousarray(arr[:3].transpose(1, 2, 0)))
        buf = io.BytesIO()
        img.save(buf, "PNG")
        return buf.getvalue()

    # --- helpers --------------------------------------------------------------------------------
    def _hookable(self, model: ExplorerModel) -> list[str]:
        from convscope.capture import hook_targets

        return hook_targets(model.loaded)[3]

    def _layer_view(self, model: ExplorerModel, layer_id: str, out: torch.Tensor, *, max_size: int | None, max_maps: int | None) -> dict[str, Any]:
        layer = model.loaded.graph.layer(layer_id) if layer_id in model.loaded.graph else None
        flat = out[0].float()
        n = flat.numel()
        stats = {
            "min": _num(flat.min()) if n else None,
            "max": _num(flat.max()) if n else None,
            "mean": _num(flat.mean()) if n else None,
            "std": _num(flat.std(unbiased=False)) if n else None,
            "zeros": float((flat == 0).float().mean()) if n else 0.0,
        }
        return {
            "layer": layer_id,
            "kind": layer.kind if layer else "",
            "category": layer.category if layer else "",
            "shape": [int(v) for v in out.shape[1:]],
            "stats": stats,
            "frozen": list(model.freeze.get(layer_id, [])),
            "maps": _maps(out, max_size=max_size, max_maps=max_maps),
        }

    def _prediction(self, model: ExplorerModel, logits: torch.Tensor) -> dict[str, Any]:
        import torch

        row = logits[0].float().flatten()
        probs = torch.softmax(row, dim=0)
        top = torch.topk(probs, k=min(10, probs.numel()))
        names = model.loaded.input_spec.class_names
        return {
            "predicted": int(top.indices[0]),
            "predicted_name": _class_name(model.loaded, int(top.indices[0])),
            "classes": int(row.numel()),
            "top": [
                {"index": int(i), "name": names[int(i)] if names and int(i) < len(names) else str(int(i)), "probability": float(p)}
                for p, i in zip(top.values.tolist(), top.indices.tolist(), strict=True)
            ],
        }

    def _forget(self, drop: Any) -> None:
        for key in [k for k in self._captures if drop(k)]:
            self._cached_bytes -= self._captures.pop(key)[2]

    def _check_room(self, what: str, count: int, limit: int) -> None:
        if count >= limit:
            raise ServerError(f"this session already holds {count} {what} (its limit); remove some first", status_code=409)


def _safe_name(name: str, default: str) -> str:
    """An uploaded file's name made safe to write in a fresh folder (no path from the client is used)."""
    return "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in name).lstrip(".") or default


def _attack_params(attack: str, params: Mapping[str, Any], *, max_iterations: int) -> dict[str, Any]:
    """An attack's parameters as numbers of the kind it takes, its iterations bounded.

    Unknown attacks and parameters are left for :func:`convscope.analysis.perturb` to name.
    """
    from convscope.analysis.attacks import list_attacks

    defaults = list_attacks().get(attack, {}).get("defaults", {})
    clean: dict[str, Any] = {}
    for key, value in params.items():
        if key not in defaults:
            clean[key] = value
            continue
        default = defaults[key]
        whole = default is None or (isinstance(default, int) and not isinstance(default, bool))
        if value is None and default is None:
            clean[key] = None
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise DataError(f"{attack}'s {key} must be a number, got {value!r} (default {default!r})")
        if whole and (value != int(value) or value < 0):
            raise DataError(f"{attack}'s {key} must be a whole number >= 0, got {value!r}")
        clean[key] = int(value) if whole else float(value)
    options = {**defaults, **clean}
    if attack == "pixel":
        _pixel_params(options)
    iterations = int(options.get("max_iter") or 1) * max(1, int(options.get("binary_search_steps") or 1))
    what = "max_iter x binary_search_steps" if "binary_search_steps" in options else "max_iter"
    if attack == "pixel" and options.get("th") is None:
        # th=None: ART searches for the fewest pixels, 1..PIXEL_MAX_TH by halving: up to 7 whole attacks
        iterations *= PIXEL_SEARCH_RUNS
        what = f"max_iter x {PIXEL_SEARCH_RUNS} attacks while th=None searches for the fewest pixels"
    if iterations > max_iterations:
        also = "; or set th" if attack == "pixel" and options.get("th") is None else ""
        raise DataError(
            f"{attack} would run {iterations:,} iterations ({what}); this session allows at most {max_iterations:,} "
            f"per attack - lower max_iter{also}"
        )
    return clean


def _pixel_params(options: Mapping[str, Any]) -> None:
    """The one-pixel attack's ``th`` (pixels changed) and ``es`` (evolution strategy), checked.

    ``th`` sets the cost: differential evolution's population grows with ``3 x th`` values per
    candidate and each candidate writes ``th`` pixels, so th=1000 took 14 s on LeNet for 20 steps
    (th=127, the most ART's own search tries, about 4 s).
    """
    th, es = options.get("th"), options.get("es")
    if th is not None and not 1 <= th <= PIXEL_MAX_TH:
        raise DataError(
            f"pixel's th is the number of pixels changed: 1 to {PIXEL_MAX_TH}, got {th!r} "
            "(leave it empty to search for the fewest)"
        )
    if es not in (0, 1):
        raise DataError(f"pixel's es picks the search: 1 for differential evolution, 0 for CMA-ES; got {es!r}")
    if es == 0:
        from convscope._optional import require

        require("cma", feature="the pixel attack's CMA-ES search (es=0)", extra="analysis", pip_hint="pip install cma")


def _units_grid(values: torch.Tensor) -> tuple[torch.Tensor, int, int]:
    """A dense layer's units as one near-square map (row-major; the tail padded with the first value)."""
    import torch

    n = int(values.numel())
    cols = max(1, math.ceil(math.sqrt(n)))
    rows = max(1, math.ceil(n / cols))
    flat = values.flatten().float()
    pad = flat.new_full((rows * cols - n,), float(flat[0]) if n else 0.0)
    return torch.cat([flat, pad]).reshape(rows, cols), rows, cols


def _maps(out: torch.Tensor, *, max_size: int | None, max_maps: int | None) -> dict[str, Any]:
    """A layer's maps as 8-bit images; a dense layer (``N x F``) is one map of all its units."""
    import torch

    from convscope.analysis import feature_images

    if out.dim() == 2:  # dense: one grid of units, shared scale, so units compare by brightness
        grid, rows, cols = _units_grid(out[0])
        lo, hi = float(out[0].min()), float(out[0].max())
        unit = (grid - lo) / (hi - lo) if hi > lo else grid * 0
        return {"count": 1, "total": 1, "width": cols, "height": rows, "units": int(out.shape[1]),
                "data": _b64((unit * 255).round().clamp(0, 255).to(torch.uint8).numpy()),
                "vmin": [_num(lo)], "vmax": [_num(hi)]}
    total = int(out.shape[1]) if out.dim() >= 2 else 1
    x = out if out.dim() >= 2 else out.reshape(1, -1)
    if x.dim() > 4:
        x = x.flatten(3)
    shown = total if max_maps is None else min(total, max_maps)
    im = feature_images(x[:1, :shown].float(), max_size=max_size)
    f, h, w = (int(v) for v in im.images.shape)
    return {
        "count": f,
        "total": total,
        "width": w,
        "height": h,
        "data": _b64(im.images.cpu().numpy()),
        "vmin": [_num(v) for v in im.vmin.tolist()],
        "vmax": [_num(v) for v in im.vmax.tolist()],
    }


def _signed_maps(diff: torch.Tensor, *, max_size: int | None, max_maps: int | None) -> dict[str, Any]:
    import torch

    x = diff[:1].float()
    if x.dim() == 2:  # dense: one grid of units with one shared scale, as in _maps
        _grid, rows, cols = _units_grid(x[0])
        peak = float(x.abs().max())
        flat = torch.zeros(rows * cols)
        flat[: x.shape[1]] = x[0] / peak if peak > 0 else 0.0
        images = ((flat.reshape(rows, cols) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
        return {"count": 1, "total": 1, "width": cols, "height": rows, "units": int(x.shape[1]), "data": _b64(images.numpy()),
                "vmin": [-_num(peak)], "vmax": [_num(peak)]}
    if x.dim() == 3:
        x = x[:, :, None, :]
    total = int(x.shape[1])
    x = x[:, : total if max_maps is None else min(total, max_maps)]
    peaks = x.abs().amax(dim=(2, 3), keepdim=True)  # (one a map; the dense branch's peak is a float)
    unit = torch.where(peaks > 0, x / peaks.clamp(min=1e-30), torch.zeros_like(x))
    h, w = x.shape[-2:]
    if max_size is not None and max(h, w) > max_size:
        size = (max(1, -(-h * max_size // max(h, w))), max(1, -(-w * max_size // max(h, w))))
        unit = torch.nn.functional.adaptive_avg_pool2d(unit, size)
    images = ((unit[0] + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    f, ih, iw = (int(v) for v in images.shape)
    p = peaks.flatten().tolist()
    return {"count": f, "total": total, "width": iw, "height": ih, "data": _b64(images.numpy()),
            "vmin": [-_num(v) for v in p], "vmax": [_num(v) for v in p]}


def _freeze_key(freeze: Mapping[str, list[int]]) -> tuple[tuple[str, tuple[int, ...]], ...]:
    return tuple(sorted((k, tuple(v)) for k, v in freeze.items() if v))


def _b64(arr: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(arr, dtype=np.uint8).tobytes()).decode("ascii")


def _num(v: Any) -> float:
    f = float(v)
    return f if math.isfinite(f) else 0.0


def _nums(values: Iterable[float]) -> str:
    return "(" + ", ".join(f"{v:.4g}" for v in values) + ")"


def _params_text(params: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items() if v is not None)


def _class_name(model: LoadedModel, index: int) -> str:
    names = model.input_spec.class_names
    return names[index] if names and 0 <= index < len(names) else str(index)


def _preview(names: list[str], limit: int = 12) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")

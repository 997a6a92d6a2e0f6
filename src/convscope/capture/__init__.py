"""Hooks into a model: intermediate outputs, gradients and freeze masks, always removed.

The recorder only observes and masks; it never analyses or writes anything.

Example:
    >>> import torch, convscope
    >>> m = convscope.load_model("lenet5-simplified", pretrained=False)
    >>> x = torch.zeros(2, 1, 28, 28)
    >>> r = convscope.capture(m, x, layers=["conv1", "fc2"], freeze={"conv1": [0, 3]})
    >>> tuple(r.outputs["conv1"].shape), float(r.outputs["conv1"][:, 0].abs().sum())
    ((2, 16, 26, 26), 0.0)
"""

from __future__ import annotations

import contextlib
import numbers
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from convscope._outputs import first_tensor
from convscope.errors import DataError, LayerNotFoundError
from convscope.models._graph import call_id, module_name_of

if TYPE_CHECKING:
    import torch

    from convscope.models._spec import LoadedModel

__all__ = ["CaptureResult", "Recorder", "capture", "hook_targets"]


@dataclass
class CaptureResult:
    """What one batch revealed.

    Attributes:
        outputs: layer id -> output tensor (detached, channels-first, on the model's device).
        logits: the model's output for the batch.
        input_grad: gradient of the chosen logits with respect to the input, if asked.
        param_grads: parameter name -> gradient, if asked.
        targets: the class indices whose logits were differentiated, if gradients were asked.
    """

    outputs: dict[str, torch.Tensor]
    logits: torch.Tensor
    input_grad: torch.Tensor | None = None
    param_grads: dict[str, torch.Tensor] | None = None
    targets: torch.Tensor | None = None
    frozen: dict[str, list[int]] = field(default_factory=dict)


def hook_targets(model: LoadedModel | torch.nn.Module) -> tuple[torch.nn.Module, dict[str, torch.nn.Module], dict[str, str], list[str]]:
    """The module to run, hookable layers by id, their layouts, and the default layer list."""
    import torch

    from convscope.models._spec import LoadedModel

    if isinstance(model, LoadedModel):
        ids = [lid for lid in model.graph.layer_ids(hookable=True) if module_name_of(lid) in model.layer_modules]
        hookable = {module_name_of(lid): model.layer_modules[module_name_of(lid)] for lid in ids}
        return model.module, hookable, dict(model.layer_layouts), ids
    if isinstance(model, torch.nn.Module):
        named = {name: m for name, m in model.named_modules() if name}
        leaves = [name for name, m in named.items() if next(iter(m.children()), None) is None]
        return model, named, {}, leaves
    raise DataError(f"expected a torch.nn.Module or a convscope LoadedModel, got {type(model).__name__}")


class Recorder:
    """Record layer outputs (and optionally gradients) for batches, with freeze masks.

    Hooks live only while :meth:`run` executes and are removed in a ``finally``, even when
    the model raises; train/eval mode, ``requires_grad`` flags and existing ``.grad``
    values of the model are restored.

    Args:
        model: a :class:`~convscope.LoadedModel` or a plain ``torch.nn.Module``.
        layers: layer ids to record (one id alone is one layer); default every hookable leaf layer.
        freeze: ``{layer: [filter indices]}``; those output channels are zeroed, so every
            later layer sees the change (the NeuralVis mutation).
        eval_mode: run in eval mode (default), restoring the previous mode afterwards.
    """

    def __init__(
        self,
        model: LoadedModel | torch.nn.Module,
        *,
        layers: str | Sequence[str] | None = None,
        freeze: Mapping[str, Iterable[int]] | None = None,
        eval_mode: bool = True,
    ) -> None:
        self.module, self._hookable, self._layouts, default = hook_targets(model)
        self.layers = list(default if layers is None else [layers] if isinstance(layers, str) else layers)  # (one id alone)
        self.freeze = _freeze_masks(freeze)
        self.eval_mode = eval_mode
        for name in [*self.layers, *self.freeze]:
            if module_name_of(name) not in self._hookable:
                raise LayerNotFoundError(
                    f"layer {name!r} not found or not observable; the model has "
                    f"{_preview(list(self._hookable))} - pass one of these to layers= or freeze="
                )

    def run(
        self,
        inputs: torch.Tensor,
        *,
        input_grad: bool = False,
        param_grads: bool = False,
        target: int | Sequence[int] | torch.Tensor | None = None,
    ) -> CaptureResult:
        """Run one batch (already prepared for the model) and return what was recorded.

        Args:
            inputs: the batch, as the module takes it.
            input_grad: also return d(logit[target]) / d(input).
            param_grads: also return d(logit[target]) / d(parameter) for every parameter.
            target: class index (or one per sample) whose logit is differentiated;
                default the predicted class.
        """
        import torch

        if not isinstance(inputs, torch.Tensor):
            raise DataError(f"inputs are one batch as a torch.Tensor (N x ...), as the model takes it; got {type(inputs).__name__}")
        static = getattr(self.module, "static_batch", None)
        if static is not None and inputs.shape[0] != static:
            return self._run_chunked(inputs, static, input_grad=input_grad, param_grads=param_grads, target=target)
        want_grad = input_grad or param_grads
        outputs: dict[str, torch.Tensor] = {}
        module = self.module
        was_training = module.training
        params = list(module.named_parameters())
        saved_flags = [p.requires_grad for _, p in params]
        saved_grads = [p.grad for _, p in params]
        calls: dict[str, int] = {}
        with contextlib.ExitStack() as stack:
            for base in dict.fromkeys(module_name_of(n) for n in [*self.layers, *self.freeze]):
                handle = self._hookable[base].register_forward_hook(self._make_hook(base, outputs, calls))
                stack.callback(handle.remove)
            try:
                if self.eval_mode:
                    module.eval()
                x = inputs
                if want_grad:
                    x = inputs.detach().clone().requires_grad_(input_grad)
                    for _, p in params:
                        p.requires_grad_(param_grads)
                        p.grad = None
                    logits = first_tensor(module(x))
                    targets = _targets(logits, target)
                    selected = logits.gather(1, targets.view(-1, 1)).sum()
                    wrt = ([x] if input_grad else []) + ([p for _, p in params] if param_grads else [])
                    grads = torch.autograd.grad(selected, wrt, allow_unused=True)
                    in_grad = grads[0].detach() if input_grad else None
                    p_grads = None
                    if param_grads:
                        offset = 1 if input_grad else 0
                        p_grads = {
                            name: (g.detach() if g is not None else torch.zeros_like(p))
                            for (name, p), g in zip(params, grads[offset:], strict=True)
                        }
                    return CaptureResult(
                        outputs=outputs,
                        logits=logits.detach(),
                        input_grad=in_grad,
                        param_grads=p_grads,
                        targets=targets,
                        frozen=dict(self.freeze),
                    )
                with torch.no_grad():
                    logits = first_tensor(module(x))
                return CaptureResult(outputs=outputs, logits=logits.detach(), frozen=dict(self.freeze))
            finally:
                module.train(was_training)
                for (_, p), flag, grad in zip(params, saved_flags, saved_grads, strict=True):
                    p.requires_grad_(flag)
                    p.grad = grad

    def _run_chunked(
        self,
        inputs: torch.Tensor,
        size: int,
        *,
        input_grad: bool,
        param_grads: bool,
        target: int | Sequence[int] | torch.Tensor | None,
    ) -> CaptureResult:
        """Programs exported for a fixed batch size run in padded chunks of that size."""
        import torch

        parts: list[CaptureResult] = []
        per_sample = None if target is None else torch.as_tensor(target).flatten()
        for start in range(0, inputs.shape[0], size):
            part = inputs[start : start + size]
            n = part.shape[0]
            if n < size:
                part = torch.cat([part, part.new_zeros((size - n, *part.shape[1:]))])
            t = None
            if per_sample is not None:
                t = per_sample if per_sample.numel() == 1 else torch.cat([per_sample[start : start + n], per_sample.new_zeros(size - n)])
            r = self.run(part, input_grad=input_grad, param_grads=param_grads, target=t)
            parts.append(
                CaptureResult(
                    outputs={k: v[:n] for k, v in r.outputs.items()},
                    logits=r.logits[:n],
                    input_grad=None if r.input_grad is None else r.input_grad[:n],
                    param_grads=r.param_grads,
                    targets=None if r.targets is None else r.targets[:n],
                )
            )
        first = parts[0]
        grads = None
        if param_grads:
            grads = {k: sum(p.param_grads[k] for p in parts if p.param_grads) for k in first.param_grads or {}}
        return CaptureResult(
            outputs={k: torch.cat([p.outputs[k] for p in parts]) for k in first.outputs},
            logits=torch.cat([p.logits for p in parts]),
            input_grad=None if first.input_grad is None else torch.cat([p.input_grad for p in parts if p.input_grad is not None]),
            param_grads=grads,  # type: ignore[arg-type]
            targets=None if first.targets is None else torch.cat([p.targets for p in parts if p.targets is not None]),
            frozen=dict(self.freeze),
        )

    def _make_hook(self, base: str, outputs: dict[str, torch.Tensor], calls: dict[str, int]) -> Any:
        import torch

        channels_last = self._layouts.get(base) == "NHWC"
        wanted = set(self.layers)

        def hook(_module: torch.nn.Module, _args: Any, out: Any) -> Any:
            # One module may run several times per forward (a shared ReLU): call k is layer "name#k".
            calls[base] = calls.get(base, 0) + 1
            name = call_id(base, calls[base])
            frozen = self.freeze.get(name)
            record = name in wanted
            if not frozen and not record:
                return None
            tensor = first_tensor(out)
            replaced = None
            if frozen:
                if channels_last:
                    dim = tensor.dim() - 1
                else:
                    dim = 1
                _check_channels(name, frozen, tensor.shape[dim] if tensor.dim() > dim else 0)
                mask = torch.ones(tensor.shape[dim], dtype=tensor.dtype, device=tensor.device)
                mask[frozen] = 0
                view = [1] * tensor.dim()
                view[dim] = -1
                tensor = tensor * mask.view(view)
                replaced = _replace_first(out, tensor)
            if record:
                value = tensor.detach()
                if channels_last and value.dim() >= 3:
                    value = value.movedim(-1, 1)
                outputs[name] = value
            return replaced

        return hook


def _freeze_masks(freeze: Mapping[str, Iterable[int]] | None) -> dict[str, list[int]]:
    """``{layer: filter indices}`` sorted and without repeats, with a clear error for anything else."""
    if freeze is None:
        return {}
    if not isinstance(freeze, Mapping):
        raise DataError(f"freeze= is {{layer id: [filter indices]}} (e.g. {{'conv1': [0, 3]}}), got {type(freeze).__name__}")
    out = {}
    for layer, filters in freeze.items():
        given: Any = filters
        if isinstance(given, numbers.Integral) and not isinstance(given, bool):  # one filter
            given = [given]
        iterable = isinstance(given, Iterable) and not isinstance(given, str | bytes)
        indices = list(given) if iterable else []
        if not iterable or not all(isinstance(i, numbers.Integral) and not isinstance(i, bool) for i in indices):
            raise DataError(f"freeze[{layer!r}] is a list of filter indices (ints), got {filters!r}")
        out[layer] = sorted({int(i) for i in indices})
    return out


def capture(
    model: LoadedModel | torch.nn.Module,
    inputs: torch.Tensor,
    *,
    layers: str | Sequence[str] | None = None,
    freeze: Mapping[str, Iterable[int]] | None = None,
    input_grad: bool = False,
    param_grads: bool = False,
    target: int | Sequence[int] | torch.Tensor | None = None,
) -> CaptureResult:
    """Record chosen layers' outputs for one batch; see :class:`Recorder`."""
    return Recorder(model, layers=layers, freeze=freeze).run(
        inputs, input_grad=input_grad, param_grads=param_grads, target=target
    )


def _replace_first(out: Any, tensor: torch.Tensor) -> Any:
    import torch

    if isinstance(out, torch.Tensor):
        return tensor
    if isinstance(out, list | tuple):
        items = list(out)
        for i, item in enumerate(items):
            if isinstance(item, torch.Tensor):
                items[i] = tensor
                break
        return type(out)(items) if isinstance(out, tuple) else items
    return out


def _targets(logits: torch.Tensor, target: int | Sequence[int] | torch.Tensor | None) -> torch.Tensor:
    import torch

    n = logits.shape[0]
    if target is None:
        return logits.argmax(dim=1)
    t = torch.as_tensor(target, dtype=torch.long, device=logits.device).flatten()
    if t.numel() == 1:
        t = t.expand(n)
    if t.numel() != n or int(t.min()) < 0 or int(t.max()) >= logits.shape[1]:
        raise DataError(f"target must be one class index in [0, {logits.shape[1]}) or one per sample ({n}); got {target!r}")
    return t


def _check_channels(name: str, idx: list[int], channels: int) -> None:
    bad = [i for i in idx if i < 0 or i >= channels]
    if bad:
        raise DataError(f"cannot freeze filters {bad} of layer {name!r}: it has {channels} output channels (0..{channels - 1})")


def _preview(names: list[str], limit: int = 12) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")

"""Adversarial inputs behind one interface, from the Adversarial Robustness Toolbox (ART).

:func:`perturb` works in raw pixel space: inputs are images in the model's
``InputSpec.value_range`` (``[0, 1]`` for the bundled models) and the model's normalisation is
part of the wrapped classifier, so ``eps`` is measured in pixel units and results stay valid
images. Every result carries the adversarial input, the predictions before and after (the
model's real predictions on the returned images), success per sample and the perturbation's
L2 and L-infinity norms.

| attack | ART class | parameters (defaults) | targeted |
|---|---|---|---|
| ``fgsm`` | FastGradientMethod | ``eps=0.1`` | yes |
| ``pgd`` | ProjectedGradientDescent (L-inf) | ``eps=0.3, eps_step=0.01, max_iter=40`` | yes |
| ``deepfool`` | DeepFool | ``max_iter=50, epsilon=1e-6`` (overshoot) | no |
| ``cw`` | CarliniL2Method | ``confidence=0, max_iter=20, learning_rate=0.1, binary_search_steps=5, initial_const=1`` | yes |
| ``pixel`` | PixelAttack (few-pixel, differential evolution) | ``th=None, es=1, max_iter=20`` | yes |
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from convscope._optional import require
from convscope.errors import DataError

if TYPE_CHECKING:
    import torch

__all__ = ["ATTACKS", "AdversarialResult", "list_attacks", "perturb"]

ATTACKS: dict[str, dict[str, Any]] = {
    "fgsm": {"class": "FastGradientMethod", "defaults": {"eps": 0.1}, "targeted": True,
             "about": "one signed-gradient step of size eps (Goodfellow et al.)",
             "params": {"eps": "the step: how far every pixel moves (pixel units)"}},
    "pgd": {"class": "ProjectedGradientDescent", "defaults": {"eps": 0.3, "eps_step": 0.01, "max_iter": 40}, "targeted": True,
            "about": "iterated FGSM projected on the eps-ball (Madry et al.)",
            "params": {"eps": "the most any pixel may change (pixel units)", "eps_step": "the size of each step (pixel units)",
                       "max_iter": "the most steps"}},
    "deepfool": {"class": "DeepFool", "defaults": {"max_iter": 50, "epsilon": 1e-6}, "targeted": False,
                 "about": "smallest step to the nearest decision boundary, linearised (Moosavi-Dezfooli et al.)",
                 "params": {"max_iter": "the most steps", "epsilon": "overshoot: how far past the boundary each step goes (a fraction)"}},
    "cw": {"class": "CarliniL2Method", "defaults": {"confidence": 0.0, "max_iter": 20, "learning_rate": 0.1, "binary_search_steps": 5,
                                                   "initial_const": 1.0},
           "targeted": True, "about": "optimisation-based minimal L2 attack (Carlini and Wagner)",
           "params": {"confidence": "the margin by which the wrong class must win", "max_iter": "the most optimiser steps per search step",
                      "learning_rate": "the optimiser's step size", "binary_search_steps": "the steps of the search for the constant c",
                      "initial_const": "c at first: the weight of winning against the change's size"}},
    "pixel": {"class": "PixelAttack", "defaults": {"th": None, "es": 1, "max_iter": 20}, "targeted": True,
              "about": "changes a few pixels found by differential evolution (Su et al.)",
              "params": {"th": "how many pixels to change (empty: search for the fewest)",
                         "es": "the search: 1 differential evolution, 0 CMA-ES", "max_iter": "the most generations of the search"}},
}


@dataclass
class AdversarialResult:
    """What :func:`perturb` made.

    Attributes:
        adversarial: ``N x C x H x W`` raw images (same value range as the inputs).
        original_prediction, adversarial_prediction: class indices, ``int64[N]``.
        success: ``bool[N]``: untargeted, the prediction changed; targeted, it is the target.
        l2, linf: the perturbation's norms per sample (pixel units).
        attack, params, target: what was run.
    """

    adversarial: torch.Tensor
    original_prediction: np.ndarray
    adversarial_prediction: np.ndarray
    success: np.ndarray
    l2: np.ndarray
    linf: np.ndarray
    attack: str
    params: dict[str, Any] = field(default_factory=dict)
    target: np.ndarray | None = None

    @property
    def success_rate(self) -> float:
        return float(self.success.mean()) if self.success.size else 0.0


def list_attacks() -> dict[str, dict[str, Any]]:
    """Every attack with its parameters' defaults (``defaults``) and what each does (``params``),
    whether it can be targeted (``targeted``), and what it does (``about``)."""
    return {name: {k: v for k, v in spec.items() if k != "class"} for name, spec in ATTACKS.items()}


def perturb(
    model: Any,
    inputs: torch.Tensor,
    *,
    attack: str = "pgd",
    target: int | list[int] | np.ndarray | torch.Tensor | None = None,
    seed: int = 0,
    **params: Any,
) -> AdversarialResult:
    """Make adversarial versions of ``inputs`` (raw images) for ``model``.

    Args:
        model: a :class:`convscope.LoadedModel` (its ``input_spec`` gives the value range and
            normalisation) or a bare module taking raw ``[0, 1]`` images.
        inputs: ``N x C x H x W`` raw images.
        attack: one of :data:`ATTACKS`.
        target: ``None`` for untargeted, else a class (or one per sample) to reach.
        seed: seeds the attacks that draw random numbers.
        params: the attack's parameters (see :func:`list_attacks`).

    Example:
        >>> import convscope
        >>> m = convscope.load_model("lenet5-simplified")
        >>> x = convscope.load_dataset("mnist-5k", split="test").images[:4]
        >>> r = perturb(m, x, attack="fgsm", eps=0.3)
        >>> bool(r.linf.max() <= 0.3 + 1e-6)
        True
    """
    import torch

    require("art", feature="adversarial inputs", extra="analysis", pip_hint='pip install "convscope[analysis]"')
    from art.attacks import evasion
    from art.estimators.classification import PyTorchClassifier

    if attack not in ATTACKS:
        raise DataError(f"unknown attack {attack!r}; choose one of {', '.join(ATTACKS)}")
    spec = ATTACKS[attack]
    unknown = set(params) - set(spec["defaults"])
    if unknown:
        raise DataError(f"{attack} has no parameters {sorted(unknown)}; its parameters are {sorted(spec['defaults'])}")
    if target is not None and not spec["targeted"]:
        raise DataError(f"{attack} cannot aim at a target class; use fgsm, pgd, cw or pixel for targeted attacks")
    module, lo, hi, mean, std = _unpack(model)
    x = inputs.detach().to(torch.float32).cpu()
    if x.dim() != 4:
        raise DataError(f"inputs must be N x C x H x W raw images, got shape {tuple(x.shape)}")
    if float(x.min()) < lo - 1e-6 or float(x.max()) > hi + 1e-6:
        raise DataError(f"inputs must be raw images in [{lo}, {hi}] (not normalised); got values in [{float(x.min()):.3g}, {float(x.max()):.3g}]")
    options = {**spec["defaults"], **params}
    for key in ("eps", "eps_step"):
        if key in options and not 0 < float(options[key]) <= hi - lo:
            raise DataError(f"{key} must be in (0, {hi - lo}] (pixel units), got {options[key]}")
    with torch.no_grad():
        logits = module(_normalise(x, mean, std))
    classes = int(logits.shape[1])
    original = logits.argmax(1).numpy()
    preprocessing = (np.asarray(mean, np.float32).reshape(-1, 1, 1), np.asarray(std, np.float32).reshape(-1, 1, 1)) if mean is not None else (0.0, 1.0)
    classifier = PyTorchClassifier(
        model=module, loss=torch.nn.CrossEntropyLoss(), input_shape=tuple(x.shape[1:]), nb_classes=classes,
        clip_values=(float(lo), float(hi)), preprocessing=preprocessing, device_type="cpu",
    )
    kwargs = {k: v for k, v in options.items() if v is not None or k != "th"}
    if attack == "cw":
        kwargs["verbose"] = False
    if attack in ("pgd", "cw", "deepfool", "pixel"):
        kwargs.setdefault("verbose", False)
    if attack == "fgsm":
        kwargs.pop("verbose", None)
    kwargs["targeted"] = target is not None
    if attack == "deepfool":
        kwargs.pop("targeted")
    maker = getattr(evasion, spec["class"])
    np.random.seed(seed)
    torch.manual_seed(seed)
    art_attack = maker(classifier, **kwargs)
    y = None
    targets = None
    if target is not None:
        targets = np.broadcast_to(np.asarray(target, dtype=np.int64).reshape(-1), (x.shape[0],)).copy()
        if (targets < 0).any() or (targets >= classes).any():
            raise DataError(f"target classes must be in [0, {classes}), got {sorted(set(targets.tolist()))}")
        y = np.eye(classes, dtype=np.float32)[targets]
    adv = art_attack.generate(x=x.numpy(), y=y)
    adv_t = torch.from_numpy(np.asarray(adv, dtype=np.float32)).clamp(lo, hi)
    with torch.no_grad():
        after = module(_normalise(adv_t, mean, std)).argmax(1).numpy()
    delta = (adv_t - x).reshape(x.shape[0], -1)
    success = after == targets if targets is not None else after != original
    return AdversarialResult(
        adversarial=adv_t,
        original_prediction=original,
        adversarial_prediction=after,
        success=np.asarray(success, dtype=bool),
        l2=delta.norm(dim=1).numpy(),
        linf=delta.abs().amax(dim=1).numpy(),
        attack=attack,
        params=options,
        target=targets,
    )


def _unpack(model: Any) -> tuple[torch.nn.Module, float, float, Any, Any]:
    """The module (returning one logits tensor: a model of several outputs, its first), its
    input range, and the normalisation its inputs take."""
    from convscope._outputs import first_output
    from convscope.models._spec import LoadedModel

    if isinstance(model, LoadedModel):
        spec = model.input_spec
        lo, hi = spec.value_range
        module, mean, std = first_output(model.module.eval()), spec.mean, spec.std
        if spec.channel_order == "BGR":
            # the attacks normalise RGB images themselves: the model's own (BGR) statistics in
            # RGB order, and the channels reversed inside the module, as spec.prepare feeds it
            module = _bgr_input(module)
            mean, std = (None if v is None else tuple(reversed(v)) for v in (spec.mean, spec.std))
        return module, float(lo), float(hi), mean, std
    return first_output(model.eval()), 0.0, 1.0, None, None


def _bgr_input(module: torch.nn.Module) -> torch.nn.Module:
    """``module`` (fed BGR images) taking RGB ones: the channels reversed on the way in."""
    import torch

    class BgrInput(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = module

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.inner(x.flip(1))

    return BgrInput()


def _normalise(x: torch.Tensor, mean: Any, std: Any) -> torch.Tensor:
    import torch

    if mean is None:
        return x
    shape = (1, -1, 1, 1)
    return (x - torch.tensor(mean).view(shape)) / torch.tensor(std).view(shape)

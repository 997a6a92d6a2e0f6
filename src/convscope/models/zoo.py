"""The bundled model zoo: small, hand-checkable CNNs and the classic ones the papers used.

Models register by decorator and are listed by :func:`list_models`; a name clash is an
error. Trained weights for the MNIST models come from :func:`train_zoo_model` on the
bundled MNIST digits and are cached (``~/.cache/convscope`` or ``$CONVSCOPE_CACHE``);
nothing is downloaded. VGG-16 takes weights from a file you already have (torchvision's
``vgg16-*.pth`` layout matches) through ``load_model(path, architecture="vgg16")``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from convscope._progress import progress_ticks
from convscope.errors import RegistryError, UnknownModelError
from convscope.models._spec import InputSpec

if TYPE_CHECKING:
    import torch

    from convscope.models._spec import LoadedModel

__all__ = [
    "ZooEntry",
    "cache_dir",
    "create_model",
    "list_models",
    "load_zoo_model",
    "register_model",
    "train_zoo_model",
    "weights_path",
]

MNIST_SPEC = InputSpec(
    shape=(1, 28, 28),
    channel_order="L",
    mean=(0.1307,),
    std=(0.3081,),
    class_names=tuple(str(i) for i in range(10)),
)
CIFAR_SPEC = InputSpec(
    shape=(3, 32, 32),
    channel_order="RGB",
    mean=(0.4914, 0.4822, 0.4465),
    std=(0.2470, 0.2435, 0.2616),
    class_names=("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
)
IMAGENET_SPEC = InputSpec(
    shape=(3, 224, 224), channel_order="RGB", mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)
)


@dataclass(frozen=True)
class ZooEntry:
    name: str
    description: str
    input_spec: InputSpec
    factory: Callable[[], torch.nn.Module]
    train_data: str | None  # bundled data set its weights are trained on, if any
    weights_version: int = 1


_ZOO: dict[str, ZooEntry] = {}


def register_model(
    name: str, *, description: str, input_spec: InputSpec, train_data: str | None = None
) -> Callable[[Callable[[], torch.nn.Module]], Callable[[], torch.nn.Module]]:
    """Register a model factory under ``name`` (a clash raises :class:`RegistryError`)."""

    def decorate(fn: Callable[[], torch.nn.Module]) -> Callable[[], torch.nn.Module]:
        if name in _ZOO:
            raise RegistryError(
                f"zoo model {name!r} is registered twice ({_ZOO[name].factory.__qualname__} and {fn.__qualname__})"
            )
        _ZOO[name] = ZooEntry(name, description, input_spec, fn, train_data)
        return fn

    return decorate


def list_models() -> list[ZooEntry]:
    """Every bundled model, by name."""
    return [_ZOO[k] for k in sorted(_ZOO)]


def _entry(name: str) -> ZooEntry:
    try:
        return _ZOO[name]
    except KeyError:
        raise UnknownModelError(
            f"zoo model {name!r} does not exist; choose one of {', '.join(sorted(_ZOO))} (see `convscope zoo`)"
        ) from None


def create_model(name: str) -> torch.nn.Module:
    """A freshly initialised (untrained) zoo model.

    Example:
        >>> net = create_model("lenet5-simplified")
        >>> net.conv1.out_channels, net.conv2.out_channels, net.fc1.out_features
        (16, 32, 512)
    """
    return _entry(name).factory()


def cache_dir() -> Path:
    """Where trained zoo weights are cached: ``$CONVSCOPE_CACHE`` or ``~/.cache/convscope``."""
    root = os.environ.get("CONVSCOPE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "convscope")
    return Path(root) / "zoo"


def weights_path(name: str) -> Path:
    entry = _entry(name)
    return cache_dir() / f"{name}-v{entry.weights_version}.safetensors"


def train_zoo_model(
    name: str,
    *,
    epochs: int = 8,
    seed: int = 0,
    batch_size: int = 64,
    lr: float = 1e-3,
    out: str | os.PathLike[str] | None = None,
    progress: bool = False,
) -> dict[str, float]:
    """Train a zoo model on its bundled data set and save the weights (safetensors).

    This is the documented way the zoo's trained weights are made: deterministic for a
    seed, on CPU in well under a minute for the LeNet-5 variants. The CLI runs it as
    ``convscope zoo train NAME``.

    Returns:
        ``{"train_accuracy": ..., "test_accuracy": ..., "seconds": ...}``
    """
    import time

    import torch
    from safetensors.torch import save_file

    from convscope.data import load_dataset

    entry = _entry(name)
    if entry.train_data is None:
        raise UnknownModelError(
            f"zoo model {name!r} has no bundled training data; load trained weights from your own file "
            f'with convscope.load_model(PATH, architecture="{name}")'
        )
    torch.manual_seed(seed)
    train = load_dataset(entry.train_data, split="train", spec=entry.input_spec, seed=seed)
    test = load_dataset(entry.train_data, split="test", spec=entry.input_spec, seed=seed)
    model = entry.factory()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    steps = epochs * ((len(train) + batch_size - 1) // batch_size)
    model.train()
    done = 0
    with progress_ticks(progress, steps, f"training {name}", unit="steps") as tick:
        for _ in range(epochs):
            order = torch.randperm(len(train), generator=gen)
            for i in range(0, len(train), batch_size):
                idx = order[i : i + batch_size]
                loss = torch.nn.functional.cross_entropy(model(train.images[idx]), train.labels[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                done += 1
                tick(done)
    model.eval()
    with torch.no_grad():
        train_acc = float((model(train.images).argmax(1) == train.labels).float().mean())
        test_acc = float((model(test.images).argmax(1) == test.labels).float().mean())
    target = Path(out) if out is not None else weights_path(name)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp))
    os.replace(tmp, target)  # atomic: a crash never leaves half a weights file in the cache
    return {"train_accuracy": train_acc, "test_accuracy": test_acc, "seconds": time.perf_counter() - start}


def load_zoo_model(name: str, *, pretrained: bool = True, progress: bool = False) -> LoadedModel:
    """A zoo model in canonical form; trained weights are made and cached on first use.

    Models without bundled training data (VGG-12, VGG-16) come back freshly initialised
    with ``pretrained=True`` only if you pass their weights through ``load_model``.
    """
    import torch
    from safetensors.torch import load_file

    from convscope.models._graph import build_graph
    from convscope.models._spec import LoadedModel

    entry = _entry(name)
    model = entry.factory()
    source = f"zoo:{name} (untrained)"
    if pretrained and entry.train_data is not None:
        path = weights_path(name)
        if not path.exists():
            train_zoo_model(name, progress=progress)
        model.load_state_dict(load_file(str(path)))
        source = f"zoo:{name} (trained on {entry.train_data})"
    model.eval()
    with torch.no_grad():
        graph = build_graph(model, input_shape=entry.input_spec.shape)
    return LoadedModel(
        module=model,
        graph=graph,
        input_spec=entry.input_spec,
        format="zoo",
        source=source,
        layer_modules=dict(model.named_modules()),
        name=name,
    )


# ---------------------------------------------------------------------------------------
# Architectures
# ---------------------------------------------------------------------------------------


class _Net:
    """Namespace for the zoo's module classes, built lazily so importing stays light."""

    _classes: dict[str, type] = {}

    @classmethod
    def get(cls, name: str) -> type:
        if not cls._classes:
            cls._classes = _define_classes()
        return cls._classes[name]


def _define_classes() -> dict[str, type]:
    import torch.nn as nn

    class SimplifiedLeNet5(nn.Module):
        """The simplified LeNet-5 of the in situ TensorView paper.

        Two conv layers of 16 and 32 filters of 3x3, a 512-unit dense layer, 10 outputs.
        """

        def __init__(self, num_classes: int = 10) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(1, 16, 3)
            self.relu1 = nn.ReLU()
            self.pool1 = nn.MaxPool2d(2)
            self.conv2 = nn.Conv2d(16, 32, 3)
            self.relu2 = nn.ReLU()
            self.pool2 = nn.MaxPool2d(2)
            self.flatten = nn.Flatten()
            self.fc1 = nn.Linear(32 * 5 * 5, 512)
            self.relu3 = nn.ReLU()
            self.fc2 = nn.Linear(512, num_classes)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.pool1(self.relu1(self.conv1(x)))
            x = self.pool2(self.relu2(self.conv2(x)))
            return self.fc2(self.relu3(self.fc1(self.flatten(x))))

    class LeNet5(nn.Module):
        """LeCun et al.'s LeNet-5 layout (6 and 16 filters of 5x5, 120-84-10), tanh and average pooling."""

        def __init__(self, num_classes: int = 10) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
            self.act1 = nn.Tanh()
            self.pool1 = nn.AvgPool2d(2)
            self.conv2 = nn.Conv2d(6, 16, 5)
            self.act2 = nn.Tanh()
            self.pool2 = nn.AvgPool2d(2)
            self.flatten = nn.Flatten()
            self.fc1 = nn.Linear(16 * 5 * 5, 120)
            self.act3 = nn.Tanh()
            self.fc2 = nn.Linear(120, 84)
            self.act4 = nn.Tanh()
            self.fc3 = nn.Linear(84, num_classes)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.pool1(self.act1(self.conv1(x)))
            x = self.pool2(self.act2(self.conv2(x)))
            x = self.act4(self.fc2(self.act3(self.fc1(self.flatten(x)))))
            return self.fc3(x)

    def _vgg_features(cfg: list[int | str], in_channels: int, batch_norm: bool) -> nn.Sequential:
        layers: list[nn.Module] = []
        c = in_channels
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                assert isinstance(v, int)
                layers.append(nn.Conv2d(c, v, 3, padding=1))
                if batch_norm:
                    layers.append(nn.BatchNorm2d(v))
                layers.append(nn.ReLU(inplace=False))
                c = v
        return nn.Sequential(*layers)

    class VGG12(nn.Module):
        """A 12-weight-layer VGG for 32x32 inputs (9 conv + 3 dense), as in the NeuralVis study."""

        cfg: list[int | str] = [32, 32, "M", 64, 64, "M", 128, 128, 128, "M", 256, 256, "M"]

        def __init__(self, num_classes: int = 10) -> None:
            super().__init__()
            self.features = _vgg_features(self.cfg, 3, batch_norm=True)
            self.flatten = nn.Flatten()
            self.classifier = nn.Sequential(
                nn.Linear(256 * 2 * 2, 256),
                nn.ReLU(),
                nn.Dropout(0.5),
                nn.Linear(256, 256),
                nn.ReLU(),
                nn.Dropout(0.5),
                nn.Linear(256, num_classes),
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.classifier(self.flatten(self.features(x)))

    class VGG16(nn.Module):
        """VGG-16 (configuration D) for 224x224 inputs, laid out like torchvision's so its weights load."""

        cfg: list[int | str] = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]

        def __init__(self, num_classes: int = 1000) -> None:
            super().__init__()
            self.features = _vgg_features(self.cfg, 3, batch_norm=False)
            self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
            self.flatten = nn.Flatten()
            self.classifier = nn.Sequential(
                nn.Linear(512 * 7 * 7, 4096),
                nn.ReLU(True),
                nn.Dropout(0.5),
                nn.Linear(4096, 4096),
                nn.ReLU(True),
                nn.Dropout(0.5),
                nn.Linear(4096, num_classes),
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.classifier(self.flatten(self.avgpool(self.features(x))))

    class Bottleneck(nn.Module):
        """ResNet bottleneck block: 1x1 reduce, 3x3, 1x1 expand, plus the identity (skip) path."""

        expansion = 4

        def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
            super().__init__()
            out = planes * self.expansion
            self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
            self.bn3 = nn.BatchNorm2d(out)
            self.relu = nn.ReLU()
            self.downsample: nn.Module | None = None
            if stride != 1 or in_planes != out:
                self.downsample = nn.Sequential(nn.Conv2d(in_planes, out, 1, stride=stride, bias=False), nn.BatchNorm2d(out))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            identity = x if self.downsample is None else self.downsample(x)
            y = self.relu(self.bn1(self.conv1(x)))
            y = self.relu(self.bn2(self.conv2(y)))
            y = self.bn3(self.conv3(y))
            return self.relu(y + identity)

    class ResNet50(nn.Module):
        """ResNet-50 (3, 4, 6, 3 bottleneck blocks) for 224x224 inputs, named like torchvision's."""

        def __init__(self, num_classes: int = 1000) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            self.relu = nn.ReLU()
            self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
            planes_in = 64
            stages = []
            for planes, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
                layers = []
                for i in range(blocks):
                    layers.append(Bottleneck(planes_in, planes, stride if i == 0 else 1))
                    planes_in = planes * Bottleneck.expansion
                stages.append(nn.Sequential(*layers))
            self.layer1, self.layer2, self.layer3, self.layer4 = stages
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.flatten = nn.Flatten()
            self.fc = nn.Linear(512 * Bottleneck.expansion, num_classes)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(self.flatten(self.avgpool(x)))

    return {
        "SimplifiedLeNet5": SimplifiedLeNet5,
        "LeNet5": LeNet5,
        "VGG12": VGG12,
        "VGG16": VGG16,
        "ResNet50": ResNet50,
    }


@register_model(
    "lenet5-simplified",
    description="simplified LeNet-5 of in situ TensorView: conv 16 and 32 filters of 3x3, dense 512 (MNIST)",
    input_spec=MNIST_SPEC,
    train_data="mnist-5k",
)
def lenet5_simplified() -> torch.nn.Module:
    return _Net.get("SimplifiedLeNet5")()


@register_model(
    "lenet5",
    description="classic LeNet-5: conv 6 and 16 filters of 5x5, dense 120-84-10, tanh (MNIST)",
    input_spec=MNIST_SPEC,
    train_data="mnist-5k",
)
def lenet5() -> torch.nn.Module:
    return _Net.get("LeNet5")()


@register_model(
    "vgg12",
    description="VGG-12 for 32x32 RGB (9 conv with batch norm + 3 dense), as in the NeuralVis study (CIFAR-10 classes)",
    input_spec=CIFAR_SPEC,
)
def vgg12() -> torch.nn.Module:
    return _Net.get("VGG12")()


@register_model(
    "vgg16",
    description="VGG-16 for 224x224 RGB; load trained weights from your own torchvision-layout file",
    input_spec=IMAGENET_SPEC,
)
def vgg16() -> torch.nn.Module:
    return _Net.get("VGG16")()


@register_model(
    "resnet50",
    description="ResNet-50 for 224x224 RGB (a 50-layer residual network); load weights from your own file",
    input_spec=IMAGENET_SPEC,
)
def resnet50() -> torch.nn.Module:
    return _Net.get("ResNet50")()


def zoo_class(name: str) -> type:
    """The module class behind a zoo model (for ``"convscope.models.zoo:..."`` references)."""
    return _Net.get(name)

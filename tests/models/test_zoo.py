"""The bundled zoo: registry, architectures, trained weights from bundled data."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from convscope.data import load_dataset
from convscope.errors import RegistryError, UnknownModelError
from convscope.models import create_model, list_models, load_model, register_model
from convscope.models.zoo import MNIST_SPEC, train_zoo_model


def test_registry_lists_the_bundled_models() -> None:
    assert [e.name for e in list_models()] == ["lenet5", "lenet5-simplified", "resnet50", "vgg12", "vgg16"]


def test_name_clash_is_reported() -> None:
    with pytest.raises(RegistryError, match="'lenet5' is registered twice"):
        register_model("lenet5", description="dup", input_spec=MNIST_SPEC)(lambda: torch.nn.Identity())


def test_unknown_name_lists_the_real_ones() -> None:
    with pytest.raises(UnknownModelError, match="lenet5-simplified"):
        create_model("lenet7")


@pytest.mark.parametrize(
    ("name", "shape", "out"),
    [("lenet5", (1, 28, 28), 10), ("lenet5-simplified", (1, 28, 28), 10), ("vgg12", (3, 32, 32), 10)],
)
def test_architectures_run_on_their_input(name: str, shape: tuple[int, ...], out: int) -> None:
    net = create_model(name).eval()
    assert net(torch.zeros(2, *shape)).shape == (2, out)


def test_paper_architectures() -> None:
    g = load_model("lenet5-simplified", pretrained=False).graph
    assert [g.layer(c).attributes["filters"] for c in g.layer_ids(category="conv")] == [16, 32]
    assert all(g.layer(c).attributes["kernel"] == (3, 3) for c in g.layer_ids(category="conv"))
    vgg12 = load_model("vgg12", pretrained=False).graph
    assert len(vgg12.layer_ids(category="conv")) + len(vgg12.layer_ids(category="dense")) == 12
    vgg16 = create_model("vgg16")
    # torchvision's VGG-16 state dict keys, so a user's weights file loads as is.
    keys = set(vgg16.state_dict())
    assert {"features.0.weight", "features.28.bias", "classifier.0.weight", "classifier.6.bias"} <= keys
    assert sum(p.numel() for p in vgg16.parameters()) == 138_357_544


def test_trained_lenet_recognises_the_bundled_test_digits() -> None:
    m = load_model("lenet5-simplified")  # trains and caches on first use
    test = load_dataset("mnist-5k", split="test")
    acc = float((m.predict(test.images).argmax(1) == test.labels).float().mean())
    assert acc > 0.95, acc


def test_training_is_deterministic_for_a_seed(tmp_path) -> None:
    a = train_zoo_model("lenet5", epochs=1, seed=3, out=tmp_path / "a.safetensors")
    b = train_zoo_model("lenet5", epochs=1, seed=3, out=tmp_path / "b.safetensors")
    wa, wb = load_file(str(tmp_path / "a.safetensors")), load_file(str(tmp_path / "b.safetensors"))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    assert a["test_accuracy"] == b["test_accuracy"] and a["test_accuracy"] > 0.5


def test_models_without_bundled_data_cannot_be_trained() -> None:
    with pytest.raises(UnknownModelError, match="no bundled training data"):
        train_zoo_model("vgg16")

"""ModelGraph: layers, shapes, real data-flow edges, hierarchy, JSON round trip."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from convscope.errors import LayerNotFoundError
from convscope.models import ModelGraph, build_graph, load_model


class ResidualBlock(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(4, 4, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(4)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.relu2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(self.relu1(self.bn1(self.conv1(x))))
        return self.relu2(y + x)


class ResNetTiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.block = ResidualBlock()
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(4 * 8 * 8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.flatten(self.block(self.stem(x))))


class TwoBranch(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.left = nn.Conv2d(3, 2, 1)
        self.right = nn.Sequential(nn.Conv2d(3, 5, 3, padding=1), nn.ReLU())
        self.head = nn.Conv2d(7, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([self.left(x), self.right(x)], dim=1))


class Untraceable(nn.Module):
    """Data-dependent control flow: torch.fx cannot trace it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        if float(y.sum()) > 1e9:  # never true, but fx cannot know
            y = y * 2
        return self.relu(y)


def test_simplified_lenet_layers_shapes_and_chain() -> None:
    g = load_model("lenet5-simplified", pretrained=False).graph
    assert [(layer.id, layer.kind, layer.output_shape) for layer in g.layers] == [
        ("input", "input", (1, 28, 28)),
        ("conv1", "conv2d", (16, 26, 26)),
        ("relu1", "relu", (16, 26, 26)),
        ("pool1", "maxpool2d", (16, 13, 13)),
        ("conv2", "conv2d", (32, 11, 11)),
        ("relu2", "relu", (32, 11, 11)),
        ("pool2", "maxpool2d", (32, 5, 5)),
        ("flatten", "flatten", (800,)),
        ("fc1", "linear", (512,)),
        ("relu3", "relu", (512,)),
        ("fc2", "linear", (10,)),
    ]
    ids = [layer.id for layer in g.layers]
    assert [(e.source, e.target) for e in g.edges] == list(zip(ids, ids[1:], strict=False))
    conv1 = g.layer("conv1")
    assert conv1.attributes["filters"] == 16 and conv1.attributes["kernel"] == (3, 3)
    assert conv1.params == 16 * 9 + 16
    assert g.layer("fc1").attributes["units"] == 512
    assert g.total_params == sum(p.numel() for p in load_model("lenet5-simplified", pretrained=False).module.parameters())
    assert g.layer_ids(category="conv") == ["conv1", "conv2"]


def test_residual_skip_add_has_both_inputs() -> None:
    g = build_graph(ResNetTiny(), input_shape=(1, 8, 8))
    add = [layer for layer in g.layers if layer.kind == "add"]
    assert len(add) == 1
    assert sorted(g.predecessors(add[0].id)) == ["block.conv2", "stem"]
    assert g.successors("stem") == ["block.conv1", add[0].id]
    assert g.predecessors("block.relu2") == [add[0].id]
    assert add[0].parent == "block" and not add[0].hookable
    assert add[0].input_shapes == ((4, 8, 8), (4, 8, 8))
    assert [c.id for c in g.containers] == ["block"]
    assert g.containers[0].children == ("block.conv1", "block.bn1", "block.relu1", "block.conv2", "block.relu2")


def test_two_branches_meet_in_concat() -> None:
    g = build_graph(TwoBranch(), input_shape=(3, 6, 6))
    assert g.successors("input") == ["left", "right.0"]
    cat = [layer for layer in g.layers if layer.kind == "concat"]
    assert len(cat) == 1 and sorted(g.predecessors(cat[0].id)) == ["left", "right.1"]
    assert cat[0].output_shape == (7, 6, 6)
    assert g.predecessors("head") == [cat[0].id]


def test_resnet50_graph_builds_with_skips_and_hierarchy() -> None:
    m = load_model("resnet50")
    g = m.graph
    convs = g.layer_ids(category="conv")
    assert len(convs) == 53  # 49 in the main path + 4 downsample projections
    adds = [layer for layer in g.layers if layer.kind == "add"]
    assert len(adds) == 16  # one skip per bottleneck block
    assert all(len(g.predecessors(a.id)) == 2 for a in adds)
    # A block without projection adds its own input (the previous block's output relu).
    second = next(a for a in adds if a.parent == "layer1.1")
    assert sorted(g.predecessors(second.id)) == ["layer1.0.relu#3", "layer1.1.bn3"]
    assert g.layer("fc").output_shape == (1000,)
    assert g.layer("layer4.2.relu#3").output_shape == (2048, 7, 7)
    top = sorted(c.id for c in g.containers if c.parent is None)
    assert top == ["layer1", "layer2", "layer3", "layer4"]
    assert g.total_params == 25_557_032  # the well-known ResNet-50 count


@pytest.mark.parametrize("name", ["lenet5-simplified", "resnet50"])
def test_json_round_trip(name: str) -> None:
    g = load_model(name, pretrained=False).graph
    back = ModelGraph.from_json(g.to_json())
    assert back == g
    assert back.layers == g.layers and back.edges == g.edges and back.containers == g.containers


def test_untraceable_model_falls_back_to_hooks() -> None:
    g = build_graph(Untraceable(), input_shape=(1, 5, 5))
    assert g.method == "hooks"
    assert [(layer.id, layer.output_shape) for layer in g.layers] == [("input", (1, 5, 5)), ("conv", (2, 3, 3)), ("relu", (2, 3, 3))]
    assert [(e.source, e.target) for e in g.edges] == [("input", "conv"), ("conv", "relu")]


def test_unknown_layer_names_the_real_ones() -> None:
    g = load_model("lenet5-simplified", pretrained=False).graph
    with pytest.raises(LayerNotFoundError, match=r"'conv9' not found.*conv1, relu1"):
        g.layer("conv9")


def test_build_graph_restores_train_mode() -> None:
    net = ResNetTiny().train()
    build_graph(net, input_shape=(1, 8, 8))
    assert net.training and all(m.training for m in net.modules())


def test_build_graph_propagates_zeros_of_the_models_own_dtype() -> None:
    net = ResNetTiny().to(torch.bfloat16)  # a float32 example failed against bfloat16 weights
    graph = build_graph(net, input_shape=(1, 8, 8))
    assert graph.method == "fx" and all(layer.output_shape for layer in graph.layers)

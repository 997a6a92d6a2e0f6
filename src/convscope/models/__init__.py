"""Every model format becomes one ``torch.nn.Module`` plus one :class:`ModelGraph`."""

from __future__ import annotations

from convscope.models._graph import Container, Edge, Layer, ModelGraph, build_graph, canonical_kind, category_of
from convscope.models._load import load_model
from convscope.models._spec import InputSpec, LoadedModel
from convscope.models.zoo import create_model, list_models, load_zoo_model, register_model, train_zoo_model

__all__ = [
    "Container",
    "Edge",
    "InputSpec",
    "Layer",
    "LoadedModel",
    "ModelGraph",
    "build_graph",
    "canonical_kind",
    "category_of",
    "create_model",
    "list_models",
    "load_model",
    "load_zoo_model",
    "register_model",
    "train_zoo_model",
]

"""Pure tensor functions behind every view: they run on the tensors' device and do no I/O.

Correlation and groups of similar filters, weight grids, weight trajectories, feature-map
distributions and images, gradient health, pair comparison, saliency (Captum), adversarial
inputs (ART) and pruning (Torch-Pruning). Results have ``to_payload()`` for frames.
"""

from __future__ import annotations

from convscope.analysis.attacks import ATTACKS, AdversarialResult, list_attacks, perturb
from convscope.analysis.compare import LayerDifference, PairComparison, compare_pair
from convscope.analysis.correlation import CorrelationResult, feature_correlation
from convscope.analysis.distribution import Distribution, feature_distribution
from convscope.analysis.gradients import GradientHealth, GradientHealthTracker, HealthThresholds, gradient_health
from convscope.analysis.groups import FilterGroups, GroupEvent, filter_groups
from convscope.analysis.images import FeatureImages, feature_images, tile
from convscope.analysis.pruning import PruneResult, plan_pruning, prune_filters
from convscope.analysis.saliency import SaliencyResult, saliency
from convscope.analysis.trajectory import TrajectoryPoint, TrajectoryTracker
from convscope.analysis.weights import GridLayout, WeightGrid, grid_layout, weight_grid

__all__ = [
    "ATTACKS",
    "LayerDifference",
    "PairComparison",
    "compare_pair",
    "AdversarialResult",
    "SaliencyResult",
    "list_attacks",
    "perturb",
    "saliency",
    "CorrelationResult",
    "Distribution",
    "FeatureImages",
    "FilterGroups",
    "GradientHealth",
    "GradientHealthTracker",
    "GridLayout",
    "GroupEvent",
    "HealthThresholds",
    "PruneResult",
    "TrajectoryPoint",
    "TrajectoryTracker",
    "WeightGrid",
    "feature_correlation",
    "feature_distribution",
    "feature_images",
    "filter_groups",
    "gradient_health",
    "grid_layout",
    "plan_pruning",
    "prune_filters",
    "tile",
    "weight_grid",
]

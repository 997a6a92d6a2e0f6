"""Pure tensor functions behind every view: they run on the tensors' device and do no I/O.

Correlation and groups of similar filters, weight grids, weight trajectories, feature-map
distributions and images, gradient health, pair comparison, saliency (Captum), adversarial
inputs (ART) and pruning (Torch-Pruning). Results have ``to_payload()`` for frames.
"""

from __future__ import annotations

from convscope.analysis.attacks import ATTACKS, AdversarialResult, list_attacks, perturb
from convscope.analysis.compare import LayerDifference, PairComparison, compare_pair
from convscope.analysis.correlation import CorrelationResult, feature_correlation
from convscope.analysis.distribution import (
    Distribution,
    feature_distribution,
    feature_distribution_and_correlation,
    feature_distributions_and_correlations,
)
from convscope.analysis.gradients import (
    STATUSES,
    GradientHealth,
    GradientHealthTracker,
    HealthThresholds,
    gradient_health,
)
from convscope.analysis.groups import FilterGroups, GroupEvent, filter_groups
from convscope.analysis.images import FeatureImages, feature_images, tile
from convscope.analysis.pruning import PruneResult, plan_pruning, prune_filters, unprunable
from convscope.analysis.saliency import SaliencyResult, saliency
from convscope.analysis.trajectory import TrajectoryPoint, TrajectoryTracker
from convscope.analysis.weights import GridLayout, WeightGrid, grid_layout, weight_grid, weight_grids

__all__ = [
    # views of one layer (correlation, groups, weights, trajectory, distribution, images, health, comparison)
    "STATUSES",
    "CorrelationResult",
    "Distribution",
    "FeatureImages",
    "FilterGroups",
    "GradientHealth",
    "GradientHealthTracker",
    "GridLayout",
    "GroupEvent",
    "HealthThresholds",
    "LayerDifference",
    "PairComparison",
    "TrajectoryPoint",
    "TrajectoryTracker",
    "WeightGrid",
    "compare_pair",
    "feature_correlation",
    "feature_distribution",
    "feature_distribution_and_correlation",
    "feature_distributions_and_correlations",
    "feature_images",
    "filter_groups",
    "gradient_health",
    "grid_layout",
    "tile",
    "weight_grid",
    "weight_grids",
    # the model explorer's computations (saliency, attacks, pruning)
    "ATTACKS",
    "AdversarialResult",
    "PruneResult",
    "SaliencyResult",
    "list_attacks",
    "perturb",
    "plan_pruning",
    "prune_filters",
    "saliency",
    "unprunable",
]

"""Pure tensor functions behind every view (lead's placeholder exports; the analysis owner refines)."""

from __future__ import annotations

from convscope.analysis.correlation import CorrelationResult, feature_correlation
from convscope.analysis.distribution import Distribution, feature_distribution
from convscope.analysis.gradients import GradientHealth, GradientHealthTracker, HealthThresholds, gradient_health
from convscope.analysis.groups import FilterGroups, GroupEvent, filter_groups
from convscope.analysis.images import FeatureImages, feature_images, tile
from convscope.analysis.pruning import PruneResult, plan_pruning, prune_filters
from convscope.analysis.trajectory import TrajectoryPoint, TrajectoryTracker
from convscope.analysis.weights import GridLayout, WeightGrid, grid_layout, weight_grid

__all__ = [
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

"""Functional twins of the humr metrics (one batch in, means out) and their building blocks."""
from humr.metrics.functional.accuracy import (
    hypothesis_accuracy,
    hypothesis_errors,
    mpjpe,
    pa_mpjpe,
    pve,
)
from humr.metrics.functional.keypoints import consistency_2d, spread_3d
from humr.metrics.functional.mask import (
    mask_distance_map,
    mask_plausibility,
    points_to_mask,
)
from humr.metrics.functional.posterior import energy_distance, posterior_distance

__all__ = [
    "consistency_2d",
    "energy_distance",
    "hypothesis_accuracy",
    "hypothesis_errors",
    "mask_distance_map",
    "mask_plausibility",
    "mpjpe",
    "pa_mpjpe",
    "points_to_mask",
    "posterior_distance",
    "pve",
    "spread_3d",
]

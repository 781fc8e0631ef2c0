"""Functional twins of the humr metrics (one batch in, means out) and their building blocks."""
from humr.metrics.functional.accuracy import (
    hypothesis_accuracy,
    hypothesis_errors,
    mpjpe,
    pa_mpjpe,
    pve,
)
from humr.metrics.functional.keypoints import consistency_2d, spread_3d
from humr.metrics.functional.mask import mask_plausibility, points_mask_distance
from humr.metrics.functional.posterior import posterior_distance

__all__ = [
    "consistency_2d",
    "hypothesis_accuracy",
    "hypothesis_errors",
    "mask_plausibility",
    "mpjpe",
    "pa_mpjpe",
    "points_mask_distance",
    "posterior_distance",
    "pve",
    "spread_3d",
]

"""COCO-17 keypoint metrics of hypothesis sets: 2D consistency (px) and 3D spread (mm).

Hypothesis 0 is the mode (z = 0); hypotheses 1..S-1 are the random ones. Visible joints follow
the one rule of :mod:`humr.core.visibility` (confidence >= threshold).
"""
from __future__ import annotations

import torch
from torch import Tensor

from humr.core.checks import check_inputs, require_at_least
from humr.core.skeleton import NUM_COCO
from humr.core.visibility import VISIBLE_THRESHOLD, visible
from humr.metrics.functional._reduce import count, masked_sum, ratios, sum_key
from humr.metrics.functional.accuracy import M_TO_MM

__all__ = ["consistency_2d", "spread_3d"]

CONSISTENCY_COUNTS = {"kp2d_mode": "count", "kp2d_samples": "count"}
SPREAD_COUNTS = {"spread_visible": "count_visible", "spread_invisible": "count_invisible"}


def _consistency_2d_update(pred_kp2d: Tensor, gt_kp2d: Tensor, confidence: Tensor,
                           threshold: float = VISIBLE_THRESHOLD,
                           crop_pixels: int = 256) -> dict[str, Tensor]:
    sizes = check_inputs({
        "pred_kp2d": (pred_kp2d, ("B", "S", NUM_COCO, 2)),
        "gt_kp2d": (gt_kp2d, ("B", NUM_COCO, 2)),
        "confidence": (confidence, ("B", NUM_COCO)),
    })
    require_at_least(sizes, "S", 2, "pred_kp2d", "the mode plus at least one random hypothesis")
    err = torch.linalg.vector_norm(pred_kp2d - gt_kp2d.unsqueeze(1), dim=-1) * (crop_pixels / 2.0)
    vis = visible(confidence, threshold)
    return {
        sum_key("kp2d_mode"): masked_sum(err[:, 0], vis),
        sum_key("kp2d_samples"): masked_sum(err[:, 1:].mean(dim=1), vis),
        "count": count(vis, err),
    }


def consistency_2d(pred_kp2d: Tensor, gt_kp2d: Tensor, confidence: Tensor,
                   threshold: float = VISIBLE_THRESHOLD, crop_pixels: int = 256) -> dict[str, Tensor]:
    r"""2D keypoint error of visible COCO-17 joints in a ``crop_pixels``-square crop.

    For visible joints :math:`(b, k)` (``confidence >= threshold``) with error
    :math:`e_{bsk} = \|\hat u_{bsk} - u_{bk}\| \cdot R / 2` (crop coordinates -> pixels),

    .. math::
        \text{kp2d\_mode} = \operatorname{mean}_{(b,k)} e_{b0k}, \qquad
        \text{kp2d\_samples} = \operatorname{mean}_{(b,k)} \tfrac{1}{S-1}\textstyle\sum_{s\ge1} e_{bsk}.

    Args:
        pred_kp2d: (B, S, 17, 2) projected hypotheses, crop coordinates [-1, 1]; hypothesis 0
            is the mode, the others are random (S >= 2).
        gt_kp2d: (B, 17, 2) ground truth, crop coordinates.
        confidence: (B, 17) detector confidence (visibility proxy).
        threshold: visible if ``confidence >= threshold``.
        crop_pixels: side R of the pixel grid the error is reported in.
    Returns:
        ``{"kp2d_mode": (), "kp2d_samples": ()}`` in pixels; NaN when no joint is visible.

    Example:
        >>> import torch
        >>> gt = torch.zeros(1, 17, 2)
        >>> pred = torch.zeros(1, 3, 17, 2); pred[:, 1, :, 0] = 0.1; pred[:, 2, :, 0] = -0.3
        >>> out = consistency_2d(pred, gt, torch.ones(1, 17))
        >>> out["kp2d_mode"].item(), round(out["kp2d_samples"].item(), 3)   # (12.8 + 38.4) / 2
        (0.0, 25.6)
    """
    return ratios(_consistency_2d_update(pred_kp2d, gt_kp2d, confidence, threshold, crop_pixels),
                  CONSISTENCY_COUNTS)


def _spread_3d_update(pred_kp3d: Tensor, confidence: Tensor, threshold: float = VISIBLE_THRESHOLD,
                      include_mode: bool = True) -> dict[str, Tensor]:
    sizes = check_inputs({
        "pred_kp3d": (pred_kp3d, ("B", "S", NUM_COCO, 3)),
        "confidence": (confidence, ("B", NUM_COCO)),
    })
    require_at_least(sizes, "S", 2, "pred_kp3d", "the mode plus at least one random hypothesis")
    samples = pred_kp3d if include_mode else pred_kp3d[:, 1:]
    dist = torch.linalg.vector_norm(samples - samples.mean(dim=1, keepdim=True), dim=-1)
    spread = dist.mean(dim=1) * M_TO_MM                               # (B, 17)
    vis = visible(confidence, threshold)
    return {
        sum_key("spread_visible"): masked_sum(spread, vis),
        sum_key("spread_invisible"): masked_sum(spread, ~vis),
        "count_visible": count(vis, spread),
        "count_invisible": count(~vis, spread),
    }


def spread_3d(pred_kp3d: Tensor, confidence: Tensor, threshold: float = VISIBLE_THRESHOLD,
              include_mode: bool = True) -> dict[str, Tensor]:
    r"""Diversity of 3D COCO-17 joint hypotheses: mean distance to their mean, in mm.

    Per example and joint, :math:`d_{bk} = \frac{1}{|H|}\sum_{s \in H}\|x_{bsk} - \bar x_{bk}\|`
    with :math:`\bar x_{bk}` the mean over :math:`H`: all S hypotheses (``include_mode``,
    default, official ``joints_3d_diversity``) or the random ones only; the result is the mean
    of :math:`d_{bk}` over visible (``confidence >= threshold``) and over invisible joints.

    Args:
        pred_kp3d: (B, S, 17, 3) root-relative joints in metres (S >= 2).
        confidence: (B, 17) detector confidence (visibility proxy).
        threshold: visible if ``confidence >= threshold``.
        include_mode: include hypothesis 0 (the mode).
    Returns:
        ``{"spread_visible": (), "spread_invisible": ()}`` in mm; NaN for an empty group.

    Example:
        >>> import torch
        >>> kp = torch.zeros(1, 3, 17, 3); kp[:, 1, :, 0] = 0.01; kp[:, 2, :, 0] = -0.01
        >>> conf = torch.ones(1, 17); conf[:, 9:] = 0.1
        >>> {k: round(v.item(), 3) for k, v in spread_3d(kp, conf).items()}   # (0 + 10 + 10) / 3
        {'spread_visible': 6.667, 'spread_invisible': 6.667}
        >>> round(spread_3d(kp, conf, include_mode=False)["spread_visible"].item(), 3)
        10.0
    """
    return ratios(_spread_3d_update(pred_kp3d, confidence, threshold, include_mode), SPREAD_COUNTS)

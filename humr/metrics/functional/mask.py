"""Plausibility of invisible-joint hypotheses w.r.t. a person mask: PercIn (%) and MinDist (px).

Official convention (``validation_step`` of the official release, :mod:`humr.core.masks`): a
crop point ``u`` lies at ``q = (u + 1) * R / 2`` in the R x R mask grid, mask pixel (row i,
column j) at ``(j, i)``; its distance is the Euclidean distance to the nearest mask pixel, set
to 0 below 0.71 px (``sqrt(0.5^2 + 0.5^2)``), where the point counts as inside.
"""
from __future__ import annotations

import torch
from torch import Tensor

from humr.core.checks import check_inputs, require_at_least
from humr.core.crop import crop_to_pixels
from humr.core.masks import INSIDE_TOLERANCE, mask_distance
from humr.core.skeleton import NUM_COCO
from humr.metrics.functional._reduce import count, masked_sum, ratios, sum_key

__all__ = ["mask_plausibility", "points_mask_distance"]

MASK_COUNTS = {"perc_in": "count", "min_dist": "count"}


def points_mask_distance(points: Tensor, mask: Tensor) -> Tensor:
    """Distance (px of the mask grid) of crop points to a square mask, 0 within 0.71 px.

    Args:
        points: (B, N, 2) crop coordinates [-1, 1], (x, y).
        mask: (B, R, R) bool or integer, nonzero = mask.
    Returns:
        (B, N) distances (``inf`` for an empty mask); a point is inside when it is 0.

    Example:
        >>> import torch
        >>> m = torch.zeros(1, 4, 4, dtype=torch.bool); m[0, :, 0] = True   # column x = 0
        >>> pts = torch.tensor([[[-0.75, 0.0], [0.5, 0.0], [-1.5, 0.0]]])   # q = 0.5, 3, -1
        >>> points_mask_distance(pts, m).tolist()
        [[0.0, 3.0, 1.0]]
    """
    check_inputs({"points": (points, ("B", "N", 2)), "mask": (mask, ("B", "R", "R"))})
    dist = mask_distance(crop_to_pixels(points, mask.shape[-1]), mask)
    return torch.where(dist < INSIDE_TOLERANCE, torch.zeros_like(dist), dist)


def _mask_plausibility_update(pred_kp2d: Tensor, mask: Tensor, invisible: Tensor,
                              mask_valid: Tensor | None = None,
                              include_mode: bool = True) -> dict[str, Tensor]:
    sizes = check_inputs({
        "pred_kp2d": (pred_kp2d, ("B", "S", NUM_COCO, 2)),
        "mask": (mask, ("B", "R", "R")),
        "invisible": (invisible, ("B", NUM_COCO)),
        "mask_valid": (mask_valid, ("B",)),
    })
    require_at_least(sizes, "S", 2, "pred_kp2d", "the mode plus at least one random hypothesis")
    for key, flag in (("invisible", invisible), ("mask_valid", mask_valid)):
        if flag is not None and flag.dtype != torch.bool:
            raise TypeError(f"{key} must be a bool tensor, got {flag.dtype}")
    keep = (mask != 0).flatten(1).any(dim=1) & invisible.any(dim=1)
    if mask_valid is not None:
        keep = keep & mask_valid
    hyp = pred_kp2d[keep] if include_mode else pred_kp2d[keep, 1:]    # (b, S', 17, 2)
    dist = points_mask_distance(hyp.flatten(1, 2), mask[keep])
    select = invisible[keep].unsqueeze(1).expand(-1, hyp.shape[1], -1).flatten(1)
    return {
        sum_key("perc_in"): 100.0 * count(select & (dist == 0), dist),
        sum_key("min_dist"): masked_sum(dist, select),
        "count": count(select, dist),
    }


def mask_plausibility(pred_kp2d: Tensor, mask: Tensor, invisible: Tensor,
                      mask_valid: Tensor | None = None, include_mode: bool = True) -> dict[str, Tensor]:
    r"""PercIn and MinDist of the hypotheses of invisible joints (paper section 5.1).

    Over all triples (example b, hypothesis s, invisible joint k) of the kept examples, with
    :math:`d_{bsk}` = :func:`points_mask_distance` (0 inside the mask),

    .. math::
        \text{perc\_in} = 100 \cdot \operatorname{mean}\,[\,d_{bsk} = 0\,], \qquad
        \text{min\_dist} = \operatorname{mean}\, d_{bsk}.

    Hypotheses: all S, the mode included (official), or the random ones
    (``include_mode=False``). Examples with ``mask_valid`` False, an empty mask or no
    invisible joint are skipped (they add nothing).

    Args:
        pred_kp2d: (B, S, 17, 2) projected hypotheses, crop coordinates [-1, 1] (S >= 2).
        mask: (B, R, R) bool / uint8 person mask on the crop.
        invisible: (B, 17) bool, joints to evaluate (official: confidence < 0.5,
            :func:`humr.core.visibility.invisible`).
        mask_valid: optional (B,) bool; False skips the example.
        include_mode: include hypothesis 0.
    Returns:
        ``{"perc_in": () in %, "min_dist": () in pixels of the R x R mask}``; NaN when nothing
        was evaluated.

    Example:
        >>> import torch
        >>> m = torch.zeros(1, 4, 4, dtype=torch.bool); m[0, :, 0] = True   # column x = 0
        >>> pred = torch.zeros(1, 3, 17, 2)
        >>> pred[0, :2, :, 0] = -0.9; pred[0, 2, :, 0] = 0.5       # q = 0.2 (in) / 3 (3 px off)
        >>> inv = torch.zeros(1, 17, dtype=torch.bool); inv[0, 9] = True
        >>> {k: round(v.item(), 3) for k, v in mask_plausibility(pred, m, inv).items()}
        {'perc_in': 66.667, 'min_dist': 1.0}
    """
    return ratios(_mask_plausibility_update(pred_kp2d, mask, invisible, mask_valid, include_mode),
                  MASK_COUNTS)

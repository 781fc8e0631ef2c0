"""Plausibility of invisible-joint hypotheses w.r.t. a person mask: PercIn (%) and MinDist (px).

Pixel rule (``docs/conventions.md``): a crop point ``u`` in [-1, 1] lies at continuous pixel
``x = (u + 1) / 2 * W`` (likewise y with H); pixel ``i`` covers ``[i, i + 1)``. A point is
inside the mask when it lies in the crop and the pixel covering it is a mask pixel.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy.ndimage import distance_transform_edt
from torch import Tensor

from humr.core.checks import check_inputs, require_at_least
from humr.metrics.functional._reduce import count, masked_sum, ratios, sum_key
from humr.metrics.functional.keypoints import NUM_COCO

__all__ = ["mask_distance_map", "mask_plausibility", "points_to_mask"]

MASK_COUNTS = {"perc_in": "count", "min_dist": "count"}


def mask_distance_map(mask: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """Exact Euclidean distance of every pixel centre to the nearest mask pixel centre.

    Computed with ``scipy.ndimage.distance_transform_edt`` on the CPU (kornia's
    ``distance_transform`` is an iterative approximation that is off by several pixels), then
    moved back to ``mask``'s device.

    Args:
        mask: (B, H, W) bool or integer, nonzero = mask.
        dtype: floating dtype of the result.
    Returns:
        (B, H, W) distances in pixels, 0 on the mask; ``inf`` everywhere for an empty mask.

    Example:
        >>> import torch
        >>> m = torch.zeros(1, 3, 5, dtype=torch.bool); m[0, 1, 0] = True
        >>> mask_distance_map(m)[0, 1].tolist()
        [0.0, 1.0, 2.0, 3.0, 4.0]
    """
    check_inputs({"mask": (mask, ("B", "H", "W"))})
    binary = (mask != 0).cpu().numpy()
    out = np.full(binary.shape, np.inf)
    for i, m in enumerate(binary):
        if m.any():
            out[i] = distance_transform_edt(~m)
    return torch.from_numpy(out).to(device=mask.device, dtype=dtype)


def points_to_mask(points: Tensor, mask: Tensor, dist_map: Tensor) -> tuple[Tensor, Tensor]:
    """Whether crop points fall inside the mask, and their distance to it in pixels.

    A point inside the crop gets the distance-map value of the pixel covering it (0 on the
    mask). A point outside the crop counts as outside the mask; its distance is the value at
    the nearest crop pixel (position clamped to the crop) plus the distance from the point to
    the crop border, an upper bound of the exact distance that grows with the overshoot.

    Args:
        points: (B, N, 2) crop coordinates [-1, 1], (x, y).
        mask: (B, H, W) bool or integer, nonzero = mask.
        dist_map: (B, H, W) from :func:`mask_distance_map` (``inf`` for an empty mask).
    Returns:
        inside (B, N) bool and distance (B, N) in pixels of the H x W grid (``inf`` for an
        empty mask).

    Example:
        >>> import torch
        >>> m = torch.zeros(1, 4, 4, dtype=torch.bool); m[0, :, 0] = True   # left column
        >>> pts = torch.tensor([[[-0.9, 0.0], [0.9, 0.0], [1.5, 0.0]]])     # pixel x 0.2, 3.8, 5
        >>> inside, dist = points_to_mask(pts, m, mask_distance_map(m))
        >>> inside.tolist(), dist.tolist()
        ([[True, False, False]], [[0.0, 3.0, 4.0]])
    """
    check_inputs({
        "points": (points, ("B", "N", 2)),
        "mask": (mask, ("B", "H", "W")),
    })
    if dist_map.shape != mask.shape or bool(torch.isnan(dist_map).any()):
        # inf is allowed: the distance map of an empty mask
        raise ValueError(f"dist_map must have the shape of mask {tuple(mask.shape)} and no NaN, "
                         f"got {tuple(dist_map.shape)}")
    batch, height, width = mask.shape
    size = torch.tensor([width, height], dtype=points.dtype, device=points.device)
    pix = (points + 1.0) * (size / 2.0)                               # continuous pixels
    clamped = torch.minimum(pix.clamp(min=0.0), size)
    in_crop = ((pix >= 0) & (pix < size)).all(dim=-1)
    col = clamped[..., 0].floor().long().clamp(max=width - 1)
    row = clamped[..., 1].floor().long().clamp(max=height - 1)
    flat = (torch.arange(batch, device=points.device)[:, None] * height + row) * width + col
    on_mask = (mask != 0).reshape(-1)[flat]
    overshoot = torch.linalg.vector_norm(pix - clamped, dim=-1)
    dist = dist_map.reshape(-1).to(points.dtype)[flat] + overshoot
    return in_crop & on_mask, dist


def _mask_plausibility_update(pred_kp2d: Tensor, mask: Tensor, invisible: Tensor,
                              mask_valid: Tensor | None = None) -> dict[str, Tensor]:
    sizes = check_inputs({
        "pred_kp2d": (pred_kp2d, ("B", "S", NUM_COCO, 2)),
        "mask": (mask, ("B", "H", "W")),
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
    samples = pred_kp2d[keep, 1:]                                     # (b, S-1, 17, 2)
    inside, dist = points_to_mask(samples.flatten(1, 2), mask[keep],
                                  mask_distance_map(mask[keep], pred_kp2d.dtype))
    select = invisible[keep].unsqueeze(1).expand(-1, samples.shape[1], -1).flatten(1)
    return {
        sum_key("perc_in"): 100.0 * count(select & inside, dist),
        sum_key("min_dist"): masked_sum(dist, select),
        "count": count(select, dist),
    }


def mask_plausibility(pred_kp2d: Tensor, mask: Tensor, invisible: Tensor,
                      mask_valid: Tensor | None = None) -> dict[str, Tensor]:
    r"""PercIn and MinDist of the random hypotheses of invisible joints (paper section 5.1).

    Over all triples (example b, random hypothesis s >= 1, invisible joint k) of the kept
    examples, with :math:`d_{bsk}` the distance of the projected joint to the nearest mask
    pixel (:func:`points_to_mask`, 0 inside the mask),

    .. math::
        \text{perc\_in} = 100 \cdot \operatorname{mean}\,[\,\hat u_{bsk} \in M_b\,], \qquad
        \text{min\_dist} = \operatorname{mean}\, d_{bsk}.

    Examples with ``mask_valid`` False, an empty mask or no invisible joint are skipped (they
    add nothing). The mode (hypothesis 0) is excluded.

    Args:
        pred_kp2d: (B, S, 17, 2) projected hypotheses, crop coordinates [-1, 1] (S >= 2).
        mask: (B, H, W) bool / uint8 person-plausible region on the crop.
        invisible: (B, 17) bool, joints to evaluate (e.g. confidence < 0.5 or GT off-crop).
        mask_valid: optional (B,) bool; False skips the example.
    Returns:
        ``{"perc_in": () in %, "min_dist": () in pixels of the H x W mask}``; NaN when nothing
        was evaluated.

    Example:
        >>> import torch
        >>> m = torch.zeros(1, 4, 4, dtype=torch.bool); m[0, :, 0] = True   # left column
        >>> pred = torch.zeros(1, 3, 17, 2)
        >>> pred[0, 1, :, 0] = -0.9; pred[0, 2, :, 0] = 0.9                # on / 3 px off
        >>> inv = torch.zeros(1, 17, dtype=torch.bool); inv[0, 9] = True
        >>> {k: v.item() for k, v in mask_plausibility(pred, m, inv).items()}
        {'perc_in': 50.0, 'min_dist': 1.5}
    """
    return ratios(_mask_plausibility_update(pred_kp2d, mask, invisible, mask_valid), MASK_COUNTS)

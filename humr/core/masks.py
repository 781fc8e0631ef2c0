"""Person-mask lookups: dilation and exact point-to-mask distances (official convention).

The mask loss, the mask metrics and the stored heatmap-sample distances all use the official
release's convention (``train/losses/losses.py``, ``validation_step``): a crop point ``u``
maps to pixel space ``q = (u + 1) * R / 2`` (:func:`humr.core.crop.crop_to_pixels`) and mask
pixel (row i, column j) sits at the point ``(j, i)``; the distance of a point to the mask is
the Euclidean distance to the nearest mask pixel (:func:`mask_distance`), and a point within
0.71 px (``sqrt(0.5^2 + 0.5^2)``) counts as inside.
"""
from __future__ import annotations

import torch
from torch import Tensor

from humr.core.checks import check_inputs

__all__ = ["INSIDE_TOLERANCE", "dilate_mask", "mask_distance"]

#: Points (and stored heatmap samples) this close to a mask pixel count as inside (px).
INSIDE_TOLERANCE = 0.71


def dilate_mask(mask: Tensor, kernel_size: int = 3, iterations: int = 3) -> Tensor:
    """Binary dilation of person masks (official: 3 x 3 ones kernel, 3 iterations, cv2.dilate).

    Uses ``kornia.morphology.dilation`` (imported here, on the mask's device).

    Args:
        mask: (B, H, W) bool or integer, nonzero = mask.
        kernel_size: side of the square structuring element.
        iterations: number of dilations (0 returns the mask unchanged).
    Returns:
        (B, H, W) bool.
    """
    check_inputs({"mask": (mask, ("B", "H", "W"))}, finite=False)
    binary = mask != 0
    if iterations <= 0 or binary.numel() == 0:
        return binary
    from kornia.morphology import (
        dilation,  # kornia is imported only when masks are dilated
    )

    x = binary[:, None].float()
    kernel = torch.ones(kernel_size, kernel_size, device=mask.device)
    for _ in range(iterations):
        x = dilation(x, kernel)
    return x[:, 0] > 0.5


def mask_distance(points: Tensor, mask: Tensor) -> Tensor:
    """Exact Euclidean distance of pixel-space points to the nearest mask pixel (official).

    The nearest mask pixel of a point is either the pixel it rounds to or a boundary pixel of
    the mask (a mask pixel with a 4-neighbour outside the mask or the image): an interior
    pixel farther than half a pixel on some axis has a closer mask neighbour. So only those
    candidates are compared (hand-written: scipy's distance transform works on the pixel
    grid, not on continuous points).

    Args:
        points: (B, N, 2) pixel-space points ``(x, y)`` (:func:`humr.core.crop.crop_to_pixels`).
        mask: (B, H, W) bool or integer, nonzero = mask.
    Returns:
        (B, N) distances in pixels (``inf`` for an empty mask).

    Example:
        >>> import torch
        >>> m = torch.zeros(1, 4, 4, dtype=torch.bool); m[0, :, 0] = True   # column x = 0
        >>> mask_distance(torch.tensor([[[0.3, 1.0], [2.5, 2.0], [-1.0, 0.0]]]), m).tolist()
        [[0.30000001192092896, 2.5, 1.0]]
    """
    check_inputs({"points": (points, ("B", "N", 2)), "mask": (mask, ("B", "H", "W"))},
                 finite=False)
    binary = mask != 0
    batch, height, width = binary.shape
    pad = torch.nn.functional.pad(binary[:, None].float(), (1, 1, 1, 1))[:, 0] > 0.5
    interior = (pad[:, :-2, 1:-1] & pad[:, 2:, 1:-1] & pad[:, 1:-1, :-2] & pad[:, 1:-1, 2:])
    boundary = binary & ~interior
    # the pixel each point rounds to, if it is a mask pixel
    rounded = torch.round(points)
    col, row = rounded[..., 0], rounded[..., 1]
    on_image = (col >= 0) & (col <= width - 1) & (row >= 0) & (row <= height - 1)
    safe_row = torch.nan_to_num(row).clamp(0, height - 1).long()       # NaN points: any index,
    safe_col = torch.nan_to_num(col).clamp(0, width - 1).long()        # on_image is False there
    flat = (torch.arange(batch, device=mask.device)[:, None] * height + safe_row) * width + safe_col
    hit = on_image & binary.reshape(-1)[flat]
    near = torch.where(hit, torch.linalg.vector_norm(points - rounded, dim=-1),
                       torch.full_like(col, torch.inf))
    out = []
    for b in range(batch):
        rc = boundary[b].nonzero()
        if rc.shape[0] == 0:
            out.append(torch.full_like(col[b], torch.inf))
            continue
        xy = rc.flip(-1).to(points.dtype)
        d = torch.cdist(points[b], xy, compute_mode="donot_use_mm_for_euclid_dist")
        out.append(d.amin(dim=-1))
    return torch.minimum(near, torch.stack(out)) if batch else near

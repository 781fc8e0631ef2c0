"""Energy distance between predicted hypotheses and known posterior samples (mm)."""
from __future__ import annotations

import torch
from torch import Tensor

from humr.core.checks import check_inputs, require_at_least
from humr.metrics.functional._reduce import count, masked_sum, ratios, sum_key
from humr.metrics.functional.accuracy import M_TO_MM

__all__ = ["energy_distance", "posterior_distance"]

POSTERIOR_COUNTS = {"energy_occluded": "count_occluded", "energy_visible": "count_visible"}


def _pairwise(a: Tensor, b: Tensor) -> Tensor:
    # Exact differences: the matrix-product expansion (torch.cdist's default for large sets,
    # geomloss's "energy" kernel) loses ~1e-4 m under the square root in float32 near zero.
    return torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist")


def _weighted_mean(dist: Tensor, wa: Tensor, wb: Tensor) -> Tensor:
    return torch.einsum("...i,...ij,...j->...", wa, dist, wb)


def energy_distance(x: Tensor, y: Tensor, x_weights: Tensor | None = None,
                    y_weights: Tensor | None = None) -> Tensor:
    r"""Energy distance between two weighted point sets (V-statistic).

    .. math::
        \mathrm{ED}(X, Y) = 2\,\mathbb{E}\|X - Y\| - \mathbb{E}\|X - X'\| - \mathbb{E}\|Y - Y'\|

    with the expectations over the empirical distributions (pairs i = j included), so
    ED >= 0 up to rounding and ED = 0 for identical sets. Written by hand on ``torch.cdist``
    because geomloss's energy kernel uses the less accurate matrix-product expansion.

    Args:
        x: (..., N, d) points.
        y: (..., M, d) points (same leading dimensions).
        x_weights: optional (..., N) non-negative weights (normalised here), e.g. 0/1 validity.
        y_weights: optional (..., M) likewise.
    Returns:
        (...) energy distance in the units of the points; NaN where all weights are zero.

    Example:
        >>> import torch
        >>> x = torch.tensor([[0.0], [2.0]]); y = torch.tensor([[1.0]])
        >>> energy_distance(x, y).item()   # 2 * 1 - (0 + 2 + 2 + 0) / 4 - 0
        1.0
        >>> energy_distance(x, x).item()
        0.0
    """
    if x.shape[:-2] != y.shape[:-2] or x.shape[-1] != y.shape[-1] or x.dim() < 2:
        raise ValueError(f"x (..., N, d) and y (..., M, d) need equal leading dimensions and d, "
                         f"got {tuple(x.shape)} and {tuple(y.shape)}")
    lead = x.shape[:-2]
    wx = torch.ones(x.shape[:-1], dtype=x.dtype, device=x.device) if x_weights is None else x_weights
    wy = torch.ones(y.shape[:-1], dtype=y.dtype, device=y.device) if y_weights is None else y_weights
    wx = (wx / wx.sum(dim=-1, keepdim=True)).to(x.dtype).reshape(-1, x.shape[-2])
    wy = (wy / wy.sum(dim=-1, keepdim=True)).to(x.dtype).reshape(-1, y.shape[-2])
    xf, yf = x.reshape(-1, *x.shape[-2:]), y.reshape(-1, *y.shape[-2:])
    ed = (2.0 * _weighted_mean(_pairwise(xf, yf), wx, wy)
          - _weighted_mean(_pairwise(xf, xf), wx, wx)
          - _weighted_mean(_pairwise(yf, yf), wy, wy))
    return ed.reshape(lead)


def _posterior_distance_update(pred_joints: Tensor, posterior_joints: Tensor, occluded: Tensor,
                               valid_posterior: Tensor | None = None) -> dict[str, Tensor]:
    sizes = check_inputs({
        "pred_joints": (pred_joints, ("B", "S", "K", 3)),
        "posterior_joints": (posterior_joints, ("B", "P", "K", 3)),
        "occluded": (occluded, ("B", "K")),
        "valid_posterior": (valid_posterior, ("B", "P")),
    })
    require_at_least(sizes, "S", 2, "pred_joints", "the mode plus at least one random hypothesis")
    require_at_least(sizes, "P", 1, "posterior_joints", "at least one posterior sample")
    for key, flag in (("occluded", occluded), ("valid_posterior", valid_posterior)):
        if flag is not None and flag.dtype != torch.bool:
            raise TypeError(f"{key} must be a bool tensor, got {flag.dtype}")
    if valid_posterior is None:
        valid_posterior = torch.ones(posterior_joints.shape[:2], dtype=torch.bool,
                                     device=posterior_joints.device)
    keep = valid_posterior.any(dim=1)                                 # examples with a posterior
    x = pred_joints[keep, 1:].transpose(1, 2)                         # (b, K, S-1, 3)
    y = posterior_joints[keep].transpose(1, 2)                        # (b, K, P, 3)
    wy = valid_posterior[keep].unsqueeze(1).expand(-1, y.shape[1], -1).to(y.dtype)
    ed = energy_distance(x, y, y_weights=wy) * M_TO_MM               # (b, K)
    occ = occluded[keep]
    return {
        sum_key("energy_occluded"): masked_sum(ed, occ),
        sum_key("energy_visible"): masked_sum(ed, ~occ),
        "count_occluded": count(occ, ed),
        "count_visible": count(~occ, ed),
    }


def posterior_distance(pred_joints: Tensor, posterior_joints: Tensor, occluded: Tensor,
                       valid_posterior: Tensor | None = None) -> dict[str, Tensor]:
    r"""Energy distance (mm) between predicted and true posterior joints, occluded / visible.

    For every (example b, joint k), :math:`\mathrm{ED}_{bk}` = :func:`energy_distance` between
    the random hypotheses :math:`\{x_{bsk}\}_{s \ge 1}` (the mode is excluded) and the valid
    posterior samples :math:`\{y_{bpk}\}`; the results are the means of
    :math:`\mathrm{ED}_{bk}` over occluded and over visible (example, joint) pairs. Examples
    without any valid posterior sample are skipped.

    Args:
        pred_joints: (B, S, K, 3) root-relative joints in metres (S >= 2).
        posterior_joints: (B, P, K, 3) root-relative posterior samples in metres.
        occluded: (B, K) bool.
        valid_posterior: optional (B, P) bool, False marks padding samples.
    Returns:
        ``{"energy_occluded": (), "energy_visible": ()}`` in mm; NaN for an empty group.

    Example:
        >>> import torch
        >>> post = torch.randn(2, 50, 24, 3) * 0.05
        >>> pred = torch.cat([torch.zeros(2, 1, 24, 3), post], dim=1)   # mode + exact samples
        >>> occ = torch.zeros(2, 24, dtype=torch.bool); occ[:, 20:] = True
        >>> out = posterior_distance(pred, post, occ)
        >>> bool(out["energy_occluded"].abs() < 1e-3), bool(out["energy_visible"].abs() < 1e-3)
        (True, True)
    """
    return ratios(_posterior_distance_update(pred_joints, posterior_joints, occluded, valid_posterior),
                  POSTERIOR_COUNTS)

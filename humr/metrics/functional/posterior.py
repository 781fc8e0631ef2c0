"""Energy distance between predicted hypotheses and known posterior samples (mm)."""
from __future__ import annotations

import torch
from torch import Tensor

from humr.core.checks import check_inputs, require_at_least
from humr.losses.mmd import MMDLoss
from humr.metrics.functional._reduce import count, masked_sum, ratios, sum_key
from humr.metrics.functional.accuracy import M_TO_MM

__all__ = ["posterior_distance"]

POSTERIOR_COUNTS = {"energy_occluded": "count_occluded", "energy_visible": "count_visible"}


def _energy(x: Tensor, y: Tensor) -> Tensor:
    """Energy distance per set, x (..., N, d) vs y (..., M, d) -> (...): the biased MMD² of the
    kernel -||x - y|| (:class:`humr.losses.MMDLoss`, the one implementation), i.e.
    ``2 E|X - Y| - E|X - X'| - E|Y - Y'|`` over the empirical distributions (pairs i = j
    included), >= 0 up to rounding and 0 for identical sets."""
    return MMDLoss("energy", estimator="biased")(x, y)


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
    # one example at a time: the number of valid posterior samples differs between examples
    ed = pred_joints.new_zeros(int(keep.sum()), pred_joints.shape[2])   # (b, K)
    for i, b in enumerate(keep.nonzero().flatten().tolist()):
        ed[i] = _energy(pred_joints[b, 1:].transpose(0, 1),                   # (K, S-1, 3)
                        posterior_joints[b, valid_posterior[b]].transpose(0, 1)) * M_TO_MM
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

    For every (example b, joint k), :math:`\mathrm{ED}_{bk}` = the energy distance (biased MMD²
    of the kernel :math:`-\|x - y\|`, :class:`humr.losses.MMDLoss`) between
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

"""MaskPlausibility: PercIn and MinDist of invisible-joint hypotheses w.r.t. a person mask."""
from __future__ import annotations

from torch import Tensor

from humr.metrics.base import SumStateMetric
from humr.metrics.functional.mask import MASK_COUNTS, _mask_plausibility_update
from humr.registry import METRICS


@METRICS.register("mask_plausibility")
class MaskPlausibility(SumStateMetric):
    r"""Plausibility of invisible joints (paper section 5.1, Table 2): PercIn, the share (%)
    of random hypotheses whose projection lies inside the person mask, and MinDist, their
    mean distance (pixels of the mask grid, 0 inside) to the nearest mask pixel.

    Over the triples (example b, random hypothesis s >= 1, invisible joint k):
    ``perc_in`` :math:`= 100 \cdot \operatorname{mean}\,[\hat u_{bsk} \in M_b]`,
    ``min_dist`` :math:`= \operatorname{mean}\, d(\hat u_{bsk}, M_b)`. A point is inside when
    the crop pixel covering it is a mask pixel; the distance is the exact Euclidean distance
    transform (scipy) of that pixel. Points outside the crop count as outside the mask, and
    their distance is the transform at the nearest crop pixel plus the distance to the crop
    (see :func:`humr.metrics.functional.points_to_mask`). Examples whose ``mask_valid`` is
    False, whose mask is empty or that have no invisible joint are skipped. The mode is
    excluded.

    Args:
        kwargs: forwarded to :class:`torchmetrics.Metric`.

    ``update(pred_kp2d (B, S, 17, 2) crop [-1, 1] (S >= 2), mask (B, R, R) bool / uint8,
    invisible (B, 17) bool (confidence < 0.5 or ground truth outside the crop),
    mask_valid=None (B,) bool)``. ``compute()`` returns ``{perc_in, min_dist}`` (NaN when
    nothing was evaluated).

    Example:
        >>> import torch
        >>> from humr.metrics import MaskPlausibility
        >>> metric = MaskPlausibility()
        >>> mask = torch.zeros(1, 8, 8, dtype=torch.uint8); mask[0, :, :4] = 1   # left half
        >>> pred = torch.zeros(1, 5, 17, 2)
        >>> pred[0, 1:3, :, 0] = -0.5                   # 2 samples in pixel column 2 (inside)
        >>> pred[0, 3:, :, 0] = 0.5                     # 2 samples in pixel column 6 (3 px off)
        >>> invisible = torch.zeros(1, 17, dtype=torch.bool); invisible[0, [9, 10]] = True
        >>> metric.update(pred, mask, invisible, torch.tensor([True]))
        >>> {k: v.item() for k, v in metric.compute().items()}
        {'perc_in': 50.0, 'min_dist': 1.5}
    """

    higher_is_better = None
    counts = MASK_COUNTS

    def update(self, pred_kp2d: Tensor, mask: Tensor, invisible: Tensor,
               mask_valid: Tensor | None = None) -> None:
        """Add a batch (shapes in the class docstring)."""
        self._accumulate(_mask_plausibility_update(pred_kp2d, mask, invisible, mask_valid))

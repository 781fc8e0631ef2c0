"""MaskPlausibility: PercIn and MinDist of invisible-joint hypotheses w.r.t. a person mask."""
from __future__ import annotations

from typing import Any

from torch import Tensor

from humr.metrics.base import SumStateMetric
from humr.metrics.functional.mask import MASK_COUNTS, _mask_plausibility_update
from humr.registry import METRICS


@METRICS.register("mask_plausibility")
class MaskPlausibility(SumStateMetric):
    r"""Plausibility of invisible joints (paper section 5.1, Table 2): PercIn, the share (%)
    of hypotheses whose projection lies inside the person mask, and MinDist, their mean
    distance (pixels of the R x R mask grid, 0 inside) to the nearest mask pixel.

    Over the triples (example b, hypothesis s, invisible joint k), with the official pixel
    convention and 0.71 px tolerance of :func:`humr.metrics.functional.points_mask_distance`:
    ``perc_in`` :math:`= 100 \cdot \operatorname{mean}\,[d_{bsk} = 0]`,
    ``min_dist`` :math:`= \operatorname{mean}\, d_{bsk}`. All S hypotheses count, the mode
    included (official ``validation_step``; ``include_mode=False`` for the random ones only).
    Examples whose ``mask_valid`` is False, whose mask is empty or that have no invisible
    joint are skipped.

    Args:
        include_mode: include hypothesis 0.
        kwargs: forwarded to :class:`torchmetrics.Metric`.

    ``update(pred_kp2d (B, S, 17, 2) crop [-1, 1] (S >= 2), mask (B, R, R) bool / uint8,
    invisible (B, 17) bool (official: confidence < 0.5),
    mask_valid=None (B,) bool)``. ``compute()`` returns ``{perc_in, min_dist}`` (NaN when
    nothing was evaluated).

    Example:
        >>> import torch
        >>> from humr.metrics import MaskPlausibility
        >>> metric = MaskPlausibility()
        >>> mask = torch.zeros(1, 8, 8, dtype=torch.uint8); mask[0, :, :4] = 1   # left half
        >>> pred = torch.zeros(1, 5, 17, 2)
        >>> pred[0, :3, :, 0] = -0.5                    # mode + 2 samples at x = 2 (inside)
        >>> pred[0, 3:, :, 0] = 0.5                     # 2 samples at x = 6 (3 px off column 3)
        >>> invisible = torch.zeros(1, 17, dtype=torch.bool); invisible[0, [9, 10]] = True
        >>> metric.update(pred, mask, invisible, torch.tensor([True]))
        >>> {k: round(v.item(), 3) for k, v in metric.compute().items()}
        {'perc_in': 60.0, 'min_dist': 1.2}
    """

    higher_is_better = None
    counts = MASK_COUNTS

    def __init__(self, include_mode: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.include_mode = include_mode

    def update(self, pred_kp2d: Tensor, mask: Tensor, invisible: Tensor,
               mask_valid: Tensor | None = None) -> None:
        """Add a batch (shapes in the class docstring)."""
        self._accumulate(_mask_plausibility_update(pred_kp2d, mask, invisible, mask_valid,
                                                   self.include_mode))

"""PosteriorDistance: energy distance between predicted hypotheses and the true posterior."""
from __future__ import annotations

from torch import Tensor

from humr.metrics.base import SumStateMetric
from humr.metrics.functional.posterior import (
    POSTERIOR_COUNTS,
    _posterior_distance_update,
)
from humr.registry import METRICS


@METRICS.register("posterior_distance")
class PosteriorDistance(SumStateMetric):
    r"""Distance of the predicted distribution to the known posterior (synthetic benchmark),
    in mm, for occluded and for visible joints.

    Per (example b, joint k), the energy distance between the random hypotheses
    :math:`X = \{x_{bsk}\}_{s\ge1}` (the mode is excluded) and the valid posterior samples
    :math:`Y = \{y_{bpk}\}`,

    .. math::
        \mathrm{ED}_{bk} = 2\,\mathbb{E}\|X - Y\| - \mathbb{E}\|X - X'\| - \mathbb{E}\|Y - Y'\|

    over the empirical distributions (V-statistic: 0 for identical sets, computed by
    :class:`humr.losses.MMDLoss` ``("energy", estimator="biased")``); ``energy_occluded`` /
    ``energy_visible`` average :math:`\mathrm{ED}_{bk}` over the occluded / visible (example, joint) pairs.
    Examples without a valid posterior sample are skipped.

    Args:
        kwargs: forwarded to :class:`torchmetrics.Metric`.

    ``update(pred_joints (B, S, K, 3) root-relative metres (S >= 2), posterior_joints
    (B, P, K, 3) root-relative metres, occluded (B, K) bool, valid_posterior=None (B, P)
    bool)``. ``compute()`` returns ``{energy_occluded, energy_visible}`` in mm (NaN for a group
    that never occurred).

    Example:
        >>> import torch
        >>> from humr.metrics import PosteriorDistance
        >>> metric = PosteriorDistance()
        >>> post = torch.zeros(1, 2, 24, 3); post[0, 1, :, 0] = 0.01     # samples 0 and 10 mm
        >>> pred = torch.zeros(1, 3, 24, 3); pred[0, 2, :, 0] = 0.01     # mode + same samples
        >>> pred[0, :, 20:, 0] += 0.1                                    # joints 20.. shifted
        >>> occluded = torch.zeros(1, 24, dtype=torch.bool); occluded[0, 20:] = True
        >>> metric.update(pred, post, occluded)
        >>> {k: round(v.item(), 3) for k, v in metric.compute().items()}   # 2 * 100 - 5 - 5
        {'energy_occluded': 190.0, 'energy_visible': 0.0}
    """

    higher_is_better = False
    counts = POSTERIOR_COUNTS

    def update(self, pred_joints: Tensor, posterior_joints: Tensor, occluded: Tensor,
               valid_posterior: Tensor | None = None) -> None:
        """Add a batch (shapes in the class docstring)."""
        self._accumulate(_posterior_distance_update(pred_joints, posterior_joints, occluded,
                                                    valid_posterior))

"""Consistency2D and Spread3D: COCO-17 keypoint metrics of hypothesis sets."""
from __future__ import annotations

from typing import Any

from torch import Tensor

from humr.metrics.base import SumStateMetric
from humr.metrics.functional.keypoints import (
    CONSISTENCY_COUNTS,
    SPREAD_COUNTS,
    _consistency_2d_update,
    _spread_3d_update,
)
from humr.registry import METRICS


@METRICS.register("consistency_2d")
class Consistency2D(SumStateMetric):
    r"""Input consistency (paper section 5.1, Table 2): 2D error of visible COCO-17 joints in
    pixels of a ``crop_pixels`` x ``crop_pixels`` crop, for the mode and the random samples.

    With :math:`e_{bsk} = \|\hat u_{bsk} - u_{bk}\| \cdot R / 2` (crop [-1, 1] -> pixels) and
    visible joints :math:`c_{bk} \ge \tau`:
    ``kp2d_mode`` :math:`= \operatorname{mean}_{(b,k)\,\text{visible}} e_{b0k}` and
    ``kp2d_samples`` :math:`= \operatorname{mean}_{(b,k)\,\text{visible}}
    \frac{1}{S-1}\sum_{s \ge 1} e_{bsk}` (random hypotheses only).

    Args:
        threshold: visibility threshold :math:`\tau` on the detector confidence (0.5).
        crop_pixels: R, side of the pixel grid the error is reported in (256).
        kwargs: forwarded to :class:`torchmetrics.Metric`.

    ``update(pred_kp2d (B, S, 17, 2) crop [-1, 1] (S >= 2, hypothesis 0 = mode),
    gt_kp2d (B, 17, 2) crop [-1, 1], confidence (B, 17))``. ``compute()`` returns
    ``{kp2d_mode, kp2d_samples}`` in pixels (NaN if no visible joint was seen).

    Example:
        >>> import torch
        >>> from humr.metrics import Consistency2D
        >>> metric = Consistency2D()
        >>> pred = torch.zeros(4, 11, 17, 2); pred[:, 1:, :, 1] = 0.25   # samples 32 px low
        >>> conf = torch.rand(4, 17)
        >>> metric.update(pred, torch.zeros(4, 17, 2), conf)
        >>> {k: v.item() for k, v in metric.compute().items()}
        {'kp2d_mode': 0.0, 'kp2d_samples': 32.0}
    """

    higher_is_better = False
    counts = CONSISTENCY_COUNTS

    def __init__(self, threshold: float = 0.5, crop_pixels: int = 256, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.threshold = threshold
        self.crop_pixels = crop_pixels

    def update(self, pred_kp2d: Tensor, gt_kp2d: Tensor, confidence: Tensor) -> None:
        """Add a batch (shapes in the class docstring)."""
        self._accumulate(_consistency_2d_update(pred_kp2d, gt_kp2d, confidence,
                                                self.threshold, self.crop_pixels))


@METRICS.register("spread_3d")
class Spread3D(SumStateMetric):
    r"""Diversity (paper section 5.1, Table 2): mean distance of each COCO-17 joint's 3D
    hypotheses to their mean, in mm, for visible and for invisible joints.

    All S hypotheses enter, the mode included (official ``joints_3d_diversity``;
    ``include_mode=False`` uses the random ones only):
    :math:`d_{bk} = \frac{1}{S}\sum_{s}\|x_{bsk} - \bar x_{bk}\|`,
    :math:`\bar x_{bk} = \frac{1}{S}\sum_{s} x_{bsk}`; ``spread_visible`` /
    ``spread_invisible`` average :math:`d_{bk}` over joints with confidence :math:`\ge \tau` /
    :math:`< \tau` (:mod:`humr.core.visibility`).

    Args:
        threshold: visibility threshold :math:`\tau` on the detector confidence (0.5).
        include_mode: include hypothesis 0.
        kwargs: forwarded to :class:`torchmetrics.Metric`.

    ``update(pred_kp3d (B, S, 17, 3) root-relative metres (S >= 2), confidence (B, 17))``.
    ``compute()`` returns ``{spread_visible, spread_invisible}`` in mm (NaN for a group that
    never occurred).

    Example:
        >>> import torch
        >>> from humr.metrics import Spread3D
        >>> metric = Spread3D()
        >>> kp = torch.zeros(2, 5, 17, 3)
        >>> kp[:, 1::2, 9, 2] = 0.02; kp[:, 2::2, 9, 2] = -0.02   # joint 9 spreads by 20 mm
        >>> conf = torch.ones(2, 17); conf[:, 9:] = 0.2           # joints 9..16 invisible
        >>> {k: round(v.item(), 2) for k, v in metric(kp, conf).items()}   # (0 + 4 * 20) / 5 / 8
        {'spread_visible': 0.0, 'spread_invisible': 2.0}
    """

    higher_is_better = None
    counts = SPREAD_COUNTS

    def __init__(self, threshold: float = 0.5, include_mode: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.threshold = threshold
        self.include_mode = include_mode

    def update(self, pred_kp3d: Tensor, confidence: Tensor) -> None:
        """Add a batch (shapes in the class docstring)."""
        self._accumulate(_spread_3d_update(pred_kp3d, confidence, self.threshold,
                                           self.include_mode))

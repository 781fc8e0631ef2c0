"""HypothesisAccuracy: MPJPE, PA-MPJPE, PVE of the mode and of the best of N hypotheses."""
from __future__ import annotations

from typing import Any

from torch import Tensor

from humr.metrics.base import SumStateMetric
from humr.metrics.functional.accuracy import (
    ACCURACY_COUNTS,
    ACCURACY_OPTIONAL,
    _hypothesis_accuracy_update,
)
from humr.metrics.protocols import EvalProtocol, get_protocol
from humr.registry import METRICS


@METRICS.register("hypothesis_accuracy")
class HypothesisAccuracy(SumStateMetric):
    r"""Distribution accuracy (paper section 5.1, Table 1): errors in mm of the mode and of
    the best of the S hypotheses.

    Per example b and hypothesis s, after centring prediction and ground truth on their own
    pelvis (protocol ``3dpw``: mean of LSP hips 2, 3; ``emdb``: mean of SMPL hips 1, 2),

    .. math::
        \mathrm{MPJPE}_{bs} = \tfrac{1}{K}\textstyle\sum_k \|p_{bsk} - g_{bk}\|, \quad
        \mathrm{PA}_{bs} = \min_{\sigma, R, t} \tfrac{1}{K}\textstyle\sum_k
            \|\sigma R p_{bsk} + t - g_{bk}\|, \quad
        \mathrm{PVE}_{bs} = \tfrac{1}{V}\textstyle\sum_v \|v_{bsv} - w_{bv}\|

    (joints and vertices centred on the protocol's root, then the evaluated joints selected;
    PA via :func:`humr.geometry.procrustes_align`).
    ``*_mode`` averages :math:`E_{b0}` (hypothesis 0 is the mode, z = 0) and ``*_min``
    averages :math:`\min_s E_{bs}` (over all S hypotheses, the mode included, separately per
    metric) over the examples.

    Args:
        protocol: ``"3dpw"`` (K = 17 H36M joints from the H36M regressor; root = H36M pelvis,
            LSP-14 evaluated) or ``"emdb"`` (K = 24 SMPL joints; root = mean of the hips),
            or an :class:`humr.metrics.protocols.EvalProtocol`.
        kwargs: forwarded to :class:`torchmetrics.Metric`.

    ``update(pred_joints (B, S, K, 3), gt_joints (B, K, 3), pred_vertices=None (B, S, V, 3),
    gt_vertices=None (B, V, 3))``, all in metres. ``compute()`` returns ``{mpjpe_mode,
    pa_mpjpe_mode, mpjpe_min, pa_mpjpe_min}`` plus ``{pve_mode, pve_min}`` (averaged over the
    examples that came with vertices) once vertices were given, in mm.

    Example:
        >>> import torch
        >>> from humr.metrics import HypothesisAccuracy
        >>> metric = HypothesisAccuracy(protocol="3dpw")
        >>> gt = torch.randn(2, 17, 3, generator=torch.Generator().manual_seed(0))
        >>> pred = gt[:, None].repeat(1, 5, 1, 1) + 0.3   # translated copies ...
        >>> pred[:, 0, [6, 5, 4, 1, 2, 3, 16, 15, 14, 11], 1] += 0.07   # ... mode off at 10 LSP joints
        >>> metric.update(pred, gt)
        >>> out = {k: round(v.item(), 1) for k, v in metric.compute().items()}
        >>> out["mpjpe_mode"], out["mpjpe_min"], out["pa_mpjpe_min"]   # 10 / 14 * 70 mm
        (50.0, 0.0, 0.0)
        >>> sorted(out)
        ['mpjpe_min', 'mpjpe_mode', 'pa_mpjpe_min', 'pa_mpjpe_mode']
    """

    higher_is_better = False
    counts = ACCURACY_COUNTS
    optional = ACCURACY_OPTIONAL

    def __init__(self, protocol: str | EvalProtocol = "3dpw", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.protocol = get_protocol(protocol)

    def update(self, pred_joints: Tensor, gt_joints: Tensor,
               pred_vertices: Tensor | None = None, gt_vertices: Tensor | None = None) -> None:
        """Add a batch (shapes in the class docstring)."""
        self._accumulate(_hypothesis_accuracy_update(pred_joints, gt_joints, self.protocol,
                                                     pred_vertices, gt_vertices))

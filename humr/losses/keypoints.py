"""2D keypoint reprojection losses: the mode (Eq. 6) and the random-hypothesis variants of Table S2."""
from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor, nn

from humr.heatmaps import visible_mask
from humr.losses._inputs import fetch, to_crop
from humr.losses._reduce import weighted_mean
from humr.registry import LOSSES

__all__ = ["Kp2dHypothesesLoss", "Kp2dModeLoss", "Kp2dVisibleLoss"]

NUM_COCO = 17


def _l1(pred: Tensor, gt: Tensor) -> Tensor:
    return (pred - gt).abs().sum(dim=-1)


@LOSSES.register("kp2d_mode")
class Kp2dModeLoss(nn.Module):
    r"""l1 error of the mode's projected body joints (paper Eq. 6), flag-weighted.

    .. math::
        L = \frac{\sum_{b,j} w_{bj} \|\pi_{b0j} - \hat J_{bj}\|_1}{\sum_{b,j} w_{bj}}

    with :math:`\pi_{b0j}` = ``out['joints2d'][:, 0]`` (B, J, 2) and :math:`\hat J`,
    :math:`w` = ``batch['kp2d_gt']`` (B, J_gt, 3) mapped to crop coordinates; the first J
    ground-truth joints are used (J = 22 for the SMPL-X body against SMPL's 24). 0 when no
    joint is flagged.
    """

    def forward(self, batch: Mapping[str, Tensor], out: Mapping[str, Tensor]) -> Tensor:
        b, o = fetch(batch, out, {"kp2d_gt": ("B", "G", 3)}, {"joints2d": ("B", "S", "J", 2)})
        pred = o["joints2d"][:, 0]
        joints = pred.shape[1]
        if b["kp2d_gt"].shape[1] < joints:
            raise ValueError(f"batch['kp2d_gt'] must have at least J = {joints} joints "
                             f"(shape (B, >= {joints}, 3)), got {tuple(b['kp2d_gt'].shape)}")
        gt = b["kp2d_gt"][:, :joints]
        return weighted_mean(_l1(pred, to_crop(gt[..., :2].to(pred.dtype), batch)), gt[..., 2])


@LOSSES.register("kp2d_all")
class Kp2dHypothesesLoss(nn.Module):
    r"""l1 error of every random hypothesis' COCO joints to the ground truth (Table S2, 2D-all).

    .. math::
        L = \frac{\sum_{b,s \ge 1,k} w_{bk} \|u_{bsk} - \hat u_{bk}\|_1}{(S - 1) \sum_{b,k} w_{bk}}

    with ``out['keypoints2d']`` (B, S, 17, 2) and ``batch['coco_gt']`` (B, 17, 3) (flag as
    weight). With ``visible_only`` the weight is also zero for joints whose ``hm_max_conf`` is
    not above ``visible_threshold`` (2D-vis).
    """

    def __init__(self, visible_only: bool = False, visible_threshold: float = 0.5):
        super().__init__()
        self.visible_only, self.visible_threshold = visible_only, visible_threshold

    def forward(self, batch: Mapping[str, Tensor], out: Mapping[str, Tensor]) -> Tensor:
        keys = {"coco_gt": ("B", NUM_COCO, 3)}
        if self.visible_only:
            keys["hm_max_conf"] = ("B", NUM_COCO)
        b, o = fetch(batch, out, keys, {"keypoints2d": ("B", "S", NUM_COCO, 2)})
        hyp = o["keypoints2d"][:, 1:]
        gt = to_crop(b["coco_gt"][..., :2].to(hyp.dtype), batch)
        weight = b["coco_gt"][..., 2].to(hyp.dtype)
        if self.visible_only:
            weight = weight * visible_mask(b["hm_max_conf"], self.visible_threshold)
        return weighted_mean(_l1(hyp, gt.unsqueeze(1)), weight.unsqueeze(1))


@LOSSES.register("kp2d_vis")
class Kp2dVisibleLoss(Kp2dHypothesesLoss):
    """:class:`Kp2dHypothesesLoss` on visible joints only (Table S2, 2D-vis)."""

    def __init__(self, visible_threshold: float = 0.5):
        super().__init__(visible_only=True, visible_threshold=visible_threshold)

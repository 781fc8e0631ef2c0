"""Keypoint losses: the mode's 2D reprojection (Eq. 6), the random-hypothesis variants of
Table S2, and the mode's 3D joints (ProHMR's ``KEYPOINTS_3D_MODE``, not in the paper)."""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from humr.core.skeleton import NUM_COCO
from humr.core.visibility import VISIBLE_THRESHOLD, visible
from humr.losses._inputs import BatchLoss, to_crop
from humr.losses._reduce import weighted, weighted_mean
from humr.registry import LOSSES

__all__ = ["Kp2dHypothesesLoss", "Kp2dModeLoss", "Kp2dVisibleLoss", "Kp3dModeLoss", "kp2d_mode_loss",
           "kp3d_mode_loss"]

REDUCTIONS = ("sum_joints", "mean")


def _l1(pred: Tensor, gt: Tensor) -> Tensor:
    return (pred - gt).abs().sum(dim=-1)


def kp2d_mode_loss(pred: Tensor, gt: Tensor, weight: Tensor, reduction: str = "sum_joints") -> Tensor:
    r"""l1 reprojection error of the mode, tensor core of :class:`Kp2dModeLoss`.

    Args:
        pred: (B, J, 2) projected joints of the mode, crop coordinates (any trailing size C
            works: :func:`kp3d_mode_loss` passes 3D joints).
        gt: (B, J, 2) ground truth, crop coordinates.
        weight: (B, J) per-joint flags / confidences.
        reduction: ``"sum_joints"`` (official ``Keypoint2DLoss`` then ``/ batch_size``):
            :math:`\frac{1}{B}\sum_{b,j} w_{bj}\|\pi_{bj} - \hat J_{bj}\|_1`; ``"mean"``: the same
            sum divided by :math:`\sum w` instead of B (J times weaker with all flags set).
    Returns:
        () loss.
    """
    err = _l1(pred, gt)
    if reduction == "sum_joints":
        return weighted(err, weight).sum() / pred.shape[0]
    if reduction == "mean":
        return weighted_mean(err, weight)
    raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")


@LOSSES.register("kp2d_mode")
class Kp2dModeLoss(BatchLoss):
    r"""l1 error of the mode's projected body joints (paper Eq. 6), flag-weighted.

    Reads ``out['joints2d'][:, 0]`` (B, J, 2) and ``batch['kp2d_gt']`` (B, J_gt, 3) mapped to
    crop coordinates; the first J ground-truth joints are used (J = 22 for the SMPL-X body
    against SMPL's 24; official: 24 SMPL-X joints). See :func:`kp2d_mode_loss`.

    Args:
        reduction: ``"sum_joints"`` (default, official: summed over joints, averaged over
            the batch) or ``"mean"`` (averaged over flagged joints).
        validate_args: see :class:`humr.losses._inputs.BatchLoss`.
    """

    def __init__(self, reduction: str = "sum_joints", validate_args: bool = False):
        super().__init__(validate_args)
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        self.reduction = reduction

    def forward(self, batch: Mapping[str, Tensor], out: Mapping[str, Tensor]) -> Tensor:
        b, o = self.fetch(batch, out, {"kp2d_gt": ("B", "G", 3)}, {"joints2d": ("B", "S", "J", 2)})
        pred = o["joints2d"][:, 0]
        joints = pred.shape[1]
        if b["kp2d_gt"].shape[1] < joints:
            raise ValueError(f"batch['kp2d_gt'] must have at least J = {joints} joints "
                             f"(shape (B, >= {joints}, 3)), got {tuple(b['kp2d_gt'].shape)}")
        gt = b["kp2d_gt"][:, :joints].to(pred.dtype)
        return kp2d_mode_loss(pred, to_crop(gt[..., :2], batch), gt[..., 2], self.reduction)


def kp3d_mode_loss(pred: Tensor, gt: Tensor, weight: Tensor | None = None, root: int = 0,
                   reduction: str = "sum_joints") -> Tensor:
    r"""l1 error of the mode's root-relative 3D joints, tensor core of :class:`Kp3dModeLoss`.

    .. math::
        L = \frac{1}{B}\sum_{b,j} w_{bj} \|(X_{bj} - X_{br}) - (\hat X_{bj} - \hat X_{br})\|_1

    with r the root joint (ProHMR's ``Keypoint3DLoss``: l1, pelvis-relative, summed over
    joints and coordinates, then divided by the batch size).

    Args:
        pred: (B, J, 3) joints of the mode, metres.
        gt: (B, J, 3) ground-truth joints in the same frame, metres.
        weight: (B, J) per-joint flags (default: all ones).
        root: index of the joint both sides are made relative to (SMPL's pelvis, 0).
        reduction: as :func:`kp2d_mode_loss`.
    Returns:
        () loss, metres.

    Example:
        >>> import torch
        >>> gt = torch.zeros(1, 2, 3)
        >>> pred = torch.tensor([[[1.0, 1.0, 1.0], [1.0, 1.5, 0.0]]])   # root moved by (1, 1, 1)
        >>> float(kp3d_mode_loss(pred, gt))        # second joint, root-relative: 0.5 + 1
        1.5
    """
    if weight is None:
        weight = torch.ones(pred.shape[:-1], dtype=pred.dtype, device=pred.device)
    return kp2d_mode_loss(pred - pred[:, root:root + 1], gt - gt[:, root:root + 1], weight, reduction)


@LOSSES.register("kp3d_mode")
class Kp3dModeLoss(BatchLoss):
    r"""l1 error of the mode's root-relative 3D body joints (ProHMR's ``KEYPOINTS_3D_MODE``).

    Neither the paper nor its release has this term: the release fine-tunes a model whose
    lift from the image to 3D was taught by BEDLAM pre-training (``PRETRAINED_CKPT: bedlam``,
    a frozen BEDLAM-CLIFF backbone). A model trained from scratch otherwise learns the lift
    from the flow's NLL alone; this term gives the mode a direct 3D gradient, as ProHMR does
    (weight 0.05). Reads ``out['joints3d'][:, 0]`` (B, J, 3) and ``out['joints3d_gt']``
    (B, J, 3), which :class:`humr.objective.Objective` fills from ``batch['pose']`` and
    ``batch['betas']`` (it is declared in :attr:`needs`). See :func:`kp3d_mode_loss`.

    Args:
        root: joint both sides are made relative to (0, the pelvis).
        reduction: ``"sum_joints"`` (default, ProHMR's) or ``"mean"`` (over joints).
        validate_args: see :class:`humr.losses._inputs.BatchLoss`.
    """

    needs = frozenset({"joints3d_gt"})

    def __init__(self, root: int = 0, reduction: str = "sum_joints", validate_args: bool = False):
        super().__init__(validate_args)
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        self.root, self.reduction = int(root), reduction

    def forward(self, batch: Mapping[str, Tensor], out: Mapping[str, Tensor]) -> Tensor:
        _, o = self.fetch(batch, out, {}, {"joints3d": ("B", "S", "J", 3),
                                           "joints3d_gt": ("B", "J", 3)})
        pred = o["joints3d"][:, 0]
        return kp3d_mode_loss(pred, o["joints3d_gt"].to(pred.dtype), root=self.root,
                              reduction=self.reduction)


@LOSSES.register("kp2d_all")
class Kp2dHypothesesLoss(BatchLoss):
    r"""l1 error of every random hypothesis' COCO joints to the ground truth (Table S2, 2D-all).

    .. math::
        L = \frac{\sum_{b,s \ge 1,k} w_{bk} \|u_{bsk} - \hat u_{bk}\|_1}{(S - 1) \sum_{b,k} w_{bk}}

    with ``out['keypoints2d']`` (B, S, 17, 2) and ``batch['coco_gt']`` (B, 17, 3) (flag as
    weight). With ``visible_only`` the weight is also zero for joints that are not visible
    (``hm_max_conf >= visible_threshold``, :func:`humr.core.visibility.visible`) (2D-vis).
    The official release has no such term (Table S2 only).
    """

    def __init__(self, visible_only: bool = False, visible_threshold: float = VISIBLE_THRESHOLD,
                 validate_args: bool = False):
        super().__init__(validate_args)
        self.visible_only, self.visible_threshold = visible_only, visible_threshold

    def forward(self, batch: Mapping[str, Tensor], out: Mapping[str, Tensor]) -> Tensor:
        keys = {"coco_gt": ("B", NUM_COCO, 3)}
        if self.visible_only:
            keys["hm_max_conf"] = ("B", NUM_COCO)
        b, o = self.fetch(batch, out, keys, {"keypoints2d": ("B", "S", NUM_COCO, 2)})
        hyp = o["keypoints2d"][:, 1:]
        gt = to_crop(b["coco_gt"][..., :2].to(hyp.dtype), batch)
        weight = b["coco_gt"][..., 2].to(hyp.dtype)
        if self.visible_only:
            weight = weight * visible(b["hm_max_conf"], self.visible_threshold)
        return weighted_mean(_l1(hyp, gt.unsqueeze(1)), weight.unsqueeze(1))


@LOSSES.register("kp2d_vis")
class Kp2dVisibleLoss(Kp2dHypothesesLoss):
    """:class:`Kp2dHypothesesLoss` on visible joints only (Table S2, 2D-vis)."""

    def __init__(self, visible_threshold: float = VISIBLE_THRESHOLD, validate_args: bool = False):
        super().__init__(visible_only=True, visible_threshold=visible_threshold,
                         validate_args=validate_args)

"""The one visibility rule and the MMD target rule (official release semantics).

With ``conf`` the detector's maximum heatmap confidence of a joint:

* visible: ``conf >= 0.5``; invisible: ``conf < 0.5`` (official ``max_confs < 0.5`` in
  ``train/losses/losses.py``; both sides of 0.5 are decided by this module only);
* uncertain: ``0.15 < conf < 0.7`` (official ``HM_SAMPLE_MIN_TH`` / ``HM_SAMPLE_MAX_TH``);
* heatmap targets (MMD, section 4.5): articulated AND uncertain AND ground truth inside the
  detector box (``|u| <= 0.75``, :func:`humr.core.crop.inside_box`) AND inside the crop;
  every other joint's targets are its ground truth;
* MMD supervision: ground truth inside the crop, and a non-articulated joint must be visible;
* mask loss: a joint is penalised when invisible or its ground truth lies outside the crop
  (:func:`mask_joints`, official ``joint_invis``); the mask metrics (PercIn, MinDist) use
  invisible joints only (official ``validation_step``).

Example:
    >>> import torch
    >>> visible(torch.tensor([0.49, 0.5, 0.51])).tolist()
    [False, True, True]
    >>> uncertain(torch.tensor([0.15, 0.16, 0.69, 0.7])).tolist()
    [False, True, True, False]
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from humr.core.skeleton import ARTICULATED_COCO

__all__ = ["UNCERTAIN_RANGE", "VISIBLE_THRESHOLD", "articulated_mask", "heatmap_target_joints",
           "invisible", "mask_joints", "mmd_supervised", "uncertain", "visible"]

#: A joint is visible when its confidence is at least this.
VISIBLE_THRESHOLD = 0.5
#: Open interval of confidences whose heatmap samples serve as MMD targets.
UNCERTAIN_RANGE = (0.15, 0.7)


def visible(conf: Tensor, threshold: float = VISIBLE_THRESHOLD) -> Tensor:
    """(..., K) confidences -> (..., K) bool, ``conf >= threshold``."""
    return conf >= threshold


def invisible(conf: Tensor, threshold: float = VISIBLE_THRESHOLD) -> Tensor:
    """(..., K) confidences -> (..., K) bool, ``conf < threshold`` (the complement of visible)."""
    return ~visible(conf, threshold)


def uncertain(conf: Tensor, low: float = UNCERTAIN_RANGE[0],
              high: float = UNCERTAIN_RANGE[1]) -> Tensor:
    """(..., K) confidences -> (..., K) bool, ``low < conf < high``."""
    return (conf > low) & (conf < high)


def articulated_mask(num_joints: int, articulated: Sequence[int] = ARTICULATED_COCO,
                     device: torch.device | str | None = None) -> Tensor:
    """(K,) bool, True at the ``articulated`` joint indices."""
    out = torch.zeros(num_joints, dtype=torch.bool, device=device)
    out[list(articulated)] = True
    return out


def heatmap_target_joints(conf: Tensor, gt_in_crop: Tensor, gt_in_box: Tensor,
                          articulated: Sequence[int] = ARTICULATED_COCO,
                          low: float = UNCERTAIN_RANGE[0],
                          high: float = UNCERTAIN_RANGE[1]) -> Tensor:
    """Joints whose MMD targets are heatmap samples: (B, K) bool.

    Args:
        conf: (B, K) detector confidence (heatmap maximum).
        gt_in_crop: (B, K) bool, ground truth inside the training crop.
        gt_in_box: (B, K) bool, ground truth inside the detector box.
        articulated, low, high: the articulated joints and the uncertain range.
    """
    art = articulated_mask(conf.shape[-1], articulated, conf.device)
    return art & uncertain(conf, low, high) & gt_in_box & gt_in_crop


def mmd_supervised(conf: Tensor, gt_in_crop: Tensor,
                   articulated: Sequence[int] = ARTICULATED_COCO,
                   threshold: float = VISIBLE_THRESHOLD) -> Tensor:
    """(B, K) bool: joint slots that get the MMD loss (GT in the crop; non-articulated: visible)."""
    art = articulated_mask(conf.shape[-1], articulated, conf.device)
    return gt_in_crop & (art | visible(conf, threshold))


def mask_joints(conf: Tensor, gt_in_crop: Tensor, threshold: float = VISIBLE_THRESHOLD) -> Tensor:
    """(B, K) bool: joints the mask loss penalises (invisible, or GT outside the crop)."""
    return invisible(conf, threshold) | ~gt_in_crop

"""The person-mask loss (paper section 4.3): pull implausible hypotheses of invisible joints back."""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from humr.heatmaps import visible_mask
from humr.losses._inputs import fetch, in_crop, to_crop
from humr.losses._reduce import weighted_mean
from humr.metrics.functional.mask import points_to_mask
from humr.registry import LOSSES

__all__ = ["MaskLoss"]

NUM_COCO = 17


@LOSSES.register("mask")
class MaskLoss(nn.Module):
    r"""l1 distance of off-mask hypotheses of invisible joints to the nearest in-mask anchor.

    A point (example b, random hypothesis s >= 1, COCO joint k) is penalised when

    - the example has ``batch['mask_valid']`` True and a non-empty ``batch['mask']``;
    - joint k is invisible: ``hm_max_conf <= visible_threshold`` (not visible) or its valid
      ground truth lies outside the crop;
    - the projection :math:`u_{bsk}` (``out['keypoints2d']``) lies inside the crop but on a
      pixel of the R x R mask that is 0 (pixel ``floor((u + 1) / 2 * R)``);
    - an anchor exists: the heatmap samples of (b, k) inside the mask
      (``hm_samples_mask_dist == 0`` and ``hm_values > 0``), or, when there is none, the
      ground truth if it is flagged valid.

    .. math::
        L = \frac{1}{|P|} \sum_{(b,s,k) \in P} \min_{a \in A_{bk}} \|u_{bsk} - a\|_1

    in crop coordinates (closest anchor by the same l1 distance); 0 (with a gradient) when
    nothing is penalised.

    Args:
        visible_threshold: a joint is visible when its heatmap maximum exceeds it.

    Example:
        >>> import torch
        >>> B, S = 1, 2
        >>> mask = torch.zeros(B, 8, 8, dtype=torch.uint8); mask[:, :, :4] = 1     # left half
        >>> batch = {"center": torch.zeros(B, 2), "scale": torch.full((B, 1), 0.01),  # box 2 px
        ...          "coco_gt": torch.zeros(B, 17, 3), "mask": mask, "mask_valid": torch.ones(B, dtype=torch.bool),
        ...          "hm_samples": torch.full((B, 17, 150, 2), -0.5), "hm_values": torch.ones(B, 17, 150),
        ...          "hm_max_conf": torch.zeros(B, 17), "hm_samples_mask_dist": torch.zeros(B, 17, 150)}
        >>> out = {"keypoints2d": torch.full((B, S, 17, 2), 0.5)}    # right half: off the mask
        >>> MaskLoss()(batch, out).item()                           # |0.5 - (-0.5)| * 2 axes
        2.0
    """

    def __init__(self, visible_threshold: float = 0.5):
        super().__init__()
        self.visible_threshold = visible_threshold

    def forward(self, batch: Mapping[str, Tensor], out: Mapping[str, Tensor]) -> Tensor:
        b, o = fetch(batch, out,
                     {"coco_gt": ("B", NUM_COCO, 3), "hm_samples": ("B", NUM_COCO, "P", 2),
                      "hm_values": ("B", NUM_COCO, "P"), "hm_max_conf": ("B", NUM_COCO),
                      "hm_samples_mask_dist": ("B", NUM_COCO, "P"), "mask": ("B", "R", "R"),
                      "mask_valid": ("B",)},
                     {"keypoints2d": ("B", "S", NUM_COCO, 2)})
        hyp = o["keypoints2d"][:, 1:]                                     # (B, S-1, K, 2)
        batch_size = hyp.shape[0]
        dtype = hyp.dtype
        mask = b["mask"]
        gt = to_crop(b["coco_gt"][..., :2].to(dtype), batch)               # (B, K, 2)
        gt_valid = b["coco_gt"][..., 2] > 0
        invisible = ~visible_mask(b["hm_max_conf"], self.visible_threshold) | (gt_valid & ~in_crop(gt))
        example_ok = b["mask_valid"].bool() & (mask != 0).flatten(1).any(dim=1)

        # Mask lookup at the projected pixel (distances are not needed here: zero map).
        on_mask, _ = points_to_mask(hyp.reshape(batch_size, -1, 2), mask,
                                    torch.zeros_like(mask, dtype=dtype))
        off_mask = in_crop(hyp) & ~on_mask.reshape(hyp.shape[:-1])         # (B, S-1, K)

        samples = to_crop(b["hm_samples"].to(dtype), batch)                # (B, K, P, 2)
        sample_ok = (b["hm_samples_mask_dist"] == 0) & (b["hm_values"] > 0)
        gt_ok = gt_valid & ~sample_ok.any(dim=-1)
        anchors = torch.cat([samples, gt.unsqueeze(2)], dim=2)            # (B, K, P+1, 2)
        anchor_ok = torch.cat([sample_ok, gt_ok.unsqueeze(2)], dim=2)
        dist = torch.cdist(hyp.transpose(1, 2), anchors, p=1)            # (B, K, S-1, P+1)
        dist = torch.where(anchor_ok.unsqueeze(2), dist, torch.full_like(dist, torch.inf))
        nearest = dist.amin(dim=-1).transpose(1, 2)                       # (B, S-1, K)

        penalised = (off_mask & (invisible & anchor_ok.any(dim=-1)).unsqueeze(1)
                     & example_ok[:, None, None])
        return weighted_mean(nearest, penalised)

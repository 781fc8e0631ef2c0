"""The person-mask loss (paper section 4.3): pull implausible hypotheses of invisible joints back.

Defaults follow the official release (``HumrLoss.forward``, "MASK LOSS COMPUTATION"); the
paper's text (anchors of the same joint only) is the ``anchors="same_joint"`` option.
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from humr.core.crop import crop_to_pixels, inside_crop, inside_pixels
from humr.core.masks import INSIDE_TOLERANCE, dilate_mask, near_mask
from humr.core.skeleton import NUM_COCO
from humr.core.visibility import VISIBLE_THRESHOLD, mask_joints
from humr.heatmaps import sample_stored
from humr.losses._inputs import BatchLoss, to_crop
from humr.losses._reduce import weighted
from humr.registry import LOSSES

__all__ = ["MaskLoss", "mask_loss"]

ANCHORS = ("all", "same_joint")
REDUCTIONS = ("batch", "points")
#: Device types on which :func:`mask_loss` searches the nearest anchors of the penalised points
#: only (finding them is a host read: free on the CPU, a synchronisation on an accelerator,
#: where every point is searched instead). Both give the same value and gradient.
COMPACT_SEARCH_DEVICES = ("cpu",)
#: Points per chunk of the nearest-anchor search (bounds its (P, A) temporaries).
_CHUNK_POINTS = 8192


def mask_loss(hyp: Tensor, penalised: Tensor, anchors: Tensor, anchor_ok: Tensor,
              mode: str = "all", reduction: str = "batch") -> Tensor:
    r"""Tensor core of :class:`MaskLoss`: l1 distance of penalised points to their nearest anchor.

    Args:
        hyp: (B, S', K, 2) random hypotheses, crop coordinates.
        penalised: (B, S', K) bool, the points that get the loss.
        anchors: (B, K, A, 2) candidate anchors per joint, crop coordinates (constants: no
            gradient reaches them; unusable entries may hold anything, NaN included).
        anchor_ok: (B, K, A) bool, usable anchors.
        mode: ``"all"`` (official): every point's nearest usable anchor among all joints'
            anchors; ``"same_joint"`` (paper: "corresponding" samples): among its own joint's.
        reduction: ``"batch"`` (official): :math:`\sum_{b,s,k} p_{bsk} d_{bsk} / (B S')`;
            ``"points"``: the mean over penalised points (an effective weight that changes
            with the number of penalised points in the batch).
    Returns:
        () loss; a point without any usable anchor gets none.
    """
    if mode not in ANCHORS:
        raise ValueError(f"anchors must be one of {ANCHORS}, got {mode!r}")
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    batch, count = hyp.shape[:2]
    # Unusable anchors are moved out of reach (finfo.max / 4: farther from any point of the
    # crop than every usable anchor, and finite, so no inf - inf) rather than masked.
    far = torch.finfo(anchors.dtype).max / 4
    reachable = torch.where(anchor_ok.unsqueeze(-1), anchors.detach(), far).transpose(-1, -2)
    if mode == "all":                    # every point against every anchor of its example
        reachable = reachable.transpose(1, 2).reshape(batch, 1, 2, -1)      # (B, 1, 2, K A)
        has_anchor = anchor_ok.flatten(1).any(dim=1)[:, None, None]
    else:                                # per joint: its own anchors, (B, K, 2, A)
        has_anchor = anchor_ok.any(dim=-1).unsqueeze(1)
    penalised = penalised & has_anchor                                      # (B, S', K)
    if hyp.device.type in COMPACT_SEARCH_DEVICES:
        # the penalised points only (a few percent of all in training): their indices are a
        # host read, free on the CPU
        index = penalised.nonzero(as_tuple=True)
    else:                                # every point, no host read; the others weigh 0
        index = tuple(i.flatten() for i in torch.meshgrid(
            *(torch.arange(n, device=hyp.device) for n in penalised.shape), indexing="ij"))
    ex, joint = index[0], index[2]
    group = joint if mode == "same_joint" else torch.zeros_like(joint)
    points = hyp[index]                                                     # (P, 2)
    chunks = [slice(i, i + _CHUNK_POINTS) for i in range(0, len(ex), _CHUNK_POINTS)]
    best = torch.cat([_nearest_l1(points[c].detach(), reachable[ex[c], group[c]])
                      for c in chunks] or [points.detach()])                # (P, 2); P may be 0
    # The nearest anchor is found without autograd and the l1 distance recomputed to it: the
    # same value and (sub)gradient sign(u - a*) as a min over all distances, without the
    # backward pass of the distance matrix (ties between distinct anchors at the same
    # distance send the gradient to one of them instead of splitting it).
    total = weighted((points - best).abs().sum(dim=-1), penalised[index]).sum()
    if reduction == "batch":
        return total / (batch * count)
    return total / penalised.sum().clamp(min=1)


def _nearest_l1(points: Tensor, candidates: Tensor) -> Tensor:
    """Each point's nearest candidate in l1 (values only, no gradient).

    Args:
        points: (P, 2).
        candidates: (P, 2, A) each point's candidates, coordinates first.
    Returns:
        (P, 2) the nearest candidate of each point.
    """
    dist = (points[:, :1] - candidates[:, 0]).abs_().add_((points[:, 1:] - candidates[:, 1]).abs_())
    idx = dist.argmin(dim=-1)                                               # (P,)
    return torch.gather(candidates, 2, idx[:, None, None].expand(-1, 2, 1)).squeeze(-1)


@LOSSES.register("mask")
class MaskLoss(BatchLoss):
    r"""l1 distance of off-mask hypotheses of invisible joints to the nearest in-mask anchor.

    A point (example b, random hypothesis s >= 1, COCO joint k) is penalised when

    - the example has ``batch['mask_valid']`` True and a non-empty ``batch['mask']``;
    - joint k is invisible (``hm_max_conf < 0.5``) or its ground truth lies outside the crop
      (:func:`humr.core.visibility.mask_joints`);
    - its projection lies on the R x R crop image, ``0 <= q <= R - 1`` with
      ``q = (u + 1) R / 2``, and at least 0.71 px from every pixel of the person mask dilated
      by a 3 x 3 kernel ``dilate_iterations`` times (official pixel convention,
      :mod:`humr.core.masks`).

    Anchors (``anchors="all"``, official): ``n_samples`` of the stored heatmap samples of
    every joint (drawn without replacement, one permutation per example) that lie inside the
    mask (``hm_samples_mask_dist <= 0.71``, ``hm_values > 0``), plus every flagged
    ground-truth joint; a point's anchor is the nearest of them in l1 (crop coordinates).
    ``anchors="same_joint"`` (the paper's text) uses joint k's anchors only.

    .. math::
        L = \frac{1}{B (S - 1)} \sum_{(b,s,k)\ \text{penalised}} \min_a \|u_{bsk} - a\|_1

    Args:
        anchors: ``"all"`` (default) or ``"same_joint"``.
        reduction: ``"batch"`` (default, divide by B (S - 1)) or ``"points"`` (mean over
            penalised points).
        n_samples: stored samples per joint used as anchors (25, the official
            ``NUM_TRAIN_SAMPLES - 1``); None uses all stored samples.
        dilate_iterations: dilations of the person mask (3 x 3 kernel); 0 disables.
        visible_threshold: see :mod:`humr.core.visibility`.
        generator: optional ``torch.Generator`` for the anchor draw.
        validate_args: see :class:`humr.losses._inputs.BatchLoss`.

    Example:
        >>> import torch
        >>> B, S = 1, 2
        >>> mask = torch.zeros(B, 8, 8, dtype=torch.uint8); mask[:, :, :2] = 1     # columns 0, 1
        >>> batch = {"center": torch.zeros(B, 2), "scale": torch.full((B, 1), 0.01),  # box 2 px
        ...          "coco_gt": torch.zeros(B, 17, 3), "mask": mask, "mask_valid": torch.ones(B, dtype=torch.bool),
        ...          "hm_samples": torch.full((B, 17, 150, 2), -0.5), "hm_values": torch.ones(B, 17, 150),
        ...          "hm_max_conf": torch.zeros(B, 17), "hm_samples_mask_dist": torch.zeros(B, 17, 150)}
        >>> out = {"keypoints2d": torch.full((B, S, 17, 2), 0.5)}    # pixel (6, 6): off the mask
        >>> MaskLoss(dilate_iterations=0)(batch, out).item()       # 17 joints * |0.5 - (-0.5)| * 2
        34.0
    """

    def __init__(self, anchors: str = "all", reduction: str = "batch", n_samples: int | None = 25,
                 dilate_iterations: int = 3, visible_threshold: float = VISIBLE_THRESHOLD,
                 generator: torch.Generator | None = None, validate_args: bool = False):
        super().__init__(validate_args)
        if anchors not in ANCHORS:
            raise ValueError(f"anchors must be one of {ANCHORS}, got {anchors!r}")
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        self.anchors, self.reduction, self.n_samples = anchors, reduction, n_samples
        self.dilate_iterations, self.visible_threshold = dilate_iterations, visible_threshold
        self.generator = generator

    def forward(self, batch: Mapping[str, Tensor], out: Mapping[str, Tensor]) -> Tensor:
        b, o = self.fetch(batch, out,
                          {"coco_gt": ("B", NUM_COCO, 3), "hm_samples": ("B", NUM_COCO, "P", 2),
                           "hm_values": ("B", NUM_COCO, "P"), "hm_max_conf": ("B", NUM_COCO),
                           "hm_samples_mask_dist": ("B", NUM_COCO, "P"), "mask": ("B", "R", "R"),
                           "mask_valid": ("B",)},
                          {"keypoints2d": ("B", "S", NUM_COCO, 2)})
        hyp = o["keypoints2d"][:, 1:]                                     # (B, S-1, K, 2)
        batch_size = hyp.shape[0]
        dtype = hyp.dtype
        mask = dilate_mask(b["mask"], 3, self.dilate_iterations)
        res = mask.shape[-1]
        gt = to_crop(b["coco_gt"][..., :2].to(dtype), batch)               # (B, K, 2)
        gt_valid = b["coco_gt"][..., 2] > 0
        joints = mask_joints(b["hm_max_conf"], inside_crop(gt) | ~gt_valid, self.visible_threshold)
        example_ok = b["mask_valid"].bool() & mask.flatten(1).any(dim=1)

        pix = crop_to_pixels(hyp.detach(), res)
        on_mask = near_mask(pix.reshape(batch_size, -1, 2), mask, INSIDE_TOLERANCE)
        off_mask = inside_pixels(pix, res) & ~on_mask.reshape(hyp.shape[:-1])   # (B, S-1, K)
        penalised = off_mask & joints.unsqueeze(1) & example_ok[:, None, None]

        samples, values, sdist = b["hm_samples"], b["hm_values"], b["hm_samples_mask_dist"]
        if self.n_samples is not None and self.n_samples < samples.shape[2]:
            idx = sample_stored(self.n_samples, samples.shape[2], batch_size, samples.device,
                                self.generator)[:, None, :].expand(-1, NUM_COCO, -1)
            samples = torch.gather(samples, 2, idx[..., None].expand(-1, -1, -1, 2))
            values, sdist = torch.gather(values, 2, idx), torch.gather(sdist, 2, idx)
        anchors = torch.cat([to_crop(samples.to(dtype), batch), gt.unsqueeze(2)], dim=2)
        anchor_ok = torch.cat([(sdist <= INSIDE_TOLERANCE) & (values > 0),
                               gt_valid.unsqueeze(2)], dim=2)                # (B, K, A)
        return mask_loss(hyp, penalised, anchors, anchor_ok, self.anchors, self.reduction)

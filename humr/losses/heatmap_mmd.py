"""The MMD training loss (paper sections 4.2 and 4.5): hypotheses vs heatmap / ground-truth targets.

Per example b and COCO joint k, the projected random hypotheses (the mode excluded) are
compared with a target set by a set distance (kernel MMD by default, see
:mod:`humr.losses.mmd`), all in crop coordinates [-1, 1]. Defaults follow the official
release (``HumrLoss.forward`` in ``train/losses/losses.py``): the target rule of
:mod:`humr.core.visibility`, the biased MMD (V-statistic, diagonal included) with the
inverse multiquadric kernels of bandwidths 0.05, 0.2, 0.9, averaged over all B x 17 joint
slots with unsupervised slots counted as 0.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from humr.core.crop import inside_box, inside_crop
from humr.core.skeleton import ARTICULATED_COCO, NUM_COCO
from humr.core.visibility import (
    UNCERTAIN_RANGE,
    VISIBLE_THRESHOLD,
    heatmap_target_joints,
    mmd_supervised,
)
from humr.heatmaps import sample_stored
from humr.losses._inputs import BatchLoss, to_crop
from humr.losses.mmd import DISTANCES
from humr.registry import LOSSES

__all__ = ["HeatmapMMDLoss", "draw_hypotheses", "mmd_targets", "sinkhorn_loss"]

REDUCTIONS = {"all": "mean_all", "valid": "mean"}


def draw_hypotheses(keypoints2d: Tensor, n: int, generator: torch.Generator | None = None) -> Tensor:
    """Random hypotheses per joint: drop the mode, keep ``n`` of the S - 1 others at random.

    The same random subset (without replacement) is used for every joint of an example; with
    S - 1 <= n all random hypotheses are kept in order (the official setting: S = n + 1).

    Args:
        keypoints2d: (B, S, K, 2) projected hypotheses, hypothesis 0 = mode.
        n: number of hypotheses to keep.
        generator: optional ``torch.Generator`` on the input's device.
    Returns:
        (B, K, min(n, S - 1), 2).
    """
    hyp = keypoints2d[:, 1:]
    batch, count = hyp.shape[:2]
    if count > n:
        idx = sample_stored(n, count, batch, hyp.device, generator)
        hyp = torch.gather(hyp, 1, idx[:, :, None, None].expand(-1, -1, *hyp.shape[2:]))
    return hyp.transpose(1, 2)


def mmd_targets(gt: Tensor, gt_valid: Tensor, samples: Tensor, max_conf: Tensor,
                gt_in_box: Tensor | None = None, n: int = 25,
                articulated: Sequence[int] = ARTICULATED_COCO,
                uncertain_range: tuple[float, float] = UNCERTAIN_RANGE,
                visible_threshold: float = VISIBLE_THRESHOLD,
                generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Target sets of the MMD loss (section 4.5) and which (example, joint) slots get the loss.

    Rules (:mod:`humr.core.visibility`), per joint:

    - heatmap targets when articulated, ``low < max_conf < high`` and the ground truth lies
      inside the detector box (``gt_in_box``) and inside the crop: ``n - 1`` of the stored
      samples drawn without replacement (one permutation per example, shared by its joints),
      preceded by the ground truth (the ground truth is always target 0); with fewer than
      ``n - 1`` stored samples (P < n - 1) they are drawn with replacement instead;
    - otherwise the ground truth repeated ``n`` times;
    - supervised (``valid``) when the ground truth is flagged, inside the crop
      (``-1 <= u <= 1``) and the joint is articulated or visible (``max_conf >= 0.5``).

    Targets of unsupervised slots are zeros.

    Args:
        gt: (B, K, 2) ground-truth joints, crop coordinates.
        gt_valid: (B, K) bool annotation flags.
        samples: (B, K, P, 2) stored heatmap samples, crop coordinates.
        max_conf: (B, K) heatmap maxima.
        gt_in_box: (B, K) bool, ground truth inside the detector box
            (:func:`humr.core.crop.inside_box`); None: not checked.
        n: target set size.
        articulated, uncertain_range, visible_threshold: see :mod:`humr.core.visibility`.
        generator: optional ``torch.Generator`` on the input's device.
    Returns:
        targets (B, K, n, 2) and valid (B, K) bool.
    """
    batch, joints, count = samples.shape[:3]
    in_crop = inside_crop(gt)
    box = in_crop if gt_in_box is None else gt_in_box
    use_hm = heatmap_target_joints(max_conf, in_crop, box, articulated, *uncertain_range)
    valid = gt_valid & mmd_supervised(max_conf, in_crop, articulated, visible_threshold)
    if count >= n - 1:
        idx = sample_stored(n - 1, count, batch, samples.device, generator)   # (B, n - 1)
    else:
        idx = torch.randint(count, (batch, n - 1), generator=generator, device=samples.device)
    drawn = torch.gather(samples, 2, idx[:, None, :, None].expand(-1, joints, -1, 2))
    repeated = gt.unsqueeze(2).expand(-1, -1, n, -1)
    drawn = torch.cat([gt.unsqueeze(2), drawn], dim=2)
    targets = torch.where(use_hm[..., None, None], drawn, repeated)
    return torch.where(valid[..., None, None], targets, torch.zeros_like(targets)), valid


@LOSSES.register("mmd")
class HeatmapMMDLoss(BatchLoss):
    r"""MMD between projected random hypotheses and heatmap / ground-truth targets per joint.

    .. math::
        L = \frac{1}{B K} \sum_{b,k} v_{bk}\, D(S_{bk}, \hat S_{bk})

    (``reduction="all"``, official) or :math:`\sum v D / \sum v` (``"valid"``), with
    :math:`S_{bk}` = ``n`` random hypotheses (:func:`draw_hypotheses` on
    ``out['keypoints2d']``), :math:`\hat S_{bk}` and :math:`v_{bk}` from :func:`mmd_targets`
    (``batch['coco_gt']``, ``hm_samples``, ``hm_max_conf`` mapped to crop coordinates; the
    detector box is the crop of ``batch['det_center']`` / ``batch['det_scale']`` when the
    batch has them, else of ``center`` / ``scale``), and :math:`D` the set distance (biased
    IMQ-mixture MMD² by default). Draws use the global torch RNG unless a ``generator`` is
    given.

    Args:
        n: hypotheses and targets per joint (25 in the paper and the official release).
        articulated, uncertain_range, visible_threshold: see :func:`mmd_targets`.
        distance: a name in :data:`humr.losses.mmd.DISTANCES` (``"mmd"``, ``"geomloss"``).
        reduction: ``"all"`` (default, official ``(mmd * valid).mean()``) or ``"valid"``
            (mean over supervised slots; 1.3-1.7x stronger, batch dependent).
        estimator: ``"biased"`` (default, official ``batch_mmd``) or ``"unbiased"`` (the
            paper's Eq. 4); only for ``distance="mmd"``.
        generator: optional ``torch.Generator`` on the data's device.
        validate_args: see :class:`humr.losses._inputs.BatchLoss`.
        **distance_kwargs: options of the distance (``kernel``, ``bandwidths`` for ``"mmd"``;
            ``loss``, ``blur`` for ``"geomloss"``).

    Example:
        >>> import torch
        >>> from humr.losses.heatmap_mmd import HeatmapMMDLoss
        >>> B, S = 2, 26
        >>> batch = {"center": torch.full((B, 2), 100.), "scale": torch.ones(B, 1),
        ...          "coco_gt": torch.cat([torch.full((B, 17, 2), 110.), torch.ones(B, 17, 1)], -1),
        ...          "hm_samples": torch.full((B, 17, 150, 2), 110.), "hm_values": torch.ones(B, 17, 150),
        ...          "hm_max_conf": torch.ones(B, 17)}
        >>> out = {"keypoints2d": torch.full((B, S, 17, 2), 0.1)}      # every hypothesis on the GT
        >>> HeatmapMMDLoss()(batch, out).abs().item() < 1e-6
        True
    """

    def __init__(self, n: int = 25, articulated: Sequence[int] = ARTICULATED_COCO,
                 uncertain_range: Sequence[float] = UNCERTAIN_RANGE,
                 visible_threshold: float = VISIBLE_THRESHOLD, distance: str = "mmd",
                 reduction: str = "all", estimator: str = "biased",
                 generator: torch.Generator | None = None, validate_args: bool = False,
                 **distance_kwargs):
        super().__init__(validate_args)
        if n < 2:
            raise ValueError(f"n must be >= 2, got {n}")
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {tuple(REDUCTIONS)}, got {reduction!r}")
        low, high = (float(v) for v in uncertain_range)
        self.n, self.articulated = n, tuple(articulated)
        self.uncertain_range, self.visible_threshold = (low, high), visible_threshold
        self.generator = generator
        if distance == "mmd":
            distance_kwargs["estimator"] = estimator
        self.distance = DISTANCES.build(distance, reduction=REDUCTIONS[reduction],
                                        **distance_kwargs)

    def forward(self, batch: Mapping[str, Tensor], out: Mapping[str, Tensor]) -> Tensor:
        b, o = self.fetch(batch, out,
                          {"coco_gt": ("B", NUM_COCO, 3), "hm_samples": ("B", NUM_COCO, "P", 2),
                           "hm_max_conf": ("B", NUM_COCO)},
                          {"keypoints2d": ("B", "S", NUM_COCO, 2)})
        kp = o["keypoints2d"]
        if kp.shape[1] < 3:
            raise ValueError(f"out['keypoints2d'] needs S >= 3 hypotheses (the mode plus at least "
                             f"two random ones), got shape {tuple(kp.shape)}")
        dtype = kp.dtype
        gt_full = b["coco_gt"][..., :2].to(dtype)
        gt = to_crop(gt_full, batch)
        det = ("det_center", "det_scale") if "det_center" in batch else ("center", "scale")
        in_box = inside_box(to_crop(gt_full, batch, *det))
        targets, valid = mmd_targets(
            gt, b["coco_gt"][..., 2] > 0, to_crop(b["hm_samples"].to(dtype), batch),
            b["hm_max_conf"], in_box, self.n, self.articulated, self.uncertain_range,
            self.visible_threshold, self.generator)
        hyp = draw_hypotheses(kp, self.n, self.generator)
        return self.distance(hyp, targets, weights=valid)


@LOSSES.register("sinkhorn")
def sinkhorn_loss(blur: float = 0.05, diameter: float = 4.0, **kwargs) -> HeatmapMMDLoss:
    """Ablation variant of ``mmd``: the Sinkhorn divergence of geomloss instead of the MMD.

    ``diameter`` (crop units) starts geomloss' epsilon-scaling; it is fixed because geomloss'
    own estimate from the data is 0 for coincident samples, which it cannot handle. The crop
    [-1, 1]^2 has diagonal 2.83; a larger value only adds scaling iterations.
    """
    return HeatmapMMDLoss(distance="geomloss", loss="sinkhorn", blur=blur, diameter=diameter,
                          **kwargs)

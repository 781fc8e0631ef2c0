"""The MMD training loss (paper sections 4.2 and 4.5): hypotheses vs heatmap / ground-truth targets.

Per example b and COCO joint k, the projected random hypotheses (the mode excluded) are
compared with a target set by a set distance (kernel MMD by default, see
:mod:`humr.losses.mmd`), all in crop coordinates [-1, 1].
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from humr.heatmaps import ARTICULATED_COCO, uncertain_mask, visible_mask
from humr.losses._inputs import fetch, in_crop, to_crop
from humr.losses.mmd import DISTANCES
from humr.registry import LOSSES

__all__ = ["HeatmapMMDLoss", "draw_hypotheses", "mmd_targets", "sinkhorn_loss"]

NUM_COCO = 17


def draw_hypotheses(keypoints2d: Tensor, n: int, generator: torch.Generator | None = None) -> Tensor:
    """Random hypotheses per joint: drop the mode, keep ``n`` of the S - 1 others at random.

    The same random subset (without replacement) is used for every joint of an example; with
    S - 1 <= n all random hypotheses are kept.

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
        keys = torch.rand(batch, count, generator=generator, device=hyp.device)
        idx = keys.argsort(dim=1)[:, :n]
        hyp = torch.gather(hyp, 1, idx[:, :, None, None].expand(-1, -1, *hyp.shape[2:]))
    return hyp.transpose(1, 2)


def mmd_targets(gt: Tensor, gt_valid: Tensor, samples: Tensor, values: Tensor, max_conf: Tensor,
                n: int = 25, articulated: Sequence[int] = ARTICULATED_COCO,
                uncertain_threshold: float = 0.7, visible_threshold: float = 0.5,
                generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Target sets of the MMD loss (section 4.5) and which (example, joint) pairs get the loss.

    Rules, per joint:

    - articulated (``articulated`` indices) and uncertain (``max_conf < uncertain_threshold``):
      ``n`` heatmap samples drawn with replacement, uniformly among the valid samples
      (value > 0), then the first one replaced by the ground truth (the ground truth is always a
      target); a joint without any valid sample gets no loss;
    - otherwise: the ground truth repeated ``n`` times; a non-articulated joint must be visible
      (``max_conf > visible_threshold``);
    - no loss if the ground truth is flagged invalid or lies outside the crop
      (``-1 <= u < 1`` fails on an axis).

    Targets of pairs without loss are zeros.

    Args:
        gt: (B, K, 2) ground-truth joints, crop coordinates.
        gt_valid: (B, K) bool annotation flags.
        samples: (B, K, P, 2) heatmap samples, crop coordinates.
        values: (B, K, P) heatmap values (0 = padding).
        max_conf: (B, K) heatmap maxima.
        n: target set size.
        articulated: joint indices that may use heatmap samples.
        uncertain_threshold, visible_threshold: confidence thresholds.
        generator: optional ``torch.Generator`` on the input's device.
    Returns:
        targets (B, K, n, 2) and valid (B, K) bool.
    """
    batch, joints, count = values.shape
    is_art = torch.zeros(joints, dtype=torch.bool, device=gt.device)
    is_art[list(articulated)] = True
    use_hm = is_art & uncertain_mask(max_conf, uncertain_threshold)
    has_samples = (values > 0).any(dim=-1)
    needed = torch.where(use_hm, has_samples, is_art | visible_mask(max_conf, visible_threshold))
    valid = gt_valid & in_crop(gt) & needed

    weights = (values > 0).to(samples.dtype).reshape(-1, count)
    weights = torch.where(has_samples.reshape(-1, 1), weights, torch.ones_like(weights))
    idx = torch.multinomial(weights, n, replacement=True, generator=generator)
    drawn = torch.gather(samples, 2, idx.reshape(batch, joints, n, 1).expand(-1, -1, -1, 2))
    repeated = gt.unsqueeze(2).expand(-1, -1, n, -1)
    drawn = torch.cat([repeated[:, :, :1], drawn[:, :, 1:]], dim=2)
    targets = torch.where(use_hm[..., None, None], drawn, repeated)
    return torch.where(valid[..., None, None], targets, torch.zeros_like(targets)), valid


@LOSSES.register("mmd")
class HeatmapMMDLoss(nn.Module):
    r"""MMD between projected random hypotheses and heatmap / ground-truth targets per joint.

    .. math::
        L = \frac{\sum_{b,k} v_{bk}\, D(S_{bk}, \hat S_{bk})}{\sum_{b,k} v_{bk}}

    with :math:`S_{bk}` = ``n`` random hypotheses (:func:`draw_hypotheses` on
    ``out['keypoints2d']``), :math:`\hat S_{bk}` and :math:`v_{bk}` from :func:`mmd_targets`
    (``batch['coco_gt']``, ``hm_samples``, ``hm_values``, ``hm_max_conf`` mapped to crop
    coordinates), and :math:`D` the set distance (unbiased IMQ-mixture MMD² by default). The
    loss is 0 (with a gradient) when no pair is valid. Draws use the global torch RNG unless a
    ``generator`` is given.

    Args:
        n: hypotheses and targets per joint (25 in the paper).
        articulated, uncertain_threshold, visible_threshold: see :func:`mmd_targets`.
        distance: a name in :data:`humr.losses.mmd.DISTANCES` (``"mmd"``, ``"geomloss"``).
        generator: optional ``torch.Generator`` on the data's device.
        **distance_kwargs: options of the distance (e.g. ``kernel``, ``bandwidths``,
            ``estimator`` for ``"mmd"``; ``loss``, ``blur`` for ``"geomloss"``).

    Example:
        >>> import torch
        >>> from humr.losses.heatmap_mmd import HeatmapMMDLoss
        >>> B, S = 2, 30
        >>> batch = {"center": torch.full((B, 2), 100.), "scale": torch.ones(B, 1),
        ...          "coco_gt": torch.cat([torch.full((B, 17, 2), 110.), torch.ones(B, 17, 1)], -1),
        ...          "hm_samples": torch.full((B, 17, 150, 2), 110.), "hm_values": torch.ones(B, 17, 150),
        ...          "hm_max_conf": torch.ones(B, 17)}
        >>> out = {"keypoints2d": torch.full((B, S, 17, 2), 0.1)}      # every hypothesis on the GT
        >>> HeatmapMMDLoss()(batch, out).abs().item() < 1e-6
        True
    """

    def __init__(self, n: int = 25, articulated: Sequence[int] = ARTICULATED_COCO,
                 uncertain_threshold: float = 0.7, visible_threshold: float = 0.5,
                 distance: str = "mmd", generator: torch.Generator | None = None,
                 **distance_kwargs):
        super().__init__()
        if n < 2:
            raise ValueError(f"n must be >= 2, got {n}")
        self.n, self.articulated = n, tuple(articulated)
        self.uncertain_threshold, self.visible_threshold = uncertain_threshold, visible_threshold
        self.generator = generator
        self.distance = DISTANCES.build(distance, reduction="mean", **distance_kwargs)

    def forward(self, batch: Mapping[str, Tensor], out: Mapping[str, Tensor]) -> Tensor:
        b, o = fetch(batch, out,
                     {"coco_gt": ("B", NUM_COCO, 3), "hm_samples": ("B", NUM_COCO, "P", 2),
                      "hm_values": ("B", NUM_COCO, "P"), "hm_max_conf": ("B", NUM_COCO)},
                     {"keypoints2d": ("B", "S", NUM_COCO, 2)})
        kp = o["keypoints2d"]
        if kp.shape[1] < 3:
            raise ValueError(f"out['keypoints2d'] needs S >= 3 hypotheses (the mode plus at least "
                             f"two random ones), got shape {tuple(kp.shape)}")
        dtype = kp.dtype
        gt = to_crop(b["coco_gt"][..., :2].to(dtype), batch)
        targets, valid = mmd_targets(
            gt, b["coco_gt"][..., 2] > 0, to_crop(b["hm_samples"].to(dtype), batch),
            b["hm_values"], b["hm_max_conf"], self.n, self.articulated,
            self.uncertain_threshold, self.visible_threshold, self.generator)
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

"""Training augmentation on kornia: crop jitter, blur, brightness / contrast, JPEG artefacts.

Geometric jitter changes the crop box (``center``, ``scale``; the detector's box is kept as
``det_center``, ``det_scale``) and warps ``img`` and ``mask``
with the affine map between the old and the new crop, so every 2D target stored in full-image
pixels (``coco_gt``, ``kp2d_gt``, ``cond_kp``, ``hm_samples``) stays valid unchanged and lands
on the same image content. ``hm_samples_mask_dist`` is recomputed on the warped mask. Regions
of the new crop outside the old one are black in the image and outside the mask.

Example:
    >>> import torch
    >>> aug = Augmentation(prob_blur=0.0, prob_jpeg=0.0, brightness=0.0, contrast=0.0)
    >>> s = {"img": torch.zeros(3, 64, 64), "mask": torch.zeros(64, 64, dtype=torch.uint8),
    ...      "center": torch.tensor([100., 100.]), "scale": torch.tensor([0.5])}
    >>> out = aug(s, torch.Generator().manual_seed(0))
    >>> out["img"].shape, bool((out["scale"] != s["scale"]).all())
    (torch.Size([3, 64, 64]), True)
"""
from __future__ import annotations

from dataclasses import dataclass

import kornia
import torch
from torch import Tensor

from humr.core.crop import crop_to_pixels
from humr.core.masks import mask_distance
from humr.core.skeleton import IMAGENET_MEAN, IMAGENET_STD
from humr.geometry import full_to_crop

__all__ = ["Augmentation", "crop_change_matrix"]

_MEAN = torch.tensor(IMAGENET_MEAN)
_STD = torch.tensor(IMAGENET_STD)


def crop_change_matrix(center: Tensor, box: Tensor, new_center: Tensor, new_box: Tensor,
                       res: int) -> Tensor:
    """(2, 3) affine map from pixel indices of an R x R crop (centre ``center`` (2,), side
    ``box``) to pixel indices of the crop of ``new_center`` / ``new_box`` (full-image px).

    Continuous crop px ``q = (p - c + b / 2) R / b`` of a full-image point ``p``; pixel indices
    are ``q - 0.5`` (pixel centres at integers, kornia's ``align_corners=True`` grid).
    """
    a = box / new_box
    t = (center - box / 2 - new_center + new_box / 2) * res / new_box + 0.5 * a - 0.5
    m = torch.zeros(2, 3, dtype=center.dtype)
    m[0, 0] = m[1, 1] = a
    m[:, 2] = t
    return m


@dataclass
class Augmentation:
    """Random crop jitter and photometric changes of one sample (schema dict of tensors).

    Args:
        scale: crop side multiplied by ``U(1 - scale, 1 + scale)``.
        translate: crop centre moved by ``U(-translate, translate)`` times the side, per axis.
        prob_blur, blur_sigma: Gaussian blur probability and sigma range (crop px).
        brightness: additive brightness ``U(-b, b)`` on [0, 1] intensities.
        contrast: contrast factor ``U(1 - c, 1 + c)``.
        prob_jpeg, jpeg_quality: JPEG compression artefacts (kornia's differentiable codec)
            probability and quality range; needs a crop side divisible by 16.

    ``__call__(sample, generator)`` returns a new dict; every draw comes from ``generator``.
    """

    scale: float = 0.15
    translate: float = 0.08
    prob_blur: float = 0.3
    blur_sigma: tuple[float, float] = (0.3, 1.5)
    brightness: float = 0.15
    contrast: float = 0.2
    prob_jpeg: float = 0.3
    jpeg_quality: tuple[float, float] = (30.0, 90.0)

    def __call__(self, sample: dict, generator: torch.Generator) -> dict:
        u = torch.rand(8, generator=generator, dtype=torch.float64)
        out = dict(sample)
        img = sample["img"] * _STD[:, None, None] + _MEAN[:, None, None]         # [0, 1]
        res = img.shape[-1]
        center = sample["center"].to(torch.float64)
        box = 200.0 * sample["scale"].to(torch.float64)[0]
        new_box = box * (1 + self.scale * (2 * u[0] - 1))
        new_center = center + self.translate * (2 * u[1:3] - 1) * box
        m = crop_change_matrix(center, box, new_center, new_box, res).float()[None]
        img = kornia.geometry.transform.warp_affine(img[None], m, (res, res), align_corners=True)
        # the detector's box stays the un-jittered one (MMD target rule, humr.core.crop.inside_box)
        out["det_center"] = sample.get("det_center", sample["center"])
        out["det_scale"] = sample.get("det_scale", sample["scale"])
        out["center"] = new_center.to(sample["center"].dtype)
        out["scale"] = (new_box / 200.0).reshape(1).to(sample["scale"].dtype)
        if "mask" in sample:
            mask = kornia.geometry.transform.warp_affine(
                sample["mask"][None, None].float(), m, (res, res), mode="nearest",
                align_corners=True)[0, 0]
            out["mask"] = (mask > 0.5).to(sample["mask"].dtype)
            if "mask_valid" in sample:
                out["mask_valid"] = sample["mask_valid"] & out["mask"].bool().any()
            if "hm_samples_mask_dist" in sample:
                out["hm_samples_mask_dist"] = self._mask_dist(sample["hm_samples"], out)
        if u[3] < self.prob_blur:
            sigma = self.blur_sigma[0] + float(u[4]) * (self.blur_sigma[1] - self.blur_sigma[0])
            k = 2 * int(3 * sigma) + 1
            img = kornia.filters.gaussian_blur2d(img, (k, k), (sigma, sigma))
        img = kornia.enhance.adjust_contrast(img, 1 + self.contrast * (2 * float(u[5]) - 1))
        img = kornia.enhance.adjust_brightness(img, self.brightness * (2 * float(u[6]) - 1))
        if u[7] < self.prob_jpeg:
            q = self.jpeg_quality[0] + torch.rand(1, generator=generator) * (
                self.jpeg_quality[1] - self.jpeg_quality[0])
            img = kornia.enhance.jpeg_codec_differentiable(img.clamp(0, 1), q)
        img = img[0].clamp(0, 1)
        out["img"] = (img - _MEAN[:, None, None]) / _STD[:, None, None]
        return out

    @staticmethod
    def _mask_dist(hm_samples: Tensor, out: dict) -> Tensor:
        """Distances (17, n) of full-image samples to the new crop's mask, crop px (inf for an
        empty mask), as :func:`humr.heatmaps.precompute_samples` stores them."""
        crop = full_to_crop(hm_samples.reshape(1, -1, 2).float(), out["center"][None].float(),
                            200.0 * out["scale"].float())
        mask = out["mask"][None]
        dist = mask_distance(crop_to_pixels(crop, mask.shape[-1]), mask)
        return dist.reshape(hm_samples.shape[:-1]).to(hm_samples.dtype)

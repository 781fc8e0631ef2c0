"""Ideal 2D detector of the synthetic benchmark: known posterior, heatmaps, detected pose.

Posterior (:func:`posterior_samples`): the rotations that explain the hidden joints
(:func:`humr.data.occlusion.rotations_to_resample`) are redrawn from the pose prior in batches
of candidates (one joints-only body pass per batch); a candidate is accepted when every visible
COCO joint projects within ``tol`` pixels of the ground truth and every hidden joint stays
hidden (inside an occluder or outside the frame). Rejection sampling from the prior restricted
to that set draws from the prior conditioned on the observation (up to the tolerance), with
the body shape, the other rotations and the camera at the ground truth. The ground-truth pose
is always the first sample.

Heatmaps (:func:`detector_heatmaps`, H x W over the crop, docs/conventions.md pixel centres):
a visible joint gets a sharp Gaussian (sigma ``sigma`` heatmap px) with its maximum on the map
scaled to ``visible_peak`` (>= 0.9); a hidden joint gets a Gaussian kernel density of the
posterior samples' projections (bandwidth ``kde_sigma``) scaled to a maximum of
``hidden_peak`` (< 0.5). The detected pose is each heatmap's argmax with its value
(:func:`detect`).

Example:
    >>> import numpy as np
    >>> hm = gaussian_maps(np.array([[0.0, 0.0]]), (8, 8), sigma=1.0)     # crop centre
    >>> np.unravel_index(hm[0].argmax(), hm[0].shape), round(float(hm[0].max()), 3)
    ((np.int64(3), np.int64(3)), 0.779)
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from humr.data.occlusion import hidden_joints, rotations_to_resample
from humr.geometry import perspective_project
from humr.heatmaps import heatmap_to_full

__all__ = ["detect", "detector_heatmaps", "gaussian_maps", "posterior_samples", "project_coco"]


def project_coco(body, rotmat: torch.Tensor, betas: torch.Tensor, transl: torch.Tensor,
                 focal: torch.Tensor, principal: torch.Tensor) -> torch.Tensor:
    """COCO-17 joints of poses (N, J, 3, 3) projected to full-image px: (N, 17, 2).

    ``betas`` (nb,), ``transl`` (3,) metres, ``focal`` / ``principal`` (2,) px (joints-only pass).
    """
    coco = body(rotmat, betas.expand(rotmat.shape[0], -1), h36m=False)["coco17"]
    return perspective_project(coco, focal, principal, transl)


def posterior_samples(body, prior, rotmat: torch.Tensor, betas: torch.Tensor,
                      transl: torch.Tensor, focal: torch.Tensor, principal: torch.Tensor,
                      boxes: np.ndarray, frame_hw: Sequence[int], rng: np.random.Generator,
                      num: int = 64, candidates: int = 256, max_rounds: int = 4,
                      tol: float = 2.0, gt2d: np.ndarray | None = None
                      ) -> tuple[torch.Tensor, int, np.ndarray]:
    """Posterior poses of one example by rejection sampling (see the module docstring).

    Args:
        body: :class:`humr.body.BodyModel`.
        prior: :class:`humr.data.pose_prior.JointLimitPrior`.
        rotmat: (J, 3, 3) ground-truth pose; betas (nb,); transl (3,) metres.
        focal, principal: (2,) px of the full image.
        boxes: (M, 4) occluders, frame_hw: (h, w).
        rng: numpy generator.
        num: P, samples returned (the accepted ones repeated cyclically when fewer).
        candidates, max_rounds: candidates per round and the number of rounds at most.
        tol: visible joints must stay within this distance (full-image px).
        gt2d: (17, 2) COCO projection of the ground truth when the caller has it (else
            computed here).
    Returns:
        ``(rot (P, J, 3, 3), count, coco2d (count, 17, 2))``: the samples (GT first), the
        number of distinct accepted samples, and their COCO projections (full-image px).
    """
    args = (betas, transl, focal, principal)
    if gt2d is None:
        gt2d = project_coco(body, rotmat[None], *args)[0].numpy()
    hidden = hidden_joints(gt2d, boxes, frame_hw)
    joints = rotations_to_resample(hidden)
    kept, kept2d = [rotmat[None]], [gt2d[None]]
    total = 1
    for _ in range(max_rounds if joints else 0):
        if total >= num:
            break
        cand = prior.resample(rotmat, joints, candidates, rng).to(rotmat.dtype)
        proj = project_coco(body, cand, *args).numpy()                      # (C, 17, 2)
        err = np.linalg.norm(proj - gt2d, axis=-1)                          # (C, 17)
        ok = (err[:, ~hidden] <= tol).all(axis=1)
        ok &= hidden_joints(proj[:, hidden], boxes, frame_hw).all(axis=1)
        take = np.nonzero(ok)[0][:num - total]
        kept.append(cand[take])
        kept2d.append(proj[take])
        total += len(take)
    rot, proj = torch.cat(kept), np.concatenate(kept2d)
    cycle = torch.arange(num) % total
    return rot[cycle], total, proj


def _gaussian_factors(points: np.ndarray, size: Sequence[int], sigma: float
                      ) -> tuple[np.ndarray, np.ndarray]:
    """The separable factors of :func:`gaussian_maps`: rows (..., H) and columns (..., W)."""
    height, width = int(size[0]), int(size[1])
    px = (np.asarray(points, dtype=np.float64) + 1.0) / 2.0 * np.array([width, height])
    xs, ys = np.arange(width) + 0.5, np.arange(height) + 0.5
    gx = np.exp(-(xs - px[..., 0, None]) ** 2 / (2 * sigma ** 2))          # (..., W)
    gy = np.exp(-(ys - px[..., 1, None]) ** 2 / (2 * sigma ** 2))          # (..., H)
    return gy, gx


def gaussian_maps(points: np.ndarray, size: Sequence[int], sigma: float) -> np.ndarray:
    """Unnormalised Gaussians ``exp(-d^2 / (2 sigma^2))`` at heatmap pixel centres.

    Args:
        points: (..., 2) crop coordinates in [-1, 1].
        size: heatmap (H, W).
        sigma: standard deviation in heatmap pixels.
    Returns:
        (..., H, W).
    """
    gy, gx = _gaussian_factors(points, size, sigma)
    return gy[..., :, None] * gx[..., None, :]


def detector_heatmaps(coco_crop: np.ndarray, posterior_crop: np.ndarray, hidden: np.ndarray,
                      rng: np.random.Generator, size: Sequence[int] = (64, 64),
                      sigma: float = 1.5, kde_sigma: float = 2.0,
                      visible_peak: tuple[float, float] = (0.9, 1.0),
                      hidden_peak: tuple[float, float] = (0.15, 0.45)) -> np.ndarray:
    """Heatmaps (17, H, W) of the ideal detector (see the module docstring).

    Args:
        coco_crop: (17, 2) ground-truth joints, crop coordinates [-1, 1].
        posterior_crop: (P, 17, 2) projections of the distinct posterior samples, crop coords.
        hidden: (17,) bool hidden joints.
        rng: draws each joint's peak value from ``U(visible_peak)`` / ``U(hidden_peak)``.
    Returns:
        (17, H, W) float32 in [0, 1).
    """
    maps = np.empty((len(coco_crop), int(size[0]), int(size[1])))
    peaks = np.where(hidden, rng.uniform(*hidden_peak, len(hidden)),
                     rng.uniform(*visible_peak, len(hidden)))
    for k in range(len(coco_crop)):
        if hidden[k]:
            pts = posterior_crop[:, k]
            gy, gx = _gaussian_factors(pts, size, kde_sigma)    # mean of the P Gaussians:
            grid = gy.T @ gx / len(pts)                           # one (H, P) x (P, W) product
            # the density's maximum is near a sample (or on the grid, whichever is higher)
            d2 = ((pts[:, None] - pts[None]) * np.array(size[::-1]) / 2.0) ** 2
            at_samples = np.exp(-d2.sum(-1) / (2 * kde_sigma ** 2)).mean(axis=1).max()
            maps[k] = peaks[k] * grid / max(grid.max(), at_samples)
        else:
            grid = gaussian_maps(coco_crop[k], size, sigma)
            inside = bool((np.abs(coco_crop[k]) < 1).all())
            maps[k] = peaks[k] * grid / (grid.max() if inside else 1.0)
    return maps.astype(np.float32)


def detect(heatmaps: torch.Tensor, center: torch.Tensor, box_size: torch.Tensor) -> torch.Tensor:
    """Highest-likelihood 2D pose: argmax of each heatmap (K, H, W) -> (K, 3) full-image px
    of the argmax pixel centre, plus the heatmap maximum as confidence."""
    num, height, width = heatmaps.shape
    conf, idx = heatmaps.reshape(num, -1).max(dim=1)
    xy = torch.stack([idx % width, torch.div(idx, width, rounding_mode="floor")], -1)
    full = heatmap_to_full(xy.to(heatmaps.dtype)[:, None], (height, width), center, box_size,
                           convention="centers")   # the synthetic maps cover the square crop
    return torch.cat([full[:, 0], conf[:, None]], dim=-1)

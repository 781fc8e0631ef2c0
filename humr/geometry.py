"""Rotations, cameras, crop coordinates and Procrustes alignment.

Every function is batched over arbitrary leading dimensions and keeps the dtype and device of
its inputs (float32 or float64). Units and frames follow ``docs/conventions.md``: metres,
OpenCV camera frame (x right, y down, z forward), full-image pixels, square crops of side
``box_size = 200 * scale`` mapped to crop coordinates in [-1, 1].
"""
from __future__ import annotations

import roma
import torch
from torch import Tensor

from humr.core.crop import (  # the one crop frame (re-exported)
    crop_to_full,
    full_to_crop,
)

__all__ = [
    "axis_angle_to_matrix",
    "crop_to_full",
    "estimate_focal",
    "full_to_crop",
    "matrix_to_axis_angle",
    "matrix_to_rot6d",
    "perspective_project",
    "procrustes_align",
    "rot6d_to_matrix",
    "weak_cam_to_full_translation",
]


def _check_last(x: Tensor, name: str, shape: tuple) -> None:
    if tuple(x.shape[x.dim() - len(shape):]) != shape or x.dim() < len(shape):
        expected = ", ".join(["..."] + [str(s) for s in shape])
        raise ValueError(f"{name} must have shape ({expected}), got {tuple(x.shape)}")


def rot6d_to_matrix(x: Tensor) -> Tensor:
    """6D rotation representation (Zhou et al. 2019) -> rotation matrix.

    Args:
        x: (..., 6), the first two columns of a matrix flattened row-major,
            ``[R00, R01, R10, R11, R20, R21]`` (need not be orthonormal).
    Returns:
        (..., 3, 3) rotation matrix from Gram-Schmidt on the two columns
        (``roma.special_gramschmidt`` of the 3 x 2 matrix ``x.reshape(..., 3, 2)``, whose
        columns are humr's two 6D columns).
    """
    _check_last(x, "x", (6,))
    return roma.special_gramschmidt(x.reshape(*x.shape[:-1], 3, 2))


def matrix_to_rot6d(rotmat: Tensor) -> Tensor:
    """Rotation matrix (..., 3, 3) -> 6D representation (..., 6) (first two columns)."""
    _check_last(rotmat, "rotmat", (3, 3))
    return rotmat[..., :2].reshape(*rotmat.shape[:-2], 6)


def axis_angle_to_matrix(rotvec: Tensor) -> Tensor:
    """Axis-angle (..., 3), angle in radians = norm -> rotation matrix (..., 3, 3) (roma)."""
    _check_last(rotvec, "rotvec", (3,))
    return roma.rotvec_to_rotmat(rotvec)


def matrix_to_axis_angle(rotmat: Tensor) -> Tensor:
    """Rotation matrix (..., 3, 3) -> axis-angle (..., 3), angle in [0, pi] (roma)."""
    _check_last(rotmat, "rotmat", (3, 3))
    return roma.rotmat_to_rotvec(rotmat)


def perspective_project(points: Tensor, focal: Tensor, principal: Tensor,
                        translation: Tensor | None = None) -> Tensor:
    """Pinhole projection ``u = f_x X / Z + c_x``, ``v = f_y Y / Z + c_y``.

    Args:
        points: (..., N, 3) metres, camera frame (before ``translation``).
        focal: (..., 2) focal lengths (f_x, f_y) in pixels.
        principal: (..., 2) principal point (c_x, c_y) in pixels.
        translation: optional (..., 3) added to every point first.
    Returns:
        (..., N, 2) pixel coordinates.
    """
    _check_last(points, "points", (3,))
    _check_last(focal, "focal", (2,))
    _check_last(principal, "principal", (2,))
    if translation is not None:
        _check_last(translation, "translation", (3,))
        points = points + translation.unsqueeze(-2)
    xy = points[..., :2] / points[..., 2:3]
    return xy * focal.unsqueeze(-2) + principal.unsqueeze(-2)


def estimate_focal(image_hw: Tensor) -> Tensor:
    """Focal length estimate ``sqrt(h^2 + w^2)`` in pixels (CLIFF); (..., 2) -> (...)."""
    _check_last(image_hw, "image_hw", (2,))
    return torch.linalg.vector_norm(image_hw, dim=-1)


def weak_cam_to_full_translation(cam: Tensor, center: Tensor, box_size: Tensor,
                                 image_hw: Tensor, focal: Tensor) -> Tensor:
    """Weak-perspective crop camera -> perspective translation of the full image (CLIFF).

    ``tz = 2 f / (b s)``, ``tx' = tx + 2 (cx - w/2) / (b s)``, ``ty' = ty + 2 (cy - h/2) / (b s)``.

    Args:
        cam: (..., 3) weak-perspective ``[s, tx, ty]`` on the crop (crop coordinates).
        center: (..., 2) crop centre, full-image pixels.
        box_size: (...) crop side in pixels (``200 * scale``).
        image_hw: (..., 2) full image (height, width) in pixels.
        focal: (...) focal length in pixels.
    Returns:
        (..., 3) translation in metres, camera frame.
    """
    _check_last(cam, "cam", (3,))
    _check_last(center, "center", (2,))
    _check_last(image_hw, "image_hw", (2,))
    s, tx, ty = cam.unbind(-1)
    bs = box_size * s
    tz = 2.0 * focal / bs
    tx_full = tx + 2.0 * (center[..., 0] - image_hw[..., 1] / 2.0) / bs
    ty_full = ty + 2.0 * (center[..., 1] - image_hw[..., 0] / 2.0) / bs
    return torch.stack([tx_full, ty_full, tz], dim=-1)


def procrustes_align(pred: Tensor, gt: Tensor) -> Tensor:
    """Similarity Procrustes: rotate, scale and translate ``pred`` onto ``gt`` (least squares).

    Solves ``min_{s,R,t} ||s R p_i + t - g_i||^2`` with ``det R = +1`` (reflections are
    excluded, Umeyama 1991), computed by roma's ``rigid_points_registration``.

    Args:
        pred: (..., N, 3) points.
        gt: (..., N, 3) target points.
    Returns:
        (..., N, 3) ``pred`` aligned to ``gt``.
    """
    _check_last(pred, "pred", (3,))
    if pred.shape != gt.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and gt {tuple(gt.shape)} must have equal shapes")
    R, t, s = roma.rigid_points_registration(pred, gt, compute_scaling=True)
    return s[..., None, None] * pred @ R.transpose(-1, -2) + t.unsqueeze(-2)

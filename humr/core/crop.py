"""The crop frame: full-image pixels <-> crop coordinates [-1, 1], and the inside tests.

A crop box is square with centre ``center`` (full-image px) and side ``box = 200 * scale``
(px). Crop coordinates are ``u = (p - center) / (box / 2)`` per axis, so the crop spans
[-1, 1]. Rules (official release, ``train/dataset/dataset.py``):

* inside the crop: ``-1 <= u <= 1`` on both axes, boundary included (``coco_inside_square_crop``);
* inside the detector box: ``|u| <= 0.75`` and ``|v| <= 1`` in the coordinates of the
  (un-augmented) detector crop, i.e. inside its 3:4 person box (``coco_gt_bbox_inside``);
* pixel space of an R x R crop (mask loss, mask metrics): ``q = (u + 1) * R / 2``, so pixel
  index i sits at q = i, and a point is on the image when ``0 <= q <= R - 1`` on both axes.
"""
from __future__ import annotations

from torch import Tensor

__all__ = ["BOX_PER_SCALE", "DETECTOR_BOX_HALF_WIDTH", "batch_to_crop", "box_size",
           "crop_to_full", "crop_to_pixels", "full_to_crop", "inside_box", "inside_crop",
           "inside_pixels"]

#: Crop side in pixels per unit of ``scale``.
BOX_PER_SCALE = 200.0
#: Half width of the detector's 3:4 person box in crop coordinates of its square crop.
DETECTOR_BOX_HALF_WIDTH = 0.75


def _check_last(x: Tensor, name: str, shape: tuple) -> None:
    if x.dim() < len(shape) or tuple(x.shape[x.dim() - len(shape):]) != shape:
        expected = ", ".join(["..."] + [str(s) for s in shape])
        raise ValueError(f"{name} must have shape ({expected}), got {tuple(x.shape)}")


def box_size(scale: Tensor) -> Tensor:
    """Crop side in pixels, ``200 * scale``: (B, 1) or (B,) -> (B,)."""
    return BOX_PER_SCALE * (scale[..., 0] if scale.dim() > 1 else scale)


def full_to_crop(points: Tensor, center: Tensor, box: Tensor) -> Tensor:
    """Full-image pixels (..., N, 2) -> crop coordinates: ``(p - c) / (b / 2)``.

    ``center`` is (..., 2) pixels and ``box`` (...) pixels; both broadcast over N.
    """
    _check_last(points, "points", (2,))
    _check_last(center, "center", (2,))
    return (points - center.unsqueeze(-2)) / (box[..., None, None] / 2.0)


def crop_to_full(points: Tensor, center: Tensor, box: Tensor) -> Tensor:
    """Inverse of :func:`full_to_crop`: crop coordinates (..., N, 2) -> full-image pixels."""
    _check_last(points, "points", (2,))
    _check_last(center, "center", (2,))
    return points * (box[..., None, None] / 2.0) + center.unsqueeze(-2)


def batch_to_crop(points: Tensor, center: Tensor, scale: Tensor) -> Tensor:
    """Full-image pixels (B, ..., 2) -> crop coordinates of each example's box.

    Args:
        points: (B, ..., 2) pixels.
        center: (B, 2) crop centres, pixels.
        scale: (B, 1) or (B,) crop side / 200.
    Returns:
        (B, ..., 2) crop coordinates, dtype of ``points``.
    """
    flat = points.reshape(points.shape[0], -1, 2)
    return full_to_crop(flat, center.to(points.dtype), box_size(scale).to(points.dtype)
                        ).reshape(points.shape)


def inside_crop(uv: Tensor) -> Tensor:
    """(..., 2) crop coordinates -> (...) bool, ``-1 <= u <= 1`` and ``-1 <= v <= 1``."""
    return (uv.abs() <= 1.0).all(dim=-1)


def inside_box(uv: Tensor, half_width: float = DETECTOR_BOX_HALF_WIDTH) -> Tensor:
    """(..., 2) coordinates of the detector crop -> (...) bool: ``|u| <= 0.75``, ``|v| <= 1``."""
    return (uv[..., 0].abs() <= half_width) & (uv[..., 1].abs() <= 1.0)


def crop_to_pixels(uv: Tensor, res: int) -> Tensor:
    """Crop coordinates (..., 2) -> pixel space of an R x R crop, ``(u + 1) * R / 2``."""
    return (uv + 1.0) * (res / 2.0)


def inside_pixels(q: Tensor, res: int) -> Tensor:
    """(..., 2) pixel-space points -> (...) bool, ``0 <= q <= R - 1`` on both axes."""
    return ((q >= 0) & (q <= res - 1)).all(dim=-1)

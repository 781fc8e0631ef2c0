"""``bbox`` conditioner: CLIFF's bounding-box information."""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from humr.geometry import estimate_focal
from humr.registry import CONDITIONS

__all__ = ["BBoxCondition", "batch_focal", "bbox_features"]


def batch_focal(batch: Mapping[str, Tensor]) -> Tensor:
    """Focal lengths (B, 2) (fx, fy) in pixels: ``batch['focal']`` when present, else the CLIFF
    estimate ``sqrt(h^2 + w^2)`` of ``batch['orig_shape']`` (B, 2) for both axes."""
    if "focal" in batch:
        return batch["focal"]
    hw = batch["orig_shape"]
    return estimate_focal(hw if hw.is_floating_point() else hw.float())[:, None].expand(-1, 2)


def bbox_features(center: Tensor, scale: Tensor, orig_shape: Tensor, focal: Tensor) -> Tensor:
    r"""CLIFF's box features (B, 3) :math:`[(c_x - w/2) / f, (c_y - h/2) / f, b / f]`.

    Args:
        center: crop centre (B, 2), full-image pixels.
        scale: crop side / 200 (B, 1).
        orig_shape: image size (B, 2) = (h, w).
        focal: focal length (B,) or (B, 1) pixels (``fx``).
    """
    hw = orig_shape.to(center.dtype)
    f = focal.reshape(-1, 1).to(center.dtype)
    offset = center - hw.flip(-1) / 2.0
    return torch.cat([offset, 200.0 * scale.to(center.dtype)], dim=-1) / f


@CONDITIONS.register("bbox")
class BBoxCondition(nn.Module):
    r"""Bounding-box context :math:`c_B` (CLIFF, paper Eq. 1), :func:`bbox_features` of the batch:

    .. math::
        c_B = \left[\frac{c_x - w/2}{f}, \frac{c_y - h/2}{f}, \frac{b}{f}\right]

    with the crop centre ``center`` (B, 2) and side ``b = 200 * scale`` (B, 1) in full-image
    pixels, the image size ``orig_shape`` (B, 2) = (h, w) and the focal length f =
    ``focal[:, 0]`` or, without ``batch['focal']``, :math:`\sqrt{w^2 + h^2}`. No parameters;
    ``out_dim = 3``.

    Args:
        validate_args: check the batch keys' shapes and finiteness on every call (off by
            default: loaders validate the data once; each check is a host synchronisation).

    Example:
        >>> import torch
        >>> batch = {"center": torch.tensor([[400.0, 300.0]]), "scale": torch.tensor([[1.0]]),
        ...          "orig_shape": torch.tensor([[600.0, 800.0]])}
        >>> BBoxCondition()(batch)          # f = 1000
        tensor([[0.0000, 0.0000, 0.2000]])
    """

    out_dim = 3

    def __init__(self, validate_args: bool = False) -> None:
        super().__init__()
        self.validate_args = bool(validate_args)

    def forward(self, batch: Mapping[str, Tensor]) -> Tensor:
        if self.validate_args:
            spec = {"center": ("B", 2), "scale": ("B", 1), "orig_shape": ("B", 2)}
            validate(batch, {**spec, "focal": ("B", 2)} if "focal" in batch else spec)
        return bbox_features(batch["center"], batch["scale"], batch["orig_shape"],
                             batch_focal(batch)[:, 0])


def validate(batch: Mapping[str, Tensor], spec: Mapping[str, tuple]) -> None:
    """Check ``batch`` keys against symbolic shapes (missing key -> KeyError, wrong shape or
    non-finite values -> ValueError naming the key); used with ``validate_args=True``."""
    from humr.losses._inputs import fetch

    fetch(batch, {}, spec)

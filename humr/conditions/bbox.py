"""``bbox`` conditioner: CLIFF's bounding-box information."""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from humr.geometry import estimate_focal
from humr.losses._inputs import fetch
from humr.registry import CONDITIONS

__all__ = ["BBoxCondition", "batch_focal"]


def batch_focal(batch: Mapping[str, Tensor]) -> Tensor:
    """Focal lengths (B, 2) (fx, fy) in pixels: ``batch['focal']`` when present, else the CLIFF
    estimate ``sqrt(h^2 + w^2)`` of ``batch['orig_shape']`` (B, 2) for both axes."""
    if "focal" in batch:
        return fetch(batch, {}, {"focal": ("B", 2)})[0]["focal"]
    hw = fetch(batch, {}, {"orig_shape": ("B", 2)})[0]["orig_shape"]
    return estimate_focal(hw if hw.is_floating_point() else hw.float())[:, None].expand(-1, 2)


@CONDITIONS.register("bbox")
class BBoxCondition(nn.Module):
    r"""Bounding-box context :math:`c_B` (CLIFF, paper Eq. 1):

    .. math::
        c_B = \left[\frac{c_x - w/2}{f}, \frac{c_y - h/2}{f}, \frac{b}{f}\right]

    with the crop centre ``center`` (B, 2) and side ``b = 200 * scale`` (B, 1) in full-image
    pixels, the image size ``orig_shape`` (B, 2) = (h, w) and the focal length f =
    ``focal[:, 0]`` or, without ``batch['focal']``, :math:`\sqrt{w^2 + h^2}`. No parameters;
    ``out_dim = 3``.

    Example:
        >>> import torch
        >>> batch = {"center": torch.tensor([[400.0, 300.0]]), "scale": torch.tensor([[1.0]]),
        ...          "orig_shape": torch.tensor([[600.0, 800.0]])}
        >>> BBoxCondition()(batch)          # f = 1000
        tensor([[0.0000, 0.0000, 0.2000]])
    """

    out_dim = 3

    def forward(self, batch: Mapping[str, Tensor]) -> Tensor:
        b = fetch(batch, {}, {"center": ("B", 2), "scale": ("B", 1), "orig_shape": ("B", 2)})[0]
        center = b["center"]
        hw = b["orig_shape"].to(center.dtype)
        f = batch_focal(batch)[:, :1].to(center.dtype)
        offset = center - hw.flip(-1) / 2.0
        return torch.cat([offset, 200.0 * b["scale"].to(center.dtype)], dim=-1) / f

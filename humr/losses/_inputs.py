"""Batch helpers of the losses (and of conditioners / model, which import them from here).

Thin names over :mod:`humr.core`: :func:`fetch` (key lookup and shape checks), :func:`to_crop`
(full-image pixels -> crop coordinates of ``batch['center']`` / ``batch['scale']``) and
:func:`in_crop` (the one inside-crop test).
"""
from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor, nn

from humr.core.checks import fetch
from humr.core.crop import batch_to_crop
from humr.core.crop import inside_crop as in_crop

__all__ = ["BatchLoss", "fetch", "in_crop", "to_crop"]


def to_crop(points: Tensor, batch: Mapping[str, Tensor], center_key: str = "center",
            scale_key: str = "scale") -> Tensor:
    """Full-image pixels (B, ..., 2) -> crop coordinates [-1, 1] of each example's crop box.

    Uses ``batch[center_key]`` (B, 2) and ``batch[scale_key]`` (B, 1) (box side ``200 * scale``).
    """
    b, _ = fetch(batch, {}, {center_key: ("B", 2), scale_key: ("B", 1)}, finite=False)
    return batch_to_crop(points, b[center_key], b[scale_key])


class BatchLoss(nn.Module):
    """Base of the registered losses: ``forward(batch, out) -> scalar`` over a tensor core.

    Args:
        validate_args: also reject NaN / inf inputs (a device synchronisation per call; off
            by default, shapes and keys are always checked).
    """

    def __init__(self, validate_args: bool = False):
        super().__init__()
        self.validate_args = validate_args

    def fetch(self, batch: Mapping[str, Tensor], out: Mapping[str, Tensor],
              batch_keys: Mapping, out_keys: Mapping | None = None
              ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """:func:`fetch` with this loss' ``validate_args``."""
        return fetch(batch, out, batch_keys, out_keys, finite=self.validate_args)

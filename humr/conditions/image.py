"""``image`` conditioner: pooled features of a registered backbone (``humr.BACKBONES``)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

from humr.losses._inputs import fetch
from humr.registry import BACKBONES, CONDITIONS

__all__ = ["ImageCondition"]


@CONDITIONS.register("image")
class ImageCondition(nn.Module):
    r"""Image context :math:`c_I` = backbone features of the crop (paper section 4.1).

    Args:
        backbone: name in ``humr.BACKBONES``: ``hrnet_w48`` (paper, 720-d, frozen by default),
            ``small_cnn`` (CPU-friendly, 256-d), ``precomputed`` (``batch['features']``).
        backbone_kwargs: keyword arguments of the backbone.

    ``forward(batch) -> (B, out_dim)`` reads the backbone's input key (``img`` (B, 3, R, R) or
    ``features`` (B, F)) in the backbone's dtype (the model casts the batch).

    Example:
        >>> import torch
        >>> cond = ImageCondition("small_cnn")
        >>> cond({"img": torch.randn(2, 3, 64, 64)}).shape, cond.out_dim
        (torch.Size([2, 256]), 256)
    """

    def __init__(self, backbone: str = "small_cnn", backbone_kwargs: Mapping[str, Any] | None = None):
        super().__init__()
        self.backbone = BACKBONES.build(backbone, **dict(backbone_kwargs or {}))
        self.out_dim = self.backbone.out_dim

    def forward(self, batch: Mapping[str, Tensor]) -> Tensor:
        key = self.backbone.input_key
        x = fetch(batch, {}, {key: self.backbone.input_spec})[0][key]
        return self.backbone(x)

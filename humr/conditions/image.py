"""``image`` conditioner: pooled features of a registered backbone (``humr.BACKBONES``)."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn

from humr.conditions.bbox import validate
from humr.registry import BACKBONES, CONDITIONS

__all__ = ["ImageCondition", "ImageConfig"]


def _default_backbone() -> Any:
    from humr.config import component

    return component("backbone", "hrnet_w48")


@dataclass
class ImageConfig:
    """Configuration of the ``image`` conditioner: the backbone entry (``name`` + arguments)
    and whether to freeze it (weights fixed, batch norm in eval mode)."""

    backbone: Any = field(default_factory=_default_backbone)
    freeze: bool = False
    validate_args: bool = False


@CONDITIONS.register("image", config=ImageConfig)
class ImageCondition(nn.Module):
    r"""Image context :math:`c_I` = backbone features of the crop (paper section 4.1).

    Args:
        backbone: name in ``humr.BACKBONES`` (``hrnet_w48``: paper, 720-d, frozen by its own
            default; ``small_cnn``: CPU-friendly, 256-d; ``precomputed``:
            ``batch['features']``) or a mapping ``{"name": ..., **arguments}``.
        freeze: freeze the backbone (see :meth:`frozen_modules`).
        validate_args: check the input key's shape and finiteness on every call (off by
            default: loaders validate once; each check is a host synchronisation).

    ``forward(batch) -> (B, out_dim)`` reads the backbone's input key (``img`` (B, 3, R, R) or
    ``features`` (B, F)); :meth:`features` is the tensor core.

    Example:
        >>> import torch
        >>> cond = ImageCondition({"name": "small_cnn", "width": 8})
        >>> cond({"img": torch.randn(2, 3, 64, 64)}).shape, cond.out_dim
        (torch.Size([2, 64]), 64)
    """

    def __init__(self, backbone: str | Mapping[str, Any] = "hrnet_w48", *, freeze: bool = False,
                 validate_args: bool = False):
        super().__init__()
        spec = {"name": backbone} if isinstance(backbone, str) else dict(backbone)
        if "name" not in spec:
            raise KeyError(f"backbone mapping needs a 'name' (one of {BACKBONES.names()}), got {spec}")
        self.backbone = BACKBONES.build(spec.pop("name"), **spec)
        self.out_dim = self.backbone.out_dim
        self.freeze, self.validate_args = bool(freeze), bool(validate_args)

    def frozen_modules(self) -> list[nn.Module]:
        """Modules the trainer keeps frozen (no gradients, eval mode): the backbone when
        ``freeze`` is set. (A backbone that freezes itself, like ``hrnet_w48``, needs no
        help.)"""
        return [self.backbone] if self.freeze else []

    def features(self, x: Tensor) -> Tensor:
        """Backbone features (B, out_dim) of its input (``img`` (B, 3, R, R) or ``features``)."""
        return self.backbone(x)

    def forward(self, batch: Mapping[str, Tensor]) -> Tensor:
        key = self.backbone.input_key
        if self.validate_args:
            validate(batch, {key: self.backbone.input_spec})
        return self.features(batch[key])

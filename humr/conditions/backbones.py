"""Image backbones registered in ``humr.BACKBONES``: ``small_cnn``, ``precomputed``.

A backbone maps its input tensor (``input_key`` of the batch, shape ``input_spec``) to pooled
features (B, ``out_dim``). ``hrnet_w48`` lives in :mod:`humr.conditions.hrnet`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from humr.registry import BACKBONES

__all__ = ["PrecomputedFeatures", "SmallCNN"]


@BACKBONES.register("small_cnn")
class SmallCNN(nn.Module):
    """CPU-friendly convolutional encoder: ``num_layers`` stride-2 3x3 conv-BN-ReLU stages
    (channels doubling from ``width``) and a readout of the last feature map.

    Args:
        width: channels of the first stage.
        num_layers: number of stride-2 stages.
        input_size: if given, the image is first resized to ``input_size`` x ``input_size``
            (area interpolation, i.e. box filtering when shrinking), which sets the cost: 64 on
            a 128 crop is about 4x cheaper than the full crop.
        readout: ``"avg"`` (global average pooling, the default) or ``"spatial"``: one linear
            map of the whole flattened last map (C x s x s, s = ``input_size`` / 2^num_layers
            rounded up) to C features, so the features keep *where* in the crop a pattern is
            (which limb lies in front of which), which average pooling discards. Needs
            ``input_size``.

    Input ``img`` (B, 3, H, W) (any H, W >= 1; with ``readout="spatial"`` any size, resized
    to ``input_size``); output (B, C), C = width * 2^(num_layers-1).
    The image enters the convolutions in the channels-last memory format (the values are
    those of the default format): on the CPU preset (batch 32 at 64 px, 2 threads) forward +
    backward take 26 ms instead of 30 ms. The weights keep the default format, so their
    gradients and optimiser states do too (torch 2.13's fused CPU Adam mis-steps a
    channels-last parameter whose gradient is contiguous).

    Example:
        >>> import torch
        >>> SmallCNN()(torch.randn(2, 3, 64, 64)).shape
        torch.Size([2, 256])
    """

    input_key = "img"
    input_spec = ("B", 3, "H", "W")

    def __init__(self, width: int = 32, num_layers: int = 4, input_size: int | None = None,
                 readout: str = "avg") -> None:
        super().__init__()
        if width < 1 or num_layers < 1 or (input_size is not None and input_size < 1):
            raise ValueError(f"width, num_layers and input_size must be >= 1, got {width}, "
                             f"{num_layers}, {input_size}")
        if readout not in ("avg", "spatial"):
            raise ValueError(f"readout must be 'avg' or 'spatial', got {readout!r}")
        if readout == "spatial" and input_size is None:
            raise ValueError("readout='spatial' needs input_size (the last map's size fixes "
                             "the readout's weights)")
        self.input_size = None if input_size is None else int(input_size)
        layers, cin, side = [], 3, self.input_size
        for i in range(num_layers):
            cout = width * 2 ** i
            layers += [nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False),
                       nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
            cin = cout
            side = None if side is None else (side + 1) // 2    # stride 2, padding 1, kernel 3
        head = ([nn.AdaptiveAvgPool2d(1), nn.Flatten()] if readout == "avg" else
                [nn.Flatten(), nn.Linear(cin * side * side, cin), nn.ReLU(inplace=True)])
        self.features = nn.Sequential(*layers, *head)
        self.out_dim = cin

    def forward(self, img: Tensor) -> Tensor:
        if self.input_size is not None and tuple(img.shape[-2:]) != (self.input_size,) * 2:
            img = F.interpolate(img, size=(self.input_size,) * 2, mode="area")
        return self.features(img.contiguous(memory_format=torch.channels_last))


@BACKBONES.register("precomputed")
class PrecomputedFeatures(nn.Module):
    """Features stored with the data (``batch['features']`` (B, dim)), passed through unchanged.

    Example:
        >>> import torch
        >>> PrecomputedFeatures(dim=720)(torch.ones(2, 720)).shape
        torch.Size([2, 720])
    """

    input_key = "features"

    def __init__(self, dim: int = 720) -> None:
        super().__init__()
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        self.out_dim = int(dim)
        self.input_spec = ("B", self.out_dim)

    def forward(self, features: Tensor) -> Tensor:
        return features

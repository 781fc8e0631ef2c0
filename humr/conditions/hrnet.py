"""HRNet-W48 image backbone (Sun et al., CVPR 2019), registered as ``hrnet_w48``.

Hand-written: torchvision and timm are not dependencies (torchvision does not import with this
torch build, timm's HRNet needs it), and no installed library provides HRNet. The module layout
and parameter names follow the reference implementation (``conv1``, ``bn1``, ``conv2``,
``bn2``, ``layer1``, ``transition1..3``, ``stage2..4`` with ``branches`` and ``fuse_layers``),
so HRNet state dicts (e.g. the BEDLAM-CLIFF backbone) load with :meth:`HRNetW48.load_weights`.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from humr.registry import BACKBONES

__all__ = ["BasicBlock", "Bottleneck", "HRNetW48", "HighResolutionModule"]

BN_MOMENTUM = 0.1
RANDOM_WEIGHTS_WARNING = (
    "hrnet_w48 is frozen but randomly initialised (no weights given): its image features carry "
    "no information. Get weights: the official checkpoint's backbone with "
    "model.conditions.image.backbone={name: hrnet_w48_official, weights: humr_best.ckpt} (after "
    "`import humr.official.components`), or the whole official model with humr.load_official / "
    "`humr convert-official` (README 'Real data'); HRNet's COCO weights with "
    "model.conditions.image.backbone.weights=pose_hrnet_w48_256x192.pth; or train it "
    "(model.conditions.image.backbone.frozen=false).")


def _conv_bn(cin: int, cout: int, kernel: int, stride: int, relu: bool) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False),
              nn.BatchNorm2d(cout, momentum=BN_MOMENTUM)]
    return nn.Sequential(*layers, nn.ReLU(inplace=True)) if relu else nn.Sequential(*layers)


class BasicBlock(nn.Module):
    """Residual block of two 3x3 convolutions (expansion 1)."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + (x if self.downsample is None else self.downsample(x)))


class Bottleneck(nn.Module):
    """Residual bottleneck 1x1 - 3x3 - 1x1 (expansion 4)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4, momentum=BN_MOMENTUM)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return F.relu(y + (x if self.downsample is None else self.downsample(x)))


def _make_layer(block: type, inplanes: int, planes: int, blocks: int) -> nn.Sequential:
    downsample = None
    if inplanes != planes * block.expansion:
        downsample = _conv_bn(inplanes, planes * block.expansion, 1, 1, relu=False)
    layers = [block(inplanes, planes, 1, downsample)]
    layers += [block(planes * block.expansion, planes) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class HighResolutionModule(nn.Module):
    """Parallel branches of basic blocks followed by all-to-all multi-resolution fusion.

    ``fuse_layers[i][j]`` maps branch j to branch i's resolution and width: a 1x1 conv + BN
    then upsampling for j > i, identity (None) for j = i, and i - j stride-2 3x3 convs for j < i.
    """

    def __init__(self, channels: Sequence[int], num_blocks: int = 4) -> None:
        super().__init__()
        n = len(channels)
        self.branches = nn.ModuleList(
            _make_layer(BasicBlock, c, c, num_blocks) for c in channels)
        rows = []
        for i in range(n):
            row = []
            for j in range(n):
                if j > i:
                    row.append(_conv_bn(channels[j], channels[i], 1, 1, relu=False))
                elif j == i:
                    row.append(None)
                else:
                    steps = [_conv_bn(channels[j], channels[j], 3, 2, relu=True) for _ in range(i - j - 1)]
                    row.append(nn.Sequential(*steps, _conv_bn(channels[j], channels[i], 3, 2, relu=False)))
            rows.append(nn.ModuleList(row))
        self.fuse_layers = nn.ModuleList(rows)

    def forward(self, xs: list[Tensor]) -> list[Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs)]
        out = []
        for i, row in enumerate(self.fuse_layers):
            y = xs[i]
            for j, layer in enumerate(row):
                if j < i:
                    y = y + layer(xs[j])
                elif j > i:   # nearest upsampling to branch i's size (any input size)
                    y = y + F.interpolate(layer(xs[j]), size=xs[i].shape[-2:], mode="nearest")
            out.append(F.relu(y))
        return out


def _make_transition(prev: Sequence[int], channels: Sequence[int]) -> nn.ModuleList:
    """Width changes of existing branches (None if unchanged) and a new stride-2 branch."""
    layers = []
    for i, c in enumerate(channels):
        if i < len(prev):
            layers.append(None if prev[i] == c else _conv_bn(prev[i], c, 3, 1, relu=True))
        else:
            steps = [_conv_bn(prev[-1], prev[-1], 3, 2, relu=True) for _ in range(i - len(prev))]
            layers.append(nn.Sequential(*steps, _conv_bn(prev[-1], c, 3, 2, relu=True)))
    return nn.ModuleList(layers)


@BACKBONES.register("hrnet_w48")
class HRNetW48(nn.Module):
    r"""HRNet-W48 encoder producing 720-d pooled image features (paper section 4.1).

    Stem (two stride-2 3x3 convs, 64 channels), ``layer1`` (4 bottlenecks, 256 channels), then
    stages 2-4 with 1, 4 and 3 high-resolution modules over 2, 3 and 4 branches of widths
    48, 96, 192, 384 (4 basic blocks per branch). The output is the global average of each
    final branch, concatenated: :math:`c_I \in \mathbb{R}^{48+96+192+384=720}`.

    Args:
        weights: optional state dict file (``torch.save``; a ``{"state_dict": ...}`` wrapper
            and a ``backbone.`` / ``module.`` key prefix are accepted).
        frozen: freeze the weights (``requires_grad = False``) and keep batch norm in eval
            mode even under ``.train()`` (the paper freezes the backbone).

    Random initialisation unless ``weights`` is given. Input ``img`` (B, 3, H, W), any size
    (224 x 224 in the paper); output (B, 720).

    Example:
        >>> import torch
        >>> net = HRNetW48()
        >>> net(torch.randn(1, 3, 64, 64)).shape
        torch.Size([1, 720])
        >>> any(p.requires_grad for p in net.parameters())
        False
    """

    input_key = "img"
    input_spec = ("B", 3, "H", "W")
    widths = (48, 96, 192, 384)
    modules_per_stage = (1, 4, 3)
    warn_if_random = True   # a frozen random backbone gives meaningless features

    def __init__(self, weights: str | Path | None = None, frozen: bool = True) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64, momentum=BN_MOMENTUM)
        self.conv2 = nn.Conv2d(64, 64, 3, 2, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(64, momentum=BN_MOMENTUM)
        self.layer1 = _make_layer(Bottleneck, 64, 64, 4)
        prev = [256]
        for s, count in enumerate(self.modules_per_stage, start=2):
            channels = self.widths[:s]
            setattr(self, f"transition{s - 1}", _make_transition(prev, channels))
            setattr(self, f"stage{s}", nn.Sequential(*(HighResolutionModule(channels) for _ in range(count))))
            prev = channels
        self.out_dim = sum(self.widths)
        self.frozen = bool(frozen)
        if weights is not None:
            self.load_weights(weights)
        elif self.frozen and self.warn_if_random:
            warnings.warn(RANDOM_WEIGHTS_WARNING, stacklevel=2)
        if self.frozen:
            self.requires_grad_(False)
            self.eval()

    def train(self, mode: bool = True) -> HRNetW48:
        """Like ``nn.Module.train``; a frozen backbone stays in eval mode (batch norm statistics)."""
        return super().train(mode and not self.frozen)

    def load_weights(self, path: str | Path) -> None:
        """Load an HRNet state dict; keys of other heads (e.g. ``final_layer``, ``incre_modules``)
        are ignored, missing backbone keys raise a KeyError listing them."""
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = state.get("state_dict", state)
        for prefix in ("module.", "backbone."):
            if all(k.startswith(prefix) for k in state):
                state = {k[len(prefix):]: v for k, v in state.items()}
        own = self.state_dict()
        missing = [k for k in own if k not in state]
        if missing:
            raise KeyError(f"{path} lacks {len(missing)} HRNet-W48 keys, e.g. {missing[:5]}")
        self.load_state_dict({k: state[k] for k in own})

    def forward(self, img: Tensor) -> Tensor:
        return torch.cat([x.mean(dim=(-2, -1)) for x in self.branches(img)], dim=-1)

    def branches(self, img: Tensor) -> list[Tensor]:
        """The four final branches (B, w_i, H / 2^(i+2), W / 2^(i+2)) before pooling."""
        x = F.relu(self.bn1(self.conv1(img)))
        x = F.relu(self.bn2(self.conv2(x)))
        xs = [self.layer1(x)]
        for s in range(2, 2 + len(self.modules_per_stage)):
            transition = getattr(self, f"transition{s - 1}")
            src = [xs[min(i, len(xs) - 1)] for i in range(len(transition))]   # new branch: from the last
            xs = [x if t is None else t(x) for x, t in zip(src, transition)]
            xs = getattr(self, f"stage{s}")(xs)
        return xs

"""Deterministic head: body shape and weak-perspective camera from the context (section 4.1)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ShapeCameraHead"]


class ShapeCameraHead(nn.Module):
    r"""HMR-style MLP regressing betas and the weak-perspective crop camera ``[s, tx, ty]``.

    ``hidden`` x ``num_layers`` Linear-ReLU-Dropout layers, then a linear output initialised to
    zero weights with the mean as bias (betas 0, camera ``[init_scale, 0, 0]``), so training
    starts at the mean body and a centred camera. The scale is kept positive by a softplus:
    :math:`s = \mathrm{softplus}(r)`, with :math:`r` initialised to
    :math:`\mathrm{softplus}^{-1}(s_0)`.

    Args:
        in_dim: context size C.
        num_betas: nb.
        hidden, num_layers, dropout: the MLP.
        init_scale: initial scale :math:`s_0 > 0`.

    ``forward(context (B, C)) -> (betas (B, nb), cam (B, 3))``.

    Example:
        >>> import torch
        >>> head = ShapeCameraHead(8, num_betas=10).eval()
        >>> betas, cam = head(torch.randn(2, 8))
        >>> betas.abs().max().item(), [round(v, 4) for v in cam[0].tolist()]
        (0.0, [0.9, 0.0, 0.0])
    """

    def __init__(self, in_dim: int, num_betas: int = 10, hidden: int = 1024, num_layers: int = 2,
                 dropout: float = 0.1, init_scale: float = 0.9) -> None:
        super().__init__()
        if init_scale <= 0:
            raise ValueError(f"init_scale must be positive, got {init_scale}")
        layers, width = [], in_dim
        for _ in range(num_layers):
            layers += [nn.Linear(width, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout)]
            width = hidden
        self.mlp = nn.Sequential(*layers)
        self.num_betas = int(num_betas)
        self.out = nn.Linear(width, self.num_betas + 3)
        nn.init.zeros_(self.out.weight)
        with torch.no_grad():
            self.out.bias.zero_()
            self.out.bias[self.num_betas] = init_scale + math.log(-math.expm1(-init_scale))

    def forward(self, context: Tensor) -> tuple[Tensor, Tensor]:
        y = self.out(self.mlp(context))
        betas, raw = y.split([self.num_betas, 3], dim=-1)
        cam = torch.cat([F.softplus(raw[..., :1]), raw[..., 1:]], dim=-1)
        return betas, cam

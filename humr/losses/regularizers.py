"""Likelihood and regularisers: nll, betas, orth (6D orthonormality), cam (positive scale)."""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from humr.losses._inputs import fetch
from humr.registry import LOSSES

__all__ = ["BetasLoss", "CamLoss", "NLLLoss", "OrthLoss"]


@LOSSES.register("nll")
class NLLLoss(nn.Module):
    r"""Negative log-likelihood of the ground-truth pose per dimension (paper Eq. 5).

    :math:`L = -\frac{1}{B D} \sum_b \log p(\theta^{gt}_b | c_b)`, reading the flow's density of
    the ground-truth pose from ``out['log_prob_gt']`` (B,) (the model fills it during training)
    and D = ``out['pose_6d'].shape[-1]`` (6 J).
    """

    def forward(self, batch: Mapping[str, Tensor], out: Mapping[str, Tensor]) -> Tensor:
        _, o = fetch(batch, out, {}, {"log_prob_gt": ("B",), "pose_6d": ("B", "S", "D")})
        return -o["log_prob_gt"].mean() / o["pose_6d"].shape[-1]


@LOSSES.register("betas")
class BetasLoss(nn.Module):
    """Mean squared error of the predicted shape ``out['betas'][:, 0]`` against ``batch['betas']``."""

    def forward(self, batch: Mapping[str, Tensor], out: Mapping[str, Tensor]) -> Tensor:
        b, o = fetch(batch, out, {"betas": ("B", "N")}, {"betas": ("B", "S", "N")})
        pred = o["betas"][:, 0]
        return (pred - b["betas"].to(pred.dtype)).square().mean()


@LOSSES.register("orth")
class OrthLoss(nn.Module):
    r"""Orthonormality of the two 3-vectors of every 6D rotation, all hypotheses (ProHMR form).

    For 6D ``[R00, R01, R10, R11, R20, R21]`` with columns :math:`a, b` and
    :math:`A = [a\ b]` (3 x 2):

    .. math::
        L = \operatorname{mean}_{b,s,j} \|A^\top A - I_2\|_F^2
          = (\|a\|^2 - 1)^2 + (\|b\|^2 - 1)^2 + 2 (a \cdot b)^2

    (hand-written: roma and kornia have no 6D regulariser).
    """

    def forward(self, batch: Mapping[str, Tensor], out: Mapping[str, Tensor]) -> Tensor:
        _, o = fetch(batch, out, {}, {"pose_6d": ("B", "S", "D")})
        x = o["pose_6d"]
        if x.shape[-1] % 6:
            raise ValueError(f"out['pose_6d'] must have shape (B, S, J*6), got {tuple(x.shape)}")
        cols = x.reshape(*x.shape[:-1], -1, 3, 2)                           # (B, S, J, 3, 2)
        gram = cols.transpose(-1, -2) @ cols                                # (B, S, J, 2, 2)
        eye = torch.eye(2, dtype=x.dtype, device=x.device)
        return (gram - eye).square().sum(dim=(-2, -1)).mean()


@LOSSES.register("cam")
class CamLoss(nn.Module):
    r"""Keeps the weak-perspective scale positive: :math:`L = \operatorname{mean}_{b,s} \max(0, -s)^2`.

    ``s = out['cam'][..., 0]``; zero (and zero gradient) while the scale is non-negative,
    quadratic otherwise (no overflow for large negative scales, unlike an exponential form).
    """

    def forward(self, batch: Mapping[str, Tensor], out: Mapping[str, Tensor]) -> Tensor:
        _, o = fetch(batch, out, {}, {"cam": ("B", "S", 3)})
        return torch.relu(-o["cam"][..., 0]).square().mean()

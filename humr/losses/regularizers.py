"""Likelihood and regularisers: nll, betas, orth (6D orthonormality), cam (positive scale)."""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from humr.losses._inputs import BatchLoss
from humr.registry import LOSSES

__all__ = ["BetasLoss", "CamLoss", "NLLLoss", "OrthLoss", "betas_loss", "orth_loss"]


def _choice(name: str, value: str, allowed: tuple) -> str:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
    return value


@LOSSES.register("nll")
class NLLLoss(BatchLoss):
    r"""Negative log-likelihood of the ground-truth pose per dimension (paper Eq. 5).

    :math:`L = -\frac{1}{B D} \sum_b \log p(\theta^{gt}_b | c_b)`, reading the flow's density of
    the ground-truth pose from ``out['log_prob_gt']`` (B,) (the model fills it during training)
    and D = ``out['pose_6d'].shape[-1]`` (6 J); the official ``training_step`` divides the same
    way. The official release adds Gaussian noise (sigma 0.005) to the ground-truth 6D pose
    before its log-density; in humr that is the ``gt_noise_std`` option of the ``nll`` loss
    config, applied where the objective computes ``log_prob_gt`` (not in this module).
    """

    def forward(self, batch: Mapping[str, Tensor], out: Mapping[str, Tensor]) -> Tensor:
        _, o = self.fetch(batch, out, {}, {"log_prob_gt": ("B",), "pose_6d": ("B", "S", "D")})
        return -o["log_prob_gt"].mean() / o["pose_6d"].shape[-1]


def betas_loss(pred: Tensor, gt: Tensor, reduction: str = "sum") -> Tensor:
    """Squared error of shapes (B, N) against (B, N).

    ``"sum"`` (official ``loss_betas[:, 0].sum() / batch_size``): summed over the N
    coefficients, averaged over the batch; ``"mean"``: averaged over both (N times weaker).
    """
    _choice("reduction", reduction, ("sum", "mean"))
    err = (pred - gt).square()
    return err.sum() / pred.shape[0] if reduction == "sum" else err.mean()


@LOSSES.register("betas")
class BetasLoss(BatchLoss):
    """Squared error of the mode's shape ``out['betas'][:, 0]`` against ``batch['betas']``.

    Args:
        reduction: ``"sum"`` (default, official) or ``"mean"``, see :func:`betas_loss`.
        validate_args: see :class:`humr.losses._inputs.BatchLoss`.
    """

    def __init__(self, reduction: str = "sum", validate_args: bool = False):
        super().__init__(validate_args)
        self.reduction = _choice("reduction", reduction, ("sum", "mean"))

    def forward(self, batch: Mapping[str, Tensor], out: Mapping[str, Tensor]) -> Tensor:
        b, o = self.fetch(batch, out, {"betas": ("B", "N")}, {"betas": ("B", "S", "N")})
        pred = o["betas"][:, 0]
        return betas_loss(pred, b["betas"].to(pred.dtype), self.reduction)


def orth_loss(pose_6d: Tensor, reduction: str = "official") -> Tensor:
    r"""Orthonormality of the two 3-vectors of every 6D rotation (tensor core of ``orth``).

    For 6D ``[R00, R01, R10, R11, R20, R21]`` with columns :math:`a, b` and
    :math:`A = [a\ b]` (3 x 2), the four entries of :math:`(A^\top A - I_2)^2` are
    :math:`(\|a\|^2 - 1)^2, (a \cdot b)^2, (a \cdot b)^2, (\|b\|^2 - 1)^2`
    (hand-written: roma and kornia have no 6D regulariser).

    Args:
        pose_6d: (B, S, J*6), hypothesis 0 = mode.
        reduction: ``"official"`` (``loss_pose_6d_mode + loss_pose_6d_exp`` of the official
            release): the mean of the entries over the mode plus their mean over the random
            hypotheses (the second term is dropped when S = 1); ``"mean_all"``: the sum of the
            four entries averaged over all (b, s, j) (twice as strong for S >> 1).
    Returns:
        () loss.
    """
    if pose_6d.shape[-1] % 6:
        raise ValueError(f"out['pose_6d'] must have shape (B, S, J*6), got {tuple(pose_6d.shape)}")
    cols = pose_6d.reshape(*pose_6d.shape[:-1], -1, 3, 2)                    # (B, S, J, 3, 2)
    gram = cols.transpose(-1, -2) @ cols                                     # (B, S, J, 2, 2)
    eye = torch.eye(2, dtype=pose_6d.dtype, device=pose_6d.device)
    entries = (gram - eye).square()
    if reduction == "mean_all":
        return entries.sum(dim=(-2, -1)).mean()
    _choice("reduction", reduction, ("official", "mean_all"))
    loss = entries[:, 0].mean()
    return loss + entries[:, 1:].mean() if pose_6d.shape[1] > 1 else loss


@LOSSES.register("orth")
class OrthLoss(BatchLoss):
    """Orthonormality of every 6D rotation of ``out['pose_6d']`` (B, S, J*6), see :func:`orth_loss`.

    Args:
        reduction: ``"official"`` (default) or ``"mean_all"``.
        validate_args: see :class:`humr.losses._inputs.BatchLoss`.
    """

    def __init__(self, reduction: str = "official", validate_args: bool = False):
        super().__init__(validate_args)
        self.reduction = _choice("reduction", reduction, ("official", "mean_all"))

    def forward(self, batch: Mapping[str, Tensor], out: Mapping[str, Tensor]) -> Tensor:
        _, o = self.fetch(batch, out, {}, {"pose_6d": ("B", "S", "D")})
        return orth_loss(o["pose_6d"], self.reduction)


@LOSSES.register("cam")
class CamLoss(BatchLoss):
    r"""Keeps the weak-perspective scale ``s = out['cam'][..., 0]`` positive.

    Args:
        form: ``"hinge"`` (default): :math:`\operatorname{mean}_{b,s} \max(0, -s)^2`, zero (and
            zero gradient) while the scale is non-negative, quadratic otherwise (no overflow);
            ``"exp"`` (official ``loss_cam``): :math:`\operatorname{mean}_{b,s} e^{-20 s}`
            (:math:`(e^{-10 s})^2`), which is never zero and overflows for very negative s.
        validate_args: see :class:`humr.losses._inputs.BatchLoss`.
    """

    def __init__(self, form: str = "hinge", validate_args: bool = False):
        super().__init__(validate_args)
        self.form = _choice("form", form, ("hinge", "exp"))

    def forward(self, batch: Mapping[str, Tensor], out: Mapping[str, Tensor]) -> Tensor:
        _, o = self.fetch(batch, out, {}, {"cam": ("B", "S", 3)})
        s = o["cam"][..., 0]
        if self.form == "exp":
            return torch.exp(-20.0 * s).mean()
        return torch.relu(-s).square().mean()

"""Training losses (paper section 4, weights of appendix A), each registered in ``humr.LOSSES``.

Every loss is an ``nn.Module`` with ``forward(batch, out) -> scalar`` reading the batch and model
output keys of ``docs/conventions.md`` (a thin adapter) over a tensor core with documented shapes
(:func:`kp2d_mode_loss`, :func:`betas_loss`, :func:`orth_loss`, :func:`mmd_targets` +
:class:`MMDLoss`, :func:`mask_loss`); 2D terms compare crop coordinates [-1, 1]. Defaults follow
the official release's normalisations (``docs/parity.md``), the paper's text is kept as named
options; ``validate_args=True`` adds NaN / inf checks. :class:`MMDLoss` is also a standalone set
distance (unbiased by default). Importing this package pulls in torch only (no smplx,
lightning, torchmetrics, nflows, scipy or matplotlib; geomloss and kornia are imported when
used).
"""
from humr.losses.heatmap_mmd import (
    HeatmapMMDLoss,
    draw_hypotheses,
    mmd_targets,
    sinkhorn_loss,
)
from humr.losses.keypoints import (
    Kp2dHypothesesLoss,
    Kp2dModeLoss,
    Kp2dVisibleLoss,
    Kp3dModeLoss,
    kp2d_mode_loss,
    kp3d_mode_loss,
)
from humr.losses.mask import MaskLoss, mask_loss
from humr.losses.mmd import DISTANCES, MMDLoss, SamplesDistance
from humr.losses.regularizers import (
    BetasLoss,
    CamLoss,
    NLLLoss,
    OrthLoss,
    betas_loss,
    orth_loss,
)

#: Loss weights: appendix A for nll, mmd, mask, kp2d_mode (lambda_2D), betas, orth; Table S2's
#: weights for kp2d_all (1e-2) and kp2d_vis (5e-3, its best); the mmd weight for the sinkhorn
#: variant; ProHMR's KEYPOINTS_3D_MODE for kp3d_mode (5e-2, not in the paper); cam 1.0 (the
#: term is zero while the scale is positive, so its weight only sets how hard a negative scale
#: is pushed back).
DEFAULT_WEIGHTS = {
    "nll": 1e-1,
    "mmd": 5e-2,
    "sinkhorn": 5e-2,
    "mask": 1e-1,
    "kp2d_mode": 1e-2,
    "kp2d_all": 1e-2,
    "kp2d_vis": 5e-3,
    "kp3d_mode": 5e-2,
    "betas": 5e-4,
    "orth": 1e-1,
    "cam": 1.0,
}

__all__ = [
    "DEFAULT_WEIGHTS", "DISTANCES", "BetasLoss", "CamLoss", "HeatmapMMDLoss", "Kp2dHypothesesLoss",
    "Kp2dModeLoss", "Kp2dVisibleLoss", "Kp3dModeLoss", "MMDLoss", "MaskLoss", "NLLLoss", "OrthLoss",
    "SamplesDistance", "betas_loss", "draw_hypotheses", "kp2d_mode_loss", "kp3d_mode_loss",
    "mask_loss", "mmd_targets", "orth_loss", "sinkhorn_loss",
]

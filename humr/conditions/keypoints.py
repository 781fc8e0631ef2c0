"""``pose2d`` conditioner: the detector's highest-likelihood 2D pose through an MLP."""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from humr.conditions.bbox import validate
from humr.geometry import full_to_crop
from humr.registry import CONDITIONS

__all__ = ["Pose2DCondition", "pose2d_input"]


def pose2d_input(cond_kp: Tensor, center: Tensor, scale: Tensor) -> Tensor:
    """The ``pose2d`` MLP's input (B, 3 K): the detector pose ``cond_kp`` (B, K, 3), (x, y) in
    full-image pixels mapped to crop coordinates [-1, 1] with the crop centre ``center``
    (B, 2) and ``scale`` (B, 1) (crop side / 200), then the confidence, flattened per
    keypoint; in ``cond_kp``'s dtype."""
    crop = full_to_crop(cond_kp[..., :2], center.to(cond_kp.dtype),
                        200.0 * scale[:, 0].to(cond_kp.dtype))
    return torch.cat([crop, cond_kp[..., 2:]], dim=-1).flatten(1)


@CONDITIONS.register("pose2d")
class Pose2DCondition(nn.Module):
    r"""Pose context :math:`c_P` = MLP of the detector pose (paper section 4.1), 51-512-256.

    The input is ``batch['cond_kp']`` (B, 17, 3): (x, y) in full-image pixels mapped to crop
    coordinates [-1, 1] with ``center`` (B, 2) and ``scale`` (B, 1), and the confidence; the
    flattened (B, 51) vector goes through Linear(51, hidden) - ReLU - Linear(hidden, out_dim).

    Args:
        hidden: width of the hidden layer (512).
        out_dim: feature size (256).
        num_keypoints: K keypoints of the detector (17, COCO).
        validate_args: check the batch keys on every call (off by default).

    Example:
        >>> import torch
        >>> cond = Pose2DCondition()
        >>> batch = {"cond_kp": torch.rand(2, 17, 3) * 100, "center": torch.full((2, 2), 50.0),
        ...          "scale": torch.ones(2, 1)}
        >>> cond(batch).shape
        torch.Size([2, 256])
    """

    def __init__(self, hidden: int = 512, out_dim: int = 256, num_keypoints: int = 17,
                 validate_args: bool = False) -> None:
        super().__init__()
        self.validate_args = bool(validate_args)
        self.num_keypoints = int(num_keypoints)
        self.out_dim = int(out_dim)
        self.mlp = nn.Sequential(nn.Linear(3 * self.num_keypoints, hidden), nn.ReLU(inplace=True),
                                 nn.Linear(hidden, self.out_dim))

    def encode(self, cond_kp: Tensor, center: Tensor, scale: Tensor) -> Tensor:
        """Tensor core: detector pose (B, K, 3) full-image pixels + confidence, crop centre
        (B, 2) and scale (B, 1) -> features (B, out_dim) (:func:`pose2d_input`, then the MLP)."""
        return self.mlp(pose2d_input(cond_kp.to(self.mlp[0].weight.dtype), center, scale))

    def forward(self, batch: Mapping[str, Tensor]) -> Tensor:
        if self.validate_args:
            validate(batch, {"cond_kp": ("B", self.num_keypoints, 3), "center": ("B", 2),
                             "scale": ("B", 1)})
        return self.encode(batch["cond_kp"], batch["center"], batch["scale"])

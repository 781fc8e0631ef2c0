"""Procedural SMPL pose prior with joint limits (synthetic benchmark).

Every body joint's local rotation is ``Rz(c) Ry(b) Rx(a)`` (roma's intrinsic "ZYX" Euler
convention) with ``(a, b, c)`` drawn uniformly from per-joint ranges, so the prior density is
uniform on a box of Euler angles and resampling a subset of joints (:meth:`JointLimitPrior.
resample`) draws exactly from the prior conditioned on the other joints. The ranges follow the
SMPL rest pose (y up, the person faces +z, the left side is +x, arms along +-x): knees bend
only backwards (+x), elbows only forwards (-y left, +y right), shoulders swing forwards /
backwards about y and down / up about z, hips flex forwards (-x) and abduct outwards.

The global orientation maps the y-up body into the OpenCV camera frame: ``Rx(180 deg) Ry(yaw)
Rx(pitch) Rz(roll)`` with yaw in ``U(-yaw_deg, yaw_deg)`` (any yaw by default; 0 faces the
camera) and small pitch / roll (a mostly upright person).

Difficulty knobs (:class:`humr.data.synthetic.SynthConfig` passes them on): ``limit_scale``
scales every joint's Euler range about the rest pose (``[lo, hi] -> [s lo, s hi]``; 1 = the
table below, smaller = poses closer to the rest pose, the same shape of posterior), and
``yaw_deg`` bounds how far a person turns away from the camera.

Example:
    >>> import numpy as np
    >>> prior = JointLimitPrior()
    >>> rot = prior.sample(4, np.random.default_rng(0))
    >>> rot.shape
    torch.Size([4, 24, 3, 3])
    >>> knee = rot[:, 4] @ torch.tensor([0., -1., 0.], dtype=torch.float64)  # shin, rest: down
    >>> bool((knee[:, 2] <= 1e-12).all())          # the shin only swings backwards (-z)
    True
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

__all__ = ["SMPL_LIMITS_DEG", "JointLimitPrior"]

# per SMPL joint: ((x_lo, x_hi), (y_lo, y_hi), (z_lo, z_hi)) in degrees; joint 0 (global) unused
_Z = ((0, 0), (0, 0), (0, 0))
SMPL_LIMITS_DEG = (
    _Z,                                              # 0 pelvis (global orientation, see class)
    ((-90, 25), (-25, 25), (-10, 35)),               # 1 left hip
    ((-90, 25), (-25, 25), (-35, 10)),               # 2 right hip
    ((-10, 25), (-15, 15), (-10, 10)),               # 3 spine1
    ((0, 130), (-3, 3), (-3, 3)),                    # 4 left knee
    ((0, 130), (-3, 3), (-3, 3)),                    # 5 right knee
    ((-5, 15), (-10, 10), (-8, 8)),                  # 6 spine2
    ((-20, 30), (-10, 10), (-10, 10)),               # 7 left ankle
    ((-20, 30), (-10, 10), (-10, 10)),               # 8 right ankle
    ((-5, 10), (-10, 10), (-5, 5)),                  # 9 spine3
    ((-5, 5), (-5, 5), (-5, 5)),                     # 10 left foot
    ((-5, 5), (-5, 5), (-5, 5)),                     # 11 right foot
    ((-20, 30), (-30, 30), (-15, 15)),               # 12 neck
    ((-5, 5), (-10, 10), (-10, 15)),                 # 13 left collar
    ((-5, 5), (-10, 10), (-15, 10)),                 # 14 right collar
    ((-15, 25), (-30, 30), (-10, 10)),               # 15 head
    ((-40, 40), (-70, 40), (-85, 45)),               # 16 left shoulder
    ((-40, 40), (-40, 70), (-45, 85)),               # 17 right shoulder
    ((-20, 20), (-140, 0), (-5, 5)),                 # 18 left elbow
    ((-20, 20), (0, 140), (-5, 5)),                  # 19 right elbow
    ((-30, 30), (-20, 20), (-40, 40)),               # 20 left wrist
    ((-30, 30), (-20, 20), (-40, 40)),               # 21 right wrist
    ((-5, 5), (-5, 5), (-5, 5)),                     # 22 left hand
    ((-5, 5), (-5, 5), (-5, 5)),                     # 23 right hand
)


class JointLimitPrior:
    """Uniform prior over per-joint Euler angles within joint limits (SMPL, 24 joints).

    Args:
        limits_deg: per joint ((x_lo, x_hi), (y_lo, y_hi), (z_lo, z_hi)) in degrees (joint 0
            is ignored: the global orientation has its own distribution).
        pitch_deg: global forward / backward lean drawn from ``U(-pitch, pitch)``.
        roll_deg: global sideways lean drawn from ``U(-roll, roll)``.
        yaw_deg: global turn about the vertical axis drawn from ``U(-yaw, yaw)`` (180: any).
        limit_scale: factor in (0, 1] on every joint range (about the rest pose).

    Rotations are float64 tensors (N, 24, 3, 3) on the CPU; draws come from a
    ``numpy.random.Generator`` so that examples are repeatable.
    """

    def __init__(self, limits_deg: Sequence = SMPL_LIMITS_DEG, pitch_deg: float = 15.0,
                 roll_deg: float = 10.0, yaw_deg: float = 180.0, limit_scale: float = 1.0) -> None:
        lim = np.deg2rad(np.asarray(limits_deg, dtype=np.float64))     # (J, 3, 2)
        if lim.ndim != 3 or lim.shape[1:] != (3, 2) or (lim[..., 0] > lim[..., 1]).any():
            raise ValueError(f"limits_deg must be (J, 3, 2) with lo <= hi, got {lim.shape}")
        if not 0.0 < limit_scale <= 1.0:
            raise ValueError(f"limit_scale must be in (0, 1], got {limit_scale}")
        if not 0.0 <= yaw_deg <= 180.0:
            raise ValueError(f"yaw_deg must be in [0, 180], got {yaw_deg}")
        lim = lim * limit_scale
        self.low, self.high = lim[..., 0], lim[..., 1]                  # (J, 3) radians
        self.num_joints = lim.shape[0]
        self.pitch, self.roll = np.deg2rad(pitch_deg), np.deg2rad(roll_deg)
        self.yaw = np.deg2rad(yaw_deg)

    @staticmethod
    def _euler_to_rotmat(xyz: np.ndarray) -> Tensor:
        """(..., 3) angles (x, y, z) -> (..., 3, 3) ``Rz Ry Rx`` (roma's intrinsic "ZYX").

        Written out in closed form because roma's quaternion route was the largest cost of
        drawing posterior candidates; tests check it against ``roma.euler_to_rotmat``.
        """
        (ca, cb, cc), (sa, sb, sc) = np.moveaxis(np.cos(xyz), -1, 0), np.moveaxis(np.sin(xyz), -1, 0)
        rows = (cc * cb, cc * sb * sa - sc * ca, cc * sb * ca + sc * sa,
                sc * cb, sc * sb * sa + cc * ca, sc * sb * ca - cc * sa,
                -sb, cb * sa, cb * ca)
        return torch.from_numpy(np.stack(rows, -1).reshape(*np.shape(xyz)[:-1], 3, 3))

    def _draw_local(self, n: int, joints: Sequence[int], rng: np.random.Generator) -> Tensor:
        j = np.asarray(joints, dtype=np.int64)
        u = rng.random((n, len(j), 3))
        return self._euler_to_rotmat(self.low[j] + u * (self.high[j] - self.low[j]))

    def sample_global(self, n: int, rng: np.random.Generator) -> Tensor:
        """(n, 3, 3) global orientations: camera-frame upright person, yaw within the bound."""
        yaw = rng.uniform(-self.yaw, self.yaw, n)
        pitch = rng.uniform(-self.pitch, self.pitch, n)
        roll = rng.uniform(-self.roll, self.roll, n)
        flip = self._euler_to_rotmat(np.array([np.pi, 0.0, 0.0]))
        turn = self._euler_to_rotmat(np.stack([np.zeros(n), yaw, np.zeros(n)], -1))
        lean = self._euler_to_rotmat(np.stack([pitch, np.zeros(n), roll], -1))
        return flip @ turn @ lean

    def sample(self, n: int, rng: np.random.Generator) -> Tensor:
        """(n, J, 3, 3) poses: global orientation and local rotations within the limits."""
        rot = torch.empty(n, self.num_joints, 3, 3, dtype=torch.float64)
        rot[:, 0] = self.sample_global(n, rng)
        rot[:, 1:] = self._draw_local(n, range(1, self.num_joints), rng)
        return rot

    def resample(self, rotmat: Tensor, joints: Sequence[int], n: int,
                 rng: np.random.Generator) -> Tensor:
        """``n`` copies of one pose (J, 3, 3) whose ``joints`` (local, >= 1) are redrawn."""
        if any(int(j) < 1 or int(j) >= self.num_joints for j in joints):
            raise ValueError(f"joints must be local joints in [1, {self.num_joints}), got {joints}")
        out = rotmat.to(torch.float64).expand(n, self.num_joints, 3, 3).clone()
        if len(joints):
            out[:, list(joints)] = self._draw_local(n, joints, rng)
        return out

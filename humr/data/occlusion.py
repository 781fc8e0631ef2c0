"""Occluder boxes over limbs, joint visibility, and which rotations explain a hidden joint.

A COCO joint is hidden when it lies outside the full frame (truncation) or inside an occluder
box (occluders stand in front of the person). Self-occlusion does not hide a joint: the ideal
detector of the synthetic benchmark sees through the body, as 2D detectors mostly do.

Limb chains (COCO root, mid, end / SMPL joints whose local rotation moves them):
arms shoulder -> elbow -> wrist, legs hip -> knee -> ankle. A hidden end joint below a visible
mid joint is explained by the mid joint's rotation (elbow / knee); a hidden mid joint by the
root and mid rotations (shoulder + elbow / hip + knee). Hidden face, shoulder and hip joints
are explained by no rotation (their posterior stays at the ground truth).

Example:
    >>> import numpy as np
    >>> pts = np.zeros((17, 2)); pts[9] = (50, 50); pts[10] = (-5, 10)
    >>> hidden = hidden_joints(pts, np.array([[40., 40, 60, 60]]), (100, 100))
    >>> np.nonzero(hidden)[0].tolist()
    [9, 10]
    >>> rotations_to_resample(hidden)
    [18, 19]
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["LIMB_CHAINS", "hidden_joints", "place_occluders", "rotations_to_resample"]

#: (COCO root, mid, end), (SMPL root, mid) rotations of each limb
LIMB_CHAINS = (
    ((5, 7, 9), (16, 18)),       # left arm
    ((6, 8, 10), (17, 19)),      # right arm
    ((11, 13, 15), (1, 4)),      # left leg
    ((12, 14, 16), (2, 5)),      # right leg
)


def hidden_joints(points: np.ndarray, boxes: np.ndarray, frame_hw: Sequence[int]) -> np.ndarray:
    """Hidden joints: outside the frame ``[0, w) x [0, h)`` or inside an occluder box.

    Args:
        points: (..., K, 2) full-image px.
        boxes: (M, 4) occluders ``[x0, y0, x1, y1)`` full-image px (M may be 0).
        frame_hw: (h, w).
    Returns:
        (..., K) bool.
    """
    h, w = frame_hw
    x, y = points[..., 0], points[..., 1]
    hidden = ~((x >= 0) & (x < w) & (y >= 0) & (y < h))
    for x0, y0, x1, y1 in np.asarray(boxes, dtype=np.float64).reshape(-1, 4):
        hidden |= (x >= x0) & (x < x1) & (y >= y0) & (y < y1)
    return hidden


def rotations_to_resample(hidden: np.ndarray) -> list[int]:
    """SMPL joints whose local rotations explain the hidden COCO joints (17,) (sorted)."""
    out = set()
    for (_, mid, end), (root_rot, mid_rot) in LIMB_CHAINS:
        if hidden[mid]:
            out |= {root_rot, mid_rot}
        elif hidden[end]:
            out.add(mid_rot)
    return sorted(out)


def place_occluders(points: np.ndarray, rng: np.random.Generator, prob: float = 0.75,
                    prob_second: float = 0.35, prob_mid: float = 0.4,
                    margin: tuple[float, float] = (0.04, 0.12)) -> np.ndarray:
    """Occluder boxes over random limbs.

    With probability ``prob`` one limb gets an occluder (and with ``prob_second`` a second,
    different limb); it covers the end joint, or with ``prob_mid`` the mid and end joints, with
    a margin of ``U(margin) * person size`` around them and a random offset of up to half the
    margin (so the joint is not always at the box centre).

    Args:
        points: (17, 2) COCO joints, full-image px.
        rng: numpy generator.
    Returns:
        (M, 4) float64 boxes ``[x0, y0, x1, y1)``, M in {0, 1, 2}.
    """
    size = float(np.ptp(points, axis=0).max())
    n = int(rng.random() < prob)
    n += int(n == 1 and rng.random() < prob_second)
    limbs = rng.permutation(len(LIMB_CHAINS))[:n]
    boxes = []
    for limb in limbs:
        _, mid, end = LIMB_CHAINS[limb][0]
        covered = points[[mid, end]] if rng.random() < prob_mid else points[[end]]
        pad = rng.uniform(*margin) * size
        shift = rng.uniform(-0.5, 0.5, 2) * pad
        lo, hi = covered.min(axis=0) - pad + shift, covered.max(axis=0) + pad + shift
        boxes.append(np.concatenate([lo, hi]))
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 4)

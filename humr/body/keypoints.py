"""Keypoint maps between SMPL / SMPL-X joints and COCO-17, H36M-17 and LSP-14.

COCO-17 (docs/conventions.md): 0 nose, 1 l_eye, 2 r_eye, 3 l_ear, 4 r_ear, then shoulders,
elbows, wrists, hips, knees, ankles (left before right). The face points are mesh vertices
(smplx's extra vertex joints, ``smplx.vertex_ids.vertex_ids``), the rest are SMPL joints
(shared by SMPL-X's first 22 joints).

H36M-17 is the order of the ``J_regressor_h36m.npy`` used by SPIN and ProHMR; LSP-14 is taken
from it with :data:`H36M_TO_LSP14` (3DPW protocol: 0 r_ankle, 1 r_knee, 2 r_hip, 3 l_hip,
4 l_knee, 5 l_ankle, 6 r_wrist, 7 r_elbow, 8 r_shoulder, 9 l_shoulder, 10 l_elbow, 11 l_wrist,
12 neck, 13 head top).
"""
from __future__ import annotations

from humr.core.skeleton import H36M_TO_LSP14  # the one home of the 3DPW joint map

__all__ = [
           "COCO17_FACE_VERTICES",
           "COCO17_FROM_SMPL",
           "COCO17_NAMES",
           "H36M17_NAMES",
           "H36M_TO_LSP14",
           "LSP14_NAMES",
           "SMPL_JOINT_NAMES",
]

SMPL_JOINT_NAMES = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar",
    "right_collar", "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hand", "right_hand",
)

COCO17_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)
# COCO 0-4: names in ``smplx.vertex_ids.vertex_ids[model]``
COCO17_FACE_VERTICES = ("nose", "leye", "reye", "lear", "rear")
# COCO 5-16: SMPL joint indices
COCO17_FROM_SMPL = tuple(SMPL_JOINT_NAMES.index(n) for n in COCO17_NAMES[5:])

H36M17_NAMES = (
    "pelvis", "left_hip", "left_knee", "left_ankle", "right_hip", "right_knee", "right_ankle",
    "spine", "thorax", "neck", "head_top", "left_shoulder", "left_elbow", "left_wrist",
    "right_shoulder", "right_elbow", "right_wrist",
)
LSP14_NAMES = (
    "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle",
    "right_wrist", "right_elbow", "right_shoulder", "left_shoulder", "left_elbow", "left_wrist",
    "neck", "head_top",
)

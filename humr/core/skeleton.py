"""Skeleton and image constants: COCO-17 order, left/right flip, articulated joints, ImageNet.

COCO-17 order: 0 nose, 1 l_eye, 2 r_eye, 3 l_ear, 4 r_ear, 5 l_shoulder, 6 r_shoulder,
7 l_elbow, 8 r_elbow, 9 l_wrist, 10 r_wrist, 11 l_hip, 12 r_hip, 13 l_knee, 14 r_knee,
15 l_ankle, 16 r_ankle (the official release's ``COCO_17``).
"""
from __future__ import annotations

__all__ = ["ARTICULATED_COCO", "COCO17_NAMES", "COCO_FLIP", "COCO_HIPS", "H36M_TO_LSP14", "IMAGENET_MEAN",
           "IMAGENET_STD", "NUM_COCO"]

COCO17_NAMES = ("nose", "l_eye", "r_eye", "l_ear", "r_ear", "l_shoulder", "r_shoulder",
                "l_elbow", "r_elbow", "l_wrist", "r_wrist", "l_hip", "r_hip", "l_knee",
                "r_knee", "l_ankle", "r_ankle")
NUM_COCO = len(COCO17_NAMES)

#: Index of each joint's mirror image (horizontal flip): left <-> right, the nose stays.
COCO_FLIP = (0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15)

#: Highly articulated joints (section 4.5; official ``valid_sample_joints``): elbows, wrists,
#: knees, ankles.
ARTICULATED_COCO = (7, 8, 9, 10, 13, 14, 15, 16)

#: COCO hips (left, right), whose mean is the COCO pelvis.
COCO_HIPS = (11, 12)

#: LSP-14 joints (3DPW protocol) as indices into the H36M-17 regressor's joints (official
#: ``H36M_TO_J14``); H36M joint 0 is the pelvis (the 3DPW root).
H36M_TO_LSP14 = (6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 8, 10)

#: ImageNet RGB statistics of the image normalisation (official ``IMG_NORM_MEAN`` / ``_STD``).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

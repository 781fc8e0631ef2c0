"""Conditioners (``humr.CONDITIONS``) mapping a batch to a context vector (B, out_dim):
``image`` (backbones ``small_cnn``, ``precomputed``, ``hrnet_w48`` in ``humr.BACKBONES``),
``pose2d``, ``bbox`` (CLIFF) and ``diffpose``. The model concatenates the enabled ones in
configuration order.

Example:
    >>> import torch
    >>> from humr.registry import CONDITIONS
    >>> {"bbox", "diffpose", "image", "pose2d"} <= set(CONDITIONS.names())   # + registered ones
    True
    >>> CONDITIONS.build("pose2d").out_dim
    256
"""
from humr.conditions.backbones import PrecomputedFeatures, SmallCNN
from humr.conditions.bbox import BBoxCondition, batch_focal, bbox_features
from humr.conditions.diffpose import DiffPoseCondition, sinusoidal_embedding
from humr.conditions.hrnet import HRNetW48
from humr.conditions.image import ImageCondition
from humr.conditions.keypoints import Pose2DCondition

__all__ = [
    "BBoxCondition", "DiffPoseCondition", "HRNetW48", "ImageCondition", "Pose2DCondition",
    "PrecomputedFeatures", "SmallCNN", "batch_focal", "bbox_features", "sinusoidal_embedding",
]

"""Body models: :class:`BodyModel` (SMPL / SMPL-X on smplx, joints-only fast path), keypoint
maps (:mod:`humr.body.keypoints`) and the procedural SMPL-format body (:func:`make_body`).

Importing this package does not import smplx or lightning; :class:`BodyModel` imports smplx
when constructed.
"""
from humr.body.model import BodyModel, load_model_data, resolve_model_file
from humr.body.procedural import default_body_dir, make_body

__all__ = ["BodyModel", "default_body_dir", "load_model_data", "make_body", "resolve_model_file"]

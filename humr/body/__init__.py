"""Body models: :class:`BodyModel` (SMPL / SMPL-X on smplx, joints-only fast path), keypoint
maps (:mod:`humr.body.keypoints`), the procedural SMPL-format body (:func:`make_body`) and
chumpy-free reading of the official SMPL / SMPL-X downloads (:mod:`humr.body.safe_pickle`,
:func:`resolve_model_file`, the utils.zip files by :func:`find_utils_file`).

Importing this package does not import smplx or lightning; :class:`BodyModel` imports smplx
when constructed.
"""
from humr.body.model import (
           BodyModel,
           find_utils_file,
           load_model_data,
           resolve_model_file,
)
from humr.body.procedural import default_body_dir, make_body

__all__ = ["BodyModel", "default_body_dir", "find_utils_file", "load_model_data", "make_body",
           "resolve_model_file"]

"""The SMPL-X body stored in the official checkpoint (``model.smpl.smplx.*``: the buffers of
``smplx.SMPLXLayer(num_betas=11)``) as a :class:`humr.body.BodyModel`.

The buffers are turned back into the arrays of a model file (the layout ``smplx`` reads):
``posedirs`` (486, 3V) -> (V, 3, 486); the 11 shape and 10 expression directions are placed in
a 300 + 100 shape space (zeros elsewhere; SMPL-X 1.1's layout, so that smplx keeps 11 betas);
hand PCA components are not needed (humr's SMPL-X body keeps the hands at rest).
"""
from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from torch import Tensor

from humr.official.flow import OfficialKeyError

__all__ = ["PREFIX", "body_from_checkpoint", "smplx_arrays"]

PREFIX = "model.smpl.smplx."
_NEEDED = ("v_template", "faces_tensor", "J_regressor", "lbs_weights", "parents", "shapedirs", "posedirs")


def smplx_arrays(state: Mapping[str, Tensor]) -> dict[str, np.ndarray]:
    """Model-file arrays from SMPLXLayer buffers (keys without prefix)."""
    missing = [k for k in _NEEDED if k not in state]
    if missing:
        raise OfficialKeyError(f"the checkpoint's SMPL-X body lacks {', '.join(PREFIX + k for k in missing)}")
    a = {k: state[k].detach().cpu().double().numpy() for k in state if state[k].is_floating_point()}
    V = a["v_template"].shape[0]
    nb = a["shapedirs"].shape[2]
    if nb > 300 or a["posedirs"].shape[1] != 3 * V:
        raise OfficialKeyError(f"{PREFIX}shapedirs / posedirs have shapes {a['shapedirs'].shape} / "
                               f"{a['posedirs'].shape}, expected (V, 3, <=300) / (P, 3 V) with V = {V}")
    shapedirs = np.zeros((V, 3, 400))
    shapedirs[:, :, :nb] = a["shapedirs"]
    if "expr_dirs" in a:
        shapedirs[:, :, 300:300 + a["expr_dirs"].shape[2]] = a["expr_dirs"]
    parents = state["parents"].cpu().numpy().astype(np.int64)
    J = len(parents)
    return {"v_template": a["v_template"], "f": state["faces_tensor"].cpu().numpy().astype(np.int64),
            "J_regressor": a["J_regressor"], "weights": a["lbs_weights"],
            "kintree_table": np.stack([parents, np.arange(J)]), "shapedirs": shapedirs,
            "posedirs": a["posedirs"].T.reshape(V, 3, -1),
            "hands_componentsl": np.eye(45), "hands_componentsr": np.eye(45),
            "hands_meanl": a.get("left_hand_mean", np.zeros(45)),
            "hands_meanr": a.get("right_hand_mean", np.zeros(45)),
            "lmk_faces_idx": state["lmk_faces_idx"].cpu().numpy() if "lmk_faces_idx" in state else np.zeros(51, np.int64),
            "lmk_bary_coords": a.get("lmk_bary_coords", np.full((51, 3), 1 / 3))}


def body_from_checkpoint(state: Mapping[str, Tensor], num_betas: int):
    """A :class:`humr.body.BodyModel` (SMPL-X, ``num_betas``) from an official state dict, or None
    when it holds no ``model.smpl.smplx.*`` body."""
    from humr.body import BodyModel
    from humr.body.safe_pickle import write_body_file

    sub = {k[len(PREFIX):]: v for k, v in state.items() if k.startswith(PREFIX)}
    if not sub:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path = write_body_file(smplx_arrays(sub), Path(tmp) / "SMPLX_NEUTRAL.npz")
        # a temporary file: no utils.zip files are searched around it
        return BodyModel(path, model_type="smplx", num_betas=num_betas, search_utils=False)

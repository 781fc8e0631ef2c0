"""Evaluating the official model (SMPL-X) as the release does: on SMPL meshes.

The official ``validation_step`` (twehrbein/humr, ``train/core/humr_trainer.py``) never scores
the SMPL-X body directly. Every hypothesis' SMPL-X mesh (10475 vertices) is mapped to an SMPL
mesh (6890 vertices) with the release's ``smplx2smpl.pkl`` matrix (key ``matrix``, (6890,
10475)), and all metrics are computed on that mesh:

* 3dpw protocol: the H36M regressor (``J_regressor_h36m.npy``) applied to the SMPL mesh;
* emdb protocol: the 24 joints of the neutral SMPL's ``J_regressor`` applied to the SMPL mesh;
* PVE: the SMPL meshes;
* Table 2 (2D consistency, 3D spread, PercIn / MinDist): COCO-17 keypoints of the SMPL mesh
  (neutral SMPL joints + smplx's SMPL-H face vertices, as ``vertex_joint_selector`` picks them).

The ground truth is posed by the dataset's gendered SMPL (:class:`humr.engine.evaluation.
GenderedBodies`, ``humr eval --gt-body-dir``).

:class:`SmplxAsSmpl` is a body model with those outputs (a drop-in ``body`` of
:class:`humr.model.HUMR`); :func:`official_eval_module` builds the
:class:`humr.engine.module.HumrModule` that ``humr eval`` runs for a converted
(``humr convert-official``) or an official Lightning checkpoint.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from humr.body.keypoints import COCO17_FACE_VERTICES, COCO17_FROM_SMPL, H36M_TO_LSP14

__all__ = ["SmplxAsSmpl", "checkpoint_kind", "eval_config", "load_smplx_to_smpl",
           "official_eval_module"]


def load_smplx_to_smpl(path: str | Path, num_verts: int) -> Tensor:
    """The SMPL-X -> SMPL vertex mapping (6890, ``num_verts``) float64 from the release's
    ``smplx2smpl.pkl`` (a pickle of ``{"matrix": array}``, read with the restricted unpickler of
    :mod:`humr.body.safe_pickle`), or an .npz / .npy holding the matrix or a (6890,) index
    array. Raises FileNotFoundError / ValueError naming the file and the expected shape."""
    from humr.body import BodyModel

    return BodyModel._load_mapping(Path(path).expanduser(), num_verts)   # the one reader


class SmplxAsSmpl(nn.Module):
    """An SMPL-X body whose outputs are those of the SMPL mesh it maps to (official evaluation).

    Args:
        smplx: the model's SMPL-X :class:`humr.body.BodyModel` (22 joints; poses it).
        smpl: a neutral SMPL :class:`humr.body.BodyModel`: its ``J_regressor`` (24 joints), its
            H36M regressor (when it has one: ``h36m17`` / ``lsp14``) and smplx's SMPL-H face
            vertex ids give the evaluation joints, as the release's ``smpl_neutral``.
        mapping: (6890, V_smplx) SMPL-X -> SMPL vertex mapping (:func:`load_smplx_to_smpl`);
            None: the SMPL-X body's own (its ``vertices_smpl``, a body built with
            ``smplx_to_smpl``), so that the mesh is mapped once.

    Call signature of :class:`humr.body.BodyModel`: ``forward(rotmat (..., 22, 3, 3), betas
    (..., nb), return_vertices=False, joints_only=True, h36m=True)`` returns (metres, body
    frame) ``joints`` (..., 24, 3) SMPL joints regressed from the mapped mesh, ``coco17``
    (..., 17, 3), ``h36m17`` (..., 17, 3) / ``lsp14`` (..., 14, 3) and, when asked,
    ``vertices`` (..., 6890, 3), the SMPL mesh. The whole SMPL-X mesh is always posed (the
    mapping needs it). ``num_joints`` / ``pose_dim`` / ``num_betas`` are the SMPL-X body's
    (what the model's flow and head produce).
    """

    def __init__(self, smplx: nn.Module, smpl: nn.Module, mapping: Tensor | None = None) -> None:
        super().__init__()
        from smplx.vertex_ids import vertex_ids

        if getattr(smplx, "model_type", "smplx") != "smplx" or getattr(smpl, "model_type", "smpl") != "smpl":
            raise ValueError("SmplxAsSmpl maps an SMPL-X body (smplx=) onto SMPL (smpl=)")
        num_smpl = smpl.v_template.shape[0]
        if mapping is None:
            if not hasattr(smplx, "smplx_to_smpl"):
                raise ValueError("the SMPL-X body has no SMPL-X -> SMPL mapping; pass mapping= "
                                 "(the release's smplx2smpl.pkl)")
            mapping = smplx.smplx_to_smpl
        if tuple(mapping.shape) != (num_smpl, smplx.v_template.shape[0]):
            raise ValueError(f"the SMPL-X -> SMPL mapping has shape {tuple(mapping.shape)}, expected "
                             f"({num_smpl}, {smplx.v_template.shape[0]}) for these bodies")
        self.smplx, self.smpl = smplx, smpl      # submodules: they follow the model's device
        self.model_type = "smplx"
        self.num_joints, self.pose_dim, self.num_betas = smplx.num_joints, smplx.pose_dim, smplx.num_betas
        self.faces = smpl.faces
        self.model_file = smplx.model_file
        self.has_h36m = bool(getattr(smpl, "has_h36m", False))
        self._own_mapping = mapping is getattr(smplx, "smplx_to_smpl", None)
        if not self._own_mapping:
            self.register_buffer("mapping", mapping.to(smplx.v_template.dtype), persistent=False)
        self._face = [vertex_ids["smplh"][n] for n in COCO17_FACE_VERTICES]

    def forward(self, rotmat: Tensor, betas: Tensor, return_vertices: bool = False,
                joints_only: bool = True, h36m: bool = True) -> dict[str, Tensor]:
        res = self.smplx(rotmat, betas, return_vertices=True, joints_only=False, h36m=False)
        dt = res["vertices"].dtype
        verts = (res["vertices_smpl"] if self._own_mapping
                 else torch.einsum("sv,...vc->...sc", self.mapping.to(dt), res["vertices"]))
        joints = torch.einsum("js,...sc->...jc", self.smpl.J_regressor[:24].to(dt), verts)
        out = {"joints": joints,
               "coco17": torch.cat([verts[..., self._face, :], joints[..., list(COCO17_FROM_SMPL), :]], -2)}
        if h36m and self.has_h36m:
            out["h36m17"] = torch.einsum("hs,...sc->...hc", self.smpl.h36m_regressor.to(dt), verts)
            out["lsp14"] = out["h36m17"][..., list(H36M_TO_LSP14), :]
        if return_vertices:
            out["vertices"] = verts
        return out


def checkpoint_kind(path: str | Path) -> str:
    """``"converted"`` (``humr convert-official``), ``"official"`` (the release's Lightning
    checkpoint, ``model.flow.module_list.*`` keys) or ``"humr"`` (``humr train``); read by
    :func:`humr.io.load_checkpoint_file` (``weights_only=True``; the release's yacs ``CfgNode``
    hyper-parameters as ``OrderedDict``), whose errors name the file."""
    import collections

    from humr.io import load_checkpoint_file
    from humr.official.checkpoint import FORMAT

    with torch.serialization.safe_globals([(collections.OrderedDict, "yacs.config.CfgNode")]):
        ckpt = load_checkpoint_file(path)
    if ckpt.get("format") == FORMAT:
        return "converted"
    if any(k.startswith("model.flow.module_list.") for k in ckpt["state_dict"]):
        return "official"
    return "humr"


def eval_config(settings: dict, data_root: str | Path, num_samples: int) -> Any:
    """The :class:`humr.config.Config` of the official evaluation: the converted model
    settings (:func:`humr.official.checkpoint.official_config`) with the release's test
    settings (``configs/default_config.yaml`` and ``train/core/config.py``: IMG_RES 224,
    EVAL_BATCH_SIZE 32, NUM_TEST_SAMPLES 100 unless ``num_samples``), on the release's data."""
    from humr.config import Config

    return Config.load(dict(settings)).override({
        "data.format": "official", "data.root": str(data_root), "data.crop_res": 224,
        "train.eval_batch_size": 32, "train.num_samples_eval": int(num_samples),
        "model.body_model": "procedural"})   # unused: the body comes with the model


def official_eval_module(path: str | Path, data_root: str | Path, gt_body_dir: str | Path,
                         num_samples: int = 100, body_model: str | Path | None = None,
                         smplx2smpl: str | Path | None = None, utils_dir: str | Path | None = None):
    """A :class:`humr.engine.module.HumrModule` evaluating a converted or official checkpoint
    the release's way.

    Args:
        path: ``humr convert-official`` output or the release's ``humr_best.ckpt``.
        data_root: the release's data folder (``data.format: official``).
        gt_body_dir: SMPL folder with the neutral, male and female models (official:
            ``data/body_models/SMPL_python_v.1.1.0/smpl/models``), or "procedural" (every
            ground truth neutral, with a warning).
        num_samples: hypotheses per image (the mode included).
        body_model: SMPL-X folder / file (default: the body stored in the checkpoint).
        smplx2smpl: the release's ``smplx2smpl.pkl`` (default: the one ``body_model`` found
            beside it, else found by :func:`humr.body.model.find_utils_file` in ``utils_dir`` or
            near ``gt_body_dir``).
        utils_dir: folder of the release's utils.zip (``smplx2smpl.pkl``,
            ``J_regressor_h36m.npy``).

    Raises FileNotFoundError naming a missing body model, ``smplx2smpl.pkl`` or
    ``J_regressor_h36m.npy`` (and where it comes from), ValueError for a mapping of the wrong
    shape.
    """
    from humr.body import BodyModel
    from humr.body.model import find_utils_file
    from humr.engine.evaluation import GenderedBodies
    from humr.engine.module import HumrModule
    from humr.official.checkpoint import load_official_settings

    model, settings = load_official_settings(path, body_model=body_model)
    smpl = BodyModel(gt_body_dir, model_type="smpl", num_betas=10, utils_dir=utils_dir)
    smpl.require_h36m("3dpw")     # the release loads J_regressor_h36m.npy for every evaluation
    mapping = None          # a --body-model found smplx2smpl.pkl itself: its mapping is used
    if smplx2smpl is not None or not hasattr(model.body, "smplx_to_smpl"):
        if smplx2smpl is None:
            near = gt_body_dir if str(gt_body_dir) != "procedural" else None
            smplx2smpl = find_utils_file("smplx2smpl.pkl", near, utils_dir)
        mapping = load_smplx_to_smpl(smplx2smpl, model.body.v_template.shape[0])
    model = type(model)(model.conditions, model.flow, model.head,
                        SmplxAsSmpl(model.body, smpl, mapping)).eval()
    cfg = eval_config(settings, data_root, num_samples)
    gt = GenderedBodies.from_folder(str(gt_body_dir), follow=model.body, utils_dir=utils_dir,
                                    neutral=smpl)
    return HumrModule(cfg, num_samples_eval=num_samples, model=model, gt_bodies=gt)

"""Evaluation of hypothesis sets: maps a batch and the model's output to the paper's metrics.

:class:`EvaluationMetrics` holds the torchmetrics Metrics of section 5.1 (Tables 1 and 2, plus
the synthetic benchmark's posterior distance) in a ``MetricCollection`` and feeds them from
``(batch, out, truth)``: ``out`` is the model's output with the body outputs of
:data:`EVAL_OUTPUTS`, ``truth`` the same geometry of the ground truth
(:func:`evaluation_outputs` computes both through the model, so the metrics never call the body
model):

* ``HypothesisAccuracy`` with protocol ``emdb`` (24 SMPL joints; a body with fewer joints, e.g.
  SMPL-X's 22, is an error, not a silent skip) and, when the body model has an H36M regressor
  (``h36m17`` output), protocol ``3dpw`` (root = H36M pelvis, 14 LSP joints); PVE from the
  meshes. Ground-truth bodies come from ``gt_body(gender)`` when given and the batch has a
  ``gender`` key (0 neutral, 1 male, 2 female; official: the gendered SMPL of the dataset).
* ``Consistency2D``: projected COCO joints vs. the ground truth, visible = detector confidence.
* ``Spread3D``: body-frame COCO 3D joints (no root subtracted, as the release), mode included.
* ``MaskPlausibility``: invisible = confidence < 0.5 (:mod:`humr.core.visibility`), mode included.
* ``PosteriorDistance``: when the batch carries ``posterior`` poses (synthetic benchmark), the
  SMPL joints of those poses (ground-truth shape) vs. the hypotheses.

Metric states are sums, so ``compute`` is exact under DDP (torchmetrics synchronises them).
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping

import torch
from torch import Tensor, nn
from torchmetrics import MetricCollection

from humr.core.visibility import VISIBLE_THRESHOLD, invisible
from humr.geometry import axis_angle_to_matrix, full_to_crop
from humr.metrics import (
    Consistency2D,
    HypothesisAccuracy,
    MaskPlausibility,
    PosteriorDistance,
    Spread3D,
)
from humr.metrics.protocols import get_protocol

__all__ = [
    "EVAL_OUTPUTS",
    "TABLES",
    "EvaluationMetrics",
    "GenderedBodies",
    "evaluation_outputs",
    "format_table",
    "invisible_joints",
]

VISIBLE_CONF = VISIBLE_THRESHOLD   # visible: detector confidence >= 0.5 (humr.core.visibility)

# Rows of the printed tables: (section, metric keys).
TABLES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Table 1: accuracy, 3dpw protocol (14 joints), mm",
     ("3dpw/mpjpe_mode", "3dpw/pa_mpjpe_mode", "3dpw/pve_mode",
      "3dpw/mpjpe_min", "3dpw/pa_mpjpe_min", "3dpw/pve_min")),
    ("Table 1: accuracy, emdb protocol (24 joints), mm",
     ("emdb/mpjpe_mode", "emdb/pa_mpjpe_mode", "emdb/pve_mode",
      "emdb/mpjpe_min", "emdb/pa_mpjpe_min", "emdb/pve_min")),
    ("Table 2: consistency (2D keypoint error, px of a 256 crop)",
     ("kp2d_mode", "kp2d_samples")),
    ("Table 2: diversity (3D keypoint spread, mm)", ("spread_visible", "spread_invisible")),
    ("Table 2: plausibility (mask metrics)", ("perc_in", "min_dist")),
    ("Synthetic posterior: energy distance to the true posterior, mm",
     ("energy_occluded", "energy_visible")),
)


def _crop_points(points: Tensor, batch: Mapping[str, Tensor]) -> Tensor:
    """Full-image points (B, K, 2) -> crop coordinates [-1, 1] of the batch's boxes."""
    return full_to_crop(points, batch["center"], 200.0 * batch["scale"].reshape(-1))


def invisible_joints(batch: Mapping[str, Tensor]) -> Tensor:
    """(B, 17) bool: COCO joints with detector confidence < 0.5 (official mask metrics)."""
    return invisible(batch["cond_kp"][..., 2])


def _root_relative(joints: Tensor, hips: tuple[int, int]) -> Tensor:
    return joints - joints[..., list(hips), :].mean(dim=-2, keepdim=True)


#: Body outputs the evaluation asks the model for (``HUMR.forward(outputs=...)``).
EVAL_OUTPUTS = ("h36m17", "vertices")


@torch.no_grad()
def evaluation_outputs(model: nn.Module, batch: Mapping[str, Tensor], num_samples: int,
                       z: Tensor | None = None, with_vertices: bool = True,
                       gt_body: Callable[[int], nn.Module] | None = None,
                       ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """The model's hypotheses and the ground-truth geometry :class:`EvaluationMetrics` needs.

    Args:
        model: a :class:`humr.model.HUMR`.
        batch: the sample schema (``pose``, ``betas`` and, on the synthetic benchmark,
            ``posterior`` (B, P, J*3) axis-angle, NaN rows = padding).
        num_samples: S >= 2 hypotheses per image (hypothesis 0 = mode).
        z: optional latents (B, S, D).
        with_vertices: also the meshes (PVE).
        gt_body: optional ``gender (int) -> body model`` for the ground truth (e.g. a cached
            ``BodyModel(path, gender=...)``; official: the dataset's gendered SMPL), used for
            batches with a ``gender`` key (B,) (0 neutral, 1 male, 2 female); else the model's
            own body poses the ground truth.
    Returns:
        ``out`` (model output with ``h36m17`` / ``vertices`` when available) and ``truth``
        (``joints``, ``h36m17``, ``vertices`` of the ground truth; ``posterior_joints``
        (B, P, J, 3) and ``posterior_valid`` (B, P) with a posterior).
    """
    outputs = EVAL_OUTPUTS if with_vertices else ("h36m17",)
    out = model(batch, num_samples=num_samples, z=z, outputs=outputs)
    truth = _ground_truth(model, batch, outputs, gt_body)
    if "posterior" in batch:
        post = batch["posterior"]                                  # (B, P, J*3)
        B, P = post.shape[:2]
        J = model.num_joints
        valid = torch.isfinite(post).all(dim=-1)                   # padded rows are NaN
        rot = axis_angle_to_matrix(torch.nan_to_num(post).reshape(B, P, -1, 3)[:, :, :J])
        betas = batch["betas"][:, None].expand(B, P, -1)
        truth["posterior_joints"] = model.body_geometry(rot, betas)["joints"]
        truth["posterior_valid"] = valid
    return out, truth


class GenderedBodies:
    """``gender -> body model`` for the ground truth (official: the dataset's gendered SMPL).

    Two uses:

    * the run's own body (``humr train`` / ``humr eval`` without ``--gt-body-dir``): 0
      (neutral) is the model's body, 1 / 2 ``BodyModel(model_path, gender="male" / "female")``
      of the run's body folder;
    * a separate ground-truth body folder (:meth:`from_folder`, ``humr eval --gt-body-dir``;
      official: the SMPL neutral / male / female models with 10 betas, whatever body the model
      predicts with): every gender is read from that folder.

    Bodies are built on first use (an error names a missing file) and returned on the device of
    ``follow`` (default: the neutral body), so they follow the model when it moves. The
    procedural body has no genders: it then poses every ground truth, with a warning
    (documented fallback).

    Args:
        neutral: the body of gender 0 (e.g. the model's :class:`humr.body.BodyModel`), or None
            to read it from ``model_path``.
        model_path: body folder / file, or "procedural".
        model_type, num_betas: of the bodies read from ``model_path``.
        utils_dir: folder of the release's utils.zip (H36M regressor), searched first.
        follow: module whose device the bodies are moved to (default: ``neutral``).
    """

    def __init__(self, neutral: nn.Module | None, model_path: str, model_type: str, num_betas: int,
                 utils_dir: str | None = None, follow: nn.Module | None = None) -> None:
        self.model_path, self.model_type, self.num_betas = str(model_path), model_type, num_betas
        self.utils_dir, self.follow = utils_dir, follow if follow is not None else neutral
        self._bodies: dict[int, nn.Module] = {} if neutral is None else {0: neutral}

    @classmethod
    def from_folder(cls, folder: str, follow: nn.Module, model_type: str = "smpl",
                    num_betas: int = 10, utils_dir: str | None = None,
                    neutral: nn.Module | None = None) -> GenderedBodies:
        """Ground-truth bodies of a separate folder (official: SMPL, 10 betas) on the device
        of ``follow`` (the model's body); ``neutral``: an already built neutral body of it."""
        return cls(neutral, folder, model_type, num_betas, utils_dir=utils_dir, follow=follow)

    def __call__(self, gender: int) -> nn.Module:
        if gender not in (0, 1, 2):
            raise ValueError(f"batch['gender'] holds {gender}; expected 0 neutral, 1 male, 2 female")
        if gender not in self._bodies:
            if gender and self.model_path == "procedural":
                warnings.warn("the procedural body has no gendered models: the neutral body poses "
                              "the male / female ground truths", stacklevel=2)
                self._bodies[1] = self._bodies[2] = self(0)
            else:
                from humr.body import BodyModel

                self._bodies[gender] = BodyModel(
                    self.model_path, model_type=self.model_type, num_betas=self.num_betas,
                    gender=("neutral", "male", "female")[gender], utils_dir=self.utils_dir)
        body = self._bodies[gender]
        ref = self.follow if self.follow is not None else self._bodies.get(0, body)
        device = next(iter(ref.buffers()), None)
        return body if device is None else body.to(device.device)


def _ground_truth(model: nn.Module, batch: Mapping[str, Tensor], outputs: tuple[str, ...],
                  gt_body: Callable[[int], nn.Module] | None) -> dict[str, Tensor]:
    """The ground truth's body outputs, posed by one body model per gender in the batch."""
    if gt_body is None or "gender" not in batch:
        return model.ground_truth(batch, outputs)
    gender = batch["gender"].reshape(-1).long()
    truth: dict[str, Tensor] = {}
    for g in gender.unique().tolist():
        idx = (gender == g).nonzero().flatten()
        part = model.ground_truth({k: batch[k][idx] for k in ("pose", "betas")}, outputs,
                                  body=gt_body(int(g)))
        for key, value in part.items():
            if key not in truth:
                truth[key] = value.new_zeros((gender.shape[0], *value.shape[1:]))
            truth[key][idx] = value
    return truth


class EvaluationMetrics(nn.Module):
    """The paper's evaluation metrics fed from model outputs.

    Args:
        with_vertices: compute PVE (needs ``vertices`` in ``out`` and ``truth``).

    ``update(batch, out, truth)`` takes a batch (docs/conventions.md), the model output for S
    >= 2 hypotheses (hypothesis 0 = mode) and the ground-truth geometry, as
    :func:`evaluation_outputs` returns them; ``compute()`` returns a flat dict of floats (keys
    as in :data:`TABLES`; ``3dpw/*`` only with an H36M regressor, posterior keys only when
    batches carried ``posterior``; metrics never updated are left out).

    Example (see tests/test_engine_evaluation.py)::

        metrics = EvaluationMetrics()
        metrics.update(batch, *evaluation_outputs(model, batch, num_samples=100))
        print(format_table(metrics.compute()))
    """

    def __init__(self, with_vertices: bool = True) -> None:
        super().__init__()
        self.with_vertices = with_vertices
        self.metrics = MetricCollection({
            "emdb": HypothesisAccuracy("emdb"),
            "3dpw": HypothesisAccuracy("3dpw"),
            "consistency": Consistency2D(VISIBLE_CONF),
            "spread": Spread3D(VISIBLE_CONF),
            "mask": MaskPlausibility(),
            "posterior": PosteriorDistance(),
        }, compute_groups=False)

    @torch.no_grad()
    def update(self, batch: Mapping[str, Tensor], out: Mapping[str, Tensor],
               truth: Mapping[str, Tensor]) -> None:
        B, S = out["rotmat"].shape[:2]
        if S < 2:
            raise ValueError(f"out['rotmat'] has S = {S} hypotheses; evaluation needs S >= 2")
        dtype = out["rotmat"].dtype
        vkey = "vertices_smpl" if "vertices_smpl" in out else "vertices"   # SMPL-X -> SMPL mesh
        pred_keys = {"emdb": "joints3d", "3dpw": "h36m17"}
        gt_keys = {"emdb": "joints", "3dpw": "h36m17"}
        for name in ("emdb", "3dpw"):
            k = get_protocol(name).num_joints
            pred, gt = out.get(pred_keys[name]), truth.get(gt_keys[name])
            if pred is None or gt is None:                         # no H36M regressor
                continue
            if pred.shape[-2] < k:
                raise ValueError(
                    f"protocol '{name}' needs {k} joints ({get_protocol(name).joint_set}) but "
                    f"the body model gives {pred.shape[-2]} in '{pred_keys[name]}' (an SMPL-X "
                    f"body); evaluate with an SMPL body model")
            verts = ((out[vkey].to(dtype), truth[vkey].to(dtype)) if self.with_vertices
                     else (None, None))
            self.metrics[name].update(pred[..., :k, :].to(dtype), gt[:, :k].to(dtype), *verts)

        conf = batch["cond_kp"][..., 2] * batch["coco_gt"][..., 2]   # invalid GT -> not visible
        gt_kp = _crop_points(batch["coco_gt"][..., :2], batch)
        self.metrics["consistency"].update(out["keypoints2d"], gt_kp.to(dtype), conf.to(dtype))
        # body-frame keypoints, no root subtracted: the release's joints_3d_diversity (the
        # pelvis stays at the body origin, so a hypothesis' global rotation counts as spread)
        self.metrics["spread"].update(out["keypoints3d"], batch["cond_kp"][..., 2].to(dtype))
        self.metrics["mask"].update(out["keypoints2d"], batch["mask"], invisible_joints(batch),
                                    batch["mask_valid"].reshape(B).bool())
        if "posterior_joints" in truth:
            self._update_posterior(out["joints3d"], truth["posterior_joints"],
                                   truth["posterior_valid"])

    def _update_posterior(self, pred_joints: Tensor, post_joints: Tensor, valid: Tensor) -> None:
        J = pred_joints.shape[2]
        hips = get_protocol("emdb").root_indices
        post_joints = _root_relative(post_joints[:, :, :J].to(pred_joints.dtype), hips)
        # A joint is occluded when the true posterior moves it (> 1 mm spread); visible joints
        # are pinned down by the image, so their posterior samples coincide.
        spread = (post_joints - post_joints.mean(1, keepdim=True)).norm(dim=-1)
        spread = torch.where(valid[..., None], spread, torch.zeros_like(spread)).amax(dim=1)
        self.metrics["posterior"].update(_root_relative(pred_joints, hips), post_joints,
                                         spread > 1e-3, valid)

    def compute(self) -> dict[str, float]:
        """Flat dict of results; accuracy keys are prefixed with their protocol."""
        result: dict[str, float] = {}
        for name, metric in self.metrics.items(keep_base=True):
            if not metric.update_count:
                continue
            prefix = f"{name}/" if name in ("emdb", "3dpw") else ""
            for key, value in metric.compute().items():
                result[prefix + key] = float(value)
        return result

    def reset(self) -> None:
        self.metrics.reset()


def format_table(results: Mapping[str, float], title: str | None = None) -> str:
    """The results grouped like the paper's Tables 1 and 2, one metric per line."""
    lines: list[str] = [title] if title else []
    for section, keys in TABLES:
        present = [k for k in keys if k in results]
        if not present:
            continue
        lines.append(section)
        for key in present:
            value = results[key]
            text = "n/a" if value is None or math.isnan(value) else f"{value:10.3f}"
            lines.append(f"  {key:<22s}{text}")
    return "\n".join(lines)

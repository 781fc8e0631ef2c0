"""Evaluation of hypothesis sets: maps a batch and the model's output to the paper's metrics.

:class:`EvaluationMetrics` holds the torchmetrics Metrics of section 5.1 (Tables 1 and 2, plus
the synthetic benchmark's posterior distance) and feeds them from ``(batch, out)``:

* ``HypothesisAccuracy`` with protocol ``emdb`` (24 SMPL joints; a body with fewer joints, e.g.
  SMPL-X's 22, is an error, not a silent skip) and, when the body model has an H36M regressor
  (``h36m17`` output), protocol ``3dpw`` (root = H36M pelvis, 14 LSP joints); PVE from the
  meshes. Ground-truth bodies come from ``gt_body(gender)`` when given and the batch has a
  ``gender`` key (0 neutral, 1 male, 2 female; official: the gendered SMPL of the dataset).
* ``Consistency2D``: projected COCO joints vs. the ground truth, visible = detector confidence.
* ``Spread3D``: root-relative COCO 3D joints (root = mean of the hips 11, 12), mode included.
* ``MaskPlausibility``: invisible = confidence < 0.5 (:mod:`humr.core.visibility`), mode included.
* ``PosteriorDistance``: when the batch carries ``posterior`` poses (synthetic benchmark), the
  SMPL joints of those poses (ground-truth shape, joints-only body path) vs. the hypotheses.

Metric states are sums, so ``compute`` is exact under DDP (torchmetrics synchronises them).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import torch
from torch import Tensor, nn

from humr.core.skeleton import COCO_HIPS
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

__all__ = ["TABLES", "EvaluationMetrics", "format_table", "invisible_joints"]

VISIBLE_CONF = VISIBLE_THRESHOLD   # visible: detector confidence >= 0.5 (humr.core.visibility)

# Rows of the printed tables: (section, metric keys).
TABLES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Table 1: accuracy, 3dpw protocol (14 joints, H36M pelvis root), mm",
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


class EvaluationMetrics(nn.Module):
    """The paper's evaluation metrics fed from model outputs.

    Args:
        with_vertices: compute PVE (skins the full mesh of every hypothesis).
        gt_body: optional ``gender (int) -> body model`` for the ground truth (e.g. a cached
            ``BodyModel(path, gender=...)`` per gender); used for batches with a ``gender``
            key (B,), else the prediction's body is used.

    ``update(batch, out, body)`` takes a batch (docs/conventions.md), the output of
    ``model(batch, num_samples=S)`` (S >= 2, hypothesis 0 = mode) and the body model
    (``model.body``: ``body(rotmat (N, J, 3, 3), betas (N, nb), return_vertices=...,
    joints_only=...)`` -> dict with ``joints`` (N, J, 3), ``lsp14`` when a regressor exists
    and ``vertices``); ``compute()`` returns a flat
    dict of floats (keys as in :data:`TABLES`; ``3dpw/*`` only with an H36M regressor,
    posterior keys only when batches carried ``posterior``).

    Example (see tests/test_engine_evaluation.py)::

        metrics = EvaluationMetrics()
        metrics.update(batch, model(batch, num_samples=100), model.body)
        print(format_table(metrics.compute()))
    """

    def __init__(self, with_vertices: bool = True,
                 gt_body: Callable[[int], nn.Module] | None = None) -> None:
        super().__init__()
        self.with_vertices = with_vertices
        self.gt_body = gt_body
        self.metrics = nn.ModuleDict({
            "emdb": HypothesisAccuracy("emdb"),
            "3dpw": HypothesisAccuracy("3dpw"),
            "consistency": Consistency2D(VISIBLE_CONF),
            "spread": Spread3D(VISIBLE_CONF),
            "mask": MaskPlausibility(),
            "posterior": PosteriorDistance(),
        })
        self._seen: set = set()

    @staticmethod
    def _run_body(body: nn.Module, rotmat: Tensor, betas: Tensor, **kw) -> dict[str, Tensor]:
        """The body model with autocast off, in float32 for half-precision inputs (else in the
        inputs' dtype)."""
        dtype = torch.float32 if rotmat.dtype in (torch.float16, torch.bfloat16) else rotmat.dtype
        with torch.autocast(device_type=rotmat.device.type, enabled=False):
            return body(rotmat.to(dtype), betas.to(dtype), **kw)

    def _ground_truth(self, batch: Mapping[str, Tensor], gt_rot: Tensor,
                      body: nn.Module) -> dict[str, Tensor]:
        """Body outputs of the ground truth, one body model per gender present in the batch."""
        kw = {"return_vertices": self.with_vertices}
        if self.gt_body is None or "gender" not in batch:
            return self._run_body(body, gt_rot, batch["betas"], **kw)
        gender = batch["gender"].reshape(-1).long()
        out: dict[str, Tensor] = {}
        for g in gender.unique().tolist():
            idx = (gender == g).nonzero().flatten()
            part = self._run_body(self.gt_body(int(g)), gt_rot[idx], batch["betas"][idx], **kw)
            for key, value in part.items():
                if key not in out:
                    out[key] = value.new_zeros((gender.shape[0], *value.shape[1:]))
                out[key][idx] = value
        return out

    @torch.no_grad()
    def update(self, batch: Mapping[str, Tensor], out: Mapping[str, Tensor],
               body: nn.Module) -> None:
        rotmat, betas = out["rotmat"], out["betas"]
        B, S = rotmat.shape[:2]
        if S < 2:
            raise ValueError(f"out['rotmat'] has S = {S} hypotheses; evaluation needs S >= 2")
        dtype = rotmat.dtype
        J = rotmat.shape[2]
        gt_rot = axis_angle_to_matrix(batch["pose"].reshape(B, -1, 3)[:, :J])
        gt = self._ground_truth(batch, gt_rot, body)
        pred = self._run_body(body, rotmat.flatten(0, 1), betas.flatten(0, 1),
                              return_vertices=self.with_vertices)
        unflat = lambda x: x.reshape(B, S, *x.shape[1:]).to(dtype)
        vkey = "vertices_smpl" if "vertices_smpl" in pred else "vertices"   # SMPL-X -> SMPL mesh
        for name, key in (("emdb", "joints"), ("3dpw", "h36m17")):
            k = get_protocol(name).num_joints
            if pred.get(key) is None:                              # no H36M regressor
                continue
            if pred[key].shape[-2] < k:
                raise ValueError(
                    f"protocol '{name}' needs {k} joints ({get_protocol(name).joint_set}) but "
                    f"the body model gives {pred[key].shape[-2]} in '{key}' (an SMPL-X body); "
                    f"evaluate with an SMPL body model")
            verts = (unflat(pred[vkey]), gt[vkey].to(dtype)) if self.with_vertices else (None, None)
            self.metrics[name].update(unflat(pred[key][:, :k]), gt[key][:, :k].to(dtype), *verts)
            self._seen.add(name)

        conf = batch["cond_kp"][..., 2] * batch["coco_gt"][..., 2]   # invalid GT -> not visible
        gt_kp = _crop_points(batch["coco_gt"][..., :2], batch)
        self.metrics["consistency"].update(out["keypoints2d"], gt_kp.to(dtype), conf.to(dtype))
        self.metrics["spread"].update(_root_relative(out["keypoints3d"], COCO_HIPS),
                                      batch["cond_kp"][..., 2].to(dtype))
        self.metrics["mask"].update(out["keypoints2d"], batch["mask"], invisible_joints(batch),
                                    batch["mask_valid"].reshape(B).bool())
        self._seen.update(("consistency", "spread", "mask"))
        if "posterior" in batch:
            self._update_posterior(batch, unflat(pred["joints"]), body)

    def _update_posterior(self, batch: Mapping[str, Tensor], pred_joints: Tensor,
                          body: nn.Module) -> None:
        post = batch["posterior"]                                  # (B, P, J*3)
        B, P = post.shape[:2]
        J = pred_joints.shape[2]
        valid = torch.isfinite(post).all(dim=-1)                   # padded rows are NaN
        rot = axis_angle_to_matrix(torch.nan_to_num(post).reshape(B * P, -1, 3)[:, :J])
        betas = batch["betas"][:, None].expand(B, P, -1).reshape(B * P, -1)
        joints = self._run_body(body, rot, betas, joints_only=True)["joints"].reshape(B, P, -1, 3)
        hips = get_protocol("emdb").root_indices
        post_joints = _root_relative(joints[:, :, :J].to(pred_joints.dtype), hips)
        # A joint is occluded when the true posterior moves it (> 1 mm spread); visible joints
        # are pinned down by the image, so their posterior samples coincide.
        spread = (post_joints - post_joints.mean(1, keepdim=True)).norm(dim=-1)
        spread = torch.where(valid[..., None], spread, torch.zeros_like(spread)).amax(dim=1)
        self.metrics["posterior"].update(_root_relative(pred_joints, hips), post_joints,
                                         spread > 1e-3, valid)
        self._seen.add("posterior")

    def compute(self) -> dict[str, float]:
        """Flat dict of results; accuracy keys are prefixed with their protocol."""
        result: dict[str, float] = {}
        for name in self.metrics:
            if name not in self._seen:
                continue
            prefix = f"{name}/" if name in ("emdb", "3dpw") else ""
            for key, value in self.metrics[name].compute().items():
                result[prefix + key] = float(value)
        return result

    def reset(self) -> None:
        for metric in self.metrics.values():
            metric.reset()
        self._seen.clear()


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

"""Oracle rows of the synthetic benchmark: what a model drawing from the true posterior scores.

Every synthetic example stores samples of its true posterior (``posterior`` (P, J*3), the
first ``posterior_count`` rows distinct, the ground truth first, the rest cyclic repeats;
:mod:`humr.data.detector`). A perfect model's random hypotheses are draws from that posterior,
so the same metrics computed on stored draws are the best any model can reach on the
benchmark (:func:`oracle_metrics`):

* accuracy (``emdb`` 24 SMPL joints, and ``3dpw`` 14 LSP joints when the body model has an
  H36M regressor): ``*_min`` best of ``N`` draws (N = the model's hypothesis count) and
  ``*_mean``, the mode-free accuracy (mean error of one draw). Draws are taken with
  replacement from the distinct samples *without* the ground truth (which every stored set
  contains and which would score 0); an example whose posterior is the ground truth alone (no
  hidden chain) draws the ground truth. PVE is not computed (it needs full meshes).
* ``*_min_mean_shape``: best of the same ``N`` draws posed with the mean body shape
  (betas 0) against the ground truth with its own shape. The stored posterior keeps the
  shape, the camera and every rotation that does not explain a hidden joint at the ground
  truth; of these, the shape is what a model can least recover from one image (the body's
  size trades against its depth). This row is the oracle of a model that knows the pose
  posterior exactly and the shape not at all: on the default benchmark (``betas_std`` 1)
  the ground-truth pose with the mean shape is 41.8 mm MPJPE-24 from the ground truth
  (31.1 mm after the best scale), so a model that does not learn the shape cannot come
  near ``*_min``. ``energy_occluded_mean_shape`` / ``energy_visible_mean_shape`` (with
  ``*_se``) are the energy distances of N - 1 such draws to the stored set, measured as
  :class:`humr.metrics.PosteriorDistance` measures a model's random hypotheses: the floor of
  a model that knows the pose posterior and not the shape.
* 2D consistency ``kp2d_samples``, 3D spread ``spread_visible`` / ``spread_invisible``,
  ``perc_in`` / ``min_dist`` of the same draws, projected with the ground-truth camera (its
  translation is recovered from the stored 2D / 3D ground truth, :func:`camera_translation`)
  and passed to the public functional metrics of :mod:`humr.metrics.functional` exactly as
  the evaluation passes model hypotheses (visibility from the detector confidence).
* the noise floor of the posterior energy distance: the distinct samples of each example
  (ground truth included: it is itself a draw from the posterior) are split at random into
  two halves, and ``energy_occluded`` / ``energy_visible`` are the energy distances between
  the halves, pooled over (example, joint) pairs like
  :class:`humr.metrics.PosteriorDistance` (occluded = the posterior moves the joint by more
  than 1 mm, the evaluation's rule), with a standard error clustered by example
  (``*_se``). A V-statistic between independent sets of sizes n and m has expectation
  ``E|X - X'| (1/n + 1/m)``, so the floor depends on the set sizes: ``energy_*`` is the
  expected distance of N - 1 exact draws to the stored set (the model's configuration,
  :func:`energy_floor`), ``energy_*_halves`` the measured distance between the two halves of
  about P/2 samples each. The test split stores P = 256 samples
  (``SynthConfig.test_posterior_samples``; 164 distinct on average). Measured on 64 test
  examples (seed 0), the occluded floor at N = 100 is 13.8 +- 3.6 mm (s.e.) with P = 64,
  8.7 +- 2.2 mm with P = 128 and 8.9 +- 3.3 mm with P = 256, where the model's own N - 1 =
  99 draws dominate it (the halves: 45-47, 26-27 and 23-27 mm over two split seeds); the
  standard error comes from the spread between examples, not from P.

:func:`oracle_report` evaluates a dataset split (:func:`dataset_oracle`: None for data without
a stored posterior); :func:`format_oracle` prints the oracle beside a model's results
(``humr eval`` on synthetic data, ``humr demo``).
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor

from humr.core.visibility import VISIBLE_THRESHOLD as VISIBLE_CONF
from humr.core.visibility import invisible as is_invisible
from humr.geometry import axis_angle_to_matrix, full_to_crop, perspective_project
from humr.losses import MMDLoss
from humr.metrics.functional import (
    consistency_2d,
    hypothesis_errors,
    mask_plausibility,
    spread_3d,
)
from humr.metrics.protocols import get_protocol

__all__ = ["MEAN_SHAPE_ROWS", "ORACLE_ROWS", "camera_translation", "dataset_oracle",
           "energy_floor", "format_oracle", "oracle_metrics", "oracle_report", "post_weights",
           "posterior_draws", "posterior_halves"]

OCCLUDED_SPREAD = 1e-3        # metres: the evaluation's "the posterior moves this joint" rule

#: (model metric key, oracle key) rows of :func:`format_oracle`
ORACLE_ROWS = (
    ("3dpw/mpjpe_mode", "3dpw/mpjpe_mean"), ("3dpw/pa_mpjpe_mode", "3dpw/pa_mpjpe_mean"),
    ("3dpw/mpjpe_min", "3dpw/mpjpe_min"), ("3dpw/pa_mpjpe_min", "3dpw/pa_mpjpe_min"),
    ("emdb/mpjpe_mode", "emdb/mpjpe_mean"), ("emdb/pa_mpjpe_mode", "emdb/pa_mpjpe_mean"),
    ("emdb/mpjpe_min", "emdb/mpjpe_min"), ("emdb/pa_mpjpe_min", "emdb/pa_mpjpe_min"),
    ("kp2d_samples", "kp2d_samples"),
    ("spread_visible", "spread_visible"), ("spread_invisible", "spread_invisible"),
    ("perc_in", "perc_in"), ("min_dist", "min_dist"),
    ("energy_occluded", "energy_occluded"), ("energy_visible", "energy_visible"),
)


def camera_translation(joints3d: Tensor, points2d: Tensor, focal: Tensor,
                       principal: Tensor) -> Tensor:
    """Translation t (B, 3) with ``perspective_project(joints3d, focal, principal, t) ==
    points2d``, by linear least squares (exact for exact projections).

    Each point gives ``f_x t_x - (u - c_x) t_z = (u - c_x) Z - f_x X`` and the same in y.

    Args:
        joints3d: (B, K, 3) metres, camera frame before the translation (K >= 2).
        points2d: (B, K, 2) their projections, px.
        focal, principal: (B, 2) px.
    """
    du = points2d - principal[:, None]                                  # (B, K, 2)
    B, K = du.shape[:2]
    A = torch.zeros(B, K, 2, 3, dtype=joints3d.dtype, device=joints3d.device)
    A[..., 0, 0] = focal[:, None, 0]
    A[..., 1, 1] = focal[:, None, 1]
    A[..., 2] = -du
    rhs = du * joints3d[..., 2:] - focal[:, None] * joints3d[..., :2]   # (B, K, 2)
    return torch.linalg.lstsq(A.reshape(B, 2 * K, 3), rhs.reshape(B, 2 * K, 1)).solution[..., 0]


def posterior_draws(count: Tensor, num: int, generator: torch.Generator) -> Tensor:
    """Indices (B, num) of ``num`` draws with replacement from each example's distinct
    posterior samples ``1 .. count - 1`` (the ground truth, row 0, only when ``count == 1``)."""
    low = (count > 1).long()
    u = torch.rand(len(count), num, generator=generator, dtype=torch.float64)
    return low[:, None] + (u * (count - low)[:, None]).long()


def posterior_halves(count: Tensor, size: int, generator: torch.Generator
                     ) -> tuple[Tensor, Tensor]:
    """Random split of each example's distinct samples ``0 .. count - 1`` into two halves, as
    (B, size) masks over the stored rows (first half ``count // 2`` rows, second the rest; a
    single sample is in both halves: the posterior is a point mass)."""
    B = len(count)
    keys = torch.rand(B, size, generator=generator, dtype=torch.float64)
    rows = torch.arange(size)
    keys[rows[None] >= count[:, None]] = 2.0                       # repeats sort last
    rank = keys.argsort(dim=1).argsort(dim=1)                       # random rank of each row
    distinct = rows[None] < count[:, None]
    first = rank < (count // 2)[:, None]
    second = distinct & ~first
    single = count == 1
    first[single] = second[single]
    return first, second


def post_weights(count: Tensor, size: int) -> Tensor:
    """(B, size) weight of each distinct stored sample in the stored set: the ``size`` rows
    repeat the ``count`` distinct samples cyclically (0 for the rows beyond ``count``)."""
    rows = torch.arange(size)
    times = (size - 1 - rows[None]) // count[:, None] + 1                  # repeats of each row
    return torch.where(rows[None] < count[:, None], times, 0).to(torch.float64) / size


def energy_floor(points: Tensor, distinct: Tensor, weights: Tensor, num_draws: int) -> Tensor:
    r"""Expected energy distance (V-statistic: ``MMDLoss("energy", estimator="biased")``)
    between ``num_draws`` exact posterior draws and the stored set, per (example, joint).

    For X of n i.i.d. draws and a reference set of i.i.d. draws weighted :math:`w_d` (same
    distribution, independent), :math:`E[\mathrm{ED}_V] = \delta\,(1/n + \sum_d w_d^2)` with
    :math:`\delta = E\|X - X'\|`, estimated without bias by the mean distance between
    distinct samples (U-statistic); 0 where a single sample exists.

    Args:
        points: (B, K, P, 3) stored samples per joint.
        distinct: (B, P) bool, the distinct rows.
        weights: (B, P) their weights in the stored set (:func:`post_weights`).
        num_draws: n, the model's random hypotheses (N - 1, the mode excluded).
    Returns:
        (B, K) in the units of ``points``.
    """
    pair = distinct[:, :, None] & distinct[:, None, :]
    pair &= ~torch.eye(distinct.shape[1], dtype=torch.bool)[None]
    dist = torch.cdist(points, points)                                      # (B, K, P, P)
    n_pairs = pair.sum(dim=(1, 2)).clamp(min=1).to(points.dtype)
    delta = (dist * pair[:, None]).sum(dim=(-1, -2)) / n_pairs[:, None]
    return delta * (1.0 / max(num_draws, 1) + (weights ** 2).sum(dim=1))[:, None]


def _clustered_mean(values: Tensor, keep: Tensor) -> tuple[float, float]:
    """Pooled mean of ``values`` (B, K) over ``keep`` and its standard error clustered by
    example (ratio estimator); NaN when nothing is kept."""
    n_b = keep.sum(dim=1).to(values.dtype)
    s_b = torch.where(keep, values, torch.zeros_like(values)).sum(dim=1)
    total = float(n_b.sum())
    if total == 0:
        return math.nan, math.nan
    mean = float(s_b.sum()) / total
    used = n_b > 0
    m = int(used.sum())
    var = float(((s_b - mean * n_b)[used] ** 2).sum()) * m / max(m - 1, 1)
    return mean, math.sqrt(var) / total


@torch.no_grad()
def oracle_metrics(batch: Mapping[str, Tensor], body, num_samples: int = 100,
                   seed: int = 0, chunk: int = 4096, assumed_betas: Tensor | None = None
                   ) -> dict[str, float]:
    """The oracle of a batch of synthetic examples (module docstring).

    Args:
        batch: stacked examples (docs/conventions.md) with ``posterior`` (B, P, J*3) and
            ``posterior_count`` (B,) (at least the ground truth per example).
        body: :class:`humr.body.BodyModel` of the benchmark (ground-truth shapes).
        num_samples: N, the model's hypotheses per image.
        seed: seed of the draws and of the halves.
        chunk: poses per body pass.
        assumed_betas: (B, nb) shapes that the ``*_mean_shape`` rows pose the draws with
            instead of the mean shape (betas 0), e.g. shapes regressed from the keypoints
            (``benchmarks/keypoint_baselines.py``); the other rows keep the true shapes.
    Returns:
        Flat dict (keys in the module docstring, ``num_examples``, ``num_samples``).
    """
    for key in ("posterior", "posterior_count", "pose", "betas", "coco_gt", "cond_kp",
                "center", "scale", "orig_shape", "focal", "mask"):
        if key not in batch:
            raise KeyError(f"oracle_metrics: batch has no '{key}' (synthetic examples needed)")
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    dt = torch.float64
    post = batch["posterior"].to(dt)
    B, P = post.shape[:2]
    count = batch["posterior_count"].long().clamp(1, P)
    gen = torch.Generator().manual_seed(int(seed))
    J = body.num_joints
    betas = batch["betas"].to(dt)
    device = next(iter(body.buffers())).device          # the body may live on an accelerator

    def run(pose: Tensor, h36m: bool = True, shape: Tensor = betas) -> dict[str, Tensor]:
        """Body outputs (B, S, ...) of poses (B, S, J*3) with shapes (B, nb)."""
        S = pose.shape[1]
        rot = axis_angle_to_matrix(pose.reshape(B * S, -1, 3)[:, :J])
        bet = shape[:, None].expand(B, S, -1).reshape(B * S, -1)
        parts = [{k: v.to("cpu", dt) for k, v in
                  body(rot[i:i + chunk].to(device), bet[i:i + chunk].to(device), h36m=h36m).items()}
                 for i in range(0, B * S, chunk)]
        return {k: torch.cat([p[k] for p in parts]).reshape(B, S, *parts[0][k].shape[1:])
                for k in parts[0]}

    gt_pose = batch["pose"].to(dt)[:, None]
    idx = posterior_draws(count, num_samples, gen)
    draws = torch.gather(post, 1, idx[..., None].expand(-1, -1, post.shape[-1]))
    # slot 0 = the ground truth, a placeholder for the mode that the sample metrics skip
    out = run(torch.cat([gt_pose, draws], dim=1))
    guess = torch.zeros_like(betas) if assumed_betas is None else assumed_betas.to(dt)
    if guess.shape != betas.shape:
        raise ValueError(f"assumed_betas must have the shape of batch['betas'] "
                         f"{tuple(betas.shape)}, got {tuple(guess.shape)}")
    mean_shape = run(draws, shape=guess)
    result: dict[str, float] = {"num_examples": float(B), "num_samples": float(num_samples)}

    for name, key in (("emdb", "joints"), ("3dpw", "lsp14")):
        k = get_protocol(name).num_joints
        if key not in out or out[key].shape[-2] < k:
            continue
        err = hypothesis_errors(out[key][:, 1:, :k], out[key][:, 0, :k], name)
        for metric, e in err.items():
            result[f"{name}/{metric}_min"] = float(e.min(dim=1).values.mean())
            result[f"{name}/{metric}_mean"] = float(e.mean())
        err = hypothesis_errors(mean_shape[key][..., :k, :], out[key][:, 0, :k], name)
        for metric, e in err.items():
            result[f"{name}/{metric}_min_mean_shape"] = float(e.min(dim=1).values.mean())

    # 2D: project with the ground-truth camera, recovered from the stored 2D ground truth
    h, w = batch["orig_shape"][:, 0].to(dt), batch["orig_shape"][:, 1].to(dt)
    principal = torch.stack([w / 2, h / 2], dim=-1)
    focal = batch["focal"].to(dt)
    coco = out["coco17"]                                            # (B, 1 + N, 17, 3)
    transl = camera_translation(coco[:, 0], batch["coco_gt"][..., :2].to(dt), focal, principal)
    full = perspective_project(coco, focal[:, None], principal[:, None], transl[:, None])
    box, center = 200.0 * batch["scale"].to(dt).reshape(B), batch["center"].to(dt)
    kp2d = full_to_crop(full, center[:, None], box[:, None])       # (B, 1 + N, 17, 2)
    gt_kp = full_to_crop(batch["coco_gt"][..., :2].to(dt), center, box)
    conf = batch["cond_kp"][..., 2].to(dt)
    result["kp2d_samples"] = float(consistency_2d(
        kp2d, gt_kp, conf * batch["coco_gt"][..., 2].to(dt), VISIBLE_CONF)["kp2d_samples"])
    result.update({k: float(v) for k, v in spread_3d(coco, conf, VISIBLE_CONF).items()})
    invisible = is_invisible(conf)                     # the evaluation's rule (official)
    valid = batch.get("mask_valid", torch.ones(B, dtype=torch.bool)).reshape(B).bool()
    result.update({k: float(v) for k, v in
                   mask_plausibility(kp2d, batch["mask"], invisible, valid).items()})

    # noise floor of the energy distance
    joints = run(post, h36m=False)["joints"][..., :J, :]           # (B, P, J, 3)
    emdb = get_protocol("emdb")
    joints = joints - emdb.root(joints)                             # pelvis-relative
    distinct = torch.arange(P)[None] < count[:, None]
    spread = (joints - (joints * distinct[..., None, None]).sum(1, keepdim=True)
              / count[:, None, None, None]).norm(dim=-1)           # (B, P, J)
    occluded = torch.where(distinct[..., None], spread, torch.zeros_like(spread)).amax(1) \
        > OCCLUDED_SPREAD
    pts = joints.transpose(1, 2)                                   # (B, J, P, 3)
    weights = post_weights(count, P)
    first, second = posterior_halves(count, P, gen)
    floor, halves = torch.empty(B, J, dtype=dt), torch.empty(B, J, dtype=dt)
    step = max(1, (1 << 22) // (P * P * J))          # examples per block of (P x P) distances
    for i in range(0, B, step):
        s = slice(i, i + step)
        floor[s] = 1e3 * energy_floor(pts[s], distinct[s], weights[s], num_samples - 1)
    energy = MMDLoss("energy", estimator="biased")
    for b in range(B):                                # the halves differ in size per example
        halves[b] = 1e3 * energy(pts[b][:, first[b]], pts[b][:, second[b]])
    # N - 1 draws posed with the mean shape (the model's random hypotheses) against all
    # stored samples, as the evaluation measures a model
    shapeless = mean_shape["joints"][:, 1:, :J]
    shapeless = (shapeless - emdb.root(shapeless)).transpose(1, 2)
    blind = torch.stack([1e3 * energy(shapeless[b], pts[b]) for b in range(B)])     # (B, J)
    for name, keep in (("energy_occluded", occluded), ("energy_visible", ~occluded)):
        result[name], result[f"{name}_se"] = _clustered_mean(floor, keep)
        result[f"{name}_halves"], result[f"{name}_halves_se"] = _clustered_mean(halves, keep)
        result[f"{name}_mean_shape"], result[f"{name}_mean_shape_se"] = _clustered_mean(blind, keep)
    result["posterior_distinct_mean"] = float(count.to(dt).mean())
    return result


def oracle_report(body, data_root: str | Path, split: str = "test", num_samples: int = 100,
                  max_examples: int | None = None, seed: int = 0) -> dict[str, float]:
    """:func:`oracle_metrics` of a dataset split (all examples at once; they are small).

    Raises:
        KeyError: the split has no stored posterior (not a synthetic dataset).
    """
    from torch.utils.data import default_collate

    from humr.data.dataset import HumrDataset

    dataset = HumrDataset(str(data_root), split)
    if "posterior" not in dataset.arrays:
        raise KeyError(f"{data_root} [{split}] has no 'posterior' key: the oracle needs the "
                       "synthetic benchmark")
    n = len(dataset) if max_examples is None else min(len(dataset), int(max_examples))
    keys = [k for k in dataset.arrays if k != "img"]               # the oracle needs no image
    rows = [{k: torch.as_tensor(dataset.arrays[k][i]) for k in keys} for i in range(n)]
    return oracle_metrics(default_collate(rows), body, num_samples, seed)


def dataset_oracle(body, data_root: str | Path, split: str = "test", num_samples: int = 100,
                   max_examples: int | None = None, seed: int = 0) -> dict[str, float] | None:
    """:func:`oracle_report` when ``data_root`` is a humr dataset folder whose examples carry
    a stored posterior (the synthetic benchmark), else None (other formats, real data)."""
    from humr.data.format import read_meta
    from humr.data.schema import DataFormatError

    try:
        keys = read_meta(data_root).get("keys", ())
    except DataFormatError:
        return None
    if "posterior" not in keys:
        return None
    return oracle_report(body, data_root, split, num_samples, max_examples, seed)


#: (model metric key, oracle key) rows of :func:`format_oracle` after :data:`ORACLE_ROWS`: the
#: best-of-N accuracy and energy distances of the same draws posed with the mean body shape
MEAN_SHAPE_ROWS = tuple((k, k + "_mean_shape") for k in (
    "3dpw/mpjpe_min", "3dpw/pa_mpjpe_min", "emdb/mpjpe_min", "emdb/pa_mpjpe_min",
    "energy_occluded", "energy_visible"))


def _oracle_note(oracle: Mapping[str, float], oracle_key: str) -> str:
    if oracle_key.endswith("_mean_shape"):
        spread = f" +- {oracle[oracle_key + '_se']:.3f} s.e." if oracle_key + "_se" in oracle else ""
        return "posterior draws, mean body shape" + spread
    if oracle_key.endswith("_mean"):
        return "a random posterior draw"
    if oracle_key.startswith("energy"):
        return f"floor, +- {oracle[oracle_key + '_se']:.3f} s.e."
    return "posterior draws"


def format_oracle(results: Mapping[str, float], oracle: Mapping[str, float],
                  title: str | None = None) -> str:
    """Table of the model's results beside the oracle: one row per metric (``model`` column
    from ``results``, ``oracle`` column from ``oracle``; the oracle's ``*_mean`` accuracy
    (mode-free: a random draw) stands beside the model's mode, its energy distances are the
    noise floor +- standard error, and the best-of-N rows are repeated with the mean body
    shape, :data:`MEAN_SHAPE_ROWS`)."""
    lines = [title] if title else []
    lines.append(f"  {'metric':<22s}{'model':>10s}{'oracle':>10s}  oracle meaning")
    for model_key, oracle_key in ORACLE_ROWS + MEAN_SHAPE_ROWS:
        if oracle_key not in oracle:
            continue
        value = results.get(model_key, math.nan)
        text = "n/a" if value is None or math.isnan(value) else f"{value:.3f}"
        ref = oracle[oracle_key]
        ref_text = "n/a" if math.isnan(ref) else f"{ref:.3f}"
        lines.append(f"  {model_key:<22s}{text:>10s}{ref_text:>10s}  {_oracle_note(oracle, oracle_key)}")
    return "\n".join(lines)

"""What the keypoints alone give (issue 16): three direct regressors trained on a synthetic
dataset's non-image inputs, as references for what a trained humr model leaves on the table.

All read the full model's non-image context: the detector pose ``cond_kp`` (B, 17, 3) in crop
coordinates [-1, 1] with its confidence (the ``pose2d`` conditioner's input) and CLIFF's box
features (the ``bbox`` conditioner's), 54 numbers per example. With ``--source true_visible``
the visible keypoints are the true projections ``coco_gt`` instead (the detector's noise
removed; hidden keypoints keep the detector's guess and confidence, so nothing hidden leaks
in); with ``true_all`` every keypoint is its true projection with confidence 1 (nothing hidden:
an upper bound on what 17 keypoints can tell).

Each regressor trains on 90 % of the training split and keeps the weights that score best on
the other 10 % (early stopping; they overfit otherwise). With ``--image`` the shape and
depth-order regressors also read the crop through humr's ``small_cnn`` (64 px, spatial readout, as
``easier_lit32k_cos_8000_kp3d_spatial`` reads it; batches of 64): whether the image tells the
shape and the limbs' depth order better than the keypoints.

* **shape**: an MLP from those inputs to the 10 betas (squared error). Reported on the test
  split: the betas' RMS error (the mean shape's is the RMS of the betas themselves), the
  ground-truth pose posed with the regressed shape (MPJPE-24 against the ground truth), and the
  oracle with the regressed shape: the best of N posterior draws and the occluded joints'
  energy distance of N - 1 draws, posed with it (:func:`humr.data.oracle.oracle_metrics` with
  ``assumed_betas``). This oracle knows the pose posterior exactly and the shape as well as
  the keypoints tell it, so it lies between the oracle (true shape) and the mean-shape oracle.
* **lift**: an MLP from the same inputs to the 24 root-relative SMPL joints (camera axes,
  metres; l1 error), the "simple baseline" of 2D-to-3D lifting (Martinez et al., ICCV 2017).
  Reported like ``error_decomposition.py`` reports a humr model's mode: MPJPE-24, and on the
  joints the stored posterior determines the error split into depth and image plane; on the
  undetermined rest, beside a posterior draw's; and the determined joints once more after the
  best scale about the root (the person's size, which the benchmark hides). A humr model whose
  determined joints are much further off than this regressor's has not learned the lift its
  input allows.
* **depth order**: an MLP from the same inputs (and with ``--image`` the crop, like the shape
  regressor) to the depth difference of the 8 limb bones (hip to knee to ankle, shoulder to
  elbow to wrist; child minus parent, metres; l1 error). Reported: the share of visible limb
  bones whose depth order (child in front of or behind its parent) it gets right
  (``order/depth_order``), as ``error_decomposition.py`` scores a model's
  (``depth_order/mode``), beside the lift's (``lift/depth_order/mode``) and the pose prior's
  (each bone's most common order over the training poses, no input: ``prior/depth_order``).
  The keypoints do not fix that order (a bone mirrored in depth about its parent projects to
  the same pixels); with ``--image`` on lit crops (``light_dir``) it says whether the image
  tells more of it than the keypoints and the joint limits do.

No regressor is part of humr: a plain MLP on 54 numbers is written here because no
library ships one for this input; the optimisation is torch's.

Usage::

    python benchmarks/keypoint_baselines.py --data DIR [--source detector|true_visible|true_all]
        [--steps 8000] [--held-out 0.1] [--image] [--max-test 128] [--out baselines.json]
"""
from __future__ import annotations

import argparse
import copy
import math
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from error_decomposition import (
    depth_order,
    determined_joints,
    limb_depths,
    posterior_joints,
    publish,
    root_relative,
    split_by_determined,
)
from torch import Tensor, nn

from humr.body import BodyModel
from humr.conditions.bbox import bbox_features
from humr.conditions.keypoints import pose2d_input
from humr.data.dataset import normalise_images
from humr.data.format import check_shard_values, read_meta, shard_path
from humr.data.oracle import oracle_metrics
from humr.data.schema import DataFormatError, validate_arrays
from humr.geometry import axis_angle_to_matrix
from humr.metrics.functional import hypothesis_errors
from humr.registry import BACKBONES

#: the regressors' inputs and targets
INPUT_KEYS = ("cond_kp", "coco_gt", "coco_visible", "center", "scale", "orig_shape", "focal")
TARGET_KEYS = ("betas", "pose")
#: the keypoints the regressors read (:func:`keypoint_inputs`)
SOURCES = ("detector", "true_visible", "true_all")
#: what the oracle and the determined-joint split also need on the test split
ORACLE_KEYS = ("posterior", "posterior_count", "mask", "mask_valid")


def read_split(root: str | Path, split: str, keys: Sequence[str],
               max_examples: int | None = None) -> dict[str, Tensor]:
    """Only ``keys`` of a split's shards (no pickles), as tensors (N, ...), the first
    ``max_examples`` examples, each shard's arrays checked like the dataset loader checks them
    (shapes, dtypes, finiteness). Raises :class:`DataFormatError` naming the file and key."""
    meta = read_meta(root)
    if split not in meta.get("splits", {}):
        raise DataFormatError(f"{Path(root) / 'meta.json'}: no split '{split}'")
    parts: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    total = 0
    for name in meta["splits"][split]["shards"]:
        path = shard_path(root, name)
        with np.load(path, allow_pickle=False) as shard:
            missing = [key for key in keys if key not in shard.files]
            if missing:
                raise DataFormatError(f"{path}: no key '{missing[0]}' (a synthetic dataset "
                                      "needed)")
            arrays = {key: shard[key] for key in keys}
        validate_arrays(arrays, str(path), keys)
        check_shard_values(arrays, path)
        for key in keys:
            parts[key].append(arrays[key])
        total += len(parts[keys[0]][-1])
        if max_examples is not None and total >= max_examples:
            break
    return {k: torch.as_tensor(np.concatenate(v)[:max_examples]) for k, v in parts.items()}


def keypoint_inputs(data: dict[str, Tensor], source: str = "detector") -> Tensor:
    """The full model's non-image context (N, 54): crop coordinates and confidence of the 17
    keypoints (``source`` in :data:`SOURCES`: ``detector``: ``cond_kp``; ``true_visible``:
    ``coco_gt`` on visible keypoints; ``true_all``: ``coco_gt`` everywhere, confidence 1) and
    CLIFF's box features."""
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    kp, truth = data["cond_kp"].double(), data["coco_gt"][..., :2].double()
    if source == "true_visible":
        kp = torch.cat([torch.where(data["coco_visible"].bool()[..., None], truth, kp[..., :2]),
                        kp[..., 2:]], dim=-1)
    elif source == "true_all":
        kp = torch.cat([truth, torch.ones_like(kp[..., 2:])], dim=-1)
    center, scale = data["center"].double(), data["scale"].double()
    box = bbox_features(center, scale, data["orig_shape"].double(), data["focal"][:, 0].double())
    return torch.cat([pose2d_input(kp, center, scale), box], -1).float()


@torch.no_grad()
def true_joints(body: BodyModel, data: dict[str, Tensor], betas: Tensor | None = None,
                chunk: int = 4096) -> Tensor:
    """Root-relative SMPL joints (N, 24, 3), metres, camera axes, of the ground-truth poses
    posed with ``betas`` (N, nb) (default: the true shapes ``data['betas']``)."""
    J = body.num_joints
    betas = data["betas"] if betas is None else betas
    rot = axis_angle_to_matrix(data["pose"].reshape(len(data["pose"]), -1, 3)[:, :J])
    return torch.cat([root_relative(body(rot[i:i + chunk], betas[i:i + chunk])["joints"])
                      for i in range(0, len(rot), chunk)])


def image_encoder() -> nn.Module:
    """humr's ``small_cnn`` as the CPU presets with the spatial readout use it (64 px input)."""
    return BACKBONES.build("small_cnn", input_size=64, readout="spatial")


class Regressor(nn.Module):
    """MLP on standardised inputs with standardised targets: x (N, D_in) [and crops img
    (N, R, R, 3) uint8 through ``encoder``] -> y (N, D_out).

    Two hidden ReLU layers of ``width`` with dropout over the inputs and, with an ``encoder``
    (e.g. :func:`image_encoder`), its features of the crop; the standardisation (buffers) is
    taken from the training data by :func:`fit`."""

    def __init__(self, d_in: int, d_out: int, width: int = 1024, dropout: float = 0.1,
                 encoder: nn.Module | None = None) -> None:
        super().__init__()
        self.encoder = encoder
        d_net = d_in + (encoder.out_dim if encoder is not None else 0)
        self.net = nn.Sequential(nn.Linear(d_net, width), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Linear(width, width), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Linear(width, d_out))
        for name, size in (("x_mean", d_in), ("x_std", d_in), ("y_mean", d_out), ("y_std", d_out)):
            self.register_buffer(name, torch.zeros(size) if "mean" in name else torch.ones(size))

    def standardise(self, y: Tensor) -> Tensor:
        """Targets (N, D_out) in the network's standardised units."""
        return (y - self.y_mean) / self.y_std

    def standardised(self, x: Tensor, img: Tensor | None = None, chunk: int = 512) -> Tensor:
        """Network output (N, D_out) in standardised target units, ``chunk`` examples at a
        time (the crops are normalised per chunk: :func:`humr.data.dataset.normalise_images`)."""
        parts = []
        for i in range(0, len(x), chunk):
            h = (x[i:i + chunk] - self.x_mean) / self.x_std
            if self.encoder is not None:
                h = torch.cat([h, self.encoder(normalise_images(img[i:i + chunk]))], dim=-1)
            parts.append(self.net(h))
        return torch.cat(parts)

    def forward(self, x: Tensor, img: Tensor | None = None) -> Tensor:
        return self.standardised(x, img) * self.y_std + self.y_mean


def fit(x: Tensor, y: Tensor, loss: str, steps: int, batch_size: int = 256, lr: float = 1e-3,
        seed: int = 0, held_out: float = 0.1, check_every: int = 250, img: Tensor | None = None,
        progress: bool = True) -> tuple[Regressor, dict[str, float]]:
    """Train a :class:`Regressor` from x (N, D_in) to y (N, D_out) with Adam and a cosine
    schedule; ``loss`` "mse" or "l1" on standardised targets. With crops ``img``
    (N, R, R, 3) uint8 it also reads them through :func:`image_encoder`.

    The last ``held_out`` share of the examples is kept out of training; the weights with the
    lowest loss on it (checked every ``check_every`` steps and at the end) are returned, with
    ``{"best_step", "held_out_loss"}`` (early stopping: the regressors overfit otherwise);
    with ``held_out`` 0, the last weights and ``{"best_step": steps}``."""
    from tqdm import tqdm

    n_fit = len(x) - max(1, int(held_out * len(x))) if held_out > 0 else len(x)
    x_fit, y_fit, x_val, y_val = x[:n_fit], y[:n_fit], x[n_fit:], y[n_fit:]
    img_fit, img_val = (None, None) if img is None else (img[:n_fit], img[n_fit:])
    torch.manual_seed(seed)
    model = Regressor(x.shape[1], y.shape[1], encoder=None if img is None else image_encoder())
    model.x_mean.copy_(x_fit.mean(0))
    model.x_std.copy_(x_fit.std(0).clamp_min(1e-6))
    model.y_mean.copy_(y_fit.mean(0))
    model.y_std.copy_(y_fit.std(0).clamp_min(1e-6))
    criterion = {"mse": nn.functional.mse_loss, "l1": nn.functional.l1_loss}[loss]
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1.0 + math.cos(math.pi * min(s, steps) / steps)))
    gen = torch.Generator().manual_seed(seed)
    best = {"best_step": 0.0, "held_out_loss": math.inf}
    state = copy.deepcopy(model.state_dict())
    for step in tqdm(range(1, steps + 1), desc=f"fit ({loss})", disable=not progress,
                     mininterval=2.0):
        model.train()
        idx = torch.randint(n_fit, (batch_size,), generator=gen)
        value = criterion(model.standardised(x_fit[idx], None if img is None else img_fit[idx]),
                          model.standardise(y_fit[idx]))
        opt.zero_grad(set_to_none=True)
        value.backward()
        opt.step()
        sched.step()
        if len(x_val) and (step % check_every == 0 or step == steps):
            model.eval()
            with torch.no_grad():
                score = float(criterion(model.standardised(x_val, img_val),
                                        model.standardise(y_val)))
            if score < best["held_out_loss"]:
                best = {"best_step": float(step), "held_out_loss": score}
                state = copy.deepcopy(model.state_dict())
    if not len(x_val):
        return model.eval(), {"best_step": float(steps)}
    model.load_state_dict(state)
    return model.eval(), best


@torch.no_grad()
def shape_report(body: BodyModel, test: dict[str, Tensor], betas: Tensor,
                 num_samples: int = 100, seed: int = 0) -> dict[str, float]:
    """Errors of a shape guess ``betas`` (N, nb) on the test split, and of the mean shape:
    betas RMS, the ground-truth pose posed with it (MPJPE-24, mm) and the oracle posed with
    it (best of ``num_samples`` draws, mm; occluded energy distance, mm)."""
    truth = true_joints(body, test)
    result: dict[str, float] = {}
    for name, guess in (("regressed", betas), ("mean shape", torch.zeros_like(betas))):
        posed = true_joints(body, test, guess)[:, None]
        oracle = oracle_metrics(test, body, num_samples, seed, assumed_betas=guess)
        result |= {
            f"{name}/betas_rms": float((guess - test["betas"]).pow(2).mean(-1).sqrt().mean()),
            f"{name}/gt_pose_mpjpe": float(hypothesis_errors(posed, truth, "emdb")["mpjpe"].mean()),
            f"{name}/oracle_best": oracle["emdb/mpjpe_min_mean_shape"],
            f"{name}/oracle_energy_occluded": oracle["energy_occluded_mean_shape"],
            f"{name}/oracle_energy_occluded_se": oracle["energy_occluded_mean_shape_se"]}
    # the true-shape rows do not depend on the assumed shape: the same in both calls
    return result | {"true shape/oracle_best": oracle["emdb/mpjpe_min"],
                     "true shape/oracle_energy_occluded": oracle["energy_occluded"],
                     "true shape/oracle_energy_occluded_se": oracle["energy_occluded_se"]}


@torch.no_grad()
def lift_report(body: BodyModel, test: dict[str, Tensor], joints: Tensor) -> dict[str, float]:
    """Errors (mm) of predicted root-relative joints (N, 24, 3) on the test split: MPJPE-24 and
    ``error_decomposition``'s determined / undetermined split."""
    truth = true_joints(body, test)
    pred = joints[:, None].to(truth.dtype)
    sums = split_by_determined(body, test, pred, truth)
    result = {"lift/mpjpe": float(hypothesis_errors(pred, truth, "emdb")["mpjpe"].mean())}
    for group in ("determined", "undetermined", "depth_order"):
        count = max(sums.pop(f"{group}/count"), 1)
        result |= {f"lift/{k}": v / count for k, v in sums.items() if k.startswith(group)}
    return result


def prior_depths(train_joints: Tensor) -> Tensor:
    """(bones,) +-1: each limb bone's most common depth order over training joints
    (N, 24, 3), +1 = the child behind its parent: what the pose prior tells with no keypoint."""
    return torch.where((limb_depths(train_joints) > 0).double().mean(0) > 0.5, 1.0, -1.0)


@torch.no_grad()
def depth_order_shares(body: BodyModel, test: dict[str, Tensor],
                       predictions: dict[str, Tensor]) -> dict[str, float]:
    """For each named prediction of depth differences (N, bones), the share of the test
    split's scored limb bones (``error_decomposition``'s ``depth_order``: both ends determined,
    5 cm or more apart in depth) whose depth order it gets right. The truth and the determined
    joints are computed once for all predictions."""
    truth = true_joints(body, test)
    determined = torch.stack([determined_joints(posterior_joints(body, test, b, truth))
                              for b in range(len(truth))])                          # (N, 24)
    shares = {}
    for name, pred_dz in predictions.items():
        right, scored = depth_order(pred_dz, limb_depths(truth), determined)
        shares[name] = int(right[scored].sum()) / max(int(scored.sum()), 1)
    return shares


def markdown(result: dict[str, float], num_samples: int) -> str:
    """Two tables: the shape guesses, and the lift."""
    r = result
    shape_head = (f"| shape | betas RMS | ground-truth pose, MPJPE-24 | oracle best-of-{num_samples} "
                  "| oracle E-dist occluded |")
    lines = [shape_head, "|---|---|---|---|---|"]
    for name in ("true shape", "regressed", "mean shape"):
        known = name == "true shape"
        rms = "0" if known else f"{r[f'{name}/betas_rms']:.2f}"
        posed = "0 mm" if known else f"{r[f'{name}/gt_pose_mpjpe']:.1f} mm"
        lines.append(f"| {name} | {rms} | {posed} | {r[f'{name}/oracle_best']:.1f} mm | "
                     f"{r[f'{name}/oracle_energy_occluded']:.1f} +- "
                     f"{r[f'{name}/oracle_energy_occluded_se']:.1f} mm |")
    det = {k: r[f"lift/determined/{k}"] for k in ("mode", "depth", "image_plane", "mode_scaled",
                                                   "image_plane_scaled")}
    lift_head = ("| lift | MPJPE-24 | determined joints (depth, image plane) | the same, best scale "
                 "(image plane) | undetermined joints / a posterior draw | visible limbs' depth "
                 "order right |")
    lift_row = (f"| regressed | {r['lift/mpjpe']:.1f} mm | {det['mode']:.1f} mm "
                f"({det['depth']:.1f}, {det['image_plane']:.1f} mm) | {det['mode_scaled']:.1f} mm "
                f"({det['image_plane_scaled']:.1f} mm) | {r['lift/undetermined/mode']:.1f} / "
                f"{r['lift/undetermined/draw']:.1f} mm | {100 * r['lift/depth_order/mode']:.1f} % "
                f"(depth regressor: {100 * r['order/depth_order']:.1f} %; the pose prior: "
                f"{100 * r['prior/depth_order']:.1f} %) |")
    stops = (f"(weights kept: the shape regressor's of step {r['shape/best_step']:.0f}, the "
             f"lift's of step {r['lift/best_step']:.0f}, the depth regressor's of step "
             f"{r['order/best_step']:.0f}, of {r['steps']:.0f} steps)")
    return "\n".join([*lines, "", lift_head, "|---|---|---|---|---|---|", lift_row, "", stops])


def run(data: str | Path, source: str = "detector", steps: int = 8000, max_train: int | None = None,
        max_test: int | None = 128, num_samples: int = 100, seed: int = 0, held_out: float = 0.1,
        image: bool = False, image_batch: int = 64, progress: bool = True) -> dict[str, float]:
    """Fit the three regressors on ``data``'s training split and report them on its test split;
    with ``image`` the shape and depth-order regressors also read the crops
    (:func:`image_encoder`, batches of ``image_batch``)."""
    body = BodyModel(read_meta(data).get("generator", {}).get("body_model", "procedural"))
    extra = ("img",) if image else ()
    train = read_split(data, "train", INPUT_KEYS + TARGET_KEYS + extra, max_train)
    test = read_split(data, "test", INPUT_KEYS + TARGET_KEYS + ORACLE_KEYS + extra, max_test)
    x_train, x_test = keypoint_inputs(train, source), keypoint_inputs(test, source)
    shape, shape_fit = fit(x_train, train["betas"], "mse", steps,
                           image_batch if image else 256, seed=seed, held_out=held_out,
                           img=train.get("img"), progress=progress)
    train_joints = true_joints(body, train)
    lift, lift_fit = fit(x_train, train_joints.flatten(1), "l1", steps, seed=seed,
                         held_out=held_out, progress=progress)
    order, order_fit = fit(x_train, limb_depths(train_joints), "l1", steps,
                           image_batch if image else 256, seed=seed, held_out=held_out,
                           img=train.get("img"), progress=progress)
    with torch.no_grad():
        betas, order_dz = shape(x_test, test.get("img")), order(x_test, test.get("img"))
    result = shape_report(body, test, betas, num_samples, seed)
    result |= lift_report(body, test, lift(x_test).reshape(len(x_test), -1, 3))
    result |= depth_order_shares(body, test, {
        "order/depth_order": order_dz,
        "prior/depth_order": prior_depths(train_joints).expand(len(x_test), -1)})
    return (result | {f"shape/{k}": v for k, v in shape_fit.items()}
            | {f"lift/{k}": v for k, v in lift_fit.items()}
            | {f"order/{k}": v for k, v in order_fit.items()}
            | {"num_train": float(len(x_train)), "num_test": float(len(x_test)),
               "steps": float(steps)})


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="synthetic dataset folder")
    parser.add_argument("--source", choices=SOURCES, default="detector",
                        help="keypoints: the detector pose, the true projections where visible, "
                             "or all true projections")
    parser.add_argument("--steps", type=int, default=8000, help="optimiser steps per regressor")
    parser.add_argument("--held-out", type=float, default=0.1,
                        help="share of the training split kept for early stopping (0: none)")
    parser.add_argument("--image", action="store_true",
                        help="the shape and depth-order regressors also read the crop (small_cnn, "
                             "spatial readout)")
    parser.add_argument("--max-train", type=int, default=None)
    parser.add_argument("--max-test", type=int, default=128)
    parser.add_argument("--num-samples", type=int, default=100, help="oracle draws per example")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="JSON file for the numbers")
    args = parser.parse_args(argv)
    result = run(args.data, args.source, args.steps, args.max_train, args.max_test,
                 args.num_samples, args.seed, args.held_out, args.image)
    publish(markdown(result, args.num_samples), result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

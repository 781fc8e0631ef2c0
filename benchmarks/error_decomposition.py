"""Where a trained model's error comes from (issue 16): the MPJPE-24 of its mode and best of N
hypotheses on a synthetic split, recomputed with parts of the prediction replaced by the ground
truth, on the test split and on training examples.

For every example the model draws N hypotheses (the mode first); the errors (``emdb``
protocol: 24 SMPL joints, hips-midpoint root, mm) are computed

* ``model``: as predicted;
* ``gt shape``: the hypotheses' rotations with the ground-truth betas;
* ``gt root``: the ground-truth global orientation (joint 0) with the hypotheses' body
  rotations and betas;
* ``gt shape + root``: both replaced: what remains is the body pose alone.

Also printed: the betas' RMS error and the global orientation's geodesic error of the mode
(degrees), and, for ``gt shape + root`` (and for ``model``, keys ``model/determined/...``),
the error split by joint: **determined** joints, whose position the stored true posterior pins
down (their spread over its samples is below 1 mm: visible joints and the unoccluded chains),
and the **undetermined** rest, where the mode's error is compared with a posterior draw's
(``undetermined/draw``; the mode cannot beat the posterior's own breadth there).
``depth_order/mode`` and ``depth_order/hypotheses`` are the share of visible limb bones (hip to
knee to ankle, shoulder to elbow to wrist, both ends determined, the child at least
``DEPTH_ORDER_MIN_M`` nearer or farther than the parent) whose depth order (child in front of
or behind its parent) the mode, and the hypotheses on average, get right. The keypoints do not
fix it (the bone mirrored in depth about its parent projects to the same pixels); the joint
limits rule many mirror images out, and with ``light_dir`` the image's shading can tell the
rest (``docs/synthetic.md``). The stored posterior never flips such a bone: the oracle
scores 1.
``determined/depth`` and ``determined/image_plane`` split the determined joints' mode error
into the camera's depth axis and the image plane; ``determined/mode_scaled`` and
``determined/image_plane_scaled`` are the same after the least-squares scale of the mode's
determined joints about the root (the person's size, which the benchmark hides:
``docs/synthetic.md``); ``detector/image_plane`` is the model's own 2D input's error in the
same units: the detector pose (``batch['cond_kp']``, argmax pixel centres) against the true
projection, on visible COCO joints, in mm at each joint's depth. A mode whose image-plane error
is well above it has not learned what its input already gives (``keypoint_baselines.py``
measures what a direct regressor learns from the same input). Test and training examples
scoring alike means the model underfits (more steps would help); training examples scoring
much better means it overfits (more data would).

Usage::

    python benchmarks/error_decomposition.py --ckpt RUN/checkpoints/last.ckpt --data DIR \\
        --splits test train --max-examples 128 --out decomposition.json

``--temperature T`` draws the hypotheses at sampling temperature T (the mode unchanged): with
T < 1 they sit nearer the flow's centre, which tells whether the depth order that the mode
reads from the image is in the hypotheses' centre and only lost in their breadth.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import roma
import torch

from humr.body.keypoints import SMPL_JOINT_NAMES
from humr.data.oracle import camera_translation
from humr.engine.checkpoint import load_module
from humr.engine.datamodule import HumrDataModule
from humr.engine.module import example_latents
from humr.geometry import axis_angle_to_matrix
from humr.metrics.functional import hypothesis_errors
from humr.metrics.protocols import get_protocol

#: the variants: (name, ground-truth shape?, ground-truth root?)
VARIANTS = (("model", False, False), ("gt shape", True, False), ("gt root", False, True),
            ("gt shape + root", True, True))

#: the variants whose joints are split by :func:`split_by_determined`, and their keys' prefix
SPLIT_VARIANTS = {"gt shape + root": "", "model": "model/"}

#: posterior spread (metres, mean distance to the posterior mean) below which a joint counts
#: as determined
DETERMINED_SPREAD_M = 1e-3

#: the limb bones (parent, child) of SMPL-24 whose depth order is scored
LIMB_BONES = torch.tensor([[SMPL_JOINT_NAMES.index(p), SMPL_JOINT_NAMES.index(c)] for p, c in (
    ("left_hip", "left_knee"), ("left_knee", "left_ankle"), ("right_hip", "right_knee"),
    ("right_knee", "right_ankle"), ("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist"),
    ("right_shoulder", "right_elbow"), ("right_elbow", "right_wrist"))])

#: true depth difference (metres) between a bone's ends below which its order is not scored
#: (its mirrored depth would move the child by less than twice this)
DEPTH_ORDER_MIN_M = 0.05


def root_relative(joints: torch.Tensor) -> torch.Tensor:
    """SMPL-24 joints (..., 24, 3) relative to the ``emdb`` root (the hips' midpoint)."""
    return joints - get_protocol("emdb").root(joints)


def posterior_joints(geometry, batch, b: int, like: torch.Tensor) -> torch.Tensor:
    """Root-relative joints (count, J, 3) of example ``b``'s distinct stored posterior samples,
    with its ground-truth shape; ``geometry(rotmat, betas)`` returns a dict with ``joints``
    (a :class:`humr.body.BodyModel` or a model's ``body_geometry``), J and the dtype are
    ``like``'s (..., J, 3)."""
    J = like.shape[-2]
    count = max(1, int(batch["posterior_count"][b]))
    pose = batch["posterior"][b, :count].reshape(count, -1, 3)[:, :J]
    betas = batch["betas"][b:b + 1].to(like.dtype).expand(count, -1)
    return root_relative(geometry(axis_angle_to_matrix(pose).to(like.dtype), betas)["joints"])


def determined_joints(post: torch.Tensor) -> torch.Tensor:
    """(J,) bool: the joints whose spread over an example's posterior samples ``post``
    (count, J, 3), metres, is below :data:`DETERMINED_SPREAD_M`."""
    return (post - post.mean(0)).norm(dim=-1).mean(0) < DETERMINED_SPREAD_M


def limb_depths(joints: torch.Tensor) -> torch.Tensor:
    """(..., bones): each :data:`LIMB_BONES` child's depth minus its parent's (metres; the
    camera's z axis points away from it) for SMPL-24 joints (..., 24, 3)."""
    return joints[..., LIMB_BONES[:, 1], 2] - joints[..., LIMB_BONES[:, 0], 2]


def depth_order(pred_dz: torch.Tensor, true_dz: torch.Tensor, determined: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Which limb bones' depth order is right, bool like ``pred_dz`` (..., bones), for
    predicted depth differences against the truth's ``true_dz`` (B..., bones); and which bones
    are scored, (B..., bones) bool: both ends ``determined`` (B..., 24) and the truth's ends at
    least :data:`DEPTH_ORDER_MIN_M` apart in depth (B... = one example, or N examples)."""
    parent, child = LIMB_BONES.T
    scored = (determined[..., parent] & determined[..., child]
              & (true_dz.abs() >= DEPTH_ORDER_MIN_M))
    return pred_dz.sign() == true_dz.sign(), scored


def split_by_determined(geometry, batch, pred: torch.Tensor, truth: torch.Tensor,
                        prefix: str = "") -> dict[str, float]:
    """Sums (mm) and counts of the per-joint errors of ``pred`` (B, S, 24, 3), slot 0 the mode,
    against ``truth`` (B, 24, 3), split by the joints the stored posterior determines
    (posed by ``geometry``, :func:`posterior_joints`), and the number of scored limb bones
    whose depth order the mode / the hypotheses (a mean over S) get right (``depth_order/*``);
    every key starts with ``prefix``."""
    sums = dict.fromkeys(("determined/mode", "determined/best", "determined/depth",
                          "determined/image_plane", "determined/mode_scaled",
                          "determined/image_plane_scaled", "determined/count",
                          "undetermined/mode", "undetermined/draw", "undetermined/count",
                          "depth_order/mode", "depth_order/hypotheses", "depth_order/count"), 0.0)
    pred, truth = root_relative(pred), root_relative(truth)
    for b in range(pred.shape[0]):
        post = posterior_joints(geometry, batch, b, truth)
        det = determined_joints(post)
        err = pred[b] - truth[b]                                                     # (S, 24, 3)
        dist = err.norm(dim=-1) * 1000.0
        draw = (post[min(1, len(post) - 1)] - truth[b]).norm(dim=-1) * 1000.0        # not the gt
        n_det = int(det.sum())
        sums["determined/mode"] += float(dist[0, det].sum())
        sums["determined/best"] += float(dist[:, det].mean(1).min()) * n_det if n_det else 0.0
        sums["determined/depth"] += float(err[0, det, 2].abs().sum()) * 1000.0
        sums["determined/image_plane"] += float(err[0, det, :2].norm(dim=-1).sum()) * 1000.0
        # the mode's determined joints after the least-squares scale about the root: what is
        # left once the person's size (which the image does not show) is taken out
        mode, true = pred[b, 0, det], truth[b, det]
        scaled = (mode * true).sum() / mode.pow(2).sum().clamp_min(1e-12) * mode - true
        sums["determined/mode_scaled"] += float(scaled.norm(dim=-1).sum()) * 1000.0
        sums["determined/image_plane_scaled"] += float(scaled[:, :2].norm(dim=-1).sum()) * 1000.0
        sums["determined/count"] += n_det
        sums["undetermined/mode"] += float(dist[0, ~det].sum())
        sums["undetermined/draw"] += float(draw[~det].sum())
        sums["undetermined/count"] += int((~det).sum())
        right, scored = depth_order(limb_depths(pred[b]), limb_depths(truth[b]), det)
        sums["depth_order/mode"] += float(right[0, scored].sum())
        sums["depth_order/hypotheses"] += float(right[:, scored].double().mean(0).sum())
        sums["depth_order/count"] += int(scored.sum())
    return {prefix + key: value for key, value in sums.items()}


def detector_image_plane(batch, truth: dict[str, torch.Tensor]) -> dict[str, float]:
    """Sum (mm) and count of the detector pose's in-plane error on visible COCO joints.

    The camera translation is solved from the ground-truth joints ``truth['joints']``
    (B, 24, 3) and their projections ``batch['kp2d_gt']`` (full px; focal ``batch['focal']``,
    principal point at the frame centre); a joint's pixel error becomes metres at its depth:
    ``|cond_kp - coco_gt| px * z / f``.
    """
    dtype = truth["joints"].dtype
    focal = batch["focal"].to(dtype)
    principal = batch["orig_shape"].to(dtype).flip(-1) / 2.0
    transl = camera_translation(truth["joints"], batch["kp2d_gt"][:, :24, :2].to(dtype), focal,
                                principal)
    depth = truth["keypoints3d"][..., 2] + transl[:, None, 2]                      # (B, 17)
    pixels = (batch["cond_kp"][..., :2] - batch["coco_gt"][..., :2]).to(dtype).norm(dim=-1)
    mm = 1000.0 * pixels * depth / focal.mean(-1, keepdim=True)
    visible = batch["coco_visible"].bool()
    return {"detector/image_plane": float(mm[visible].sum()), "detector/count": int(visible.sum())}


@torch.no_grad()
def decompose(model, loader, num_samples: int, seed: int = 0,
              temperature: float = 1.0) -> dict[str, float]:
    """Mean errors (mm, degrees) over ``loader``'s examples; keys ``<variant>/mode``,
    ``<variant>/best`` (best of ``num_samples``), ``betas_rms``, ``root_deg``.

    The latents are evaluation's (:func:`humr.engine.module.example_latents`, seeded per
    example by ``seed`` and ``batch["index"]``), so the hypotheses are those of ``humr eval``
    with the same seed and temperature, whatever the batch size. ``temperature`` T scales them
    (rows 1.., drawn from N(0, T^2 I); the mode, z = 0, is unchanged): T < 1 draws the
    hypotheses nearer the flow's centre."""
    sums: dict[str, float] = {}
    count = 0
    J = model.num_joints
    for batch in loader:
        B = batch["pose"].shape[0]
        z = example_latents(batch["index"], num_samples, model.pose_dim, seed, model.dtype,
                            temperature=temperature)
        out = model(batch, num_samples=num_samples, z=z)
        gt_rot = axis_angle_to_matrix(batch["pose"].reshape(B, -1, 3)[:, :J]).to(model.dtype)
        gt_betas = batch["betas"][:, None].expand_as(out["betas"]).to(model.dtype)
        gt_body = model.body_geometry(gt_rot, batch["betas"].to(model.dtype))
        truth = gt_body["joints"]
        for key, value in detector_image_plane(batch, gt_body).items():
            sums[key] = sums.get(key, 0.0) + value
        for name, use_shape, use_root in VARIANTS:
            rot = out["rotmat"].clone()
            if use_root:
                rot[:, :, 0] = gt_rot[:, None, 0]
            joints = model.body_geometry(rot, gt_betas if use_shape else out["betas"])["joints"]
            err = hypothesis_errors(joints, truth, "emdb")["mpjpe"]             # (B, S)
            sums[f"{name}/mode"] = sums.get(f"{name}/mode", 0.0) + float(err[:, 0].sum())
            sums[f"{name}/best"] = sums.get(f"{name}/best", 0.0) + float(err.min(1).values.sum())
            if name in SPLIT_VARIANTS:
                for key, value in split_by_determined(model.body_geometry, batch, joints, truth,
                                                       SPLIT_VARIANTS[name]).items():
                    sums[key] = sums.get(key, 0.0) + value
        betas_err = (out["betas"][:, 0] - gt_betas[:, 0]).pow(2).mean(-1).sqrt()
        root = roma.rotmat_geodesic_distance(out["rotmat"][:, 0, 0], gt_rot[:, 0])
        sums["betas_rms"] = sums.get("betas_rms", 0.0) + float(betas_err.sum())
        sums["root_deg"] = sums.get("root_deg", 0.0) + float(torch.rad2deg(root).sum())
        count += B
    # a sum with a count beside it ("<group>/count") is a per-joint mean, the rest per example
    per_joint = {key: sums.pop(key) / max(sums[f"{key.rsplit('/', 1)[0]}/count"], 1)
                 for key in list(sums)
                 if not key.endswith("/count") and f"{key.rsplit('/', 1)[0]}/count" in sums}
    return ({key: value / count for key, value in sums.items()} | per_joint
            | {"num_examples": count})


def markdown(results: dict[str, dict[str, float]], num_samples: int) -> str:
    """One row per split: mode / best-of-N MPJPE-24 of each variant, betas and root error."""
    head = ["split", "examples"] + [f"{v} (mode / best-of-{num_samples})" for v, _, _ in VARIANTS]
    head += ["betas RMS", "root error", "determined joints: mode / best (depth, image plane)",
             "the same, best scale: mode (image plane)",
             "as predicted, determined joints: mode (image plane); best scale (image plane)",
             "detector pose, image plane", "undetermined joints: mode / a posterior draw",
             "visible limbs' depth order right: mode / hypotheses (as predicted)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for split, r in results.items():
        cells = [split, str(int(r["num_examples"]))]
        cells += [f"{r[f'{v}/mode']:.1f} / {r[f'{v}/best']:.1f} mm" for v, _, _ in VARIANTS]
        cells += [f"{r['betas_rms']:.2f}", f"{r['root_deg']:.1f} deg",
                  (f"{r['determined/mode']:.1f} / {r['determined/best']:.1f} mm "
                   f"({r['determined/depth']:.1f}, {r['determined/image_plane']:.1f} mm)"),
                  (f"{r['determined/mode_scaled']:.1f} mm "
                   f"({r['determined/image_plane_scaled']:.1f} mm)"),
                  (f"{r['model/determined/mode']:.1f} mm "
                   f"({r['model/determined/image_plane']:.1f} mm); "
                   f"{r['model/determined/mode_scaled']:.1f} mm "
                   f"({r['model/determined/image_plane_scaled']:.1f} mm)"),
                  f"{r['detector/image_plane']:.1f} mm",
                  f"{r['undetermined/mode']:.1f} / {r['undetermined/draw']:.1f} mm",
                  (f"{100 * r['depth_order/mode']:.1f} / {100 * r['depth_order/hypotheses']:.1f} % "
                   f"({100 * r['model/depth_order/mode']:.1f} / "
                   f"{100 * r['model/depth_order/hypotheses']:.1f} %)")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt", required=True, help="checkpoint of humr train")
    parser.add_argument("--data", required=True, help="synthetic dataset folder")
    parser.add_argument("--splits", nargs="+", default=["test", "train"])
    parser.add_argument("--max-examples", type=int, default=128, help="examples per split")
    parser.add_argument("--num-samples", type=int, default=100, help="hypotheses per image")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--temperature", type=float, default=1.0,
                        help="sampling temperature of the hypotheses (1 = the paper's)")
    parser.add_argument("--out", default=None, help="JSON file for the numbers")
    args = parser.parse_args(argv)
    model = load_module(args.ckpt).model.eval()
    data = HumrDataModule(args.data, batch_size=args.batch_size, eval_batch_size=args.batch_size,
                          max_eval_examples=args.max_examples)
    results = {split: decompose(model, data.eval_dataloader(split), args.num_samples, args.seed,
                                args.temperature)
               for split in args.splits}
    publish(markdown(results, args.num_samples), results, args.out)
    return 0


def publish(table: str, numbers: dict, out: str | None) -> None:
    """Print ``table`` and, when ``out`` is given, write ``numbers`` there as JSON (atomically)."""
    from humr.io import atomic_write_text

    print(table)
    if out:
        atomic_write_text(Path(out), json.dumps(numbers, indent=1))


if __name__ == "__main__":
    sys.exit(main())

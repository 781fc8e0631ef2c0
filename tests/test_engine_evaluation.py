"""EvaluationMetrics wiring: batch + hypotheses -> metrics, against brute-force loops."""
import math

import numpy as np
import pytest
import torch

from humr.engine.evaluation import EvaluationMetrics, evaluation_outputs, format_table
from humr.geometry import axis_angle_to_matrix, full_to_crop

B, S, J, R = 2, 4, 24, 32


@pytest.fixture(scope="module")
def body():
    from humr.body.model import BodyModel

    return BodyModel("procedural")


def _case(body, dtype=torch.float64):
    """A batch and hypotheses: hypothesis 1 is the ground truth, the mode is off at one elbow."""
    g = torch.Generator().manual_seed(0)
    pose = 0.3 * torch.randn(B, J, 3, generator=g, dtype=dtype)
    pose[:, 0] = torch.tensor([math.pi, 0.0, 0.0], dtype=dtype)
    betas = torch.randn(B, 10, generator=g, dtype=dtype)
    rot = axis_angle_to_matrix(pose)
    hyp = rot[:, None].repeat(1, S, 1, 1, 1)
    hyp[:, 0, 18] = axis_angle_to_matrix(torch.tensor([0.0, 0.0, 1.2], dtype=dtype))
    hyp[:, 2:] = axis_angle_to_matrix(pose[:, None] + 0.2 * torch.randn(B, S - 2, J, 3, generator=g,
                                                                          dtype=dtype))
    center = torch.tensor([[120.0, 90.0], [60.0, 70.0]], dtype=dtype)
    scale = torch.tensor([[0.5], [0.4]], dtype=dtype)
    coco_gt = torch.cat([center[:, None] + 30 * torch.randn(B, 17, 2, generator=g, dtype=dtype),
                         torch.ones(B, 17, 1, dtype=dtype)], dim=-1)
    coco_gt[0, 4, 2] = 0.0                                       # invalid ground truth
    cond_kp = coco_gt.clone()
    cond_kp[..., 2] = torch.rand(B, 17, generator=g, dtype=dtype)
    mask = torch.zeros(B, R, R, dtype=torch.uint8)
    mask[:, 8:24, 10:20] = 1
    posterior = pose.reshape(B, 1, -1).repeat(1, 5, 1)
    posterior[:, 1:, 18 * 3 + 2] += torch.linspace(0.2, 0.8, 4, dtype=dtype)   # elbow varies
    posterior[1, 4] = float("nan")                               # padding row
    batch = {"pose": pose.reshape(B, -1), "betas": betas, "center": center, "scale": scale,
             "coco_gt": coco_gt, "cond_kp": cond_kp, "mask": mask,
             "mask_valid": torch.tensor([True, True]), "posterior": posterior}
    with torch.no_grad():
        pred = body(hyp, betas[:, None].expand(B, S, 10), return_vertices=True)
        gt = body(rot, betas, return_vertices=True)
        post = body(axis_angle_to_matrix(torch.nan_to_num(posterior).reshape(B, 5, J, 3)),
                    betas[:, None].expand(B, 5, 10))
    out = {"rotmat": hyp, "betas": betas[:, None].repeat(1, S, 1), "joints3d": pred["joints"],
           "h36m17": pred["h36m17"], "vertices": pred["vertices"],
           "keypoints3d": pred["coco17"] + torch.tensor([0.0, 0.0, 3.0], dtype=dtype),
           "keypoints2d": (torch.rand(B, S, 17, 2, generator=g, dtype=dtype) * 2.2 - 1.1)}
    truth = {"joints": gt["joints"], "h36m17": gt["h36m17"], "vertices": gt["vertices"],
             "posterior_joints": post["joints"], "posterior_valid": torch.isfinite(posterior).all(-1)}
    return batch, out, truth, hyp


def _pelvis_centred(x, hips):
    return x - x[..., list(hips), :].mean(-2, keepdim=True)


def test_accuracy_consistency_and_posterior_against_loops(body):
    batch, out, truth, hyp = _case(body)
    metrics = EvaluationMetrics()
    metrics.update(batch, out, truth)
    res = metrics.compute()
    expected_keys = {f"{p}/{m}" for p in ("emdb", "3dpw") for m in
                     ("mpjpe_mode", "pa_mpjpe_mode", "pve_mode", "mpjpe_min", "pa_mpjpe_min",
                      "pve_min")} | {"kp2d_mode", "kp2d_samples", "spread_visible",
                                     "spread_invisible", "perc_in", "min_dist",
                                     "energy_occluded", "energy_visible"}
    assert set(res) == expected_keys
    assert all(math.isfinite(v) for v in res.values())
    # best of S includes the exact ground truth (hypothesis 1)
    for p in ("emdb", "3dpw"):
        assert res[f"{p}/mpjpe_min"] < 1e-6 and res[f"{p}/pve_min"] < 1e-6
    # mode MPJPE / PVE by a loop over examples and joints
    gt_rot = axis_angle_to_matrix(batch["pose"].reshape(B, J, 3))
    errs, verrs = [], []
    for b in range(B):
        g = body(gt_rot[b:b + 1], batch["betas"][b:b + 1], return_vertices=True)
        m = body(hyp[b:b + 1, 0], batch["betas"][b:b + 1], return_vertices=True)
        gj, mj = _pelvis_centred(g["joints"][0], (1, 2)), _pelvis_centred(m["joints"][0], (1, 2))
        errs.append(sum((gj[k] - mj[k]).norm() for k in range(J)) / J)
        gv = g["vertices"][0] - g["joints"][0, [1, 2]].mean(0)
        mv = m["vertices"][0] - m["joints"][0, [1, 2]].mean(0)
        verrs.append((gv - mv).norm(dim=-1).mean())
    assert res["emdb/mpjpe_mode"] == pytest.approx(1000 * float(sum(errs)) / B, rel=1e-6)
    assert res["emdb/pve_mode"] == pytest.approx(1000 * float(sum(verrs)) / B, rel=1e-6)
    assert res["emdb/mpjpe_mode"] > 1.0
    # 2D consistency of the mode: visible (conf > 0.5 and valid GT) joints, 256 px crop
    box = 200 * batch["scale"][:, 0]
    gt_crop = full_to_crop(batch["coco_gt"][..., :2], batch["center"], box)
    total, n = 0.0, 0
    for b in range(B):
        for k in range(17):
            if batch["cond_kp"][b, k, 2] * batch["coco_gt"][b, k, 2] > 0.5:
                total += float((out["keypoints2d"][b, 0, k] - gt_crop[b, k]).norm()) * 128
                n += 1
    assert res["kp2d_mode"] == pytest.approx(total / n, rel=1e-9)
    # only the elbow (and the wrist / hand below it) move in the posterior
    assert res["energy_occluded"] > res["energy_visible"] >= 0.0
    # 3D spread as the release's joints_3d_diversity: body-frame keypoints around their mean
    # over all S hypotheses (the hypotheses differ in global rotation: no root is subtracted)
    kp = out["keypoints3d"].numpy()
    div = np.linalg.norm(kp - kp.mean(1, keepdims=True), axis=-1) * 1000       # (B, S, 17)
    vis = np.broadcast_to((batch["cond_kp"][..., 2].numpy() > 0.5)[:, None], div.shape)
    assert res["spread_visible"] == pytest.approx((div * vis).sum() / vis.sum(), rel=1e-9)
    assert res["spread_invisible"] == pytest.approx((div * ~vis).sum() / (~vis).sum(), rel=1e-9)


def test_float32_matches_float64_and_reset(body):
    batch, out, truth, _ = _case(body)
    m64 = EvaluationMetrics()
    m64.update(batch, out, truth)
    r64 = m64.compute()
    cast = lambda d: {k: v.float() if v.is_floating_point() else v for k, v in d.items()}
    m32 = EvaluationMetrics()
    m32.update(cast(batch), cast(out), cast(truth))
    r32 = m32.compute()
    for key, value in r64.items():
        assert r32[key] == pytest.approx(value, rel=1e-3, abs=1e-3), key
    m32.reset()
    assert m32.compute() == {}
    assert "emdb/mpjpe_min" in format_table(r32)


def test_rejects_a_single_hypothesis(body):
    batch, out, truth, _ = _case(body)
    out = {k: v[:, :1] for k, v in out.items()}
    with pytest.raises(ValueError, match="S >= 2"):
        EvaluationMetrics().update(batch, out, truth)


def test_evaluation_outputs_come_from_the_model_not_the_metrics(body):
    """evaluation_outputs asks the model for the body outputs: the hypotheses' joints and LSP
    joints equal the body model's on out['rotmat'], the truth the body's on the GT pose."""
    from humr.model import build_model

    batch, _, truth, _ = _case(body, dtype=torch.float32)
    batch = {**batch, "orig_shape": torch.tensor([[240.0, 320.0], [240.0, 320.0]])}
    model = build_model(body=body, conditions=["bbox"], losses=["nll"], overrides=[
        "model.flow.num_blocks=1", "model.flow.hidden_features=8", "model.head.hidden=8"]).eval()
    out, got = evaluation_outputs(model, batch, num_samples=3)
    ref = body(out["rotmat"], out["betas"], return_vertices=True)
    for key, ref_key in (("joints3d", "joints"), ("h36m17", "h36m17"), ("vertices", "vertices")):
        torch.testing.assert_close(out[key], ref[ref_key], atol=1e-5, rtol=0)
    for key in ("joints", "h36m17", "vertices", "posterior_joints"):
        torch.testing.assert_close(got[key], truth[key].float(), atol=1e-5, rtol=0, equal_nan=True)
    assert got["posterior_valid"].tolist() == truth["posterior_valid"].tolist()


def test_gendered_bodies_build_each_gender_once(tiny_smplx):
    """Genders 1 / 2 get the male / female files of the run's body folder (built once), 0 the
    model's own body; an unknown code is an error naming the key."""
    from humr.body.model import BodyModel
    from humr.engine.evaluation import GenderedBodies

    folder, _ = tiny_smplx
    root = folder.parents[2]
    neutral = BodyModel(root, model_type="smplx", dtype=torch.float64)
    bodies = GenderedBodies(neutral, str(root), "smplx", 10)
    male, female = bodies(1), bodies(2)
    assert bodies(0) is neutral and bodies(1) is male and male is not female
    assert male.model_file.name == "SMPLX_MALE.npz" and female.model_file.name == "SMPLX_FEMALE.pkl"
    with pytest.raises(ValueError, match="batch\\['gender'\\] holds 3"):
        bodies(3)


def test_procedural_body_poses_every_gender_with_a_warning(body):
    from humr.engine.evaluation import GenderedBodies

    bodies = GenderedBodies(body, "procedural", "smpl", 10)
    with pytest.warns(UserWarning, match="no gendered models"):
        assert bodies(1) is body
    assert bodies(2) is body

"""benchmarks/error_decomposition.py: the ground-truth substitutions against hand-made answers
(a stand-in model that predicts the ground-truth body pose with a turned root and zero betas)."""
import math
import sys
from pathlib import Path

import pytest
import torch
from _posterior_loops import determined_by_loop

from humr.body import BodyModel
from humr.engine.datamodule import HumrDataModule
from humr.engine.module import example_latents
from humr.geometry import axis_angle_to_matrix

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from error_decomposition import decompose, markdown, root_relative, split_by_determined

TURN = math.radians(30.0)


class TurnedTruth:
    """Predicts every hypothesis as the ground-truth pose with the root turned by 30 degrees
    about the camera's y axis, and betas 0."""

    def __init__(self, body):
        self.body, self.num_joints, self.pose_dim = body, body.num_joints, 6 * body.num_joints
        self.dtype = torch.float32

    def body_geometry(self, rotmat, betas):
        res = self.body(rotmat, betas)
        return {"joints": res["joints"], "keypoints3d": res["coco17"]}

    def __call__(self, batch, num_samples, z):
        B, J = batch["pose"].shape[0], self.num_joints
        rot = axis_angle_to_matrix(batch["pose"].reshape(B, -1, 3)[:, :J]).clone()
        turn = axis_angle_to_matrix(torch.tensor([0.0, TURN, 0.0]))
        rot[:, 0] = turn @ rot[:, 0]
        return {"rotmat": rot[:, None].expand(B, num_samples, J, 3, 3),
                "betas": torch.zeros(B, num_samples, batch["betas"].shape[-1])}


def _mpjpe(a, b):
    """Brute force: mm, each centred on its hips midpoint (joints 1, 2)."""
    a, b = a - a[:, [1, 2]].mean(1, keepdim=True), b - b[:, [1, 2]].mean(1, keepdim=True)
    return 1e3 * (a - b).norm(dim=-1).mean(-1)


def test_substitutions_have_the_known_answers(tiny_data):
    body = BodyModel("procedural")
    data = HumrDataModule(str(tiny_data), batch_size=4, eval_batch_size=4)
    r = decompose(TurnedTruth(body), data.eval_dataloader("test"), num_samples=3)
    batch = next(iter(data.eval_dataloader("test")))
    B = batch["pose"].shape[0]
    rot = axis_angle_to_matrix(batch["pose"].reshape(B, -1, 3)[:, :24])
    truth = body(rot, batch["betas"])["joints"]
    mean_shape = _mpjpe(body(rot, torch.zeros_like(batch["betas"]))["joints"], truth).mean()
    turned = rot.clone()
    turned[:, 0] = axis_angle_to_matrix(torch.tensor([0.0, TURN, 0.0])) @ rot[:, 0]
    turned_err = _mpjpe(body(turned, batch["betas"])["joints"], truth).mean()
    assert r["num_examples"] == B == 4
    assert r["gt shape + root/mode"] == pytest.approx(0.0, abs=1e-2)
    assert r["gt root/mode"] == pytest.approx(float(mean_shape), rel=1e-4)
    assert r["gt shape/mode"] == pytest.approx(float(turned_err), rel=1e-4)
    assert turned_err > 50 and mean_shape > 5                     # both substitutions matter
    assert r["model/best"] == pytest.approx(r["model/mode"], rel=1e-6)  # identical hypotheses
    assert r["root_deg"] == pytest.approx(30.0, abs=1e-2)
    assert r["betas_rms"] == pytest.approx(float(batch["betas"].pow(2).mean(-1).sqrt().mean()),
                                           rel=1e-5)
    assert "| test | 4 |" in markdown({"test": r}, 3)


class PosteriorDraw(TurnedTruth):
    """Predicts every hypothesis as the second stored posterior sample (a draw other than the
    ground truth where the example has one)."""

    def __call__(self, batch, num_samples, z):
        B, J = batch["pose"].shape[0], self.num_joints
        second = (batch["posterior_count"].long() > 1).long()
        pose = batch["posterior"][torch.arange(B), second].reshape(B, -1, 3)[:, :J]
        rot = axis_angle_to_matrix(pose)
        return {"rotmat": rot[:, None].expand(B, num_samples, J, 3, 3),
                "betas": batch["betas"][:, None].expand(B, num_samples, -1)}


def test_determined_joints_split_against_a_loop(tiny_data):
    """A posterior draw as the prediction: no error on the joints the posterior determines, the
    draw's own error on the rest; the determined joints counted by a plain loop."""
    body = BodyModel("procedural")
    data = HumrDataModule(str(tiny_data), batch_size=4, eval_batch_size=4)
    r = decompose(PosteriorDraw(body), data.eval_dataloader("test"), num_samples=2)
    assert r["determined/mode"] < 1.0 and r["determined/best"] < 1.0
    assert r["determined/depth"] <= r["determined/mode"] + 1e-9
    assert r["determined/image_plane"] <= r["determined/mode"] + 1e-9
    assert r["undetermined/mode"] == pytest.approx(r["undetermined/draw"], rel=1e-5)
    assert r["undetermined/draw"] > 10.0                          # occluded chains do move
    determined = 0
    for batch in data.eval_dataloader("test"):
        for b in range(batch["pose"].shape[0]):
            n = max(1, int(batch["posterior_count"][b]))
            rot = axis_angle_to_matrix(batch["posterior"][b, :n].reshape(n, -1, 3)[:, :24])
            joints = body(rot, batch["betas"][b:b + 1].expand(n, -1))["joints"]
            joints = joints - joints[:, [1, 2]].mean(1, keepdim=True)
            for j in range(24):
                spread = sum(float((joints[i, j] - joints[:, j].mean(0)).norm()) for i in range(n)) / n
                determined += spread < 1e-3
    assert r["determined/count"] * r["num_examples"] == pytest.approx(determined)
    assert 0 < determined < 24 * r["num_examples"]
    # the draw keeps the true shape and root: the prediction as it is splits the same way
    assert r["model/determined/mode"] == pytest.approx(r["determined/mode"], abs=1e-6)
    assert r["model/undetermined/mode"] == pytest.approx(r["undetermined/mode"], rel=1e-6)
    truth = decompose(TurnedTruth(body), data.eval_dataloader("test"), num_samples=2)
    assert truth["determined/mode"] == pytest.approx(0.0, abs=1e-2)
    assert truth["undetermined/mode"] == pytest.approx(0.0, abs=1e-2)
    assert truth["model/determined/mode"] > 20.0                 # turned root, mean shape
    assert truth["model/determined/count"] == truth["determined/count"]


def test_detector_image_plane_against_a_reprojection_fit(tiny_data):
    """Every detected keypoint moved by (3, 4) px from the truth: 5 px at each visible joint's
    depth, the camera found by scipy's nonlinear reprojection fit (not the linear solve)."""
    from scipy.optimize import least_squares

    body = BodyModel("procedural")
    data = HumrDataModule(str(tiny_data), batch_size=4, eval_batch_size=4)
    batches = []
    expected, count = 0.0, 0
    for batch in data.eval_dataloader("test"):
        batch = dict(batch)
        batch["cond_kp"] = batch["cond_kp"].clone()
        batch["cond_kp"][..., :2] = batch["coco_gt"][..., :2] + torch.tensor([3.0, 4.0])
        batches.append(batch)
        B = batch["pose"].shape[0]
        res = body(axis_angle_to_matrix(batch["pose"].reshape(B, -1, 3)[:, :24]), batch["betas"])
        for b in range(B):
            joints, coco = res["joints"][b].double().numpy(), res["coco17"][b].double().numpy()
            uv = batch["kp2d_gt"][b, :24, :2].double().numpy()
            f = batch["focal"][b].double().numpy()
            c = batch["orig_shape"][b].double().numpy()[::-1] / 2

            def residual(t, joints=joints, uv=uv, f=f, c=c):
                p = joints + t
                return (f * p[:, :2] / p[:, 2:] + c - uv).ravel()

            t = least_squares(residual, x0=[0.0, 0.0, 5.0]).x
            for k in range(17):
                if batch["coco_visible"][b, k]:
                    expected += 1000 * 5.0 * (coco[k, 2] + t[2]) / f.mean()
                    count += 1
    r = decompose(TurnedTruth(body), batches, num_samples=2)
    assert r["detector/image_plane"] == pytest.approx(expected / count, rel=1e-3)
    plain = decompose(TurnedTruth(body), data.eval_dataloader("test"), num_samples=2)
    assert 0 < plain["detector/image_plane"] < r["detector/image_plane"]
    assert "mm |" in markdown({"test": plain}, 2)


def _first_test_batch(tiny_data):
    """(body, the first test batch of 4, its true root-relative joints (4, 24, 3))."""
    body = BodyModel("procedural")
    data = HumrDataModule(str(tiny_data), batch_size=4, eval_batch_size=4)
    batch = next(iter(data.eval_dataloader("test")))
    B = batch["pose"].shape[0]
    truth = root_relative(body(axis_angle_to_matrix(batch["pose"].reshape(B, -1, 3)[:, :24]),
                               batch["betas"])["joints"])
    return body, batch, truth


def test_scaled_split_of_a_scaled_truth(tiny_data):
    """The truth scaled by 1.1 about the root: after the best scale no error is left; before,
    a determined joint's image-plane error is 0.1 of its in-plane distance from the root."""
    body, batch, truth = _first_test_batch(tiny_data)
    B = len(truth)
    sums = split_by_determined(body, batch, 1.1 * truth[:, None], truth)
    assert sums["determined/mode_scaled"] == pytest.approx(0.0, abs=1e-3 * sums["determined/count"])
    assert sums["determined/image_plane_scaled"] <= sums["determined/mode_scaled"] + 1e-9
    expected = 0.0
    for b in range(B):
        for j, fixed in enumerate(determined_by_loop(body, batch, b)):
            if fixed:
                expected += 100.0 * float(truth[b, j, :2].norm())    # 0.1 x metres -> mm
    assert sums["determined/image_plane"] == pytest.approx(expected, rel=1e-4)
    assert sums["determined/mode"] > sums["determined/image_plane"]


def test_depth_order_of_the_truth_and_of_its_mirror_image(tiny_data):
    """Hypotheses = (the truth, the truth mirrored in depth about the root): the mode gets every
    scored bone's order right, the hypotheses half of them; the scored bones (both ends
    determined, at least 5 cm apart in depth) counted by a loop."""
    from error_decomposition import DEPTH_ORDER_MIN_M, LIMB_BONES

    body, batch, truth = _first_test_batch(tiny_data)
    B = len(truth)
    mirrored = truth * torch.tensor([1.0, 1.0, -1.0])
    sums = split_by_determined(body, batch, torch.stack([truth, mirrored], 1), truth)
    scored = 0
    for b in range(B):
        fixed = determined_by_loop(body, batch, b)
        for parent, child in LIMB_BONES.tolist():
            dz = float(truth[b, child, 2] - truth[b, parent, 2])
            scored += fixed[parent] and fixed[child] and abs(dz) >= DEPTH_ORDER_MIN_M
    assert sums["depth_order/count"] == scored > 0
    assert sums["depth_order/mode"] == scored
    assert sums["depth_order/hypotheses"] == pytest.approx(scored / 2)
    flipped = split_by_determined(body, batch, mirrored[:, None], truth, "model/")
    assert flipped["model/depth_order/mode"] == 0 and flipped["model/depth_order/count"] == scored


class LatentRecorder(TurnedTruth):
    """TurnedTruth that keeps every latent batch it is given."""

    def __init__(self, body):
        super().__init__(body)
        self.latents = []

    def __call__(self, batch, num_samples, z):
        self.latents.append(z.clone())
        return super().__call__(batch, num_samples, z)


def test_temperature_scales_the_hypotheses_latents_only(tiny_data):
    """The latents are evaluation's; T = 0.5: rows 1.. are half of the T = 1 draws of the same
    seed, row 0 (the mode) stays 0; a temperature that is not a finite positive number is refused."""
    body = BodyModel("procedural")
    data = HumrDataModule(str(tiny_data), batch_size=4, eval_batch_size=4)
    plain, cooled = LatentRecorder(body), LatentRecorder(body)
    decompose(plain, data.eval_dataloader("test"), num_samples=3, seed=5)
    decompose(cooled, data.eval_dataloader("test"), num_samples=3, seed=5, temperature=0.5)
    batches = list(data.eval_dataloader("test"))
    for z1, zt, batch in zip(plain.latents, cooled.latents, batches, strict=True):
        # the latents of humr eval: per example, whatever the batch
        torch.testing.assert_close(z1, example_latents(batch["index"], 3, body.num_joints * 6, 5),
                                   rtol=0, atol=0)
        assert (zt[:, 0] == 0).all() and (z1[:, 0] == 0).all()
        assert (z1[:, 1:].abs() > 0).all()
        torch.testing.assert_close(zt[:, 1:], 0.5 * z1[:, 1:], rtol=0, atol=0)
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="temperature"):
            decompose(plain, data.eval_dataloader("test"), num_samples=3, temperature=bad)

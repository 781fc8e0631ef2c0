"""Training losses on hand-made batch / output dicts with known answers, and degenerate inputs."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import humr
from humr.geometry import axis_angle_to_matrix, matrix_to_rot6d
from humr.losses import (
    DEFAULT_WEIGHTS,
    HeatmapMMDLoss,
    MaskLoss,
    draw_hypotheses,
    mmd_targets,
)

BW = (0.05, 0.2, 0.9)
K = 17


def identity_crop(batch_size):
    """center 0, box side 2 px: full-image pixels equal crop coordinates."""
    return {"center": torch.zeros(batch_size, 2), "scale": torch.full((batch_size, 1), 0.01)}


def base_batch(batch_size=2, num_samples=4, res=8, count=24):
    batch = identity_crop(batch_size)
    batch.update({
        "coco_gt": torch.zeros(batch_size, K, 3),
        "kp2d_gt": torch.zeros(batch_size, 24, 3),
        "hm_samples": torch.zeros(batch_size, K, count, 2),
        "hm_values": torch.zeros(batch_size, K, count),
        "hm_max_conf": torch.full((batch_size, K), 0.9),
        "hm_samples_mask_dist": torch.zeros(batch_size, K, count),
        "mask": torch.zeros(batch_size, res, res, dtype=torch.uint8),
        "mask_valid": torch.ones(batch_size, dtype=torch.bool),
        "betas": torch.zeros(batch_size, 10),
    })
    out = {
        "keypoints2d": torch.zeros(batch_size, num_samples, K, 2),
        "joints2d": torch.zeros(batch_size, num_samples, 24, 2),
        "betas": torch.zeros(batch_size, num_samples, 10),
        "pose_6d": torch.zeros(batch_size, num_samples, 24 * 6),
        "cam": torch.zeros(batch_size, num_samples, 3),
        "log_prob_gt": torch.zeros(batch_size),
        "joints3d": torch.zeros(batch_size, num_samples, 24, 3),
        "joints3d_gt": torch.zeros(batch_size, 24, 3),
    }
    return batch, out


def test_mmd_targets_rules():
    """Official rule: heatmap targets iff articulated, 0.15 < conf < 0.7, GT in the detector box
    (|u| <= 0.75) and in the crop (|u| <= 1); supervised iff GT in the crop and (articulated or
    conf >= 0.5)."""
    gen = torch.Generator().manual_seed(0)
    gt = torch.zeros(1, K, 2)
    gt_valid = torch.ones(1, K, dtype=torch.bool)
    samples = torch.stack([torch.arange(30.0), -torch.arange(30.0)], -1).expand(1, K, 30, 2).clone()
    conf = torch.full((1, K), 0.9)
    conf[0, 9] = 0.3                                   # articulated, uncertain, in box: heatmap
    conf[0, 10] = 0.15                                 # at the floor (exclusive): GT targets
    conf[0, 7] = 0.1                                   # articulated, confident-low: GT, supervised
    conf[0, 8], gt[0, 8, 0] = 0.3, 0.8                 # outside the 3:4 box: GT targets
    conf[0, 13] = 0.7                                  # at the ceiling (exclusive): GT targets
    conf[0, 14], gt[0, 14, 0] = 0.3, 0.75              # on the box edge (inclusive): heatmap
    conf[0, 15], gt[0, 15] = 0.3, torch.tensor([0.76, 1.0])   # crop edge, off the box: GT
    gt[0, 16, 1] = 1.01                                # outside the crop: no loss
    conf[0, 0] = 0.5                                   # nose at 0.5: visible, supervised
    conf[0, 1] = 0.49                                  # invisible non-articulated: no loss
    conf[0, 5] = 0.3                                   # uncertain but not articulated: no loss
    gt_valid[0, 12] = False                            # not annotated: no loss
    in_box = (gt[..., 0].abs() <= 0.75) & (gt[..., 1].abs() <= 1)
    n = 25
    targets, valid = mmd_targets(gt, gt_valid, samples, conf, in_box, n=n, generator=gen)
    assert targets.shape == (1, K, n, 2)
    assert sorted((~valid[0]).nonzero().flatten().tolist()) == [1, 5, 12, 16]
    for j in (9, 14):
        assert torch.equal(targets[0, j, 0], gt[0, j])                 # GT is always target 0
        ids = targets[0, j, 1:, 0]
        assert torch.equal(targets[0, j, 1:, 1], -ids)                  # rows of the stored set
        assert len(ids.unique()) == n - 1                               # without replacement
    assert torch.equal(targets[0, 9, 1:], targets[0, 14, 1:])           # one draw per example
    for j in (10, 7, 8, 13, 15, 0):
        assert torch.equal(targets[0, j], gt[0, j].expand(n, 2))
    assert (targets[0, [1, 5, 12, 16]] == 0).all()
    # the box test is skipped (crop only) when no box is given: joint 8 then uses samples
    targets2, _ = mmd_targets(gt, gt_valid, samples, conf, None, n=n, generator=gen)
    assert not torch.equal(targets2[0, 8], gt[0, 8].expand(n, 2))
    # fewer stored samples than n - 1: drawn with replacement (documented fallback)
    few, _ = mmd_targets(gt, gt_valid, samples[:, :, :5], conf, in_box, n=n, generator=gen)
    assert set(few[0, 9, 1:, 0].tolist()) <= {0.0, 1.0, 2.0, 3.0, 4.0}


def test_draw_hypotheses_excludes_mode_and_subsamples():
    kp = torch.arange(40, dtype=torch.float32).view(1, 40, 1, 1).expand(2, 40, K, 2).clone()
    kp[:, 0] = -1.0
    drawn = draw_hypotheses(kp, 25, torch.Generator().manual_seed(0))
    assert drawn.shape == (2, K, 25, 2)
    ids = drawn[..., 0]
    assert (ids >= 1).all()
    for b in range(2):
        assert len(ids[b, 0].unique()) == 25                     # without replacement
        assert (ids[b] == ids[b, :1]).all()                      # same subset for every joint
    assert torch.equal(draw_hypotheses(kp[:, :10], 25)[..., 0].sort(-1).values[0, 0],
                       torch.arange(1.0, 10.0))


def _imq_point_mass(p, g):
    r2 = sum((x - y) ** 2 for x, y in zip(p, g))
    return 2 * len(BW) - 2 * sum(a * a / (a * a + r2) for a in BW)


@pytest.mark.parametrize("estimator", ["unbiased", "biased"])
@pytest.mark.parametrize("reduction", ["all", "valid"])
def test_mmd_loss_point_masses_closed_form(estimator, reduction):
    batch, out = base_batch(batch_size=2, num_samples=6)
    g1, p1, g2, p2 = (0.1, 0.2), (0.4, -0.1), (-0.3, 0.5), (-0.2, 0.45)
    batch["coco_gt"][0, 5] = torch.tensor([*g1, 1.0])            # shoulder, visible
    batch["coco_gt"][1, 7] = torch.tensor([*g2, 1.0])            # elbow, certain
    batch["hm_max_conf"][1, 9] = 0.2                             # uncertain wrist, flagged invalid
    kp = out["keypoints2d"]
    kp[0, :, 5], kp[1, :, 7] = torch.tensor(p1), torch.tensor(p2)
    kp[:, 0] = 5.0                                               # the mode is ignored
    kp.requires_grad_()
    loss = HeatmapMMDLoss(estimator=estimator, reduction=reduction)(batch, out)
    # point masses: both estimators give 2 k(0) - 2 k(r); "all" divides by B x 17 = 34 slots
    total = _imq_point_mass(p1, g1) + _imq_point_mass(p2, g2)
    expected = total / (2 * K) if reduction == "all" else total / 2
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    loss.backward()
    assert (kp.grad[:, 0] == 0).all() and kp.grad[0, 1:, 5].abs().sum() > 0
    sink = humr.LOSSES.build("sinkhorn", blur=0.01)(batch, out)
    assert torch.isfinite(sink) and sink.item() > 0


def test_mmd_loss_biased_vs_unbiased_by_hand():
    """Two hypotheses {0, 1} vs targets {GT 0, sample 0}, one kernel a = 1 (1-D on u):
    biased = (2 + 2 * 0.5) / 4 + 1 - 2 * (1 + 1 + 0.5 + 0.5) / 4 = 0.25;
    unbiased = 2 * 0.5 / 2 + 1 - 1.5 = 0.0 (target within term: k(0, 0) = 1)."""
    batch, out = base_batch(batch_size=1, num_samples=3, count=1)
    batch["coco_gt"][0, 9] = torch.tensor([0.0, 0.0, 1.0])
    batch["hm_max_conf"][0, 9] = 0.3
    out["keypoints2d"][0, 1, 9] = torch.tensor([0.0, 0.0])
    out["keypoints2d"][0, 2, 9] = torch.tensor([1.0, 0.0])
    kw = {"n": 2, "bandwidths": (1.0,), "reduction": "valid"}
    assert HeatmapMMDLoss(**kw)(batch, out).item() == pytest.approx(0.25, rel=1e-6)
    assert HeatmapMMDLoss(estimator="unbiased", **kw)(batch, out).item() == pytest.approx(0.0, abs=1e-7)
    # "all" averages over the 17 slots of the example: 0.25 / 17
    assert HeatmapMMDLoss(n=2, bandwidths=(1.0,))(batch, out).item() == pytest.approx(0.25 / K, rel=1e-6)


def _mask_case():
    """Worked by hand (identity crop: full px = crop coords; R = 8, q = (u + 1) * 4; the mask is
    pixel columns x = 0, 1). Example 1 copies example 0 but has mask_valid False."""
    batch, out = base_batch(batch_size=2, num_samples=4, res=8, count=2)
    batch["mask"][:, :, :2] = 1
    conf, gt = batch["hm_max_conf"], batch["coco_gt"]
    s, v, d = batch["hm_samples"], batch["hm_values"], batch["hm_samples_mask_dist"]
    kp = out["keypoints2d"]
    kp[:] = torch.tensor([0.5, 0.5])                    # visible joints: never penalised
    # wrist 9 invisible: s1 q = (1.6, 4) is 0.6 px from the mask (inside), s2 q = (6, 5) is
    # off the mask, s3 q = (8, 4) is off the 8 x 8 image (q > R - 1 = 7): only s2 counts
    conf[:, 9] = 0.2
    kp[:, 1, 9], kp[:, 2, 9], kp[:, 3, 9] = (torch.tensor([-0.6, 0.0]), torch.tensor([0.5, 0.25]),
                                             torch.tensor([1.0, 0.0]))
    kp[:, 0, 9] = torch.tensor([0.5, 0.5])              # the mode is never penalised
    s[:, 9, 0], v[:, 9, 0] = torch.tensor([-0.75, 0.5]), 0.8                 # in-mask anchor
    s[:, 9, 1], v[:, 9, 1], d[:, 9, 1] = torch.tensor([0.45, 0.25]), 0.9, 3.0   # off the mask
    # joint 10 (visible): its stored sample at 0.71 px counts as inside (anchor); padding not
    s[:, 10, 0], v[:, 10, 0], d[:, 10, 0] = torch.tensor([0.25, 0.25]), 0.5, 0.71
    s[:, 10, 1], v[:, 10, 1] = torch.tensor([0.5, 0.25]), 0.0
    gt[:, 10] = torch.tensor([-0.5, -0.5, 1.0])
    # hip 11: confident but its ground truth lies outside the crop -> penalised; q = (6, 4)
    gt[:, 11] = torch.tensor([1.5, 0.0, 1.0])
    kp[:, 1:, 11] = torch.tensor([0.5, 0.0])
    batch["mask_valid"][1] = False
    return batch, out


@pytest.mark.parametrize("anchors, reduction, expected", [
    # all: j9 s2 (0.5, .25) -> j10 sample (.25, .25): 0.25; j11 (0.5, 0) -> same sample: 0.5
    ("all", "batch", (0.25 + 3 * 0.5) / (2 * 3)),
    ("all", "points", (0.25 + 3 * 0.5) / 4),
    # same joint: j9 -> its sample (-.75, .5): 1.5; j11 -> its own GT (1.5, 0): 1.0
    ("same_joint", "batch", (1.5 + 3 * 1.0) / (2 * 3)),
])
def test_mask_loss_hand_made(anchors, reduction, expected):
    batch, out = _mask_case()
    kp = out["keypoints2d"].requires_grad_()
    loss = MaskLoss(anchors=anchors, reduction=reduction, dilate_iterations=0)(batch, out)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    loss.backward()
    penalised = (kp.grad.abs().sum(-1) > 0).nonzero().tolist()
    assert penalised == [[0, 1, 11], [0, 2, 9], [0, 2, 11], [0, 3, 11]]   # example 1: mask_valid


def test_mask_loss_guard_and_boundaries():
    batch, out = _mask_case()
    ref = MaskLoss(dilate_iterations=0)(batch, out).item()
    batch["mask_valid"][1] = True                        # the copy now counts: twice the sum
    assert MaskLoss(dilate_iterations=0)(batch, out).item() == pytest.approx(2 * ref, rel=1e-6)
    batch, out = _mask_case()
    out["keypoints2d"][:, 3, 9] = torch.tensor([0.75, 0.0])   # q = 7 = R - 1: on the image
    extra = MaskLoss(dilate_iterations=0)(batch, out).item() * 6 - (0.25 + 1.5)
    assert extra == pytest.approx(0.5 + 0.25, rel=1e-5)        # l1 to (.25, .25)
    batch, out = _mask_case()
    d = batch["hm_samples_mask_dist"]
    d[:, 10, 0] = 0.72                                      # just outside the 0.71 tolerance
    # nearest anchors then: j9 s2 (.5, .25) -> j9 sample (-.75, .5) 1.5, GT10 (-.5, -.5) 1.75,
    # GT11 (1.5, 0) 1.25 -> 1.25; j11 (.5, 0) -> GT11: 1.0
    assert MaskLoss(dilate_iterations=0)(batch, out).item() == pytest.approx((1.25 + 3.0) / 6, rel=1e-6)


def test_mask_loss_dilation():
    """One mask pixel at (x 4, y 4); a hypothesis 3.5 px to its right is off the raw mask but
    0.5 px from the mask dilated three times by a 3 x 3 kernel (columns 1..7)."""
    batch, out = base_batch(batch_size=1, num_samples=2, res=16, count=1)
    batch["mask"][0, 4, 4] = 1
    batch["hm_max_conf"][0, 9] = 0.2
    batch["coco_gt"][0, 9] = torch.tensor([-0.5, -0.5, 1.0])
    out["keypoints2d"][0, 1, 9] = torch.tensor([7.5 / 8 - 1, 4 / 8 - 1])    # q = (7.5, 4)
    assert MaskLoss(dilate_iterations=3)(batch, out).item() == 0.0
    assert MaskLoss(dilate_iterations=0)(batch, out).item() > 0.0


@pytest.mark.parametrize("mode", ["all", "same_joint"])
@pytest.mark.parametrize("reduction", ["batch", "points"])
@pytest.mark.parametrize("chunk", [4096, 7])
@pytest.mark.parametrize("compact", [True, False])
def test_mask_loss_core_against_loops(mode, reduction, chunk, compact, monkeypatch):
    """mask_loss's value and gradient against a loop over points and anchors (the gradient of
    min_a |u - a|_1 is sign(u - a*) at the unique nearest anchor a*), in one chunk of points
    and in chunks of 7, searching the penalised points only (CPU) or every point (the
    accelerator path, no host read)."""
    import humr.losses.mask
    from humr.losses.mask import mask_loss

    monkeypatch.setattr(humr.losses.mask, "_CHUNK_POINTS", chunk)
    monkeypatch.setattr(humr.losses.mask, "COMPACT_SEARCH_DEVICES", ("cpu",) if compact else ())

    g = torch.Generator().manual_seed(7)
    B, S, K, A = 3, 4, 17, 5
    hyp = (torch.rand(B, S, K, 2, generator=g, dtype=torch.float64) * 2 - 1).requires_grad_()
    penalised = torch.rand(B, S, K, generator=g) > 0.4
    anchors = torch.rand(B, K, A, 2, generator=g, dtype=torch.float64) * 2 - 1
    ok = torch.rand(B, K, A, generator=g) > 0.5
    ok[1] = False                                             # example 1: no usable anchor
    ok[2, 3] = False                                          # joint 3 of example 2: none of its own
    loss = mask_loss(hyp, penalised, anchors, ok, mode, reduction)
    loss.backward()
    total, count = 0.0, 0
    grad = torch.zeros_like(hyp)
    for b in range(B):
        for s in range(S):
            for k in range(K):
                joints = range(K) if mode == "all" else [k]
                cands = [anchors[b, j, a] for j in joints for a in range(A) if ok[b, j, a]]
                if not penalised[b, s, k] or not cands:
                    continue
                dists = [float((hyp[b, s, k].detach() - c).abs().sum()) for c in cands]
                best = cands[int(np.argmin(dists))]
                total, count = total + min(dists), count + 1
                grad[b, s, k] = torch.sign(hyp[b, s, k].detach() - best)
    norm = B * S if reduction == "batch" else count
    assert count > 0
    assert loss.item() == pytest.approx(total / norm, rel=1e-12)
    torch.testing.assert_close(hyp.grad, grad / norm)


def test_kp2d_losses_against_loops():
    g = torch.Generator().manual_seed(1)
    batch, out = base_batch(batch_size=3, num_samples=5)
    batch["center"] = torch.tensor([[100.0, 50.0], [20.0, 30.0], [0.0, 0.0]])
    batch["scale"] = torch.tensor([[0.5], [1.0], [2.0]])
    box = 200 * batch["scale"][:, 0]
    batch["kp2d_gt"] = torch.cat([torch.rand(3, 24, 2, generator=g) * 200,
                                  (torch.rand(3, 24, 1, generator=g) > 0.3).float()], -1)
    batch["coco_gt"] = torch.cat([torch.rand(3, K, 2, generator=g) * 200,
                                  (torch.rand(3, K, 1, generator=g) > 0.3).float()], -1)
    batch["hm_max_conf"] = torch.rand(3, K, generator=g)
    out["joints2d"] = torch.randn(3, 5, 22, 2, generator=g)      # SMPL-X body: 22 joints
    out["keypoints2d"] = torch.randn(3, 5, K, 2, generator=g)

    def crop(p, b):
        return ((p - batch["center"][b]) / (box[b] / 2)).numpy()

    num = den = 0.0
    for b in range(3):
        for j in range(22):
            w = batch["kp2d_gt"][b, j, 2].item()
            num += w * np.abs(out["joints2d"][b, 0, j].numpy() - crop(batch["kp2d_gt"][b, j, :2], b)).sum()
            den += w
    # official: summed over joints, divided by the batch size; option: mean over flagged joints
    assert humr.LOSSES.build("kp2d_mode")(batch, out).item() == pytest.approx(num / 3, rel=1e-5)
    assert humr.LOSSES.build("kp2d_mode", reduction="mean")(batch, out).item() == pytest.approx(
        num / den, rel=1e-5)
    for name, vis in (("kp2d_all", False), ("kp2d_vis", True)):
        num = den = 0.0
        for b in range(3):
            for k in range(K):
                w = batch["coco_gt"][b, k, 2].item() * (not vis or batch["hm_max_conf"][b, k].item() >= 0.5)
                for s in range(1, 5):
                    num += w * np.abs(out["keypoints2d"][b, s, k].numpy() - crop(batch["coco_gt"][b, k, :2], b)).sum()
                    den += w
        assert humr.LOSSES.build(name)(batch, out).item() == pytest.approx(num / den, rel=1e-5)


def test_kp3d_mode_loss_against_a_loop():
    """ProHMR's KEYPOINTS_3D_MODE: l1 of pelvis-relative joints of the mode, summed over
    joints and coordinates, / B; the random hypotheses and a shared offset do not count."""
    g = torch.Generator().manual_seed(5)
    batch, out = base_batch(batch_size=3, num_samples=4)
    out["joints3d"] = torch.randn(3, 4, 24, 3, generator=g)
    out["joints3d_gt"] = torch.randn(3, 24, 3, generator=g)
    total = 0.0
    for b in range(3):
        for j in range(24):
            for c in range(3):
                pred = out["joints3d"][b, 0, j, c] - out["joints3d"][b, 0, 0, c]
                gt = out["joints3d_gt"][b, j, c] - out["joints3d_gt"][b, 0, c]
                total += abs(pred.item() - gt.item())
    loss = humr.LOSSES.build("kp3d_mode")
    assert loss(batch, out).item() == pytest.approx(total / 3, rel=1e-5)
    assert humr.LOSSES.build("kp3d_mode", reduction="mean")(batch, out).item() == pytest.approx(
        total / (3 * 24), rel=1e-5)
    out["joints3d"][:, 1:] += 5.0                                  # random hypotheses
    out["joints3d"][:, 0] += torch.tensor([1.0, -2.0, 3.0])          # the whole mode moved
    assert loss(batch, out).item() == pytest.approx(total / 3, rel=1e-5)
    assert loss.needs == {"joints3d_gt"}
    with pytest.raises(KeyError, match=r"out\['joints3d_gt'\]"):
        loss(batch, {k: v for k, v in out.items() if k != "joints3d_gt"})


def test_regularisers():
    g = torch.Generator().manual_seed(2)
    batch, out = base_batch(batch_size=2, num_samples=3)
    batch["betas"] = torch.randn(2, 10, generator=g)
    out["betas"] = torch.randn(2, 3, 10, generator=g)
    mse = torch.nn.functional.mse_loss(out["betas"][:, 0], batch["betas"]).item()
    assert humr.LOSSES.build("betas")(batch, out).item() == pytest.approx(10 * mse)  # sum / B
    assert humr.LOSSES.build("betas", reduction="mean")(batch, out).item() == pytest.approx(mse)
    x = torch.randn(2, 3, 24 * 6, generator=g, dtype=torch.float64)
    per = np.zeros((2, 3, 24))
    for i, v in enumerate(x.reshape(-1, 6).tolist()):
        a, b = np.array(v[0::2]), np.array(v[1::2])               # columns of [R00,R01,R10,R11,R20,R21]
        per.flat[i] = (a @ a - 1) ** 2 + (b @ b - 1) ** 2 + 2 * (a @ b) ** 2
    out["pose_6d"] = x
    # official: mean of the 4 Gram entries over the mode + their mean over the random ones
    official = per[:, 0].mean() / 4 + per[:, 1:].mean() / 4
    assert humr.LOSSES.build("orth")(batch, out).item() == pytest.approx(official, rel=1e-10)
    assert humr.LOSSES.build("orth", reduction="mean_all")(batch, out).item() == pytest.approx(
        per.mean(), rel=1e-10)
    out["pose_6d"] = matrix_to_rot6d(axis_angle_to_matrix(torch.randn(2, 3, 24, 3, generator=g))).flatten(-2)
    assert humr.LOSSES.build("orth")(batch, out).item() < 1e-10
    out["log_prob_gt"] = torch.tensor([-100.0, 44.0])
    assert humr.LOSSES.build("nll")(batch, out).item() == pytest.approx(28.0 / 144)
    out["cam"] = torch.tensor([[[-0.5, 0, 0], [0.2, 1, 1], [0.0, 0, 0]]] * 2)
    assert humr.LOSSES.build("cam")(batch, out).item() == pytest.approx(0.25 / 3)
    assert humr.LOSSES.build("cam", form="exp")(batch, out).item() == pytest.approx(
        (math.exp(10) + math.exp(-4) + 1) / 3, rel=1e-6)


def _degenerate(case):
    batch, out = base_batch(batch_size=2, num_samples=4)
    batch["coco_gt"][..., 2] = 1.0
    batch["kp2d_gt"][..., 2] = 1.0
    batch["hm_values"][:] = 0.5
    batch["mask"][:, :, :4] = 1
    batch["hm_max_conf"][:, 7:] = 0.3
    if case == "no_valid_joints":
        batch["coco_gt"][..., 2] = 0.0
        batch["kp2d_gt"][..., 2] = 0.0
    elif case == "empty_masks":
        batch["mask"][:] = 0
        batch["hm_max_conf"][:] = 0.1
    elif case == "all_invisible":
        batch["hm_max_conf"][:] = 0.0
        batch["hm_values"][:] = 0.0
        out["keypoints2d"][:] = 0.5
    # "coincident": every hypothesis, sample and ground truth at the crop centre
    return batch, out


@pytest.mark.parametrize("case", ["coincident", "no_valid_joints", "empty_masks", "all_invisible"])
@pytest.mark.parametrize("name", sorted(humr.LOSSES.names()))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_degenerate_inputs_finite(case, name, dtype):
    batch, out = _degenerate(case)
    out = {k: v.to(dtype).requires_grad_() for k, v in out.items()}
    loss = humr.LOSSES.build(name)(batch, out)
    assert loss.dim() == 0 and torch.isfinite(loss) and loss.dtype == dtype
    grads = torch.autograd.grad(loss, list(out.values()), allow_unused=True)
    assert all(gr is None or torch.isfinite(gr).all() for gr in grads)


def test_bad_input_named():
    batch, out = base_batch()
    del batch["hm_values"]
    with pytest.raises(KeyError, match=r"batch\['hm_values'\]"):
        MaskLoss()(batch, out)
    batch, out = base_batch(batch_size=0)
    with pytest.raises(ValueError, match="empty batch"):
        HeatmapMMDLoss()(batch, out)
    batch, out = base_batch()
    batch["mask"] = batch["mask"][:, :, :5]
    with pytest.raises(ValueError, match=r"batch\['mask'\]"):
        MaskLoss()(batch, out)
    batch, out = base_batch(num_samples=2)
    with pytest.raises(ValueError, match=r"S >= 3"):
        HeatmapMMDLoss()(batch, out)


def test_default_weights():
    assert set(DEFAULT_WEIGHTS) == set(humr.LOSSES.names())
    paper = {"nll": 1e-1, "mmd": 5e-2, "mask": 1e-1, "kp2d_mode": 1e-2, "betas": 5e-4, "orth": 1e-1}
    assert {k: DEFAULT_WEIGHTS[k] for k in paper} == paper


def test_mmd_loss_heatmap_targets_prefer_matching_hypotheses():
    torch.manual_seed(0)
    batch, out = base_batch(batch_size=8, num_samples=26, count=150)
    batch["coco_gt"][:, 9] = torch.tensor([0.1, 0.1, 1.0])
    batch["hm_max_conf"][:, 9] = 0.3                             # uncertain wrist: heatmap targets
    batch["hm_samples"][:, 9] = torch.randn(8, 150, 2) * 0.2 + 0.1
    batch["hm_values"][:, 9] = 0.3
    batch["coco_gt"][:, :9, 2] = 0.0
    batch["coco_gt"][:, 10:, 2] = 0.0
    kp = out["keypoints2d"]
    kp[:, :, 9] = torch.randn(8, 26, 2) * 0.2 + 0.1
    loss = HeatmapMMDLoss(reduction="valid")
    matching = loss(batch, out).item()
    kp[:, :, 9] *= 0.05                                          # collapsed hypotheses
    collapsed = loss(batch, out).item()
    assert collapsed > 0.5 and abs(matching) < 0.1 * collapsed


@pytest.mark.parametrize("name", ["mmd", "mask", "kp2d_mode", "kp3d_mode", "betas", "orth"])
def test_validate_args_opt_in(name):
    batch, out = _degenerate("coincident")
    out = {k: v.clone() for k, v in out.items()}
    out["keypoints2d"][0, 1, 0, 0] = float("nan")
    out["joints2d"][0, 0, 0, 0] = float("nan")
    out["betas"][0, 0, 0] = float("nan")
    out["pose_6d"][0, 0, 0] = float("nan")
    out["joints3d"][0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        humr.LOSSES.build(name, validate_args=True)(batch, out)
    humr.LOSSES.build(name)(batch, out)                 # no check (and no sync) by default


@pytest.mark.parametrize("name", ["kp2d_mode", "kp2d_all", "kp2d_vis", "mmd", "mask"])
def test_nan_ground_truth_of_unflagged_joints_is_harmless(name):
    """Issue 17 item 5: non-finite values in masked-out entries give finite values and grads."""
    batch, out = _degenerate("coincident")
    batch["coco_gt"][0, 3] = torch.tensor([float("nan"), float("inf"), 0.0])
    batch["kp2d_gt"][0, 3] = torch.tensor([float("nan"), float("inf"), 0.0])
    out = {k: v.clone().requires_grad_() for k, v in out.items()}
    loss = humr.LOSSES.build(name)(batch, out)
    assert torch.isfinite(loss)
    grads = torch.autograd.grad(loss, list(out.values()), allow_unused=True)
    assert all(g is None or torch.isfinite(g).all() for g in grads)


def test_mmd_box_test_uses_the_detector_crop():
    """GT at u = 0.7 of the (jittered) training crop is inside the 3:4 box there, but at
    u = 0.8 of the detector's crop (det_center 10 px to the left, same 200 px box): official
    rule -> ground-truth targets, so hypotheses on the GT cost nothing."""
    batch, out = base_batch(batch_size=1, num_samples=3, count=24)
    batch["center"], batch["scale"] = torch.tensor([[100.0, 100.0]]), torch.tensor([[1.0]])
    batch["coco_gt"][0, 9] = torch.tensor([170.0, 100.0, 1.0])          # u = 0.7
    batch["hm_max_conf"][0, 9] = 0.3
    batch["hm_samples"][0, 9] = torch.tensor([100.0, 150.0])            # far from the GT
    out["keypoints2d"][0, :, 9] = torch.tensor([0.7, 0.0])
    loss = HeatmapMMDLoss(n=3)
    assert loss(batch, out).item() > 0                                   # heatmap targets
    batch["det_center"], batch["det_scale"] = torch.tensor([[90.0, 100.0]]), torch.tensor([[1.0]])
    assert loss(batch, out).item() == pytest.approx(0.0, abs=1e-7)      # GT targets


@pytest.mark.parametrize("compact", [True, False])
def test_mask_loss_core_ignores_unusable_anchors(compact, monkeypatch):
    """Unusable anchor entries (NaN here) change neither the value nor the gradient."""
    import humr.losses.mask
    from humr.losses.mask import mask_loss

    monkeypatch.setattr(humr.losses.mask, "COMPACT_SEARCH_DEVICES", ("cpu",) if compact else ())
    g = torch.Generator().manual_seed(3)
    hyp = torch.rand(2, 3, 17, 2, generator=g, dtype=torch.float64) * 2 - 1
    penalised = torch.rand(2, 3, 17, generator=g) > 0.3
    anchors = torch.rand(2, 17, 4, 2, generator=g, dtype=torch.float64) * 2 - 1
    ok = torch.rand(2, 17, 4, generator=g) > 0.5
    results = []
    for fill in (0.0, float("nan")):
        h = hyp.clone().requires_grad_()
        loss = mask_loss(h, penalised, torch.where(ok[..., None], anchors, fill), ok)
        loss.backward()
        results.append((loss.detach(), h.grad))
    assert torch.isfinite(results[1][0]) and results[0][0] > 0
    torch.testing.assert_close(results[1], results[0])

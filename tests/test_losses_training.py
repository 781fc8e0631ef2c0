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


def base_batch(batch_size=2, num_samples=4, res=8, count=3):
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
    }
    return batch, out


def test_mmd_targets_rules():
    gen = torch.Generator().manual_seed(0)
    gt = torch.zeros(1, K, 2)
    gt[0, :, 0] = torch.linspace(-0.8, 0.8, K)
    gt_valid = torch.ones(1, K, dtype=torch.bool)
    samples, values = torch.zeros(1, K, 150, 2), torch.zeros(1, K, 150)
    conf = torch.full((1, K), 0.9)
    a, b, c = torch.tensor([0.5, 0.5]), torch.tensor([-0.5, 0.5]), torch.tensor([0.9, -0.9])
    for j in (9, 16):                       # articulated + uncertain (16 also invisible)
        samples[0, j, :100], values[0, j, :100] = a, 0.9
        samples[0, j, 100:140], values[0, j, 100:140] = b, 0.1
        samples[0, j, 140:] = c                                  # padding (value 0)
    conf[0, 9], conf[0, 16] = 0.3, 0.4
    conf[0, 0] = 0.3                        # nose invisible -> no MMD
    conf[0, 5] = 0.6                        # shoulder visible but uncertain -> GT targets
    gt[0, 13] = torch.tensor([1.2, 0.0])    # outside the crop
    gt_valid[0, 14] = False                 # not annotated
    conf[0, 15] = 0.3                       # articulated, uncertain, no valid sample
    n = 3001
    targets, valid = mmd_targets(gt, gt_valid, samples, values, conf, n=n, generator=gen)
    assert targets.shape == (1, K, n, 2)
    assert sorted((~valid[0]).nonzero().flatten().tolist()) == [0, 13, 14, 15]
    for j in (9, 16):
        assert torch.equal(targets[0, j, 0], gt[0, j])
        rest = targets[0, j, 1:]
        is_a, is_b = (rest == a).all(-1), (rest == b).all(-1)
        assert bool((is_a | is_b).all())                          # never the padding
        p = 100 / 140                                             # uniform among valid samples
        assert abs(is_a.sum().item() - (n - 1) * p) < 5 * math.sqrt((n - 1) * p * (1 - p))
    for j in (5, 7, 1, 12):
        assert torch.equal(targets[0, j], gt[0, j].expand(n, 2))
    assert (targets[0, [0, 13, 14, 15]] == 0).all()


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
def test_mmd_loss_point_masses_closed_form(estimator):
    batch, out = base_batch(batch_size=2, num_samples=6)
    g1, p1, g2, p2 = (0.1, 0.2), (0.4, -0.1), (-0.3, 0.5), (-0.2, 0.45)
    batch["coco_gt"][0, 5] = torch.tensor([*g1, 1.0])            # shoulder, visible
    batch["coco_gt"][1, 7] = torch.tensor([*g2, 1.0])            # elbow, certain
    batch["hm_max_conf"][1, 9] = 0.2                             # uncertain wrist, flagged invalid
    kp = out["keypoints2d"]
    kp[0, :, 5], kp[1, :, 7] = torch.tensor(p1), torch.tensor(p2)
    kp[:, 0] = 5.0                                               # the mode is ignored
    kp.requires_grad_()
    loss = HeatmapMMDLoss(estimator=estimator)(batch, out)
    expected = (_imq_point_mass(p1, g1) + _imq_point_mass(p2, g2)) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    loss.backward()
    assert (kp.grad[:, 0] == 0).all() and kp.grad[0, 1:, 5].abs().sum() > 0
    sink = humr.LOSSES.build("sinkhorn", blur=0.01)(batch, out)
    assert torch.isfinite(sink) and sink.item() > 0


def test_mask_loss_hand_made():
    batch, out = base_batch(batch_size=2, num_samples=4, res=8, count=3)
    batch["mask"][:, :, :4] = 1                                  # left half (u < 0)
    batch["mask_valid"][1] = False
    conf, gt = batch["hm_max_conf"], batch["coco_gt"]
    s, v, d = batch["hm_samples"], batch["hm_values"], batch["hm_samples_mask_dist"]
    kp = out["keypoints2d"]
    kp[:] = torch.tensor([0.5, 0.5])                             # off the mask everywhere
    kp[:, 0] = torch.tensor([0.9, 0.9])                          # mode: never penalised
    # wrist 9: invisible; s1 on the mask, s2 off it, s3 outside the crop
    conf[0, 9] = 0.2
    kp[0, 1, 9], kp[0, 2, 9], kp[0, 3, 9] = torch.tensor([-0.5, 0.0]), torch.tensor([0.5, 0.25]), torch.tensor([1.5, 0.0])
    s[0, 9, 0], v[0, 9, 0] = torch.tensor([-0.25, 0.5]), 0.8          # in-mask anchor
    s[0, 9, 1], v[0, 9, 1], d[0, 9, 1] = torch.tensor([0.45, 0.25]), 0.9, 3.0   # closer, off mask
    s[0, 9, 2] = torch.tensor([0.5, 0.25])                          # padding (value 0)
    # wrist 10: invisible, no in-mask sample -> the ground truth is the anchor
    conf[0, 10] = 0.2
    gt[0, 10] = torch.tensor([-0.5, -0.5, 1.0])
    kp[0, 1:, 10] = torch.tensor([0.25, 0.75])
    d[0, 10] = 2.0
    v[0, 10] = 0.5
    # hip 11: confident but the ground truth is outside the crop -> invisible
    gt[0, 11] = torch.tensor([1.5, 0.0, 1.0])
    s[0, 11, :], v[0, 11, :] = torch.tensor([-0.5, 0.0]), 0.6
    kp[0, 1:, 11] = torch.tensor([0.5, 0.0])
    # hip 12: invisible, no in-mask sample and no valid ground truth -> no anchor
    conf[0, 12] = 0.2
    # example 1 has mask_valid False: nothing counts
    conf[1] = 0.1
    kp.requires_grad_()
    loss = MaskLoss()(batch, out)
    expected = (1.0 + 3 * 2.0 + 3 * 1.0) / 7
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    loss.backward()
    penalised = (kp.grad.abs().sum(-1) > 0).nonzero().tolist()
    assert penalised == [[0, 1, 10], [0, 1, 11], [0, 2, 9], [0, 2, 10], [0, 2, 11],
                         [0, 3, 10], [0, 3, 11]]
    assert torch.allclose(kp.grad[0, 2, 9], torch.tensor([1.0, -1.0]) / 7)


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
    assert humr.LOSSES.build("kp2d_mode")(batch, out).item() == pytest.approx(num / den, rel=1e-5)
    for name, vis in (("kp2d_all", False), ("kp2d_vis", True)):
        num = den = 0.0
        for b in range(3):
            for k in range(K):
                w = batch["coco_gt"][b, k, 2].item() * (not vis or batch["hm_max_conf"][b, k].item() > 0.5)
                for s in range(1, 5):
                    num += w * np.abs(out["keypoints2d"][b, s, k].numpy() - crop(batch["coco_gt"][b, k, :2], b)).sum()
                    den += w
        assert humr.LOSSES.build(name)(batch, out).item() == pytest.approx(num / den, rel=1e-5)


def test_regularisers():
    g = torch.Generator().manual_seed(2)
    batch, out = base_batch(batch_size=2, num_samples=3)
    batch["betas"] = torch.randn(2, 10, generator=g)
    out["betas"] = torch.randn(2, 3, 10, generator=g)
    assert humr.LOSSES.build("betas")(batch, out).item() == pytest.approx(
        torch.nn.functional.mse_loss(out["betas"][:, 0], batch["betas"]).item())
    x = torch.randn(2, 3, 24 * 6, generator=g, dtype=torch.float64)
    ref = 0.0
    for v in x.reshape(-1, 6).tolist():
        a, b = np.array(v[0::2]), np.array(v[1::2])               # columns of [R00,R01,R10,R11,R20,R21]
        ref += (a @ a - 1) ** 2 + (b @ b - 1) ** 2 + 2 * (a @ b) ** 2
    out["pose_6d"] = x
    assert humr.LOSSES.build("orth")(batch, out).item() == pytest.approx(ref / (2 * 3 * 24), rel=1e-10)
    out["pose_6d"] = matrix_to_rot6d(axis_angle_to_matrix(torch.randn(2, 3, 24, 3, generator=g))).flatten(-2)
    assert humr.LOSSES.build("orth")(batch, out).item() < 1e-10
    out["log_prob_gt"] = torch.tensor([-100.0, 44.0])
    assert humr.LOSSES.build("nll")(batch, out).item() == pytest.approx(28.0 / 144)
    out["cam"] = torch.tensor([[[-0.5, 0, 0], [0.2, 1, 1], [0.0, 0, 0]]] * 2)
    assert humr.LOSSES.build("cam")(batch, out).item() == pytest.approx(0.25 / 3)


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
    matching = HeatmapMMDLoss()(batch, out).item()
    kp[:, :, 9] *= 0.05                                          # collapsed hypotheses
    collapsed = HeatmapMMDLoss()(batch, out).item()
    assert collapsed > 0.5 and abs(matching) < 0.1 * collapsed

"""Parity with the official release (twehrbein/humr, train/losses/losses.py ``HumrLoss.forward``
and train/core/humr_trainer.py ``validation_step``): every default loss and metric of humr
against an independent re-statement of the official formulas on the same batch and outputs.

The references below are written from the official semantics with explicit numpy / torch
loops and brute force (cv2 dilation, distances to every mask pixel); they share no code with
humr. Ground truth is continuous here (the official data loader rounds it to crop pixels).
"""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

import humr
from humr.metrics import functional as F

B, S, K, P, R = 3, 26, 17, 24, 32
ART = np.array([0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1], bool)
BW = (0.05, 0.2, 0.9)


def _case(seed=0):
    rng = np.random.default_rng(seed)
    center = rng.uniform(100, 300, (B, 2))
    scale = rng.uniform(0.8, 1.5, (B, 1))
    det_center = center + rng.uniform(-10, 10, (B, 2))          # the un-augmented detector crop
    det_scale = scale * rng.uniform(0.9, 1.1, (B, 1))
    to_full = lambda u, c, s: u * (100 * s[:, None]) + c[:, None]
    gt_crop = rng.uniform(-1.15, 1.15, (B, K, 2))
    gt_crop[0, 9] = [0.75, 0.2]                                  # edges of box and crop
    gt_crop[1, 9] = [1.0, -1.0]
    conf = rng.choice([0.05, 0.15, 0.3, 0.49, 0.5, 0.6, 0.69, 0.7, 0.9], (B, K))
    samples_crop = rng.uniform(-1, 1, (B, K, P, 2))
    mask = np.zeros((B, R, R), np.uint8)
    mask[:, 6:20, 8:18] = 1
    mask[1, 25:29, 2:5] = 1
    mask_valid = np.array([True, True, False])
    sample_dist = rng.choice([0.0, 0.5, 0.71, 0.72, 3.0], (B, K, P))
    kp = rng.uniform(-1.1, 1.1, (B, S, K, 2))
    joints2d = rng.uniform(-1, 1, (B, S, 24, 2))
    kp2d_gt = rng.uniform(-1, 1, (B, 24, 2))
    t = lambda x: torch.tensor(x, dtype=torch.float64)
    batch = {
        "center": t(center), "scale": t(scale), "det_center": t(det_center), "det_scale": t(det_scale),
        "coco_gt": t(np.concatenate([to_full(gt_crop, center, scale), np.ones((B, K, 1))], -1)),
        "kp2d_gt": t(np.concatenate([to_full(kp2d_gt, center, scale), np.ones((B, 24, 1))], -1)),
        "hm_samples": t(to_full(samples_crop.reshape(B, -1, 2), center, scale).reshape(B, K, P, 2)),
        "hm_values": t(np.full((B, K, P), 0.5)), "hm_max_conf": t(conf),
        "hm_samples_mask_dist": t(sample_dist), "mask": torch.tensor(mask),
        "mask_valid": torch.tensor(mask_valid), "betas": t(rng.normal(size=(B, 11))),
    }
    out = {"keypoints2d": t(kp), "joints2d": t(joints2d), "betas": t(rng.normal(size=(B, S, 11))),
           "pose_6d": t(rng.normal(size=(B, S, 22 * 6))), "cam": t(rng.normal(size=(B, S, 3)) * 0.1)}
    ref = {"gt_crop": gt_crop, "conf": conf, "samples": samples_crop, "kp": kp, "mask": mask,
               "mask_valid": mask_valid, "sample_dist": sample_dist, "joints2d": joints2d, "kp2d_gt": kp2d_gt,
               "det_gt": (to_full(gt_crop, center, scale) - det_center[:, None]) / (100 * det_scale[:, None])}
    return batch, out, ref


def _official_mmd(ref):
    """``batch_mmd`` (biased, IMQ 0.05/0.2/0.9) over the official target rule, (mmd * valid).mean()."""
    gt, conf = ref["gt_crop"], ref["conf"]
    inside_sq = (np.abs(gt) <= 1).all(-1)
    inside_box = (np.abs(ref["det_gt"][..., 0]) <= 0.75) & (np.abs(ref["det_gt"][..., 1]) <= 1)
    use_hm = (conf < 0.7) & (conf > 0.15) & ART & inside_box & inside_sq
    valid = ~(~inside_sq | (~ART & (conf < 0.5)))
    total = 0.0
    for b in range(B):
        for k in range(K):
            tgt = ref["samples"][b, k] if use_hm[b, k] else np.repeat(gt[b, k][None], P, 0)
            tgt = np.concatenate([gt[b, k][None], tgt])            # 25 targets, GT first
            x = ref["kp"][b, 1:, k]
            kern = lambda p, q: sum(a * a / (a * a + ((p[:, None] - q[None]) ** 2).sum(-1)) for a in BW)
            mmd = kern(x, x).mean() + kern(tgt, tgt).mean() - 2 * kern(x, tgt).mean()
            total += mmd * valid[b, k]
    return total / (B * K)


def _official_mask(ref):
    gt, conf, kp = ref["gt_crop"], ref["conf"], ref["kp"]
    inside_sq = (np.abs(gt) <= 1).all(-1)
    invis = (conf < 0.5) | ~inside_sq
    total = 0.0
    for b in range(B):
        if not ref["mask_valid"][b]:
            continue
        dil = cv2.dilate(ref["mask"][b].astype(np.float32), np.ones((3, 3), np.float32), iterations=3)
        pix = np.argwhere(dil > 0)[:, ::-1].astype(np.float64)
        anchors = [ref["samples"][b, k, p] for k in range(K) for p in range(P)
                   if ref["sample_dist"][b, k, p] <= 0.71] + [gt[b, k] for k in range(K)]
        anchors = np.array(anchors)
        for s in range(1, S):
            for k in range(K):
                q = (kp[b, s, k] + 1) * R / 2
                d = np.sqrt(((pix - q) ** 2).sum(-1)).min()
                d = 0.0 if d < 0.71 else d
                on_img = (q >= 0).all() and (q <= R - 1).all()
                if d > 0 and on_img and invis[b, k]:
                    total += np.abs(anchors - kp[b, s, k]).sum(-1).min()
    return total / (B * (S - 1))


def _official_regularisers(ref, out, batch):
    kp2d = np.abs(ref["joints2d"][:, 0, :24] - ref["kp2d_gt"][:, :24]).sum() / B   # num_joints = 24
    betas = ((out["betas"][:, 0] - batch["betas"]) ** 2).sum().item() / B
    x = out["pose_6d"].numpy().reshape(B, S, 22, 3, 2)               # humr layout: columns a, b
    rows = np.swapaxes(x, -1, -2)                                    # official (2, 3) rows a, b
    sq = ((rows @ np.swapaxes(rows, -1, -2) - np.eye(2)) ** 2).reshape(B, S, -1)
    orth = sq[:, 0].mean() + sq[:, 1:].mean()
    cam = (np.exp(-out["cam"][..., 0].numpy() * 10) ** 2).mean()
    return {"kp2d_mode": kp2d, "betas": betas, "orth": orth, "cam": cam}


def test_mmd_default_equals_official():
    batch, out, ref = _case(0)
    ours = humr.LOSSES.build("mmd")(batch, out).item()
    assert ours == pytest.approx(_official_mmd(ref), rel=1e-4)


def test_mask_default_equals_official():
    batch, out, ref = _case(1)
    ours = humr.LOSSES.build("mask")(batch, out).item()
    expected = _official_mask(ref)
    assert expected > 0 and ours == pytest.approx(expected, rel=1e-4)


def test_regularisers_and_kp2d_default_equal_official():
    batch, out, ref = _case(2)
    expected = _official_regularisers(ref, out, batch)
    for name in ("kp2d_mode", "betas", "orth"):
        assert humr.LOSSES.build(name)(batch, out).item() == pytest.approx(expected[name], rel=1e-4), name
    assert humr.LOSSES.build("cam", form="exp")(batch, out).item() == pytest.approx(expected["cam"], rel=1e-4)


def test_mask_metrics_equal_official_validation_step():
    """PercIn / MinDist: all S hypotheses, q = (u + 1) R / 2, brute force to every mask pixel,
    < 0.71 px -> 0, invisible = confidence < 0.5 (official: ~(conf > 0.5); 0.5 avoided here)."""
    _, _, ref = _case(3)
    conf = np.where(ref["conf"] == 0.5, 0.51, ref["conf"])
    invisible = conf < 0.5
    ours = F.mask_plausibility(torch.tensor(ref["kp"]), torch.tensor(ref["mask"]),
                               torch.tensor(invisible), torch.tensor(ref["mask_valid"]))
    vals, used = [], []
    for b in range(B):
        pix = np.argwhere(ref["mask"][b] > 0)[:, ::-1]
        for s in range(S):
            for k in range(K):
                d = np.sqrt((((ref["kp"][b, s, k] + 1) * R / 2 - pix) ** 2).sum(-1)).min()
                vals.append(0.0 if d < 0.71 else d)
                used.append(invisible[b, k] and ref["mask_valid"][b])
    vals, used = np.array(vals), np.array(used)
    assert ours["min_dist"].item() == pytest.approx((vals * used).sum() / used.sum(), rel=1e-9)
    assert ours["perc_in"].item() == pytest.approx(100 * ((vals == 0) * used).sum() / used.sum(), rel=1e-9)


def test_spread_and_consistency_equal_official_validation_step():
    rng = np.random.default_rng(4)
    kp3d = rng.normal(size=(B, S, K, 3)) * 0.1
    conf = rng.uniform(0, 1, (B, K))
    vis = np.broadcast_to((conf > 0.5)[:, None], (B, S, K))
    div = np.linalg.norm(kp3d - kp3d.mean(1, keepdims=True), axis=-1) * 1000
    ours = F.spread_3d(torch.tensor(kp3d), torch.tensor(conf))
    assert ours["spread_visible"].item() == pytest.approx((div * vis).sum() / vis.sum(), rel=1e-9)
    assert ours["spread_invisible"].item() == pytest.approx((div * ~vis).sum() / (~vis).sum(), rel=1e-9)
    pred, gt = rng.uniform(-1, 1, (B, S, K, 2)), rng.uniform(-1, 1, (B, K, 2))
    err = np.linalg.norm((pred + 1) * 128 - (gt[:, None] + 1) * 128, axis=-1)
    ours = F.consistency_2d(torch.tensor(pred), torch.tensor(gt), torch.tensor(conf))
    assert ours["kp2d_samples"].item() == pytest.approx(
        (err[:, 1:] * vis[:, 1:]).sum() / vis[:, 1:].sum(), rel=1e-9)
    assert ours["kp2d_mode"].item() == pytest.approx((err[:, 0] * vis[:, 0]).sum() / vis[:, 0].sum(), rel=1e-9)


class _ScaledBody(torch.nn.Module):
    """A stand-in body model: fixed joints scaled by ``size`` (gendered ground truth)."""

    def __init__(self, size: float, joints: int = 24):
        super().__init__()
        self.size = size
        self.register_buffer("base", torch.randn(joints, 3, generator=torch.Generator().manual_seed(0),
                                                 dtype=torch.float64))

    def forward(self, rotmat, betas, return_vertices=False, joints_only=False):
        n = rotmat.shape[0]
        return {"joints": (self.size * self.base).expand(n, -1, -1).to(rotmat.dtype)}


def _eval_batch(batch_size=3, s=2):
    z = torch.zeros
    batch = {"pose": z(batch_size, 72, dtype=torch.float64), "betas": z(batch_size, 10, dtype=torch.float64),
             "center": z(batch_size, 2, dtype=torch.float64), "scale": torch.ones(batch_size, 1, dtype=torch.float64),
             "coco_gt": z(batch_size, 17, 3, dtype=torch.float64), "cond_kp": z(batch_size, 17, 3, dtype=torch.float64),
             "mask": torch.ones(batch_size, 8, 8, dtype=torch.uint8),
             "mask_valid": torch.ones(batch_size, dtype=torch.bool)}
    out = {"rotmat": torch.eye(3, dtype=torch.float64).expand(batch_size, s, 24, 3, 3),
           "betas": z(batch_size, s, 10, dtype=torch.float64),
           "keypoints3d": z(batch_size, s, 17, 3, dtype=torch.float64),
           "keypoints2d": z(batch_size, s, 17, 2, dtype=torch.float64)}
    return batch, out


class _StubModel:
    """What evaluation asks of a model for the ground truth: ``ground_truth(batch, outputs, body)``."""

    def __init__(self, body):
        self.body = body

    def ground_truth(self, batch, outputs=(), body=None):
        body = self.body if body is None else body
        return {"joints": body(batch["pose"], batch["betas"])["joints"]}


def _with_pred_joints(out, body, s=2):
    joints = body(out["rotmat"][:, 0], None)["joints"]
    return {**out, "joints3d": joints[:, None].expand(-1, s, -1, -1)}


def test_gendered_ground_truth_bodies():
    from humr.engine.evaluation import EvaluationMetrics, _ground_truth

    batch, out = _eval_batch()
    out = _with_pred_joints(out, _ScaledBody(1.0))
    batch["gender"] = torch.tensor([1, 2, 1])
    bodies = {1: _ScaledBody(1.0), 2: _ScaledBody(1.5)}
    calls = []
    truth = _ground_truth(_StubModel(_ScaledBody(1.0)), batch, (),
                          gt_body=lambda g: calls.append(g) or bodies[g])
    metrics = EvaluationMetrics(with_vertices=False)
    metrics.update(batch, out, truth)
    res = metrics.compute()
    base = bodies[1].base
    centred = base - base[[1, 2]].mean(0)
    expected = 1000 * (0.5 * centred).norm(dim=-1).mean().item() / 3   # example 1 only is off
    assert sorted(calls) == [1, 2]                                      # one body per gender
    assert res["emdb/mpjpe_mode"] == pytest.approx(expected, rel=1e-9)
    plain = EvaluationMetrics(with_vertices=False)                      # no provider: own body
    plain.update(batch, out, _ground_truth(_StubModel(_ScaledBody(1.0)), batch, (), gt_body=None))
    assert plain.compute()["emdb/mpjpe_mode"] == pytest.approx(0.0, abs=1e-9)


def test_smplx_body_is_an_error_for_the_emdb_protocol():
    from humr.engine.evaluation import EvaluationMetrics, _ground_truth

    batch, out = _eval_batch()
    body = _ScaledBody(1.0, joints=22)
    out = _with_pred_joints(out, body)
    truth = _ground_truth(_StubModel(body), batch, (), gt_body=None)
    with pytest.raises(ValueError, match="protocol 'emdb' needs 24 joints"):
        EvaluationMetrics(with_vertices=False).update(batch, out, truth)
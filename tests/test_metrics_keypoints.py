"""Consistency2D and Spread3D against explicit Python loops."""
import numpy as np
import pytest
import torch

from humr.metrics import Consistency2D, Spread3D
from humr.metrics import functional as F


def test_consistency_2d_matches_loop():
    rng = np.random.default_rng(3)
    B, S = 4, 6
    pred, gt = rng.uniform(-1, 1, (B, S, 17, 2)), rng.uniform(-1, 1, (B, 17, 2))
    conf = rng.uniform(0, 1, (B, 17))
    metric = Consistency2D()
    metric.update(torch.tensor(pred), torch.tensor(gt), torch.tensor(conf))
    out = metric.compute()
    mode, samples = [], []
    for b in range(B):
        for k in range(17):
            if conf[b, k] > 0.5:
                px = [np.hypot(*(pred[b, s, k] - gt[b, k])) * 128 for s in range(S)]
                mode.append(px[0])
                samples.append(sum(px[1:]) / (S - 1))
    np.testing.assert_allclose(out["kp2d_mode"].item(), np.mean(mode), rtol=1e-12)
    np.testing.assert_allclose(out["kp2d_samples"].item(), np.mean(samples), rtol=1e-12)


def test_consistency_2d_threshold_and_resolution():
    pred = torch.zeros(1, 2, 17, 2)
    pred[0, :, 0, 0] = 0.5                     # joint 0 off by 0.5 crop units
    conf = torch.zeros(1, 17)
    conf[0, 0] = 0.49                          # below 0.5 is not visible ...
    conf[0, 1] = 0.5                           # ... exactly 0.5 is (humr.core.visibility)
    out = F.consistency_2d(pred, torch.zeros(1, 17, 2), conf)
    assert out["kp2d_mode"].item() == 0.0
    conf[0, 0] = 0.5
    assert F.consistency_2d(pred, torch.zeros(1, 17, 2), conf)["kp2d_mode"].item() == pytest.approx(
        0.5 * 256 / 2 / 2)                     # joints 0 (64 px) and 1 (0 px) visible
    out = F.consistency_2d(pred, torch.zeros(1, 17, 2), conf, crop_pixels=100)
    assert out["kp2d_mode"].item() == pytest.approx(0.5 * 50 / 2)


@pytest.mark.parametrize("include_mode", [True, False])
def test_spread_3d_matches_loop(include_mode):
    """Official: the spread of all S hypotheses (mode included); option: random ones only."""
    rng = np.random.default_rng(4)
    B, S = 3, 7
    kp, conf = rng.normal(size=(B, S, 17, 3)) * 0.1, rng.uniform(0, 1, (B, 17))
    conf[0, :3] = 0.5                          # exactly 0.5 is visible
    out = F.spread_3d(torch.tensor(kp), torch.tensor(conf), include_mode=include_mode)
    groups = {"spread_visible": [], "spread_invisible": []}
    first = 0 if include_mode else 1
    for b in range(B):
        for k in range(17):
            pts = kp[b, first:, k]
            mean = pts.mean(0)
            d = np.mean([np.linalg.norm(p - mean) for p in pts]) * 1000
            groups["spread_visible" if conf[b, k] >= 0.5 else "spread_invisible"].append(d)
    for key, vals in groups.items():
        np.testing.assert_allclose(out[key].item(), np.mean(vals), rtol=1e-12)
    kp[:, 0] += 10.0                           # moving the mode matters only when included
    moved = F.spread_3d(torch.tensor(kp), torch.tensor(conf), include_mode=include_mode)
    assert torch.allclose(moved["spread_visible"], out["spread_visible"]) != include_mode


def test_empty_group_is_nan():
    out = Spread3D()(torch.randn(2, 3, 17, 3), torch.ones(2, 17))
    assert torch.isnan(out["spread_invisible"]) and torch.isfinite(out["spread_visible"])


def test_keypoint_shape_errors():
    with pytest.raises(ValueError, match=r"pred_kp2d needs S >= 2"):
        F.consistency_2d(torch.zeros(1, 1, 17, 2), torch.zeros(1, 17, 2), torch.ones(1, 17))
    with pytest.raises(ValueError, match=r"gt_kp2d must have shape \(B, 17, 2\)"):
        F.consistency_2d(torch.zeros(1, 3, 17, 2), torch.zeros(1, 24, 2), torch.ones(1, 17))
    with pytest.raises(ValueError, match=r"confidence must have shape \(B, 17\) with B = 2"):
        F.spread_3d(torch.zeros(2, 3, 17, 3), torch.ones(3, 17))
    with pytest.raises(ValueError, match="pred_kp3d contains NaN"):
        F.spread_3d(torch.full((2, 3, 17, 3), float("nan")), torch.ones(2, 17))

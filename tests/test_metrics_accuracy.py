"""HypothesisAccuracy / functional accuracy against scipy Procrustes and Python loops."""
import numpy as np
import pytest
import torch
from scipy.linalg import orthogonal_procrustes
from scipy.spatial.transform import Rotation

from humr.metrics import HypothesisAccuracy
from humr.metrics import functional as F
from humr.metrics.protocols import get_protocol

# written out here from the official validation_step, independent of humr.metrics.protocols:
# 3DPW: H36M-17 joints, root = H36M pelvis (joint 0), evaluated on H36M_TO_J14;
# EMDB: 24 SMPL joints, root = mean of joints 1 and 2, all evaluated.
ROOTS = {"3dpw": (0,), "emdb": (1, 2)}
EVAL = {"3dpw": [6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 8, 10], "emdb": list(range(24))}
NUM_JOINTS = {"3dpw": 17, "emdb": 24}


def _scipy_pa_mpjpe(pred, gt):
    """Similarity Procrustes via scipy (rotation from orthogonal_procrustes, optimal scale)."""
    a, b = pred - pred.mean(0), gt - gt.mean(0)
    rot, sv_sum = orthogonal_procrustes(a, b)
    aligned = (sv_sum / (a ** 2).sum()) * a @ rot + gt.mean(0)
    return 1000 * np.linalg.norm(aligned - gt, axis=-1).mean()


def _noisy_copies(gt, num, noise, rng):
    """Rotated, scaled, shifted, noisy copies of gt (B, K, 3) -> (B, num, K, 3) (no reflection)."""
    out = np.empty((gt.shape[0], num) + gt.shape[1:])
    for b in range(gt.shape[0]):
        for s in range(num):
            rot = Rotation.random(random_state=rng).as_matrix()
            out[b, s] = rng.uniform(0.8, 1.2) * gt[b] @ rot.T + rng.normal(size=3)
            out[b, s] += noise * rng.normal(size=gt.shape[1:])
    return out


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_pa_mpjpe_matches_scipy(dtype):
    rng = np.random.default_rng(1)
    gt = rng.normal(size=(6, 14, 3)) * 0.3
    pred = _noisy_copies(gt, 1, 0.02, rng)[:, 0]
    ours = F.pa_mpjpe(torch.tensor(pred, dtype=dtype), torch.tensor(gt, dtype=dtype))
    ref = [_scipy_pa_mpjpe(pred[b], gt[b]) for b in range(6)]
    assert ours.dtype == dtype
    np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-4 if dtype == torch.float32 else 1e-9)


@pytest.mark.parametrize("protocol", ["3dpw", "emdb"])
def test_mode_and_min_of_n_match_loop(protocol):
    rng = np.random.default_rng(2)
    B, S, K, V = 3, 5, NUM_JOINTS[protocol], 30
    gt = rng.normal(size=(B, K, 3)) * 0.3
    pred = _noisy_copies(gt, S, 0.05, rng)
    gt_v, pred_v = rng.normal(size=(B, V, 3)), rng.normal(size=(B, S, V, 3))
    t = lambda x: torch.tensor(x, dtype=torch.float64)
    out = F.hypothesis_accuracy(t(pred), t(gt), protocol, t(pred_v), t(gt_v))

    errors = {m: np.zeros((B, S)) for m in ("mpjpe", "pa_mpjpe", "pve")}
    roots, ev = ROOTS[protocol], EVAL[protocol]
    for b in range(B):
        gt_root = np.mean([gt[b, r] for r in roots], axis=0)
        for s in range(S):
            root = np.mean([pred[b, s, r] for r in roots], axis=0)
            errors["mpjpe"][b, s] = 1000 * np.mean(
                [np.linalg.norm((pred[b, s, k] - root) - (gt[b, k] - gt_root)) for k in ev])
            errors["pve"][b, s] = 1000 * np.mean(
                [np.linalg.norm((pred_v[b, s, v] - root) - (gt_v[b, v] - gt_root)) for v in range(V)])
            errors["pa_mpjpe"][b, s] = _scipy_pa_mpjpe(pred[b, s, ev], gt[b, ev])
    for m, err in errors.items():
        np.testing.assert_allclose(out[f"{m}_mode"].item(), err[:, 0].mean(), rtol=1e-9)
        best = np.mean([min(err[b]) for b in range(B)])
        np.testing.assert_allclose(out[f"{m}_min"].item(), best, rtol=1e-9)
        assert out[f"{m}_min"] < out[f"{m}_mode"]   # S = 5 noisy copies: the best beats the mode


def test_3dpw_root_is_the_h36m_pelvis():
    """A prediction equal to the ground truth except a pelvis 10 mm off: every LSP joint is
    10 mm off after centring (the mean of the LSP hips would have given 0)."""
    gt = torch.randn(2, 17, 3, dtype=torch.float64)
    pred = gt[:, None].clone()
    pred[:, :, 0, 0] += 0.010
    out = F.hypothesis_accuracy(pred, gt, "3dpw")
    assert out["mpjpe_mode"].item() == pytest.approx(10.0, rel=1e-9)
    assert out["pa_mpjpe_mode"].item() < 1e-6                # the LSP joints themselves agree


def test_pve_only_with_vertices_and_averaged_over_those_examples():
    gt = torch.randn(4, 17, 3)
    pred = gt[:, None] + 0.01 * torch.randn(4, 3, 17, 3)
    gt_v = torch.randn(4, 20, 3)
    pred_v = gt_v[:, None] + 0.05 * torch.randn(4, 3, 20, 3)
    metric = HypothesisAccuracy("3dpw")
    metric.update(pred[:2], gt[:2])
    assert "pve_mode" not in metric.compute()
    metric.update(pred[2:], gt[2:], pred_v[2:], gt_v[2:])
    out = metric.compute()
    ref = F.hypothesis_accuracy(pred[2:], gt[2:], "3dpw", pred_v[2:], gt_v[2:])
    full = F.hypothesis_accuracy(pred, gt, "3dpw")
    torch.testing.assert_close(out["pve_min"], ref["pve_min"])
    torch.testing.assert_close(out["mpjpe_mode"], full["mpjpe_mode"])


def test_translation_of_prediction_is_removed_by_the_pelvis():
    shift = torch.tensor([1.0, -2.0, 5.0], dtype=torch.float64)
    gt, gt_v = torch.randn(2, 24, 3, dtype=torch.float64), torch.randn(2, 40, 3, dtype=torch.float64)
    out = F.hypothesis_accuracy(gt[:, None] + shift, gt, "emdb", gt_v[:, None] + shift, gt_v)
    for key in ("mpjpe_mode", "pa_mpjpe_mode", "pve_mode"):
        assert out[key].abs() < 1e-9, key
    moved = F.hypothesis_accuracy(gt[:, None], gt, "emdb", gt_v[:, None] + shift, gt_v)
    assert moved["pve_mode"] > 1000   # vertices follow the joints' pelvis, not their own centre


def test_protocol_errors_are_clear():
    with pytest.raises(ValueError, match=r"protocol '3dpw' expects K = 17"):
        F.hypothesis_accuracy(torch.zeros(1, 2, 24, 3), torch.zeros(1, 24, 3), "3dpw")
    with pytest.raises(KeyError, match="known protocols: 3dpw, emdb"):
        HypothesisAccuracy(protocol="h36m")
    with pytest.raises(ValueError, match=r"gt_joints must have shape \(B, K, 3\)"):
        F.hypothesis_accuracy(torch.zeros(2, 2, 17, 3), torch.zeros(2, 13, 3))
    with pytest.raises(ValueError, match="given together"):
        F.hypothesis_accuracy(torch.zeros(1, 2, 17, 3), torch.zeros(1, 17, 3), "3dpw",
                              pred_vertices=torch.zeros(1, 2, 5, 3))
    with pytest.raises(ValueError, match="pred_vertices must have shape"):
        F.hypothesis_accuracy(torch.zeros(1, 2, 17, 3), torch.zeros(1, 17, 3), "3dpw",
                              torch.zeros(1, 3, 5, 3), torch.zeros(1, 5, 3))
    for name, roots in ROOTS.items():
        assert get_protocol(name).root_indices == roots

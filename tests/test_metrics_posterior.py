"""Energy distance and PosteriorDistance against brute-force loops."""
import numpy as np
import pytest
import torch

from humr.metrics import PosteriorDistance
from humr.metrics import functional as F


def _brute_energy(x, y):
    exy = np.mean([np.linalg.norm(a - b) for a in x for b in y])
    exx = np.mean([np.linalg.norm(a - b) for a in x for b in x])
    eyy = np.mean([np.linalg.norm(a - b) for a in y for b in y])
    return 2 * exy - exx - eyy


def test_energy_distance_matches_brute_force():
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(2, 7, 3)), rng.normal(size=(2, 5, 3)) + 0.4
    ours = F.energy_distance(torch.tensor(x), torch.tensor(y))
    np.testing.assert_allclose(ours.numpy(), [_brute_energy(x[i], y[i]) for i in range(2)], rtol=1e-12)


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
def test_energy_distance_zero_for_identical_and_positive_for_shifted(dtype, tol):
    x = torch.randn(4, 50, 3, dtype=dtype) * 0.05
    assert F.energy_distance(x, x).abs().max() < tol
    assert (F.energy_distance(x, x + 0.05) > 0.01).all()


def test_energy_distance_weights_equal_dropping_points():
    x, y = torch.randn(6, 3, dtype=torch.float64), torch.randn(9, 3, dtype=torch.float64)
    keep = torch.tensor([1, 0, 1, 1, 0, 1, 1, 1, 0], dtype=torch.float64)
    torch.testing.assert_close(F.energy_distance(x, y, y_weights=keep),
                               F.energy_distance(x, y[keep.bool()]))


def test_posterior_distance_matches_loop():
    rng = np.random.default_rng(7)
    B, S, P, K = 2, 5, 6, 4
    pred, post = rng.normal(size=(B, S, K, 3)) * 0.1, rng.normal(size=(B, P, K, 3)) * 0.1
    occluded = rng.uniform(size=(B, K)) < 0.5
    valid = np.ones((B, P), dtype=bool)
    valid[1, 4:] = False
    metric = PosteriorDistance()
    metric.update(torch.tensor(pred), torch.tensor(post), torch.tensor(occluded), torch.tensor(valid))
    out = metric.compute()
    groups = {"energy_occluded": [], "energy_visible": []}
    for b in range(B):
        for k in range(K):
            ed = 1000 * _brute_energy(pred[b, 1:, k], post[b, valid[b], k])
            groups["energy_occluded" if occluded[b, k] else "energy_visible"].append(ed)
    for key, vals in groups.items():
        np.testing.assert_allclose(out[key].item(), np.mean(vals), rtol=1e-10)


def test_posterior_without_valid_samples_is_skipped_and_errors():
    pred, post = torch.randn(2, 4, 3, 3), torch.randn(2, 5, 3, 3)
    occ = torch.tensor([[True, False, False]] * 2)
    valid = torch.tensor([[True] * 5, [False] * 5])
    out = F.posterior_distance(pred, post, occ, valid)
    ref = F.posterior_distance(pred[:1], post[:1], occ[:1])
    for key in out:
        torch.testing.assert_close(out[key], ref[key])
    with pytest.raises(ValueError, match=r"posterior_joints must have shape \(B, P, K, 3\) with B = 2"):
        F.posterior_distance(pred, post[:1], occ)
    with pytest.raises(TypeError, match="occluded must be a bool tensor"):
        F.posterior_distance(pred, post, occ.float())
    with pytest.raises(ValueError, match="x .* and y .* need equal leading dimensions"):
        F.energy_distance(torch.zeros(2, 3, 3), torch.zeros(2, 3, 2))

"""Energy distance and PosteriorDistance against brute-force loops."""
import numpy as np
import pytest
import torch

from humr.losses import MMDLoss
from humr.metrics import PosteriorDistance
from humr.metrics import functional as F


def _brute_energy(x, y):
    exy = np.mean([np.linalg.norm(a - b) for a in x for b in y])
    exx = np.mean([np.linalg.norm(a - b) for a in x for b in x])
    eyy = np.mean([np.linalg.norm(a - b) for a in y for b in y])
    return 2 * exy - exx - eyy


def test_energy_is_the_biased_energy_mmd():
    """One implementation: the metric's energy distance is MMDLoss("energy", "biased")."""
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(2, 7, 3)), rng.normal(size=(2, 5, 3)) + 0.4
    ours = MMDLoss("energy", estimator="biased")(torch.tensor(x), torch.tensor(y))
    np.testing.assert_allclose(ours.numpy(), [_brute_energy(x[i], y[i]) for i in range(2)], rtol=1e-12)


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

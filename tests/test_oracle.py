"""Oracle rows: camera recovery, stored-set weights, the energy floor against Monte Carlo, and
the oracle of a hand-made posterior with known answers (brute-force MPJPE, pairwise distances)."""
import numpy as np
import pytest
import torch

from humr.data.oracle import (
    camera_translation,
    energy_floor,
    format_oracle,
    oracle_metrics,
    post_weights,
    posterior_draws,
    posterior_halves,
)
from humr.data.synthetic import SynthConfig, make_example
from humr.geometry import axis_angle_to_matrix, perspective_project
from humr.losses import MMDLoss


@pytest.fixture(scope="module")
def body(body_dir):
    from humr.body import BodyModel

    return BodyModel(body_dir, dtype=torch.float64)


def test_camera_translation_recovers_the_projection():
    gen = torch.Generator().manual_seed(0)
    pts = torch.randn(3, 17, 3, generator=gen, dtype=torch.float64) * 0.5
    t = torch.tensor([[0.3, -0.2, 5.0], [-1.0, 0.5, 8.0], [0.0, 0.0, 3.0]], dtype=torch.float64)
    focal = torch.tensor([[900.0, 900.0], [1200.0, 1100.0], [600.0, 600.0]], dtype=torch.float64)
    principal = torch.tensor([[320.0, 240.0]] * 3, dtype=torch.float64)
    uv = perspective_project(pts, focal, principal, t)
    torch.testing.assert_close(camera_translation(pts, uv, focal, principal), t)


def test_weights_of_the_cyclic_stored_set():
    count = torch.tensor([1, 3, 4, 5])
    got = post_weights(count, 8)
    for c, w in zip(count.tolist(), got):
        ref = np.bincount(np.arange(8) % c, minlength=8) / 8.0       # rows 0..c-1 repeated
        np.testing.assert_allclose(w.numpy(), ref)


def test_draws_and_halves():
    gen = torch.Generator().manual_seed(0)
    count = torch.tensor([1, 2, 6])
    idx = posterior_draws(count, 500, gen)
    assert (idx[0] == 0).all() and (idx[1] == 1).all()            # GT alone / the one non-GT
    assert set(idx[2].tolist()) == {1, 2, 3, 4, 5}                  # never the GT (row 0)
    first, second = posterior_halves(count, 8, gen)
    assert first[0].tolist() == second[0].tolist() == [True] + [False] * 7
    assert not (first[1:] & second[1:]).any()
    assert first.sum(1).tolist() == [1, 1, 3] and second.sum(1).tolist() == [1, 1, 3]
    assert not (first | second)[:, 6:].any()                        # repeats never used


def test_energy_floor_matches_monte_carlo():
    """E[ED_V(n draws, weighted stored set)] over many independent trials, for a 3D Gaussian."""
    gen = torch.Generator().manual_seed(1)
    P, c, n, trials = 16, 11, 30, 4000
    count = torch.tensor([c])
    weights = post_weights(count, P)
    cycle = torch.arange(P) % c
    stored = torch.randn(trials, c, 3, generator=gen, dtype=torch.float64)[:, cycle]  # (T, P, 3)
    draws = torch.randn(trials, n, 3, generator=gen, dtype=torch.float64)
    mc = MMDLoss("energy", estimator="biased")(draws, stored).mean()
    # the floor is an unbiased estimate per trial: its mean over the trials
    distinct = (torch.arange(P) < c)[None].expand(trials, -1)
    floor = energy_floor(stored[:, None], distinct, weights.expand(trials, -1), n).mean()
    assert float(floor) == pytest.approx(float(mc), rel=0.05)
    # and the closed form: delta = E|X - X'| of a standard 3D Gaussian = 4 / sqrt(pi)
    expected = 4 / np.sqrt(np.pi) * (1 / n + float((weights ** 2).sum()))
    assert float(mc) == pytest.approx(expected, rel=0.05)


def _joints(body, pose, betas):
    rot = axis_angle_to_matrix(torch.as_tensor(pose, dtype=torch.float64).reshape(-1, 24, 3))
    return body(rot, torch.as_tensor(betas, dtype=torch.float64).expand(len(rot), -1))["joints"]


def _mpjpe(a, b):
    """Brute force: pelvis-relative MPJPE (emdb: 24 joints, root = mean of the hips 1, 2), mm."""
    a, b = a - a[[1, 2]].mean(0), b - b[[1, 2]].mean(0)
    return 1e3 * float((a - b).norm(dim=-1).mean())


def _hand_made_batch(body):
    """Two copies of one synthetic example: example 0's posterior is the ground truth alone,
    example 1's the ground truth and two other left-elbow rotations (stored as 0 1 2 0); the
    left wrist is hidden. Returns (batch, the three distinct poses (3, 72), betas)."""
    cfg = SynthConfig(posterior_samples=4, test_posterior_samples=4, candidates=16, max_rounds=1,
                      body_model="unused")
    ex = make_example(0, "test", 0, cfg, body)
    gt = torch.from_numpy(ex["pose"]).double()
    bent = []
    for angle in (0.6, -0.9):                       # two other left-elbow rotations
        p = gt.clone().reshape(24, 3)
        p[18] = torch.tensor([0.0, angle, 0.0])
        bent.append(p.reshape(-1))
    post = torch.stack([torch.stack([gt] * 4), torch.stack([gt, bent[0], bent[1], gt])])
    batch = {k: torch.as_tensor(np.asarray(v))[None].expand(2, *np.shape(v)).clone()
             for k, v in ex.items() if k not in ("img", "posterior", "posterior_count")}
    batch.update(posterior=post.float(), posterior_count=torch.tensor([1, 3]))
    batch["cond_kp"][:, :, 2] = 0.95
    batch["cond_kp"][:, 9, 2] = 0.1                # the left wrist (moved by the elbow) is hidden
    return batch, torch.stack([gt, *bent]), ex["betas"]


def test_oracle_of_a_hand_made_posterior(body):
    batch, poses, betas = _hand_made_batch(body)
    out = oracle_metrics(batch, body, num_samples=50, seed=0)
    j = _joints(body, poses, betas)
    errs = [_mpjpe(j[1], j[0]), _mpjpe(j[2], j[0])]
    # example 0 scores 0; example 1's best of 50 draws of {1, 2} is the better one (both drawn)
    assert out["emdb/mpjpe_min"] == pytest.approx(min(errs) / 2, abs=1e-3)
    assert min(errs) > 1
    # mode-free accuracy: a random draw of the two, averaged over 50 draws (binomial slack)
    assert out["emdb/mpjpe_mean"] == pytest.approx(np.mean(errs) / 2, abs=0.25 * abs(errs[0] - errs[1]))
    # the same draws with the mean shape (betas 0), against the ground truth's own shape
    flat = _joints(body, poses, np.zeros_like(betas))
    blind = [_mpjpe(flat[0], j[0]), min(_mpjpe(flat[1], j[0]), _mpjpe(flat[2], j[0]))]
    assert out["emdb/mpjpe_min_mean_shape"] == pytest.approx(np.mean(blind), abs=1e-3)
    assert blind[0] > 5                                # the example's shape moves its joints
    # floor: delta = mean distance of the 3 distinct samples (pairs), times (1/49 + sum w^2)
    rel = j - j[:, [1, 2]].mean(1, keepdim=True)
    moved = (rel - rel.mean(0)).norm(dim=-1).amax(0) > 1e-3          # occluded joints
    assert moved[18:].any() and not moved[:16].any()
    delta = torch.stack([(rel[a] - rel[b]).norm(dim=-1) for a, b in ((0, 1), (0, 2), (1, 2))]
                        ).mean(0)
    w2 = (2 / 4) ** 2 + 2 * (1 / 4) ** 2
    floor = 1e3 * delta[moved] * (1 / 49 + w2)
    assert out["energy_occluded"] == pytest.approx(float(floor.mean()), rel=1e-4)
    assert out["energy_visible"] == pytest.approx(0.0, abs=1e-6)
    # with the mean shape, a visible joint's draws all sit at the flat body's joint and its
    # stored samples at the ground truth's: ED = 2 |flat - truth| (root-relative), pooled
    # over the visible (example, joint) pairs: 24 of example 0, the unmoved ones of example 1
    flat_rel = flat - flat[:, [1, 2]].mean(1, keepdim=True)
    gap = 2e3 * (flat_rel[0] - rel[0]).norm(dim=-1)                  # (24,)
    visible_mean = float(torch.cat([gap, gap[~moved]]).mean())
    assert out["energy_visible_mean_shape"] == pytest.approx(visible_mean, rel=1e-6)
    assert out["energy_occluded_mean_shape"] > out["energy_occluded"] + 5
    # the 2D draws of visible joints stay on the ground truth (GT camera recovered)
    assert out["kp2d_samples"] == pytest.approx(0.0, abs=1e-3)
    assert out["spread_invisible"] > 0 and out["spread_visible"] >= 0
    text = format_oracle({"emdb/mpjpe_min": 99.0}, out)
    assert "oracle" in text and "99.000" in text and "floor" in text
    shape_line = next(x for x in text.splitlines() if "mean body shape" in x)
    assert "emdb/mpjpe_min" in shape_line and f"{out['emdb/mpjpe_min_mean_shape']:.3f}" in shape_line


def test_oracle_with_an_assumed_shape(body):
    """``assumed_betas`` poses the shape rows' draws: the true shape gives the true-shape rows;
    another shape gives the brute-force errors of the draws posed with it."""
    batch, poses, betas = _hand_made_batch(body)
    true = oracle_metrics(batch, body, num_samples=50, seed=0,
                          assumed_betas=batch["betas"].double())
    assert true["emdb/mpjpe_min_mean_shape"] == pytest.approx(true["emdb/mpjpe_min"], abs=1e-9)
    assert true["energy_visible_mean_shape"] == pytest.approx(0.0, abs=1e-6)
    other = torch.as_tensor(betas, dtype=torch.float64) * 1.5 + 0.3
    out = oracle_metrics(batch, body, num_samples=50, seed=0,
                         assumed_betas=other[None].expand(2, -1))
    j, posed = _joints(body, poses, betas), _joints(body, poses, other)
    expected = [_mpjpe(posed[0], j[0]), min(_mpjpe(posed[1], j[0]), _mpjpe(posed[2], j[0]))]
    assert out["emdb/mpjpe_min_mean_shape"] == pytest.approx(np.mean(expected), abs=1e-3)
    assert min(expected) > 5
    assert out["emdb/mpjpe_min"] == pytest.approx(true["emdb/mpjpe_min"])   # true rows unmoved
    with pytest.raises(ValueError, match="assumed_betas"):
        oracle_metrics(batch, body, num_samples=5, assumed_betas=torch.zeros(2, 3))

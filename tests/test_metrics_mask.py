"""MaskPlausibility against scipy's exact EDT, brute force and hand-made masks."""
import numpy as np
import pytest
import torch
from scipy.ndimage import distance_transform_edt

from humr.metrics import MaskPlausibility
from humr.metrics import functional as F


def _hand_masks():
    masks = np.zeros((3, 12, 12), dtype=np.uint8)
    masks[0, 3:7, 2:5] = 1                     # a rectangle
    masks[1, 10, 1] = masks[1, 0, 11] = 1      # two single pixels in corners
    masks[2, 2:10, 6] = 1                      # a vertical bar plus a blob
    masks[2, 8:11, 1:3] = 1
    return masks


def test_distance_map_matches_scipy_and_brute_force():
    masks = _hand_masks()
    ours = F.mask_distance_map(torch.tensor(masks), torch.float64).numpy()
    for m, d in zip(masks, ours):
        np.testing.assert_allclose(d, distance_transform_edt(m == 0))
        on = np.argwhere(m > 0)
        for r, c in [(0, 0), (11, 11), (5, 3), (7, 9)]:
            assert d[r, c] == pytest.approx(np.min(np.hypot(*(on - [r, c]).T)))


def test_min_dist_inside_crop_matches_scipy_edt():
    masks = _hand_masks()
    rng = np.random.default_rng(5)
    R = masks.shape[-1]
    pts = rng.uniform(-1, 1, (3, 40, 2))
    inside, dist = F.points_to_mask(torch.tensor(pts), torch.tensor(masks),
                                    F.mask_distance_map(torch.tensor(masks), torch.float64))
    for b in range(3):
        edt = distance_transform_edt(masks[b] == 0)
        for n in range(40):
            col, row = (int(v) for v in np.floor((pts[b, n] + 1) / 2 * R))
            assert dist[b, n].item() == pytest.approx(edt[row, col])
            assert bool(inside[b, n]) == bool(masks[b, row, col])


def test_points_outside_crop_rule():
    mask = torch.zeros(1, 10, 10, dtype=torch.bool)
    mask[0, 4, 0] = True                       # pixel (row 4, col 0)
    pts = torch.tensor([[[-1.2, -0.1],         # 1 px left of the crop, row 4 -> 0 + 1
                         [-0.9, 1.4],          # 2 px below, col 0 -> clamped row 9: 5 + 2
                         [1.0, -0.1]]])        # exactly on the right border: outside
    inside, dist = F.points_to_mask(pts, mask, F.mask_distance_map(mask))
    assert inside.tolist() == [[False, False, False]]
    torch.testing.assert_close(dist, torch.tensor([[1.0, 7.0, 9.0]]))


def test_perc_in_and_min_dist_known_counts():
    R = 16
    mask = torch.zeros(2, R, R, dtype=torch.uint8)
    mask[:, 4:8, 4:8] = 1
    centre = lambda col, row: [(col + 0.5) / R * 2 - 1, (row + 0.5) / R * 2 - 1]
    pred = torch.zeros(2, 6, 17, 2)
    # example 0, joint 3 (invisible): 3 of 5 random hypotheses inside, others 2 and 5 px away
    spots = [(5, 5), (4, 7), (7, 4), (9, 5), (5, 12)]
    for s, (c, r) in enumerate(spots, start=1):
        pred[0, s, 3] = torch.tensor(centre(c, r))
    pred[0, 0, 3] = torch.tensor(centre(0, 0))   # the mode is excluded
    pred[0, :, 4] = torch.tensor(centre(15, 15)) # joint 4 is visible: ignored
    pred[1] = torch.tensor(centre(0, 0))         # example 1 is invalid: ignored
    invisible = torch.zeros(2, 17, dtype=torch.bool)
    invisible[:, 3] = True
    metric = MaskPlausibility()
    metric.update(pred, mask, invisible, torch.tensor([True, False]))
    out = metric.compute()
    assert out["perc_in"].item() == pytest.approx(100 * 3 / 5)
    assert out["min_dist"].item() == pytest.approx((2 + 5) / 5)


def test_skips_invalid_and_empty_masks():
    pred = torch.rand(3, 4, 17, 2) * 2 - 1
    mask = torch.zeros(3, 8, 8, dtype=torch.bool)
    mask[0, 2:5, 2:5] = True
    mask[2, 1:3, :] = True
    invisible = torch.ones(3, 17, dtype=torch.bool)
    valid = torch.tensor([True, True, False])  # example 1 has an empty mask, 2 is invalid
    out = F.mask_plausibility(pred, mask, invisible, valid)
    ref = F.mask_plausibility(pred[:1], mask[:1], invisible[:1])
    for key in out:
        torch.testing.assert_close(out[key], ref[key])
    nothing = F.mask_plausibility(pred[1:2], mask[1:2], invisible[1:2])
    assert torch.isnan(nothing["perc_in"])


def test_mask_input_errors():
    pred, mask = torch.zeros(2, 3, 17, 2), torch.ones(2, 8, 8, dtype=torch.bool)
    with pytest.raises(TypeError, match="invisible must be a bool tensor"):
        F.mask_plausibility(pred, mask, torch.ones(2, 17))
    with pytest.raises(ValueError, match=r"mask must have shape \(B, H, W\) with B = 2"):
        F.mask_plausibility(pred, mask[:1], torch.ones(2, 17, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"mask_valid must have shape \(B\)"):
        F.mask_plausibility(pred, mask, torch.ones(2, 17, dtype=torch.bool), torch.ones(2, 1, dtype=torch.bool))

"""MaskPlausibility (official convention) against brute force and hand-made masks."""
import numpy as np
import pytest
import torch

from humr.metrics import MaskPlausibility
from humr.metrics import functional as F


def _hand_masks():
    masks = np.zeros((3, 12, 12), dtype=np.uint8)
    masks[0, 3:7, 2:5] = 1                     # a rectangle
    masks[1, 10, 1] = masks[1, 0, 11] = 1      # two single pixels in corners
    masks[2, 2:10, 6] = 1                      # a vertical bar plus a blob
    masks[2, 8:11, 1:3] = 1
    return masks


def test_points_mask_distance_matches_brute_force():
    """Official rule: q = (u + 1) R / 2, Euclidean distance to the nearest mask pixel index
    (x = column, y = row), 0 below 0.71 px; points off the crop are measured the same way."""
    masks = _hand_masks()
    rng = np.random.default_rng(5)
    R = masks.shape[-1]
    pts = rng.uniform(-1.3, 1.3, (3, 60, 2))
    dist = F.points_mask_distance(torch.tensor(pts), torch.tensor(masks))
    for b in range(3):
        on = np.argwhere(masks[b] > 0)[:, ::-1]
        q = (pts[b] + 1) * R / 2
        ref = np.sqrt(((q[:, None] - on[None]) ** 2).sum(-1)).min(1)
        ref[ref < 0.71] = 0
        np.testing.assert_allclose(dist[b].numpy(), ref, atol=1e-9)


def test_tolerance_and_pixel_convention_by_hand():
    mask = torch.zeros(1, 10, 10, dtype=torch.bool)
    mask[0, 4, 0] = True                       # pixel (x 0, y 4)
    q = torch.tensor([[[0.5, 4.5], [0.0, 4.71], [-1.0, 4.0], [0.0, 6.0]]])
    dist = F.points_mask_distance(q / 5 - 1, mask)           # u = q * 2 / R - 1
    torch.testing.assert_close(dist, torch.tensor([[0.0, 0.71, 1.0, 2.0]]))


def test_perc_in_and_min_dist_known_counts():
    R = 16
    mask = torch.zeros(2, R, R, dtype=torch.uint8)
    mask[:, 4:8, 4:8] = 1                                    # pixel indices 4..7
    at = lambda x, y: [x / R * 2 - 1, y / R * 2 - 1]          # crop point of pixel space (x, y)
    pred = torch.zeros(2, 6, 17, 2)
    # example 0, joint 3 (invisible): mode + 5 random; inside: (5,5), (4,7), (7.5,4); off: 2, 5 px
    spots = [(0, 0), (5, 5), (4, 7), (7.5, 4), (9, 5), (5, 12)]
    for s, (x, y) in enumerate(spots):
        pred[0, s, 3] = torch.tensor(at(x, y))
    pred[0, :, 4] = torch.tensor(at(15, 15))     # joint 4 is visible: ignored
    pred[1] = torch.tensor(at(0, 0))             # example 1 is invalid: ignored
    invisible = torch.zeros(2, 17, dtype=torch.bool)
    invisible[:, 3] = True
    metric = MaskPlausibility()
    metric.update(pred, mask, invisible, torch.tensor([True, False]))
    out = metric.compute()
    mode = np.hypot(4, 4)                        # the mode (0, 0) is 4 * sqrt(2) px from (4, 4)
    assert out["perc_in"].item() == pytest.approx(100 * 3 / 6)
    assert out["min_dist"].item() == pytest.approx((mode + 2 + 5) / 6)
    samples = F.mask_plausibility(pred, mask, invisible, torch.tensor([True, False]), include_mode=False)
    assert samples["perc_in"].item() == pytest.approx(100 * 3 / 5)
    assert samples["min_dist"].item() == pytest.approx((2 + 5) / 5)


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
    with pytest.raises(ValueError, match=r"mask must have shape \(B, R, R\) with B = 2"):
        F.mask_plausibility(pred, mask[:1], torch.ones(2, 17, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"mask_valid must have shape \(B\)"):
        F.mask_plausibility(pred, mask, torch.ones(2, 17, dtype=torch.bool), torch.ones(2, 1, dtype=torch.bool))

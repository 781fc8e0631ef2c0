"""humr.heatmaps: sampling on hand-made maps, coordinates, confidences, precomputed sample keys."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.ndimage import distance_transform_edt

from humr.geometry import full_to_crop
from humr.heatmaps import (
    ARTICULATED_COCO,
    heatmap_to_crop,
    heatmap_to_full,
    max_confidence,
    precompute_samples,
    sample_heatmaps,
    uncertain_mask,
    visible_mask,
)

H, W = 64, 48


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_single_hot_pixel_non_square(dtype):
    hm = torch.zeros(2, 17, H, W, dtype=dtype)
    hm[1, 4, 60, 40] = 0.8            # row 60 exists only in the 64-row direction
    hm[0, 2, 3, 47] = 0.6
    xy, val = sample_heatmaps(hm, 50, generator=_gen())
    assert xy.shape == (2, 17, 50, 2) and val.shape == (2, 17, 50) and xy.dtype == dtype
    assert (xy[1, 4] == torch.tensor([40.0, 60.0], dtype=dtype)).all()
    assert (xy[0, 2] == torch.tensor([47.0, 3.0], dtype=dtype)).all()
    assert torch.allclose(val[1, 4], torch.tensor(0.8, dtype=dtype))
    assert torch.allclose(val[0, 2], torch.tensor(0.6, dtype=dtype))


def test_two_peaks_binomial_frequencies():
    hm = torch.zeros(1, H, W)
    hm[0, 5, 5], hm[0, 50, 30] = 0.3, 0.7
    hm[0, 20, 20] = 0.04                                       # below the threshold: never drawn
    n = 20000
    xy, val = sample_heatmaps(hm, n, threshold=0.05, generator=_gen(1))
    at_first = ((xy[0] == torch.tensor([5.0, 5.0])).all(-1)).sum().item()
    at_second = ((xy[0] == torch.tensor([30.0, 50.0])).all(-1)).sum().item()
    assert at_first + at_second == n
    p = 0.3
    assert abs(at_first - n * p) < 5 * math.sqrt(n * p * (1 - p))
    assert val[0].unique().tolist() == pytest.approx([0.3, 0.7])


def test_all_zero_map_is_padding_at_centre_and_nan_names_joint():
    hm = torch.rand(17, H, W) * 0.01                          # everything below 0.05
    hm[3, 10, 10] = 1.0
    xy, val = sample_heatmaps(hm, 7, generator=_gen())
    assert (val[0] == 0).all() and (val[3] == 1).all()
    assert torch.equal(heatmap_to_crop(xy[0], (H, W)), torch.zeros(7, 2))
    bad = torch.zeros(2, 17, H, W)
    bad[1, 11, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="joint index 11"):
        sample_heatmaps(bad, 3)
    with pytest.raises(ValueError, match="joint index 11"):
        max_confidence(bad)


def test_generator_repeatable():
    hm = torch.rand(17, H, W)
    a = sample_heatmaps(hm, 30, generator=_gen(5))
    b = sample_heatmaps(hm, 30, generator=_gen(5))
    assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_crop_and_full_coordinates():
    xs = torch.arange(W, dtype=torch.float64)
    ys = torch.arange(H, dtype=torch.float64)
    xy = torch.stack(torch.broadcast_tensors(xs[None, :], ys[:, None]), -1)  # (H, W, 2)
    crop = heatmap_to_crop(xy, (H, W))
    # pixel centres split [-1, 1] into W (resp. H) equal cells
    assert torch.allclose(crop[0, :, 0], torch.linspace(-1 + 1 / W, 1 - 1 / W, W, dtype=torch.float64))
    assert torch.allclose(crop[:, 0, 1], torch.linspace(-1 + 1 / H, 1 - 1 / H, H, dtype=torch.float64))
    center = torch.tensor([[320.0, 240.0], [50.0, 60.0]], dtype=torch.float64)
    box = torch.tensor([300.0, 80.0], dtype=torch.float64)
    pts = xy.reshape(1, 1, -1, 2).expand(2, 17, -1, -1)
    full = heatmap_to_full(pts, (H, W), center, box)
    back = full_to_crop(full.reshape(2, -1, 2), center, box).reshape(full.shape)
    assert torch.allclose(back, heatmap_to_crop(pts, (H, W)))
    assert torch.allclose(full[1, 0, 0], torch.tensor([50 + 40 * (-1 + 1 / W), 60 + 40 * (-1 + 1 / H)],
                                                      dtype=torch.float64))


def test_confidences_and_masks():
    hm = torch.rand(3, 17, H, W)
    conf = max_confidence(hm)
    assert torch.equal(conf, torch.from_numpy(hm.numpy().max(axis=(-2, -1))))
    c = torch.tensor([0.5, 0.51, 0.69, 0.7])
    assert visible_mask(c).tolist() == [False, True, True, True]
    assert uncertain_mask(c).tolist() == [True, True, True, False]
    assert ARTICULATED_COCO == (7, 8, 9, 10, 13, 14, 15, 16)


def test_precompute_samples_against_scipy():
    torch.manual_seed(3)
    R = 32
    hm = torch.rand(2, 17, H, W) ** 8                           # mostly below 0.05
    hm[:, 6] = 0.0                                              # one empty joint
    mask = torch.zeros(2, R, R, dtype=torch.uint8)
    mask[0, 5:20, 8:14] = 1
    mask[1, 25:, :4] = 1
    center = torch.tensor([[200.0, 150.0], [90.0, 300.0]])
    scale = torch.tensor([[1.2], [0.7]])
    out = precompute_samples(hm, center, scale, mask, n=150, min_conf=0.05, generator=_gen(2))
    assert out["hm_samples"].shape == (2, 17, 150, 2)
    vals = out["hm_values"]
    assert ((vals == 0) | (vals >= 0.05)).all() and (vals[:, 6] == 0).all() and (vals[:, 0] > 0).all()
    assert torch.equal(out["hm_max_conf"], hm.amax(dim=(-2, -1)))
    crop = full_to_crop(out["hm_samples"].reshape(2, -1, 2), center, 200 * scale[:, 0])
    for b in range(2):
        edt = distance_transform_edt(mask[b].numpy() == 0)
        col = np.floor((crop[b, :, 0].numpy() + 1) / 2 * R).astype(int)
        row = np.floor((crop[b, :, 1].numpy() + 1) / 2 * R).astype(int)
        expect = edt[row, col].reshape(17, 150)
        np.testing.assert_allclose(out["hm_samples_mask_dist"][b].numpy(), expect, atol=1e-5)
    single = precompute_samples(hm[1], center[1], scale[1], mask[1], n=4, generator=_gen(0))
    assert single["hm_samples"].shape == (17, 4, 2)
    no_mask = precompute_samples(hm[1], center[1], scale[1], None, n=4)
    assert (no_mask["hm_samples_mask_dist"] == 0).all()
    empty = precompute_samples(hm, center, scale, torch.zeros_like(mask), n=4)
    assert torch.isinf(empty["hm_samples_mask_dist"]).all()           # documented: inf
    with pytest.raises(ValueError, match="center"):
        precompute_samples(hm, center[0], scale, mask)

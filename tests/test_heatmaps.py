"""humr.heatmaps: sampling on hand-made maps, coordinates, confidences, precomputed sample keys."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from humr.geometry import full_to_crop
from humr.heatmaps import (
    ARTICULATED_COCO,
    heatmap_to_crop,
    heatmap_to_full,
    max_confidence,
    precompute_samples,
    sample_heatmaps,
    sample_stored,
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
    assert torch.equal(heatmap_to_crop(xy[0], (H, W), "centers"), torch.zeros(7, 2))
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


def _grid():
    xs = torch.arange(W, dtype=torch.float64)
    ys = torch.arange(H, dtype=torch.float64)
    return torch.stack(torch.broadcast_tensors(xs[None, :], ys[:, None]), -1)  # (H, W, 2)


def test_crop_coordinates_centers_convention():
    crop = heatmap_to_crop(_grid(), (H, W), "centers")
    # pixel centres split [-1, 1] into W (resp. H) equal cells
    assert torch.allclose(crop[0, :, 0], torch.linspace(-1 + 1 / W, 1 - 1 / W, W, dtype=torch.float64))
    assert torch.allclose(crop[:, 0, 1], torch.linspace(-1 + 1 / H, 1 - 1 / H, H, dtype=torch.float64))


def test_mmpose_transform_preds_by_hand():
    """mmpose transform_preds: x_full = x * w_box / W + cx - w_box / 2 (no half pixel), with the
    3:4 person box of height 200 * scale centred in the square crop."""
    center = torch.tensor([[320.0, 240.0]], dtype=torch.float64)
    box = torch.tensor([256.0], dtype=torch.float64)                # box 192 x 256 px
    xy = torch.tensor([[[[0.0, 0.0], [24.0, 32.0], [47.0, 63.0], [12.0, 8.0]]]],
                      dtype=torch.float64)                           # (1, 1, 4, 2)
    full = heatmap_to_full(xy, (H, W), center, box)
    # scale_x = 192 / 48 = 4 px per heatmap px, scale_y = 256 / 64 = 4
    expect = torch.tensor([[320 - 96, 240 - 128], [320, 240], [320 - 96 + 47 * 4, 240 - 128 + 63 * 4],
                           [320 - 96 + 48, 240 - 128 + 32]], dtype=torch.float64)
    assert torch.allclose(full[0, 0], expect)
    crop = heatmap_to_crop(_grid(), (H, W))
    assert crop[..., 0].min() == -0.75 and crop[0, 0].tolist() == [-0.75, -1.0]
    back = full_to_crop(full.reshape(1, -1, 2), center, box).reshape(full.shape)
    assert torch.allclose(back, heatmap_to_crop(xy, (H, W)))
    with pytest.raises(ValueError, match="convention"):
        heatmap_to_crop(xy, (H, W), "udp")


def test_sample_stored_without_replacement():
    idx = sample_stored(25, 150, 64, generator=_gen(0))
    assert idx.shape == (64, 25)
    assert all(len(set(row.tolist())) == 25 for row in idx)            # distinct per example
    assert (idx >= 0).all() and (idx < 150).all()
    assert sorted(sample_stored(5, 5, 1)[0].tolist()) == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="without replacement"):
        sample_stored(26, 25, 1)


def test_confidences_and_masks():
    hm = torch.rand(3, 17, H, W)
    conf = max_confidence(hm)
    assert torch.equal(conf, torch.from_numpy(hm.numpy().max(axis=(-2, -1))))
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
        # official convention: distance of (u + 1) R / 2 to the nearest mask pixel index (x, y)
        q = (crop[b].double().numpy() + 1) * R / 2
        pix = np.argwhere(mask[b].numpy() != 0)[:, ::-1].astype(np.float64)
        expect = np.sqrt(((q[:, None] - pix[None]) ** 2).sum(-1)).min(1).reshape(17, 150)
        np.testing.assert_allclose(out["hm_samples_mask_dist"][b].numpy(), expect, atol=1e-4)
    single = precompute_samples(hm[1], center[1], scale[1], mask[1], n=4, generator=_gen(0))
    assert single["hm_samples"].shape == (17, 4, 2)
    no_mask = precompute_samples(hm[1], center[1], scale[1], None, n=4)
    assert (no_mask["hm_samples_mask_dist"] == 0).all()
    empty = precompute_samples(hm, center, scale, torch.zeros_like(mask), n=4)
    assert torch.isinf(empty["hm_samples_mask_dist"]).all()           # documented: inf
    with pytest.raises(ValueError, match="center"):
        precompute_samples(hm, center[0], scale, mask)

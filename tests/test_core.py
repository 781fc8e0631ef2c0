"""humr.core: the one crop frame, skeleton constants, visibility rule, checks and mask distances."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from humr.core import checks, crop, masks, skeleton, visibility


def test_visibility_rule_at_thresholds():
    conf = torch.tensor([0.0, 0.15, 0.16, 0.49, 0.5, 0.51, 0.69, 0.7, 1.0])
    assert visibility.visible(conf).tolist() == [False, False, False, False, True, True, True, True, True]
    assert torch.equal(visibility.invisible(conf), ~visibility.visible(conf))
    assert visibility.uncertain(conf).tolist() == [False, False, True, True, True, True, True, False, False]


def test_heatmap_target_and_supervision_rules():
    conf = torch.tensor([[0.3, 0.3, 0.3, 0.3, 0.9, 0.4]])
    in_crop = torch.tensor([[True, True, False, True, True, True]])
    in_box = torch.tensor([[True, False, True, True, True, True]])
    art = (0, 1, 2, 4)                                   # joints 3 and 5 not articulated
    assert visibility.heatmap_target_joints(conf, in_crop, in_box, art).tolist() == [
        [True, False, False, False, False, False]]
    assert visibility.mmd_supervised(conf, in_crop, art).tolist() == [
        [True, True, False, False, True, False]]
    assert visibility.mask_joints(conf, in_crop).tolist() == [[True, True, True, True, False, True]]


def test_skeleton_constants():
    assert skeleton.NUM_COCO == 17 and len(skeleton.COCO_FLIP) == 17
    names = skeleton.COCO17_NAMES
    for i, j in enumerate(skeleton.COCO_FLIP):
        assert skeleton.COCO_FLIP[j] == i                         # an involution
        assert names[j] == names[i].replace("l_", "#").replace("r_", "l_").replace("#", "r_")
    assert [names[k] for k in skeleton.ARTICULATED_COCO] == [
        "l_elbow", "r_elbow", "l_wrist", "r_wrist", "l_knee", "r_knee", "l_ankle", "r_ankle"]
    assert skeleton.IMAGENET_MEAN == (0.485, 0.456, 0.406)
    assert skeleton.IMAGENET_STD == (0.229, 0.224, 0.225)


def test_crop_frame_and_inside_tests():
    center, scale = torch.tensor([[300.0, 200.0]]), torch.tensor([[1.5]])   # box 300 px
    pts = torch.tensor([[[150.0, 50.0], [450.0, 350.0], [450.01, 200.0], [412.5, 200.0],
                         [412.6, 200.0]]])
    uv = crop.batch_to_crop(pts, center, scale)
    assert torch.allclose(uv[0, :2], torch.tensor([[-1.0, -1.0], [1.0, 1.0]]))
    assert crop.inside_crop(uv).tolist() == [[True, True, False, True, True]]     # edges inside
    assert crop.inside_box(uv).tolist() == [[False, False, False, True, False]]   # |u| <= 0.75
    back = crop.crop_to_full(uv, center, crop.box_size(scale))
    assert torch.allclose(back, pts)
    q = crop.crop_to_pixels(torch.tensor([[-1.0, 1.0], [0.75, 0.0], [0.76, 0.0]]), 8)
    assert q.tolist()[:2] == [[0.0, 8.0], [7.0, 4.0]]
    assert crop.inside_pixels(q, 8).tolist() == [False, True, False]


def test_mask_distance_against_brute_force():
    g = torch.Generator().manual_seed(0)
    mask = torch.rand(3, 24, 20, generator=g) > 0.93
    mask[2] = False                                                  # empty: inf
    pts = torch.rand(3, 400, 2, generator=g, dtype=torch.float64) * 30 - 5
    ours = masks.mask_distance(pts, mask)
    for b in range(2):
        pix = np.argwhere(mask[b].numpy())[:, ::-1].astype(np.float64)
        ref = np.sqrt(((pts[b].numpy()[:, None] - pix[None]) ** 2).sum(-1)).min(1)
        np.testing.assert_allclose(ours[b].numpy(), ref, atol=1e-9)
    assert torch.isinf(ours[2]).all()


def test_mask_distance_edge_cases_and_chunks(monkeypatch):
    """Non-finite points, points far off the image, and the chunked path against brute force."""
    mask = torch.zeros(2, 5, 7, dtype=torch.bool)
    mask[0, 1, 2] = mask[0, 4, 6] = True
    mask[1, 0, 0] = True
    nan, inf = float("nan"), float("inf")
    pts = torch.tensor([[[nan, 1.0], [inf, 2.0], [0.0, -inf], [-50.0, 1.0], [100.0, 4.0]],
                        [[2.0, 0.0], [0.0, 0.0], [-0.5, -0.5], [7.0, 9.0], [0.2, nan]]])
    d = masks.mask_distance(pts, mask)
    assert torch.isnan(d[0, 0]) and torch.isnan(d[1, 4])
    assert torch.isinf(d[0, 1]) and torch.isinf(d[0, 2])
    torch.testing.assert_close(d[0, 3:], torch.tensor([52.0, 94.0]))
    torch.testing.assert_close(d[1, :4], torch.tensor([2.0, 0.0, 0.5 ** 0.5, 130 ** 0.5]))
    g = torch.Generator().manual_seed(3)
    mask = torch.rand(2, 9, 11, generator=g) > 0.9
    pts = torch.rand(2, 50, 2, generator=g, dtype=torch.float64) * 16 - 3
    whole = masks.mask_distance(pts, mask)
    monkeypatch.setattr(masks, "_CHUNK", 7 * 2 * 9)               # chunks of 7 points
    torch.testing.assert_close(masks.mask_distance(pts, mask), whole, rtol=0, atol=0)
    for b in range(2):
        pix = np.argwhere(mask[b].numpy())[:, ::-1].astype(np.float64)
        ref = np.sqrt(((pts[b].numpy()[:, None] - pix[None]) ** 2).sum(-1)).min(1)
        np.testing.assert_allclose(whole[b].numpy(), ref, atol=1e-9)


@pytest.mark.parametrize("radius", [0.71, 0.5, 1.0])
def test_near_mask_is_the_distance_below_the_radius(radius):
    g = torch.Generator().manual_seed(4)
    mask = torch.rand(3, 12, 10, generator=g) > 0.8
    mask[2] = False
    anywhere = torch.rand(3, 300, 2, generator=g) * 16 - 3
    near_pixels = torch.round(anywhere) + (torch.rand(3, 300, 2, generator=g) - 0.5) * 1.6
    for pts in (anywhere, near_pixels):
        pts[0, 0, 0] = float("nan")
        expected = masks.mask_distance(pts, mask) < radius        # NaN < r is False
        for b in range(3):                                         # brute force
            pix = np.argwhere(mask[b].numpy())[:, ::-1].astype(np.float32)
            d = np.sqrt(((pts[b].numpy()[:, None] - pix[None]) ** 2).sum(-1))
            ref = (d < radius).any(1) if len(pix) else np.zeros(len(d), dtype=bool)
            assert (expected[b].numpy() == ref).all()
        assert torch.equal(masks.near_mask(pts, mask, radius), expected)
        assert expected.any() and not expected.all()
    with pytest.raises(ValueError, match="radius"):
        masks.near_mask(anywhere, mask, 1.5)


def test_dilation_matches_cv2():
    g = torch.Generator().manual_seed(1)
    mask = torch.rand(2, 30, 26, generator=g) > 0.97
    ours = masks.dilate_mask(mask, 3, 3).numpy()
    for b in range(2):
        ref = cv2.dilate(mask[b].numpy().astype(np.float32), np.ones((3, 3), np.float32),
                         iterations=3) > 0
        assert (ours[b] == ref).all()
    assert torch.equal(masks.dilate_mask(mask, 3, 0), mask)
    for k, it in ((5, 2), (3, 20)):                         # a larger kernel; more than the image
        ref = cv2.dilate(mask[0].numpy().astype(np.float32), np.ones((k, k), np.float32),
                         iterations=it) > 0
        assert (masks.dilate_mask(mask, k, it)[0].numpy() == ref).all()
    with pytest.raises(ValueError, match="odd"):
        masks.dilate_mask(mask, 4, 1)


def test_checks():
    with pytest.raises(ValueError, match=r"x must have shape \(B, 2\)"):
        checks.check_inputs({"x": (torch.zeros(3, 3), ("B", 2))})
    with pytest.raises(ValueError, match="NaN"):
        checks.check_inputs({"x": (torch.tensor([float("nan")]), ("B",))})
    checks.check_inputs({"x": (torch.tensor([float("nan")]), ("B",))}, finite=False)
    assert checks.as_float(torch.tensor([1, 2]), "x").dtype == torch.get_default_dtype()
    with pytest.raises(TypeError, match="x must be real"):
        checks.as_float(torch.zeros(2, dtype=torch.complex64), "x")
    with pytest.raises(KeyError, match=r"batch\['a'\] is missing"):
        checks.fetch({}, {}, {"a": ("B",)})
    with pytest.raises(ValueError, match="empty batch"):
        checks.fetch({"a": torch.zeros(0)}, {}, {"a": ("B",)})


def _imported(statement: str) -> list[str]:
    import subprocess
    import sys
    code = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_core_imports_no_peer_package():
    mods = _imported("import humr.core")
    assert [m for m in mods if m.startswith("humr.") and not m.startswith("humr.core")] == [
        "humr.registry"]


HEAVY = ("torchmetrics", "nflows", "scipy", "matplotlib", "lightning", "pytorch_lightning",
         "smplx", "geomloss", "kornia", "cv2")


@pytest.mark.parametrize("statement", ["import humr.losses", "from humr.losses import MMDLoss"])
def test_losses_import_is_light(statement):
    """Needs the lazy registries of humr/__init__.py (humr.registry.Registry.module)."""
    mods = set(_imported(statement))
    assert [m for m in HEAVY if m in mods] == []
    assert not any(m.startswith(("humr.metrics", "humr.flows", "humr.conditions", "humr.body"))
                   for m in mods)

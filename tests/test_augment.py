"""Training augmentation (kornia): the crop jitter moves image, mask and 2D targets together
(checked against the crop formula of docs/conventions.md and brute-force nearest-pixel and
distance computations), ``crop_change_matrix`` against a hand-computed map, determinism per
generator seed, and augmentation off for evaluation."""
import numpy as np
import pytest
import torch

from humr.data import HumrDataset, make_dataloader
from humr.data.augment import Augmentation, crop_change_matrix

MEAN = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
STD = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
GEOMETRY_ONLY = {"prob_blur": 0.0, "prob_jpeg": 0.0, "brightness": 0.0, "contrast": 0.0}
RES, CENTER, BOX = 64, (200.0, 150.0), 128.0       # 2 full-image px per crop px


def _crop_px(points, center, box, res=RES):
    """Continuous crop px of full-image points (docs/conventions.md): (p - c + b / 2) R / b."""
    return (np.asarray(points, np.float64) - np.asarray(center, np.float64) + box / 2) * res / box


def _sample(keypoint, mask, hm_samples):
    """Black crop with a Gaussian blob (sigma 1.5 crop px) centred on ``keypoint`` (full px)."""
    q = _crop_px(keypoint, CENTER, BOX) - 0.5                   # pixel-index coordinates
    yy, xx = np.mgrid[0:RES, 0:RES]
    blob = np.exp(-((xx - q[0]) ** 2 + (yy - q[1]) ** 2) / (2 * 1.5 ** 2))
    img = torch.from_numpy(blob).float().expand(3, -1, -1)      # [0, 1] intensities
    coco = torch.zeros(17, 3)
    coco[0] = torch.tensor([*keypoint, 1.0])
    return {"img": (img - MEAN) / STD, "center": torch.tensor(CENTER),
            "scale": torch.tensor([BOX / 200]), "coco_gt": coco,
            "mask": torch.from_numpy(mask), "mask_valid": torch.tensor(True),
            "hm_samples": torch.from_numpy(hm_samples).float(),
            "hm_samples_mask_dist": torch.zeros(hm_samples.shape[:2])}


def _brute_mask(old, center, box, new_center, new_box):
    """Nearest-pixel warp: new pixel centre -> full px -> the old crop pixel covering it.
    Also returns pixels whose source lies within 0.01 px of a pixel border (ambiguous)."""
    j = np.arange(RES) + 0.5
    full = np.asarray(new_center)[:, None] - new_box / 2 + j[None] * new_box / RES   # (2, R)
    q = _crop_px(full.T, center, box)                                                # (R, 2)
    idx = np.floor(q).astype(int)
    ok = (idx >= 0) & (idx < RES)
    out = np.zeros((RES, RES), np.uint8)
    rows, cols = np.ix_(np.where(ok[:, 1])[0], np.where(ok[:, 0])[0])
    out[rows, cols] = old[idx[rows, 1], idx[cols, 0]]
    near = np.abs(q - np.round(q)) < 0.01
    return out, near[:, 1][:, None] | near[:, 0][None, :]


def _brute_dist(points, mask, center, box):
    """Distance (crop px) from each point's continuous new-crop position ``(u + 1) R / 2`` to the
    nearest mask pixel index (official convention, humr.core.masks); inf for an empty mask."""
    pix = _crop_px(points, center, box)
    on = np.argwhere(mask.T != 0)                                # (M, 2) as (x, y)
    if len(on) == 0:
        return np.full(len(points), np.inf)
    return np.sqrt(((pix[:, None] - on[None]) ** 2).sum(-1)).min(1)


def _setup(seed=0):
    rng = np.random.default_rng(seed)
    mask = np.zeros((RES, RES), np.uint8)
    mask[20:45, 10:30] = 1
    yy, xx = np.mgrid[0:RES, 0:RES]
    mask[(xx - 45) ** 2 + (yy - 30) ** 2 < 64] = 1
    # heatmap samples well inside every jittered crop (|shift| <= 0.08 b, side >= 0.85 b)
    pts = np.asarray(CENTER) + rng.uniform(-0.3, 0.3, (17 * 6, 2)) * BOX
    return mask, pts.reshape(17, 6, 2)


@pytest.mark.parametrize("seed", range(6))
def test_crop_jitter_moves_image_mask_and_targets_together(seed):
    keypoint = (215.3, 131.7)
    mask, hm = _setup(seed)
    sample = _sample(keypoint, mask, hm)
    out = Augmentation(**GEOMETRY_ONLY)(sample, torch.Generator().manual_seed(seed))
    c, b = out["center"].double().numpy(), 200.0 * float(out["scale"][0])
    assert not np.allclose(c, CENTER) and abs(b - BOX) > 1e-3 and 0.85 * BOX <= b <= 1.15 * BOX
    assert np.abs(c - CENTER).max() <= 0.08 * BOX
    # 2D targets stay in full-image px; their crop position moved with the image
    for key in ("coco_gt", "hm_samples"):
        assert torch.equal(out[key], sample[key])
    img = (out["img"] * STD + MEAN).sum(0).double().numpy()
    yy, xx = np.mgrid[0:RES, 0:RES]
    found = np.array([(img * xx).sum(), (img * yy).sum()]) / img.sum()
    expected = _crop_px(keypoint, c, b) - 0.5
    np.testing.assert_allclose(found, expected, atol=0.1)
    # the blob keeps its size in full-image px: sigma 1.5 old crop px -> 1.5 * BOX / b
    spread = np.sqrt((img * ((xx - found[0]) ** 2)).sum() / img.sum())
    assert spread == pytest.approx(1.5 * BOX / b, rel=0.1)
    # mask: nearest-pixel warp of the same crop change
    want, ambiguous = _brute_mask(mask, CENTER, BOX, c, b)
    got = out["mask"].numpy()
    assert out["mask"].dtype == torch.uint8
    assert (got == want)[~ambiguous].all() and (~ambiguous).mean() > 0.8
    # heatmap-sample distances recomputed on the warped mask
    np.testing.assert_allclose(out["hm_samples_mask_dist"].numpy().reshape(-1),
                               _brute_dist(hm.reshape(-1, 2), got, c, b), atol=1e-4)
    assert bool(out["mask_valid"])


def test_mask_valid_follows_the_warped_mask():
    """A small mask near the crop corner leaves the crop for some jitters: mask_valid turns
    False exactly then, and the sample distances become inf."""
    mask = np.zeros((RES, RES), np.uint8)
    mask[0:3, 0:3] = 1
    _, hm = _setup()
    aug = Augmentation(scale=0.1, translate=0.3, **GEOMETRY_ONLY)
    seen = set()
    for seed in range(40):
        out = aug(_sample((200.0, 150.0), mask, hm), torch.Generator().manual_seed(seed))
        valid = bool(out["mask_valid"])
        assert valid == bool(out["mask"].any())
        assert torch.isinf(out["hm_samples_mask_dist"]).all() == (not valid)
        seen.add(valid)
    assert seen == {True, False}
    # an invalid mask stays invalid even if the warped mask is not empty
    sample = _sample((200.0, 150.0), np.ones((RES, RES), np.uint8), hm)
    sample["mask_valid"] = torch.tensor(False)
    out = aug(sample, torch.Generator().manual_seed(0))
    assert out["mask"].any() and not bool(out["mask_valid"])


def test_crop_change_matrix_hand_computed():
    # old crop: centre (50, 40), side 100; new: centre (60, 30), side 80; R = 20 (5 and 4 px
    # per crop px). Old pixel index i -> full p = (i + 0.5) 5 + c - 50 -> new index
    # (p - c' + 40) / 4 - 0.5:  x' = 1.25 x - 4.875,  y' = 1.25 y + 0.125
    d = lambda *v: torch.tensor(v, dtype=torch.float64)
    m = crop_change_matrix(d(50.0, 40.0), d(100.0), d(60.0, 30.0), d(80.0), 20)
    assert m.shape == (2, 3)
    torch.testing.assert_close(m, d([1.25, 0.0, -4.875], [0.0, 1.25, 0.125]))
    back = crop_change_matrix(d(60.0, 30.0), d(80.0), d(50.0, 40.0), d(100.0), 20)
    full = lambda a: torch.cat([a, d([0.0, 0.0, 1.0])])
    torch.testing.assert_close(full(back) @ full(m), torch.eye(3, dtype=torch.float64))
    same = crop_change_matrix(d(50.0, 40.0), d(100.0), d(50.0, 40.0), d(100.0), 20)
    torch.testing.assert_close(same, d([1.0, 0.0, 0.0], [0.0, 1.0, 0.0]))


def test_same_generator_seed_same_output(small_synth):
    item = HumrDataset(small_synth, "train")[0]
    aug = Augmentation()                                   # photometric parts on
    runs = [aug(item, torch.Generator().manual_seed(s)) for s in (5, 5, 6)]
    for key in item:
        assert torch.equal(runs[0][key], runs[1][key]), key
    assert not torch.equal(runs[0]["img"], runs[2]["img"])
    assert not torch.equal(runs[0]["center"], runs[2]["center"])
    assert torch.equal(runs[0]["coco_gt"], item["coco_gt"])
    assert runs[0]["img"].shape == item["img"].shape and runs[0]["img"].dtype == torch.float32


def test_augmentation_is_off_by_default_and_seeded_per_read(small_synth):
    plain = HumrDataset(small_synth, "train")
    assert not plain.augment and not make_dataloader(small_synth, "train", 2).dataset.augment
    first = plain[1]
    assert all(torch.equal(first[k], plain[1][k]) for k in first)        # no randomness
    runs = []
    for seed in (0, 0, 1):
        ds = HumrDataset(small_synth, "train", augment=True, seed=seed)
        runs.append([ds[1], ds[1]])                                       # two "epochs"
    for a, b in zip(runs[0], runs[1]):                                    # same seed: repeats
        assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(runs[0][0]["img"], runs[0][1]["img"])         # epochs differ
    assert not torch.equal(runs[0][0]["img"], runs[2][0]["img"])         # seeds differ
    assert not torch.equal(runs[0][0]["img"], first["img"])
    assert torch.equal(runs[0][0]["coco_gt"], first["coco_gt"])


def test_evaluation_loaders_never_augment(small_synth):
    from humr.engine.datamodule import HumrDataModule

    dm = HumrDataModule(str(small_synth), batch_size=2, augment=True)
    assert dm.train_dataloader().dataset.dataset.augment
    for split in ("train", "test"):
        assert not dm.eval_dataloader(split).dataset.dataset.augment

"""Loader of the paper's official preprocessed files: a tiny release written in tmp_path
(annotation npz, PNG images, gzip heatmap-sample files, ``_env.png`` masks) mapped onto the
schema, checked against hand-derived answers, and errors that name the key or the file."""
import gzip

import cv2
import numpy as np
import pytest
import torch

from humr.data import DataFormatError
from humr.data.official import OfficialDataset

R, NS = 20, 4                       # crop side, heatmap samples per joint used
GREY, BRIGHT = 100, np.array([250, 20, 10])          # RGB
MEAN = np.array([0.485, 0.456, 0.406])[:, None, None]
STD = np.array([0.229, 0.224, 0.225])[:, None, None]
# OpenPose BODY_25 indices by name, and the COCO-17 order (docs/conventions.md)
BODY25 = {"nose": 0, "neck": 1, "r_shoulder": 2, "r_elbow": 3, "r_wrist": 4, "l_shoulder": 5,
          "l_elbow": 6, "l_wrist": 7, "mid_hip": 8, "r_hip": 9, "r_knee": 10, "r_ankle": 11,
          "l_hip": 12, "l_knee": 13, "l_ankle": 14, "r_eye": 15, "l_eye": 16, "r_ear": 17,
          "l_ear": 18}
COCO = ["nose", "l_eye", "r_eye", "l_ear", "r_ear", "l_shoulder", "r_shoulder", "l_elbow",
        "r_elbow", "l_wrist", "r_wrist", "l_hip", "r_hip", "l_knee", "r_knee", "l_ankle",
        "r_ankle"]
CONF = np.linspace(-0.2, 1.3, 17)                    # raw detector confidences (some off [0, 1])


def _annotations(n=3):
    i, j = np.arange(n)[:, None], np.arange(45)[None]
    vit = np.zeros((n, 17, 3))
    vit[..., 0] = 300 + np.arange(17)                                    # y
    vit[..., 1] = 400 + np.arange(17) + 10 * np.arange(n)[:, None]       # x
    vit[..., 2] = CONF
    k = np.zeros((n, 3, 3))
    k[:, 0, 0], k[:, 1, 1], k[:, 0, 1] = 1000 + np.arange(n), 1100 + np.arange(n), 7.0
    k[:, :2, 2], k[:, 2, 2] = (320, 240), 1.0
    return {
        "imgname": np.array(["seq/a.png", "seq/b.png", "c.png"][:n]),
        "center": np.array([[40.0, 30.0], [10.5, 8.0], [30.0, 20.0]][:n]),
        "scale": np.array([0.1, 0.1, 0.2][:n]),
        "pose_cam": np.arange(n * 78).reshape(n, 78) * 0.01,
        "shape": np.arange(n * 11).reshape(n, 11) * 0.1,
        "gtkps": np.stack([j + 100 * i, 1000 + j + 0 * i], -1).astype(np.float64),
        "gt_coco_25j": np.stack([500 + j[:, :25] + 100 * i, 600 + 2 * j[:, :25] + 0 * i], -1)
        .astype(np.float64),
        "vitpose": vit,
        "cam_int": k,
        "object_occlusion": np.array([False, False, True][:n]),
    }


def _images():
    """Full images (RGB): grey with bright marks at known full-image pixels."""
    a = np.full((60, 80, 3), GREY, np.uint8)
    a[22, 45] = BRIGHT                          # pixel x = 45, y = 22
    b = np.full((50, 70, 3), GREY, np.uint8)
    b[9, 12] = BRIGHT
    c = np.full((48, 64, 3), GREY, np.uint8)
    c[10:12, 20:22] = BRIGHT                    # 2 x 2 block, x 20-21, y 10-11
    return {"seq/a.png": a, "seq/b.png": b, "c.png": c}


def _hm_file(i, s=6):
    """(S, 17, 4): x, y, value, mask distance, distinct per sample and joint."""
    sk = np.stack(np.meshgrid(np.arange(s), np.arange(17), indexing="ij"), -1)   # (S, 17, 2)
    ss, kk = sk[..., 0], sk[..., 1]
    return np.stack([100 + 10 * kk + ss + 1000 * i, 200 + 10 * kk + ss,
                     0.9 - 0.1 * ss + 0.001 * kk, ss + 0.5 * kk], -1)


def _write_gz(path, array):
    with gzip.open(path, "wb") as f:
        np.save(f, array)


def _release(tmp, drop=(), **replace):
    """Write the release layout; returns the OfficialDataset arguments."""
    annot = {k: v for k, v in _annotations().items() if k not in drop}
    annot.update(replace)
    images, masks, hms = tmp / "images", tmp / "masks", tmp / "hm"
    for name, img in _images().items():
        (images / name).parent.mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(images / name), img[..., ::-1])            # BGR on disk
    env = {"seq/a_env.png": np.full((60, 80), 255, np.uint8),
           "seq/b_env.png": np.full((50, 70), 255, np.uint8),             # no person pixel
           "c_env.png": np.zeros((48, 64), np.uint8)}                     # all person
    env["seq/a_env.png"][25:35, 42:48] = 0                               # person: x 42-47, y 25-34
    for name, img in env.items():
        (masks / name).parent.mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(masks / name), img)
    hms.mkdir(exist_ok=True)
    for i in range(3):
        _write_gz(hms / f"{i:07d}.npy.gz", _hm_file(i))
    np.savez(tmp / "annot.npz", **annot)
    return {"annot_path": tmp / "annot.npz", "img_root": images, "hm_samples_dir": hms,
            "mask_dir": masks}


def _rgb(item):
    """Un-normalised crop (R, R, 3), 0-255."""
    return ((item["img"].double().numpy() * STD + MEAN) * 255).transpose(1, 2, 0)


def test_annotations_map_onto_the_schema(tmp_path):
    paths = _release(tmp_path)
    ds = OfficialDataset(paths["annot_path"], paths["img_root"], crop_res=R, num_samples=NS)
    raw = _annotations()
    order = [BODY25[name] for name in COCO]
    assert len(ds) == 3
    for i in range(3):
        item = ds[i]
        shapes = {"img": (3, R, R), "center": (2,), "scale": (1,), "orig_shape": (2,),
                  "focal": (2,), "pose": (72,), "betas": (11,), "kp2d_gt": (24, 3),
                  "coco_gt": (17, 3), "cond_kp": (17, 3), "hm_samples": (17, NS, 2),
                  "hm_values": (17, NS), "hm_max_conf": (17,), "hm_samples_mask_dist": (17, NS),
                  "mask": (R, R), "mask_valid": ()}
        assert {k: tuple(v.shape) for k, v in item.items()} == shapes
        assert item["mask"].dtype == torch.uint8 and item["mask_valid"].dtype == torch.bool
        floats = [k for k in shapes if k not in ("mask", "mask_valid")]
        assert all(item[k].dtype == torch.float32 for k in floats)
        np.testing.assert_allclose(item["center"], raw["center"][i])
        np.testing.assert_allclose(item["scale"], [raw["scale"][i]], rtol=1e-6)
        np.testing.assert_allclose(item["pose"], raw["pose_cam"][i, :72], rtol=1e-6)
        np.testing.assert_allclose(item["betas"], raw["shape"][i], rtol=1e-6)
        np.testing.assert_array_equal(item["kp2d_gt"][:, :2], raw["gtkps"][i, :24])
        np.testing.assert_array_equal(item["kp2d_gt"][:, 2], np.ones(24))
        # COCO from BODY_25 by joint name; x = 500 + BODY_25 index + 100 i, y = 600 + 2 index
        np.testing.assert_array_equal(item["coco_gt"][:, 0], 500 + np.array(order) + 100 * i)
        np.testing.assert_array_equal(item["coco_gt"][:, 1], 600 + 2 * np.array(order))
        np.testing.assert_array_equal(item["coco_gt"][:, 2], np.ones(17))
        # ViTPose (y, x, conf) -> (x, y, conf clipped to [0, 1])
        np.testing.assert_array_equal(item["cond_kp"][:, 0], 400 + np.arange(17) + 10 * i)
        np.testing.assert_array_equal(item["cond_kp"][:, 1], 300 + np.arange(17))
        np.testing.assert_allclose(item["cond_kp"][:, 2], np.clip(CONF, 0, 1), rtol=1e-6)
        assert item["cond_kp"][0, 2] == 0 and item["cond_kp"][16, 2] == 1
        # focal (fx, fy) from the intrinsics (skew 7 must not leak in)
        np.testing.assert_array_equal(item["focal"], [1000 + i, 1100 + i])
        # no annotated orig_shape: the image's (h, w)
        np.testing.assert_array_equal(item["orig_shape"], _images()[raw["imgname"][i]].shape[:2])
        # fallbacks without heatmap files and masks: the detection repeated, empty mask
        np.testing.assert_array_equal(item["hm_samples"],
                                      item["cond_kp"][:, None, :2].expand(17, NS, 2))
        np.testing.assert_array_equal(item["hm_values"], item["cond_kp"][:, None, 2].expand(17, NS))
        np.testing.assert_array_equal(item["hm_max_conf"], item["cond_kp"][:, 2])
        assert not item["hm_samples_mask_dist"].any()
        assert not item["mask"].any() and not bool(item["mask_valid"])


def test_optional_annotation_keys_and_body_25_flags(tmp_path):
    raw = _annotations()
    flags = np.zeros((3, 25, 1))
    flags[:, 1::2] = 1.0                                       # odd BODY_25 joints valid
    gtflags = np.concatenate([raw["gtkps"], np.full((3, 45, 1), 0.5)], -1)
    paths = _release(tmp_path, drop=("cam_int", "object_occlusion"),
                     gt_coco_25j=np.concatenate([raw["gt_coco_25j"], flags], -1),
                     gtkps=gtflags, orig_shape=np.array([[600.0, 800.0]] * 3))
    ds = OfficialDataset(paths["annot_path"], paths["img_root"], crop_res=R, num_joints=22,
                         num_samples=NS)
    item = ds[1]
    assert "focal" not in item                                 # optional: estimated downstream
    np.testing.assert_array_equal(item["orig_shape"], [600, 800])
    assert item["pose"].shape == (66,)
    np.testing.assert_array_equal(item["coco_gt"][:, 2], [BODY25[n] % 2 for n in COCO])
    np.testing.assert_array_equal(item["kp2d_gt"][:, 2], np.full(24, 0.5))


def test_image_crop_follows_the_crop_formula(tmp_path):
    """Crop pixel (j, r) has its centre at full-image point c - b/2 + (j + 0.5, r + 0.5) b / R
    (docs/conventions.md); bilinear sampling there, zero outside the image."""
    paths = _release(tmp_path)
    ds = OfficialDataset(paths["annot_path"], paths["img_root"], crop_res=R, num_samples=NS)
    full = _images()
    # example 0: c = (40, 30), b = 20 = R: centre of crop pixel (j, r) = centre of full pixel
    # (30 + j, 20 + r), so the crop is full[20:40, 30:50]; the mark (45, 22) lands at (15, 2)
    crop = _rgb(ds[0])
    np.testing.assert_allclose(crop, full["seq/a.png"][20:40, 30:50], atol=0.01)
    np.testing.assert_allclose(crop[2, 15], BRIGHT, atol=0.01)
    # example 1: c = (10.5, 8), b = 20: crop (j, r) -> full (j + 1, r - 1.5), i.e. halfway
    # between full columns j and j + 1, on the centre of full row r - 2; rows 0-1 are above
    # the image (zero); the mark at (12, 9) is shared by crop columns 11 and 12 of row 11
    want = np.full((R, R, 3), float(GREY))
    want[:2] = 0
    want[11, 11] = want[11, 12] = (BRIGHT + GREY) / 2
    np.testing.assert_allclose(_rgb(ds[1]), want, atol=0.01)
    # example 2: c = (30, 20), b = 40 = 2 R: crop (j, r) -> full (2 j + 11, 2 r + 1), the
    # corner of full pixels 2j+10..2j+11 x 2r..2r+1: the 2 x 2 mark (20-21, 10-11) -> (5, 5)
    want = np.full((R, R, 3), float(GREY))
    want[5, 5] = BRIGHT
    np.testing.assert_allclose(_rgb(ds[2]), want, atol=0.01)


def test_heatmap_sample_files(tmp_path):
    paths = _release(tmp_path)
    ds = OfficialDataset(**paths, crop_res=R, num_samples=NS)
    for i in range(3):
        item = ds[i]
        ref = _hm_file(i)[:NS].transpose(1, 0, 2)            # (17, NS, 4), first NS samples
        np.testing.assert_allclose(item["hm_samples"], ref[..., :2], rtol=1e-6)
        np.testing.assert_allclose(item["hm_values"], ref[..., 2], rtol=1e-6)
        np.testing.assert_allclose(item["hm_samples_mask_dist"], ref[..., 3], rtol=1e-6)
        np.testing.assert_allclose(item["hm_max_conf"], 0.9 + 0.001 * np.arange(17), rtol=1e-6)
        assert item["hm_samples"][3, 2].tolist() == [100 + 30 + 2 + 1000 * i, 200 + 30 + 2]


def test_person_masks_and_mask_valid(tmp_path):
    paths = _release(tmp_path)
    ds = OfficialDataset(**paths, crop_res=R, num_samples=NS)
    # example 0 (crop = full[20:40, 30:50]): person pixels x 42-47, y 25-34 -> cols 12-17,
    # rows 5-14
    want = np.zeros((R, R), np.uint8)
    want[5:15, 12:18] = 1
    item = ds[0]
    np.testing.assert_array_equal(item["mask"], want)
    assert bool(item["mask_valid"])
    # example 1: no person pixel in the image, but crop rows 0-1 are zero padding, which
    # counts as person-plausible
    want = np.zeros((R, R), np.uint8)
    want[:2] = 1
    np.testing.assert_array_equal(ds[1]["mask"], want)
    assert bool(ds[1]["mask_valid"])
    # example 2: object_occlusion -> empty mask, invalid (although its mask is all person)
    assert not ds[2]["mask"].any() and not bool(ds[2]["mask_valid"])
    # without object_occlusion the mask is read: all person; an all-background env mask
    # inside the image gives an empty, invalid mask
    paths = _release(tmp_path, drop=("object_occlusion",))
    ds = OfficialDataset(**paths, crop_res=R, num_samples=NS)
    assert ds[2]["mask"].all() and bool(ds[2]["mask_valid"])
    assert cv2.imwrite(str(paths["mask_dir"] / "c_env.png"), np.full((48, 64), 255, np.uint8))
    assert not ds[2]["mask"].any() and not bool(ds[2]["mask_valid"])


# -- errors --------------------------------------------------------------------------------
def _message(exc, fn):
    with pytest.raises(exc) as info:
        fn()
    return str(info.value)


@pytest.mark.parametrize("key", ["imgname", "center", "scale", "pose_cam", "shape", "gtkps",
                                 "gt_coco_25j", "vitpose"])
def test_missing_annotation_key(tmp_path, key):
    paths = _release(tmp_path, drop=(key,))
    msg = _message(DataFormatError, lambda: OfficialDataset(**paths))
    assert str(paths["annot_path"]) in msg and f"key '{key}' is missing" in msg


@pytest.mark.parametrize("key, value, expected", [
    ("vitpose", np.zeros((3, 17, 2)), "has shape (3, 17, 2), expected (N, 17, 3)"),
    ("gt_coco_25j", np.zeros((3, 24, 2)), "has shape (3, 24, 2), expected (N, 25, 2|3)"),
    ("gtkps", np.zeros((3, 23, 2)), "has shape (3, 23, 2), expected (N, >= 24, 2|3)"),
    ("pose_cam", np.zeros((3, 70)), "has shape (3, 70), expected (N, >= 72)"),
    ("scale", np.ones((2,)), "has shape (2,), expected (N,) with N = 3"),
    ("center", np.zeros((3, 3)), "has shape (3, 3), expected (N, 2)"),
    ("center", np.array([[1.0, np.nan]] * 3), "holds NaN"),
    ("cam_int", np.ones((3, 3)), "has shape (3, 3), expected (N, 3, 3)"),
])
def test_malformed_annotation_arrays(tmp_path, key, value, expected):
    paths = _release(tmp_path, **{key: value})
    msg = _message(DataFormatError, lambda: OfficialDataset(**paths))
    assert str(paths["annot_path"]) in msg and f"key '{key}'" in msg and expected in msg, msg


def test_missing_files(tmp_path):
    paths = _release(tmp_path)
    msg = _message(FileNotFoundError, lambda: OfficialDataset(tmp_path / "none.npz", tmp_path))
    assert str(tmp_path / "none.npz") in msg
    ds = OfficialDataset(**paths, crop_res=R, num_samples=NS)
    (paths["img_root"] / "seq" / "b.png").unlink()
    msg = _message(FileNotFoundError, lambda: ds[1])
    assert str(paths["img_root"] / "seq" / "b.png") in msg and "'imgname'" in msg
    assert str(paths["annot_path"]) in msg
    (paths["img_root"] / "seq" / "b.png").write_bytes(b"not a png")          # unreadable
    assert str(paths["img_root"] / "seq" / "b.png") in _message(FileNotFoundError, lambda: ds[1])
    (paths["hm_samples_dir"] / "0000000.npy.gz").unlink()
    msg = _message(FileNotFoundError, lambda: ds[0])
    assert str(paths["hm_samples_dir"] / "0000000.npy.gz") in msg
    (paths["mask_dir"] / "c_env.png").unlink()                 # example 2 is object-occluded
    assert not bool(ds[2]["mask_valid"])
    (paths["mask_dir"] / "seq" / "a_env.png").unlink()
    ds = OfficialDataset(paths["annot_path"], paths["img_root"], mask_dir=paths["mask_dir"],
                         crop_res=R, num_samples=NS)
    msg = _message(FileNotFoundError, lambda: ds[0])
    assert str(paths["mask_dir"] / "seq" / "a_env.png") in msg


def _gz_bytes(data):
    path = __import__("io").BytesIO()
    with gzip.GzipFile(fileobj=path, mode="wb", mtime=0) as f:
        f.write(data)
    return path.getvalue()


@pytest.mark.parametrize("write, expected", [
    (lambda p: _write_gz(p, _hm_file(0)[..., :3]),
     "have shape (6, 17, 3) and dtype float64, expected numbers of shape (S >= 4, 17, 4)"),
    (lambda p: _write_gz(p, _hm_file(0, s=2)), "have shape (2, 17, 4) and dtype float64"),
    (lambda p: _write_gz(p, _hm_file(0)[0]), "have shape (17, 4)"),
    (lambda p: p.write_bytes(b"plain bytes, not gzip"), "not a readable"),
    (lambda p: p.write_bytes(_gz_bytes(b"gzip, but not an npy file")), "not a readable"),
    (lambda p: p.write_bytes(_gz_bytes(np.lib.format.magic(1, 0))[:-9]), "not a readable"),
    (lambda p: _write_gz(p, np.array([{"x": 1}], dtype=object)), "not a readable"),
    (lambda p: _write_gz(p, np.full((6, 17, 4), "a")), "dtype <U1, expected numbers"),
], ids=["columns", "too_few", "rank", "not_gzip", "not_npy", "truncated", "pickle", "strings"])
def test_malformed_heatmap_sample_files_name_the_file(tmp_path, write, expected):
    paths = _release(tmp_path)
    ds = OfficialDataset(**paths, crop_res=R, num_samples=NS)
    bad = paths["hm_samples_dir"] / "0000001.npy.gz"
    write(bad)
    msg = _message(DataFormatError, lambda: ds[1])
    assert msg.startswith(f"{bad}: ") and expected in msg, msg
    assert ds[0]["hm_samples"].shape == (17, NS, 2)            # other examples still load


def test_non_finite_heatmap_samples_name_the_key_and_example(tmp_path):
    paths = _release(tmp_path)
    data = _hm_file(2)
    data[1, 5, 0] = np.nan
    _write_gz(paths["hm_samples_dir"] / "0000002.npy.gz", data)
    ds = OfficialDataset(**paths, crop_res=R, num_samples=NS)
    msg = _message(DataFormatError, lambda: ds[2])
    assert f"{paths['annot_path']} example 2" in msg and "key 'hm_samples'" in msg
    assert "(0, 5, 1, 0)" in msg                                 # (N, joint, sample, x)

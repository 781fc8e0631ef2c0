"""Reader of the paper's data release (humr.data.official) on a tree written in the release's
layout by humr.data.official_fixture: schema mapping, SMPL-X body poses, the training filter,
closeup rotation, BEDLAM / AGORA / EMDB masks, heatmap-sample shuffling and the inside-mask
rule, gender, safe reading of object arrays, and errors naming the file and key. References
are computed independently (numpy rot90, scipy dilation, loops over the filter's rules)."""
import gzip
import shutil

import cv2
import numpy as np
import pytest
import torch
from scipy import ndimage

from humr.data import DataFormatError
from humr.data.official import BODY25_TO_COCO17, OfficialDataset, crop_image
from humr.data.official_fixture import write_release
from humr.data.official_io import read_npz
from humr.data.official_splits import SPLITS, TRAIN_SPLITS

R, NS = 32, 8
MEAN = np.array([0.485, 0.456, 0.406])
STD = np.array([0.229, 0.224, 0.225])


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    root = tmp_path_factory.mktemp("release")
    return root, write_release(root, rows=8, hm_samples=40)


def _ds(root, name, **kw):
    kw.setdefault("crop_res", R)
    kw.setdefault("num_samples", NS)
    return OfficialDataset(root, name, **kw)


def _raw(root, name):
    return read_npz(SPLITS[name].annotation_path(root))


def _rgb(item):
    return (item["img"].double().numpy().transpose(1, 2, 0) * STD + MEAN) * 255


def test_split_table_follows_the_official_config():
    assert len(TRAIN_SPLITS) == 29 and len(set(TRAIN_SPLITS)) == 29
    assert sum(SPLITS[n].closeup for n in TRAIN_SPLITS) == 7
    assert SPLITS["agora-body"].image_root("/d").as_posix() == "/d/training_images/images"
    assert SPLITS["emdb-p1-occl"].annotation_path("/d").name == "emdb_p1_occl.npz"
    assert SPLITS["3dpw-train-smplx"].model_type == "smplx"
    assert SPLITS["3dpw-test-cam"].model_type == "smpl"


@pytest.mark.parametrize("name", ["static-hdri", "agora-bfh", "3dpw-train-smplx"])
def test_training_splits_map_smplx_body_poses(release, name):
    root, manifest = release
    raw = _raw(root, name)
    for joints in (24, 22):
        ds = _ds(root, name, num_joints=joints)
        for i, row in enumerate(ds.rows):
            item = ds[i]
            pose = item["pose"].numpy()
            assert pose.shape == (3 * joints,)
            np.testing.assert_allclose(pose[:66], raw["pose_cam"][row, :66], rtol=1e-6)
            np.testing.assert_array_equal(pose[66:], 0)   # no SMPL-X jaw / eye as hands
            kp = item["kp2d_gt"].numpy()
            np.testing.assert_allclose(kp[:, :2], raw["gtkps"][row, :24, :2], rtol=1e-6)
            np.testing.assert_array_equal(kp[:, 2], [1] * 22 + [0, 0])
            # ViTPose (y, x, conf) -> (x, y, conf in [0, 1]); COCO from BODY_25
            cond = item["cond_kp"].numpy()
            np.testing.assert_allclose(cond[:, 0], raw["vitpose"][row, :, 1], rtol=1e-6)
            np.testing.assert_allclose(cond[:, 1], raw["vitpose"][row, :, 0], rtol=1e-6)
            np.testing.assert_allclose(cond[:, 2], np.minimum(raw["vitpose"][row, :, 2], 1),
                                       rtol=1e-6)
            coco = item["coco_gt"].numpy()
            for k, b in enumerate(BODY25_TO_COCO17):
                np.testing.assert_allclose(coco[k, :2], raw["gt_coco_25j"][row, b], rtol=1e-6)
            assert item["gender"].item() == 0
    assert list(ds.rows) == manifest[name]["kept"]


def test_test_splits_smpl_poses_gender_no_gtkps(release):
    root, _ = release
    for name, codes in (("3dpw-test-cam", [1, 2]), ("emdb-p1", [1, 2])):
        raw = _raw(root, name)
        assert "gtkps" not in raw
        ds = _ds(root, name)
        assert len(ds) == len(raw["imgname"])                   # never filtered
        for i in range(len(ds)):
            item = ds[i]
            np.testing.assert_allclose(item["pose"], raw["pose_cam"][i, :72], rtol=1e-6)
            assert item["kp2d_gt"][:, 2].sum() == 0
            assert item["gender"].item() == codes[i % 2]
            assert raw["gender"][i][0] == "mf"[i % 2]


def _filter_reference(raw, name):
    """The official filter, one row and one joint at a time."""
    split = SPLITS[name]
    keep = []
    for r in range(len(raw["imgname"])):
        det = raw["vitpose"][r][:, [1, 0, 2]]
        conf = np.clip(det[:, 2], 0, 1)
        gt = raw["gt_coco_25j"][r][list(BODY25_TO_COCO17)]
        err = sum(np.hypot(*(gt[k, :2] - det[k, :2])) * (conf[k] > 0.2) for k in range(17)) / 17
        ok = err / raw["scale"][r] < 13 and sum(c > 0.5 for c in conf) > 8
        if split.kind != "3dpw":
            h, w = raw["orig_shape"][r]
            ok = ok and all(-100 <= x <= w + 100 and -100 <= y <= h + 100 for x, y in det[:, :2])
        keep.append(ok)
    return np.flatnonzero(keep)


@pytest.mark.parametrize("name", ["static-hdri", "closeup-gym", "agora-bfh", "3dpw-train-smplx"])
def test_training_filter_matches_the_rules(release, name):
    root, manifest = release
    ds = _ds(root, name)
    expected = _filter_reference(_raw(root, name), name)
    np.testing.assert_array_equal(ds.rows, expected)
    assert list(expected) == manifest[name]["kept"] and len(expected) < 8
    assert len(_ds(root, name, filter=False)) == 8


def test_heatmap_files_keep_the_unfiltered_row_index(release):
    root, _ = release
    ds = _ds(root, "3dpw-train-smplx")
    assert list(ds.rows) == [0, 1, 2, 3, 4, 7]
    with gzip.open(SPLITS["3dpw-train-smplx"].hm_samples_dir(root) / "0000007.npy.gz") as f:
        stored = np.load(f)
    np.testing.assert_allclose(ds[5]["hm_max_conf"], stored[:, :, 2].max(0), rtol=1e-6)


def test_closeup_images_and_masks_are_turned_clockwise(release):
    root, _ = release
    ds = _ds(root, "closeup-gym", mask_dilation=0)
    i = 0
    item = ds[i]
    stored = cv2.imread(str(ds.image_path(i)))[..., ::-1]
    assert stored.shape[0] < stored.shape[1]                   # stored sideways
    upright = np.ascontiguousarray(np.rot90(stored, -1))       # clockwise, numpy
    c, box = item["center"].numpy(), 200 * item["scale"].item()
    ref = crop_image(upright, c, box, R).astype(float)
    np.testing.assert_allclose(_rgb(item), ref, atol=1.0)
    wrong = crop_image(np.ascontiguousarray(stored), c, box, R).astype(float)
    assert np.abs(wrong - ref).max() > 50
    m = cv2.imread(str(ds.mask_path(i)), cv2.IMREAD_GRAYSCALE)
    m_ref = crop_image(np.ascontiguousarray(np.rot90(m, -1)), c, box, R) < 127.5
    np.testing.assert_array_equal(item["mask"].numpy().astype(bool), m_ref)
    assert item["mask_valid"] and 0 < m_ref.mean() < 1


@pytest.mark.parametrize("name", ["static-hdri", "agora-bfh"])
def test_training_masks_threshold_and_dilation(release, name):
    root, _ = release
    ds = _ds(root, name)
    raw = _raw(root, name)
    checked = 0
    for i, row in enumerate(ds.rows):
        item = ds[i]
        if raw["object_occlusion"][row]:
            assert ds.mask_path(i) is None and not item["mask_valid"]
            continue
        m = cv2.imread(str(ds.mask_path(i)), cv2.IMREAD_GRAYSCALE)
        if name == "agora-bfh":
            assert ds.mask_path(i).name.endswith("_all_person.png")
            assert set(np.unique(m)) == {76, 200}
            person = m != 76                                   # grey 76 = background
        else:
            assert ds.mask_path(i).name.endswith("_env.png")
            person = m < 128
        env = np.where(person, 0, 255).astype(np.uint8)
        c, box = item["center"].numpy(), 200 * item["scale"].item()
        inside = crop_image(env, c, box, R) < 127.5
        ref = ndimage.binary_dilation(inside, np.ones((3, 3), bool), iterations=3)
        np.testing.assert_array_equal(item["mask"].numpy().astype(bool), ref)
        assert ref.sum() > inside.sum()
        checked += 1
    assert checked >= 2


def test_emdb_masks_gated_by_valid_label(release):
    root, _ = release
    ds = _ds(root, "emdb-p1-occl")
    raw = _raw(root, "emdb-p1-occl")
    for i in range(len(ds)):
        item = ds[i]
        if raw["valid_emdb_mask"][i] != 1:
            assert ds.mask_path(i) is None and not item["mask_valid"]
            continue
        path = ds.mask_path(i)
        assert path.relative_to(ds.img_root).parts == (
            "masks", f"P{i % 2}", f"seq_{i % 2:06d}", "masks", f"{i:05d}.png")
        m = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        c, box = item["center"].numpy(), 200 * item["scale"].item()
        assert item["img"].shape[-1] == R and item["mask"].shape == (256, 256)  # official grid
        ref = crop_image(m, c, box, 256, nearest=True) > 0
        np.testing.assert_array_equal(item["mask"].numpy().astype(bool), ref)
        assert item["mask_valid"]
    assert not _ds(root, "emdb-p1")[0]["mask_valid"]            # emdb-p1: no masks


def test_heatmap_samples_shuffled_seeded_and_inside_rule(release):
    root, _ = release
    name = "static-hdri"
    ds = _ds(root, name, seed=3)
    with gzip.open(SPLITS[name].hm_samples_dir(root) / "0000001.npy.gz") as f:
        stored = np.load(f)
    first = ds[1]
    rows = []
    for s in range(NS):                   # every drawn sample is one stored row (all joints)
        xy = first["hm_samples"][:, s].numpy()
        match = [r for r in range(len(stored)) if np.allclose(stored[r, :, :2], xy)]
        assert len(match) == 1
        r = match[0]
        rows.append(r)
        np.testing.assert_allclose(first["hm_values"][:, s], stored[r, :, 2], rtol=1e-6)
        dist = stored[r, :, 3]
        np.testing.assert_allclose(first["hm_samples_mask_dist"][:, s],
                                   np.where(dist <= 0.71, 0, dist), rtol=1e-6)
    assert len(set(rows)) == NS and rows != list(range(NS))    # shuffled, without repeats
    np.testing.assert_allclose(first["hm_max_conf"], stored[:, :, 2].max(0), rtol=1e-6)
    again = _ds(root, name, seed=3)[1]
    torch.testing.assert_close(again["hm_samples"], first["hm_samples"])
    assert not torch.equal(ds[1]["hm_samples"], first["hm_samples"])        # next epoch
    assert not torch.equal(_ds(root, name, seed=4)[1]["hm_samples"], first["hm_samples"])


def test_object_arrays_are_read_without_pickle(tmp_path, release):
    root, _ = release
    obj = tmp_path / "obj"
    write_release(obj, splits=("3dpw-test-cam",), rows=8, object_strings=True)
    with np.load(SPLITS["3dpw-test-cam"].annotation_path(obj), allow_pickle=True) as f:
        assert f["imgname"].dtype == object
    a, b = _ds(obj, "3dpw-test-cam"), _ds(root, "3dpw-test-cam")
    assert list(a.imgname) == list(b.imgname)
    assert [a[i]["gender"].item() for i in range(8)] == [b[i]["gender"].item() for i in range(8)]
    import datetime

    bad = tmp_path / "bad.npz"
    np.savez(bad, imgname=np.array([datetime.date(2020, 1, 1)], dtype=object))
    with pytest.raises(DataFormatError, match="imgname.*datetime"):
        read_npz(bad)
    np.savez(bad, imgname=np.array([1, "a"], dtype=object))
    with pytest.raises(DataFormatError, match="non-string"):
        read_npz(bad)
    np.savez(bad, imgname=np.array(["a"]), proj_verts=np.array([1, "a"], dtype=object))
    assert list(read_npz(bad, keys=("imgname", "center"))) == ["imgname"]   # others skipped


def _rewrite(path, **replace):
    arrays = read_npz(path)
    arrays.update(replace)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})


def test_errors_name_file_key_and_shape(tmp_path):
    root = tmp_path / "r"
    write_release(root, splits=("static-hdri", "emdb-p1-occl"), rows=4, hm_samples=10)
    annot = SPLITS["static-hdri"].annotation_path(root)
    saved = annot.read_bytes()
    for key, value, pattern in (
            ("pose_cam", np.zeros((4, 60)), r"'pose_cam' has shape \(4, 60\).*\(N, >= 66\)"),
            ("gtkps", None, r"'gtkps' is missing.*\(N, >= 24, 2\|3\)"),
            ("object_occlusion", None, "'object_occlusion' is missing"),
            ("vitpose", np.zeros((4, 17, 2)), r"'vitpose'.*\(N, 17, 3\)")):
        _rewrite(annot, **{key: value})
        with pytest.raises(DataFormatError, match=pattern) as err:
            OfficialDataset(root, "static-hdri")
        assert str(annot) in str(err.value)
        annot.write_bytes(saved)
    _rewrite(SPLITS["emdb-p1-occl"].annotation_path(root), valid_emdb_mask=None)
    with pytest.raises(DataFormatError, match="valid_emdb_mask"):
        OfficialDataset(root, "emdb-p1-occl")
    shutil.rmtree(root / "annotations")
    with pytest.raises(FileNotFoundError, match="static_hdri|20221010_3_1000"):
        OfficialDataset(root, "static-hdri")


def test_missing_or_malformed_item_files(tmp_path):
    root = tmp_path / "r"
    write_release(root, splits=("static-hdri",), rows=5, hm_samples=10, bad_rows=False)
    ds = _ds(root, "static-hdri")
    hm = SPLITS["static-hdri"].hm_samples_dir(root)
    with gzip.open(hm / "0000000.npy.gz", "wb") as f:
        np.save(f, np.zeros((10, 17, 3), np.float32))
    with pytest.raises(DataFormatError, match=r"0000000.npy.gz.*\(S, 17, 4\)"):
        ds[0]
    (hm / "0000001.npy.gz").unlink()
    with pytest.raises(FileNotFoundError, match="0000001.npy.gz"):
        ds[1]
    assert ds.mask_path(2) is None                              # object-occluded row
    ds.mask_path(3).unlink()
    with pytest.raises(FileNotFoundError, match="mask .*_env.png"):
        ds[3]
    ds.image_path(4).unlink()
    with pytest.raises(FileNotFoundError, match="image .*seq_000000_0004"):
        ds[4]
    with pytest.raises(KeyError, match="unknown official split"):
        OfficialDataset(root, "static-hdr")


def test_filter_bounds_without_orig_shape_follow_the_split(tmp_path):
    """No orig_shape: 1280 x 720 frames, 720 x 1280 (portrait) for the closeup splits."""
    root = tmp_path / "r"
    write_release(root, splits=("static-hdri", "closeup-gym"), rows=4, hm_samples=10,
                  bad_rows=False)
    for name, x_kept, x_dropped in (("static-hdri", 1370.0, 1390.0),
                                    ("closeup-gym", 810.0, 830.0)):
        path = SPLITS[name].annotation_path(root)
        raw = read_npz(path)
        vit = raw["vitpose"].copy()
        vit[0, 5, 1], vit[1, 5, 1] = x_kept, x_dropped           # stored as (y, x, conf)
        vit[0, 5, 2] = vit[1, 5, 2] = 0.1                         # not in the error term
        _rewrite(path, vitpose=vit, orig_shape=None)
        assert list(_ds(root, name).rows) == [0, 2, 3]

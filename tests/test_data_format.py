"""Dataset folder format: HumrDataset items against the documented schema and the raw shards,
exact shard round trips, corrupted folders whose errors name the key and the file, and the
docstring examples of the data modules."""
import doctest
import importlib
import json
import shutil
import zipfile

import numpy as np
import pytest
import torch

from humr.data import DataFormatError, HumrDataset, make_dataloader
from humr.data.format import read_meta, read_shard, write_shard

R, N_HM, P, D, NB = 64, 150, 4, 72, 10          # the small_synth fixture (conftest.py)
F32, U8, BOOL, I64 = torch.float32, torch.uint8, torch.bool, torch.int64
# docs/conventions.md, "Sample schema", one example (no batch dimension)
SCHEMA = {
    "img": ((3, R, R), F32), "center": ((2,), F32), "scale": ((1,), F32),
    "orig_shape": ((2,), F32), "focal": ((2,), F32), "pose": ((D,), F32), "betas": ((NB,), F32),
    "kp2d_gt": ((24, 3), F32), "coco_gt": ((17, 3), F32), "cond_kp": ((17, 3), F32),
    "hm_samples": ((17, N_HM, 2), F32), "hm_values": ((17, N_HM), F32),
    "hm_max_conf": ((17,), F32), "hm_samples_mask_dist": ((17, N_HM), F32),
    "mask": ((R, R), U8), "mask_valid": ((), BOOL), "posterior": ((P, D), F32),
    "posterior_count": ((), I64), "coco_visible": ((17,), BOOL),
}
MEAN, STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])   # ImageNet


def _raw(root, name):
    with np.load(root / name) as f:
        return {k: f[k] for k in f.files}


def test_items_follow_the_schema_and_the_stored_arrays(small_synth):
    ds = HumrDataset(small_synth, "train")
    assert len(ds) == 3 and len(HumrDataset(small_synth, "test")) == 1
    # examples 0, 1 in the first shard, example 2 in the second
    rows = [(_raw(small_synth, "train/shard_00000.npz"), 0),
            (_raw(small_synth, "train/shard_00000.npz"), 1),
            (_raw(small_synth, "train/shard_00001.npz"), 0)]
    for index, (raw, row) in enumerate(rows):
        item = ds[index]
        assert set(item) == set(SCHEMA)
        for key, (shape, dtype) in SCHEMA.items():
            assert tuple(item[key].shape) == shape and item[key].dtype == dtype, key
        img = raw["img"][row].astype(np.float64) / 255.0                  # (R, R, 3) RGB uint8
        np.testing.assert_allclose(item["img"].double().numpy(),
                                   ((img - MEAN) / STD).transpose(2, 0, 1), atol=1e-5)
        for key in SCHEMA:
            if key != "img":
                np.testing.assert_array_equal(item[key].numpy(), raw[key][row], err_msg=key)
        assert set(np.unique(item["mask"].numpy())) <= {0, 1}
        assert 1 <= int(item["posterior_count"]) <= P
    assert torch.equal(ds[-1]["pose"], ds[2]["pose"])
    with pytest.raises(IndexError, match="out of range"):
        ds[3]


def test_dataloader_stacks_items_into_batches(small_synth):
    loader = make_dataloader(small_synth, "train", batch_size=2)
    batch = next(iter(loader))
    ds = HumrDataset(small_synth, "train")
    for key, (shape, dtype) in SCHEMA.items():
        assert tuple(batch[key].shape) == (2, *shape) and batch[key].dtype == dtype, key
        assert torch.equal(batch[key][1], ds[1][key]), key
    orders = [[float(b["center"][0, 0]) for b in make_dataloader(small_synth, "train", 1,
                                                                 shuffle=True, seed=s)]
              for s in (3, 3)]
    assert orders[0] == orders[1]


def test_write_read_shard_round_trip_is_exact(tmp_path):
    rng = np.random.default_rng(0)
    f32 = rng.normal(size=(3, 5)).astype(np.float32)
    f32[0, :4] = [np.nan, -0.0, np.inf, np.float32(1e-45)]               # NaN, -0, inf, subnormal
    arrays = {
        "f32": f32, "f64": rng.normal(size=(2, 2, 2)), "u8": rng.integers(0, 256, (4, 7), np.uint8),
        "b": rng.random(9) < 0.5, "i64": np.array([-(2 ** 62), 0, 2 ** 62]),
        "i32": np.arange(6, dtype=np.int32).reshape(2, 3), "scalar": np.array(7.5),
        "empty": np.zeros((0, 3), np.float32), "view": np.arange(12.0).reshape(3, 4).T,
    }
    path = tmp_path / "s.npz"
    write_shard(path, arrays)
    for back in (read_shard(path), _raw(tmp_path, "s.npz")):               # also plain numpy
        assert set(back) == set(arrays)
        for key, value in arrays.items():
            assert back[key].dtype == value.dtype and back[key].shape == value.shape, key
            assert np.ascontiguousarray(value).tobytes() == back[key].tobytes(), key   # bitwise
    # reproducible: the same content (in any key order) gives the same bytes, atomically
    write_shard(tmp_path / "t.npz", dict(reversed(list(arrays.items()))))
    assert (tmp_path / "t.npz").read_bytes() == path.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.npz", "t.npz"]   # no temp files
    np.savez(tmp_path / "obj.npz", a=np.array([{"x": 1}], dtype=object))
    with pytest.raises(DataFormatError, match="not a readable npz shard") as info:
        read_shard(tmp_path / "obj.npz")                                      # no pickles
    assert str(tmp_path / "obj.npz") in str(info.value)


# -- corrupted folders ---------------------------------------------------------------------
BAD = "train/shard_00001.npz"        # the second shard: the error must name this file


@pytest.fixture
def copy(small_synth, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(small_synth, root)
    return root


def _edit(root, change, name=BAD):
    arrays = _raw(root, name)
    change(arrays)
    np.savez_compressed(root / name, **arrays)


def _error(root, split="train"):
    with pytest.raises(DataFormatError) as info:
        HumrDataset(root, split)
    return str(info.value)


def _set(key, index, value):
    def change(a):
        a[key] = a[key].copy()
        a[key][index] = value
    return change


def _replace(key, fn):
    def change(a):
        a[key] = fn(a[key])
    return change


@pytest.mark.parametrize("key, change, expected", [
    ("hm_values", _set("hm_values", (0, 3, 5), np.nan),
     "holds NaN or infinite values (first at index (0, 3, 5))"),
    ("center", _set("center", (0, 1), np.inf), "holds NaN or infinite"),
    ("hm_samples_mask_dist", _set("hm_samples_mask_dist", (0, 2, 1), -np.inf),
     "holds NaN or infinite"),
    ("coco_gt", _replace("coco_gt", lambda a: a[..., :2]),
     "has shape (1, 17, 2), expected (N, 17, 3)"),
    ("mask", _replace("mask", lambda a: a[:, :32, :32]),
     "has shape (1, 32, 32), expected (N, R, R) with N=1, R=64"),
    ("posterior", _replace("posterior", lambda a: a[..., :69]), "expected (N, P, D)"),
    ("hm_values", _replace("hm_values", lambda a: a[:, :, :100]), "has shape (1, 17, 100)"),
    ("mask", _replace("mask", lambda a: a.astype(np.float32)),
     "has dtype float32, expected uint8"),
    ("img", _replace("img", lambda a: a.astype(np.int16)), "has dtype int16, expected uint8"),
    ("pose", _replace("pose", lambda a: a.astype(np.int32)), "has dtype int32, expected float"),
    ("mask_valid", _replace("mask_valid", lambda a: a.astype(np.uint8)), "expected bool"),
    ("cond_kp", lambda a: a.pop("cond_kp"), "is missing; expected an array of shape (N, 17, 3)"),
])
def test_bad_values_shapes_dtypes_and_missing_keys_name_key_and_file(copy, key, change, expected):
    _edit(copy, change)
    msg = _error(copy)
    assert str(copy / BAD) in msg and f"key '{key}'" in msg and expected in msg, msg


def test_infinite_mask_distance_is_allowed_for_an_empty_mask(copy):
    """+inf is the documented distance to an empty mask; only NaN / -inf are errors."""
    _edit(copy, _set("hm_samples_mask_dist", (0, 4, 7), np.inf))
    assert torch.isinf(HumrDataset(copy, "train")[2]["hm_samples_mask_dist"][4, 7])


def test_unknown_keys_and_keys_differing_between_shards(copy):
    _edit(copy, lambda a: a.update(extra=np.zeros(1)))
    msg = _error(copy)
    assert str(copy / BAD) in msg and "unknown keys ['extra']" in msg
    _edit(copy, lambda a: (a.pop("extra"), a.pop("focal")))   # optional key, but not in shard 0
    msg = _error(copy)
    assert str(copy / BAD) in msg and "differ from the first shard" in msg


def _deflate_garbage(path):
    """Overwrite the first bytes of the deflate stream of the first entry (invalid block type)."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.infolist()[0]
    off = info.header_offset
    start = off + 30 + int.from_bytes(data[off + 26:off + 28], "little") + \
        int.from_bytes(data[off + 28:off + 30], "little")
    data[start:start + 4] = b"\x07\xff\xff\xff"      # BFINAL = 1, BTYPE = 11 (reserved)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [
    lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),     # truncated
    lambda p: p.write_bytes(np.random.default_rng(0).bytes(4000)),        # garbage
    lambda p: p.write_bytes(b""),                                         # empty file
    _deflate_garbage,                                                     # corrupt content
    lambda p: p.unlink(),                                                 # missing
], ids=["truncated", "garbage", "empty", "deflate", "missing"])
def test_damaged_shard_files_name_the_file(copy, damage):
    damage(copy / BAD)
    msg = _error(copy)
    assert msg.startswith(str(copy / BAD) + ": "), msg
    assert "not a readable npz shard" in msg or "shard file is missing" in msg


def test_meta_file_missing_incomplete_or_inconsistent(copy):
    meta_path = copy / "meta.json"
    meta = json.loads(meta_path.read_text())
    cases = [
        ({**meta, "complete": False}, "incomplete"),
        ({**meta, "version": 2}, "version 2, expected 'humr-shards' version 1"),
        ({k: v for k, v in meta.items() if k != "complete"}, "incomplete"),
    ]
    for bad, expected in cases:
        meta_path.write_text(json.dumps(bad))
        msg = _error(copy)
        assert str(meta_path) in msg and expected in msg, msg
    meta_path.write_text(json.dumps(meta)[:-5])
    assert "not valid JSON" in _error(copy)
    # counts and splits
    splits = {**meta["splits"], "train": {**meta["splits"]["train"], "count": 4}}
    meta_path.write_text(json.dumps({**meta, "splits": splits}))
    msg = _error(copy)
    assert str(copy) in msg and "split 'train' holds 3 examples, meta.json lists 4" in msg
    meta_path.write_text(json.dumps(meta))
    msg = _error(copy, "val")
    assert str(meta_path) in msg and "no split 'val'" in msg
    assert read_meta(copy)["crop_res"] == R
    meta_path.unlink()
    msg = _error(copy)
    assert str(meta_path) in msg and "missing" in msg
    with pytest.raises(DataFormatError, match="missing"):
        read_meta(copy / "nowhere")


@pytest.mark.parametrize("name", ["humr.data.schema", "humr.data.dataset", "humr.data.augment"])
def test_docstring_examples_run(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0

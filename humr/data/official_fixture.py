"""A tiny tree in the release's layout (DATASET.MD), for tests and smoke runs of the official
data path without the real data.

:func:`write_release` writes, for each requested split of
:data:`humr.data.official_splits.SPLITS`, an annotation file with the official keys, dtypes and
shapes, small images (BEDLAM closeup images stored sideways, as released), heatmap-sample files
(training splits), BEDLAM / AGORA person masks (AGORA's background grey 76) and the EMDB
Mask-RCNN masks. Rows are plausible people: the person is a bright rectangle around the box
centre, its mask the same rectangle, detections the ground truth plus a small offset, heatmap
samples spread around the detections. With ``bad_rows`` the last three rows of every training
split break one rule of the official filter each (detection error, too few confident joints,
a detection 150 px left of the image); the returned manifest lists the rows the filter keeps.

Example::

    from humr.data.official_fixture import write_release
    manifest = write_release("/tmp/release", rows=6)
    # humr train --config cfg.yaml --data /tmp/release --data-format official \
    #     "data.train_splits=[static-hdri, closeup-gym, agora-bfh, 3dpw-train-smplx]"
"""
from __future__ import annotations

import gzip
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from humr.data.official import BODY25_TO_COCO17
from humr.data.official_splits import SPLITS, OfficialSplit

__all__ = ["DEFAULT_SPLITS", "write_release"]

DEFAULT_SPLITS = ("static-hdri", "closeup-gym", "agora-bfh", "3dpw-train-smplx",
                  "3dpw-test-cam", "emdb-p1", "emdb-p1-occl")
PERSON_RGB = (230, 40, 30)
BACKGROUND = 90


def _save_npz(path: Path, arrays: dict, object_strings: bool) -> None:
    if object_strings:      # the official files may hold strings as object arrays (pickled)
        arrays = {k: v.astype(object) if v.dtype.kind == "U" else v for k, v in arrays.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)


def _write_image(path: Path, image: np.ndarray) -> None:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), image):
        raise OSError(f"cannot write {path}")


def _names(split: OfficialSplit, i: int) -> tuple[str, str]:
    """(imgname relative to the split's image folder, sequence)."""
    seq = f"seq_{i % 2:06d}"
    if split.kind == "bedlam":
        return f"{seq}/{seq}_{i:04d}.png", seq
    if split.kind == "agora":
        return f"ag_trainset_{split.name}_{i:05d}_1280x720.png", "images"
    if split.kind == "3dpw":
        return f"imageFiles/{split.name}_{seq}/image_{i:05d}.jpg", seq
    return f"P{i % 2}/{seq}/images/{i:05d}.jpg", seq


def _row_people(rng: np.random.Generator, n: int, hw: tuple[int, int]):
    """Box centre (n, 2), scale (n,), person rectangle half sizes (n, 2), COCO GT (n, 17, 2)."""
    h, w = hw
    center = np.stack([rng.uniform(0.4, 0.6, n) * w, rng.uniform(0.4, 0.6, n) * h], -1)
    scale = np.full(n, 0.45 * min(h, w) / 200.0)
    half = np.stack([np.full(n, 0.12 * min(h, w)), np.full(n, 0.35 * min(h, w))], -1)
    unit = rng.uniform(-0.9, 0.9, (n, 17, 2))
    return center, scale, half, center[:, None] + unit * half[:, None]


def _split_arrays(split: OfficialSplit, rng, n: int, hw: tuple[int, int], bad_rows: bool):
    center, scale, half, coco17 = _row_people(rng, n, hw)
    body25 = rng.uniform(0, 10, (n, 25, 2)) + center[:, None]
    body25[:, list(BODY25_TO_COCO17)] = coco17
    det = coco17 + rng.uniform(-1.0, 1.0, coco17.shape)
    conf = rng.uniform(0.6, 1.05, (n, 17))                    # some raw values above 1
    kept = np.ones(n, bool)
    if bad_rows and split.train and n >= 4:
        det[-3, :, 0] += 3 * 13 * scale[-3]                    # mean error / scale = 39
        conf[-2, :9] = 0.3                                      # only 8 joints above 0.5
        det[-1, 0, 0] = body25[-1, BODY25_TO_COCO17[0], 0] = -150.0   # 150 px off the image
        kept[-3:-1] = False
        kept[-1] = split.kind == "3dpw"                         # 3DPW: no image bound
    if not split.train:
        conf[:, [9, 10]] = rng.uniform(0.1, 0.45, (n, 2))     # occluded wrists (mask metrics)
    vitpose = np.concatenate([det[..., ::-1], conf[..., None]], -1)   # stored as (y, x, conf)
    nj = split.num_pose_joints
    pose = rng.normal(0, 0.2, (n, 3 * nj + (99 if split.train else 0)))
    pose[:, :3] = [np.pi, 0.0, 0.0]
    k = np.zeros((n, 3, 3))
    k[:, 0, 0] = k[:, 1, 1] = 1.2 * max(hw)
    k[:, 0, 2], k[:, 1, 2], k[:, 2, 2] = hw[1] / 2, hw[0] / 2, 1.0
    arrays = {"center": center, "scale": scale, "pose_cam": pose.astype(np.float32),
              "shape": rng.normal(0, 0.5, (n, 11 if split.train else 10)).astype(np.float32),
              "gt_coco_25j": body25, "vitpose": vitpose.astype(np.float32), "cam_int": k}
    if split.train:
        gtkps = rng.uniform(0, 1, (n, 45, 3)) * [hw[1], hw[0], 0] + [0, 0, 1]
        arrays["gtkps"] = gtkps.astype(np.float32)
        arrays["orig_shape"] = np.tile(np.array(hw, np.float64), (n, 1))
    if split.env_masks:
        arrays["object_occlusion"] = np.arange(n) % 4 == 2
    if split.emdb_masks:
        arrays["valid_emdb_mask"] = (np.arange(n) % 3 != 1).astype(np.int64)
    if not split.train:
        words = ("m", "f") if split.kind == "3dpw" else ("male", "female")
        arrays["gender"] = np.array([words[i % 2] for i in range(n)])
    return arrays, center, half, det, kept


def _person_image(hw, center, half):
    image = np.full((*hw, 3), BACKGROUND, np.uint8)
    mask = np.zeros(hw, bool)
    x0, y0 = np.floor(center - half).astype(int)
    x1, y1 = np.ceil(center + half).astype(int)
    mask[max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)] = True
    image[mask] = PERSON_RGB[::-1]                              # BGR on disk
    return image, mask


def _stored(split: OfficialSplit, array: np.ndarray) -> np.ndarray:
    """The annotated (upright) frame as released: closeup frames are stored turned 90 degrees
    counter-clockwise (the reader turns them back clockwise)."""
    return np.ascontiguousarray(np.rot90(array, 1)) if split.closeup else array


def _heatmap_file(path: Path, rng, det: np.ndarray, num: int) -> None:
    xy = det[None] + rng.normal(0, 2.0, (num, 17, 2))
    value = rng.uniform(0.05, 1.0, (num, 17))
    dist = np.where(rng.uniform(size=(num, 17)) < 0.5, rng.uniform(0, 0.71, (num, 17)),
                    rng.uniform(0.72, 6.0, (num, 17)))
    data = np.concatenate([xy, value[..., None], dist[..., None]], -1).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wb", compresslevel=1) as f:
        np.save(f, data)


def write_release(root: str | Path, splits: Sequence[str] = DEFAULT_SPLITS, rows: int = 6,
                  image_hw: tuple[int, int] = (72, 128), hm_samples: int = 200, seed: int = 0,
                  bad_rows: bool = True, object_strings: bool = False,
                  images_per_split: int | None = None) -> dict[str, dict]:
    """Write a release-format tree under ``root``.

    Args:
        root: the data folder to write (created).
        splits: official split names.
        rows: annotation rows per split.
        image_hw: (h, w) of the (upright) images; closeup splits get (w, h), portrait.
        hm_samples: S heatmap samples per file.
        seed: random seed of the contents.
        bad_rows: make the last three rows of each training split fail the official filter.
        object_strings: store ``imgname`` / ``gender`` as object arrays (pickled), as the
            official files may.
        images_per_split: distinct image files per split (rows share them round-robin;
            default one per row).
    Returns:
        ``split -> {"rows": N, "kept": unfiltered rows the training filter keeps,
        "image_hw": (h, w) of the annotated frame}``.
    """
    root = Path(root)
    manifest = {}
    for s, name in enumerate(splits):
        split = SPLITS[name]
        rng = np.random.default_rng([seed, s])
        hw = tuple(image_hw[::-1]) if split.closeup else tuple(image_hw)
        arrays, center, half, det, kept = _split_arrays(split, rng, rows, hw, bad_rows)
        n_img = rows if images_per_split is None else max(1, min(rows, images_per_split))
        names = []
        for i in range(rows):
            rel, _ = _names(split, i % n_img)
            names.append(rel)
            if i >= n_img:
                continue
            image, person = _person_image(hw, center[i], half[i])
            ext = ".jpg" if split.kind in ("3dpw", "emdb") else ".png"
            full = split.image_root(root) / rel
            _write_image(full.with_suffix(ext), _stored(split, image))
            if split.env_masks:
                if split.kind == "agora":
                    m = np.where(person, 200, 76).astype(np.uint8)   # background grey 76
                    mpath = root / "env_masks" / "images" / f"{full.stem}_all_person.png"
                else:
                    m = np.where(person, 0, 255).astype(np.uint8)    # person 0, rest 255
                    mpath = root / "env_masks" / full.parents[2].name / full.parent.name / \
                        f"{full.stem}_env.png"
                _write_image(mpath, _stored(split, m))
            if split.emdb_masks:
                rel_mask = Path(rel.replace("/images/", "/masks/")).with_suffix(".png")
                _write_image(split.image_root(root) / "masks" / rel_mask,
                             np.where(person, 255, 0).astype(np.uint8))
        arrays["imgname"] = np.array(names)
        if split.train:
            for i in range(rows):
                _heatmap_file(split.hm_samples_dir(root) / f"{i:07d}.npy.gz", rng, det[i],
                              hm_samples)
        _save_npz(split.annotation_path(root), arrays, object_strings)
        manifest[name] = {"rows": rows, "kept": np.flatnonzero(kept).tolist(), "image_hw": hw}
    return manifest

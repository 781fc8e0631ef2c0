"""One split of the paper's data release read as it is stored, mapped onto humr's schema.

The split's files follow :mod:`humr.data.official_splits` (DATASET.MD of the official code).
Annotation keys read (N rows; ``*`` = only some splits):

* ``imgname`` (N,) str, ``center`` (N, 2), ``scale`` (N,) (box side ``200 * scale``),
  ``pose_cam`` (N, >= 66) axis-angle in the camera frame, ``shape`` (N, nb),
  ``gt_coco_25j`` (N, 25, 2 | 3) OpenPose BODY_25 ground truth, ``vitpose`` (N, 17, 3)
  ViTPose detections stored as ``(y, x, confidence)``;
* training splits: ``gtkps`` (N, >= 24, 2 | 3) body-model joints in full-image px;
  BEDLAM / AGORA: ``object_occlusion`` (N,) bool (an object hides part of the person: the mask
  loss skips the row); ``emdb-p1-occl``: ``valid_emdb_mask`` (N,) (1 = the mask is good);
* optional: ``cam_int`` (N, 3, 3) (-> ``focal`` of the training splits; the official
  evaluation ignores it and estimates ``sqrt(h^2 + w^2)``), ``orig_shape`` (N, 2) (h, w),
  ``gender`` (N,) str (``m...`` / ``f...``; test splits).

Mapping (official ``train/dataset/dataset.py`` semantics, humr's own code):

* ``pose``: training splits hold SMPL-X body poses, ``pose_cam[:, :66]`` (22 joints); test
  splits SMPL poses (24 joints). The first ``min(22 | 24, num_joints)`` joints are taken (SMPL
  and SMPL-X share joints 0-21) and missing joints are zero (rest): an SMPL-X pose for a
  24-joint SMPL body gets resting hands, never the SMPL-X jaw / eye rotations.
* ``kp2d_gt`` = ``gtkps[:, :24]`` with flag 1, except SMPL-X joints 22-23 (jaw, left eye: no
  SMPL counterpart) which get flag 0; the test splits have no ``gtkps``: all flags 0.
* ``betas``: ``shape`` (11 SMPL-X / 10 SMPL coefficients) cut or zero-padded to
  ``num_betas``.
* ``coco_gt`` from BODY_25 (:data:`BODY25_TO_COCO17`), ``cond_kp`` = ``vitpose`` as
  ``(x, y, conf)`` with conf clipped to [0, 1]; ``gender`` 0 neutral, 1 male, 2 female
  (training splits: neutral).
* Training filter (section 4.5; on by default for training splits, never for test splits):
  a row is kept iff ``mean_k(|coco_gt_k - cond_k| [conf_k > 0.2]) / scale < 13``, more than 8
  joints have ``conf > 0.5`` and, except for 3DPW, every detection lies within 100 px of the
  image (``orig_shape``, else 1280 x 720, 720 x 1280 for closeup splits). Heatmap sample files
  are named by the unfiltered row (:attr:`OfficialDataset.rows`).
* Images: OpenCV, ``.png`` falling back to ``.jpg``; closeup splits turned 90 degrees
  clockwise; cropped to ``crop_res`` (zero outside the image).
* Masks (``mask`` is person-plausible = 1): BEDLAM ``<stem>_env.png`` (person pixels < 128),
  AGORA ``<stem>_all_person.png`` (everything but the background grey 76 is person), both
  turned like their image, cropped, thresholded and dilated (3 x 3 kernel, ``mask_dilation``
  iterations, 3 officially); EMDB ``masks/P<k>/<seq>/masks/NNNNN.png`` (person > 0, not
  dilated) only where ``valid_emdb_mask``, on a ``mask_res`` grid (256 officially, whatever
  the image crop: MinDist is in px of that grid). ``mask_valid`` is False without a mask, for
  object-occluded rows and for empty crops.
* Heatmap samples ``heatmap_samples/<split>/<row:07d>.npy.gz`` (S, 17, 4) (training splits,
  required there): ``hm_max_conf`` = max value over all S; the S samples are shuffled (seeded by
  ``(seed, index, reads of this index)``) and the first ``num_samples`` kept (fewer: padded with
  value 0); a stored mask distance <= 0.71 px (half a pixel diagonal) counts as inside (0).
  Test splits have no sample files: the detection repeated, value = confidence, distance 0.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from humr.data.dataset import to_sample
from humr.data.official_io import read_heatmap_samples, read_npz
from humr.data.official_splits import OfficialSplit, get_split
from humr.data.schema import REQUIRED_KEYS, DataFormatError, validate_arrays

__all__ = ["BODY25_TO_COCO17", "INSIDE_MASK_DIST", "OfficialDataset", "crop_image",
           "filter_rows"]

# OpenPose BODY_25: 0 nose, 1 neck, 2-4 right shoulder/elbow/wrist, 5-7 left, 8 mid hip,
# 9-11 right hip/knee/ankle, 12-14 left, 15 right eye, 16 left eye, 17 right ear, 18 left ear
BODY25_TO_COCO17 = (0, 16, 15, 18, 17, 5, 2, 6, 3, 7, 4, 12, 9, 13, 10, 14, 11)
INSIDE_MASK_DIST = 0.71            # px: a stored sample this close to the mask is inside
FILTER_ERROR = 13.0                # mean masked detection error / box scale
FILTER_CONF, FILTER_VISIBLE, FILTER_MIN_VISIBLE = 0.2, 0.5, 8
FILTER_PAD = 100.0                 # px detections may lie outside the image
AGORA_BACKGROUND = 76
GENDER_CODES = {"m": 1, "f": 2}    # 0 = neutral
EVAL_MASK_RES = 256                # the official mask metrics use a 256 x 256 crop grid
ANNOTATION_KEYS = ("imgname", "center", "scale", "pose_cam", "shape", "gt_coco_25j", "vitpose",
                   "gtkps", "object_occlusion", "valid_emdb_mask", "cam_int", "orig_shape",
                   "gender")            # the keys read; others in the files are skipped


def crop_image(image: np.ndarray, center: np.ndarray, box: float, res: int,
               nearest: bool = False) -> np.ndarray:
    """Square crop (res, res[, C]) of side ``box`` full-image px around ``center`` (cv2).

    Full-image point ``p`` goes to continuous crop px ``(p - c + b / 2) res / b``; cv2 works on
    pixel indices (centres at integers), hence the half-pixel terms. Zero outside the image.
    """
    import cv2

    a = res / float(box)
    t = (0.5 - np.asarray(center, dtype=np.float64) + box / 2.0) * a - 0.5
    m = np.array([[a, 0.0, t[0]], [0.0, a, t[1]]])
    flags = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    return cv2.warpAffine(image, m, (res, res), flags=flags, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=0)


def filter_rows(coco_gt: np.ndarray, cond: np.ndarray, scale: np.ndarray,
                image_hw: np.ndarray | None) -> np.ndarray:
    """(N,) bool: rows the official training filter keeps (module docstring).

    Args:
        coco_gt: (N, 17, >= 2) COCO ground truth, full-image px.
        cond: (N, 17, 3) detections (x, y, confidence in [0, 1]).
        scale: (N,) box scale.
        image_hw: (N, 2) image (h, w) for the 100 px bound, None to skip the bound (3DPW).
    """
    err = np.linalg.norm(coco_gt[..., :2] - cond[..., :2], axis=-1)          # (N, 17)
    keep = (err * (cond[..., 2] > FILTER_CONF)).mean(-1) / scale < FILTER_ERROR
    keep &= (cond[..., 2] > FILTER_VISIBLE).sum(-1) > FILTER_MIN_VISIBLE
    if image_hw is not None:
        h, w = image_hw[:, None, 0], image_hw[:, None, 1]
        x, y = cond[..., 0], cond[..., 1]
        keep &= ((x >= -FILTER_PAD) & (x <= w + FILTER_PAD)
                 & (y >= -FILTER_PAD) & (y <= h + FILTER_PAD)).all(-1)
    return keep


def _require(raw: dict, key: str, ok: bool, spec: str, path: Path, n: int) -> None:
    if key not in raw:
        raise DataFormatError(f"{path}: key '{key}' is missing; expected an array of shape "
                              f"{spec} (N = {n} rows of imgname)")
    if not ok:
        raise DataFormatError(f"{path}: key '{key}' has shape {np.shape(raw[key])} and dtype "
                              f"{np.asarray(raw[key]).dtype}, expected {spec} with N = {n}")


def _check_keys(raw: dict, split: OfficialSplit, path: Path) -> int:
    """Validate the keys and shapes the split needs; returns N."""
    if "imgname" not in raw:
        raise DataFormatError(f"{path}: key 'imgname' is missing; expected (N,) image paths")
    n = len(raw["imgname"])
    s = lambda k: np.shape(raw[k]) if k in raw else None
    pose_d = 3 * split.num_pose_joints
    checks = [("center", "(N, 2)", lambda: s("center") == (n, 2)),
              ("scale", "(N,)", lambda: s("scale") == (n,)),
              ("pose_cam", f"(N, >= {pose_d})",
               lambda: len(s("pose_cam")) == 2 and s("pose_cam")[0] == n
               and s("pose_cam")[1] >= pose_d),
              ("shape", "(N, nb)", lambda: len(s("shape")) == 2 and s("shape")[0] == n),
              ("gt_coco_25j", "(N, 25, 2|3)", lambda: s("gt_coco_25j") in ((n, 25, 2), (n, 25, 3))),
              ("vitpose", "(N, 17, 3)", lambda: s("vitpose") == (n, 17, 3))]
    if split.train:
        checks.append(("gtkps", "(N, >= 24, 2|3)",
                       lambda: len(s("gtkps")) == 3 and s("gtkps")[0] == n
                       and s("gtkps")[1] >= 24 and s("gtkps")[2] in (2, 3)))
    if split.env_masks:
        checks.append(("object_occlusion", "(N,) bool", lambda: s("object_occlusion") == (n,)))
    if split.emdb_masks:
        checks.append(("valid_emdb_mask", "(N,)", lambda: s("valid_emdb_mask") == (n,)))
    optional = [("cam_int", "(N, 3, 3)", lambda: s("cam_int") == (n, 3, 3)),
                ("orig_shape", "(N, 2)", lambda: s("orig_shape") == (n, 2)),
                ("gender", "(N,) str", lambda: s("gender") == (n,)
                 and np.asarray(raw["gender"]).dtype.kind in "US")]
    for key, spec, ok in checks + [c for c in optional if c[0] in raw]:
        _require(raw, key, key in raw and ok(), spec, path, n)
    numeric = [k for k, _, _ in checks + optional if k in raw and k != "gender"]
    for key in numeric:
        if np.asarray(raw[key]).dtype.kind not in "fiub":
            raise DataFormatError(f"{path}: key '{key}' has dtype {raw[key].dtype}, expected "
                                  "numbers")
    return n


def _with_flag(points: np.ndarray) -> np.ndarray:
    if points.shape[-1] == 3:
        return points
    return np.concatenate([points, np.ones(points.shape[:-1] + (1,), points.dtype)], -1)


def _gender(raw: dict, n: int, path: Path) -> np.ndarray:
    if "gender" not in raw:
        return np.zeros(n, np.int64)
    first = [str(g)[:1].lower() for g in raw["gender"]]
    bad = sorted({g for g in first if g not in GENDER_CODES})
    if bad:
        raise DataFormatError(f"{path}: key 'gender' holds values starting with {bad}; "
                              "expected 'm...' or 'f...'")
    return np.array([GENDER_CODES[g] for g in first], np.int64)


class OfficialDataset(Dataset):
    """Examples of one split of the release, streamed from its files (see module doc).

    Only the annotation rows are held in memory (compact float32 arrays, about 1 KB per row,
    shared copy-on-write with DataLoader workers); images, masks and heatmap-sample files are
    read and decoded per item.

    Args:
        root: the release's data folder.
        split: official split name (:data:`humr.data.official_splits.SPLITS`) or an
            :class:`OfficialSplit`.
        crop_res: R, crop side in pixels (official: 224 images; masks evaluated at 256).
        num_joints: J of ``pose`` (24 SMPL, 22 SMPL-X body; see the module doc).
        num_betas: length of ``betas``: the stored ``shape`` (11 SMPL-X, 10 SMPL coefficients)
            cut or padded with zeros to it, so that all splits batch together.
        num_samples: heatmap samples per joint (150 in the paper).
        filter: apply the training filter (default: training splits only).
        seed: seeds the shuffling of heatmap samples (and the augmentation).
        mask_dilation: dilation iterations of the training masks (3 x 3 kernel).
        mask_res: side of the EMDB evaluation masks (``emdb-p1-occl``), 256 as the official
            mask metrics; every other split's masks have the crop's side.
        augment: apply ``augmentation`` (default :class:`humr.data.augment.Augmentation`).

    Raises:
        FileNotFoundError / DataFormatError naming the file, the key and the expected shape
        (annotation when built; images, masks and sample files when an item is read).
    """

    def __init__(self, root: str | Path, split: str | OfficialSplit, crop_res: int = 224,
                 num_joints: int = 24, num_betas: int = 10, num_samples: int = 150,
                 filter: bool | None = None,
                 seed: int = 0, mask_dilation: int = 3, mask_res: int = EVAL_MASK_RES,
                 augment: bool = False, augmentation=None) -> None:
        self.root = Path(root)
        self.split = split if isinstance(split, OfficialSplit) else get_split(split)
        self.crop_res, self.num_samples = int(crop_res), int(num_samples)
        self.num_joints, self.num_betas = int(num_joints), int(num_betas)
        self.seed, self.mask_dilation = int(seed), int(mask_dilation)
        self.mask_res = int(mask_res) if self.split.emdb_masks else self.crop_res
        self.annot_path = self.split.annotation_path(self.root)
        self.img_root = self.split.image_root(self.root)
        self.hm_dir = self.split.hm_samples_dir(self.root) if self.split.train else None
        raw = read_npz(self.annot_path, ANNOTATION_KEYS)
        n = _check_keys(raw, self.split, self.annot_path)
        arrays, extra = self._map(raw, n)
        imgname = np.asarray(raw["imgname"]).astype(str)
        del raw                                    # only the mapped float32 rows stay
        do_filter = self.split.train if filter is None else bool(filter)
        if do_filter:
            hw = None if self.split.kind == "3dpw" else arrays.get(
                "orig_shape", np.tile(np.float32(self.split.default_image_shape), (n, 1)))
            keep = filter_rows(arrays["coco_gt"], arrays["cond_kp"], arrays["scale"][:, 0], hw)
        else:
            keep = np.ones(n, bool)
        self.rows = np.flatnonzero(keep)           # unfiltered row of each example
        select = (lambda v: v) if keep.all() else (lambda v: np.ascontiguousarray(v[keep]))
        self.arrays = {k: select(v) for k, v in arrays.items()}
        self.imgname = select(imgname)
        self.object_occlusion = select(extra["object_occlusion"])
        self.valid_emdb_mask = select(extra["valid_emdb_mask"])
        self.augment = bool(augment)
        if self.augment and augmentation is None:
            from humr.data.augment import Augmentation

            augmentation = Augmentation()
        self.augmentation = augmentation
        self._reads = np.zeros(len(self), dtype=np.int64)

    @property
    def name(self) -> str:
        return self.split.name

    def _map(self, raw: dict, n: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        split, path = self.split, self.annot_path
        cond = raw["vitpose"][:, :, [1, 0, 2]].astype(np.float32)
        cond[..., 2] = np.clip(cond[..., 2], 0, 1)
        coco = _with_flag(raw["gt_coco_25j"][:, list(BODY25_TO_COCO17)].astype(np.float32))
        used = min(split.num_pose_joints, self.num_joints)
        pose = np.zeros((n, 3 * self.num_joints), np.float32)
        pose[:, :3 * used] = raw["pose_cam"][:, :3 * used]
        nb = min(self.num_betas, raw["shape"].shape[1])
        betas = np.zeros((n, self.num_betas), np.float32)
        betas[:, :nb] = raw["shape"][:, :nb]
        if split.train:
            kp = _with_flag(raw["gtkps"][:, :24].astype(np.float32)).copy()
            if split.model_type == "smplx":
                kp[:, 22:, 2] = 0.0         # SMPL-X jaw / left eye: no SMPL joint
        else:
            kp = np.zeros((n, 24, 3), np.float32)
        arrays = {"center": raw["center"].astype(np.float32),
                  "scale": raw["scale"].astype(np.float32)[:, None],
                  "pose": pose, "betas": betas,
                  "kp2d_gt": kp, "coco_gt": coco, "cond_kp": cond,
                  "gender": _gender(raw, n, path)}
        if "cam_int" in raw and split.train:   # evaluation: estimated focal, as officially
            arrays["focal"] = raw["cam_int"][:, [0, 1], [0, 1]].astype(np.float32)
        if "orig_shape" in raw:
            arrays["orig_shape"] = raw["orig_shape"].astype(np.float32)
        validate_arrays(arrays, str(path), required=("center", "scale", "pose", "betas"),
                        sizes={"N": n})
        occl = (np.asarray(raw["object_occlusion"], bool) if split.env_masks
                else np.ones(n, bool))       # no training mask: the mask loss skips the row
        valid = (np.asarray(raw["valid_emdb_mask"]) == 1 if split.emdb_masks
                 else np.zeros(n, bool))
        return arrays, {"object_occlusion": occl, "valid_emdb_mask": valid}

    def __len__(self) -> int:
        return len(self.imgname)

    def image_path(self, index: int) -> Path:
        path = self.img_root / self.imgname[index]
        if not path.is_file() and path.suffix == ".png":
            path = path.with_suffix(".jpg")          # the official fallback
        return path

    def _read(self, path: Path, index: int, what: str, flags: int) -> np.ndarray:
        import cv2

        img = cv2.imread(str(path), flags)
        if img is None:
            raise FileNotFoundError(f"{what} {path} of example {index} (row {self.rows[index]} "
                                    f"of {self.annot_path}) is missing or unreadable")
        if self.split.closeup:
            img = cv2.rotate(img, cv2.ROTATE_90_CLOCKWISE)
        return img

    def _image(self, index: int) -> np.ndarray:
        import cv2

        return self._read(self.image_path(index), index, "image", cv2.IMREAD_COLOR)[..., ::-1]

    def mask_path(self, index: int) -> Path | None:
        """Person-mask file of ``index`` (None: the split has none for this row)."""
        full = self.img_root / self.imgname[index]
        if self.split.env_masks and not self.object_occlusion[index]:
            if self.split.kind == "agora":
                return self.root / "env_masks" / full.parent.name / f"{full.stem}_all_person.png"
            return (self.root / "env_masks" / full.parents[2].name / full.parent.name
                    / f"{full.stem}_env.png")
        if self.split.emdb_masks and self.valid_emdb_mask[index]:
            rel = Path(self.imgname[index].replace("/images/", "/masks/")).with_suffix(".png")
            return self.img_root / "masks" / rel
        return None

    def _mask(self, index: int, center: np.ndarray, box: float) -> np.ndarray | None:
        import cv2

        path = self.mask_path(index)
        if path is None:
            return None
        raw = self._read(path, index, "mask", cv2.IMREAD_GRAYSCALE)
        if self.split.emdb_masks:
            return (crop_image(raw, center, box, self.mask_res, nearest=True) > 0).astype(np.uint8)
        if self.split.kind == "agora":      # AGORA: background grey 76, everything else person
            raw = np.where(raw == AGORA_BACKGROUND, 255, 0).astype(np.uint8)
        # person pixels are dark; the zero padding of the crop counts as person-plausible
        person = (crop_image(raw, center, box, self.crop_res) < 127.5).astype(np.uint8)
        if self.mask_dilation:
            person = cv2.dilate(person, np.ones((3, 3), np.uint8), iterations=self.mask_dilation)
        return person

    def _rng(self, index: int) -> np.random.Generator:
        seq = np.random.SeedSequence([self.seed, index, int(self._reads[index])])
        return np.random.default_rng(seq)

    def _heatmap_samples(self, index: int, cond: np.ndarray,
                         rng: np.random.Generator) -> dict[str, np.ndarray]:
        n = self.num_samples
        if self.hm_dir is None:
            return {"hm_samples": np.repeat(cond[:, None, :2], n, 1),
                    "hm_values": np.repeat(cond[:, None, 2], n, 1),
                    "hm_max_conf": cond[:, 2].copy(),
                    "hm_samples_mask_dist": np.zeros((17, n), np.float32)}
        data = read_heatmap_samples(self.hm_dir / f"{int(self.rows[index]):07d}.npy.gz")
        max_conf = data[:, :, 2].max(axis=0) if len(data) else np.zeros(17, np.float32)
        data = data[rng.permutation(len(data))[:n]]
        if len(data) < n:                   # pad: value 0 marks "no sample"
            pad = np.zeros((n - len(data), 17, 4), np.float32)
            pad[:, :, :2] = cond[None, :, :2]
            data = np.concatenate([data, pad])
        dist = data[:, :, 3].T.copy()
        dist[dist <= INSIDE_MASK_DIST] = 0.0
        return {"hm_samples": data[:, :, :2].transpose(1, 0, 2), "hm_values": data[:, :, 2].T,
                "hm_max_conf": max_conf, "hm_samples_mask_dist": dist}

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for split '{self.name}' of {n}")
        index %= n
        row = {k: v[index] for k, v in self.arrays.items()}
        image = self._image(index)
        box = 200.0 * float(row["scale"][0])
        row["img"] = crop_image(np.ascontiguousarray(image), row["center"], box, self.crop_res)
        row.setdefault("orig_shape", np.asarray(image.shape[:2], np.float32))
        rng = self._rng(index)
        self._reads[index] += 1
        row.update(self._heatmap_samples(index, row["cond_kp"], rng))
        mask = self._mask(index, row["center"], box)
        row["mask"] = np.zeros((self.mask_res,) * 2, np.uint8) if mask is None else mask
        row["mask_valid"] = np.array(mask is not None and bool(mask.any()))
        where = f"{self.annot_path} example {index} (row {self.rows[index]})"
        batch = {k: np.asarray(v)[None] for k, v in row.items()}
        mask_only = {k: batch.pop(k) for k in ("mask", "mask_valid")}   # own grid (mask_res)
        validate_arrays(batch, where, required=[k for k in REQUIRED_KEYS if k not in mask_only])
        validate_arrays(mask_only, where, required=tuple(mask_only))
        sample = to_sample(row)
        if self.augment:
            gen = torch.Generator().manual_seed(int(rng.integers(2 ** 62)))
            sample = self.augmentation(sample, gen)
        return sample

"""Loader of the preprocessed annotation files of the paper's code release, on humr's schema.

Layout read (the release's ``data/annotations/*.npz`` and ``data/heatmap_samples/<set>/``):

* annotation npz with ``imgname`` (N,) image paths relative to ``img_root``, ``center`` (N, 2)
  and ``scale`` (N,) of the crop box (side ``200 * scale``), ``pose_cam`` (N, >= J*3)
  axis-angle in the camera frame, ``shape`` (N, nb), ``gtkps`` (N, >= 24, 2 | 3) SMPL joints
  in full-image px, ``gt_coco_25j`` (N, 25, 2 | 3) OpenPose BODY_25 joints, ``vitpose``
  (N, 17, 3) ViTPose detections stored as ``(y, x, confidence)``; optional ``cam_int``
  (N, 3, 3) intrinsics (-> ``focal``), ``orig_shape`` (N, 2), ``object_occlusion`` (N,) bool.
* heatmap samples (optional): ``<hm_samples_dir>/<index:07d>.npy.gz``, a gzip-compressed
  ``.npy`` of shape (S, 17, 4): ``x, y`` full-image px, heatmap value, distance to the person
  mask; the first ``num_samples`` are used (S >= num_samples), ``hm_max_conf`` is the largest
  value of each joint and ``hm_samples_mask_dist`` is copied as stored.
* person masks (optional): ``<mask_dir>/<imgname without extension>_env.png`` with person
  pixels 0 and the rest 255 (BEDLAM's environment masks).

Mapping onto the schema (docs/conventions.md): ``scale`` -> (1,), ``pose`` = ``pose_cam[:, :J*3]``,
``betas`` = ``shape``, ``kp2d_gt`` = ``gtkps[:, :24]`` (+ flag 1 when absent), ``coco_gt`` from
BODY_25 (+ flag 1 when absent), ``cond_kp`` = ``vitpose`` as (x, y, conf) with conf clipped
to [0, 1]. Documented fallbacks: without heatmap sample files the ``num_samples`` samples of
a joint are its detection repeated (value = confidence, mask distance 0); without a mask file
(or with ``object_occlusion``) the mask is empty and ``mask_valid`` False. Images are read
with OpenCV and cropped to ``crop_res`` (zero padding outside the image).
"""
from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from humr.data.dataset import to_sample
from humr.data.schema import DataFormatError, validate_arrays

__all__ = ["BODY25_TO_COCO17", "OfficialDataset", "crop_image"]

# OpenPose BODY_25: 0 nose, 1 neck, 2-4 right shoulder/elbow/wrist, 5-7 left, 8 mid hip,
# 9-11 right hip/knee/ankle, 12-14 left, 15 right eye, 16 left eye, 17 right ear, 18 left ear
BODY25_TO_COCO17 = (0, 16, 15, 18, 17, 5, 2, 6, 3, 7, 4, 12, 9, 13, 10, 14, 11)
_REQUIRED = ("imgname", "center", "scale", "pose_cam", "shape", "gtkps", "gt_coco_25j", "vitpose")


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


def _with_flag(points: np.ndarray) -> np.ndarray:
    if points.shape[-1] == 3:
        return points
    return np.concatenate([points, np.ones(points.shape[:-1] + (1,), points.dtype)], -1)


class OfficialDataset(Dataset):
    """Examples of one preprocessed annotation file of the paper's release (see module doc).

    Args:
        annot_path: the annotation ``.npz``.
        img_root: folder the ``imgname`` entries are relative to.
        hm_samples_dir: folder of ``<index:07d>.npy.gz`` heatmap sample files (optional).
        mask_dir: folder of ``*_env.png`` person masks (optional).
        crop_res: R, crop side in pixels (the paper uses 256).
        num_joints: J of ``pose`` (24 SMPL, 22 SMPL-X body).
        num_samples: heatmap samples per joint (150 in the paper).

    Annotation arrays are validated when the dataset is built (missing keys, shapes, NaN), image,
    sample and mask files when an item is read; errors name the key or file
    (:class:`humr.data.schema.DataFormatError`, ``FileNotFoundError``).
    """

    def __init__(self, annot_path: str | Path, img_root: str | Path,
                 hm_samples_dir: str | Path | None = None, mask_dir: str | Path | None = None,
                 crop_res: int = 256, num_joints: int = 24, num_samples: int = 150) -> None:
        self.annot_path, self.img_root = Path(annot_path), Path(img_root)
        self.hm_samples_dir = None if hm_samples_dir is None else Path(hm_samples_dir)
        self.mask_dir = None if mask_dir is None else Path(mask_dir)
        self.crop_res, self.num_samples = int(crop_res), int(num_samples)
        if not self.annot_path.is_file():
            raise FileNotFoundError(f"annotation file {self.annot_path} does not exist")
        with np.load(self.annot_path, allow_pickle=False) as f:
            raw = {k: f[k] for k in f.files}
        for key in _REQUIRED:
            if key not in raw:
                raise DataFormatError(f"{self.annot_path}: key '{key}' is missing (required: "
                                      f"{', '.join(_REQUIRED)})")
        src = str(self.annot_path)
        n = len(raw["imgname"])
        for key, spec in (("pose_cam", f"(N, >= {3 * num_joints})"), ("gtkps", "(N, >= 24, 2|3)"),
                          ("gt_coco_25j", "(N, 25, 2|3)"), ("vitpose", "(N, 17, 3)"),
                          ("scale", "(N,)"), ("cam_int", "(N, 3, 3)")):
            if key not in raw:      # optional cam_int
                continue
            arr = raw[key]
            ok = {"pose_cam": arr.ndim == 2 and arr.shape[1] >= 3 * num_joints,
                  "gtkps": arr.ndim == 3 and arr.shape[1] >= 24 and arr.shape[2] in (2, 3),
                  "gt_coco_25j": arr.ndim == 3 and arr.shape[1:] in ((25, 2), (25, 3)),
                  "vitpose": arr.ndim == 3 and arr.shape[1:] == (17, 3),
                  "cam_int": arr.ndim == 3 and arr.shape[1:] == (3, 3),
                  "scale": arr.shape == (n,)}[key] and len(arr) == n
            if not ok:
                raise DataFormatError(f"{src}: key '{key}' has shape {arr.shape}, expected "
                                      f"{spec} with N = {n} (len of imgname)")
        cond = raw["vitpose"][:, :, [1, 0, 2]].astype(np.float32)
        cond[..., 2] = np.clip(cond[..., 2], 0, 1)
        coco = raw["gt_coco_25j"][:, list(BODY25_TO_COCO17)].astype(np.float32)
        self.arrays = {
            "center": raw["center"].astype(np.float32),
            "scale": raw["scale"].astype(np.float32)[:, None],
            "pose": raw["pose_cam"][:, :3 * num_joints].astype(np.float32),
            "betas": raw["shape"].astype(np.float32),
            "kp2d_gt": _with_flag(raw["gtkps"][:, :24].astype(np.float32)),
            "coco_gt": _with_flag(coco),
            "cond_kp": cond,
        }
        if "cam_int" in raw:
            self.arrays["focal"] = raw["cam_int"][:, [0, 1], [0, 1]].astype(np.float32)
        if "orig_shape" in raw:
            self.arrays["orig_shape"] = raw["orig_shape"].astype(np.float32)
        validate_arrays(self.arrays, src, required=("center", "scale", "pose", "betas"),
                        sizes={"N": n})
        self.imgname = [str(s) for s in raw["imgname"]]
        occl = raw.get("object_occlusion")
        self.object_occlusion = np.zeros(n, bool) if occl is None else np.asarray(occl, bool)

    def __len__(self) -> int:
        return len(self.imgname)

    def _image(self, index: int) -> np.ndarray:
        import cv2

        path = self.img_root / self.imgname[index]
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            raise FileNotFoundError(f"image {path} of example {index} ('imgname' in "
                                    f"{self.annot_path}) is missing or unreadable")
        return img[..., ::-1]

    def _heatmap_samples(self, index: int, cond: np.ndarray) -> dict[str, np.ndarray]:
        n = self.num_samples
        if self.hm_samples_dir is None:
            return {"hm_samples": np.repeat(cond[:, None, :2], n, 1),
                    "hm_values": np.repeat(cond[:, None, 2], n, 1),
                    "hm_max_conf": cond[:, 2].copy(),
                    "hm_samples_mask_dist": np.zeros((17, n), np.float32)}
        path = self.hm_samples_dir / f"{index:07d}.npy.gz"
        if not path.is_file():
            raise FileNotFoundError(f"heatmap sample file {path} of example {index} is missing")
        try:
            with gzip.open(path, "rb") as f:
                data = np.load(f)
        except (OSError, EOFError, ValueError, zlib.error) as err:
            raise DataFormatError(f"{path}: not a readable gzip-compressed .npy heatmap sample "
                                  f"file ({err})") from err
        if (data.ndim != 3 or data.shape[1:] != (17, 4) or data.shape[0] < n
                or data.dtype.kind not in "fiu"):
            raise DataFormatError(f"{path}: heatmap samples have shape {data.shape} and dtype "
                                  f"{data.dtype}, expected numbers of shape (S >= {n}, 17, 4) = "
                                  "(samples, joints, [x, y, value, mask dist])")
        data = data.astype(np.float32)
        return {"hm_samples": data[:n, :, :2].transpose(1, 0, 2),
                "hm_values": data[:n, :, 2].T,
                "hm_max_conf": data[:, :, 2].max(axis=0),
                "hm_samples_mask_dist": data[:n, :, 3].T}

    def _mask(self, index: int, center: np.ndarray, box: float) -> np.ndarray | None:
        if self.mask_dir is None or self.object_occlusion[index]:
            return None
        import cv2

        path = self.mask_dir / (str(Path(self.imgname[index]).with_suffix("")) + "_env.png")
        env = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if env is None:
            raise FileNotFoundError(f"mask {path} of example {index} is missing or unreadable")
        # person pixels are 0; the zero padding of the crop counts as person-plausible
        return (crop_image(env, center, box, self.crop_res, nearest=True) < 128).astype(np.uint8)

    def __getitem__(self, index: int) -> dict:
        row = {k: v[index] for k, v in self.arrays.items()}
        image = self._image(index)
        box = 200.0 * float(row["scale"][0])
        row["img"] = crop_image(np.ascontiguousarray(image), row["center"], box, self.crop_res)
        row.setdefault("orig_shape", np.asarray(image.shape[:2], np.float32))
        row.update(self._heatmap_samples(index, row["cond_kp"]))
        mask = self._mask(index, row["center"], box)
        row["mask"] = np.zeros((self.crop_res,) * 2, np.uint8) if mask is None else mask
        row["mask_valid"] = np.array(mask is not None and bool(mask.any()))
        where = f"{self.annot_path} example {index}"
        validate_arrays({k: np.asarray(v)[None] for k, v in row.items()}, where)
        return to_sample(row)

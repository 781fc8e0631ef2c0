"""The splits of the paper's data release and where their files lie (DATASET.MD layout).

``ROOT`` is the release's data folder::

    ROOT/annotations/<file>.npz                 one annotation file per split
    ROOT/heatmap_samples/<split>/<row:07d>.npy.gz  ViTPose heatmap samples (training splits)
    ROOT/training_images/<folder>/png/<seq>/<img>.png    BEDLAM images
    ROOT/training_images/images/<img>.png       AGORA images (1280 x 720)
    ROOT/env_masks/<folder>/<seq>/<img>_env.png  BEDLAM masks (person 0, rest 255)
    ROOT/env_masks/images/<img>_all_person.png  AGORA masks (background 76)
    ROOT/test_images/3DPW/imageFiles/...        3DPW (test and training split)
    ROOT/test_images/EMDB/P<k>/<seq>/images/NNNNN.jpg   EMDB
    ROOT/test_images/EMDB/masks/P<k>/<seq>/masks/NNNNN.png  EMDB person masks (person > 0)

Split names, files and folders are those of the official code (``train/core/config.py``);
the training mix and the evaluation sets are those of its ``configs/default_config.yaml``:
the 29 training splits are concatenated and drawn uniformly (no per-set ratios), evaluation
uses ``3dpw-test-cam`` (3dpw protocol), ``emdb-p1`` (emdb protocol) and ``emdb-p1-occl``
(mask metrics PercIn / MinDist).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["EVAL_SPLITS", "SPLITS", "TRAIN_SPLITS", "OfficialSplit", "get_split"]

# BEDLAM split name -> image folder under training_images (date-coded scene folders)
_BEDLAM = {
    "zoom-suburbd": "20221010_3-10_500_batch01hand_zoom_suburb_d_6fps",
    "closeup-suburba": "20221011_1_250_batch01hand_closeup_suburb_a_6fps",
    "closeup-suburbb": "20221011_1_250_batch01hand_closeup_suburb_b_6fps",
    "closeup-suburbc": "20221011_1_250_batch01hand_closeup_suburb_c_6fps",
    "closeup-suburbd": "20221011_1_250_batch01hand_closeup_suburb_d_6fps",
    "closeup-gym": "20221012_1_500_batch01hand_closeup_highSchoolGym_6fps",
    "zoom-gym": "20221012_3-10_500_batch01hand_zoom_highSchoolGym_6fps",
    "static-gym": "20221013_3-10_500_batch01hand_static_highSchoolGym_6fps",
    "static-office": "20221013_3_250_batch01hand_static_bigOffice_6fps",
    "orbit-office": "20221013_3_250_batch01hand_orbit_bigOffice_6fps",
    "orbit-archviz-15": "20221014_3_250_batch01hand_orbit_archVizUI3_time15_6fps",
    "orbit-archviz-19": "20221015_3_250_batch01hand_orbit_archVizUI3_time19_6fps",
    "orbit-archviz-12": "20221015_3_250_batch01hand_orbit_archVizUI3_time12_6fps",
    "orbit-archviz-10": "20221015_3_250_batch01hand_orbit_archVizUI3_time10_6fps",
    "static-hdri": "20221010_3_1000_batch01hand_6fps",
    "static-hdri-zoomed": "20221017_3_1000_batch01hand_6fps",
    "pitchup-stadium": "20221018_3-8_250_batch01hand_pitchUp52_stadium_6fps",
    "pitchdown-stadium": "20221018_3-8_250_batch01hand_pitchDown52_stadium_6fps",
    "static-hdri-bmi": "20221019_3_250_highbmihand_6fps",
    "closeup-suburbb-bmi": "20221019_1_250_highbmihand_closeup_suburb_b_6fps",
    "closeup-suburbc-bmi": "20221019_1_250_highbmihand_closeup_suburb_c_6fps",
    "static-suburbd-bmi": "20221019_3-8_1000_highbmihand_static_suburb_d_6fps",
    "zoom-gym-bmi": "20221020-3-8_250_highbmihand_zoom_highSchoolGym_a_6fps",
    "static-office-hair": "20221022_3_250_batch01handhair_static_bigOffice_30fps",
    "zoom-suburbd-hair": "20221024_10_100_batch01handhair_zoom_suburb_d_30fps",
    "static-gym-hair": "20221024_3-10_100_batch01handhair_static_highSchoolGym_30fps",
}


@dataclass(frozen=True)
class OfficialSplit:
    """One split of the release.

    Attributes:
        name: the official split name (``static-hdri``, ``agora-bfh``, ``3dpw-test-cam``, ...).
        annotation: annotation file, relative to ``ROOT/annotations``.
        images: folder ``imgname`` is relative to, relative to ``ROOT``.
        train: a training split (filtered, SMPL-X body poses, heatmap samples); evaluation
            splits are never filtered and carry SMPL poses and a gender.
        kind: ``bedlam``, ``agora``, ``3dpw`` or ``emdb`` (mask files and filter rules).
    """

    name: str
    annotation: str
    images: str
    train: bool
    kind: str

    @property
    def closeup(self) -> bool:
        """BEDLAM closeup sequences: stored portrait frames turned sideways; the official code
        turns images and masks 90 degrees clockwise (to 720 x 1280) before cropping."""
        return "closeup" in self.name

    @property
    def model_type(self) -> str:
        """Body model of the stored poses: SMPL-X body (22 joints, ``pose_cam[:, :66]``) for
        the training splits, SMPL (24 joints) with gendered shape for 3DPW / EMDB test."""
        return "smplx" if self.train else "smpl"

    @property
    def num_pose_joints(self) -> int:
        return 22 if self.train else 24

    @property
    def env_masks(self) -> bool:
        """Training person masks exist (BEDLAM, AGORA); 3DPW has none."""
        return self.train and self.kind in ("bedlam", "agora")

    @property
    def emdb_masks(self) -> bool:
        """The EMDB subset with Mask-RCNN person masks (PercIn / MinDist)."""
        return self.name == "emdb-p1-occl"

    @property
    def default_image_shape(self) -> tuple[int, int]:
        """(h, w) the official filter assumes when the file has no ``orig_shape``."""
        return (1280, 720) if self.closeup else (720, 1280)

    def annotation_path(self, root: str | Path) -> Path:
        return Path(root) / "annotations" / self.annotation

    def image_root(self, root: str | Path) -> Path:
        return Path(root) / self.images

    def hm_samples_dir(self, root: str | Path) -> Path:
        return Path(root) / "heatmap_samples" / self.name


def _build() -> dict[str, OfficialSplit]:
    splits = {name: OfficialSplit(name, f"{folder}.npz", f"training_images/{folder}/png", True,
                                  "bedlam") for name, folder in _BEDLAM.items()}
    for name in ("agora-bfh", "agora-body"):
        splits[name] = OfficialSplit(name, f"{name}.npz", "training_images/images", True, "agora")
    splits["3dpw-train-smplx"] = OfficialSplit("3dpw-train-smplx", "3dpw_train_smplx_w_cam.npz",
                                               "test_images/3DPW", True, "3dpw")
    splits["3dpw-test-cam"] = OfficialSplit("3dpw-test-cam", "3dpw_test_w_cam.npz",
                                            "test_images/3DPW", False, "3dpw")
    for name in ("emdb-p1", "emdb-p1-occl"):
        splits[name] = OfficialSplit(name, name.replace("-", "_") + ".npz", "test_images/EMDB",
                                     False, "emdb")
    return splits


SPLITS: dict[str, OfficialSplit] = _build()

# configs/default_config.yaml of the release: TRAIN_DS and VAL_DS / TEST_DS
TRAIN_SPLITS: tuple[str, ...] = (
    "3dpw-train-smplx", "static-hdri", "agora-bfh", "agora-body", "zoom-suburbd",
    "closeup-suburba", "closeup-suburbb", "closeup-suburbc", "closeup-suburbd", "closeup-gym",
    "zoom-gym", "static-gym", "static-office", "orbit-office", "static-hdri-zoomed",
    "pitchup-stadium", "pitchdown-stadium", "static-hdri-bmi", "closeup-suburbb-bmi",
    "closeup-suburbc-bmi", "static-suburbd-bmi", "zoom-gym-bmi", "static-office-hair",
    "zoom-suburbd-hair", "static-gym-hair", "orbit-archviz-15", "orbit-archviz-19",
    "orbit-archviz-12", "orbit-archviz-10")
EVAL_SPLITS: tuple[str, ...] = ("3dpw-test-cam", "emdb-p1", "emdb-p1-occl")


def get_split(name: str) -> OfficialSplit:
    """The :class:`OfficialSplit` called ``name`` (KeyError listing the known names)."""
    if name not in SPLITS:
        raise KeyError(f"unknown official split {name!r}; known: {', '.join(sorted(SPLITS))}")
    return SPLITS[name]

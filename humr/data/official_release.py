"""``data.format: official``: the release's splits as the datasets of training and evaluation.

* ``train`` is the official training mix: the splits of ``data.train_splits`` (empty = the 29
  splits of the official ``configs/default_config.yaml``,
  :data:`humr.data.official_splits.TRAIN_SPLITS`) concatenated and drawn uniformly, as the
  official ``ConcatDataset`` with shuffling does (no per-set ratios), each filtered.
* any other split name is one evaluation split (``3dpw-test-cam``, ``emdb-p1``,
  ``emdb-p1-occl``), unfiltered; validation during training uses :data:`VAL_SPLIT`.

:func:`datamodule_options` gives the :class:`humr.engine.datamodule.HumrDataModule` arguments
of a configuration (none for ``data.format: humr``).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from torch.utils.data import ConcatDataset, Dataset

from humr.data.official import OfficialDataset
from humr.data.official_splits import TRAIN_SPLITS, get_split

__all__ = ["FORMATS", "VAL_SPLIT", "datamodule_options", "official_dataset"]

FORMATS = ("humr", "official")
VAL_SPLIT = "emdb-p1"          # emdb protocol: train.monitor's default val/emdb/mpjpe_min


def official_dataset(root: str | Path, split: str, augment: bool = False, *,
                     train_splits: Sequence[str] = (), crop_res: int = 224,
                     num_joints: int = 24, num_betas: int = 10, num_samples: int = 150,
                     seed: int = 0, augmentation=None) -> Dataset:
    """The dataset of ``split`` ("train" = the training mix, else one official split);
    ``augmentation``: :class:`humr.data.augment.Augmentation` settings (default if None).
    An evaluation split keeps its whole stored pose (24 SMPL joints) even for a model with
    fewer joints (SMPL-X, ``num_joints`` 22): its ground truth is posed by the SMPL body."""
    kw = {"crop_res": crop_res, "num_joints": num_joints, "num_betas": num_betas,
          "num_samples": num_samples, "seed": seed, "augmentation": augmentation}
    if split == "train":
        names = list(train_splits) or list(TRAIN_SPLITS)
        for name in names:
            if not get_split(name).train:
                raise ValueError(f"data.train_splits: {name!r} is an evaluation split")
        return ConcatDataset([OfficialDataset(root, name, augment=augment, **kw)
                              for name in names])
    kw["num_joints"] = max(num_joints, get_split(split).num_pose_joints)
    return OfficialDataset(root, split, augment=augment, **kw)


def dataset_fn(config: Any, root: str | Path) -> Callable[[str, bool], Dataset]:
    """``(split, augment) -> Dataset`` of ``config`` (a :class:`humr.config.Config`)."""
    from humr.body.model import NUM_BODY_JOINTS

    return partial(official_dataset, str(root), train_splits=tuple(config.data.train_splits),
                   crop_res=int(config.data.crop_res),
                   num_joints=NUM_BODY_JOINTS[config.model.model_type],
                   num_betas=int(config.model.num_betas),
                   seed=int(config.train.seed), augmentation=config.data.augmentation)


def datamodule_options(config: Any, root: str | Path) -> dict[str, Any]:
    """Extra :class:`HumrDataModule` arguments for ``config.data.format``."""
    fmt = config.data.format
    if fmt not in FORMATS:
        raise ValueError(f"data.format must be one of {FORMATS}, got {fmt!r}")
    if fmt == "humr":
        return {}
    return {"dataset_fn": dataset_fn(config, root), "val_split": VAL_SPLIT}

"""``HumrDataset``: a torch Dataset over a humr dataset folder (:mod:`humr.data.format`).

Example:
    >>> import tempfile
    >>> from humr.data.synthetic import SynthConfig, generate
    >>> root = generate(tempfile.mkdtemp(), n_train=2, n_test=0,
    ...                 config=SynthConfig(posterior_samples=4, candidates=32))
    >>> ds = HumrDataset(root, "train")
    >>> len(ds), ds[0]["img"].shape, ds[0]["mask"].dtype, ds[0]["posterior"].shape
    (2, torch.Size([3, 128, 128]), torch.uint8, torch.Size([4, 72]))
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, default_collate

from humr.core.skeleton import IMAGENET_MEAN, IMAGENET_STD
from humr.data.format import check_shard_values, read_meta, read_shard, shard_path
from humr.data.schema import (
    REQUIRED_KEYS,
    STORED_SCHEMA,
    DataFormatError,
    validate_arrays,
)

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "HumrDataset", "make_dataloader", "normalise_images",
           "to_sample"]


#: per-channel (3, 1, 1) factors of the ImageNet normalisation of uint8 images
_IMG_SCALE = 1.0 / (255.0 * torch.tensor(IMAGENET_STD)[:, None, None])
_IMG_OFFSET = -torch.tensor(IMAGENET_MEAN)[:, None, None] / torch.tensor(IMAGENET_STD)[:, None, None]


def normalise_images(img: torch.Tensor) -> torch.Tensor:
    """Stored crops uint8 (..., R, R, 3) -> float32 (..., 3, R, R) normalised with the ImageNet
    mean / std (``(x / 255 - mean) / std`` as one multiply-add on the float copy)."""
    return img.movedim(-1, -3).float().mul_(_IMG_SCALE).add_(_IMG_OFFSET)


def to_sample(row: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """One stored example (arrays without the N dimension) -> the schema dict of tensors.

    ``img`` uint8 (R, R, 3) -> float32 (3, R, R) normalised with the ImageNet mean / std;
    ``mask`` stays uint8, ``mask_valid`` / ``coco_visible`` bool, ``posterior_count`` int64,
    every other key float32.
    """
    out = {}
    for key, value in row.items():
        kind = STORED_SCHEMA[key][1]
        if key == "img":
            out[key] = normalise_images(torch.from_numpy(np.array(value)))
            continue
        t = torch.from_numpy(np.array(value))
        if kind == "float":
            t = t.float()
        elif kind == "int":
            t = t.long()
        out[key] = t
    return out


class HumrDataset(Dataset):
    r"""Examples of one split of a humr dataset folder, as schema dicts of tensors.

    All shards of the split are read and validated when the dataset is built (shape, dtype and
    finiteness of every key, :func:`humr.data.schema.validate_arrays`); a bad file raises
    :class:`humr.data.schema.DataFormatError` naming the file, the key and the expected shape.
    Items follow docs/conventions.md (:func:`to_sample`); with ``augment`` a training
    augmentation (:class:`humr.data.augment.Augmentation`) is applied, seeded per example by
    ``(seed, index, draw)``: ``draw`` is given by :meth:`get` (the training loader passes the
    epoch, so a resumed run repeats the augmentation) or, through ``dataset[i]``, is the number
    of times this index was read in this process (epochs differ). Examples with
    ``mask_valid`` False get finite mask distances (2 R instead of the stored +inf).

    Args:
        root: dataset folder (``meta.json`` + shards).
        split: "train" or "test" (any split listed in ``meta.json``).
        augment: apply the training augmentation (off for evaluation).
        seed: augmentation seed.
        augmentation: optional :class:`humr.data.augment.Augmentation` (default settings).
    """

    def __init__(self, root: str | Path, split: str, augment: bool = False, seed: int = 0,
                 augmentation=None) -> None:
        self.root, self.split = Path(root), split
        self.meta = read_meta(self.root)
        splits = self.meta.get("splits", {})
        if split not in splits:
            raise DataFormatError(f"{self.root / 'meta.json'}: no split '{split}' "
                                  f"(has {sorted(splits)})")
        self.arrays = self._load(splits[split])
        self.augment, self.seed = bool(augment), int(seed)
        if self.augment and augmentation is None:
            from humr.data.augment import Augmentation

            augmentation = Augmentation()
        self.augmentation = augmentation
        self._reads = np.zeros(len(self), dtype=np.int64)

    def _load(self, info: Mapping) -> dict[str, np.ndarray]:
        parts, sizes = [], {"R": int(self.meta["crop_res"])} if "crop_res" in self.meta else {}
        for name in info["shards"]:
            path = shard_path(self.root, name)
            arrays = read_shard(path)
            check_shard_values(arrays, path)
            unknown = sorted(set(arrays) - set(STORED_SCHEMA))
            if unknown:
                raise DataFormatError(f"{path}: unknown keys {unknown}; known: {sorted(STORED_SCHEMA)}")
            bound = validate_arrays(arrays, str(path), REQUIRED_KEYS,
                                    {k: v for k, v in sizes.items() if k != "N"})
            sizes.update(bound)
            if parts and set(arrays) != set(parts[0]):
                raise DataFormatError(f"{path}: keys {sorted(arrays)} differ from the first "
                                      f"shard's {sorted(parts[0])}")
            parts.append(arrays)
        total = sum(len(p["img"]) for p in parts)
        if total != int(info["count"]):
            raise DataFormatError(f"{self.root}: split '{self.split}' holds {total} examples, "
                                  f"meta.json lists {info['count']}")
        if not parts:
            return {}
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def __len__(self) -> int:
        return len(self.arrays["img"]) if self.arrays else 0

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.get(index)

    def get(self, index: int, draw: int | None = None) -> dict[str, torch.Tensor]:
        """Example ``index``; with augmentation, ``draw`` (e.g. the epoch) replaces the
        per-process read count in the augmentation seed, making it independent of what this
        process read before (exact resume)."""
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for split '{self.split}' of {n}")
        index %= n
        sample = to_sample({k: v[index] for k, v in self.arrays.items()})
        if self.augment:
            if draw is None:
                draw = int(self._reads[index])
                self._reads[index] += 1
            gen = torch.Generator().manual_seed(
                int(np.random.SeedSequence([self.seed, index, int(draw)]).generate_state(1)[0]))
            sample = self.augmentation(sample, gen)
        return _finite_mask_distances(sample)


def _finite_mask_distances(sample: dict) -> dict:
    """Examples without a usable mask (``mask_valid`` False, e.g. an empty mask) store +inf
    distances to it; they become 2 R (farther than any point of the R x R crop), so a batch
    holds finite values only. The mask loss and metrics skip such examples (``mask_valid``)."""
    dist = sample.get("hm_samples_mask_dist")
    if dist is None or "mask_valid" not in sample or bool(sample["mask_valid"]):
        return sample
    far = torch.tensor(2.0 * sample["mask"].shape[-1] if "mask" in sample else 1e6, dtype=dist.dtype)
    return {**sample, "hm_samples_mask_dist": torch.where(torch.isfinite(dist), dist, far)}


def _seed_worker(worker_id: int) -> None:
    """DataLoader workers: numpy / torch seeds from the loader's base seed."""
    seed = torch.initial_seed() % 2 ** 32
    np.random.seed(seed)
    torch.manual_seed(seed)


def make_dataloader(root: str | Path, split: str, batch_size: int, shuffle: bool = False,
                    num_workers: int = 0, augment: bool = False, seed: int = 0,
                    drop_last: bool = False, augmentation=None) -> DataLoader:
    """DataLoader over :class:`HumrDataset` with a seeded order and default (stacking) collate.

    Batches are dicts of stacked tensors (B, ...). ``shuffle`` draws the order from a
    generator seeded with ``seed``; ``augment`` turns on the training augmentation
    (``augmentation``: its :class:`humr.data.augment.Augmentation` settings, default ones if None).
    """
    dataset = HumrDataset(root, split, augment=augment, seed=seed, augmentation=augmentation)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers,
                      collate_fn=default_collate, worker_init_fn=_seed_worker,
                      generator=torch.Generator().manual_seed(int(seed)), drop_last=drop_last)

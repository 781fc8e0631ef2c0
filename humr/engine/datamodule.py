"""LightningDataModule over :func:`humr.data.make_dataloader`, with resumable, DDP-sharded
batch order.

Lightning's resume restarts the interrupted epoch's data loader from its beginning; to continue
exactly where a run stopped, the training order comes from :class:`EpochSampler`, whose
order is a function of (seed, epoch) only, the augmentation of an example is a function of
(seed, epoch, index) only, and the data module stores how many batches of the current epoch
were already used in every checkpoint (``state_dict``) and skips them on resume.
Distributed sharding is done here too (the Trainer is built with ``use_distributed_sampler=False``).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import lightning as L
import torch
from torch.utils.data import (
    DataLoader,
    Dataset,
    DistributedSampler,
    Sampler,
    default_collate,
)

__all__ = ["EpochSampler", "HumrDataModule", "IndexedDataset", "ShardBatchSampler"]


class EpochSampler(Sampler[tuple[int, int]]):
    """Training order of torch's ``DistributedSampler`` (a permutation of ``range(n)`` seeded by
    ``seed + epoch``, sharded over ``world_size`` ranks, the remainder dropped), cut to whole
    batches of ``batch_size``, yielding keys ``(epoch, index)``: the epoch seeds each example's
    augmentation (:class:`IndexedDataset`), so the augmentation depends only on the position in
    the training order, which a checkpoint stores. Torch's sampler cannot start mid-epoch,
    hence this wrapper: ``skip(k, epoch)`` makes the next pass over epoch ``epoch`` start at
    batch ``k`` (resume).

    Example:
        >>> s = EpochSampler(10, batch_size=3, seed=0)
        >>> len(s), len(list(s)), next(iter(s))[0]
        (9, 9, 0)
        >>> s.set_epoch(1); s.skip(2, epoch=1); len(list(s))
        3
    """

    def __init__(self, num_examples: int, batch_size: int, seed: int = 0, shuffle: bool = True,
                 rank: int = 0, world_size: int = 1) -> None:
        if num_examples < batch_size * world_size:
            raise ValueError(f"{num_examples} examples are fewer than one batch of {batch_size} "
                             f"per rank on {world_size} rank(s)")
        self.order = DistributedSampler(range(num_examples), num_replicas=world_size, rank=rank,
                                        shuffle=shuffle, seed=seed, drop_last=True)
        self.batch_size = batch_size
        self.epoch = 0
        self._skip_epoch, self._skip = 0, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        self.order.set_epoch(self.epoch)

    def skip(self, batches: int, epoch: int) -> None:
        """Start epoch ``epoch`` at batch ``batches`` (``batches`` already used before a resume)."""
        self._skip_epoch, self._skip = int(epoch), int(batches)

    def __len__(self) -> int:
        return len(self.order) // self.batch_size * self.batch_size

    def __iter__(self) -> Iterator[tuple[int, int]]:
        mine = list(self.order)[: len(self)]
        start = self._skip * self.batch_size if self.epoch == self._skip_epoch else 0
        for index in mine[start:]:
            yield self.epoch, index


class ShardBatchSampler(Sampler[list[int]]):
    """Evaluation batches in dataset order: rank r takes examples r, r + world_size, ...; every
    example is seen exactly once over all ranks (no padding, so summed metrics are exact;
    torch's ``DistributedSampler`` pads or drops examples to equalise the ranks, hence this
    sampler).

    Example:
        >>> list(ShardBatchSampler(7, batch_size=2, rank=1, world_size=2))
        [[1, 3], [5]]
    """

    def __init__(self, num_examples: int, batch_size: int, rank: int = 0, world_size: int = 1):
        self.indices = list(range(rank, num_examples, world_size))
        self.batch_size = batch_size

    def __len__(self) -> int:
        return math.ceil(len(self.indices) / self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        for b in range(len(self)):
            yield self.indices[b * self.batch_size:(b + 1) * self.batch_size]


class IndexedDataset(Dataset):
    """A dataset whose examples also carry their position ``index`` (() int64), which seeds the
    evaluation latents of each example (:func:`humr.engine.module.example_latents`).

    Keys are indices or ``(epoch, index)`` pairs (:class:`EpochSampler`); the epoch is passed
    as the augmentation draw (``HumrDataset.get(index, draw=epoch)``; datasets without ``get``
    are indexed plainly), so an example's
    augmentation is a function of (seed, epoch, index) only, whatever the process, worker
    count or restart."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        if isinstance(key, tuple) and hasattr(self.dataset, "get"):
            epoch, i = key
            sample = self.dataset.get(i, draw=epoch)
        elif isinstance(key, tuple):     # a dataset without augmentation state (no ``get``)
            i, sample = key[1], self.dataset[key[1]]
        else:
            i, sample = key, self.dataset[key]
        return {**sample, "index": torch.tensor(i, dtype=torch.int64)}


class HumrDataModule(L.LightningDataModule):
    """Train / val / test loaders of a humr dataset folder (e.g. written by ``humr synth``).

    Args:
        root: dataset folder.
        batch_size: training batch size per rank.
        eval_batch_size: validation / test batch size per rank (default ``batch_size``).
        num_workers: data loader worker processes.
        augment: training-time augmentation (:class:`humr.data.HumrDataset`).
        seed: seeds the training order (and the dataset's augmentation).
        val_split: split used for validation (``"test"`` on the synthetic benchmark, which has
            no separate validation split).
        test_split: split used by ``trainer.test``.
        max_eval_examples: evaluate only the first N examples of the eval split (None = all).
        dataset_fn: ``(split, augment) -> Dataset`` replacing the humr folder's splits (e.g. the
            official release, :func:`humr.data.official_release.datamodule_options`).
        augmentation: the :class:`humr.data.augment.Augmentation` settings of the humr folder's
            training split (config ``data.augmentation``; default settings if None).
    """

    def __init__(self, root: str, batch_size: int = 16, eval_batch_size: int | None = None,
                 num_workers: int = 0, augment: bool = False, seed: int = 0,
                 val_split: str = "test", test_split: str = "test",
                 max_eval_examples: int | None = None,
                 dataset_fn: Callable[[str, bool], Dataset] | None = None,
                 augmentation=None) -> None:
        super().__init__()
        self.root, self.batch_size = str(root), int(batch_size)
        self.eval_batch_size = int(eval_batch_size or batch_size)
        self.num_workers, self.augment, self.seed = int(num_workers), bool(augment), int(seed)
        self.val_split, self.test_split = val_split, test_split
        self.max_eval_examples = max_eval_examples
        self.dataset_fn = dataset_fn
        self.augmentation = augmentation
        self._train_sampler: EpochSampler | None = None
        self._pending_skip: dict[str, int] | None = None

    def _ranks(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def _base(self, split: str, augment: bool) -> DataLoader:
        from humr.data import make_dataloader

        if self.dataset_fn is not None:
            from humr.data.dataset import _seed_worker

            return DataLoader(self.dataset_fn(split, augment), num_workers=self.num_workers,
                              collate_fn=default_collate, worker_init_fn=_seed_worker)
        return make_dataloader(self.root, split, batch_size=1, shuffle=False,
                               num_workers=self.num_workers, augment=augment, seed=self.seed,
                               augmentation=self.augmentation)

    def _loader(self, base: DataLoader, **order) -> DataLoader:
        """A DataLoader with ``base``'s dataset (plus ``index``), collate function and worker
        setup, and the batch order given by ``order`` (DataLoader arguments)."""
        return DataLoader(IndexedDataset(base.dataset), collate_fn=base.collate_fn,
                          num_workers=base.num_workers, worker_init_fn=base.worker_init_fn,
                          persistent_workers=self.num_workers > 0, **order)

    def train_dataloader(self) -> DataLoader:
        rank, world = self._ranks()
        base = self._base("train", self.augment)
        self._train_sampler = EpochSampler(len(base.dataset), self.batch_size, self.seed, True,
                                           rank, world)
        if self._pending_skip is not None:
            self._train_sampler.skip(**self._pending_skip)
        return self._loader(base, sampler=self._train_sampler, batch_size=self.batch_size,
                            drop_last=True)

    def eval_dataloader(self, split: str) -> DataLoader:
        """Loader over ``split`` (this rank's shard, dataset order)."""
        rank, world = self._ranks()
        base = self._base(split, False)
        n = len(base.dataset)
        if self.max_eval_examples is not None:
            n = min(n, int(self.max_eval_examples))
        return self._loader(base, batch_sampler=ShardBatchSampler(n, self.eval_batch_size,
                                                                  rank, world))

    def val_dataloader(self) -> DataLoader:
        return self.eval_dataloader(self.val_split)

    def test_dataloader(self) -> DataLoader:
        return self.eval_dataloader(self.test_split)

    def state_dict(self) -> dict[str, Any]:
        """Position in the training order at checkpoint time: (epoch, batches used in it)."""
        trainer = getattr(self, "trainer", None)
        if trainer is None or self._train_sampler is None:
            return {}
        used = trainer.fit_loop.epoch_loop.batch_progress.current.processed
        return {"epoch": trainer.current_epoch, "batches": used}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict:
            self._pending_skip = {"epoch": int(state_dict["epoch"]),
                                  "batches": int(state_dict["batches"])}

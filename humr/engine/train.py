"""Training runs: Trainer construction, run folders, checkpoints, loggers and resume.

Layout of a run (``OUT`` = ``--out``)::

    OUT/version_K/            one folder per run; a new run never reuses an existing folder
        config.yaml           the full configuration of the run (the latest, after --override)
        config_changes.yaml   every configuration change made when resuming with --override
        checkpoints/last.ckpt the latest state (written every ``train.ckpt_every`` steps)
        checkpoints/best-*.ckpt  the best checkpoint by ``train.monitor`` (validation metric)
        tensorboard/session_N TensorBoard log of the N-th (re)start of the run
        csv/session_N         CSV log (metrics.csv) of the N-th (re)start; a resumed session
                              starts with the logged row of the step its checkpoint ends on

``resume`` continues a run in its own folder from its ``last.ckpt``: weights, optimiser, step
counter, data order and augmentation (:class:`humr.engine.datamodule.HumrDataModule`: a function
of the seed, epoch and example) and per-step seeds (:class:`humr.engine.module.HumrModule`) are
restored, so the next step computes the same loss as in an uninterrupted run. A resume with a
configuration other than the run's ``config.yaml`` is refused unless ``override``. Multi-GPU / multi-node training uses Lightning's strategies (``ddp``).
"""
from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from humr.data.official_release import datamodule_options
from humr.engine.checkpoint import AtomicCheckpointIO, BodyIdentity
from humr.engine.datamodule import HumrDataModule
from humr.engine.denormals import FlushDenormals
from humr.engine.log_carry import CarryLogRow
from humr.engine.module import HumrModule

__all__ = ["TrainResult", "build_trainer", "config_changes", "find_last_checkpoint",
           "new_run_dir", "train", "validate_train_config"]

PathLike = str | Path


@dataclass
class TrainResult:
    """What :func:`train` produced."""

    run_dir: Path
    last_checkpoint: Path
    best_checkpoint: Path | None
    trainer: L.Trainer
    module: HumrModule


def new_run_dir(out: PathLike) -> Path:
    """A new, not yet existing ``out/version_K`` (K = 1 + the largest existing K)."""
    out = Path(out)
    taken = [int(m.group(1)) for p in out.glob("version_*")
             if (m := re.fullmatch(r"version_(\d+)", p.name))]
    return out / f"version_{max(taken, default=-1) + 1}"


def find_last_checkpoint(out: PathLike) -> Path:
    """``last.ckpt`` of the newest run under ``out`` (or of the run folder ``out`` itself)."""
    out = Path(out)
    candidates = [out / "checkpoints" / "last.ckpt"] + sorted(
        out.glob("version_*/checkpoints/last.ckpt"),
        key=lambda p: int(p.parent.parent.name.split("_")[1]), reverse=True)
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(f"no checkpoints/last.ckpt under {out}")


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted keys of a nested dict: ``{"train": {"lr": 1}} -> {"train.lr": 1}``."""
    if not isinstance(data, dict):
        return {prefix[:-1]: data}
    flat: dict[str, Any] = {}
    for key, value in data.items():
        flat.update(_flatten(value, f"{prefix}{key}."))
    return flat


def config_changes(old: Any, new: Any) -> dict[str, tuple[Any, Any]]:
    """``{dotted key: (old value, new value)}`` for every value that differs between two
    configs (``Config`` objects)."""
    import yaml

    # both through YAML, as config.yaml stores them (tuples become lists, etc.)
    a, b = (_flatten(yaml.safe_load(c.to_yaml())) for c in (old, new))
    return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}


# changes a resume may make without --override (continuing a run for more steps)
_RESUME_FREE = {"train.max_steps"}


def _check_resume_config(run_dir: Path, cfg: Any, override: bool) -> None:
    """Refuse a resume whose configuration differs from the run's ``config.yaml`` unless
    ``override`` (or only ``train.max_steps`` changed: training longer); a resume with changes
    appends them to ``config_changes.yaml`` and rewrites ``config.yaml``, so the run folder
    records every change."""
    import datetime

    import yaml

    from humr.config import Config
    from humr.io import atomic_write_text

    saved_path = run_dir / "config.yaml"
    if not saved_path.is_file():
        raise FileNotFoundError(f"{saved_path}: missing; cannot check the resumed configuration")
    changes = config_changes(Config.load(saved_path), cfg)
    if not changes:
        return
    listing = ", ".join(f"{k}: {o!r} -> {n!r}" for k, (o, n) in changes.items())
    if not override and set(changes) - _RESUME_FREE:
        raise ValueError(f"resume of {run_dir} with a configuration that differs from "
                         f"{saved_path} ({listing}); pass --override to continue with the "
                         "new values (recorded in the run folder), or resume with the same config")
    log = run_dir / "config_changes.yaml"
    entries = yaml.safe_load(log.read_text()) if log.is_file() else []
    entries = (entries or []) + [{
        "time": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "changes": {k: {"old": o, "new": n} for k, (o, n) in changes.items()}}]
    atomic_write_text(log, yaml.safe_dump(entries, sort_keys=False))
    atomic_write_text(saved_path, cfg.to_yaml())
    warnings.warn(f"resuming {run_dir} with changed configuration: {listing}", stacklevel=3)


# train.* field -> (lowest allowed value, description); checked before anything runs
_TRAIN_LIMITS = {"batch_size": (1, "an integer >= 1"), "eval_batch_size": (1, "an integer >= 1"),
                 "num_samples_train": (2, "an integer >= 2 (the mode + random samples)"),
                 "num_samples_eval": (1, "an integer >= 1"), "max_steps": (1, "an integer >= 1"),
                 "val_every": (1, "an integer >= 1 (steps)"), "ckpt_every": (1, "an integer >= 1 (steps)"),
                 "num_workers": (0, "an integer >= 0"), "val_examples": (1, "an integer >= 1 or null"),
                 "warmup_steps": (0, "an integer >= 0 (steps)"),
                 "flush_denormals_every": (0, "an integer >= 0 (steps; 0 = off)")}


def validate_train_config(cfg: Any) -> None:
    """Raise ``ValueError`` naming the key, its value and what is expected for ``train.*``
    values that cannot work (``val_every = 0`` would divide by zero, a batch of 0 ...)."""
    import math

    t = cfg.train
    for key, (low, want) in _TRAIN_LIMITS.items():
        value = getattr(t, key)
        if value is None and key == "val_examples":
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"config train.{key} = {value!r}: expected {want}")
    for key in ("lr", "weight_decay", "grad_clip"):
        value = getattr(t, key)
        if not math.isfinite(value) or value < 0 or (key == "lr" and value == 0):
            raise ValueError(f"config train.{key} = {value!r}: expected a finite number "
                             f"{'> 0' if key == 'lr' else '>= 0'}")
    if t.lr_schedule not in ("constant", "cosine"):
        raise ValueError(f"config train.lr_schedule = {t.lr_schedule!r}: expected 'constant' "
                         "or 'cosine'")
    if not 0 < t.val_batches <= 1 and not (t.val_batches >= 1 and float(t.val_batches).is_integer()):
        raise ValueError(f"config train.val_batches = {t.val_batches!r}: expected a fraction in "
                         "(0, 1] or a whole number of batches")


def build_trainer(run_dir: Path, config: Any, *, devices: int | str = "auto",
                  num_nodes: int = 1, strategy: str = "auto", accelerator: str = "auto",
                  precision: str | None = None, max_steps: int | None = None,
                  progress: bool = True, callbacks: Sequence[L.Callback] = ()) -> L.Trainer:
    """Lightning Trainer for ``config.train`` writing into ``run_dir``.

    Validation runs every ``train.val_every`` steps (on ``train.val_batches`` batches), the
    ``last`` checkpoint is written every ``train.ckpt_every`` steps, the best one by
    ``train.monitor`` (mode ``train.monitor_mode``) after validation; every checkpoint is written
    atomically and without the body model's arrays (:mod:`humr.engine.checkpoint`) and carries
    the log row of its step, which a resumed session logs again
    (:class:`humr.engine.log_carry.CarryLogRow`: Lightning writes the checkpoint before the row).
    Gradients are clipped to a norm of ``train.grad_clip`` (0 = off). On the CPU, subnormal weights and optimiser state
    are set to zero every ``train.flush_denormals_every`` steps
    (:class:`humr.engine.denormals.FlushDenormals`; 0 = off). ``use_distributed_sampler=False``: the data module
    shards the data itself, resumably.
    """
    t = config.train
    steps = int(max_steps if max_steps is not None else t.max_steps)
    ckpt_dir = run_dir / "checkpoints"
    # Two callbacks: "last" every ckpt_every steps (needs no metric), "best" after validation.
    last = ModelCheckpoint(dirpath=ckpt_dir, save_top_k=0, save_last=True,
                           every_n_train_steps=int(t.ckpt_every))
    best = ModelCheckpoint(dirpath=ckpt_dir, filename="best-step{step}",
                           auto_insert_metric_name=False, monitor=t.monitor,
                           mode=t.monitor_mode, save_top_k=1)
    session = len(list((run_dir / "csv").glob("session_*")))   # one log folder per (re)start
    loggers = [TensorBoardLogger(run_dir, name="tensorboard", version=f"session_{session}"),
               CSVLogger(run_dir, name="csv", version=f"session_{session}")]
    callbacks = [last, best, BodyIdentity(), CarryLogRow(), *callbacks]
    if t.flush_denormals_every:
        callbacks.append(FlushDenormals(int(t.flush_denormals_every)))
    if progress:
        callbacks.append(TQDMProgressBar(refresh_rate=max(1, steps // 100)))
    val_every = min(int(t.val_every), steps)
    return L.Trainer(
        default_root_dir=run_dir, accelerator=accelerator, devices=devices,
        num_nodes=num_nodes, strategy=strategy,
        precision=precision or t.precision, max_steps=steps, max_epochs=-1,
        val_check_interval=val_every, check_val_every_n_epoch=None,
        limit_val_batches=t.val_batches, num_sanity_val_steps=0,
        gradient_clip_val=t.grad_clip or None, logger=loggers, callbacks=callbacks,
        log_every_n_steps=max(1, min(50, steps // 10)), enable_progress_bar=progress,
        enable_model_summary=False, use_distributed_sampler=False, deterministic=False,
        plugins=[AtomicCheckpointIO()])


def train(config: Any, out: PathLike, *, data_root: PathLike | None = None,
          resume: PathLike | None = None, devices: int | str = "auto",
          num_nodes: int = 1, strategy: str = "auto", accelerator: str = "auto",
          precision: str | None = None, max_steps: int | None = None,
          progress: bool = True, callbacks: Sequence[L.Callback] = (),
          override: bool = False) -> TrainResult:
    """Train a HUMR model.

    Args:
        config: :class:`humr.config.Config` (or a YAML path).
        out: parent folder of the run folders (``out/version_K``).
        data_root: dataset folder (default ``config.data.root``).
        resume: a ``last.ckpt`` to continue from, or a folder searched with
            :func:`find_last_checkpoint`; the run continues in that checkpoint's run folder.
        devices, num_nodes, strategy, accelerator, precision: Lightning Trainer arguments
            (``precision`` default ``config.train.precision``; the body model always runs in
            float32).
        max_steps: total optimiser steps (default ``config.train.max_steps``); when resuming,
            training continues up to this step count.
        progress: show a progress bar.
        callbacks: extra Lightning callbacks.
        override: allow a resume whose configuration differs from the run's ``config.yaml``
            (refused otherwise); the changes are appended to ``config_changes.yaml``.
    Returns:
        :class:`TrainResult`.
    """
    from humr.config import Config

    cfg = config if isinstance(config, Config) else Config.load(config)
    validate_train_config(cfg)
    if max_steps is not None and int(max_steps) < 1:
        raise ValueError(f"max_steps = {max_steps}: expected an integer >= 1")
    ckpt_path = None
    if resume is not None:
        resume = Path(resume)
        ckpt_path = resume if resume.is_file() else find_last_checkpoint(resume)
        run_dir = ckpt_path.parent.parent
        _check_resume_config(run_dir, cfg, override)
    else:
        from humr.io import atomic_write_text

        run_dir = new_run_dir(out)
        run_dir.mkdir(parents=True)
        atomic_write_text(run_dir / "config.yaml", cfg.to_yaml())
    L.seed_everything(cfg.train.seed, workers=True, verbose=False)
    module = HumrModule(cfg)
    module.strict_loading = False    # body buffers are not saved; BodyIdentity checks the rest
    root = str(data_root or cfg.data.root)
    data = HumrDataModule(root, batch_size=cfg.train.batch_size,
                          eval_batch_size=cfg.train.eval_batch_size,
                          num_workers=cfg.train.num_workers, augment=cfg.data.augment,
                          augmentation=cfg.data.augmentation,
                          seed=cfg.train.seed, max_eval_examples=cfg.train.val_examples,
                          **datamodule_options(cfg, root))
    trainer = build_trainer(run_dir, cfg, devices=devices, num_nodes=num_nodes,
                            strategy=strategy, accelerator=accelerator, precision=precision,
                            max_steps=max_steps, progress=progress, callbacks=callbacks)
    with warnings.catch_warnings():
        # Lightning warns that a mid-epoch resume restarts the loader; HumrDataModule restores
        # the position in the epoch itself (EpochSampler.skip), so the warning does not apply.
        warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended")
        trainer.fit(module, datamodule=data, ckpt_path=ckpt_path, weights_only=True)
    last = run_dir / "checkpoints" / "last.ckpt"
    if trainer.global_step % int(cfg.train.ckpt_every):   # the final state, off the save grid
        trainer.save_checkpoint(last)
    best_path = [c.best_model_path for c in trainer.checkpoint_callbacks if c.monitor]
    best = Path(best_path[0]) if best_path and best_path[0] else None
    return TrainResult(run_dir, last, best, trainer, module)

"""The training log row that a checkpoint covers, carried in the checkpoint.

Lightning writes the step-triggered checkpoint (``ModelCheckpoint.on_train_batch_end``) *before*
it hands that step's metrics to the loggers (``update_train_step_metrics``, later in the same
batch). A process killed between the two (SIGKILL, power loss) leaves a ``last.ckpt`` whose
step is done but whose log row was never written, and the resumed run starts at the next step,
so the row would be lost for good. :class:`CarryLogRow` stores that row in every checkpoint and
writes it again to the loggers of the resumed session, before its first step. When the row did
reach the disk before the kill, the two sessions' logs both hold it, with the same values.
"""
from __future__ import annotations

from typing import Any

import lightning as L

__all__ = ["LOG_ROW_KEY", "CarryLogRow"]

LOG_ROW_KEY = "humr_log_row"


class CarryLogRow(L.Callback):
    """Keeps the last training step's logged metrics in every checkpoint
    (``checkpoint["humr_log_row"] = {"step": s, "metrics": {name: float}}``, plain data, so the
    checkpoint still loads with ``weights_only=True``) and logs them again when a run resumes.

    Only the metrics named ``<prefix>*`` (humr logs its training losses as ``train/*``) of a
    step Lightning logs (every ``log_every_n_steps``-th) are carried; ``epoch`` is added as
    Lightning adds it.
    """

    def __init__(self, prefix: str = "train/") -> None:
        self.prefix = prefix
        self._to_write: dict[str, Any] | None = None

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        # global_step counts the optimiser steps done: the step just finished logs as step - 1,
        # and Lightning logs step s when (s + 1) % log_every_n_steps == 0.
        step = trainer.global_step - 1
        every = trainer.log_every_n_steps
        if step < 0 or not every or (step + 1) % every:
            return
        metrics = {k: float(v) for k, v in trainer.logged_metrics.items()
                   if k.startswith(self.prefix)}
        if metrics:
            checkpoint[LOG_ROW_KEY] = {"step": step, "metrics": {
                **metrics, "epoch": float(trainer.current_epoch)}}

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        self._to_write = checkpoint.get(LOG_ROW_KEY)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._to_write is None:
            return
        row, self._to_write = self._to_write, None
        for logger in trainer.loggers:
            logger.log_metrics(dict(row["metrics"]), step=int(row["step"]))
            logger.save()

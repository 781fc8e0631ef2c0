"""Shared by the training tests: a Lightning callback recording the loss per step and
simulating a kill, and the losses a run's CSV logs hold."""
import csv

import lightning as L


class LossRecorder(L.Callback):
    """Records the training loss per step; raises at step ``kill_at`` (a simulated crash)."""

    def __init__(self, kill_at=None):
        self.losses, self.kill_at = {}, kill_at

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if trainer.global_step == self.kill_at:
            raise RuntimeError("killed")

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.losses[trainer.global_step] = float(outputs["loss"])


def csv_losses(run_dir, session="*"):
    """``{step: train/loss}`` of a run folder's CSV logs ``csv/session_<session>/metrics.csv``
    (a glob; with several sessions, later ones overwrite earlier ones' steps)."""
    losses = {}
    for path in sorted(run_dir.glob(f"csv/session_{session}/metrics.csv")):
        with open(path) as f:
            losses.update((int(r["step"]), float(r["train/loss"])) for r in csv.DictReader(f)
                          if r.get("train/loss"))
    return losses

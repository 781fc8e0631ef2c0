"""A Lightning callback shared by the training tests: the loss per step and a simulated kill."""
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

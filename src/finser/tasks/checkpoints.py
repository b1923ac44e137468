"""The checkpoint callback: Lightning's, with ``last.ckpt`` following every epoch."""

from __future__ import annotations

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint


class EpochCheckpoint(ModelCheckpoint):
    """Lightning's ``ModelCheckpoint`` whose ``last.ckpt`` is written at the end of every epoch.

    Lightning writes ``last.ckpt`` only when a top-k checkpoint was written in the same step, i.e. when validation
    improved: a requeued job whose validation had stopped improving resumed from that older epoch on every requeue,
    and never finished. Here each finished epoch is saved, so a job finishes whenever each attempt trains one epoch.
    """

    def on_validation_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        super().on_validation_end(trainer, module)
        if not self._should_save_on_train_epoch_end(trainer):
            self.save_last_now(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, module)
        if self._should_save_on_train_epoch_end(trainer):
            self.save_last_now(trainer)

    def save_last_now(self, trainer: L.Trainer) -> None:
        """``last.ckpt`` for this step, unless it was just written (or this is a debug run or a sanity check)."""
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

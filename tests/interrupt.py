"""A callback that kills its own process, to interrupt a run the way a lost node or an OOM killer does."""

from __future__ import annotations

import os
import signal
from typing import Any

import lightning as L


class KillDuringEpoch(L.Callback):
    """SIGKILL (no cleanup, no handlers) after the first training step of ``epoch``: the previous epoch's
    checkpoint is on disk and the step taken since is lost, as when a job dies mid-epoch."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, *args: Any) -> None:
        if trainer.current_epoch == self.epoch:
            os.kill(os.getpid(), signal.SIGKILL)

"""Training guards shared by every task."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch

from finser.errors import FinserError


class FiniteLossGuard(L.Callback):
    """Stop at the first non-finite training loss, before any checkpoint holds the damaged weights.

    The last good checkpoint (``last.ckpt`` from the previous epoch) is kept and named in the message.
    """

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, outputs: Any, batch: Any, index: int):
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is not None and not torch.isfinite(loss).all():
            callback = trainer.checkpoint_callback
            last = getattr(callback, "last_model_path", "") or "none yet (no epoch finished)"
            raise FinserError(
                f"training loss became {float(loss)} at epoch {trainer.current_epoch}, step {trainer.global_step}: "
                f"stopped before saving damaged weights; last good checkpoint: {last}. Lower training.lr, keep "
                "training.gradient_clip_val, or check the data for NaN/inf samples"
            )

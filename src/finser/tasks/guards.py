"""Training guards shared by every task: a finite loss, and resumable randomness."""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch

from finser.errors import FinserError

log = logging.getLogger(__name__)


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


class StepSeed(L.Callback):
    """Reseed every RNG (torch, numpy, random) from (seed, epoch, batch) before each training step.

    Dropout then depends on the step alone, not on what ran before it, so a run resumed with ``ckpt_path=last``,
    even from the middle of an epoch, draws exactly what the uninterrupted run drew (Lightning checkpoints hold no
    RNG state). The training order is the sampler's own (``finser.data.sampling``), resumed with the checkpoint.
    """

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def on_train_batch_start(self, trainer: L.Trainer, module: L.LightningModule, batch: Any, index: int) -> None:
        step_seed = ((self.seed * 1_000_003 + trainer.current_epoch) * 1_000_003 + index) % 2**32
        random.seed(step_seed)
        np.random.seed(step_seed)
        torch.default_generator.manual_seed(step_seed)  # torch.manual_seed seeds every backend: ~175 µs a call
        if module.device.type == "cuda":
            torch.cuda.manual_seed(step_seed)  # this rank's GPU, where its dropout draws


class ResumedEpochStart(L.Callback):
    """Run the epoch-start hooks Lightning skips when a run resumes in the middle of an epoch.

    Lightning calls ``on_train_epoch_start`` only as an epoch starts, so a run resumed mid-epoch (from the
    ``last.ckpt`` written on a requeue signal) trained the rest of it without what those hooks do: the SER task's
    frozen front-end left in training mode, the epoch's learning rate and timer, the progress bar's epoch.
    """

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.fit_loop.restarted_mid_epoch:
            for callback in trainer.callbacks:
                callback.on_train_epoch_start(trainer, module)
            module.on_train_epoch_start()


# What a Lightning checkpoint must share with the run that resumes from it (seed and corpus may differ).
RESUME_KEYS = ("experiment", "feature", "arch", "variant", "front_end", "head")


class RunIdentity(L.Callback):
    """Stamp the run's identity (``cfg.identity``) into every Lightning checkpoint, for :func:`check_resume`."""

    def __init__(self, identity: Mapping[str, Any]) -> None:
        self.identity = {str(key): value for key, value in identity.items()}

    def on_save_checkpoint(self, trainer: L.Trainer, module: L.LightningModule, checkpoint: dict) -> None:
        checkpoint["finser_identity"] = self.identity


def check_resume(path: str | Path, identity: Mapping[str, Any]) -> None:
    """Refuse, naming both, to resume a run from a checkpoint of another feature, arch or variant.

    Without this, Lightning fails deep inside ``load_state_dict`` with a list of mismatched tensor shapes, or
    (same shapes) silently trains one feature's FIN from another's weights.
    """
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as error:  # UnpicklingError, RuntimeError, EOFError for foreign or damaged files
        raise FinserError(f"ckpt_path={path} is not a Lightning checkpoint to resume from: {error}") from error
    saved = checkpoint.get("finser_identity") if isinstance(checkpoint, dict) else None
    if saved is None:
        log.warning("ckpt_path=%s holds no finser run identity (written before finser 0.1?): not checked", path)
        return
    differences = [
        f"{key} (checkpoint: {saved.get(key)}, this run: {identity.get(key)})"
        for key in RESUME_KEYS
        if saved.get(key) != identity.get(key)
    ]
    if differences:
        raise FinserError(
            f"ckpt_path={path} cannot be resumed by this run: it differs in {', '.join(differences)}. Resume with "
            "the overrides of the run that wrote it, or drop ckpt_path to start afresh"
        )

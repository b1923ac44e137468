"""Training length follows validation: stop once the monitored metric stops improving, and say why a run ended.

A fixed epoch count is a guess sized for one corpus: on the embedded corpus the study's head needs ~50 epochs to
reach its linear probe, on the study's 12k clips a fraction of that. ``training.max_epochs`` is only a cap.
"""

from __future__ import annotations

import logging
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import EarlyStopping, Timer
from lightning.pytorch.callbacks.early_stopping import EarlyStoppingReason

log = logging.getLogger(__name__)

# Why fit() ended, as results.json, train.log and the W&B summary say it.
CONVERGED, CAP, TIME_LIMIT, INTERRUPTED, DIVERGED = "converged", "cap", "time limit", "interrupted", "diverged"


class ConvergenceStop(EarlyStopping):
    """Lightning's ``EarlyStopping`` whose stop only takes effect after ``min_steps`` optimiser steps.

    ``Trainer(min_steps=...)`` is not the same: a stop signalled before the floor sticks (``trainer.should_stop``
    stays set), so training would end at the floor even if the metric improved meanwhile. Here patience is counted
    from the start, but a stop signalled before the floor is withdrawn, and the check repeats each epoch after it.
    """

    def __init__(self, min_steps: int = 0, **options: Any) -> None:
        super().__init__(**options)
        self.min_steps = min_steps

    def _run_early_stopping_check(self, trainer: L.Trainer) -> None:
        signalled_before = trainer.should_stop  # another callback's stop (a time limit, a requeue) is kept
        super()._run_early_stopping_check(trainer)
        if trainer.global_step < self.min_steps and trainer.should_stop and not signalled_before:
            trainer.should_stop = False
            self.stopped_epoch = 0
            self.stopping_reason = EarlyStoppingReason.NOT_STOPPED
            self.stopping_reason_message = None


def training_stop(trainer: L.Trainer) -> dict[str, Any]:
    """Where and why ``fit`` ended: epochs and optimiser steps trained, the reason, and (for the report) whether a
    run that hit the cap was still improving (its monitor improved within the last ``patience`` epochs)."""
    early = trainer.early_stopping_callback
    timer = next((callback for callback in trainer.callbacks if isinstance(callback, Timer)), None)
    epochs, steps = trainer.current_epoch, trainer.global_step
    capped = (trainer.max_epochs not in (None, -1) and epochs >= trainer.max_epochs) or (
        trainer.max_steps not in (None, -1) and steps >= trainer.max_steps
    )
    reason = CAP if capped else None
    if trainer.interrupted:
        reason = INTERRUPTED
    elif early is not None and early.stopping_reason in (
        EarlyStoppingReason.PATIENCE_EXHAUSTED,
        EarlyStoppingReason.STOPPING_THRESHOLD,
    ):
        reason = CONVERGED
    elif early is not None and early.stopping_reason != EarlyStoppingReason.NOT_STOPPED:
        reason = DIVERGED  # past the divergence threshold, or the monitor became NaN/inf
    elif timer is not None and timer.time_remaining() is not None and timer.time_remaining() <= 0:
        reason = TIME_LIMIT
    stop: dict[str, Any] = {"stop_reason": reason or "other", "stopped_epoch": epochs, "stopped_step": steps}
    if early is not None:
        stop.update(
            monitor=early.monitor,
            patience=early.patience,
            epochs_since_best=int(early.wait_count),
            still_improving=reason == CAP and early.wait_count < early.patience,
        )
    return stop


def log_training_stop(stop: dict[str, Any]) -> None:
    """One line in train.log: where training stopped and why, with a warning for a cap hit while still improving."""
    line = f"training stopped after epoch {stop['stopped_epoch']} (step {stop['stopped_step']}): {stop['stop_reason']}"
    if "epochs_since_best" in stop:
        line += f", {stop['monitor']} last improved {stop['epochs_since_best']} epoch(s) before"
        line += f" (patience {stop['patience']})"
    if stop.get("still_improving"):
        log.warning("%s: still improving at the cap; raise training.max_epochs", line)
    else:
        log.info("%s", line)

"""The checkpoint callback: Lightning's, with ``last.ckpt`` following every epoch and written on the requeue signal."""

from __future__ import annotations

import logging
import os
import signal
import threading
from types import FrameType
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint

log = logging.getLogger(__name__)


def requeue_signal() -> signal.Signals:
    """The signal submitit checkpoints and requeues a job on: SIGUSR2, or ``SUBMITIT_PREEMPT_SIGNAL``'s."""
    return signal.Signals["SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2")]


class HeldSignal:
    """The requeue signal, held from its handler (submitit's) until the training step in flight has finished.

    Handled at once, the signal stopped the job wherever it was (inside an optimiser step, half the weights
    updated); held, the job first writes a checkpoint between two steps, then hands the signal on.
    """

    def __init__(self, signum: signal.Signals, handler: Any) -> None:
        self.signum, self.handler, self.received = signum, handler, False
        signal.signal(signum, self.receive)

    @classmethod
    def hold(cls) -> HeldSignal | None:
        """Hold the requeue signal if a Python handler (a submitit job's) is set for it; else leave it be."""
        signum = requeue_signal()
        handler = signal.getsignal(signum)
        if threading.current_thread() is not threading.main_thread() or not callable(handler):
            return None
        return cls(signum, handler)

    def receive(self, signum: int, frame: FrameType | None) -> None:
        self.received = True

    def release(self) -> None:
        """Restore the handler; hand it the signal if one came."""
        signal.signal(self.signum, self.handler)
        if self.received:
            self.received = False
            self.handler(self.signum, None)


class EpochCheckpoint(ModelCheckpoint):
    """Lightning's ``ModelCheckpoint`` whose ``last.ckpt`` is written at the end of every epoch and when the job
    gets the requeue signal.

    Lightning writes ``last.ckpt`` only when a top-k checkpoint was written in the same step, i.e. when validation
    improved: a requeued job whose validation had stopped improving resumed from that older epoch on every requeue,
    and never finished. Here each finished epoch is saved, so a job finishes whenever each attempt trains one epoch.

    While a submitit job trains, its requeue signal (SIGUSR2, ``signal_delay_s`` before the time limit, or a
    preemption) is held until the end of the step in flight; ``last.ckpt`` is written there, mid-epoch, with the
    loops' and the training sampler's state, and the signal goes on to submitit, which requeues the job. The
    requeued job resumes from that step (the rest of the epoch in the order it would have had). A signal during
    the epoch's last step or its validation is handed on after the epoch's own ``last.ckpt``.
    """

    held: HeldSignal | None = None
    any_rank_holds = False

    def setup(self, trainer: L.Trainer, module: L.LightningModule, stage: str) -> None:
        super().setup(trainer, module, stage)
        if stage == "fit":
            self.held = HeldSignal.hold()
            # DDP ranks that Lightning starts itself are no submitit jobs: only rank 0 holds the signal
            self.any_rank_holds = trainer.strategy.reduce_boolean_decision(self.held is not None, all=False)

    def teardown(self, trainer: L.Trainer, module: L.LightningModule, stage: str) -> None:
        super().teardown(trainer, module, stage)
        self.release_signal()

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, *args: Any) -> None:
        super().on_train_batch_end(trainer, module, *args)
        if self.signalled(trainer) and self.between_steps(trainer):
            self.save_last_now(trainer)
            self.hand_on(trainer)

    def on_validation_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        super().on_validation_end(trainer, module)
        if not self._should_save_on_train_epoch_end(trainer):
            self.save_last_now(trainer)
            self.release_if_signalled(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, module)
        if self._should_save_on_train_epoch_end(trainer):
            self.save_last_now(trainer)
        self.release_if_signalled(trainer)

    def save_last_now(self, trainer: L.Trainer) -> None:
        """``last.ckpt`` for this step, unless it was just written (or this is a debug run or a sanity check)."""
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def signalled(self, trainer: L.Trainer) -> bool:
        """Whether a rank got the requeue signal (every rank then saves: writing a checkpoint is collective)."""
        if not self.any_rank_holds:
            return False
        received = self.held is not None and self.held.received
        return trainer.strategy.reduce_boolean_decision(received, all=False)

    @staticmethod
    def between_steps(trainer: L.Trainer) -> bool:
        """After an optimiser step (no gradients accumulated) that did not end the epoch (whose validation follows)."""
        epoch_loop = trainer.fit_loop.epoch_loop
        stepped = (epoch_loop.total_batch_idx + 1) % trainer.accumulate_grad_batches == 0  # as Lightning decides
        return stepped and not epoch_loop.batch_progress.is_last_batch

    def release_if_signalled(self, trainer: L.Trainer) -> None:
        if not trainer.sanity_checking and self.signalled(trainer):
            self.hand_on(trainer)

    def hand_on(self, trainer: L.Trainer) -> None:
        """Say where the requeued job will resume, then hand the signal on (submitit requeues the job and exits)."""
        log.warning("requeue signal: wrote %s at epoch %d, step %d", self.last_model_path, trainer.current_epoch,
                    trainer.global_step)  # fmt: skip
        self.release_signal()

    def release_signal(self) -> None:
        held, self.held = self.held, None
        if held is not None:
            held.release()

"""Callbacks that interrupt a run the way a lost node, an OOM killer or a cluster's time limit does."""

from __future__ import annotations

import os
import signal
from pathlib import Path
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


class PreemptOnce(L.Callback):
    """SIGUSR2 to its own process after the first training step of ``epoch``, unless the run resumed: a job's time
    limit or a preemption as submitit signals it (the signal a SLURM job gets ``signal_delay_s`` before its limit)."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, *args: Any) -> None:
        if trainer.current_epoch == self.epoch and trainer.ckpt_path is None:
            os.kill(os.getpid(), signal.SIGUSR2)


class PreemptEachAttempt(L.Callback):
    """SIGUSR2 after the first training step of every epoch but the one an attempt started at, ``times`` times in
    all: each attempt of a requeued job trains (the rest of) one epoch and is preempted in the next. The epoch and
    the optimiser step each attempt started at are appended to ``folder/attempts.txt`` as a line ``epoch step``, so a
    test sees whether a requeue kept the job's progress, and from where it resumed."""

    def __init__(self, folder: str, times: int) -> None:
        self.attempts, self.times = Path(folder) / "attempts.txt", times

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.start_epoch = trainer.current_epoch
        with self.attempts.open("a") as file:
            file.write(f"{self.start_epoch} {trainer.global_step}\n")

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, *args: Any) -> None:
        started = len(self.attempts.read_text().splitlines())
        if trainer.current_epoch != self.start_epoch and started <= self.times:
            os.kill(os.getpid(), signal.SIGUSR2)

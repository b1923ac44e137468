"""The Lightning callbacks the benchmark times training with; importable by Hydra (``_target_``) in the
``train.py`` it launches, whose own folder, the repository root, starts its ``sys.path``. Only Lightning and the
standard library are imported here, so loading the callback costs ``train.py`` no start-up time."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import lightning as L


class StepTimer(L.Callback):
    """Records the time at the end of every training batch."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_index) -> None:
        self.times.append(time.perf_counter())

    def gaps(self) -> list[float]:
        """Seconds between consecutive steps, after the first (which can include one-off work)."""
        return sorted(later - earlier for earlier, later in zip(self.times[1:], self.times[2:], strict=False))

    def per_step(self) -> float:
        return self.gaps()[0]  # the best step is the machine's rate

    def median_step(self) -> float:
        gaps = self.gaps()
        return gaps[len(gaps) // 2]


def timed_fit(task: L.LightningModule, steps: int, accelerator: str = "cpu", precision: str = "32-true", **data):
    """Fit ``task`` for ``steps`` training steps through a real Lightning Trainer (one device, no validation, logger
    or checkpoints) on ``data`` (``train_dataloaders=`` or ``datamodule=``); its :class:`StepTimer`."""
    timer = StepTimer()
    trainer = L.Trainer(
        accelerator=accelerator,
        devices=1,
        precision=precision,
        max_steps=steps,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
    )
    trainer.fit(task, **data)
    return timer


class FirstStepTimer(L.Callback):
    """Writes the seconds since ``BENCH_T0`` (a ``time.time()`` in the environment) to the JSON file
    ``BENCH_STARTUP_FILE`` at the start of the first training batch; does nothing without that variable."""

    def on_train_batch_start(self, trainer, module, batch, batch_index) -> None:
        if batch_index == 0 and "BENCH_STARTUP_FILE" in os.environ:
            seconds = time.time() - float(os.environ["BENCH_T0"])
            Path(os.environ["BENCH_STARTUP_FILE"]).write_text(json.dumps({"first_step_s": seconds}))

"""The requeue signal: last.ckpt is written at the end of the step in flight, and a resume from the middle of that
epoch ends with the weights of an uninterrupted run (dropout and a shuffled order included)."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from finser.data.sampling import EpochSampler, ResumableLoader
from finser.tasks.checkpoints import EpochCheckpoint, requeue_signal
from finser.tasks.guards import ResumedEpochStart, StepSeed

N_ITEMS, BATCH, EPOCHS = 40, 8, 3  # 5 steps an epoch


class ToyRegression(L.LightningModule):
    """A small network with dropout, trained on a shuffled order: every random thing a resume must reproduce; and a
    frozen normalisation put in eval mode as each epoch starts, as the SER task does with a frozen front-end."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.frozen = nn.BatchNorm1d(3).requires_grad_(False)
        self.net = nn.Sequential(self.frozen, nn.Linear(3, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 1))
        self.data = torch.randn(N_ITEMS, 4, generator=torch.Generator().manual_seed(1))

    def on_train_epoch_start(self) -> None:
        self.frozen.eval()

    def training_step(self, batch: torch.Tensor, index: int) -> torch.Tensor:
        return nn.functional.mse_loss(self.net(batch[:, :3]).squeeze(-1), batch[:, 3])

    def validation_step(self, batch: torch.Tensor, index: int) -> None:
        self.log("val/loss", nn.functional.mse_loss(self.net(batch[:, :3]).squeeze(-1), batch[:, 3]))

    def train_dataloader(self) -> ResumableLoader:
        return ResumableLoader(self.data, sampler=EpochSampler(N_ITEMS, seed=5), batch_size=BATCH)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.data[:16], batch_size=BATCH)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=0.01)


class SignalAt(L.Callback):
    """The requeue signal to this process as training batch ``(epoch, batch)`` starts, or as its validation does."""

    def __init__(self, epoch: int, batch: int | None) -> None:
        self.epoch, self.batch = epoch, batch

    def on_train_batch_start(self, trainer: L.Trainer, module: L.LightningModule, batch: Any, index: int) -> None:
        if (trainer.current_epoch, index) == (self.epoch, self.batch) and trainer.ckpt_path is None:
            os.kill(os.getpid(), requeue_signal())

    def on_validation_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.current_epoch == self.epoch and self.batch is None and trainer.ckpt_path is None:
            os.kill(os.getpid(), requeue_signal())


@pytest.fixture
def submitit_handler() -> Iterator[list[int]]:
    """A handler on the requeue signal as a submitit job has one: it records each call, then leaves as submitit's
    does after requeueing the job (``sys.exit(-1)``)."""
    calls: list[int] = []

    def requeue(signum: int, frame: object) -> None:
        calls.append(signum)
        raise SystemExit(-1)

    previous = signal.signal(requeue_signal(), requeue)
    yield calls
    signal.signal(requeue_signal(), previous)


def fit(folder: Path, *callbacks: L.Callback, ckpt_path: str | None = None) -> ToyRegression:
    module = ToyRegression()
    checkpoint = EpochCheckpoint(dirpath=folder, monitor="val/loss", save_last=True)
    callbacks = (checkpoint, StepSeed(seed=5), ResumedEpochStart(), *callbacks)
    trainer = L.Trainer(max_epochs=EPOCHS, callbacks=list(callbacks), logger=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0)  # fmt: skip
    trainer.fit(module, ckpt_path=ckpt_path)
    return module


@pytest.mark.parametrize(
    ("epoch", "batch", "saved_step"),
    [(1, 2, 8), (2, 0, 11), (1, 4, 10), (0, None, 5)],
    ids=["mid-epoch", "first-step", "last-step: after the epoch", "in validation: after the epoch"],
)
def test_the_requeue_signal_writes_last_at_the_step_and_the_resume_ends_as_an_uninterrupted_run(
    tmp_path: Path, submitit_handler: list[int], epoch: int, batch: int | None, saved_step: int
) -> None:
    whole = fit(tmp_path / "whole")
    with pytest.raises(SystemExit):
        fit(tmp_path / "job", SignalAt(epoch, batch))
    assert submitit_handler == [requeue_signal()], "the signal went on to submitit's handler, once"
    last = tmp_path / "job" / "last.ckpt"
    assert torch.load(last, weights_only=True)["global_step"] == saved_step
    resumed = fit(tmp_path / "job", SignalAt(epoch, batch), ckpt_path=str(last))
    assert submitit_handler == [requeue_signal()]
    for name, weights in whole.state_dict().items():
        assert torch.equal(resumed.state_dict()[name], weights), name


def test_without_a_handler_on_the_signal_nothing_is_held(tmp_path: Path) -> None:
    """Outside a submitit job the signal keeps its default action: finser installs no handler of its own."""
    assert not callable(signal.getsignal(requeue_signal()))
    checkpoint = EpochCheckpoint(dirpath=tmp_path, save_last=True)
    trainer = L.Trainer(max_epochs=1, limit_train_batches=1, callbacks=[checkpoint], logger=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)  # fmt: skip
    trainer.fit(ToyRegression())
    assert checkpoint.held is None and not callable(signal.getsignal(requeue_signal()))

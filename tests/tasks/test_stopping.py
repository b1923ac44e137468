"""Training length follows validation: a run stops by the rule before the cap when it has learned, at its patience or
the cap when there is nothing to learn, never before its step floor, and says which."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from torch import nn
from torchmetrics.classification import MulticlassF1Score

from finser.tasks.stopping import CAP, CONVERGED, ConvergenceStop, training_stop


class ToyClassifier(L.LightningModule):
    """Logistic regression on fixed 2-D points; validation logs ``val/f1_macro`` as the SER task does."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(2, 2)
        self.f1 = MulticlassF1Score(2, average="macro")

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], index: int) -> torch.Tensor:
        inputs, labels = batch
        return nn.functional.cross_entropy(self.layer(inputs), labels)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], index: int) -> None:
        inputs, labels = batch
        self.f1.update(self.layer(inputs).argmax(-1), labels)
        self.log("val/f1_macro", self.f1)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.5)


def loaders(shuffled: bool, seed: int = 0) -> tuple[torch.utils.data.DataLoader, torch.utils.data.DataLoader]:
    """Two Gaussian blobs 8 std apart (trivially separable), or the same points with labels drawn at random."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(128) % 2
    points = torch.randn(128, 2, generator=generator) + 8.0 * labels.unsqueeze(-1)
    if shuffled:
        labels = torch.randint(0, 2, (128,), generator=generator)
    data = torch.utils.data.TensorDataset(points, labels)
    train, val = torch.utils.data.random_split(data, [96, 32], generator=generator)
    return (torch.utils.data.DataLoader(train, batch_size=16, shuffle=True, generator=generator),
            torch.utils.data.DataLoader(val, batch_size=32))  # fmt: skip


def fit(shuffled: bool, max_epochs: int, patience: int = 3, min_steps: int = 0) -> tuple[L.Trainer, ConvergenceStop]:
    L.seed_everything(0, verbose=False)
    stopping = ConvergenceStop(monitor="val/f1_macro", mode="max", patience=patience, min_steps=min_steps)
    trainer = L.Trainer(max_epochs=max_epochs, callbacks=[stopping], logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    trainer.fit(ToyClassifier(), *loaders(shuffled))
    return trainer, stopping


def test_a_run_that_has_learned_stops_as_converged_before_the_cap() -> None:
    trainer, stopping = fit(shuffled=False, max_epochs=50)
    stop = training_stop(trainer)
    assert stop["stop_reason"] == CONVERGED
    assert stop["stopped_epoch"] < 50 and stop["stopped_epoch"] == trainer.current_epoch
    assert stop["stopped_step"] == trainer.global_step == 6 * stop["stopped_epoch"]  # 96 clips, batches of 16
    assert stop["epochs_since_best"] == stopping.patience == 3 and stop["still_improving"] is False
    assert stopping.best_score == pytest.approx(1.0)


def test_a_run_on_shuffled_labels_stops_at_its_patience_or_the_cap_and_says_which() -> None:
    for max_epochs in (4, 40):
        trainer, stopping = fit(shuffled=True, max_epochs=max_epochs)
        stop = training_stop(trainer)
        assert stop["stop_reason"] in (CONVERGED, CAP)
        if stop["stop_reason"] == CAP:
            assert trainer.current_epoch == max_epochs
            assert stop["still_improving"] == (stopping.wait_count < stopping.patience)
        else:
            assert stop["epochs_since_best"] >= stopping.patience and trainer.current_epoch < max_epochs
    assert fit(shuffled=True, max_epochs=2, patience=3)[0].current_epoch == 2  # too short for patience: the cap
    assert training_stop(fit(shuffled=True, max_epochs=2, patience=3)[0])["stop_reason"] == CAP


def test_no_stop_takes_effect_before_the_step_floor_and_patience_counts_after_it() -> None:
    without, _ = fit(shuffled=False, max_epochs=50)
    trainer, stopping = fit(shuffled=False, max_epochs=50, min_steps=6 * 20)  # 20 epochs of 6 steps
    assert without.current_epoch < 20 <= trainer.current_epoch < 50
    assert trainer.global_step >= stopping.min_steps
    assert training_stop(trainer)["stop_reason"] == CONVERGED


def test_a_run_that_hits_the_cap_while_improving_says_so() -> None:
    trainer, _ = fit(shuffled=False, max_epochs=1)
    stop = training_stop(trainer)
    assert (stop["stop_reason"], stop["stopped_epoch"], stop["still_improving"]) == (CAP, 1, True)

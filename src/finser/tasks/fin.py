"""FIN pre-training: regress one exact feature from frames, targets computed on the fly."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import lightning as L
import torch
from torch import nn
from torchmetrics import MeanSquaredError, MetricCollection, R2Score

from finser.features import compute
from finser.models.fin import FIN

STATISTICS_FRAMES = 8192


def regression_metrics(dim: int) -> MetricCollection:
    """R² (variance-weighted over outputs for multi-output features) and MSE, in the feature's own units."""
    r2 = R2Score(multioutput="variance_weighted") if dim > 1 else R2Score()
    return MetricCollection({"r2": r2, "mse": MeanSquaredError()})


class FINTask(L.LightningModule):
    """Owns the loss (MSE on standardised targets), the metrics per split, and the optimiser.

    Target statistics come from a fixed sample of training frames, identical on every process; a FIN that
    predicts standardised values gets them in its ``output_scale`` so that it always outputs feature units.
    """

    def __init__(
        self,
        net: FIN,
        optimizer: Callable[..., torch.optim.Optimizer],
        lr: float,
        scheduler: Callable[..., object] | None = None,
        test_set_names: Sequence[str] = ("test",),
    ) -> None:
        super().__init__()
        self.net = net
        self.feature = net.feature
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.lr = lr
        self.register_buffer("target_mean", torch.zeros(net.dim))
        self.register_buffer("target_std", torch.ones(net.dim))
        self.register_buffer("statistics_ready", torch.tensor(False))
        metrics = regression_metrics(net.dim)
        self.train_metrics = metrics.clone(prefix="train/")
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = nn.ModuleDict(
            {name: metrics.clone(prefix="test/" if name == "test" else f"eval/{name}/") for name in test_set_names}
        )
        self.test_set_names = list(test_set_names)

    def setup(self, stage: str) -> None:
        if not bool(self.statistics_ready) and self.trainer is not None and self.trainer.datamodule is not None:
            self.fit_target_statistics(self.trainer.datamodule.sample_train_frames(STATISTICS_FRAMES))

    @torch.no_grad()
    def fit_target_statistics(self, frames: torch.Tensor) -> None:
        targets = compute(self.feature, frames)
        mean = targets.mean(dim=0)
        std = targets.std(dim=0).clamp_min(1e-6 * float(targets.abs().max()) + 1e-12)
        self.target_mean.copy_(mean)
        self.target_std.copy_(std)
        self.statistics_ready.fill_(True)
        output_scale = getattr(self.net, "output_scale", None)
        if output_scale is not None:
            output_scale.set_statistics(mean, std)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.net(frames)

    def _step(self, frames: torch.Tensor, metrics: MetricCollection) -> torch.Tensor:
        targets = compute(self.feature, frames)
        predictions = self.net(frames)
        loss = nn.functional.mse_loss(
            (predictions - self.target_mean) / self.target_std, (targets - self.target_mean) / self.target_std
        )
        if self.net.dim == 1:
            predictions, targets = predictions.squeeze(-1), targets.squeeze(-1)
        metrics.update(predictions.detach(), targets)
        return loss

    def training_step(self, frames: torch.Tensor, batch_index: int) -> torch.Tensor:
        loss = self._step(frames, self.train_metrics)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(frames))
        self.log_dict(self.train_metrics, on_step=False, on_epoch=True)
        return loss

    def on_train_epoch_start(self) -> None:
        self.log("lr", self.trainer.optimizers[0].param_groups[0]["lr"], on_step=False, on_epoch=True)

    def validation_step(self, frames: torch.Tensor, batch_index: int) -> None:
        loss = self._step(frames, self.val_metrics)
        self.log("val/loss", loss, prog_bar=True, sync_dist=True, batch_size=len(frames))
        self.log_dict(self.val_metrics, prog_bar=True)

    def test_step(self, frames: torch.Tensor, batch_index: int, dataloader_idx: int = 0) -> None:
        metrics = self.test_metrics[self.test_set_names[dataloader_idx]]
        self._step(frames, metrics)
        self.log_dict(metrics, add_dataloader_idx=False)

    def configure_optimizers(self) -> dict:
        optimizer = self.optimizer_factory(self.net.parameter_groups(self.lr))
        if self.scheduler_factory is None:
            return {"optimizer": optimizer}
        scheduler = self.scheduler_factory(optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "monitor": "val/loss"}}

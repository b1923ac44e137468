"""SER classification: cross-entropy on emotion labels, F1/accuracy per split, confusion matrices at test.

The task receives its network ready (its FINs loaded or redrawn by ``finser.pipeline``, in the run layer) and owns
whether the front-end learns (``front_end_trainable``). The network's config (``self.net``, published by
``finser.run``) is architecture only, so it rebuilds without FIN files.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path

import lightning as L
import torch
from matplotlib.figure import Figure
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix, MulticlassF1Score

from finser.data.labels import EMOTIONS
from finser.features import FEATURES
from finser.models.ser import SERModel, frame_mask, n_frames
from finser.tasks import references

log = logging.getLogger(__name__)


def classification_metrics(n_classes: int) -> MetricCollection:
    """Accuracy (micro), macro F1 (every emotion counts the same: calm is 1.6% of the union), weighted F1."""
    return MetricCollection(
        {
            "acc": MulticlassAccuracy(n_classes, average="micro"),
            "f1_macro": MulticlassF1Score(n_classes, average="macro"),
            "f1_weighted": MulticlassF1Score(n_classes, average="weighted"),
        }
    )


def confusion_figure(matrix: torch.Tensor, labels: Sequence[str], title: str) -> Figure:
    """Counts with row-normalised shading (rows: true emotion, columns: predicted).

    A bare ``Figure`` (no pyplot): nothing global, no display needed, garbage-collected like any object.
    """
    counts = matrix.cpu().numpy()
    shares = counts / counts.sum(axis=1, keepdims=True).clip(min=1)
    figure = Figure(figsize=(6.5, 5.5))
    axes = figure.subplots()
    axes.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    for row in range(counts.shape[0]):
        for column in range(counts.shape[1]):
            colour = "white" if shares[row, column] > 0.5 else "black"
            axes.text(column, row, int(counts[row, column]), ha="center", va="center", color=colour, fontsize=8)
    axes.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    axes.set_yticks(range(len(labels)), labels)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title)
    figure.tight_layout()
    return figure


def gather_hits(hits: Mapping[str, list[int]]) -> dict[str, list[int]]:
    """Per-corpus hits of every process (DDP shards the test set), merged; ranks may have seen different corpora."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return dict(hits)
    parts: list[dict[str, list[int]] | None] = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(parts, dict(hits))
    merged: dict[str, list[int]] = defaultdict(list)
    for part in parts:
        for corpus, values in (part or {}).items():
            merged[corpus] += values
    return dict(merged)


class SERTask(L.LightningModule):
    """Owns the loss (cross-entropy, optionally class-weighted), metrics per split, optimiser and test reports."""

    def __init__(
        self,
        net: SERModel,
        optimizer: Callable[..., torch.optim.Optimizer],
        lr: float,
        scheduler: Callable[..., object] | None = None,
        front_end_trainable: bool = True,
        fin_pretrained_r2: Mapping[str, float] | None = None,
        class_weighted: bool = False,
        cache_frozen_features: bool = True,
        linear_probe: bool = True,
        fin_drift: bool = True,
        monitor: str = "val/loss",
        emotions: Sequence[str] = EMOTIONS,
        test_set_names: Sequence[str] = ("test",),
    ) -> None:
        super().__init__()
        self.net = net
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.lr = lr
        self.monitor = monitor
        self.emotions = list(emotions)
        self.class_weighted = class_weighted
        self.front_end_trainable = front_end_trainable
        self.cache_frozen_features = cache_frozen_features and not front_end_trainable
        self.feature_cache: dict[str, torch.Tensor] = {}  # clip key → (162, frames); not part of any checkpoint
        # feature → the published FIN the front-end was loaded from (W&B lineage), and its test R² in pre-training
        self.linear_probe = linear_probe
        # probe name → its results: the same clips every test, so each is fitted once. A frozen learned front-end
        # (FINs) is probed on its own values as well: its head never sees the exact features.
        self.probe_results: dict[str, dict[str, float]] = {}
        self.own_input_probed = not front_end_trainable and hasattr(net.front_end, "fins")
        self.fin_drift = fin_drift
        self.fin_pretrained_r2 = {str(feature): float(r2) for feature, r2 in (fin_pretrained_r2 or {}).items()}
        net.front_end.requires_grad_(front_end_trainable)
        self.register_buffer("class_weights", torch.ones(len(self.emotions)))
        metrics = classification_metrics(len(self.emotions))
        self.train_metrics = metrics.clone(prefix="train/")
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_set_names = list(test_set_names)
        self.test_metrics = nn.ModuleDict({name: metrics.clone(prefix=self.prefix(name)) for name in test_set_names})
        self.test_reports = nn.ModuleDict(
            {
                name: MetricCollection(
                    {
                        "f1": MulticlassF1Score(len(self.emotions), average=None),
                        "confusion": MulticlassConfusionMatrix(len(self.emotions)),
                    }
                )
                for name in test_set_names
            }
        )
        self.corpus_hits: dict[str, dict[str, list[int]]] = {}
        self.clip: dict[str, object] = {}
        # "emotions" (the names of the rows and columns) and e.g. "test/confusion" (rows true, columns predicted)
        self.extra_results: dict[str, list] = {"emotions": self.emotions}

    @property
    def publish_meta(self) -> dict[str, object]:
        """What inference needs beside the net: label order and how clips were cut (read by
        :func:`finser.data.audio.recorded_clip`)."""
        return {"emotions": self.emotions, "input": "waveform", **self.clip}

    @staticmethod
    def prefix(test_set: str) -> str:
        return "test/" if test_set == "test" else f"eval/{test_set}/"

    def setup(self, stage: str) -> None:
        datamodule = self.trainer.datamodule if self.trainer is not None else None
        spec = getattr(datamodule, "spec", None)
        if spec is not None:
            self.clip = {"clip": asdict(spec)}  # the whole AudioSpec: predict and eval cut clips the same way
        if self.class_weighted and datamodule is not None:
            counts = datamodule.train_class_counts().to(self.class_weights)
            weights = counts.sum() / (len(counts) * counts.clamp_min(1.0))
            self.class_weights.copy_(torch.where(counts > 0, weights, torch.zeros_like(weights)))
            log.info("class weights: %s", dict(zip(self.emotions, weights.tolist(), strict=True)))

    def on_train_epoch_start(self) -> None:
        if not self.front_end_trainable:
            self.net.front_end.eval()  # a frozen front-end never updates running statistics either
        self.log("lr", self.trainer.optimizers[0].param_groups[-1]["lr"], on_step=False, on_epoch=True)

    def forward(self, waveform: torch.Tensor, length: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(waveform, length)

    def frame_features(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """The front-end's per-frame values and mask; a frozen front-end's are computed once per clip and reused.

        Frozen means a pure function of the waveform (no gradient, eval mode), so the cache changes no number;
        it makes the baseline and frozen runs as cheap per epoch as the head alone.
        """
        if not self.cache_frozen_features or "key" not in batch:
            return self.net.frame_features(batch["waveform"], batch["length"])
        keys, lengths = batch["key"], batch["length"]
        missing = [row for row, key in enumerate(keys) if key not in self.feature_cache]
        if missing:
            with torch.no_grad():
                values, _ = self.net.frame_features(batch["waveform"][missing], lengths[missing])
            for row, computed in zip(missing, values, strict=True):
                self.feature_cache[keys[row]] = computed[:, : n_frames(int(lengths[row]))].clone()
        longest = n_frames(batch["waveform"].shape[-1])
        cached = [self.feature_cache[key] for key in keys]
        values = torch.stack([nn.functional.pad(value, (0, longest - value.shape[-1])) for value in cached])
        return values, frame_mask(lengths.to(values.device), longest)

    def _step(self, batch: dict, metrics: MetricCollection) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.net.classify(*self.frame_features(batch))
        loss = nn.functional.cross_entropy(logits, batch["emotion"], weight=self.class_weights)
        predictions = logits.argmax(dim=-1)
        metrics.update(predictions, batch["emotion"])
        return loss, predictions

    def training_step(self, batch: dict, batch_index: int) -> torch.Tensor:
        loss, _ = self._step(batch, self.train_metrics)
        size = len(batch["emotion"])
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=size)
        self.log_dict(self.train_metrics, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch: dict, batch_index: int) -> None:
        loss, _ = self._step(batch, self.val_metrics)
        self.log("val/loss", loss, prog_bar=True, sync_dist=True, batch_size=len(batch["emotion"]))
        self.log_dict(self.val_metrics, prog_bar=True)

    def on_test_epoch_start(self) -> None:
        self.corpus_hits = {name: defaultdict(list) for name in self.test_set_names}

    def test_step(self, batch: dict, batch_index: int, dataloader_idx: int = 0) -> None:
        name = self.test_set_names[dataloader_idx]
        _, predictions = self._step(batch, self.test_metrics[name])
        self.test_reports[name].update(predictions, batch["emotion"])
        for corpus, hit in zip(batch["corpus"], (predictions == batch["emotion"]).tolist(), strict=True):
            self.corpus_hits[name][corpus].append(int(hit))
        self.log_dict(self.test_metrics[name], add_dataloader_idx=False)

    def on_test_epoch_end(self) -> None:
        """Per-class F1, per-corpus accuracy, and the confusion matrix as a PNG (and an image for the loggers)."""
        for name in self.test_set_names:
            report = self.test_reports[name].compute()
            self.test_reports[name].reset()
            prefix = self.prefix(name)
            for emotion, value in zip(self.emotions, report["f1"].tolist(), strict=True):
                self.log(f"{prefix}f1/{emotion}", value, add_dataloader_idx=False)
            for corpus, hits in sorted(gather_hits(self.corpus_hits.get(name, {})).items()):
                self.log(f"{prefix}acc/{corpus}", sum(hits) / len(hits), add_dataloader_idx=False)
            self.extra_results[f"{prefix}confusion"] = report["confusion"].int().tolist()
            if self.trainer.is_global_zero and not self.trainer.sanity_checking:
                self.save_confusion(name, report["confusion"])
        self.log_references()

    def log_references(self) -> None:
        """Beside the network's scores: the linear probe on the same clips (``reference/linear_probe/...``; for frozen
        FINs also on their own values, ``reference/own_input_probe/...``) and
        each FIN's R² against its feature on the test clips (``fin_drift/<feature>/r2``, with ``r2_pretrained``
        from its pre-training when the published FIN says it). See :mod:`finser.tasks.references`."""
        sets = getattr(self.trainer.datamodule, "sets", None) or {}
        if self.linear_probe and sets:
            features = getattr(self.net.front_end, "features", FEATURES)  # SincNet, LEAF: the study's five
            probes = {"linear_probe": {"features": features}}
            if self.own_input_probed:
                probes["own_input_probe"] = {"front_end": self.net.front_end, "compress": self.net.compress}
            prefixes = {name: self.prefix(name) for name in self.test_set_names}
            metrics = classification_metrics(len(self.emotions))
            for probe, inputs in probes.items():
                if probe not in self.probe_results:
                    self.probe_results[probe] = references.linear_probe(sets, metrics, prefixes, **inputs)
                for key, value in self.probe_results[probe].items():
                    self.log(f"reference/{probe}/{key}", value, add_dataloader_idx=False)
        fins = getattr(self.net.front_end, "fins", None)
        if self.fin_drift and fins is not None and "test" in sets:
            for feature, r2 in references.fin_drift(fins, sets["test"], self.device).items():
                self.log(f"fin_drift/{feature}/r2", r2, add_dataloader_idx=False)
            for feature, r2 in self.fin_pretrained_r2.items():
                self.log(f"fin_drift/{feature}/r2_pretrained", r2, add_dataloader_idx=False)

    def save_confusion(self, name: str, matrix: torch.Tensor) -> None:
        figure = confusion_figure(matrix, self.emotions, f"{name}: rows true, columns predicted")
        folder = Path(self.trainer.default_root_dir)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"confusion_{name}.png"
        figure.savefig(path, dpi=120)
        for logger in self.loggers:
            if hasattr(logger, "log_image"):  # W&B (and other image-aware loggers)
                logger.log_image(key=f"{self.prefix(name)}confusion", images=[str(path)])
        log.info("confusion matrix saved to %s", path)

    def configure_optimizers(self) -> dict:
        optimizer = self.optimizer_factory(self.net.parameter_groups(self.lr))
        if self.scheduler_factory is None:
            return {"optimizer": optimizer}
        scheduler = self.scheduler_factory(optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "monitor": self.monitor}}

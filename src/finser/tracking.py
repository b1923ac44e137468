"""Experiment tracking: a CSV history that survives resuming, and Weights & Biases offline unless turned on."""

from __future__ import annotations

import csv
import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import RichProgressBar
from lightning.pytorch.loggers import CSVLogger, Logger, WandbLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment

from finser.console import on_terminal

log = logging.getLogger(__name__)


def progress_bar() -> RichProgressBar:
    """Lightning's rich bar on a terminal; switched off without one, where it would print stale bars into log files
    (:class:`EpochLog` reports each epoch there)."""
    bar = RichProgressBar()
    if not on_terminal():
        bar.disable()
    return bar


class EpochLog(L.Callback):
    """One log line per training epoch with its metrics, in ``train.log`` and on the console, with or without a
    terminal: ``epoch 3/30: train/loss=0.0123 val/loss=0.0131 val/r2=0.9912 lr=0.001 (4.2 s)``."""

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.started = time.monotonic()

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        metrics = " ".join(
            f"{name}={float(value):.4g}"
            for name, value in sorted(trainer.callback_metrics.items())
            if not name.endswith("_step") and value.numel() == 1
        )
        log.info("epoch %d/%d: %s (%.1f s)", trainer.current_epoch + 1, trainer.max_epochs, metrics,
                 time.monotonic() - self.started)  # fmt: skip


class AppendingExperimentWriter(ExperimentWriter):
    """Lightning's writer, minus deleting an existing metrics.csv when it starts."""

    def _check_log_dir_exists(self) -> None:
        """Continue the file an earlier attempt of this run wrote, with its columns (new ones rewrite the header)."""
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as file:
                self.metrics_keys = list(csv.DictReader(file).fieldnames or [])


class AppendingCSVLogger(CSVLogger):
    """A CSVLogger whose csv/metrics.csv keeps the epochs logged before a resume (the report's learning curves)."""

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = AppendingExperimentWriter(log_dir=self.log_dir)
        return self._experiment


def wandb_logger(
    project: str, group: str, job_type: str, tags: list[str], save_dir: str, **options: object
) -> WandbLogger:
    """A WandbLogger writing into the run dir: offline unless WANDB_MODE=online, so nothing ever prompts, and with
    WANDB_MODE=disabled a logger that writes no file at all."""
    mode = os.environ.get("WANDB_MODE", "offline")
    online, disabled = mode in ("online", "run"), mode == "disabled"
    os.environ.setdefault("WANDB_SILENT", "true")
    return WandbLogger(
        project=project,
        group=group,
        job_type=job_type,
        tags=tags,
        save_dir=save_dir,
        offline=not (online or disabled),  # Lightning would turn "offline" back on through WANDB_MODE=dryrun
        **({"mode": "disabled"} if disabled else {}),
        **options,
    )


def fin_artifact_name(feature: str, arch: str) -> str:
    """The W&B artifact of a published FIN, the same in the run that publishes it and in every run that loads it."""
    return f"fin-{feature}-{arch}"


def log_published(loggers: Sequence[Logger], results_path: Path, kind: str, inputs: Mapping[str, Path]) -> None:
    """Hand W&B what ``results.json`` holds and what the run loaded, for W&B's tables and lineage view.

    Every metric (``init/*`` and the best validation value included) goes into the run's summary; the checkpoint the
    run published becomes an artifact of type ``kind`` (a FIN: ``fin-<feature>-<arch>``; an SER model: the run's group),
    and each FIN file in ``inputs`` (feature → path) is recorded as used, so a result names the FINs behind it.
    Offline, W&B refuses ``use_artifact``; the record written instead (log, then use once committed) is the one
    ``use_artifact`` writes online for a file it has not seen, and ``wandb sync`` replays it.
    """
    run = next((logger.experiment for logger in loggers if isinstance(logger, WandbLogger)), None)
    if run is None or run.disabled:
        return
    import wandb

    results = json.loads(results_path.read_text())
    run.summary.update(results["metrics"])
    run.summary.update({f"stop/{key}": value for key, value in (results.get("stop") or {}).items()})
    name = fin_artifact_name(results["feature"], results["arch"]) if kind == "fin" else run.group
    metadata = {key: results[key] for key in ("metrics", "published", "run_dir") if key in results}
    artifact = wandb.Artifact(name, type=kind, metadata=metadata)
    artifact.add_file(results["checkpoint"])
    run.log_artifact(artifact)
    for feature, path in inputs.items():
        used = wandb.Artifact(fin_artifact_name(feature, results["arch"]), type="fin")
        used.add_file(str(path))
        if run.offline:
            run._log_artifact(used, is_user_created=True, use_after_commit=True)
        else:
            run.use_artifact(used)

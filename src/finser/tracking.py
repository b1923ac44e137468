"""Experiment tracking: a CSV history that survives resuming, and Weights & Biases offline unless turned on."""

from __future__ import annotations

import csv
import os

from lightning.pytorch.loggers import CSVLogger, WandbLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment


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


def wandb_logger(project: str, group: str, tags: list[str], save_dir: str, **options: object) -> WandbLogger:
    """A WandbLogger writing into the run dir; online only when WANDB_MODE=online, so nothing ever prompts."""
    online = os.environ.get("WANDB_MODE", "offline") == "online"
    os.environ.setdefault("WANDB_SILENT", "true")
    return WandbLogger(project=project, group=group, tags=tags, save_dir=save_dir, offline=not online, **options)

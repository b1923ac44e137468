"""Experiment tracking: Weights & Biases offline unless the user turned it on."""

from __future__ import annotations

import os

from lightning.pytorch.loggers import WandbLogger


def wandb_logger(project: str, group: str, tags: list[str], save_dir: str, **options: object) -> WandbLogger:
    """A WandbLogger writing into the run dir; online only when WANDB_MODE=online, so nothing ever prompts."""
    online = os.environ.get("WANDB_MODE", "offline") == "online"
    os.environ.setdefault("WANDB_SILENT", "true")
    return WandbLogger(project=project, group=group, tags=tags, save_dir=save_dir, offline=not online, **options)

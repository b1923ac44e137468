"""Build a run from its config with ``hydra.utils.instantiate``, fit, test from the best checkpoint, publish."""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.syntax import Syntax
from rich.tree import Tree

from finser.errors import FinserError
from finser.models.checkpoint import save_checkpoint
from finser.tasks.guards import check_resume

log = logging.getLogger(__name__)


def print_config_tree(cfg: DictConfig, path: Path | None = None) -> None:
    """Print the resolved config as a tree (one branch per top-level node) and save it beside the run."""
    tree = Tree("config", style="bold")
    for key, node in cfg.items():
        text = OmegaConf.to_yaml(node, resolve=True) if isinstance(node, DictConfig) else str(node)
        tree.add(f"[bold cyan]{key}").add(Syntax(text, "yaml", theme="ansi_dark", word_wrap=True))
    Console(stderr=True).print(tree)
    if path is not None:
        path.write_text(OmegaConf.to_yaml(cfg, resolve=True))


def instantiate_list(nodes: DictConfig | None, kind: str) -> list[Any]:
    """Instantiate every node of a group (callbacks, loggers) that has a ``_target_``."""
    objects = []
    for name, node in (nodes or {}).items():
        if isinstance(node, DictConfig) and "_target_" in node:
            log.info("Instantiating %s %s <%s>", kind, name, node._target_)
            objects.append(instantiate(node))
    return objects


def finite_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    return {name: float(value) for name, value in metrics.items() if math.isfinite(float(value))}


def run(cfg: DictConfig) -> dict[str, float]:
    """One training run: returns its final metrics (a sweeper optimises ``cfg.optimized_metric``)."""
    output_dir = Path(HydraConfig.get().runtime.output_dir) if HydraConfig.initialized() else Path.cwd()
    rank_zero = int(os.environ.get("LOCAL_RANK", "0")) == 0 and int(os.environ.get("NODE_RANK", "0")) == 0
    if rank_zero:
        print_config_tree(cfg, output_dir / "config_resolved.yaml")
    L.seed_everything(cfg.seed, workers=True)

    log.info("Instantiating datamodule <%s>", cfg.datamodule._target_)
    datamodule = instantiate(cfg.datamodule)
    log.info("Instantiating task <%s>", cfg.task._target_)
    task = instantiate(cfg.task, test_set_names=datamodule.test_set_names)
    callbacks: list[Callback] = instantiate_list(cfg.get("callbacks"), "callback")
    loggers: list[Logger] = instantiate_list(cfg.get("logger"), "logger")
    log.info("Instantiating trainer <%s>", cfg.trainer._target_)
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    for logger in loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))

    results: dict[str, float] = {}
    try:
        if cfg.get("evaluate_before_training"):
            results.update(evaluate_untrained(cfg, task, datamodule))
        resume = resume_path(cfg.get("ckpt_path"), trainer)
        if resume is not None:
            check_resume(resume, OmegaConf.to_container(cfg.identity, resolve=True))
        trainer.fit(task, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
        best = (
            trainer.checkpoint_callback.best_model_path
            if isinstance(trainer.checkpoint_callback, ModelCheckpoint)
            else ""
        )
        if not best:
            log.warning("no best checkpoint was saved: testing the weights as they are after training")
        for metrics in trainer.test(task, datamodule=datamodule, ckpt_path=best or None):
            results.update(finite_metrics(metrics))
        results.update(
            {f"train_end/{k}": v for k, v in finite_metrics(trainer.callback_metrics).items() if k.startswith("val/")}
        )
        if trainer.is_global_zero:
            publish(cfg, task, results, output_dir, best)
    finally:
        for logger in loggers:
            logger.finalize("success")
        if any(type(logger).__name__ == "WandbLogger" for logger in loggers):
            import wandb

            wandb.finish()
    return results


def resume_path(ckpt_path: str | None, trainer: L.Trainer) -> Path | None:
    """The file ``ckpt_path`` names: itself, or (``last``) the run's own ``checkpoints/last.ckpt`` if there is one."""
    if ckpt_path == "last" and isinstance(trainer.checkpoint_callback, ModelCheckpoint):
        last = Path(trainer.checkpoint_callback.dirpath or "") / "last.ckpt"
        return last if last.is_file() else None
    if ckpt_path and ckpt_path not in ("best", "last", "hpc"):
        if not Path(ckpt_path).is_file():
            raise FinserError(f"ckpt_path={ckpt_path} does not exist: give a run's checkpoints/last.ckpt")
        return Path(ckpt_path)
    return None


def evaluate_untrained(cfg: DictConfig, task: L.LightningModule, datamodule: L.LightningDataModule) -> dict:
    """Test the network as initialised, so a run shows what training changed (keys prefixed ``init/``)."""
    trainer = L.Trainer(
        accelerator=cfg.trainer.accelerator,
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        inference_mode=False,  # metric states reset here must stay updatable by a later no_grad (DDP) test loop
        enable_model_summary=False,
    )
    metrics: dict[str, float] = {}
    for part in trainer.test(task, datamodule=datamodule, verbose=False):
        metrics.update(finite_metrics(part))
    return {f"init/{name}": value for name, value in metrics.items()}


def publish(cfg: DictConfig, task: L.LightningModule, results: dict, output_dir: Path, best: str) -> None:
    """Save the tested model as a safe finser checkpoint and write ``results.json`` in the run dir."""
    identity = OmegaConf.to_container(cfg.identity, resolve=True)
    published = save_checkpoint(
        task.net,
        OmegaConf.to_container(cfg.task.net, resolve=True),
        cfg.publish_path,
        kind=cfg.task_kind,
        metrics=results,
        **identity,
        **getattr(task, "publish_meta", {}),  # what inference needs beyond the net (SER: emotions, clip length)
    )
    log.info("published %s", published)
    summary = {
        **identity,
        "metrics": results,
        **results,
        **getattr(task, "extra_results", {}),  # non-scalar results (SER: confusion matrices as nested lists)
        "checkpoint": str(published),
        "lightning_checkpoint": best,
        "run_dir": str(output_dir),
    }
    (output_dir / "results.json").write_text(json.dumps(summary, indent=2))
    log.info("results: %s", json.dumps({k: round(v, 4) for k, v in results.items()}))


torch.set_float32_matmul_precision("high")

"""Build a run from its config with ``hydra.utils.instantiate``, fit, test from the best checkpoint, publish."""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import math
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import RunMode
from hydra.utils import instantiate
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig, OmegaConf, open_dict
from rich.console import Console
from rich.syntax import Syntax
from rich.tree import Tree

from finser.cluster import check_rank_launch, cluster_plugins, is_rank_zero
from finser.console import drop_library_handlers
from finser.cores import limit_threads, threads_per_process, usable_cores
from finser.data.audio import recorded_clip
from finser.errors import FinserError
from finser.features import N_FFT, SAMPLE_RATE
from finser.launch import check_launcher, requeued_checkpoint
from finser.models.checkpoint import load_model, publish_checkpoint, save_checkpoint
from finser.outputs import atomic_text
from finser.pipeline import build_task
from finser.tasks.guards import check_resume
from finser.tasks.stopping import log_training_stop, training_stop
from finser.tracking import log_published

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


# Values no run can use, refused before any work: (key, test, what is expected).
SETTING_RULES: tuple[tuple[str, Callable[[Any], bool], str], ...] = (
    ("training.lr", lambda value: value > 0, "a number > 0 (a negative rate trains by gradient ascent)"),
    ("training.max_epochs", lambda value: value >= 1 and value == int(value), "a whole number >= 1"),
    ("training.batch_size", lambda value: value >= 1 and value == int(value), "a whole number >= 1"),
    ("training.num_workers", lambda value: value >= 0 and value == int(value), "a whole number >= 0"),
    ("seed", lambda value: isinstance(value, int) and 0 <= value < 2**32, "a whole number from 0 to 4294967295"),
)


def check_settings(cfg: DictConfig, overrides: Sequence[str] = ()) -> None:
    """Refuse impossible values, and command-line ``overrides`` of keys this run never reads, naming the key, before
    anything is built or trained."""
    problems = unread_overrides(cfg, overrides)
    for key, test, expected in SETTING_RULES:
        value = OmegaConf.select(cfg, key)
        try:
            valid = value is not None and not isinstance(value, bool) and bool(test(value))
        except (TypeError, ValueError, OverflowError):  # a string, nan, inf
            valid = False
        if not valid:
            problems.append(f"{key}={value!r}: expected {expected}")
    fractions = OmegaConf.select(cfg, "split.fractions")
    if fractions is not None and not valid_fractions(list(fractions)):
        problems.append(f"split.fractions={list(fractions)}: expected train, val and test fractions, each > 0, sum 1")
    optimizable, optimized = optimizable_metrics(cfg), cfg.get("optimized_metric")
    if optimized not in optimizable:
        problems.append(
            f"optimized_metric={optimized!r}: a sweep may optimise {', '.join(optimizable) or 'nothing'} (validation "
            "only: nothing is selected on the test split)"
        )
    audio = OmegaConf.select(cfg, "dataset.audio")
    duration = None if audio is None else audio.get("duration")
    if duration is not None and round(duration * audio.get("sample_rate", SAMPLE_RATE)) < N_FFT:
        problems.append(f"dataset.audio.duration={duration}: a crop shorter than one {N_FFT}-sample window")
    emotions, outputs = OmegaConf.select(cfg, "dataset.emotions"), OmegaConf.select(cfg, "ser_head.net.n_classes")
    if cfg.get("task_kind") == "ser" and emotions is not None and outputs != len(emotions):
        problems.append(
            f"ser_head.net.n_classes={outputs!r}: expected {len(emotions)}, one output per emotion of dataset.emotions "
            f"({', '.join(emotions)}); leave it to the dataset"
        )
    if problems:
        raise FinserError("impossible settings, nothing was run: " + "; ".join(problems))


# Sections no code reads whole: their keys reach a run only through interpolations elsewhere (``${dataset.index}`` in
# the datamodule, ``${dataset.name}`` in the experiment), so an option that refers to none of a key ignores it.
READ_THROUGH_REFERENCES = ("dataset",)
REFERENCE = re.compile(r"\$\{(?:[\w.]+:)?([A-Za-z_][\w.]*)")  # ${a.b}, ${oc.select:a.b,default}


def unread_overrides(cfg: DictConfig, overrides: Sequence[str]) -> list[str]:
    """The overrides of keys in :data:`READ_THROUGH_REFERENCES` that nothing this run builds refers to: e.g.
    ``dataset.generated`` in a FIN run (only the SER presets read it), whose value would be silently ignored."""
    overridden = [
        override.key_or_group
        for override in OverridesParser.create().parse_overrides(list(overrides))
        if not override.is_delete()
        and "." in override.key_or_group  # a key, not a group choice
        and within(override.key_or_group, READ_THROUGH_REFERENCES)
    ]
    if not overridden:  # the usual run: no config walk at start-up
        return []
    raw = OmegaConf.to_container(OmegaConf.masked_copy(cfg, [key for key in cfg if key != "hydra"]), resolve=False)
    located = list(references(raw))
    read = {ref for where, ref in located if not within(where, READ_THROUGH_REFERENCES)}
    frontier = set(read)
    while frontier:  # a key read through a reference reads what it refers to in turn (index.root: ${dataset.root})
        frontier = {ref for where, ref in located if within(where, frontier) and ref not in read}
        read |= frontier
    problems = []
    for key in overridden:
        if not any(within(key, {ref}) or within(ref, {key}) for ref in read):
            section, rest = key.split(".", 1)
            instead = [f"{other}.{rest}" for other, node in raw.items() if other != section and holds(node, rest)]
            hint = f" (set {' or '.join(instead)} instead)" if instead else ""
            problems.append(f"{key}: nothing this run builds reads it, so the value would be ignored{hint}")
    return problems


def references(node: Any, where: str = "") -> Iterator[tuple[str, str]]:
    """(the key holding it, the key it refers to) for every interpolation in a raw config container."""
    if isinstance(node, dict):
        for name, value in node.items():
            yield from references(value, f"{where}.{name}" if where else str(name))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from references(value, f"{where}.{index}")
    elif isinstance(node, str):
        yield from ((where, ref) for ref in REFERENCE.findall(node))


def holds(node: Any, key: str) -> bool:
    """Whether the raw config ``node`` has the dotted ``key`` (mappings only)."""
    for name in key.split("."):
        if not isinstance(node, dict) or name not in node:
            return False
        node = node[name]
    return True


def within(key: str, sections: Iterable[str]) -> bool:
    """Whether ``key`` is one of ``sections`` or a key inside one."""
    return any(key == section or key.startswith(f"{section}.") for section in sections)


def valid_fractions(fractions: list[Any]) -> bool:
    """Three positive fractions summing to 1: an empty validation or test split measures nothing."""
    numbers = [value for value in fractions if isinstance(value, int | float) and not isinstance(value, bool)]
    return len(numbers) == len(fractions) == 3 and min(numbers) > 0 and math.isclose(sum(numbers), 1.0)


def optimizable_metrics(cfg: DictConfig) -> list[str]:
    """What a run returns for a sweeper: the best validation value of its checkpoint monitor (see run)."""
    monitor = OmegaConf.select(cfg, "callbacks.model_checkpoint.monitor")
    return [f"{monitor}_best"] if monitor else []


def run_dir() -> Path:
    """This run's own directory (Hydra's output dir; the working directory outside Hydra)."""
    return Path(HydraConfig.get().runtime.output_dir) if HydraConfig.initialized() else Path.cwd()


def write_results(output_dir: Path, summary: dict[str, Any], results: dict[str, float]) -> None:
    """``results.json`` in the run dir, and its metrics in the log."""
    with atomic_text(output_dir / "results.json") as handle:  # whole or absent: the report reads finished runs
        handle.write(json.dumps(summary, indent=2))
    log.info("results: %s", json.dumps({k: round(v, 4) for k, v in results.items()}))


def check_publish_folder(path: Path, model: torch.nn.Module) -> None:
    """Fail before training, not after it, when the folder a model is published to cannot take it."""
    folder = path.parent
    needed = 2 * sum(tensor.numel() * tensor.element_size() for tensor in model.state_dict().values()) + 2**20
    existing = next(parent for parent in (folder, *folder.parents) if parent.exists())  # created only on publishing
    try:
        if not existing.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, f"{existing} is a file, not a folder")
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".write-test-"):
            pass
    except OSError as error:
        raise FinserError(
            f"cannot publish to {folder}: {error.strerror or error}. Pass a writable folder (paths.fin_dir=...)"
        ) from error
    free = shutil.disk_usage(existing).free
    if free < needed:
        raise FinserError(
            f"{folder} has {free:,} bytes free; publishing this model needs about {needed:,}. Free some space or "
            "pass another folder (paths.fin_dir=...)"
        )


def unpublishable(trainer: L.Trainer) -> str | None:
    """Why this run's model must stay in its run dir (a debug run, training that did not finish), or None."""
    if trainer.fast_dev_run or trainer.overfit_batches:
        return "a debug run (fast_dev_run or overfit_batches)"
    reached_steps = trainer.max_steps not in (None, -1) and trainer.global_step >= trainer.max_steps
    if trainer.current_epoch < (trainer.max_epochs or 0) and not trainer.should_stop and not reached_steps:
        return f"training stopped after {trainer.current_epoch} of {trainer.max_epochs} epochs"
    return None


def validation_score(trainer: L.Trainer) -> dict[str, Any] | None:
    """The checkpoint callback's best validation value, its monitor and mode, and the epoch and file it came from."""
    callback = trainer.checkpoint_callback
    if not isinstance(callback, ModelCheckpoint) or callback.best_model_score is None or not callback.monitor:
        return None
    epoch = None
    if callback.best_model_path:
        epoch = torch.load(callback.best_model_path, map_location="cpu", weights_only=True, mmap=True).get("epoch")
    return {"monitor": callback.monitor, "mode": callback.mode, "best": float(callback.best_model_score),
            "epoch": epoch, "path": callback.best_model_path}  # fmt: skip


def data_signature(cfg: DictConfig) -> str:
    """Which data a model was trained and validated on (corpus, its size and split): validation scores of two
    published models compare only when this is the same. The label set (``emotions``) is left out: it names the
    head's outputs, not the clips, so FINs published before datasets declared it keep their signature."""
    dataset = OmegaConf.to_container(cfg.dataset, resolve=True)
    dataset.pop("emotions", None)
    return hashlib.sha256(json.dumps(dataset, sort_keys=True, default=str).encode()).hexdigest()[:16]


def provenance(output_dir: Path) -> dict[str, Any]:
    """Which run made a published file: its dir, its command-line overrides, its sweep, and when."""
    hydra = HydraConfig.get() if HydraConfig.initialized() else None
    sweep = str(Path(hydra.sweep.dir).resolve()) if hydra is not None and hydra.mode == RunMode.MULTIRUN else None
    return {
        "run_dir": str(output_dir),
        "overrides": list(hydra.overrides.task) if hydra is not None else [],
        "sweep": sweep,
        "published_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def concurrent_processes(cfg: DictConfig) -> int:
    """How many processes of this run share its cores: parallel sweep jobs (joblib's ``n_jobs``) × CPU DDP ranks."""
    launcher = HydraConfig.get().launcher if HydraConfig.initialized() else {}
    jobs = launcher.get("n_jobs") or 1
    jobs = usable_cores() if jobs < 0 else jobs  # joblib's -1: one job per core
    devices = cfg.trainer.get("devices", 1) if cfg.trainer.get("accelerator") == "cpu" else 1
    return jobs * (devices if isinstance(devices, int) and devices > 0 else 1)


def command_line_overrides() -> list[str]:
    """This run's overrides as typed (none outside Hydra)."""
    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def run(cfg: DictConfig) -> dict[str, float]:
    """One training run: returns its final metrics (a sweeper optimises ``cfg.optimized_metric``)."""
    check_settings(cfg, command_line_overrides())
    torch.set_float32_matmul_precision("high")  # TF32 matmuls where the GPU has them
    if HydraConfig.initialized():
        hydra = HydraConfig.get()
        check_launcher(hydra.runtime.choices.get("hydra/launcher"), hydra.launcher, cfg.trainer)
        check_rank_launch(cfg.trainer, hydra.mode == RunMode.MULTIRUN, hydra.runtime.choices.get("hydra/launcher"))
    limit_threads(threads_per_process(concurrent_processes(cfg)))
    drop_library_handlers()
    output_dir = run_dir()
    if is_rank_zero():
        print_config_tree(cfg, output_dir / "config_resolved.yaml")
    L.seed_everything(cfg.seed, workers=True)

    log.info("Instantiating datamodule <%s>", cfg.datamodule._target_)
    datamodule = instantiate(cfg.datamodule)
    task, loaded = build_task(cfg, datamodule.test_set_names)  # an SER front-end's FINs loaded (or pre-trained) first
    check_publish_folder(Path(cfg.publish_path), task.net)
    callbacks: list[Callback] = instantiate_list(cfg.get("callbacks"), "callback")
    loggers: list[Logger] = instantiate_list(cfg.get("logger"), "logger")
    log.info("Instantiating trainer <%s>", cfg.trainer._target_)
    plugins = cluster_plugins()  # a multi-task submitit local job's ranks
    trainer: L.Trainer = instantiate(
        cfg.trainer, callbacks=callbacks, logger=loggers or False, **({"plugins": plugins} if plugins else {})
    )
    for logger in loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))

    results: dict[str, float] = {}
    try:
        if cfg.get("evaluate_before_training"):
            results.update(evaluate_untrained(cfg, task, datamodule))
        checkpoint_dir = getattr(trainer.checkpoint_callback, "dirpath", None) or output_dir / "checkpoints"
        ckpt_path = cfg.get("ckpt_path") or requeued_checkpoint(checkpoint_dir)
        resume = resume_path(ckpt_path, trainer)
        if resume is not None:
            check_resume(resume, OmegaConf.to_container(cfg.identity, resolve=True))
        trainer.fit(task, datamodule=datamodule, ckpt_path=ckpt_path)
        stop = training_stop(trainer)
        if trainer.is_global_zero:
            log_training_stop(stop)
        best = (
            trainer.checkpoint_callback.best_model_path
            if isinstance(trainer.checkpoint_callback, ModelCheckpoint)
            else ""
        )
        if not best:
            log.warning("no best checkpoint was saved: testing the weights as they are after training")
        for metrics in trainer.test(task, datamodule=datamodule, ckpt_path=best or None):
            results.update(finite_metrics(metrics))
        validation = validation_score(trainer)
        if validation is not None:
            best_metrics = {f"{validation['monitor']}_best": validation["best"]}
            if validation["epoch"] is not None:
                best_metrics[f"{validation['monitor']}_best_epoch"] = float(validation["epoch"])
            results.update(best_metrics)
            for logger in loggers:
                logger.log_metrics(best_metrics)
        if trainer.is_global_zero:
            publish(cfg, task, results, output_dir, validation, stop, trainer)
            log_published(loggers, output_dir / "results.json", cfg.task_kind, loaded.checkpoints)
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
    return {f"init/{name}": value for name, value in tested_metrics(cfg, task, datamodule).items()}


def tested_metrics(cfg: DictConfig, task: L.LightningModule, datamodule: L.LightningDataModule) -> dict[str, float]:
    """Every test set's metrics for the network as it is, on one device, with nothing logged or saved."""
    trainer = L.Trainer(
        accelerator=cfg.trainer.accelerator,
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        inference_mode=False,  # metric states reset here must stay updatable by a later no_grad (DDP) test loop
        enable_model_summary=False,
        default_root_dir=run_dir(),  # where an SER task saves its confusion matrices (not the working directory)
    )
    metrics: dict[str, float] = {}
    for part in trainer.test(task, datamodule=datamodule, verbose=False):
        metrics.update(finite_metrics(part))
    return metrics


def use_checkpoint_emotions(cfg: DictConfig, emotions: Sequence[str]) -> None:
    """Score with the emotions the model was trained on (their order names its outputs), whatever the dataset
    declares: a corpus of other emotions then stops with the dataset's label check, not a silent mismatch."""
    declared = list(OmegaConf.select(cfg, "dataset.emotions") or [])
    if declared != list(emotions):
        log.info("the checkpoint's emotions %s replace dataset.emotions %s", list(emotions), declared)
    cfg.dataset.emotions = list(emotions)


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """Test a published FIN or SER checkpoint (``ckpt=``) on the configured dataset and its evaluation corpora.

    Writes ``results.json`` in the run dir; nothing is trained or published. The config must describe the same
    model (``feature``/``fin_arch`` for a FIN, the preset, head and arch for SER): a mismatch says which overrides fit.
    """
    typed = command_line_overrides()
    check_settings(cfg, typed)
    output_dir = run_dir()
    drop_library_handlers()
    model, meta = load_model(cfg.ckpt)
    identity = OmegaConf.to_container(cfg.identity, resolve=True)
    overrides = (
        f"feature={meta.get('feature')} fin_arch={meta.get('arch')}"
        if meta["kind"] == "fin"
        else f"experiment={meta.get('experiment')} ser_head={meta.get('head')} fin_arch={meta.get('arch')}"
    )
    if meta["kind"] != cfg.task_kind:
        raise FinserError(
            f"ckpt={cfg.ckpt} holds a {meta['kind']} model, this config a {cfg.task_kind}: add {overrides}"
        )
    clip = cut_as_trained(cfg, meta, typed) if meta["kind"] == "ser" else {}
    torch.set_float32_matmul_precision("high")
    L.seed_everything(cfg.seed, workers=True)
    if meta["kind"] == "ser":
        use_checkpoint_emotions(cfg, meta["emotions"])
    datamodule = instantiate(cfg.datamodule)
    task, _ = build_task(cfg, datamodule.test_set_names, load_weights=False)  # its weights come from ckpt
    try:
        task.net.load_state_dict(model.state_dict())
    except RuntimeError as error:
        raise FinserError(f"ckpt={cfg.ckpt} is another architecture than this config's: add {overrides}") from error
    if hasattr(task, "statistics_ready"):
        task.statistics_ready.fill_(True)  # a FIN's output scale comes from its own training data, not this corpus
    results = tested_metrics(cfg, task, datamodule)
    if not results:
        raise FinserError(
            f"ckpt={cfg.ckpt}: nothing was measured (every metric was NaN or missing): the model or the test data is "
            "unusable; no results.json was written"
        )
    summary = {**identity, "metrics": results, **results, **getattr(task, "extra_results", {}),
               "evaluated_checkpoint": str(Path(cfg.ckpt).resolve()), "checkpoint_meta": {
                   key: meta.get(key) for key in ("kind", "feature", "arch", "experiment", "head", "run_dir")},
               **clip, "run_dir": str(output_dir)}  # fmt: skip
    write_results(output_dir, summary, results)
    return results


CLIP_KEYS = ("dataset.audio", "dataset.band_limit_hz", "clip")  # the overrides that change how clips are cut


def cut_as_trained(cfg: DictConfig, meta: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Set ``dataset.audio`` to the clip spec the SER model in ``meta`` was trained on, so its test clips are cut as
    its training clips were; returns it as ``{"clip": ...}`` for results.json. An override that would cut them
    otherwise is refused rather than silently replaced."""
    recorded = asdict(recorded_clip(meta, cfg.ckpt))
    configured = OmegaConf.to_container(cfg.dataset.audio, resolve=True)
    configured.pop("_target_", None)
    changed = [item for item in overrides if within(re.split(r"[=@]", item.lstrip("+~"), maxsplit=1)[0], CLIP_KEYS)]
    differs = {**recorded, **configured} != recorded
    if differs and changed:
        raise FinserError(
            f"ckpt={cfg.ckpt} was trained on clips cut as {recorded}, and eval cuts its test clips the same way: "
            f"drop {' '.join(changed)}"
        )
    if differs:
        log.info("cutting the test clips as %s was trained: %s (not this config's %s)", cfg.ckpt, recorded, configured)
    with open_dict(cfg):
        cfg.dataset.audio = {"_target_": "finser.data.audio.AudioSpec", **recorded}
    return {"clip": recorded}


def publish(
    cfg: DictConfig,
    task: L.LightningModule,
    results: dict,
    output_dir: Path,
    validation: dict[str, Any] | None,
    stop: dict[str, Any],
    trainer: L.Trainer,
) -> None:
    """Save the tested model as a safe finser checkpoint and write ``results.json`` in the run dir.

    A model published outside the run dir (a FIN, into ``paths.fin_dir``) goes there only from a run that finished
    training; it replaces an existing file as :func:`finser.models.checkpoint.publish_checkpoint` says.
    """
    identity = OmegaConf.to_container(cfg.identity, resolve=True)
    intended = Path(cfg.publish_path)
    shared = not intended.resolve().is_relative_to(output_dir.resolve())
    withheld = unpublishable(trainer)
    if withheld and shared:
        log.warning("not publishing to %s: %s; the model stays in this run's dir", intended, withheld)
    meta = {
        "kind": cfg.task_kind,
        "metrics": results,
        **identity,
        **getattr(task, "publish_meta", {}),  # what inference needs beyond the net (SER: emotions, clip length)
        "validation": validation,
        "stop": stop,
        "data": data_signature(cfg),
        **provenance(output_dir),
    }
    net_config = OmegaConf.to_container(cfg.task.net, resolve=True)
    published = None  # kept in the run dir: its place, withheld, or the published file stays (why_kept)
    if shared and not withheld:
        published = publish_checkpoint(task.net, net_config, intended, force=cfg.get("force_publish", False), **meta)
    if published is None:
        published = save_checkpoint(task.net, net_config, output_dir / intended.name if shared else intended, **meta)
    log.info("published %s", published)
    summary = {
        **identity,
        "metrics": results,
        **results,
        **getattr(task, "extra_results", {}),  # non-scalar results (SER: confusion matrices as nested lists)
        "published": published == intended,
        "checkpoint": str(published),
        "lightning_checkpoint": validation["path"] if validation else "",
        "stop": stop,  # where and why training ended (finser.tasks.stopping.training_stop)
        "run_dir": str(output_dir),
    }
    write_results(output_dir, summary, results)

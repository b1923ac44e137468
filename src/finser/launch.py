"""Running under a cluster launcher: what a job requests from SLURM, and resuming a job that was requeued.

Light on purpose (omegaconf only): ``train.py`` registers the resolvers before Hydra composes the config.
"""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import OmegaConf

from finser.errors import FinserError


def devices_per_node(devices: object) -> int:
    """``trainer.devices`` as a count SLURM can allocate (one task per device: Lightning's SLURM environment)."""
    if isinstance(devices, int) and devices >= 1:
        return devices
    raise FinserError(
        f"trainer.devices={devices!r}: a SLURM job needs the number of devices per node (e.g. trainer.devices=4), "
        "not 'auto', -1 or a list"
    )


def gpus_per_node(accelerator: str, devices: object) -> int | None:
    """GPUs one node requests: ``trainer.devices`` on GPUs, none on CPUs."""
    return devices_per_node(devices) if accelerator in ("gpu", "cuda") else None


def ceil_div(value: int, divisor: int) -> int:
    """``${finser.ceil_div:12,3}`` = 4: a size that follows another (an evaluation corpus a third of the dataset's)."""
    return max(1, -(-int(value) // int(divisor)))


def n_features(features: object) -> int:
    """``${finser.n_features:${front_end.features}}``: values per frame of those features (162 for all five)."""
    from finser.features import FEATURE_DIMS, check_feature_set  # torch: only when an SER config resolves it

    return sum(FEATURE_DIMS[feature] for feature in check_feature_set(features))


def emotions(corpora: object) -> list[str]:
    """``${finser.emotions:${dataset.index.names}}``: a dataset's label set, the union of what its corpora declare
    in canonical order (the study's four and the embedded corpus: all eight; IEMOCAP: its four)."""
    from finser.data.corpora import corpus_emotions  # numpy and soundfile: only when a config resolves it

    return list(corpus_emotions([str(name) for name in corpora]))


def n_emotions(chosen: object) -> int:
    """``${finser.n_emotions:${dataset.emotions}}``: a head's outputs, one per emotion of the dataset."""
    from finser.data.labels import check_emotions

    return len(check_emotions(chosen))


def feature_set(features: object) -> str:
    """``${finser.feature_set:${front_end.features}}``: ``all``, or the subset's name (``zcr+rms+chroma+mfcc``)."""
    from finser.features import feature_set_name

    return feature_set_name(features)


FINSER_LAUNCHERS = {"submitit_slurm": "slurm", "submitit_local": "slurm_local"}  # the plugins' bare configs → ours


def check_launcher(choice: str | None, launcher: object, trainer: object) -> None:
    """A plugin's bare launcher config (``hydra/launcher=submitit_slurm``, as in Hydra's docs) requests no GPU and one
    task whatever the trainer wants; refuse it where that differs, naming finser's config, whose requests follow the
    trainer. Resuming a requeued job works under either name (``SUBMITIT_EXECUTOR``, :func:`requeued_checkpoint`)."""
    if choice not in FINSER_LAUNCHERS:
        return
    accelerator, devices = trainer.get("accelerator"), trainer.get("devices", 1)
    needed = (gpus_per_node(accelerator, devices), devices_per_node(devices))
    requested = (launcher.get("gpus_per_node") or None, launcher.get("tasks_per_node") or 1)
    if requested != needed:
        raise FinserError(
            f"hydra/launcher={choice} is the plugin's bare config: it requests gpus_per_node={requested[0]} and "
            f"tasks_per_node={requested[1]} where this trainer needs {needed[0] or 0} GPU(s) and {needed[1]} "
            f"task(s) per node: use hydra/launcher={FINSER_LAUNCHERS[choice]} (finser's: its requests follow the "
            "trainer)"
        )


def register_resolvers() -> None:
    """``${finser.tasks_per_node:${trainer.devices}}`` and ``${finser.gpus_per_node:...}`` for the launcher configs,
    ``${finser.ceil_div:...}`` for sizes that follow the dataset's, ``${finser.n_features:...}`` and
    ``${finser.feature_set:...}`` for a front-end's subset of the features, ``${finser.emotions:...}`` and
    ``${finser.n_emotions:...}`` for a dataset's label set and a head's outputs."""
    OmegaConf.register_new_resolver("finser.tasks_per_node", devices_per_node, replace=True)
    OmegaConf.register_new_resolver("finser.gpus_per_node", gpus_per_node, replace=True)
    OmegaConf.register_new_resolver("finser.ceil_div", ceil_div, replace=True)
    OmegaConf.register_new_resolver("finser.n_features", n_features, replace=True)
    OmegaConf.register_new_resolver("finser.feature_set", feature_set, replace=True)
    OmegaConf.register_new_resolver("finser.emotions", emotions, replace=True)
    OmegaConf.register_new_resolver("finser.n_emotions", n_emotions, replace=True)


def prepare_entry_point(root: Path) -> None:
    """What ``train.py`` and ``eval.py`` set before Hydra composes and before torch loads.

    Idle OpenMP threads sleep instead of spinning: on cores shared with other jobs, spinning threads made compute_all
    ~40× slower at 2 threads. ``FINSER_ROOT`` (the entry point's folder) roots the run dirs and ``paths``, so a run
    started from another folder still uses the project's cache, FIN folder and outputs. Launcher jobs inherit both;
    either can be set beforehand to choose otherwise.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("FINSER_ROOT", str(Path(root).resolve()))
    register_resolvers()


def requeued_checkpoint(checkpoint_dir: str | Path) -> str | None:
    """``"last"`` when a submitit job (SLURM or local) finds ``last.ckpt`` in its own run dir: an earlier attempt of
    this very job wrote it before its time limit or a preemption stopped it and submitit requeued it. The run dir of a
    sweep job is unique to it, so no other run's checkpoint can be there."""
    if os.environ.get("SUBMITIT_EXECUTOR") and (Path(checkpoint_dir) / "last.ckpt").is_file():
        return "last"
    return None

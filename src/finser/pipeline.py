"""What happens before a task is built: its network, and the weights its front-end starts from.

Part of the run layer (:mod:`finser.run` calls :func:`build_task`): checking for the published FINs an SER
front-end loads, pre-training the missing ones first when asked (``fin.pretrain_missing=true``: ``train.py`` in a
subprocess), loading them or redrawing them at random. The task then receives a ready network plus what it reports
about those files (their paths for W&B lineage, their pre-training R² for the drift report).
"""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from finser.cluster import one_process_environment
from finser.data.locks import exclusive
from finser.errors import FinserError
from finser.models.checkpoint import load_model

log = logging.getLogger(__name__)

FRONT_END_INITS = ("pretrained", "random", "closed_form")
PRETRAINING_LOCK = ".pretraining.lock"  # in the FIN folder, held while missing FINs are pre-trained


class FrontEnd(Protocol):
    """What :class:`FrontEndWeights` needs of a front-end (``finser.models.ser.FINFrontEnd``)."""

    arch: str

    def checkpoint_paths(self, fin_dir: str | Path) -> dict[str, Path]: ...

    def load_pretrained(
        self, paths: Mapping[str, Path], load: Callable[[Path], tuple[nn.Module, dict]]
    ) -> dict[str, dict]: ...

    def randomize_(self) -> None: ...

    def check_closed_form(self) -> None: ...


def pretrain_command(feature: str, arch: str, fin_dir: Path) -> str:
    """The exact command that publishes ``<fin_dir>/<feature>_<arch>.ckpt`` (from any directory)."""
    return f"python train.py feature={feature} fin_arch={arch} paths.fin_dir={Path(fin_dir).resolve()}"


def ensure_fin_checkpoints(
    paths: Mapping[str, Path],
    arch: str,
    fin_dir: Path,
    pretrain_missing: bool = False,
    train_script: str | Path = "train.py",
    pretrain_overrides: Sequence[str] = (),
) -> None:
    """Stop with the command that produces each missing FIN, or (``pretrain_missing``) run it first."""
    missing = [feature for feature, path in paths.items() if not Path(path).is_file()]
    if not missing:
        return
    if not pretrain_missing:
        commands = "\n".join(f"  {pretrain_command(f, arch, fin_dir)}" for f in missing)
        raise FinserError(
            f"missing FIN checkpoint(s) {', '.join(str(paths[f]) for f in missing)}: produce them with\n{commands}\n"
            "or pass fin.pretrain_missing=true to pre-train them first"
        )
    Path(fin_dir).mkdir(parents=True, exist_ok=True)
    with exclusive(Path(fin_dir) / PRETRAINING_LOCK):  # parallel jobs and DDP ranks: one pre-trains, the rest load
        missing = [feature for feature in missing if not Path(paths[feature]).is_file()]
        pretrain(missing, paths, arch, fin_dir, train_script, pretrain_overrides)


def pretrain(
    missing: Sequence[str], paths: Mapping[str, Path], arch: str, fin_dir: Path, train_script: str | Path,
    pretrain_overrides: Sequence[str],
) -> None:  # fmt: skip
    """``train.py`` for each missing FIN, as a process of its own (never one rank of this job's launcher)."""
    if not missing:
        return
    log.info(
        "%d FIN checkpoint(s) missing in %s (%s): pre-training them first (fin.pretrain_missing=true, the default on "
        "a generated corpus)", len(missing), fin_dir, ", ".join(missing),
    )  # fmt: skip
    for feature in missing:
        command = [
            sys.executable,
            str(train_script),
            f"feature={feature}",
            f"fin_arch={arch}",
            f"paths.fin_dir={fin_dir}",
            "logger=none",
            *pretrain_overrides,
        ]
        log.info("pre-training the missing %s FIN: %s", feature, " ".join(command))
        pretrained = subprocess.run(command, check=False, env=one_process_environment())
        if pretrained.returncode != 0 or not Path(paths[feature]).is_file():
            raise FinserError(f"pre-training the {feature} FIN failed: run `{' '.join(command)}` to see why")


@dataclass(frozen=True)
class LoadedFINs:
    """What a task reports about the FINs its front-end started from (nothing for random or exact front-ends)."""

    checkpoints: dict[str, Path] = field(default_factory=dict)  # feature → the published file (W&B lineage)
    pretrained_r2: dict[str, float] = field(default_factory=dict)  # feature → its test R² in pre-training

    def task_arguments(self) -> dict[str, Any]:
        """What the SER task uses of them: each FIN's pre-training R², beside its drift (``fin_pretrained_r2``)."""
        return {"fin_pretrained_r2": self.pretrained_r2} if self.pretrained_r2 else {}


@dataclass(frozen=True)
class FrontEndWeights:
    """How a FIN front-end starts: ``pretrained`` (the published FINs in ``fin_dir``, pre-trained first with
    ``pretrain_missing``), ``random`` (every weight redrawn: the control without pre-training) or ``closed_form``
    (as constructed: the spectral FINs' closed-form construction, no pre-training and nothing redrawn)."""

    init: str = "pretrained"
    fin_dir: str | Path = "outputs/fins"
    pretrain_missing: bool = False
    train_script: str | Path = "train.py"
    pretrain_overrides: Sequence[str] = ()

    def __post_init__(self) -> None:
        if self.init not in FRONT_END_INITS:
            raise FinserError(f"fin.init={self.init!r}: expected one of {', '.join(FRONT_END_INITS)}")

    def apply(self, front_end: FrontEnd) -> LoadedFINs:
        """Load or redraw ``front_end``'s weights in place; returns what was loaded."""
        if self.init == "random":
            front_end.randomize_()
            return LoadedFINs()
        if self.init == "closed_form":
            front_end.check_closed_form()
            return LoadedFINs()
        paths = front_end.checkpoint_paths(self.fin_dir)
        ensure_fin_checkpoints(
            paths,
            front_end.arch,
            Path(self.fin_dir),
            self.pretrain_missing,
            self.train_script,
            self.pretrain_overrides,
        )
        metas = front_end.load_pretrained(paths, load_model)
        r2 = {
            feature: float(meta["metrics"]["test/r2"])
            for feature, meta in metas.items()
            if "test/r2" in (meta.get("metrics") or {})
        }
        return LoadedFINs(dict(paths), r2)


def build_task(
    cfg: DictConfig, test_set_names: Sequence[str], load_weights: bool = True
) -> tuple[L.LightningModule, LoadedFINs]:
    """The network (``cfg.task.net``), its front-end's weights (``cfg.front_end.weights``, when the config names
    them and ``load_weights``), then the task around them; and the FIN files loaded (for the run's lineage).

    ``load_weights=False`` leaves the front-end as constructed: for a network whose weights come from elsewhere
    (``eval.py``'s published state dict).
    """
    log.info("Instantiating net <%s>", cfg.task.net._target_)
    net = instantiate(cfg.task.net)
    weights = OmegaConf.select(cfg, "front_end.weights")
    loaded = LoadedFINs()
    if load_weights and weights is not None:
        log.info("Preparing front-end weights <%s> (fin.init=%s)", weights._target_, weights.init)
        loaded = instantiate(weights).apply(net.front_end)
    log.info("Instantiating task <%s>", cfg.task._target_)
    task = instantiate(cfg.task, net=net, test_set_names=list(test_set_names), **loaded.task_arguments())
    return task, loaded

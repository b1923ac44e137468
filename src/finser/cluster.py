"""The ranks of a multi-process job as its launcher started them, for Lightning and for finser's own rank-zero work.

On SLURM, Lightning's ``SLURMEnvironment`` joins the tasks a job started. submitit's local executor
(``hydra/launcher=slurm_local``) starts its tasks the same way but sets only its own variables, which Lightning does
not read: it would start the DDP ranks itself, re-running submitit's entry script, which refuses Hydra's arguments.
:class:`SubmititLocalEnvironment` joins them instead, so a local job behaves as the SLURM one it rehearses. A sweep
job under the basic or joblib launcher has no command line of its own for Lightning to re-run: DDP that Lightning
would start there is refused (:func:`check_rank_launch`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch
from lightning.fabric.plugins.environments import ClusterEnvironment, SLURMEnvironment, TorchElasticEnvironment

from finser.errors import FinserError

# What each launcher sets for a process that is not its job's first: torchrun and Lightning's own ranks, SLURM's
# tasks, submitit's local tasks.
RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID", "SUBMITIT_LOCAL_GLOBALID")
PORTS_FROM = 15000  # as Lightning's SLURM environment: a port from the job id, the same for every task of the job
PORT_SPAN = 20000


def is_rank_zero() -> bool:
    """Whether this process is its job's first, before Lightning has set up distributed training: the one that
    prints the config and writes the files only one process may write."""
    return all(int(os.environ.get(name, "0")) == 0 for name in RANK_VARIABLES)


def one_process_environment() -> dict[str, str]:
    """This environment less what makes a process one rank of a job (ranks, task and world counts): for a child
    that runs alone, such as a missing FIN's pre-training, which would otherwise wait for ranks that never come."""
    job = (*RANK_VARIABLES, "WORLD_SIZE", "LOCAL_WORLD_SIZE", "SLURM_NTASKS", "SUBMITIT_LOCAL_NTASKS")
    return {name: value for name, value in os.environ.items() if name not in job}


class SubmititLocalEnvironment(ClusterEnvironment):
    """One rank per task of a submitit local job (``SUBMITIT_LOCAL_*``), all on this machine."""

    @property
    def creates_processes_externally(self) -> bool:
        return True

    @property
    def main_address(self) -> str:
        return os.environ.get("MASTER_ADDR", "127.0.0.1")

    @property
    def main_port(self) -> int:
        """``MASTER_PORT`` if set, else one from the job id (the controller's pid, kept across requeues)."""
        port = os.environ.get("MASTER_PORT")
        return int(port) if port else PORTS_FROM + int(os.environ["SUBMITIT_LOCAL_JOB_ID"]) % PORT_SPAN

    @staticmethod
    def detect() -> bool:
        """A submitit local job with more than one task (a single task is an ordinary process)."""
        return os.environ.get("SUBMITIT_EXECUTOR") == "local" and int(os.environ.get("SUBMITIT_LOCAL_NTASKS", "1")) > 1

    def world_size(self) -> int:
        return int(os.environ["SUBMITIT_LOCAL_NTASKS"])

    def set_world_size(self, size: int) -> None:
        pass  # submitit fixed it: validate_settings refuses a trainer that disagrees

    def global_rank(self) -> int:
        return int(os.environ["SUBMITIT_LOCAL_GLOBALID"])

    def set_global_rank(self, rank: int) -> None:
        pass  # submitit's

    def local_rank(self) -> int:
        return int(os.environ["SUBMITIT_LOCAL_LOCALID"])

    def node_rank(self) -> int:
        return int(os.environ.get("SUBMITIT_LOCAL_NODEID", "0"))

    def validate_settings(self, num_devices: int, num_nodes: int) -> None:
        if num_devices * num_nodes != self.world_size():
            raise FinserError(
                f"the submitit job has {self.world_size()} tasks but the trainer wants {num_devices} device(s) on "
                f"{num_nodes} node(s): hydra/launcher=slurm_local requests one task per trainer.devices"
            )


def ranks_started_outside() -> bool:
    """Whether this process's DDP ranks were started by its launcher (SLURM, torchrun, submitit) or by Lightning's
    own launch of this very process (``LOCAL_RANK``), so Lightning starts none."""
    detected = (SLURMEnvironment, TorchElasticEnvironment, SubmititLocalEnvironment)
    return "LOCAL_RANK" in os.environ or any(environment.detect() for environment in detected)


def device_count(trainer: Mapping[str, Any]) -> int:
    """How many devices (one rank each) ``trainer.devices`` asks for: ``auto`` and -1 are every visible GPU on a GPU
    trainer, one CPU process otherwise."""
    devices = trainer.get("devices", 1)
    if devices in ("auto", -1, "-1"):
        return torch.cuda.device_count() if trainer.get("accelerator") in ("gpu", "cuda", "auto") else 1
    if isinstance(devices, str):
        return len([device for device in devices.split(",") if device.strip()]) if "," in devices else int(devices)
    return devices if isinstance(devices, int) else len(devices)


def check_rank_launch(trainer: Mapping[str, Any], multirun: bool, launcher: str | None) -> None:
    """Refuse DDP that Lightning would start itself inside a sweep job: it starts each rank by re-running the
    command line, and a sweep job has none of its own (the sweep's, ``-m`` and every value, would run again as rank
    1, or another launcher's worker script would)."""
    strategy = str(trainer.get("strategy", "auto"))
    relaunched = strategy.startswith("ddp") and not any(kind in strategy for kind in ("spawn", "fork", "notebook"))
    if multirun and relaunched and device_count(trainer) > 1 and not ranks_started_outside():
        raise FinserError(
            f"trainer=ddp in a sweep (-m) with hydra/launcher={launcher or 'basic'}: Lightning would start each rank "
            "by re-running the sweep's command line. Use hydra/launcher=slurm_local (this machine) or "
            "hydra/launcher=slurm, which start one task per rank, or run each configuration as its own "
            "`python train.py ...`"
        )


def cluster_plugins() -> list[ClusterEnvironment]:
    """The environment Lightning needs beside the trainer's config: none except in a multi-task submitit local job."""
    return [SubmititLocalEnvironment()] if SubmititLocalEnvironment.detect() else []

"""The launcher configs: what a SLURM job requests follows the trainer, and Hydra validates them without warnings."""

from __future__ import annotations

import warnings

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from finser.cluster import check_rank_launch
from finser.errors import FinserError
from finser.launch import check_launcher, register_resolvers
from tests.conftest import REPO

pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
pytest.importorskip("hydra_plugins.hydra_joblib_launcher")


def launcher(*overrides: str) -> DictConfig:
    register_resolvers()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. Hydra's "validated against ConfigStore schema with the same name"
        with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
            return compose("train", overrides=list(overrides), return_hydra_config=True).hydra.launcher


@pytest.mark.parametrize(
    ("overrides", "gpus", "tasks", "nodes"),
    [
        (["trainer=cpu"], None, 1, 1),
        (["trainer=gpu"], 1, 1, 1),
        (["trainer=ddp", "trainer.devices=4", "trainer.num_nodes=2"], 4, 4, 2),
        (["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2"], None, 2, 1),
    ],
)
def test_a_slurm_job_requests_one_task_per_device_and_gpus_only_for_gpus(overrides, gpus, tasks, nodes) -> None:
    config = launcher("hydra/launcher=slurm", *overrides)
    assert (config.gpus_per_node, config.tasks_per_node, config.nodes) == (gpus, tasks, nodes)
    assert config.max_num_timeout > 0  # a job that reaches its time limit is requeued


def test_ddp_on_slurm_without_a_device_count_says_what_to_give() -> None:
    with pytest.raises(Exception, match=r"trainer.devices='auto': a SLURM job needs the number of devices per node"):
        launcher("hydra/launcher=slurm", "trainer=ddp").gpus_per_node  # noqa: B018 (resolving raises)


def test_local_launchers_compose_without_warnings() -> None:
    assert launcher("hydra/launcher=slurm_local", "trainer=gpu").gpus_per_node == 1
    assert launcher("hydra/launcher=slurm_local").tasks_per_node == 1
    ddp = launcher("hydra/launcher=slurm_local", "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2")
    assert (ddp.tasks_per_node, ddp.gpus_per_node) == (2, None)  # one task per rank, as on SLURM (finser.cluster)
    assert launcher("hydra/launcher=parallel").n_jobs == 2


def check(*overrides: str) -> None:
    """What run() checks at the start of a job, on the config Hydra composed for it."""
    register_resolvers()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=list(overrides), return_hydra_config=True)
    check_launcher(cfg.hydra.runtime.choices.get("hydra/launcher"), cfg.hydra.launcher, cfg.trainer)


@pytest.mark.parametrize(
    ("bare", "ours", "trainer"),
    [("submitit_slurm", "slurm", ["trainer=gpu"]), ("submitit_slurm", "slurm", ["trainer=ddp", "trainer.devices=4"]),
     ("submitit_local", "slurm_local", ["trainer=gpu"]),
     ("submitit_local", "slurm_local", ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2"])],
)  # fmt: skip
def test_a_plugins_bare_launcher_that_would_drop_the_trainers_gpus_names_finsers(bare, ours, trainer) -> None:
    """Hydra's docs name the plugins' configs; theirs request no GPU and one task, so a GPU run would get none."""
    with pytest.raises(FinserError, match=rf"hydra/launcher={bare} is the plugin's bare config.*hydra/launcher={ours}"):
        check(f"hydra/launcher={bare}", *trainer)
    check(f"hydra/launcher={ours}", *trainer)  # finser's: requests follow the trainer


@pytest.mark.parametrize("bare", ["submitit_slurm", "submitit_local", "joblib"])
def test_a_plugins_bare_launcher_on_cpu_behaves_as_finsers(bare) -> None:
    check(f"hydra/launcher={bare}")  # one CPU task, no GPU: what ours requests; resuming works under either name


@pytest.mark.parametrize(
    ("trainer", "multirun", "environment", "refused"),
    [
        ({"strategy": "ddp", "devices": 2}, True, {}, True),
        ({"strategy": "ddp", "devices": "0,1", "accelerator": "gpu"}, True, {}, True),
        ({"strategy": "ddp", "devices": [0, 1], "accelerator": "gpu"}, True, {}, True),
        ({"strategy": "ddp", "devices": 2}, False, {}, False),  # one run: its command line is its own
        ({"strategy": "ddp_spawn", "devices": 2}, True, {}, False),  # started without the command line
        ({"strategy": "ddp", "devices": 1}, True, {}, False),
        ({"strategy": "ddp", "devices": "auto", "accelerator": "cpu"}, True, {}, False),
        ({"strategy": "ddp", "devices": 2}, True, {"SUBMITIT_EXECUTOR": "local", "SUBMITIT_LOCAL_NTASKS": "2"}, False),
        ({"strategy": "ddp", "devices": 2}, True, {"LOCAL_RANK": "1"}, False),  # a rank Lightning started
    ],
)
def test_ddp_lightning_would_relaunch_in_a_sweep_is_refused(trainer, multirun, environment, refused, monkeypatch):
    for name in ("SUBMITIT_EXECUTOR", "SUBMITIT_LOCAL_NTASKS", "LOCAL_RANK", "SLURM_NTASKS", "TORCHELASTIC_RUN_ID"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    if refused:
        with pytest.raises(FinserError, match=r"trainer=ddp in a sweep \(-m\) with hydra/launcher=parallel"):
            check_rank_launch(trainer, multirun, "parallel")
    else:
        check_rank_launch(trainer, multirun, "parallel")

"""Runs stop cleanly on a non-finite loss, are reproducible by seed, and resume where they were killed."""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime
from pathlib import Path

import hydra.core.utils
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from finser.data.audio import AudioSpec
from finser.data.cache import DecodedCache
from finser.data.labels import read_manifest
from finser.report import read_metrics_csv
from tests.conftest import REPO, TINY, read_results, run_train
from tests.preloaded import run_python


def test_a_nan_loss_stops_the_run_with_a_message(tmp_path: Path, cache_dir: Path) -> None:
    result = run_train(tmp_path, cache_dir, "feature=rms", "fin_arch=fc", "training.lr=1e30",
                       "training.gradient_clip_val=null", "evaluate_before_training=false", check=False)  # fmt: skip
    assert result.returncode != 0
    assert "training loss became" in result.stderr and "last good checkpoint" in result.stderr
    assert not (tmp_path / "run" / "results.json").exists()
    assert not (tmp_path / "fins").exists()


def test_same_seed_same_metrics_other_seed_other_metrics(tmp_path: Path, cache_dir: Path) -> None:
    overrides = ("feature=rms", "fin_arch=fc", "evaluate_before_training=false")
    runs = {name: tmp_path / name for name in ("first", "again", "other")}
    run_train(runs["first"], cache_dir, *overrides, "seed=3")
    run_train(runs["again"], cache_dir, *overrides, "seed=3")
    run_train(runs["other"], cache_dir, *overrides, "seed=4")
    first, again, other = (read_results(path / "run") for path in runs.values())
    assert first["test/mse"] == again["test/mse"]
    assert first["test/mse"] != other["test/mse"]


RESUMABLE = {
    "fin": ("feature=rms", "fin_arch=fc", "evaluate_before_training=false"),
    # dropout and shuffled clips: everything random a resume must reproduce
    "ser": ("experiment=ser_baseline", "training.batch_size=8", "dataset.audio.duration=0.5"),
}


@pytest.mark.parametrize("kind", sorted(RESUMABLE))
def test_a_killed_run_resumed_from_last_ends_like_an_uninterrupted_one(
    tmp_path: Path, cache_dir: Path, kind: str
) -> None:
    overrides = (*RESUMABLE[kind], "seed=5", "training.max_epochs=3", "training.limit_train_batches=3")
    run_train(tmp_path / "whole", cache_dir, *overrides)
    kill = ("+callbacks.kill._target_=tests.interrupt.KillDuringEpoch", "+callbacks.kill.epoch=1")
    killed = run_train(tmp_path / "killed", cache_dir, *overrides, *kill, check=False)
    assert killed.returncode == -9 and not (tmp_path / "killed" / "run" / "results.json").exists()
    assert (tmp_path / "killed" / "run" / "checkpoints" / "last.ckpt").is_file()
    run_train(tmp_path / "killed", cache_dir, *overrides, "ckpt_path=last")
    whole, resumed = read_results(tmp_path / "whole" / "run"), read_results(tmp_path / "killed" / "run")
    tested = [key for key in whole["metrics"] if key.startswith(("test/", "eval/"))]
    assert tested and {key: resumed[key] for key in tested} == pytest.approx({key: whole[key] for key in tested})


def test_a_preempted_slurm_job_is_requeued_and_ends_like_an_uninterrupted_run(tmp_path: Path, cache_dir: Path) -> None:
    """submitit's local executor handles the signal as on SLURM (checkpoint the job, requeue it); the requeued job
    finds its own last.ckpt, written on the signal after epoch 1's first step, and resumes from that step: an SER
    run, so the rest of the epoch's shuffled clips, its dropout and the frozen front-end's mode must all resume."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    overrides = (*RESUMABLE["ser"], "training.batch_size=2", "seed=5", "training.max_epochs=3",
                 "training.limit_train_batches=3")  # fmt: skip
    run_train(tmp_path / "whole", cache_dir, *overrides)
    preempt = ("+callbacks.preempt._target_=tests.interrupt.PreemptOnce", "+callbacks.preempt.epoch=1")
    run_train(tmp_path / "job", cache_dir, "-m", "hydra/launcher=slurm_local", "hydra.sweep.subdir=${hydra.job.num}",
              *overrides, *preempt)  # fmt: skip
    job = tmp_path / "job" / "multirun"
    (submitit_log,) = job.glob(".submitit/*/*_0_log.err")
    assert "Requeued job" in submitit_log.read_text()
    train_log = (job / "0" / "train.log").read_text()
    assert f"requeue signal: wrote {job / '0' / 'checkpoints' / 'last.ckpt'} at epoch 1, step 4" in train_log
    assert f"Restoring states from the checkpoint path at {job / '0' / 'checkpoints' / 'last.ckpt'}" in train_log
    whole, requeued = read_results(tmp_path / "whole" / "run"), read_results(job / "0")
    tested = [key for key in whole["metrics"] if key.startswith(("test/", "eval/"))]
    assert tested and {key: requeued[key] for key in tested} == pytest.approx({key: whole[key] for key in tested})


def test_a_job_preempted_three_times_without_improving_keeps_its_progress(tmp_path: Path, cache_dir: Path) -> None:
    """The monitor (the epoch number, to be minimised) never improves after epoch 0, so no top-k checkpoint is
    written after it: last.ckpt must still follow every epoch, or each requeue resumes from epoch 1 again. Each
    preemption comes after an epoch's first step, and the requeued job resumes from that step (written on the
    signal), not from the epoch's start, drawing the rest of the epoch as the uninterrupted run did."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    overrides = (*RESUMABLE["fin"], "seed=5", "training.max_epochs=4", "training.limit_train_batches=3",
                 "callbacks.model_checkpoint.monitor=epoch", "callbacks.model_checkpoint.mode=min",
                 "callbacks.early_stopping=null")  # fmt: skip
    run_train(tmp_path / "whole", cache_dir, *overrides)
    preempt = ("+callbacks.preempt._target_=tests.interrupt.PreemptEachAttempt", "+callbacks.preempt.times=3",
               "+callbacks.preempt.folder=${paths.output_dir}")  # fmt: skip
    run_train(tmp_path / "job", cache_dir, "-m", "hydra/launcher=slurm_local", *overrides, *preempt)
    job = tmp_path / "job" / "multirun" / "0"
    attempts = [tuple(map(int, line.split())) for line in (job / "attempts.txt").read_text().splitlines()]
    steps_per_epoch = 3  # training.limit_train_batches
    # each requeue resumed at the step after the epoch's first, past the epoch boundary's step
    assert attempts == [(0, 0)] + [(epoch, epoch * steps_per_epoch + 1) for epoch in (1, 2, 3)]
    whole, requeued = read_results(tmp_path / "whole" / "run"), read_results(job)
    assert whole["epoch_best_epoch"] == requeued["epoch_best_epoch"] == 0  # the monitor did not improve after 0
    tested = [key for key in whole["metrics"] if key.startswith(("test/", "eval/"))]
    assert tested and {key: requeued[key] for key in tested} == pytest.approx({key: whole[key] for key in tested})


class StoppedClock:
    """Stands in for ``datetime`` in Hydra's ``${now:...}`` resolver: every call reads the same instant."""

    def __init__(self, instant: datetime) -> None:
        self.instant = instant

    def now(self) -> datetime:
        return self.instant


def test_runs_started_in_the_same_second_get_their_own_directories(monkeypatch: pytest.MonkeyPatch) -> None:
    directories = []
    for instant in (datetime(2026, 12, 1, 10, 31, 7, 1_000), datetime(2026, 12, 1, 10, 31, 7, 900_000)):
        monkeypatch.setattr(hydra.core.utils, "datetime", StoppedClock(instant))
        with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
            hydra_config = compose("train", return_hydra_config=True).hydra
            directories.append((hydra_config.run.dir, hydra_config.sweep.dir))
    (run, sweep), (other_run, other_sweep) = directories
    assert run.endswith("outputs/runs/fin/2026-12-01_10-31-07-001000") and "outputs/multirun/2026-12-01" in sweep
    assert run != other_run and sweep != other_sweep


def test_a_resumed_run_keeps_the_metrics_of_the_epochs_before_it(tmp_path: Path, cache_dir: Path) -> None:
    overrides = ("feature=rms", "fin_arch=fc", "evaluate_before_training=false")
    run_train(tmp_path, cache_dir, *overrides, "training.max_epochs=1")
    run_train(tmp_path, cache_dir, *overrides, "training.max_epochs=2", "ckpt_path=last")
    assert [epoch for epoch, _ in read_metrics_csv(str(tmp_path / "run"))["val/r2"]] == [0, 1]


def test_resuming_from_another_features_checkpoint_names_both(tmp_path: Path, cache_dir: Path) -> None:
    run_train(tmp_path / "rms", cache_dir, "feature=rms", "fin_arch=fc", "evaluate_before_training=false")
    checkpoint = tmp_path / "rms" / "run" / "checkpoints" / "last.ckpt"
    result = run_train(tmp_path / "zcr", cache_dir, "feature=zcr", "fin_arch=conv", f"ckpt_path={checkpoint}",
                       check=False)  # fmt: skip
    assert result.returncode != 0
    assert "feature (checkpoint: rms, this run: zcr)" in result.stderr
    assert "arch (checkpoint: fc, this run: conv)" in result.stderr


def test_joblib_runs_sharing_a_fresh_cache_neither_corrupt_nor_duplicate_it(tmp_path: Path) -> None:
    cache = tmp_path / "cache"  # fresh: both jobs generate the corpus and decode its clips at the same moment
    command = [
        sys.executable, str(REPO / "train.py"), "-m", "hydra/launcher=parallel", "hydra.launcher.n_jobs=2", "seed=0,1",
        "feature=rms", "fin_arch=fc", "evaluate_before_training=false", f"paths.cache_dir={cache}",
        f"paths.fin_dir={tmp_path / 'fins'}", f"hydra.sweep.dir={tmp_path / 'multirun'}",
        "hydra.sweep.subdir=${hydra.job.num}", *TINY,
    ]  # fmt: skip
    env = {**os.environ, "WANDB_MODE": "offline", "HYDRA_FULL_ERROR": "1", "OMP_NUM_THREADS": "1"}
    result = run_python(command, env=env)
    assert result.returncode == 0, result.stderr[-5000:]
    jobs = [tmp_path / "multirun" / str(job) for job in (0, 1)]
    assert all("test/mse" in read_results(job) for job in jobs)
    assert {OmegaConf.load(job / "config_resolved.yaml").seed for job in jobs} == {0, 1}

    corpora = sorted((cache / "synthetic").glob("synthetic-*"))
    assert len(corpora) == 2  # the training corpus and the unseen-speaker one, each generated once
    for corpus in corpora:
        assert len(read_manifest(corpus / "manifest.csv")) == len(list(corpus.glob("*.wav")))
    stores = sorted(cache.glob("audio-*"))
    assert stores
    for store in stores:
        keys = [row[0] for index in store.glob("shard-*.json") for row in json.loads(index.read_text())["entries"]]
        assert keys and len(keys) == len(set(keys)), f"{store}: a clip was decoded into two shards"
        assert not list(store.glob(".*.tmp"))
        spec = json.loads((store / "spec.json").read_text())
        assert DecodedCache(cache, AudioSpec(**spec["spec"]), spec["seed"]).verify() == []


def test_ddp_under_the_local_slurm_launcher_runs_one_task_per_rank(tmp_path: Path, cache_dir: Path) -> None:
    """Seen: ``hydra/launcher=slurm_local trainer=ddp`` died at the start of training, Lightning relaunching its DDP
    ranks from submitit's entry script (``_submit.py: error: unrecognized arguments: hydra.run.dir=...``). As on
    SLURM, the job now has one task per device and Lightning joins them (finser.cluster); both ranks test their half
    of the clips."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    run_train(tmp_path / "job", cache_dir, "-m", "hydra/launcher=slurm_local", "hydra.sweep.subdir=${hydra.job.num}",
              *RESUMABLE["ser"], "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2",
              "trainer.sync_batchnorm=false")  # fmt: skip
    job = tmp_path / "job" / "multirun"
    task_logs = sorted(path.name.split("_")[1] for path in job.glob(".submitit/*/*_log.err"))
    assert task_logs == ["0", "1"]  # submitit started both ranks; neither relaunched the other
    results = read_results(job / "0")
    assert results["test/acc/synthetic"] == pytest.approx(results["test/acc"])
    assert sum(map(sum, results["test/confusion"])) >= 8  # both halves of the test clips
    assert "MEMBER: 2/2" in (job / "0" / "train.log").read_text()


def test_ddp_that_lightning_would_start_in_a_local_sweep_is_refused_naming_what_works(
    tmp_path: Path, cache_dir: Path
) -> None:  # fmt: skip
    """Seen: ``python train.py -m trainer=ddp ... seed=0,1`` exited 0, but Lightning re-ran the whole command line,
    ``-m seed=0,1`` included, as rank 1: that child ran its own sweep, its seed-0 job joining the parent's seed-1
    job as one DDP run of two configurations. A sweep job has no command line of its own to relaunch."""
    result = run_train(tmp_path, cache_dir, "-m", *RESUMABLE["ser"], "trainer=ddp", "trainer.accelerator=cpu",
                       "trainer.devices=2", "trainer.sync_batchnorm=false", "seed=0,1", check=False)  # fmt: skip
    assert result.returncode == 1
    assert "trainer=ddp in a sweep (-m) with hydra/launcher=basic" in result.stderr
    assert "hydra/launcher=slurm_local" in result.stderr
    assert not list((tmp_path / "multirun").glob("*/checkpoints"))


def test_a_preempted_ddp_job_resumes_both_ranks_and_ends_like_an_uninterrupted_ddp_run(
    tmp_path: Path, cache_dir: Path
) -> None:  # fmt: skip
    """Both ranks of a 2-task slurm_local job get the signal after epoch 1's first step: they agree to write
    last.ckpt there (a collective), submitit requeues the job, and both ranks resume from that step; the test
    metrics equal those of the same DDP run uninterrupted."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    ddp = ("trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.sync_batchnorm=false")
    overrides = (*RESUMABLE["ser"], *ddp, "seed=5", "training.max_epochs=3", "training.limit_train_batches=3")
    run_train(tmp_path / "whole", cache_dir, *overrides)
    preempt = ("+callbacks.preempt._target_=tests.interrupt.PreemptOnce", "+callbacks.preempt.epoch=1")
    run_train(tmp_path / "job", cache_dir, "-m", "hydra/launcher=slurm_local", "hydra.sweep.subdir=${hydra.job.num}",
              *overrides, *preempt)  # fmt: skip
    job = tmp_path / "job" / "multirun"
    for rank in (0, 1):
        (task_log,) = job.glob(f".submitit/*/*_{rank}_log.err")
        assert task_log.read_text().count(f"GLOBAL_RANK: {rank}, MEMBER: {rank + 1}/2") == 2  # both attempts
    train_log = (job / "0" / "train.log").read_text()
    # each rank says so: the tiny corpus's training clips over 2 ranks of batch 8 are one step per epoch
    assert train_log.count(f"requeue signal: wrote {job / '0' / 'checkpoints' / 'last.ckpt'} at epoch 1, step 2") == 2
    assert f"Restoring states from the checkpoint path at {job / '0' / 'checkpoints' / 'last.ckpt'}" in train_log
    whole, requeued = read_results(tmp_path / "whole" / "run"), read_results(job / "0")
    tested = [key for key in whole["metrics"] if key.startswith(("test/", "eval/"))]
    assert tested and {key: requeued[key] for key in tested} == pytest.approx({key: whole[key] for key in tested})

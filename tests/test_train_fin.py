"""End to end: `python train.py` through Hydra, as a user runs it."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

import finser
from finser.features import compute
from tests.conftest import REPO, read_results, run_train, speech_like_frames, wandb_run


def test_default_fin_run_publishes_a_checkpoint_that_loads_back(tmp_path: Path, cache_dir: Path) -> None:
    result = run_train(tmp_path, cache_dir)
    assert result.stderr.count(f"run dir: {tmp_path / 'run'}\n") == 2  # at the start and at the end
    assert not (tmp_path / "run" / "FAILED").exists()
    results = read_results(tmp_path / "run")
    assert (results["experiment"], results["feature"], results["arch"], results["variant"]) == (
        "fin", "mfcc", "spectral", "pretrain",
    )  # fmt: skip
    for key in ("test/r2", "eval/synthetic_unseen/r2", "init/test/r2"):
        assert 0.9 < results[key] <= 1.0, key
    # Training makes the FIN no worse on speech it never saw (other speakers, another seed).
    assert results["eval/synthetic_unseen/r2"] >= results["init/eval/synthetic_unseen/r2"] - 1e-3
    assert Path(results["checkpoint"]) == tmp_path / "fins" / "mfcc_spectral.ckpt"
    assert (tmp_path / "run" / "config_resolved.yaml").exists()
    with (tmp_path / "run" / "csv" / "metrics.csv").open() as handle:
        assert "val/r2" in next(csv.reader(handle))

    fin = finser.load_fin(results["checkpoint"])
    frames = torch.from_numpy(speech_like_frames(seed=99, n_clips=2))
    with torch.no_grad():
        predicted = fin(frames)
    target = compute("mfcc", frames)
    assert float(1 - ((predicted - target) ** 2).sum() / ((target - target.mean(0)) ** 2).sum()) > 0.95


@pytest.mark.parametrize(("feature", "arch"), [("rms", "fc"), ("zcr", "conv")])
def test_the_studys_architectures_train_and_publish(tmp_path: Path, cache_dir: Path, feature: str, arch: str) -> None:
    run_train(tmp_path, cache_dir, f"feature={feature}", f"fin_arch={arch}", "evaluate_before_training=false")
    results = read_results(tmp_path / "run")
    assert results["arch"] == arch and "test/r2" in results
    fin = finser.load_fin(tmp_path / "fins" / f"{feature}_{arch}.ckpt")
    assert fin(torch.randn(3, 2048)).shape == (3, 1)


def test_ddp_on_two_cpu_processes_writes_one_result(tmp_path: Path, cache_dir: Path) -> None:
    run_train(tmp_path, cache_dir, "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "feature=rms")
    results = read_results(tmp_path / "run")
    assert results["test/r2"] > 0.9
    assert sorted(path.name for path in (tmp_path / "fins").iterdir()) == ["rms_spectral.ckpt"]


def test_wandb_logger_is_offline_and_writes_into_the_run_dir(
    tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No WANDB_MODE, no API key, no ~/.netrc, no terminal: the run must neither prompt nor reach the network."""
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    run_train(tmp_path, cache_dir, "logger=wandb", "feature=rms", wandb_mode=None)
    offline = wandb_run(tmp_path / "run")  # exactly one offline run, in the run dir
    assert (offline.group, offline.job_type) == ("fin-rms-spectral", "pretrain")
    assert {"feature=rms", "arch=spectral", "variant=pretrain"} <= set(offline.tags)
    assert {"init/test/r2", "test/r2", "val/r2_best"} <= offline.summary
    assert offline.logged == {("fin-rms-spectral", "fin", "rms_spectral.ckpt")}  # the published FIN
    assert (tmp_path / "run" / "csv" / "metrics.csv").exists()


def test_wandb_mode_disabled_writes_no_wandb_file(tmp_path: Path, cache_dir: Path) -> None:
    run_train(tmp_path, cache_dir, "logger=wandb", "feature=rms", "evaluate_before_training=false",
              wandb_mode="disabled")  # fmt: skip
    assert "test/r2" in read_results(tmp_path / "run")
    assert not list(tmp_path.rglob("*wandb*"))


def test_without_a_terminal_each_epoch_is_one_log_line_and_no_line_is_printed_twice(
    tmp_path: Path, cache_dir: Path
) -> None:
    result = run_train(tmp_path, cache_dir, "feature=rms", "evaluate_before_training=false", "training.max_epochs=2")
    log_file = (tmp_path / "run" / "train.log").read_text()
    for text in (log_file, result.stderr):
        epochs = [line for line in text.splitlines() if "] - epoch " in line]
        assert [line.split("] - ")[1].split(":")[0] for line in epochs] == ["epoch 1/2", "epoch 2/2"]
        assert all("train/loss=" in line and "val/r2=" in line for line in epochs)
    console = result.stdout + result.stderr
    assert console.count("`Trainer.fit` stopped") == 1  # Lightning's own handler no longer repeats it
    assert "Epoch 1/1" not in console  # no rich bar frames in a log


@pytest.mark.parametrize(
    ("override", "message"),
    [("training.max_epoch=1", "max_epoch"), ("feature=spectral_flux", "spectral_flux"), ("fin_arch=rnn", "rnn")],
)
def test_a_wrong_config_key_or_option_fails_naming_it(tmp_path: Path, cache_dir: Path, override: str, message: str):
    result = run_train(tmp_path, cache_dir, override, check=False)
    assert result.returncode != 0
    assert message in result.stderr


def test_paths_do_not_depend_on_the_working_directory(tmp_path: Path) -> None:
    """Started from another folder, a run still uses the project's cache, FIN folder and data folder."""
    env = {key: value for key, value in os.environ.items() if key not in ("FINSER_ROOT", "FINSER_CACHE", "FINSER_DATA")}
    command = [sys.executable, str(REPO / "train.py"), "--cfg", "job", "--resolve", "--package", "paths"]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    paths = yaml.safe_load(result.stdout)  # the paths node alone (--package paths)
    assert (paths["root_dir"], paths["fin_dir"], paths["cache_dir"]) == (
        str(REPO), str(REPO / "outputs" / "fins"), str(REPO / ".cache"),
    )  # fmt: skip
    assert not any(tmp_path.iterdir())

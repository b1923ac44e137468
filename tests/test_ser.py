"""End to end: the four SER presets in one `python train.py -m` sweep, logged to offline W&B runs."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import torch

from finser.data.labels import EMOTIONS
from finser.features import FEATURES
from finser.models.checkpoint import load_model
from tests.conftest import PRETRAINED_R2, REPO, TINY, publish_tiny_fins, read_results, run_train, wandb_run
from tests.preloaded import run_python

PRESETS = ("ser_baseline", "ser_fin_frozen", "ser_fin_finetuned", "ser_fin_scratch")


def test_the_four_presets_sweep_into_four_wandb_groups(tmp_path: Path, cache_dir: Path) -> None:
    publish_tiny_fins(tmp_path / "fins")
    command = [
        sys.executable, str(REPO / "train.py"), "-m",
        f"experiment={','.join(PRESETS)}", "seed=0", "logger=wandb",
        f"hydra.sweep.dir={tmp_path / 'multirun'}", "hydra.sweep.subdir=${hydra.job.num}",
        f"paths.cache_dir={cache_dir}", f"paths.fin_dir={tmp_path / 'fins'}",
        *TINY, "training.batch_size=8", "training.limit_train_batches=2", "dataset.audio.duration=0.5",
    ]  # fmt: skip
    env = {**os.environ, "WANDB_MODE": "offline", "HYDRA_FULL_ERROR": "1"}
    result = run_python(command, env=env)
    assert result.returncode == 0, result.stderr[-5000:]

    groups = set()
    for index, preset in enumerate(PRESETS):
        run_dir = tmp_path / "multirun" / str(index)
        results = json.loads((run_dir / "results.json").read_text())
        assert results["experiment"] == preset and results["head"] == "conv1d"
        for key in ("test/f1_macro", "test/acc", "test/f1_weighted", *(f"test/f1/{e}" for e in EMOTIONS)):
            assert 0.0 <= results[key] <= 1.0, (preset, key)
        assert results["test/acc/synthetic"] == results["test/acc"]  # one corpus: its accuracy is the total
        stop = results["stop"]  # one epoch (TINY) is far below the preset's patience: the run hits its cap
        assert (stop["stop_reason"], stop["stopped_epoch"], stop["monitor"]) == ("cap", 1, "val/f1_macro")
        assert 1 <= stop["stopped_step"] <= 2 and stop["still_improving"] is True  # limit_train_batches=2
        assert (run_dir / "confusion_test.png").stat().st_size > 0
        confusion = results["test/confusion"]  # rows true, columns predicted: 8 test clips of the tiny corpus
        assert len(confusion) == len(EMOTIONS) and sum(map(sum, confusion)) == 8
        probe = [f"reference/linear_probe/{key}" for key in ("test/f1_macro", "test/acc", "val/f1_macro", "C")]
        assert all(0.0 <= results[key] <= 1.0 for key in probe[:3]) and results[probe[3]] > 0
        assert results["reference/linear_probe/eval/synthetic_unseen/f1_macro"] >= 0.0
        drift = {f"fin_drift/{feature}/r2" for feature in FEATURES}
        assert drift <= set(results) if preset != "ser_baseline" else not drift & set(results)
        for feature in FEATURES:  # the pre-training R² comes from the published FINs' metadata, when loaded
            pretrained = results.get(f"fin_drift/{feature}/r2_pretrained")
            loaded = preset in ("ser_fin_frozen", "ser_fin_finetuned")
            assert pretrained == (pytest.approx(PRETRAINED_R2) if loaded else None), (preset, feature)

        wandb = wandb_run(run_dir)
        groups.add(wandb.group)
        arch = "exact" if preset == "ser_baseline" else "spectral"
        assert (wandb.group, wandb.job_type) == (f"{preset}-conv1d-{arch}", "ser")
        assert {"head=conv1d", "corpus=synthetic", "split=speaker", f"arch={arch}"} <= set(wandb.tags)
        stopped = {"stop/stop_reason", "stop/stopped_epoch", "stop/stopped_step"}
        assert {"test/f1_macro", "test/acc", "test/f1/calm", *stopped, *probe} <= wandb.summary
        assert any(key.startswith("test/confusion") for key in wandb.summary)  # the confusion matrix image
        # The SER model is an artifact of the run; the FINs it loaded are artifacts it used (W&B lineage).
        assert (wandb.group, "ser", "ser_model.ckpt") in wandb.logged
        loaded = {(f"fin-{feature}-spectral", "fin", f"{feature}_spectral.ckpt") for feature in FEATURES}
        assert wandb.used == (loaded if preset in ("ser_fin_frozen", "ser_fin_finetuned") else set())

        # The published model rebuilds from its config alone (no FIN files) and maps a waveform to logits.
        model, meta = load_model(results["checkpoint"])
        assert meta["emotions"] == list(EMOTIONS)  # and the clip spec whole, as plain values: predict applies it
        assert meta["clip"] == {"sample_rate": 22_050, "offset": 0.6, "duration": 0.5, "band_limit_hz": None}
        assert model(torch.zeros(2, 11_025)).shape == (2, len(EMOTIONS))
    assert len(groups) == len(PRESETS)


def test_ddp_on_two_cpu_processes_counts_every_shard_per_corpus(tmp_path: Path, cache_dir: Path) -> None:
    """Each process tests half the clips: per-corpus accuracy must merge both halves, as torchmetrics' totals do."""
    run_train(tmp_path, cache_dir, "experiment=ser_baseline", "trainer=ddp", "trainer.accelerator=cpu",
              "trainer.devices=2", "trainer.sync_batchnorm=false", "training.batch_size=8",
              "dataset.audio.duration=0.5")  # fmt: skip
    results = read_results(tmp_path / "run")
    assert results["test/acc/synthetic"] == pytest.approx(results["test/acc"])
    assert sum(map(sum, results["test/confusion"])) >= 8  # all test clips (DDP may pad with a repeat)


@pytest.mark.parametrize("experiment", ["ser_fin_closed_form", "ser_sincnet", "ser_leaf"])
def test_each_control_preset_trains_publishes_and_predicts(tmp_path: Path, cache_dir: Path, experiment: str) -> None:
    """No FIN file anywhere: none of the controls loads one. Its published model then scores a clip in predict.py."""
    run_train(tmp_path, cache_dir, f"experiment={experiment}", "logger=csv")
    results = read_results(tmp_path / "run")
    assert results["experiment"] == experiment and "test/f1_macro" in results
    assert not (tmp_path / "fins").exists()
    clip = next((cache_dir / "synthetic").rglob("*.wav"))
    command = [sys.executable, str(REPO / "predict.py"), f"ckpt={results['checkpoint']}", f"audio={clip}"]
    scored = run_python(command, timeout=300)
    assert scored.returncode == 0, scored.stderr
    assert scored.stdout.splitlines()[1].split(",")[1] in EMOTIONS

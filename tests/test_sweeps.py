"""Sweeps tune on validation, never on test; debug runs never publish outside their run dir."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from finser.models.checkpoint import read_checkpoint
from tests.conftest import REPO, published_before, read_results, run_train


@pytest.mark.parametrize(("experiment", "metric"), [("fin", "val/r2_best"), ("ser_fin_finetuned", "val/f1_macro_best")])
def test_a_run_returns_its_best_validation_metric_by_default(experiment: str, metric: str) -> None:
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        assert compose("train", overrides=[f"experiment={experiment}"]).optimized_metric == metric


def test_an_optuna_study_optimises_a_validation_metric(tmp_path: Path, cache_dir: Path) -> None:
    run_train(
        tmp_path, cache_dir, "-m", "hparams_search=fin_optuna", "feature=rms", "hydra.sweeper.n_trials=2",
        "hydra.sweeper.sampler.n_startup_trials=2", 'hydra.sweeper.params={training.max_epochs:"range(1,3)"}',
    )  # fmt: skip
    trials = [json.loads(path.read_text()) for path in sorted((tmp_path / "multirun").rglob("results.json"))]
    assert len(trials) == 2
    assert all(0 < trial["val/r2_best"] <= 1 for trial in trials)
    study = yaml.safe_load((tmp_path / "multirun" / "optimization_results.yaml").read_text())
    assert study["best_value"] == pytest.approx(max(trial["val/r2_best"] for trial in trials))
    published = read_checkpoint(tmp_path / "fins" / "rms_spectral.ckpt")["meta"]
    assert published["validation"]["best"] == pytest.approx(study["best_value"])


@pytest.mark.parametrize(
    ("option", "setting", "value"),
    [("fdr", "trainer.fast_dev_run", True), ("limit", "training.limit_train_batches", 3),
     ("overfit", "trainer.overfit_batches", 3)],
)  # fmt: skip
def test_every_debug_option_keeps_the_model_in_its_run_dir(option: str, setting: str, value: object) -> None:
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[f"debug={option}"])
    assert OmegaConf.to_container(cfg)["publish_path"] == "${paths.output_dir}/debug_model.ckpt"
    assert OmegaConf.select(cfg, setting) == value


def test_a_fast_dev_run_leaves_the_published_fin_untouched(tmp_path: Path, cache_dir: Path) -> None:
    good = published_before(tmp_path / "fins")
    run_train(tmp_path, cache_dir, "debug=fdr")
    assert (tmp_path / "fins" / "mfcc_spectral.ckpt").read_bytes() == good
    results = read_results(tmp_path / "run")
    assert Path(results["checkpoint"]) == tmp_path / "run" / "debug_model.ckpt"


def test_eval_tests_a_published_fin_on_any_dataset_and_publishes_nothing(tmp_path: Path, cache_dir: Path) -> None:
    good = published_before(tmp_path / "fins")
    run_train(tmp_path, cache_dir, f"ckpt={tmp_path / 'fins' / 'mfcc_spectral.ckpt'}", script="eval.py")
    results = read_results(tmp_path / "run")
    assert results["evaluated_checkpoint"] == str(tmp_path / "fins" / "mfcc_spectral.ckpt")
    assert 0.9 < results["test/r2"] <= 1.0 and 0.9 < results["eval/synthetic_unseen/r2"] <= 1.0
    assert (tmp_path / "fins" / "mfcc_spectral.ckpt").read_bytes() == good
    assert sorted(path.name for path in (tmp_path / "fins").iterdir()) == ["mfcc_spectral.ckpt"]


def test_eval_of_a_checkpoint_of_another_feature_names_the_overrides(tmp_path: Path, cache_dir: Path) -> None:
    published_before(tmp_path / "fins")
    result = run_train(tmp_path, cache_dir, f"ckpt={tmp_path / 'fins' / 'mfcc_spectral.ckpt'}", "feature=rms",
                       script="eval.py", check=False)  # fmt: skip
    assert result.returncode != 0
    assert "is another architecture than this config's: add feature=mfcc fin_arch=spectral" in result.stderr


def test_eval_of_a_model_that_measures_nothing_exits_non_zero(tmp_path: Path, cache_dir: Path) -> None:
    """Finite weights, infinite outputs: an output scale of 3e38 overflows every prediction, so every metric is NaN
    or infinite. eval.py says nothing was measured and exits 1, writing no results.json (it exited 0 with {})."""
    import torch

    from finser.models.checkpoint import save_checkpoint
    from finser.models.fin import study_fin

    fin = study_fin("rms", convolutional=False)
    with torch.no_grad():
        fin.output_scale.std.fill_(3e38)
    path = save_checkpoint(fin, {"_target_": "finser.models.fin.build_fin", "feature": "rms", "arch": "fc"},
                           tmp_path / "rms_fc.ckpt", kind="fin", feature="rms", arch="fc")  # fmt: skip
    result = run_train(tmp_path, cache_dir, f"ckpt={path}", "feature=rms", "fin_arch=fc", script="eval.py",
                       check=False, full_error=False)  # fmt: skip
    assert result.returncode == 1, result.stderr[-2000:]
    assert "nothing was measured" in result.stderr
    assert not (tmp_path / "run" / "results.json").exists()


def test_eval_refuses_an_override_nothing_reads_before_any_work(tmp_path: Path, cache_dir: Path) -> None:
    """train.py's check of ignored ``dataset.*`` keys, in eval.py too (it loaded the model and tested without it)."""
    published_before(tmp_path / "fins")
    fin = tmp_path / "fins" / "mfcc_spectral.ckpt"
    result = run_train(tmp_path, cache_dir, f"ckpt={fin}", "dataset.generated=false", script="eval.py", check=False)
    assert result.returncode == 1
    assert "dataset.generated: nothing this run builds reads it, so the value would be ignored" in result.stderr
    assert not (tmp_path / "run" / "results.json").exists()

"""A run can never silently replace a good published FIN with a bad one, and impossible settings run nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from finser.errors import FinserError
from finser.models.checkpoint import publish_checkpoint, read_checkpoint
from finser.models.fin import spectral_fin
from finser.run import check_publish_folder, check_settings, unread_overrides
from tests.conftest import MFCC_CONFIG, REPO, published_before, read_results, run_train


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("training.lr=-1", "training.lr=-1"),
        ("training.lr=0", "training.lr=0"),
        ("training.max_epochs=0", "training.max_epochs=0"),
        ("training.max_epochs=1.5", "training.max_epochs=1.5"),
        ("training.batch_size=0", "training.batch_size=0"),
        ("training.lr=fast", "training.lr='fast'"),
        ("dataset.audio.duration=0.05", "dataset.audio.duration=0.05"),
        ("ser_head.net.n_classes=5", "ser_head.net.n_classes=5: expected 8, one output per emotion of dataset"),
        ("seed=nan", "seed=nan: expected a whole number"),
        ("seed=99999999999999999999", "seed=99999999999999999999: expected a whole number"),
        ("training.num_workers=-1", "training.num_workers=-1: expected a whole number >= 0"),
        ("split.fractions=[1.0,0.0,0.0]", r"split.fractions=\[1.0, 0.0, 0.0\]: expected"),
        ("split.fractions=[0.5,0.5,0.5]", r"split.fractions=\[0.5, 0.5, 0.5\]: expected"),
        ("optimized_metric=test/r2", "optimized_metric='test/r2': a sweep may optimise val/r2_best"),
        ("optimized_metric=val/r2_bset", "optimized_metric='val/r2_bset': a sweep may optimise val/r2_best"),
    ],
)
def test_impossible_settings_are_refused_naming_the_key(override: str, key: str) -> None:
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        ser = any(part in override for part in ("audio", "ser_head"))
        cfg = compose("train", overrides=[override, "experiment=ser_baseline"] if ser else [override])
    with pytest.raises(FinserError, match=rf"impossible settings.*{key.replace('.', '[.]')}"):
        check_settings(cfg)


@pytest.mark.parametrize(
    ("experiment", "override", "refused"),
    [
        ("ser_baseline", "dataset.audio.duration=1.5", None),  # both datamodules read ${dataset.audio}
        ("fin", "dataset.audio.duration=1.5", None),
        ("fin", "dataset.generated=false", "so the value would be ignored"),  # only the SER presets read it
        ("ser_baseline", "dataset.generated=false", None),
        ("ser_baseline", "dataset.root=/data/ser", None),  # read through ${dataset.index}'s own ${dataset.root}
        ("ser_baseline", "dataset.band_limit_hz=4000", None),  # read through datamodule.audio
        ("ser_baseline", "dataset.augment=true", None),  # read through the split
    ],
)
def test_an_override_the_chosen_options_never_read_is_refused(experiment: str, override: str, refused: str | None
                                                              ) -> None:  # fmt: skip
    overrides = [f"experiment={experiment}", override]
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    if refused is None:
        check_settings(cfg, overrides)
        return
    key = override.split("=")[0].replace(".", "[.]")
    with pytest.raises(FinserError, match=rf"impossible settings.*{key}: nothing this run builds reads it.*{refused}"):
        check_settings(cfg, overrides)


def test_an_ignored_override_names_the_key_read_instead() -> None:
    """The hint: another section holding the same key (as ``datamodule.audio`` did beside ``dataset.audio``)."""
    cfg = OmegaConf.create({"dataset": {"audio": {"duration": 2.5}}, "datamodule": {"audio": {"duration": 2.5}}})
    assert unread_overrides(cfg, ["dataset.audio.duration=1.5"]) == [
        "dataset.audio.duration: nothing this run builds reads it, so the value would be ignored (set "
        "datamodule.audio.duration instead)"
    ]
    cfg.datamodule.audio = "${dataset.audio}"
    assert unread_overrides(cfg, ["dataset.audio.duration=1.5"]) == []


def test_an_ignored_override_stops_train_py_before_any_work(tmp_path: Path, cache_dir: Path) -> None:
    result = run_train(tmp_path, cache_dir, "dataset.generated=false", check=False)  # a FIN run: only SER reads it
    assert result.returncode == 1
    assert "dataset.generated: nothing this run builds reads it" in result.stderr
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_the_default_settings_pass_the_check() -> None:
    for experiment in ("fin", "ser_baseline", "ser_fin_finetuned"):
        with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
            check_settings(compose("train", overrides=[f"experiment={experiment}"]))


def test_gradient_ascent_is_refused_before_any_work(tmp_path: Path, cache_dir: Path) -> None:
    good = published_before(tmp_path / "fins")
    result = run_train(tmp_path, cache_dir, "training.lr=-1", check=False)
    assert result.returncode != 0
    assert "training.lr=-1: expected a number > 0" in result.stderr
    assert not (tmp_path / "run" / "checkpoints").exists()
    assert (tmp_path / "fins" / "mfcc_spectral.ckpt").read_bytes() == good


@pytest.mark.parametrize("script", ["train.py", "eval.py"])
def test_a_finser_error_prints_its_message_alone_and_marks_the_run_failed(
    tmp_path: Path, cache_dir: Path, script: str
) -> None:
    """What the user must fix, without Hydra's traceback frames before it; HYDRA_FULL_ERROR=1 still shows them."""
    setting = "training.num_workers=-1" if script == "train.py" else f"ckpt={tmp_path / 'missing.ckpt'}"
    short = run_train(tmp_path, cache_dir, setting, check=False, script=script, full_error=False)
    assert short.returncode == 1 and "Traceback" not in short.stderr and "Error executing job" not in short.stderr
    errors = [line for line in short.stderr.splitlines() if "[ERROR]" in line or line.startswith("error:")]
    assert len(errors) == 1 and (setting.split("=")[0] in errors[0] or "missing.ckpt" in errors[0]), short.stderr
    assert "FinserError" in (tmp_path / "run" / "FAILED").read_text()  # the run dir says it failed, and why
    assert not (tmp_path / "run" / "results.json").exists()
    full = run_train(tmp_path, cache_dir, setting, check=False, script=script)
    assert full.returncode == 1 and "Traceback" in full.stderr and "FinserError" in full.stderr


def test_a_debug_run_publishes_only_into_its_run_dir(tmp_path: Path, cache_dir: Path) -> None:
    good = published_before(tmp_path / "fins")
    run_train(tmp_path, cache_dir, "+trainer.fast_dev_run=true", "evaluate_before_training=false")
    assert (tmp_path / "fins" / "mfcc_spectral.ckpt").read_bytes() == good
    assert not (tmp_path / "fins" / "mfcc_spectral.prev.ckpt").exists()
    results = read_results(tmp_path / "run")
    assert results["published"] is False
    assert Path(results["checkpoint"]) == tmp_path / "run" / "mfcc_spectral.ckpt"


def test_replacing_a_published_fin_keeps_the_previous_file_and_names_the_run(tmp_path: Path, cache_dir: Path):
    good = published_before(tmp_path / "fins")
    result = run_train(tmp_path, cache_dir, "evaluate_before_training=false")
    assert "replacing the published" in result.stdout + result.stderr
    assert (tmp_path / "fins" / "mfcc_spectral.prev.ckpt").read_bytes() == good
    meta = read_checkpoint(tmp_path / "fins" / "mfcc_spectral.ckpt")["meta"]
    assert meta["run_dir"] == str(tmp_path / "run") and meta["sweep"] is None and meta["published_at"]
    assert meta["validation"]["monitor"] == "val/r2" and meta["validation"]["epoch"] == 0
    results = read_results(tmp_path / "run")
    assert results["published"] is True
    assert results["val/r2_best"] == pytest.approx(meta["validation"]["best"])


def test_a_sweep_publishes_its_best_trial_by_validation_not_its_last(tmp_path: Path, cache_dir: Path) -> None:
    # The second trial's large steps make it the worse one; on main it was published because it finished last.
    run_train(
        tmp_path,
        cache_dir,
        "-m",
        "training.lr=0.001,0.05",
        "evaluate_before_training=false",
        "hydra.sweep.subdir=${hydra.job.num}",
    )
    trials = [json.loads(path.read_text()) for path in sorted((tmp_path / "multirun").rglob("results.json"))]
    assert len(trials) == 2
    best = max(trials, key=lambda trial: trial["val/r2_best"])
    meta = read_checkpoint(tmp_path / "fins" / "mfcc_spectral.ckpt")["meta"]
    assert meta["run_dir"] == best["run_dir"]
    assert [trial["published"] for trial in trials].count(True) >= 1
    assert not (tmp_path / "fins" / "mfcc_spectral.prev.ckpt").exists()  # nothing was published before the sweep


def test_an_unwritable_fin_dir_stops_the_run_before_training(tmp_path: Path, cache_dir: Path) -> None:
    (tmp_path / "a_file").write_text("not a folder")
    result = run_train(tmp_path, cache_dir, f"paths.fin_dir={tmp_path / 'a_file' / 'fins'}", check=False)
    assert result.returncode != 0
    assert f"cannot publish to {tmp_path / 'a_file' / 'fins'}" in result.stderr
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_a_full_fin_dir_is_named_with_the_bytes_needed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("finser.run.shutil.disk_usage", lambda folder: type("Usage", (), {"free": 1000})())
    with pytest.raises(FinserError, match=rf"{tmp_path} has 1,000 bytes free; publishing this model needs about"):
        check_publish_folder(tmp_path / "mfcc_spectral.ckpt", spectral_fin("mfcc"))


def test_within_a_sweep_only_a_better_trial_replaces_the_file(tmp_path: Path) -> None:
    path = tmp_path / "rms_spectral.ckpt"
    net = spectral_fin("rms")

    def trial(best: float) -> Path | None:
        validation = {"monitor": "val/loss", "mode": "min", "best": best, "epoch": 0}
        return publish_checkpoint(net, {**MFCC_CONFIG, "feature": "rms"}, path, kind="fin", sweep="s",
                                  validation=validation, run_dir=f"trial {best}")  # fmt: skip

    assert trial(0.5) == path
    assert trial(0.9) is None
    assert trial(0.1) == path
    assert read_checkpoint(path)["meta"]["run_dir"] == "trial 0.1"
    assert not (tmp_path / "rms_spectral.prev.ckpt").exists()
    with torch.no_grad():
        assert torch.equal(read_checkpoint(path)["state_dict"]["log_weight"], net.state_dict()["log_weight"])


@pytest.mark.parametrize(
    ("data", "best", "force", "replaced"),
    [("other", 0.99, False, False), ("same", 0.80, False, False), ("same", 0.90, False, True),
     ("same", 0.95, False, True), ("other", 0.50, True, True)],
)  # fmt: skip
def test_outside_a_sweep_only_an_at_least_as_good_model_of_the_same_data_replaces_a_published_fin(
    tmp_path: Path, data: str, best: float, force: bool, replaced: bool
) -> None:
    """A smoke run (other data, or worse on validation) keeps its model in its run dir; force_publish overrides."""
    path = tmp_path / "rms_spectral.ckpt"

    def publish(data: str, best: float, run_dir: str, force: bool = False) -> Path | None:
        validation = {"monitor": "val/r2", "mode": "max", "best": best, "epoch": 0}
        net, config = spectral_fin("rms"), {**MFCC_CONFIG, "feature": "rms"}
        meta = {"kind": "fin", "sweep": None, "data": data, "validation": validation, "run_dir": run_dir}
        return publish_checkpoint(net, config, path, force=force, **meta)

    assert publish("same", 0.90, "shared run") == path
    before = path.read_bytes()
    assert (publish(data, best, "new run", force) == path) is replaced
    assert read_checkpoint(path)["meta"]["run_dir"] == ("new run" if replaced else "shared run")
    assert (tmp_path / "rms_spectral.prev.ckpt").exists() is replaced
    if not replaced:
        assert path.read_bytes() == before

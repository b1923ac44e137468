"""Runs stop cleanly on a non-finite loss and are reproducible by seed."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import read_results, run_train


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

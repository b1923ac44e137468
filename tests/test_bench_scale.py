"""The scale section of the benchmark (benchmarks/scale.py): its extrapolation, its table and the GPU check's config.

Nothing here generates the study's corpus or times a step: the table is built from small made-up measurements.
"""

from __future__ import annotations

import math
import shlex
from pathlib import Path

import pytest
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate

from benchmarks import scale
from benchmarks.timing import fmt
from finser.cli import parse_keys
from finser.data.audio import AudioSpec
from tests.conftest import REPO


def measured(**changes: object) -> dict:
    result = {
        "fraction": 0.5, "trainer": "cpu", "batch_size": 4, "batches": 3, "clips": 12, "train_clips": 30,
        "generate_s": 2.0, "wav_mb": 1.5, "cache_s": 4.0, "cache_mb": 6.0, "patience": 3, "min_steps": 40,
        "max_epochs": 1000, "peak_rss_mb": 500.0, "step_s": {"baseline": 0.5, "fine-tuned": 2.0},
    }  # fmt: skip
    return result | changes


def test_a_converged_run_is_the_best_epoch_then_patience_never_past_the_cap() -> None:
    clips_epochs = math.ceil(scale.CLIPS_TO_CONVERGE / 100)
    assert scale.converged_epochs(100, 10, patience=5, min_steps=0, max_epochs=10_000) == clips_epochs + 5
    floor_epochs = math.ceil(10 * clips_epochs * 2 / 10)  # min_steps of twice the clips' epochs
    assert scale.converged_epochs(100, 10, 5, min_steps=20 * clips_epochs, max_epochs=10_000) == floor_epochs + 5
    assert scale.converged_epochs(100, 10, 5, 0, max_epochs=7) == 7


def test_the_table_extrapolates_each_variant_linearly_and_to_a_converged_run() -> None:
    result = measured()
    text = scale.table(result)
    train_clips = 60  # 30 training clips measured at half the corpus
    steps = math.ceil(train_clips / 4)
    epochs = scale.converged_epochs(train_clips, 4, 3, 40, 1000)
    assert f"assumed {epochs} epochs" in text
    for variant, seconds in result["step_s"].items():
        hours = fmt(seconds * steps * epochs / 3600)
        assert f"| {variant} | {fmt(seconds)} | {steps:,} | {fmt(seconds * steps)} | {hours} |" in text
    assert f"| build the decoded + augmented cache (s) | {fmt(4.0)} | {fmt(8.0)} |" in text
    assert "| the cache on disk (MB) | 6.00 | 12.0 |" in text


def test_a_failed_run_renders_as_pending() -> None:
    assert scale.markdown({"error": "benchmarks.scale took over 9 s"}) == "**Pending**: benchmarks.scale took over 9 s."


@pytest.mark.parametrize("variant", list(scale.VARIANTS))
def test_the_gpu_checks_config_composes_with_batch_64_and_104_frames(variant: str, tmp_path: Path) -> None:
    """The arguments scripts/gpu_check.sh passes, composed as benchmarks.scale composes them (never run here)."""
    script = (REPO / "scripts/gpu_check.sh").read_text().splitlines()
    arguments = next(line for line in script if line.startswith("ARGS=("))
    options = parse_keys(shlex.split(arguments.removeprefix("ARGS=(").removesuffix(")")), scale.KEYS, scale.USAGE)
    overrides = scale.shared_overrides(options["fraction"], options["batch_size"], options["trainer"], tmp_path)
    try:
        cfg = scale.compose(scale.VARIANTS[variant] + overrides, tmp_path / "run")
        assert (cfg.trainer.accelerator, cfg.training.batch_size) == ("gpu", 64)
        assert cfg.dataset.index._target_ == "finser.data.synthetic.build_study_corpus" and cfg.dataset.augment
        audio: AudioSpec = instantiate(cfg.datamodule.audio)
        assert 1 + (audio.n_samples - 2048) // 512 == 104
    finally:
        HydraConfig.instance().cfg = None

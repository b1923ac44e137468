"""Shared fixtures: tiny generated corpora and a helper that runs train.py through Hydra in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def speech_like_frames(seed: int, n_clips: int = 4) -> np.ndarray:
    """Frames (B, 2048) of synthetic speech from a seed no corpus in the tests trains on."""
    from finser.data.labels import EMOTIONS
    from finser.data.synthetic import SyntheticCorpusSpec, _clip_audio

    spec = SyntheticCorpusSpec(seed=seed)
    clips = [_clip_audio(spec, index, EMOTIONS[index % len(EMOTIONS)], 0) for index in range(n_clips)]
    return np.concatenate([np.lib.stride_tricks.sliding_window_view(clip, 2048)[::512] for clip in clips])


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache for the whole session, so each tiny corpus is generated once."""
    return tmp_path_factory.mktemp("cache")


TINY = [
    "dataset.index.n_speakers=3",
    "dataset.index.clips_per_emotion=1",
    "eval_datasets.synthetic_unseen.n_speakers=3",
    "eval_datasets.synthetic_unseen.clips_per_emotion=1",
    "training.max_epochs=1",
    "training.limit_train_batches=4",
    "training.batch_size=64",
]


def run_train(
    tmp_path: Path, cache_dir: Path, *overrides: str, check: bool = True, wandb_mode: str | None = "offline"
) -> subprocess.CompletedProcess:
    """Run `python train.py` as a user would, with outputs under ``tmp_path``, no network and no terminal to ask
    questions on (``wandb_mode=None`` leaves W&B to finser's own default)."""
    env = {**os.environ, "HYDRA_FULL_ERROR": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("WANDB_MODE", None)
    if wandb_mode is not None:
        env["WANDB_MODE"] = wandb_mode
    flags = [override for override in overrides if override.startswith("-")]  # e.g. -m: before the overrides
    command = [
        sys.executable,
        str(REPO / "train.py"),
        *flags,
        f"hydra.run.dir={tmp_path / 'run'}",
        f"hydra.sweep.dir={tmp_path / 'multirun'}",
        f"paths.cache_dir={cache_dir}",
        f"paths.fin_dir={tmp_path / 'fins'}",
        *TINY,
        *[override for override in overrides if override not in flags],
    ]
    result = subprocess.run(
        command, cwd=REPO, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"train.py failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
        )
    return result


def read_results(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())

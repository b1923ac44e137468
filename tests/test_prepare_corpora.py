"""`scripts/prepare_corpora.py` and `train.py` on real-corpus layouts, as a user runs them."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.data.conftest import write_lfs_pointer, write_tree

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ser")
    for corpus in ("ravdess", "crema_d", "tess", "savee", "esd"):
        write_tree(root, corpus)
    return root


def prepare(*arguments: str) -> subprocess.CompletedProcess:
    command = [sys.executable, str(REPO / "scripts/prepare_corpora.py"), *arguments]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)


def test_prepare_writes_manifest_counts_and_skipped(root: Path, tmp_path: Path) -> None:
    manifest = tmp_path / "ravdess.csv"
    result = prepare("dataset=ravdess", f"dataset.root={root}", f"manifest={manifest}")
    assert result.returncode == 0, result.stderr
    with manifest.open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 60 and {"path", "corpus", "speaker", "emotion"} <= rows[0].keys()
    assert "| ravdess | 01 | 1 | 2 | 2 | 2 | 2 | 2 | 2 | 2 | 15 |" in result.stdout
    assert "| **all** | 4 | 4 | 8 | 8 | 8 | 8 | 8 | 8 | 8 | 60 |" in result.stdout
    assert result.stdout.count(": duplicate of ") == 30


def test_prepare_combined_reports_lfs_pointer(root: Path, tmp_path: Path) -> None:
    result = prepare("dataset=combined", f"dataset.root={root}", f"manifest={tmp_path / 'all.csv'}")
    assert result.returncode == 0, result.stderr
    assert "186 usable clips" in result.stdout
    assert "1003_ITS_HAP_XX.wav: git-lfs pointer file" in result.stdout


@pytest.mark.parametrize("problem", ["missing", "unusable"])
def test_prepare_fails_naming_the_path(tmp_path: Path, problem: str) -> None:
    folder = tmp_path / "corpus"
    if problem == "unusable":
        write_lfs_pointer(folder / "AudioWAV" / "1001_DFA_ANG_XX.wav")
    result = prepare("dataset=crema_d", f"dataset.root={folder}", f"manifest={tmp_path / 'm.csv'}")
    assert result.returncode != 0 and str(folder) in result.stderr
    assert ("does not exist" if problem == "missing" else "git lfs pull") in result.stderr
    assert not (tmp_path / "m.csv").exists()


def train(tmp_path: Path, *overrides: str) -> dict:
    env = {**os.environ, "WANDB_MODE": "offline", "HYDRA_FULL_ERROR": "1"}
    command = [
        sys.executable,
        str(REPO / "train.py"),
        f"hydra.run.dir={tmp_path / 'run'}",
        f"paths.cache_dir={tmp_path / 'cache'}",
        f"paths.fin_dir={tmp_path / 'fins'}",
        "logger=none",
        "evaluate_before_training=false",
        "training.max_epochs=1",
        "training.limit_train_batches=2",
        "training.limit_val_batches=2",
        "training.limit_test_batches=2",
        "training.batch_size=32",
        *overrides,
    ]
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads((tmp_path / "run" / "results.json").read_text())


def test_train_on_combined_corpora_with_esd_evaluation(root: Path, tmp_path: Path) -> None:
    results = train(
        tmp_path,
        "dataset=combined",
        f"dataset.root={root}",
        "eval_datasets=[esd]",
        f"paths.data_dir={root}",
        "dataset.band_limit_hz=8000",
    )
    assert results["dataset"] == "combined"
    assert "test/r2" in results and "eval/esd/r2" in results
    assert list((tmp_path / "cache").glob("audio-*/shard-*.npy"))


def test_train_on_ravdess_with_random_split(root: Path, tmp_path: Path) -> None:
    results = train(tmp_path, "dataset=ravdess", f"dataset.root={root / 'ravdess'}", "split=random", "eval_datasets=[]")
    assert results["dataset"] == "ravdess" and "test/r2" in results

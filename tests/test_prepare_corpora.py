"""`scripts/prepare_corpora.py` and `train.py` on real-corpus layouts, as a user runs them."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from finser.data import layouts
from finser.data.corpora import index_corpora
from finser.data.labels import EMOTIONS
from finser.models.checkpoint import load_model
from tests.data.conftest import write_lfs_pointer, write_tree
from tests.preloaded import REPO, run_python


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ser")
    for corpus in ("ravdess", "crema_d", "tess", "savee", "esd"):
        write_tree(root, corpus)
    return root


def prepare(*arguments: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    command = [sys.executable, str(REPO / "scripts/prepare_corpora.py"), *arguments]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120)


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


def test_manifest_written_with_a_relative_root_reads_from_another_folder(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer, reader = tmp_path / "writer", tmp_path / "reader" / "deeper"  # the relative root names nothing from here
    writer.mkdir(), reader.mkdir(parents=True)
    relative_root = os.path.relpath(root / "savee", writer)
    result = prepare("dataset=savee", f"dataset.root={relative_root}", "manifest=savee.csv", cwd=writer)
    assert result.returncode == 0, result.stderr
    monkeypatch.chdir(reader)
    clips = index_corpora(["savee"], None, manifest=str(writer / "savee.csv"))
    assert len(clips) == 32 and all(Path(clip.path).is_file() for clip in clips)


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("folder", r"manifest=\S+: it is a folder: give a file name"),
        ("folder/file.txt/x.csv", r"manifest=\S+/x\.csv: \S+/file\.txt is a file, not a folder"),
    ],
)
def test_a_manifest_path_that_cannot_be_written_is_one_line_and_leaves_nothing(
    root: Path, tmp_path: Path, target: str, message: str
) -> None:
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "file.txt").write_text("notes\n")
    result = prepare("dataset=savee", f"dataset.root={root / 'savee'}", f"manifest={tmp_path / target}")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    assert re.fullmatch(rf"error: cannot write {message}.*", line), line
    assert sorted(path.name for path in tmp_path.rglob("*")) == ["file.txt", "folder"]


def train(tmp_path: Path, *overrides: str, script: str = "train.py") -> dict:
    env = {**os.environ, "WANDB_MODE": "offline", "HYDRA_FULL_ERROR": "1"}
    command = [
        sys.executable,
        str(REPO / script),
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
    result = run_python(command, env=env, timeout=300)
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


@pytest.fixture(scope="module")
def iemocap_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("iemocap")
    layouts.write_iemocap(root, layouts.iemocap_dialogs(sessions=5, per_session=2), seconds=1.0)
    return root


def test_prepare_iemocap_writes_its_cuts_and_one_left_out_line(iemocap_root: Path, tmp_path: Path) -> None:
    manifest = tmp_path / "iemocap.csv"
    result = prepare("dataset=iemocap", f"dataset.root={iemocap_root}", f"manifest={manifest}")
    assert result.returncode == 0, result.stderr
    with manifest.open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 50 and all(re.search(r"\.wav#t=[\d.]+,[\d.]+$", row["path"]) for row in rows)
    assert {row["speaker"] for row in rows} == {f"Session{n}" for n in range(1, 6)}
    assert "| corpus | speaker | neutral | happy | sad | angry | total |" in result.stdout
    assert "| iemocap | Session1 | 2 | 4 | 2 | 2 | 10 |" in result.stdout
    (line,) = [line for line in result.stdout.splitlines() if "left out" in line]
    assert line.startswith("iemocap: left out 60 utterances (10 × dis, 10 × fea, 10 × fru, 10 × oth")


def test_train_ser_on_iemocap_has_four_outputs_and_predict_reports_them(iemocap_root: Path, tmp_path: Path) -> None:
    four = ["neutral", "happy", "sad", "angry"]
    results = train(
        tmp_path,
        "experiment=ser_baseline",
        "dataset=iemocap",
        f"dataset.root={iemocap_root}",
        "eval_datasets.synthetic_unseen.n_speakers=2",  # the default evaluation corpus: its clips of the four
        "eval_datasets.synthetic_unseen.clips_per_emotion=1",
        "dataset.audio.offset=0.0",
        "dataset.audio.duration=1.0",
        "task.linear_probe=false",
        "split.fold=1",
    )
    assert results["dataset"] == "iemocap" and results["emotions"] == four
    for prefix in ("test/f1/", "eval/synthetic_unseen/f1/"):
        assert {key.removeprefix(prefix) for key in results if key.startswith(prefix)} == set(four)
    assert np.array(results["eval/synthetic_unseen/confusion"]).sum() == 2 * 4  # 2 speakers × 1 clip × 4 emotions
    confusion = np.array(results["test/confusion"])
    assert confusion.shape == (4, 4) and confusion.sum() == 10  # Session2, the fold's test session: 10 utterances
    model, meta = load_model(tmp_path / "run" / "ser_model.ckpt")
    assert meta["emotions"] == four and model.head.body[-1].out_features == 4
    out = tmp_path / "predictions.csv"
    clip = tmp_path / "clip.wav"
    soundfile.write(clip, layouts.tone(1.5, 16_000, seed=3), 16_000)
    command = [sys.executable, str(REPO / "predict.py"), f"ckpt={tmp_path / 'run' / 'ser_model.ckpt'}", f"audio={clip}",
               f"out={out}"]  # fmt: skip
    predicted = run_python(command, timeout=300)
    assert predicted.returncode == 0, predicted.stderr[-2000:]
    (row,) = list(csv.DictReader(out.open()))
    assert row["emotion"] in four
    assert [key.removeprefix("p_") for key in row if key.startswith("p_")] == four


def test_eval_scores_a_union_model_on_iemocap_with_the_checkpoint_s_eight_emotions(
    iemocap_root: Path, tmp_path: Path
) -> None:
    clip = ["dataset.audio.offset=0.0", "dataset.audio.duration=1.0", "task.linear_probe=false"]
    synthetic = ["dataset.index.n_speakers=3", "dataset.index.clips_per_emotion=1"]
    train(tmp_path / "union", "experiment=ser_baseline", "eval_datasets=[]", *synthetic, *clip)
    checkpoint = tmp_path / "union" / "run" / "ser_model.ckpt"  # eval.py cuts clips as it records
    iemocap = [f"dataset.root={iemocap_root}", "dataset=iemocap", "eval_datasets=[]", "task.linear_probe=false"]
    results = train(tmp_path / "eval", "experiment=ser_baseline", f"ckpt={checkpoint}", *iemocap, script="eval.py")
    assert results["emotions"] == list(EMOTIONS)  # the model's outputs, not the dataset's four
    assert np.array(results["test/confusion"]).shape == (8, 8)
    assert (tmp_path / "eval" / "run" / "confusion_test.png").is_file()  # in its run dir, not where eval.py started

"""Manifests: written whole or not at all, read the same from any working directory."""

from __future__ import annotations

import errno
import tempfile
from pathlib import Path

import pytest

from finser.data.labels import Clip, check_emotions, check_labels, segment_path, split_segment, write_manifest
from finser.errors import FinserError


def test_an_unwritable_manifest_folder_is_one_error_and_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def denying_mkstemp(*args: object, dir: str = "", **kwargs: object) -> object:
        # chmod does not stop root (as in CI): deny creating the file itself
        raise PermissionError(errno.EACCES, "Permission denied", str(dir))

    monkeypatch.setattr(tempfile, "mkstemp", denying_mkstemp)
    with pytest.raises(FinserError, match=r"cannot write manifest=\S+m\.csv: Permission denied: choose a path"):
        write_manifest([Clip("a.wav", "ravdess", "01", "calm")], tmp_path / "m.csv")
    assert list(tmp_path.iterdir()) == []


def test_a_chosen_emotion_set_is_canonical_names_each_once_in_the_order_given() -> None:
    assert check_emotions(["sad", "neutral"]) == ("sad", "neutral")
    with pytest.raises(FinserError, match=r"dataset.emotions=\['happy', 'joy'\]: unknown joy"):
        check_emotions(["happy", "joy"])
    with pytest.raises(FinserError, match=r"a name given twice"):
        check_emotions(["happy", "happy"])
    with pytest.raises(FinserError, match=r"empty"):
        check_emotions([])


def test_clips_of_emotions_outside_the_chosen_set_stop_with_their_counts() -> None:
    clips = [Clip("a.wav", "ravdess", "01", "calm"), Clip("b.wav", "ravdess", "01", "calm"),
             Clip("c.wav", "ravdess", "01", "sad")]  # fmt: skip
    check_labels(clips[2:], ("neutral", "sad"), "the dataset")
    with pytest.raises(FinserError, match=r"the dataset has clips of emotions outside dataset.emotions=\['neutral', "
                       r"'sad'\] \(2 × calm\): choose a dataset"):  # fmt: skip
        check_labels(clips, ("neutral", "sad"), "the dataset")


def test_a_segment_path_names_its_file_and_times() -> None:
    path = segment_path("/data/Ses01F_impro01.wav", 6.2901, 8.2357)
    assert path == "/data/Ses01F_impro01.wav#t=6.2901,8.2357"
    assert split_segment(path) == ("/data/Ses01F_impro01.wav", 6.2901, 8.2357)
    assert split_segment("/data/a.wav") == ("/data/a.wav", 0.0, None)


def test_a_datamodule_refuses_a_corpus_outside_its_emotions_and_trims_an_evaluation_corpus(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from finser.data.splits import random_split
    from finser.data.utterances import UtteranceDataModule

    four = ["neutral", "happy", "sad", "angry"]
    iemocap = [Clip(f"d.wav#t={i},{i + 1}", "iemocap", "Session1", four[i % 4]) for i in range(8)]
    ravdess = [Clip("03-01-02-01-01-01-01.wav", "ravdess", "01", "calm")]
    assert UtteranceDataModule(iemocap, random_split, emotions=four).emotions == tuple(four)
    with pytest.raises(FinserError, match=r"the dataset has clips of emotions outside .*\(1 × calm\)"):
        UtteranceDataModule(iemocap + ravdess, random_split, emotions=four)
    mixed = {"ravdess": ravdess + iemocap[:3]}  # the embedded corpus's eight beside an IEMOCAP model, say
    with caplog.at_level("WARNING"):
        datamodule = UtteranceDataModule(iemocap, random_split, eval_clips=mixed, emotions=four)
    assert datamodule.eval_clips == {"ravdess": iemocap[:3]}
    (line,) = [record.getMessage() for record in caplog.records if "left out" in record.getMessage()]
    assert line.startswith("eval_datasets.ravdess: left out 1 clips of emotions outside") and "1 × calm" in line
    with pytest.raises(FinserError, match=r"eval_datasets.ravdess has no clip of dataset.emotions"):
        UtteranceDataModule(iemocap, random_split, eval_clips={"ravdess": ravdess}, emotions=four)

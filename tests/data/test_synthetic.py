"""The embedded corpus: deterministic, cached, speech-like, eight overlapping emotions."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from finser.data.audio import load_audio
from finser.data.labels import EMOTIONS
from finser.data.splits import speaker_split
from finser.data.synthetic import STUDY_SHAPE, build_study_corpus, build_synthetic_corpus, study_plan
from finser.errors import FinserError
from finser.features import compute_all, frame_signal


@pytest.mark.slow
def test_same_seed_same_audio_and_other_seed_other_audio(tmp_path: Path) -> None:
    first = build_synthetic_corpus(tmp_path / "a", seed=3, n_speakers=3, clips_per_emotion=1, workers=1)
    again = build_synthetic_corpus(tmp_path / "b", seed=3, n_speakers=3, clips_per_emotion=1, workers=2)
    other = build_synthetic_corpus(tmp_path / "c", seed=4, n_speakers=3, clips_per_emotion=1, workers=1)
    assert [(c.speaker, c.emotion) for c in first] == [(c.speaker, c.emotion) for c in again]
    for one, two, three in zip(first, again, other, strict=True):
        assert np.array_equal(soundfile.read(one.path)[0], soundfile.read(two.path)[0])
        assert not np.array_equal(soundfile.read(one.path)[0][:2048], soundfile.read(three.path)[0][:2048])


def test_layout_labels_and_durations(tmp_path: Path) -> None:
    clips = build_synthetic_corpus(tmp_path, seed=0, n_speakers=4, clips_per_emotion=2, workers=1)
    assert len(clips) == 4 * len(EMOTIONS) * 2
    assert {clip.emotion for clip in clips} == set(EMOTIONS)
    assert len({clip.speaker for clip in clips}) == 4
    for clip in clips[::9]:
        info = soundfile.info(clip.path)
        assert info.samplerate == 22_050 and info.channels == 1
        assert 2.0 <= info.duration <= 4.0


def test_a_second_call_reuses_the_cache(tmp_path: Path) -> None:
    clips = build_synthetic_corpus(tmp_path, seed=0, n_speakers=3, clips_per_emotion=1, workers=1)
    stamp = Path(clips[0].path).stat().st_mtime_ns
    assert build_synthetic_corpus(tmp_path, seed=0, n_speakers=3, clips_per_emotion=1, workers=1) == clips
    assert Path(clips[0].path).stat().st_mtime_ns == stamp


@pytest.mark.slow
def test_exact_features_separate_emotions_above_chance_but_not_perfectly(cache_dir: Path) -> None:
    """Classes overlap: a linear classifier on time-averaged exact features, tested on unseen speakers."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    clips = speaker_split(build_synthetic_corpus(cache_dir / "synthetic", seed=0), seed=0)

    def clip_vector(path: str) -> np.ndarray:
        values = compute_all(frame_signal(torch.from_numpy(load_audio(path))))
        values["melspec"] = torch.log(values["melspec"] + 1e-10)
        return torch.cat([value.mean(0) for value in values.values()]).numpy()

    vectors = np.stack([clip_vector(clip.path) for clip in clips])
    labels = np.array([EMOTIONS.index(clip.emotion) for clip in clips])
    train = np.array([clip.split == "train" for clip in clips])
    test = np.array([clip.split == "test" for clip in clips])
    scaler = StandardScaler().fit(vectors[train])
    model = LogisticRegression(max_iter=2000).fit(scaler.transform(vectors[train]), labels[train])
    accuracy = model.score(scaler.transform(vectors[test]), labels[test])
    chance = 1 / len(EMOTIONS)
    assert 2.5 * chance < accuracy < 0.9, accuracy


def test_the_study_plan_has_the_studys_corpora_speakers_and_emotion_mix() -> None:
    """The paper's union (docs/corpora.md), counted from the plan alone: no audio is generated."""
    plan = study_plan()
    assert len(plan) == 12_161
    speakers = {corpus: len({clip.speaker_name for clip in plan if clip.corpus == corpus}) for corpus in STUDY_SHAPE}
    assert speakers == {"ravdess": 24, "crema_d": 91, "tess": 2, "savee": 4}
    assert len({clip.speaker for clip in plan}) == 121  # a voice per speaker, none shared between corpora
    mix = Counter(clip.emotion for clip in plan)
    assert mix == {"angry": 1923, "disgust": 1923, "fear": 1923, "happy": 1923, "sad": 1922, "neutral": 1703,
                   "surprise": 652, "calm": 192}  # fmt: skip
    per_corpus = Counter((clip.corpus, clip.emotion) for clip in plan)
    assert per_corpus[("ravdess", "neutral")] == 96 and per_corpus[("ravdess", "calm")] == 192
    assert ("crema_d", "surprise") not in per_corpus and ("tess", "calm") not in per_corpus
    assert len({clip.file_name for clip in plan}) == len(plan)


def test_a_fraction_of_the_study_keeps_every_corpus_and_its_mix() -> None:
    full, part = study_plan(), study_plan(0.1)
    cells = Counter((clip.corpus, clip.emotion) for clip in full)
    assert Counter((clip.corpus, clip.emotion) for clip in part) == {
        cell: round(count * 0.1) for cell, count in cells.items()
    }
    with pytest.raises(FinserError, match=r"scale=0: .*\(0, 1\]"):
        study_plan(0)


def test_the_study_shaped_corpus_is_generated_with_its_corpora_and_lengths(tmp_path: Path) -> None:
    clips = build_study_corpus(tmp_path, scale=0.004, workers=1)
    assert [(clip.corpus, clip.speaker, clip.emotion) for clip in clips] == [
        (clip.corpus, clip.speaker_name, clip.emotion) for clip in study_plan(0.004)
    ]
    for clip in clips[::7]:
        assert 2.0 <= soundfile.info(clip.path).duration <= 5.0
    assert build_study_corpus(tmp_path, scale=0.004, workers=1) == clips


def test_a_full_disk_names_the_file_and_the_bytes_it_needs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """libsndfile reports a full disk as ``LibsndfileError(2, '')``, naming nothing; the corpus generator names the
    file, the bytes one clip needs and those free, leaves no partial file, and writes no manifest."""
    from finser.data import synthetic
    from finser.errors import FinserError

    def full_disk(path, *args, **kwargs) -> None:
        Path(path).write_bytes(b"RIFF")  # what a write cut short leaves
        raise soundfile.LibsndfileError(2, "")

    monkeypatch.setattr(synthetic.soundfile, "write", full_disk)
    message = r"cannot write the embedded corpus's \S+spk00_\w+\.wav: it needs [\d,]+ bytes and [\d,]+ are free"
    with pytest.raises(FinserError, match=message):
        synthetic.build_synthetic_corpus(tmp_path, n_speakers=1, clips_per_emotion=1, workers=1)
    assert not list(tmp_path.rglob("*.wav")) and not list(tmp_path.rglob("manifest.csv"))

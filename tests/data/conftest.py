"""Small corpus trees in each corpus's true layout, with generated audio at native rates, and bad-file writers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

from finser.data import layouts


def write_tree(root: Path, corpus: str) -> Path:
    """A few speakers of one corpus, with that corpus's quirks (see docs/corpora.md)."""
    folder = root / corpus
    if corpus == "ravdess":
        layouts.write_files(folder, layouts.ravdess_files(range(1, 5), takes=1), seconds=0.5)
        # Some copies hold the actor folders twice: the nested copy must be counted once.
        copies = [f for f in layouts.ravdess_files(range(1, 3), takes=1)]
        nested = [layouts.FileSpec(f"audio_speech_actors_01-24/{f.path}", 48_000, f.emotion, f.speaker) for f in copies]
        layouts.write_files(folder, nested, seconds=0.5)
    elif corpus == "crema_d":
        layouts.write_files(folder, layouts.crema_d_files(range(1001, 1004), ("IEO", "DFA")), seconds=0.5)
        # One copy has a file with level "X"; a clone without git-lfs holds 130-byte pointers.
        (folder / "AudioWAV/1001_DFA_ANG_XX.wav").rename(folder / "AudioWAV/1001_DFA_ANG_X.wav")
        write_lfs_pointer(folder / "AudioWAV/1003_ITS_HAP_XX.wav")
    elif corpus == "tess":
        layouts.write_files(folder, layouts.tess_files(n_words=2, nested=True), seconds=0.5)
    elif corpus == "savee":
        layouts.write_files(folder, layouts.savee_files(per_emotion=1, kaggle=True), seconds=0.5)
    elif corpus == "savee_original":
        layouts.write_files(folder, layouts.savee_files(per_emotion=1, kaggle=False), seconds=0.5)
    elif corpus == "esd":
        layouts.write_files(folder, layouts.esd_files(range(11, 13), per_emotion=2, split_folders=True), seconds=0.5)
        layouts.write_files(folder, layouts.esd_files(range(13, 14), per_emotion=2, split_folders=False), seconds=0.5)
        layouts.write_files(folder, layouts.esd_files(range(1, 2), per_emotion=1), seconds=0.5)  # Mandarin
    elif corpus == "iemocap":
        layouts.write_iemocap(folder, layouts.iemocap_dialogs(sessions=5, per_session=2))
    return folder


def write_lfs_pointer(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "version https://git-lfs.github.com/spec/v1\n"
        "oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\nsize 12345\n"
    )


@pytest.fixture(scope="session")
def trees(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every corpus side by side under one root, written once per session."""
    root = tmp_path_factory.mktemp("corpora")
    for corpus in ("ravdess", "crema_d", "tess", "savee", "savee_original", "esd"):
        write_tree(root, corpus)
    return root


def write_wav(path: Path, samples: np.ndarray, sample_rate: int, subtype: str = "PCM_16") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, samples, sample_rate, subtype=subtype)
    return path


def tone(seconds: float, sample_rate: int, frequency: float = 440.0) -> np.ndarray:
    time = np.arange(int(seconds * sample_rate)) / sample_rate
    return (0.3 * np.sin(2 * np.pi * frequency * time)).astype(np.float32)

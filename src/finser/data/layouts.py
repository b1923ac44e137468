"""Stand-in corpora in each corpus's true layout (names, folders, native rates, quirks) with generated audio.

For tests and ``scripts/bench_data.py``: the adapters must survive exactly what a downloaded copy looks like, and
the full-scale union (12,162 files, one of them without audio as in CREMA-D) is the size the cache must serve.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile

from finser.data.corpora import (
    CREMA_D_EMOTIONS,
    ESD_BLOCK_SIZE,
    ESD_BLOCKS,
    IEMOCAP_EMOTIONS,
    IEMOCAP_SESSIONS,
    RAVDESS_EMOTIONS,
    SAVEE_EMOTIONS,
    SAVEE_SPEAKERS,
    TESS_EMOTIONS,
)


@dataclass(frozen=True)
class FileSpec:
    path: str  # relative to the corpus root
    sample_rate: int
    emotion: str
    speaker: str


def ravdess_files(actors: Iterable[int] = range(1, 25), takes: int = 2) -> list[FileSpec]:
    """Emotion 01-08 × intensity (neutral: normal only) × statement × repetition; ``takes`` ≤ 2 trims both."""
    files = []
    for actor, (code, emotion) in itertools.product(actors, RAVDESS_EMOTIONS.items()):
        for intensity, statement, repetition in itertools.product(
            (1,) if emotion == "neutral" else (1, 2), range(1, takes + 1), range(1, takes + 1)
        ):
            name = f"03-01-{code}-{intensity:02d}-{statement:02d}-{repetition:02d}-{actor:02d}.wav"
            folder = f"Audio_Speech_Actors_01-24/Actor_{actor:02d}"
            files.append(FileSpec(f"{folder}/{name}", 48_000, emotion, f"{actor:02d}"))
    return files


CREMA_D_SENTENCES = ("IEO", "TIE", "IOM", "IWW", "TAI", "MTI", "IWL", "ITH", "DFA", "ITS", "TSI", "WSI")


def crema_d_files(
    actors: Iterable[int] = range(1001, 1092), sentences: Iterable[str] = CREMA_D_SENTENCES
) -> list[FileSpec]:
    """IEO is spoken at three levels (LO MD HI) except neutral; every other sentence once (XX)."""
    files = []
    for actor, sentence, (code, emotion) in itertools.product(actors, sentences, CREMA_D_EMOTIONS.items()):
        levels = ("LO", "MD", "HI") if sentence == "IEO" and code != "NEU" else ("XX",)
        files += [
            FileSpec(f"AudioWAV/{actor}_{sentence}_{code}_{level}.wav", 16_000, emotion, str(actor)) for level in levels
        ]
    return files


TESS_FOLDERS = {  # the download's inconsistent folder case, kept on purpose
    ("OAF", "angry"): "OAF_angry",
    ("OAF", "disgust"): "OAF_disgust",
    ("OAF", "fear"): "OAF_Fear",
    ("OAF", "happy"): "OAF_happy",
    ("OAF", "neutral"): "OAF_neutral",
    ("OAF", "ps"): "OAF_Pleasant_surprise",
    ("OAF", "sad"): "OAF_Sad",
    ("YAF", "angry"): "YAF_angry",
    ("YAF", "disgust"): "YAF_disgust",
    ("YAF", "fear"): "YAF_fear",
    ("YAF", "happy"): "YAF_happy",
    ("YAF", "neutral"): "YAF_neutral",
    ("YAF", "ps"): "YAF_pleasant_surprised",
    ("YAF", "sad"): "YAF_sad",
}


def tess_words(n_words: int = 200) -> list[str]:
    """Letters-only stand-ins for TESS's 200 carrier words ("say the word back")."""
    words = ("".join(parts) for parts in itertools.product("bcdfghklmnprstvwz", "aeiou", "bdgkmnpst"))
    return list(itertools.islice(words, n_words))


def tess_files(n_words: int = 200, nested: bool = True) -> list[FileSpec]:
    """Some copies nest the data folder twice; one file is at 96 kHz instead of 24,414 Hz."""
    top = "TESS Toronto emotional speech set data/" * (2 if nested else 1)
    files = [
        FileSpec(f"{top}{folder}/{speaker}_{word}_{code}.wav", 24_414, TESS_EMOTIONS[code], speaker)
        for (speaker, code), folder in TESS_FOLDERS.items()
        for word in tess_words(n_words)
    ]
    files[0] = FileSpec(files[0].path, 96_000, files[0].emotion, files[0].speaker)
    return files


def savee_files(speakers: Iterable[str] = SAVEE_SPEAKERS, per_emotion: int = 15, kaggle: bool = True) -> list[FileSpec]:
    """Kaggle ``ALL/DC_a01.wav`` or original ``AudioData/DC/a01.wav``; neutral has twice the sentences."""
    files = []
    for speaker, (code, emotion) in itertools.product(speakers, SAVEE_EMOTIONS.items()):
        for number in range(1, (2 if code == "n" else 1) * per_emotion + 1):
            path = f"ALL/{speaker}_{code}{number:02d}.wav" if kaggle else f"AudioData/{speaker}/{code}{number:02d}.wav"
            files.append(FileSpec(path, 44_100, emotion, speaker))
    return files


ESD_FOLDERS = tuple(emotion.capitalize() for emotion in ESD_BLOCKS)  # the folder of each utterance-id block


def esd_files(
    speakers: Iterable[int] = range(11, 21), per_emotion: int = ESD_BLOCK_SIZE, split_folders: bool = False
) -> list[FileSpec]:
    """``Emotion Speech Dataset/0011/Angry/[evaluation|test|train/]0011_000351.wav``: both layouts exist.

    ``per_emotion`` < 350 keeps the first utterances of each block (so the official split is still visible).
    """
    files = []
    for speaker, (block, folder) in itertools.product(speakers, enumerate(ESD_FOLDERS)):
        for position in range(per_emotion):
            part = "evaluation/" if position < 20 else "test/" if position < 50 else "train/"
            name = f"{speaker:04d}_{block * ESD_BLOCK_SIZE + position + 1:06d}.wav"
            path = f"Emotion Speech Dataset/{speaker:04d}/{folder}/{part if split_folders else ''}{name}"
            files.append(FileSpec(path, 16_000, ESD_BLOCKS[block], f"{speaker:04d}"))
    return files


IEMOCAP_RATE = 16_000
IEMOCAP_OTHER_LABELS = ("fru", "sur", "fea", "dis", "oth", "xxx")  # labels the 4-class protocol leaves out


@dataclass(frozen=True)
class Utterance:
    start: float  # seconds into the dialog wav
    end: float
    name: str  # e.g. Ses01F_impro01_F000
    label: str  # IEMOCAP's code: neu, hap, exc, sad, ang, fru, ...


@dataclass(frozen=True)
class Dialog:
    session: str
    name: str  # e.g. Ses01F_impro01

    @property
    def wav(self) -> str:
        return f"IEMOCAP_full_release/{self.session}/dialog/wav/{self.name}.wav"

    @property
    def labels(self) -> str:
        return f"IEMOCAP_full_release/{self.session}/dialog/EmoEvaluation/{self.name}.txt"


def iemocap_dialogs(sessions: int = 5, per_session: int = 2) -> list[Dialog]:
    """Improvised and scripted dialogs per session, named as IEMOCAP names them (Ses01F_impro01, Ses01M_script01_1)."""
    names = ("F_impro{:02d}", "M_script{:02d}_1")
    return [
        Dialog(session, f"Ses{number:02d}{names[index % 2].format(index // 2 + 1)}")
        for number, session in enumerate(IEMOCAP_SESSIONS[:sessions], start=1)
        for index in range(per_session)
    ]


def iemocap_utterances(dialog: Dialog, seconds: float = 0.6, gap: float = 0.3) -> list[Utterance]:
    """Each 4-class code once, then every left-out label once, in turns, back to back with ``gap`` seconds between."""
    labels = (*IEMOCAP_EMOTIONS, *IEMOCAP_OTHER_LABELS)
    return [
        Utterance(
            round(gap + index * (seconds + gap), 4),
            round(gap + index * (seconds + gap) + seconds, 4),
            f"{dialog.name}_{'FM'[index % 2]}{index:03d}",
            label,
        )
        for index, label in enumerate(labels)
    ]


def label_file(utterances: Iterable[Utterance]) -> str:
    """An EmoEvaluation file as IEMOCAP writes it: a header, then per utterance its line and annotators' lines."""
    lines = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
    for utterance in utterances:
        lines += [
            f"[{utterance.start:.4f} - {utterance.end:.4f}]\t{utterance.name}\t{utterance.label}\t[2.5, 2.5, 2.5]",
            "C-E2:\tNeutral;\t()",
            "C-F1:\tNeutral;\t(curious)",
            "A-E3:\tval 3; act 2; dom  2;\t()",
            "",
        ]
    return "\n".join(lines)


def write_iemocap(root: Path, dialogs: Iterable[Dialog], seconds: float = 0.6) -> dict[Dialog, list[Utterance]]:
    """Each dialog's stereo 16-kHz wav (a tone per utterance, silence between) and its label file."""
    written = {}
    for seed, dialog in enumerate(dialogs):
        utterances = iemocap_utterances(dialog, seconds)
        signal = np.zeros(round((utterances[-1].end + 0.3) * IEMOCAP_RATE), np.float32)
        for index, utterance in enumerate(utterances):
            start = round(utterance.start * IEMOCAP_RATE)
            piece = tone(utterance.end - utterance.start, IEMOCAP_RATE, 1000 * seed + index)
            signal[start : start + piece.size] = piece
        wav, labels = Path(root) / dialog.wav, Path(root) / dialog.labels
        wav.parent.mkdir(parents=True, exist_ok=True)
        labels.parent.mkdir(parents=True, exist_ok=True)
        soundfile.write(wav, np.stack([signal, 0.5 * signal], axis=1), IEMOCAP_RATE, subtype="PCM_16")
        labels.write_text(label_file(utterances))
        written[dialog] = utterances
    return written


def tone(seconds: float, sample_rate: int, seed: int) -> np.ndarray:
    """A short vowel-ish signal: a harmonic tone with vibrato plus a little noise, different per seed."""
    rng = np.random.default_rng(seed)
    time = np.arange(int(seconds * sample_rate)) / sample_rate
    pitch = rng.uniform(100, 300) * (1 + 0.02 * np.sin(2 * np.pi * 5 * time))
    phase = 2 * np.pi * np.cumsum(pitch) / sample_rate
    signal = sum(np.sin(k * phase) / k for k in range(1, 6)) + 0.05 * rng.standard_normal(time.size)
    return (0.2 * signal / np.abs(signal).max()).astype(np.float32)


def write_files(root: Path, files: Iterable[FileSpec], seconds: float = 0.6) -> list[Path]:
    """Write each file as 16-bit PCM at its native rate; durations vary ±20% around ``seconds``."""
    written = []
    for index, spec in enumerate(files):
        path = Path(root) / spec.path
        path.parent.mkdir(parents=True, exist_ok=True)
        duration = seconds * (0.8 + 0.4 * ((index * 7919) % 101) / 100)
        soundfile.write(path, tone(duration, spec.sample_rate, index), spec.sample_rate, subtype="PCM_16")
        written.append(path)
    return written


def study_union(scale: float = 1.0) -> dict[str, list[FileSpec]]:
    """The four study corpora at full size (12,162 files) or every ``1/scale``-th file of each.

    CREMA-D's download holds 7,442 of the 7,462 name combinations; one of them has no audio (12,161 usable).
    """
    full = {"ravdess": ravdess_files(), "crema_d": crema_d_files()[:7442], "tess": tess_files(), "savee": savee_files()}
    step = max(1, round(1 / scale))
    return {name: files[::step] for name, files in full.items()}

"""Emotion prediction for audio files with a published SER model: one row per file, errors as rows too."""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import numpy as np
import torch

from finser.data.audio import SAMPLE_RATE, AudioError, load_audio
from finser.errors import FinserError
from finser.models.checkpoint import load_model

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff", ".au", ".w64", ".caf"}


@dataclass
class Prediction:
    """One scored file or window; ``error`` is set (and the rest empty) when the file could not be scored."""

    path: str
    emotion: str = ""
    probability: float = float("nan")
    probabilities: dict[str, float] = field(default_factory=dict)
    error: str = ""


def audio_files(target: str | Path) -> list[Path]:
    """A file as given, or every audio file under a folder (recursively, sorted)."""
    target = Path(target)
    if not target.exists():
        raise FinserError(f"audio path {str(target)!r} does not exist")
    if target.is_file():
        return [target]
    files = sorted(path for path in target.rglob("*") if path.is_file() and path.suffix.lower() in AUDIO_SUFFIXES)
    if not files:
        raise FinserError(f"folder {str(target)!r} has no audio files ({', '.join(sorted(AUDIO_SUFFIXES))})")
    return files


def windows(signal: np.ndarray, clip_samples: int | None) -> list[tuple[int, np.ndarray]]:
    """The clip length the model was trained on, sliding by half a clip; the last window is zero-padded."""
    if not clip_samples:
        return [(0, signal)]
    hop = clip_samples // 2
    starts = range(0, max(len(signal) - clip_samples, 0) + hop, hop) if len(signal) > clip_samples else [0]
    out = []
    for start in starts:
        piece = signal[start : start + clip_samples]
        out.append((start, np.pad(piece, (0, clip_samples - len(piece)))))
    return out


class EmotionPredictor:
    """Loads an SER checkpoint once and scores files: probabilities averaged over a file's windows."""

    def __init__(self, checkpoint: str | Path) -> None:
        self.model, meta = load_model(checkpoint)
        if meta.get("kind") != "ser":
            raise FinserError(
                f"{checkpoint} is a {meta.get('kind')!r} checkpoint; predict needs an SER model, published by "
                "`python train.py experiment=ser_fin_finetuned` (or another ser_* preset) as <run dir>/ser_model.ckpt"
            )
        self.emotions: list[str] = list(meta["emotions"])
        self.clip_samples: int | None = meta.get("clip_samples")

    @torch.no_grad()
    def score(self, signal: np.ndarray) -> list[tuple[int, np.ndarray]]:
        parts = windows(signal, self.clip_samples)
        batch = torch.from_numpy(np.stack([piece for _, piece in parts]).astype(np.float32))
        probabilities = torch.softmax(self.model(batch), dim=-1).numpy()
        return [(start, row) for (start, _), row in zip(parts, probabilities, strict=True)]

    def predict(self, path: Path, list_windows: bool = False) -> list[Prediction]:
        try:
            scored = self.score(load_audio(path))
        except AudioError as error:
            return [Prediction(str(path), error=str(error))]
        rows = [self._row(str(path), np.mean([row for _, row in scored], axis=0))]
        if list_windows:
            span = self.clip_samples or 0
            rows += [self._row(f"{path}#{start / SAMPLE_RATE:.2f}-{(start + span) / SAMPLE_RATE:.2f}s", row)
                     for start, row in scored]  # fmt: skip
        return rows

    def _row(self, name: str, probabilities: np.ndarray) -> Prediction:
        best = int(probabilities.argmax())
        return Prediction(name, self.emotions[best], float(probabilities[best]),
                          dict(zip(self.emotions, map(float, probabilities), strict=True)))  # fmt: skip


def write_predictions(predictions: Iterable[Prediction], emotions: list[str], out: str | Path | None) -> None:
    """CSV rows ``path, emotion, probability, p_<emotion>..., error`` to stdout, and to ``out`` when given."""
    header = ["path", "emotion", "probability", *[f"p_{emotion}" for emotion in emotions], "error"]
    rows = [
        [p.path, p.emotion, "" if p.error else f"{p.probability:.4f}",
         *["" if p.error else f"{p.probabilities[e]:.4f}" for e in emotions], p.error]
        for p in predictions
    ]  # fmt: skip
    _write_csv(sys.stdout, header, rows)
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        with Path(out).open("w", newline="") as handle:
            _write_csv(handle, header, rows)


def _write_csv(handle: TextIO, header: list[str], rows: list[list[object]]) -> None:
    writer = csv.writer(handle)
    writer.writerow(header)
    writer.writerows(rows)

"""Canonical emotion labels and the manifest row every corpus adapter produces."""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass, fields
from pathlib import Path

EMOTIONS: tuple[str, ...] = ("neutral", "calm", "happy", "sad", "angry", "fear", "disgust", "surprise")
EMOTION_INDEX: dict[str, int] = {emotion: index for index, emotion in enumerate(EMOTIONS)}


@dataclass(frozen=True)
class Clip:
    """One manifest row: a labelled audio file. ``split`` is empty until a splitter assigns it."""

    path: str
    corpus: str
    speaker: str
    emotion: str
    split: str = ""


def write_manifest(clips: list[Clip], path: Path) -> None:
    """Write clips as a CSV a person can open; the columns are the Clip fields."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + ".tmp")
    with temporary.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[field.name for field in fields(Clip)])
        writer.writeheader()
        writer.writerows(asdict(clip) for clip in clips)
    temporary.replace(path)


def read_manifest(path: Path) -> list[Clip]:
    """Read a manifest written by :func:`write_manifest`."""
    with Path(path).open(newline="") as handle:
        return [Clip(**row) for row in csv.DictReader(handle)]

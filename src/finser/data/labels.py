"""Canonical emotion labels and the manifest row every corpus adapter produces."""

from __future__ import annotations

import csv
import os
import uuid
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from finser.errors import FinserError

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


def check_manifest_target(path: Path) -> None:
    """Fail before any work when ``path`` cannot become a manifest file: it is a folder, or lies below a file."""
    if path.is_dir():
        raise FinserError(
            f"cannot write manifest={path}: it is a folder: give a file name, e.g. {path / 'manifest.csv'}"
        )
    blocking = next((parent for parent in path.parents if parent.exists()), None)
    if blocking is not None and not blocking.is_dir():
        raise FinserError(f"cannot write manifest={path}: {blocking} is a file, not a folder: choose another path")


def write_manifest(clips: list[Clip], path: Path) -> None:
    """Write clips as a CSV a person can open; the columns are the Clip fields.

    Paths are written absolute, so the manifest reads the same from any working directory. The file appears whole
    or not at all: a failed write removes its temporary file and says why in one line.
    """
    path = Path(path)
    check_manifest_target(path)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")  # unique: two writers may race
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with temporary.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=[field.name for field in fields(Clip)])
            writer.writeheader()
            writer.writerows(asdict(replace(clip, path=os.path.abspath(clip.path))) for clip in clips)
        temporary.replace(path)
    except OSError as error:
        raise FinserError(f"cannot write manifest={path}: {error.strerror}: choose a path you can write to") from error
    finally:
        if temporary.exists():
            temporary.unlink()


def read_manifest(path: Path) -> list[Clip]:
    """Read a manifest written by :func:`write_manifest`; a relative path in it is relative to the manifest's folder."""
    path = Path(path)
    if not path.is_file():
        raise FinserError(
            f"manifest {path} does not exist or is not a file: write it with scripts/prepare_corpora.py "
            f"(see docs/corpora.md)"
        )
    folder = path.parent.absolute()
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [Clip(**{**row, "path": str(folder / row["path"])}) for row in rows]

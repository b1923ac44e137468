"""Canonical emotion labels and the manifest row every corpus adapter produces."""

from __future__ import annotations

import csv
import os
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from finser.errors import FinserError
from finser.outputs import atomic_text, check_no_file_above, check_output

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


MANIFEST_HEADER = ",".join(field.name for field in fields(Clip))


def is_manifest(path: Path) -> bool:
    """Whether ``path`` starts like a manifest :func:`write_manifest` wrote (which a new one may replace)."""
    try:
        with path.open(newline="") as handle:
            return handle.readline().strip() == MANIFEST_HEADER
    except (OSError, UnicodeDecodeError):
        return False


def check_manifest_target(path: Path, overwrite: bool = False) -> None:
    """Fail before any work when ``path`` cannot become a manifest file: a folder, below a file, or an existing file
    that is not a manifest (unless ``overwrite``)."""
    check_no_file_above(path, "manifest", path.parents)
    check_output(path, "manifest", ours=is_manifest, overwrite=overwrite)


def write_manifest(clips: list[Clip], path: Path, overwrite: bool = False) -> None:
    """Write clips as a CSV a person can open; the columns are the Clip fields.

    Paths are written absolute, so the manifest reads the same from any working directory. The file appears whole
    or not at all (:func:`finser.outputs.atomic_text`); a failed write says why in one line.
    """
    path = Path(path)
    check_manifest_target(path, overwrite)
    try:
        with atomic_text(path) as handle:
            writer = csv.DictWriter(handle, fieldnames=[field.name for field in fields(Clip)])
            writer.writeheader()
            writer.writerows(asdict(replace(clip, path=os.path.abspath(clip.path))) for clip in clips)
    except OSError as error:
        raise FinserError(f"cannot write manifest={path}: {error.strerror}: choose a path you can write to") from error


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

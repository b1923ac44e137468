"""Canonical emotion labels, a dataset's chosen label set, and the manifest row every corpus adapter produces."""

from __future__ import annotations

import csv
import logging
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from finser.errors import FinserError
from finser.outputs import atomic_text, check_no_file_above, check_output

log = logging.getLogger(__name__)

EMOTIONS: tuple[str, ...] = ("neutral", "calm", "happy", "sad", "angry", "fear", "disgust", "surprise")
SEGMENT = "#t="  # a clip cut from a longer file: ``<file>#t=<start>,<end>`` in seconds (W3C media-fragment syntax)


def canonical_order(emotions: Iterable[str]) -> tuple[str, ...]:
    """A set of emotion names in :data:`EMOTIONS` order: a union of corpora keeps the study's label order."""
    chosen = set(emotions)
    return tuple(emotion for emotion in EMOTIONS if emotion in chosen)


def check_emotions(emotions: Sequence[str]) -> tuple[str, ...]:
    """``dataset.emotions`` as the label set a head is built for: canonical names, each once, in the order given
    (the order names the head's outputs)."""
    emotions = tuple(str(emotion) for emotion in emotions)
    unknown = [emotion for emotion in emotions if emotion not in EMOTIONS]
    if not emotions or unknown or len(set(emotions)) != len(emotions):
        problem = f"unknown {', '.join(unknown)}" if unknown else "empty" if not emotions else "a name given twice"
        raise FinserError(
            f"dataset.emotions={list(emotions)}: {problem}; expected distinct names from {', '.join(EMOTIONS)}"
        )
    return emotions


def check_labels(clips: Sequence[Clip], emotions: Sequence[str], what: str) -> None:
    """Every clip's emotion must be one of the chosen set: a head cannot score a class it has no output for."""
    outside = Counter(clip.emotion for clip in clips if clip.emotion not in emotions)
    if outside:
        counts = ", ".join(f"{count} × {emotion}" for emotion, count in sorted(outside.items()))
        raise FinserError(
            f"{what} has clips of emotions outside dataset.emotions={list(emotions)} ({counts}): choose a dataset "
            f"whose emotions are a subset of that set, or set dataset.emotions to one that holds them"
        )


def within_emotions(clips: Sequence[Clip], emotions: Sequence[str], what: str) -> list[Clip]:
    """An evaluation corpus's clips of the chosen emotions; the others are left out with one warning line (the
    embedded corpus's eight beside a CREMA-D or IEMOCAP model), and none left is an error."""
    kept = [clip for clip in clips if clip.emotion in emotions]
    outside = Counter(clip.emotion for clip in clips if clip.emotion not in emotions)
    if outside:
        counts = ", ".join(f"{count} × {emotion}" for emotion, count in sorted(outside.items()))
        log.warning("%s: left out %d clips of emotions outside dataset.emotions=%s (%s)", what,
                    sum(outside.values()), list(emotions), counts)  # fmt: skip
    if clips and not kept:
        raise FinserError(f"{what} has no clip of dataset.emotions={list(emotions)}: evaluate on a corpus that has")
    return kept


def segment_path(path: str, start: float, end: float) -> str:
    """The clip path of ``start``..``end`` seconds of ``path``: two cuts of one file are two clips (and cache keys)."""
    return f"{path}{SEGMENT}{start:g},{end:g}"


def split_segment(path: str) -> tuple[str, float, float | None]:
    """``'d.wav#t=6.29,8.24'`` → ``('d.wav', 6.29, 8.24)``; a path without a segment is the whole file (0, None)."""
    source, _, times = path.partition(SEGMENT)
    if not times:
        return source, 0.0, None
    start, end = times.split(",")
    return source, float(start), float(end)


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

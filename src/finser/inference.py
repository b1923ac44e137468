"""Emotion prediction for audio files with a published SER model: one row per file, errors as rows too.

Each file is cut as the model's training clips were (the clip spec in ``ser_model.ckpt``): windows of the clip's
length from its offset on (the first window is exactly the training crop), each low-passed at its band limit.
Memory stays bounded whatever a file's length: audio is decoded in blocks (``read_blocks``), cut into the model's
windows as it comes, and scored ``batch_size`` windows per forward pass. Rows are written and flushed as each file
finishes, so a crash keeps the rows already done.
"""

from __future__ import annotations

import csv
import itertools
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO, TypeVar

import numpy as np
import soundfile
import torch
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from finser.data.audio import DECODING_ERRORS, SAMPLE_RATE, AudioError, band_limit, read_blocks, recorded_clip
from finser.errors import FinserError
from finser.models.checkpoint import load_model
from finser.outputs import atomic_text

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff", ".au", ".w64", ".caf"}
BATCH_SIZE = 32  # windows per forward pass: predict.py peaks at 0.5-0.6 GB at any length (bench.py section 6)
SILENCE_LEVEL = 1e-4  # |x| below this is digital silence (-80 dBFS; 16-bit audio's last bit is 3e-5)
MOSTLY = 0.8  # warn when more than this share of what the model hears is digital silence or zero padding
Item = TypeVar("Item")


@dataclass
class Prediction:
    """One scored file or window; ``error`` is set (and the rest empty) when the file could not be scored;
    ``warning`` says why a prediction may mean little (the model heard mostly silence or padding)."""

    path: str
    emotion: str = ""
    probability: float = float("nan")
    probabilities: dict[str, float] = field(default_factory=dict)
    error: str = ""
    warning: str = ""


@dataclass
class Tally:
    """How many samples of a file the model heard, how many of them were digital silence, and where they began."""

    samples: int = 0
    silent: int = 0
    start: int = 0  # the offset, or 0 for a file that ends before it


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


def window_count(n_samples: torch.Tensor, clip_samples: int) -> torch.Tensor:
    """How many windows a signal of ``n_samples`` is scored on: the fewest windows of ``clip_samples``, every half
    clip, whose last reaches the signal's end (at least one; the last is zero-padded). Tensor in, tensor out: the
    exported model (:func:`finser.export.signal_windows`) computes it from its input's traced length, so predict.py
    and the exported graph follow this one rule."""
    hop = clip_samples // 2
    beyond = (n_samples - clip_samples).clamp(min=0)
    return 1 + (beyond + hop - 1) // hop


def windows(blocks: Iterable[np.ndarray], clip_samples: int | None) -> Iterator[tuple[int, np.ndarray]]:
    """The clip length the model was trained on, sliding by half a clip, as many windows as :func:`window_count`
    says; the last window is zero-padded. Holds one window and one block at a time (no clip length: the whole
    signal, one window)."""
    if not clip_samples:
        yield 0, np.concatenate(list(blocks))
        return
    hop = clip_samples // 2
    buffer, start, count = np.zeros(0, np.float32), 0, 0  # the signal from sample `start` on, not yet scored
    for block in blocks:
        buffer = np.concatenate([buffer, block])
        while buffer.size >= clip_samples:
            yield start, buffer[:clip_samples]
            buffer, start, count = buffer[hop:], start + hop, count + 1
    if window_count(torch.tensor(start + buffer.size), clip_samples) > count:  # the end lies past the last window
        yield start, np.pad(buffer, (0, clip_samples - buffer.size))


def batched(items: Iterable[Item], size: int) -> Iterator[list[Item]]:
    """Lists of ``size`` items (the last may be shorter): ``itertools.batched`` before Python 3.12."""
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def reported(blocks: Iterable[np.ndarray], advance: Callable[[float], None]) -> Iterator[np.ndarray]:
    """The blocks unchanged, reported to ``advance`` (seconds decoded) as they pass."""
    for block in blocks:
        advance(block.size / SAMPLE_RATE)
        yield block


def from_offset(blocks: Iterable[np.ndarray], offset: int, tally: Tally) -> Iterator[np.ndarray]:
    """The signal from sample ``offset`` on, where training's crop starts; a file that ends before it is heard
    whole from its start (as the crop keeps a full-length clip), and ``tally.start`` says which it was."""
    held: list[np.ndarray] = []
    seen = 0
    for block in blocks:
        if seen < offset:
            held.append(block)
            seen += block.size
            if seen < offset:
                continue
            block, held, tally.start = np.concatenate(held)[offset:], [], offset
        yield block
    yield from held  # left only when the file ended before the offset


def tallied(blocks: Iterable[np.ndarray], tally: Tally) -> Iterator[np.ndarray]:
    """The blocks unchanged, counted into ``tally`` as they pass."""
    for block in blocks:
        tally.samples += block.size
        tally.silent += int(np.count_nonzero(np.abs(block) < SILENCE_LEVEL))
        yield block


def warning_for(tally: Tally, clip_samples: int | None, offset: int = 0) -> str:
    """Why a prediction may mean little: the model heard mostly digital silence, or mostly the zeros that pad a
    file shorter than its clip, or a file that ends before the offset its training clips were cut from."""
    warnings = []
    if tally.start < offset:
        warnings.append(
            f"short of the offset: the file ends before the model's {offset / SAMPLE_RATE:.2f}-s offset, so it was "
            "scored from its start"
        )
    if tally.silent > MOSTLY * tally.samples:
        share = tally.silent / tally.samples
        warnings.append(f"mostly silence: {share:.0%} of the samples are digital silence (|x| < {SILENCE_LEVEL:g})")
    if clip_samples and tally.samples < (1 - MOSTLY) * clip_samples:
        after = f" after the {tally.start / SAMPLE_RATE:.2f}-s offset" if tally.start else ""
        warnings.append(
            f"mostly padding: the file is {tally.samples / SAMPLE_RATE:.2f} s{after}, the model's clip is "
            f"{clip_samples / SAMPLE_RATE:.2f} s"
        )
    return "; ".join(warnings)


def ignore(seconds: float) -> None:
    """No progress to report."""


class EmotionPredictor:
    """Loads an SER checkpoint once and scores files: probabilities averaged over a file's windows."""

    def __init__(self, checkpoint: str | Path, batch_size: int = BATCH_SIZE) -> None:
        self.model, meta = load_model(checkpoint)
        if meta.get("kind") != "ser":
            raise FinserError(
                f"{checkpoint} is a {meta.get('kind')!r} checkpoint; predict needs an SER model, published by "
                "`python train.py experiment=ser_fin_finetuned` (or another ser_* preset) as <run dir>/ser_model.ckpt"
            )
        self.emotions: list[str] = list(meta["emotions"])
        self.clip = recorded_clip(meta, checkpoint)  # dataset.audio in training: offset, duration, band limit
        self.clip_samples = self.clip.n_samples
        self.offset = round(self.clip.offset * self.clip.sample_rate)
        self.batch_size = batch_size

    @torch.no_grad()
    def score(self, parts: Iterable[tuple[int, np.ndarray]]) -> Iterator[tuple[int, np.ndarray]]:
        """Each window's probabilities, ``batch_size`` windows per forward pass, so memory does not grow with the
        file's length (the model is in eval mode: a window's result does not depend on its batch). Each window is
        low-passed as the model's training clips were (the clip's ``band_limit_hz``; none: full band)."""
        for batch in batched(parts, self.batch_size):
            clips = np.stack([band_limit(part, self.clip.band_limit_hz) for _, part in batch])  # as training cut
            probabilities = torch.softmax(self.model(torch.from_numpy(clips)), dim=-1)
            yield from zip((start for start, _ in batch), probabilities.numpy(), strict=True)

    def predict(
        self, path: Path, list_windows: bool = False, advance: Callable[[float], None] = ignore
    ) -> list[Prediction]:
        """The file's row and, with ``list_windows``, one row per window; ``advance`` hears the seconds decoded."""
        tally = Tally()
        heard = tallied(from_offset(reported(read_blocks(path), advance), self.offset, tally), tally)
        try:
            scored = list(self.score(windows(heard, self.clip_samples)))
        except AudioError as error:
            return [Prediction(str(path), error=str(error))]
        mean = np.mean([row for _, row in scored], axis=0)
        rows = [self._row(str(path), mean, warning_for(tally, self.clip_samples, self.offset))]
        if list_windows:
            span = self.clip_samples or 0
            rows += [self._row(f"{path}#{(tally.start + start) / SAMPLE_RATE:.2f}-"
                               f"{(tally.start + start + span) / SAMPLE_RATE:.2f}s", row)
                     for start, row in scored]  # fmt: skip
        return rows

    def _row(self, name: str, probabilities: np.ndarray, warning: str = "") -> Prediction:
        best = int(probabilities.argmax())
        named = dict(zip(self.emotions, map(float, probabilities), strict=True))
        return Prediction(name, self.emotions[best], float(probabilities[best]), named, warning=warning)


HEADER_START = "path,emotion,probability,"  # how a predictions file finser wrote begins


def is_predictions_file(path: Path) -> bool:
    """Whether ``path`` starts like a CSV of predictions finser wrote (which predict may replace)."""
    try:
        with path.open(newline="") as handle:
            return handle.readline(len(HEADER_START)) == HEADER_START
    except (OSError, UnicodeDecodeError):
        return False


class PredictionWriter:
    """CSV rows ``path, emotion, probability, p_<emotion>..., error, warning`` to stdout, and to ``out`` when given,
    flushed as each file's rows come. ``out`` is written under a temporary name beside it and renamed when every file
    is done (:func:`finser.outputs.atomic_text`); after a crash the rows done are in that ``.partial`` file."""

    def __init__(self, emotions: list[str], out: str | Path | None) -> None:
        self.emotions = emotions
        self.file: TextIO | None = None
        self._target = None if out is None else atomic_text(out, keep_partial=True)
        if self._target is not None:
            try:
                self.file = self._target.__enter__()
            except OSError as error:
                message = f"out={str(out)!r} cannot be written ({error.strerror}): pass a writable path"
                raise FinserError(message) from error
        self._write([["path", "emotion", "probability", *[f"p_{emotion}" for emotion in emotions], "error", "warning"]])

    def write(self, predictions: Iterable[Prediction]) -> None:
        self._write([
            [p.path, p.emotion, "" if p.error else f"{p.probability:.4f}",
             *["" if p.error else f"{p.probabilities[e]:.4f}" for e in self.emotions], p.error, p.warning]
            for p in predictions
        ])  # fmt: skip

    def _write(self, rows: list[list[object]]) -> None:
        for handle in (sys.stdout, self.file):  # sys.stdout looked up now: a progress bar may have wrapped it
            if handle is not None:
                csv.writer(handle).writerows(rows)
                handle.flush()

    def __enter__(self) -> PredictionWriter:
        return self

    def __exit__(self, *exception: object) -> None:
        if self._target is not None:
            self._target.__exit__(*exception)


def duration(path: Path) -> float:
    """Seconds of audio in a file by its header, 0 when it has none (it will get an error row)."""
    try:
        return soundfile.info(str(path)).duration
    except (*DECODING_ERRORS, OSError):
        return 0.0


@contextmanager
def progress_bar(files: list[Path], console: Console) -> Iterator[Callable[[Path, float], None]]:
    """A bar of the seconds of audio decoded, on ``console`` when it is a terminal, and nothing otherwise (a pipe,
    a log file); it yields ``advance(path, seconds)``. CSV rows printed meanwhile to a terminal go above the bar."""
    show = console.is_terminal
    columns = (TextColumn("{task.description}"), BarColumn(),
               TextColumn("{task.completed:.1f}/{task.total:.1f} s of audio"), TimeRemainingColumn())  # fmt: skip
    with Progress(*columns, console=console, disable=not show, transient=True, redirect_stdout=sys.stdout.isatty(),
                  redirect_stderr=False) as progress:  # fmt: skip
        task = progress.add_task("scoring", total=sum(map(duration, files)) if show else None)
        yield lambda path, seconds: progress.update(task, advance=seconds, description=path.name)

"""Audio I/O: any file soundfile reads → mono float32 at 22,050 Hz, or an AudioError saying why not.

Then the study's crop (offset 0.6 s, 2.5 s, zero-padded to exactly 55,125 samples) or the full length, and an
optional band limit. :class:`AudioSpec` holds these choices; its hash names the decoded cache.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import stat
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
import soxr

from finser.errors import FinserError

# The signal conventions every part of finser shares (features, frames, FIN inputs), defined here, the lowest layer.
SAMPLE_RATE = 22_050
N_FFT = 2048  # one analysis window: one FIN input
HOP_LENGTH = 512
MIN_SAMPLES = N_FFT  # a clip shorter than one window has no frame
LFS_MAGIC = b"version https://git-lfs"
BLOCK_FRAMES = 1 << 16  # frames decoded at a time: 3 s at 22,050 Hz, 0.5 MB of float32 in stereo
DECODING_ERRORS = (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError)
# The sanity rule every reader applies (indexer, cache builder, predict) before decoding a sample: a header outside it
# is refused, never decoded (soxr segfaults resampling a 1 Hz file to 22,050 Hz).
MIN_RATE, MAX_RATE = 4_000, 192_000
MAX_SECONDS = 2 * 3600  # above predict's hour-long benchmark file; decoded in blocks, so memory stays bounded
MAX_CHANNELS = 32


class AudioError(FinserError):
    """A file that cannot be used as a clip; the message is the reason reported beside its path."""


@dataclass(frozen=True)
class AudioSpec:
    """How every clip is prepared: ``duration=None`` keeps the full length (``offset`` still applies)."""

    sample_rate: int = SAMPLE_RATE
    offset: float = 0.0
    duration: float | None = None
    band_limit_hz: float | None = None

    @property
    def n_samples(self) -> int | None:
        """The fixed clip length (55,125 for the study's 2.5 s at 22,050 Hz), or None for full length."""
        return None if self.duration is None else round(self.duration * self.sample_rate)

    def key(self) -> str:
        return hashlib.sha1(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]


STUDY_CROP = AudioSpec(offset=0.6, duration=2.5)  # conf/clip/study.yaml (a test keeps them equal)


def recorded_clip(meta: Mapping[str, Any], source: str | Path = "the checkpoint") -> AudioSpec:
    """How a published SER model's training clips were cut: its ``clip`` record (``asdict`` of its AudioSpec).

    Files published before the whole spec was recorded hold ``sample_rate``, ``offset`` and ``clip_samples`` (later
    also ``band_limit_hz``) flat: they read as what they were trained with, full band where no limit is recorded.
    With none of them, a file is one clip from its start (what predict did with them). Values are data from disk:
    anything else is refused, naming ``source``.
    """
    if "clip" in meta:
        fields = meta["clip"]
    else:
        samples, rate = meta.get("clip_samples"), meta.get("sample_rate", SAMPLE_RATE)
        usable = isinstance(samples, int) and isinstance(rate, int) and samples > 0 and rate > 0
        duration = samples / rate if usable else samples  # None: whole clips
        fields = {"sample_rate": rate, "offset": meta.get("offset", 0.0), "duration": duration,
                  "band_limit_hz": meta.get("band_limit_hz")}  # fmt: skip
    problem = clip_problem(fields)
    if problem:
        raise FinserError(f"{source}: its clip record {fields!r} is not one finser writes ({problem}): republish it")
    return AudioSpec(**fields)


def clip_problem(fields: Any) -> str | None:
    """What is wrong with a recorded clip spec, or None."""
    if not isinstance(fields, Mapping) or set(fields) != {field.name for field in dataclasses.fields(AudioSpec)}:
        return f"expected the keys {', '.join(field.name for field in dataclasses.fields(AudioSpec))}"
    if fields["sample_rate"] != SAMPLE_RATE:
        return f"sample_rate: finser models take {SAMPLE_RATE:,} Hz"
    limits = {"offset": 0.0, "duration": MIN_SAMPLES / SAMPLE_RATE, "band_limit_hz": 0.0}
    for name, low in limits.items():
        value = fields[name]
        number = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        if not (number and value >= low) and (name == "offset" or value is not None):
            return f"{name}: expected a number >= {low:.3g}" + ("" if name == "offset" else " or null")
    return None


def to_mono(samples: np.ndarray) -> np.ndarray:
    """Average channels: soundfile returns (n,) or (n, channels)."""
    return samples.mean(axis=1) if samples.ndim == 2 else samples


def open_audio(path: Path) -> soundfile.SoundFile:
    """The file opened for decoding, or an AudioError naming why it is not audio.

    The file is opened here, once, and its descriptor handed to libsndfile, so a file the user may not read says
    "permission denied" rather than "not readable as audio".
    """
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except FileNotFoundError as error:
        raise AudioError(f"{path}: file does not exist") from error
    except PermissionError as error:
        raise AudioError(f"{path}: permission denied: file not readable") from error
    except OSError as error:  # e.g. a device gone away
        raise AudioError(f"{path}: cannot be opened ({error.strerror})") from error
    try:
        status = os.fstat(descriptor)
        if stat.S_ISDIR(status.st_mode):
            raise AudioError(f"{path}: cannot be opened (Is a directory)")
        if status.st_size == 0:
            raise AudioError(f"{path}: empty file (0 bytes)")
        # A git-lfs pointer (~130-byte text) stands where the audio should be when a repo is cloned without git-lfs.
        if status.st_size <= 1024 and os.pread(descriptor, len(LFS_MAGIC), 0) == LFS_MAGIC:
            raise AudioError(f"{path}: git-lfs pointer file, not audio (clone with git-lfs and run `git lfs pull`)")
    except BaseException:
        os.close(descriptor)
        raise
    try:
        handle = soundfile.SoundFile(descriptor, closefd=True)  # libsndfile closes the descriptor if this fails
    except DECODING_ERRORS as error:
        raise AudioError(f"{path}: not readable as audio ({error})") from error
    try:
        check_header(path, handle.samplerate, handle.frames, handle.channels)
    except AudioError:
        handle.close()
        raise
    return handle


def check_header(path: Path, sample_rate: int, frames: int, channels: int) -> None:
    """Refuse a file whose header is outside what any speech clip can be, before a sample is decoded.

    Any channel count up to :data:`MAX_CHANNELS` (downmixed) and any sample format soundfile reads (8-, 16-, 24-,
    32-bit integer, float, double) are decoded as usual.
    """
    if not MIN_RATE <= sample_rate <= MAX_RATE:
        raise AudioError(
            f"{path}: its header says {sample_rate:,} Hz, outside the {MIN_RATE:,}-{MAX_RATE:,} Hz any speech "
            "recording has (a damaged or mislabelled header): re-export it at its true rate"
        )
    if frames > MAX_SECONDS * sample_rate:
        raise AudioError(
            f"{path}: {frames / sample_rate:,.0f} s is longer than the {MAX_SECONDS:,} s a clip may last: cut it "
            "into shorter files"
        )
    if not 1 <= channels <= MAX_CHANNELS:
        raise AudioError(f"{path}: {channels} channels, outside the 1-{MAX_CHANNELS} finser downmixes")


def native_blocks(handle: soundfile.SoundFile, block_frames: int, path: Path, frames: int = -1) -> Iterator[np.ndarray]:
    """Mono float32 blocks at the file's own rate (``frames`` of them from the current position, -1: to the end); a
    decoding error part-way becomes an AudioError too."""
    try:
        for block in handle.blocks(block_frames, frames=frames, dtype="float32", always_2d=False):
            yield to_mono(block)
    except DECODING_ERRORS as error:
        raise AudioError(f"{path}: not readable as audio ({error})") from error


def read_native(path: str | Path) -> tuple[np.ndarray, int]:
    """Decode one file at its own rate, downmixed to mono float32; raise AudioError naming the problem."""
    with open_audio(Path(path)) as handle:
        samples = np.concatenate([np.zeros(0, np.float32), *native_blocks(handle, BLOCK_FRAMES, Path(path))])
    return samples, int(handle.samplerate)


def segment_frames(handle: soundfile.SoundFile, path: Path, start: float, end: float | None) -> int:
    """Seek to ``start`` seconds and return the frames up to ``end`` (-1: to the end of the file); a segment past the
    file's end is an AudioError, so a label file's wrong times never become silence."""
    if end is None and start == 0:
        return -1
    duration = handle.frames / handle.samplerate
    if not 0 <= start < (duration if end is None else end) <= duration:
        until = "its end" if end is None else f"{end:g} s"
        raise AudioError(f"{path}: segment {start:g} s to {until} is outside the file's {duration:.4f} s")
    handle.seek(round(start * handle.samplerate))
    return -1 if end is None else round(end * handle.samplerate) - round(start * handle.samplerate)


def read_blocks(
    path: str | Path,
    sample_rate: int = SAMPLE_RATE,
    block_frames: int = BLOCK_FRAMES,
    start: float = 0.0,
    end: float | None = None,
) -> Iterator[np.ndarray]:
    """Decode, downmix, check and resample one block at a time, so memory stays bounded however long the file is.

    soxr's stream carries its filter state from block to block: the blocks join to exactly what one
    ``soxr.resample`` of the whole file gives. Blocks may be empty; the length check comes with the last one.
    ``start``/``end`` (seconds) read only that segment, cut at the file's own rate before resampling.
    """
    path = Path(path)
    n_samples = 0
    with open_audio(path) as handle:
        frames = segment_frames(handle, path, start, end)
        stream = soxr.ResampleStream(handle.samplerate, sample_rate, 1, dtype="float32", quality="HQ")
        for block in native_blocks(handle, block_frames, path, frames):
            if not np.isfinite(block).all():  # before resampling: soxr would smear one NaN over its neighbours
                raise AudioError(f"{path}: contains NaN or inf samples")
            resampled = stream.resample_chunk(block)
            n_samples += resampled.size
            yield resampled
        last = stream.resample_chunk(np.zeros(0, np.float32), last=True)
    if n_samples + last.size < MIN_SAMPLES:
        raise AudioError(
            f"{path}: {n_samples + last.size} samples at {sample_rate} Hz is shorter than one {MIN_SAMPLES}-sample "
            "window"
        )
    yield last


def load_audio(
    path: str | Path, sample_rate: int = SAMPLE_RATE, start: float = 0.0, end: float | None = None
) -> np.ndarray:
    """Decode, downmix and resample one file (or its ``start``..``end`` seconds), checked usable as a clip
    (``read_blocks`` joined)."""
    return np.concatenate(list(read_blocks(path, sample_rate, start=start, end=end)))


def fit_length(signal: np.ndarray, n_samples: int) -> np.ndarray:
    """Truncate or zero-pad at the end to exactly ``n_samples``."""
    if signal.size >= n_samples:
        return signal[:n_samples]
    return np.pad(signal, (0, n_samples - signal.size))


def crop(signal: np.ndarray, spec: AudioSpec) -> np.ndarray:
    """The study's ``librosa.load(offset=0.6, duration=2.5)``, zero-padded so every clip has the same length.

    A signal that ends before the offset is cut from its start, as predict scores such a file
    (``inference.from_offset``): the study's load would give only zeros under the clip's emotion label.
    """
    start = round(spec.offset * spec.sample_rate)
    start = start if start < signal.size else 0
    return (
        signal[start:] if spec.n_samples is None else fit_length(signal[start : start + spec.n_samples], spec.n_samples)
    )


def band_limit(signal: np.ndarray, cutoff_hz: float | None, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Low-pass at ``cutoff_hz`` by resampling to twice the cutoff and back with soxr.

    This is the anti-alias filter a 16 kHz corpus went through, so with 8000 Hz every corpus loses the same band
    and the sample rate stops revealing the corpus (the 16 kHz shortcut, see docs/corpora.md).
    """
    if cutoff_hz is None or 2 * cutoff_hz >= sample_rate:
        return signal
    low_rate = int(2 * cutoff_hz)
    restored = soxr.resample(soxr.resample(signal, sample_rate, low_rate, quality="HQ"), low_rate, sample_rate)
    return fit_length(restored.astype(np.float32, copy=False), signal.size)

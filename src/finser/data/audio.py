"""Audio I/O: any file soundfile reads → mono float32 at 22,050 Hz, or an AudioError saying why not.

Then the study's crop (offset 0.6 s, 2.5 s, zero-padded to exactly 55,125 samples) or the full length, and an
optional band limit. :class:`AudioSpec` holds these choices; its hash names the decoded cache.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile
import soxr

from finser.errors import FinserError

SAMPLE_RATE = 22_050
MIN_SAMPLES = 2048  # one analysis window
LFS_MAGIC = b"version https://git-lfs"


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


STUDY_CROP = AudioSpec(offset=0.6, duration=2.5)


def to_mono(samples: np.ndarray) -> np.ndarray:
    """Average channels: soundfile returns (n,) or (n, channels)."""
    return samples.mean(axis=1) if samples.ndim == 2 else samples


def read_native(path: str | Path) -> tuple[np.ndarray, int]:
    """Decode one file at its own rate, downmixed to mono float32; raise AudioError naming the problem.

    The file is opened here, once, so a file the user may not read says so instead of "not readable as audio".
    """
    path = Path(path)
    try:
        handle = path.open("rb", buffering=0)  # unbuffered: libsndfile reads the descriptor from where seek() puts it
    except FileNotFoundError as error:
        raise AudioError(f"{path}: file does not exist") from error
    except PermissionError as error:
        raise AudioError(f"{path}: permission denied: file not readable") from error
    except OSError as error:  # e.g. a folder, or a device gone away
        raise AudioError(f"{path}: cannot be opened ({error.strerror})") from error
    with handle:
        size = os.fstat(handle.fileno()).st_size
        if size == 0:
            raise AudioError(f"{path}: empty file (0 bytes)")
        # A git-lfs pointer (~130-byte text) stands where the audio should be when a repo is cloned without git-lfs.
        if size <= 1024 and handle.read(len(LFS_MAGIC)) == LFS_MAGIC:
            raise AudioError(f"{path}: git-lfs pointer file, not audio (clone with git-lfs and run `git lfs pull`)")
        handle.seek(0)
        try:
            samples, native_rate = soundfile.read(handle.fileno(), dtype="float32", always_2d=False, closefd=False)
        except soundfile.LibsndfileError as error:
            raise AudioError(f"{path}: not readable as audio ({error.error_string})") from error
        except (RuntimeError, TypeError, ValueError) as error:
            raise AudioError(f"{path}: not readable as audio ({error})") from error
    return np.ascontiguousarray(to_mono(samples), dtype=np.float32), int(native_rate)


def resample(samples: np.ndarray, native_rate: int, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    if native_rate == sample_rate or not samples.size:
        return samples
    return soxr.resample(samples, native_rate, sample_rate, quality="HQ").astype(np.float32, copy=False)


def load_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decode, downmix and resample one file, then check it is usable as a clip."""
    samples, native_rate = read_native(path)
    if not np.isfinite(samples).all():  # checked before resampling: soxr would smear one NaN over its neighbours
        raise AudioError(f"{path}: contains NaN or inf samples")
    return check_clip(np.ascontiguousarray(resample(samples, native_rate, sample_rate)), str(path))


def check_clip(samples: np.ndarray, name: str) -> np.ndarray:
    """Reject clips no feature can be computed on: non-finite samples or shorter than one window."""
    if not np.isfinite(samples).all():
        raise AudioError(f"{name}: contains NaN or inf samples")
    if samples.size < MIN_SAMPLES:
        raise AudioError(
            f"{name}: {samples.size} samples at {SAMPLE_RATE} Hz is shorter than one {MIN_SAMPLES}-sample window"
        )
    return samples


def fit_length(signal: np.ndarray, n_samples: int) -> np.ndarray:
    """Truncate or zero-pad at the end to exactly ``n_samples``."""
    if signal.size >= n_samples:
        return signal[:n_samples]
    return np.pad(signal, (0, n_samples - signal.size))


def crop(signal: np.ndarray, spec: AudioSpec) -> np.ndarray:
    """The study's ``librosa.load(offset=0.6, duration=2.5)``, zero-padded so every clip has the same length."""
    start = round(spec.offset * spec.sample_rate)
    if spec.n_samples is None:
        return signal[start:] if start < signal.size else signal
    return fit_length(signal[start : start + spec.n_samples], spec.n_samples)


def band_limit(signal: np.ndarray, cutoff_hz: float | None, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Low-pass at ``cutoff_hz`` by resampling to twice the cutoff and back with soxr.

    This is the anti-alias filter a 16 kHz corpus went through, so with 8000 Hz every corpus loses the same band
    and the sample rate stops revealing the corpus (the 16 kHz shortcut, see datasets.md).
    """
    if cutoff_hz is None or 2 * cutoff_hz >= sample_rate:
        return signal
    low_rate = int(2 * cutoff_hz)
    restored = soxr.resample(soxr.resample(signal, sample_rate, low_rate, quality="HQ"), low_rate, sample_rate)
    return fit_length(restored.astype(np.float32, copy=False), signal.size)


def prepare(signal: np.ndarray, spec: AudioSpec) -> np.ndarray:
    """Crop then band-limit a decoded clip (the original version; augmented ones go through finser.data.augment)."""
    return np.ascontiguousarray(band_limit(crop(signal, spec), spec.band_limit_hz, spec.sample_rate), np.float32)

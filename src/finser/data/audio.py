"""Audio I/O: any file soundfile reads → mono float32 at 22,050 Hz, or an AudioError saying why not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile
import soxr

from finser.errors import FinserError

SAMPLE_RATE = 22_050
MIN_SAMPLES = 2048  # one analysis window


class AudioError(FinserError):
    """A file that cannot be used as a clip; the message is the reason reported beside its path."""


def to_mono(samples: np.ndarray) -> np.ndarray:
    """Average channels: soundfile returns (n,) or (n, channels)."""
    return samples.mean(axis=1) if samples.ndim == 2 else samples


def load_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decode, downmix and resample one file, then check it is usable as a clip."""
    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path}: file does not exist")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: empty file (0 bytes)")
    try:
        samples, native_rate = soundfile.read(path, dtype="float32", always_2d=False)
    except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError) as error:
        raise AudioError(f"{path}: not readable as audio ({error})") from error
    samples = to_mono(samples)
    if native_rate != sample_rate and samples.size:
        samples = soxr.resample(samples, native_rate, sample_rate, quality="HQ")
    return check_clip(np.ascontiguousarray(samples, dtype=np.float32), str(path))


def check_clip(samples: np.ndarray, name: str) -> np.ndarray:
    """Reject clips no feature can be computed on: non-finite samples or shorter than one window."""
    if not np.isfinite(samples).all():
        raise AudioError(f"{name}: contains NaN or inf samples")
    if samples.size < MIN_SAMPLES:
        raise AudioError(
            f"{name}: {samples.size} samples at {SAMPLE_RATE} Hz is shorter than one {MIN_SAMPLES}-sample window"
        )
    return samples

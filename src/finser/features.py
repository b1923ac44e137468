"""Exact per-frame audio features in torch, equal to librosa's with ``center=False``.

Every function takes ``frames``, a float tensor of shape (B, 2048) sampled at 22,050 Hz, and returns (B, dim).
One frame is one analysis window, so a value here is exactly one column of the librosa call named in each
docstring. These are the FINs' regression targets and the baseline's exact features.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import lru_cache

import librosa
import numpy as np
import torch

from finser.errors import FinserError

SAMPLE_RATE = 22_050
N_FFT = 2048
HOP_LENGTH = 512
N_MELS = 128
N_MFCC = 20
N_CHROMA = 12
TOP_DB = 80.0
AMIN = 1e-10
ZCR_THRESHOLD = 1e-10
CPU = torch.device("cpu")

FEATURE_DIMS: dict[str, int] = {"zcr": 1, "rms": 1, "chroma": N_CHROMA, "mfcc": N_MFCC, "melspec": N_MELS}
FEATURES: tuple[str, ...] = tuple(FEATURE_DIMS)


def check_frames(frames: torch.Tensor) -> None:
    """Raise a ValueError naming what was expected when ``frames`` is not a finite (B, 2048) float tensor."""
    if not isinstance(frames, torch.Tensor):
        raise ValueError(f"frames must be a torch.Tensor of shape (B, {N_FFT}), got {type(frames).__name__}")
    if frames.ndim != 2 or frames.shape[-1] != N_FFT:
        raise ValueError(
            f"frames must have shape (B, {N_FFT}) (one {N_FFT}-sample window per row at {SAMPLE_RATE} Hz), "
            f"got {tuple(frames.shape)}"
        )
    if frames.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"frames must be float32 (or float64), got {frames.dtype}")
    if not torch.isfinite(frames).all():
        raise ValueError("frames contain NaN or inf samples: clean or skip the audio they came from")


@lru_cache(maxsize=8)
def _window(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    # scipy.signal.get_window("hann", N, fftbins=True), librosa's default, is the periodic Hann window.
    return torch.hann_window(N_FFT, periodic=True, dtype=dtype, device=device)


@lru_cache(maxsize=8)
def mel_filterbank(device: torch.device = CPU, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """librosa.filters.mel(sr=22050, n_fft=2048, n_mels=128) (Slaney scale and norm), shape (128, 1025)."""
    basis = librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS)
    return torch.from_numpy(basis).to(device=device, dtype=dtype)


@lru_cache(maxsize=8)
def chroma_filterbank(device: torch.device = CPU, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """librosa.filters.chroma(sr=22050, n_fft=2048, tuning=0.0), shape (12, 1025)."""
    basis = librosa.filters.chroma(sr=SAMPLE_RATE, n_fft=N_FFT, n_chroma=N_CHROMA, tuning=0.0)
    return torch.from_numpy(basis).to(device=device, dtype=dtype)


@lru_cache(maxsize=8)
def dct_matrix(device: torch.device = CPU, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The first 20 rows of the orthonormal DCT-II over 128 mel bands (scipy.fft.dct(type=2, norm='ortho'))."""
    n = torch.arange(N_MELS, dtype=torch.float64)
    k = torch.arange(N_MFCC, dtype=torch.float64)[:, None]
    basis = torch.cos(torch.pi * k * (2 * n + 1) / (2 * N_MELS)) * (2.0 / N_MELS) ** 0.5
    basis[0] /= 2**0.5
    return basis.to(device=device, dtype=dtype)


def stft_frames(frames: torch.Tensor) -> torch.Tensor:
    """One STFT column per frame: librosa.stft(frame, n_fft=2048, center=False), shape (B, 1025), complex."""
    return torch.fft.rfft(frames * _window(frames.device, frames.dtype), dim=-1)


def power_spectrum(frames: torch.Tensor) -> torch.Tensor:
    """|STFT|² per frame, shape (B, 1025)."""
    spectrum = stft_frames(frames)
    return spectrum.real.square() + spectrum.imag.square()


def zcr(frames: torch.Tensor) -> torch.Tensor:
    """librosa.feature.zero_crossing_rate(frame_length=2048, hop_length=512, center=False), shape (B, 1).

    librosa zeroes samples with |x| <= 1e-10 and counts sign-bit changes over 2048 positions (the first one is
    padded with "no crossing"), so a sample is negative exactly when x < -1e-10.
    """
    negative = frames < -ZCR_THRESHOLD
    changes = (negative[:, 1:] ^ negative[:, :-1]).sum(dim=-1, keepdim=True)
    return changes.to(frames.dtype) / N_FFT


def rms(frames: torch.Tensor) -> torch.Tensor:
    """librosa.feature.rms(frame_length=2048, hop_length=512, center=False), shape (B, 1)."""
    return frames.square().mean(dim=-1, keepdim=True).sqrt()


def melspec_from_power(power: torch.Tensor) -> torch.Tensor:
    """Project a power spectrum (B, 1025) onto librosa's 128 Slaney mel filters."""
    return power @ mel_filterbank(power.device, power.dtype).T


def melspec(frames: torch.Tensor) -> torch.Tensor:
    """librosa.feature.melspectrogram(sr=22050, n_fft=2048, center=False), power (not dB), shape (B, 128)."""
    return melspec_from_power(power_spectrum(frames))


def mfcc_from_melspec(mel: torch.Tensor) -> torch.Tensor:
    """power_to_db(top_db=80, relative to each frame's own maximum), then DCT-II ortho, 20 coefficients."""
    decibels = 10.0 * torch.log10(mel.clamp_min(AMIN))
    decibels = torch.maximum(decibels, decibels.amax(dim=-1, keepdim=True) - TOP_DB)
    return decibels @ dct_matrix(mel.device, mel.dtype).T


def mfcc(frames: torch.Tensor) -> torch.Tensor:
    """librosa.feature.mfcc(sr=22050, n_mfcc=20, n_fft=2048, center=False) of one frame, shape (B, 20).

    top_db clipping is relative to the frame's own maximum: computed per frame, not per file.
    """
    return mfcc_from_melspec(melspec(frames))


def chroma_from_power(power: torch.Tensor) -> torch.Tensor:
    """Chroma of the magnitude spectrum, each frame scaled to a maximum of 1 (librosa's norm=inf)."""
    raw = power.sqrt() @ chroma_filterbank(power.device, power.dtype).T
    peak = raw.abs().amax(dim=-1, keepdim=True)
    # util.normalize leaves frames whose norm is below the dtype's smallest normal number unscaled.
    peak = torch.where(peak < torch.finfo(power.dtype).tiny, torch.ones_like(peak), peak)
    return raw / peak


def chroma(frames: torch.Tensor) -> torch.Tensor:
    """librosa.feature.chroma_stft(S=|librosa.stft(frame, center=False)|, sr=22050, tuning=0.0), shape (B, 12).

    From the magnitude STFT, as the study and its baseline; tuning fixed at 0.0 so the target depends on the
    window alone (the study left it to be re-estimated per call).
    """
    return chroma_from_power(power_spectrum(frames))


_FROM_FRAMES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "zcr": zcr,
    "rms": rms,
    "chroma": chroma,
    "mfcc": mfcc,
    "melspec": melspec,
}


def check_feature(feature: str) -> None:
    """Raise a FinserError listing the known features when ``feature`` is not one."""
    if feature not in FEATURE_DIMS:
        raise FinserError(f"unknown feature {feature!r}: expected one of {', '.join(FEATURES)}")


def compute(feature: str, frames: torch.Tensor) -> torch.Tensor:
    """One feature of each frame: ``frames`` (B, 2048) float at 22,050 Hz → (B, dim), librosa's per-frame value."""
    check_feature(feature)
    check_frames(frames)
    return _FROM_FRAMES[feature](frames)


def compute_all(frames: torch.Tensor, features: Iterable[str] = FEATURES) -> dict[str, torch.Tensor]:
    """Several features of each frame, the spectrum computed once for all of them.

    Returns a dict name → (B, dim) with the same values as :func:`compute`; all five give the baseline's 162
    values per frame.
    """
    features = tuple(features)
    for feature in features:
        check_feature(feature)
    check_frames(frames)
    out: dict[str, torch.Tensor] = {}
    power = power_spectrum(frames) if {"chroma", "mfcc", "melspec"} & set(features) else None
    mel = melspec_from_power(power) if {"mfcc", "melspec"} & set(features) else None
    from_shared = {
        "zcr": lambda: zcr(frames),
        "rms": lambda: rms(frames),
        "chroma": lambda: chroma_from_power(power),
        "mfcc": lambda: mfcc_from_melspec(mel),
        "melspec": lambda: mel,
    }
    for feature in features:
        out[feature] = from_shared[feature]()
    return out


def frame_signal(signal: torch.Tensor) -> torch.Tensor:
    """All 2048-sample windows of a clip at hop 512 (center=False), as a strided view: no overlapping copies."""
    if signal.shape[-1] < N_FFT:
        raise ValueError(f"a clip needs at least {N_FFT} samples for one frame, got {signal.shape[-1]}")
    return signal.unfold(-1, N_FFT, HOP_LENGTH)


def reference_features(frame: np.ndarray) -> dict[str, np.ndarray]:
    """librosa's own values for one 2048-sample frame: the ground truth tests and benchmarks compare against."""
    kwargs = {"n_fft": N_FFT, "hop_length": HOP_LENGTH, "center": False}
    magnitude = np.abs(librosa.stft(frame, **kwargs))
    return {
        "zcr": librosa.feature.zero_crossing_rate(frame, frame_length=N_FFT, hop_length=HOP_LENGTH, center=False)[:, 0],
        "rms": librosa.feature.rms(y=frame, frame_length=N_FFT, hop_length=HOP_LENGTH, center=False)[:, 0],
        "chroma": librosa.feature.chroma_stft(S=magnitude, sr=SAMPLE_RATE, tuning=0.0, n_fft=N_FFT)[:, 0],
        "mfcc": librosa.feature.mfcc(y=frame, sr=SAMPLE_RATE, n_mfcc=N_MFCC, **kwargs)[:, 0],
        "melspec": librosa.feature.melspectrogram(y=frame, sr=SAMPLE_RATE, n_mels=N_MELS, **kwargs)[:, 0],
    }

"""Exact per-frame audio features in torch, equal to librosa's with ``center=False``.

Every function takes ``frames``, a float tensor of shape (B, 2048) sampled at 22,050 Hz, and returns (B, dim).
One frame is one analysis window, so a value here is exactly one column of the librosa call named in each
docstring. These are the FINs' regression targets and the baseline's exact features.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from functools import lru_cache

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
# Frames per pass on CPU: a chunk's windowed frames, spectra and ZCR temporaries (~1 MiB each) stay in cache,
# where one pass over a whole large batch would stream every intermediate through memory.
CHUNK_FRAMES = 256
# Cost of one extra dense block in the banded mel product, in multiply-accumulates per frame: one more BLAS call
# (~10 µs) on a file of ~100 frames costs about what 4 k multiply-adds per frame do in these thin products.
MEL_BLOCK_COST = 4000

N_BINS = N_FFT // 2 + 1
MelBlock = tuple[int, int, torch.Tensor]  # first FFT bin, stop bin, weights (bands in the block, stop - first)

FEATURE_DIMS: dict[str, int] = {"zcr": 1, "rms": 1, "chroma": N_CHROMA, "mfcc": N_MFCC, "melspec": N_MELS}
FEATURES: tuple[str, ...] = tuple(FEATURE_DIMS)


class ChunkBuffers:
    """Work arrays for the chunks of one call, allocated on first use and reused by every chunk.

    Fresh MiB-sized temporaries per chunk make the allocator hand memory back to the kernel and fault it in
    again (~1,000 page faults a chunk, as much system time as the arithmetic); writing into these does not.
    Functions given ``buffers`` write through ``out=`` (no autograd); without it they are plain functional ops.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.arrays: dict[str, torch.Tensor] = {}

    def get(self, name: str, like: torch.Tensor, width: int, dtype: torch.dtype | None = None) -> torch.Tensor:
        """The first ``len(like)`` rows of the (capacity, width) array ``name``."""
        array = self.arrays.get(name)
        if array is None:
            array = like.new_empty(self.capacity, width, dtype=dtype or like.dtype)
            self.arrays[name] = array
        return array[: len(like)]


def _out(
    buffers: ChunkBuffers | None, name: str, like: torch.Tensor, width: int, dtype: torch.dtype | None = None
) -> torch.Tensor | None:
    return None if buffers is None else buffers.get(name, like, width, dtype)


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
    # The batch's sum is finite when all its samples are (NaN and inf propagate); only a non-finite sum, which
    # could also be an overflow of huge finite samples, pays for the exact check. The sum reads overlapping
    # frame views in place, where isfinite(frames).all() would build a (B, 2048) boolean array.
    if not math.isfinite(float(frames.sum())) and not bool(torch.isfinite(frames).all()):
        raise ValueError("frames contain NaN or inf samples: clean or skip the audio they came from")


@lru_cache(maxsize=8)
def _window(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    # scipy.signal.get_window("hann", N, fftbins=True), librosa's default, is the periodic Hann window.
    return torch.hann_window(N_FFT, periodic=True, dtype=dtype, device=device)


@lru_cache(maxsize=8)
def mel_filterbank(device: torch.device = CPU, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """librosa.filters.mel(sr=22050, n_fft=2048, n_mels=128) (Slaney scale and norm), shape (128, 1025)."""
    import librosa  # lazily: librosa's filters cost ~1 s of imports, paid only when a filterbank is first built

    basis = librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS)
    return torch.from_numpy(basis).to(device=device, dtype=dtype)


@lru_cache(maxsize=8)
def chroma_filterbank(device: torch.device = CPU, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """librosa.filters.chroma(sr=22050, n_fft=2048, tuning=0.0), shape (12, 1025)."""
    import librosa

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


@lru_cache(maxsize=8)
def mel_blocks(device: torch.device = CPU, dtype: torch.dtype = torch.float32) -> tuple[MelBlock, ...]:
    """The mel filterbank as a few dense blocks ``(first_bin, stop_bin, weights (n_bands, stop - first))``.

    98.5% of the (128, 1025) filterbank is zero: each triangle spans a few bins. Consecutive filters are grouped
    (by dynamic programming over the nonzero bin range of each group, each block costing ``MEL_BLOCK_COST``
    extra) so the projection does ~23 k multiply-adds per frame in 5 BLAS calls instead of 131 k in one; the
    blocks, concatenated in order, give the 128 bands, and the skipped products are exact zeros.
    """
    basis = mel_filterbank(device, dtype)
    nonzero = (basis != 0).cpu().numpy()
    first = nonzero.argmax(axis=1)
    stop = basis.shape[1] - nonzero[:, ::-1].argmax(axis=1)
    n_bands = basis.shape[0]
    best_cost = [0.0] + [math.inf] * n_bands
    best_start = [0] * (n_bands + 1)
    for end in range(1, n_bands + 1):
        for start in range(end):
            width = int(stop[start:end].max() - first[start:end].min())
            cost = best_cost[start] + (end - start) * width + MEL_BLOCK_COST
            if cost < best_cost[end]:
                best_cost[end], best_start[end] = cost, start
    groups, end = [], n_bands
    while end > 0:
        groups.append((best_start[end], end))
        end = best_start[end]
    blocks = []
    for start, end in reversed(groups):
        low, high = int(first[start:end].min()), int(stop[start:end].max())
        blocks.append((low, high, basis[start:end, low:high].contiguous()))
    return tuple(blocks)


@lru_cache(maxsize=8)
def _chroma_projection(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    # (1025, 12): magnitudes (B, 1025) @ this gives chroma rows directly, no transposed copy.
    return chroma_filterbank(device, dtype).T.contiguous()


@lru_cache(maxsize=8)
def _decibel_dct(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    # (128, 20): the DCT of decibels (10 · log10) applied to log10 values, so the dB scaling costs no pass.
    return (10.0 * dct_matrix(device, dtype)).T.contiguous()


def stft_frames(frames: torch.Tensor, buffers: ChunkBuffers | None = None) -> torch.Tensor:
    """One STFT column per frame: librosa.stft(frame, n_fft=2048, center=False), shape (B, 1025), complex."""
    windowed = torch.mul(frames, _window(frames.device, frames.dtype), out=_out(buffers, "windowed", frames, N_FFT))
    return torch.fft.rfft(windowed, dim=-1)


def power_spectrum(frames: torch.Tensor, buffers: ChunkBuffers | None = None) -> torch.Tensor:
    """|STFT|² per frame, shape (B, 1025).

    Squares the interleaved (re, im) pairs of ``view_as_real`` in one contiguous pass, then adds the pairs:
    ``spectrum.real`` and ``.imag`` are stride-2 views whose elementwise ops run ~2× slower.
    """
    pairs = torch.view_as_real(stft_frames(frames, buffers))
    squares = pairs.square() if buffers is None else pairs.square_()
    return torch.add(squares[..., 0], squares[..., 1], out=_out(buffers, "power", frames, N_BINS))


def zcr(frames: torch.Tensor, buffers: ChunkBuffers | None = None, out: torch.Tensor | None = None) -> torch.Tensor:
    """librosa.feature.zero_crossing_rate(frame_length=2048, hop_length=512, center=False), shape (B, 1).

    librosa zeroes samples with |x| <= 1e-10 and counts sign-bit changes over 2048 positions (the first one is
    padded with "no crossing"), so a sample is negative exactly when x < -1e-10. Signs as floats 0/1, a
    crossing is a step of ±1 between neighbours; counting |steps| in floats is exact (< 2^24) and runs ~2×
    faster than comparing and summing booleans.
    """
    if buffers is None:
        negative = (frames < -ZCR_THRESHOLD).to(frames.dtype)
    else:
        negative = torch.lt(frames, -ZCR_THRESHOLD, out=buffers.get("negative", frames, N_FFT))
    steps = torch.sub(negative[:, 1:], negative[:, :-1], out=_out(buffers, "steps", frames, N_FFT - 1))
    return torch.sum(steps.abs_(), dim=-1, keepdim=True, out=out).div_(N_FFT)


def rms(frames: torch.Tensor) -> torch.Tensor:
    """librosa.feature.rms(frame_length=2048, hop_length=512, center=False), shape (B, 1).

    sqrt(mean(x²)) as ‖x‖₂ / sqrt(2048): one fused reduction, no squared copy of the frames.
    """
    return torch.linalg.vector_norm(frames, dim=-1, keepdim=True) / math.sqrt(N_FFT)


def melspec_from_power(power: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """Project a power spectrum (B, 1025) onto librosa's 128 Slaney mel filters (the nonzero blocks only).

    Computed as filters @ powerᵀ, (128, B), into ``out``'s transposed view or returned as one: BLAS runs these
    thin products ~1.5× faster that way round than power @ filtersᵀ.
    """
    blocks = mel_blocks(power.device, power.dtype)
    bands = [weights @ power[:, low:high].T for low, high, weights in blocks]
    return torch.cat(bands).T if out is None else torch.cat(bands, out=out.T).T


def melspec(frames: torch.Tensor) -> torch.Tensor:
    """librosa.feature.melspectrogram(sr=22050, n_fft=2048, center=False), power (not dB), shape (B, 128)."""
    return melspec_from_power(power_spectrum(frames))


def mfcc_from_melspec(
    mel: torch.Tensor, buffers: ChunkBuffers | None = None, out: torch.Tensor | None = None
) -> torch.Tensor:
    """power_to_db(top_db=80, relative to each frame's own maximum), then DCT-II ortho, 20 coefficients.

    Clipped in log10 units (top_db / 10 below the maximum); the DCT matrix carries the factor 10.
    """
    logs = torch.clamp_min(mel, AMIN, out=_out(buffers, "log_mel", mel, N_MELS))
    logs = logs.log10() if buffers is None else logs.log10_()
    floor = logs.amax(dim=-1, keepdim=True) - TOP_DB / 10
    logs = torch.maximum(logs, floor, out=None if buffers is None else logs)
    return torch.mm(logs, _decibel_dct(mel.device, mel.dtype), out=out)


def mfcc(frames: torch.Tensor) -> torch.Tensor:
    """librosa.feature.mfcc(sr=22050, n_mfcc=20, n_fft=2048, center=False) of one frame, shape (B, 20).

    top_db clipping is relative to the frame's own maximum: computed per frame, not per file.
    """
    return mfcc_from_melspec(melspec(frames))


def chroma_from_power(
    power: torch.Tensor, buffers: ChunkBuffers | None = None, out: torch.Tensor | None = None
) -> torch.Tensor:
    """Chroma of the magnitude spectrum, each frame scaled to a maximum of 1 (librosa's norm=inf)."""
    magnitude = torch.sqrt(power, out=_out(buffers, "magnitude", power, N_BINS))
    raw = torch.mm(magnitude, _chroma_projection(power.device, power.dtype), out=out)
    peak = raw.amax(dim=-1, keepdim=True)  # weights and magnitudes are >= 0: the max is the max of |raw|
    # util.normalize leaves frames whose norm is below the dtype's smallest normal number unscaled.
    peak = torch.where(peak < torch.finfo(power.dtype).tiny, 1.0, peak)
    return raw / peak if buffers is None else raw.div_(peak)


def chroma(frames: torch.Tensor) -> torch.Tensor:
    """librosa.feature.chroma_stft(S=|librosa.stft(frame, center=False)|, sr=22050, tuning=0.0), shape (B, 12).

    From the magnitude STFT, as the study and its baseline; tuning fixed at 0.0 so the target depends on the
    window alone (the study left it to be re-estimated per call).
    """
    return chroma_from_power(power_spectrum(frames))


def check_feature(feature: str) -> None:
    """Raise a FinserError listing the known features when ``feature`` is not one."""
    if feature not in FEATURE_DIMS:
        raise FinserError(f"unknown feature {feature!r}: expected one of {', '.join(FEATURES)}")


def compute(feature: str, frames: torch.Tensor) -> torch.Tensor:
    """One feature of each frame: ``frames`` (B, 2048) float at 22,050 Hz → (B, dim), librosa's per-frame value."""
    check_feature(feature)
    return compute_all(frames, (feature,))[feature]


def compute_all(frames: torch.Tensor, features: Iterable[str] = FEATURES) -> dict[str, torch.Tensor]:
    """Several features of each frame, the spectrum computed once for all of them.

    Returns a dict name → (B, dim) with the same values as :func:`compute`; all five give the baseline's 162
    values per frame. On CPU the batch goes through in chunks of ``CHUNK_FRAMES`` whose intermediates stay in
    cache, reuse one set of buffers and are written straight into the outputs' rows (``compute`` takes the same
    path, so the two agree bit for bit). Frames that need a gradient, or on an accelerator, go through in one
    functional pass.
    """
    features = tuple(features)
    for feature in features:
        check_feature(feature)
    check_frames(frames)
    spectral = tuple(feature for feature in features if feature != "rms")
    if frames.device.type != "cpu" or (frames.requires_grad and torch.is_grad_enabled()):
        out = {feature: value.contiguous() for feature, value in _features_of_chunk(frames, spectral, None).items()}
    else:
        out = {feature: frames.new_empty(len(frames), FEATURE_DIMS[feature]) for feature in spectral}
        chunk = max(1, min(CHUNK_FRAMES, len(frames)))
        buffers = ChunkBuffers(chunk)
        for start in range(0, len(frames), chunk):
            rows = {feature: value[start : start + chunk] for feature, value in out.items()}
            _features_of_chunk(frames[start : start + chunk], spectral, buffers, rows)
    if "rms" in features:
        out["rms"] = rms(frames)  # one reduction over the whole batch: no intermediates to keep in cache
    return {feature: out[feature] for feature in features}


def _features_of_chunk(
    frames: torch.Tensor,
    features: tuple[str, ...],
    buffers: ChunkBuffers | None,
    rows: dict[str, torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """ZCR and the spectral features of ``frames``, written into ``rows`` when given (with buffers)."""
    rows = rows or {}
    wanted = set(features)
    power = power_spectrum(frames, buffers) if {"chroma", "mfcc", "melspec"} & wanted else None
    if {"mfcc", "melspec"} & wanted:
        mel = melspec_from_power(power, out=rows.get("melspec"))
    from_shared = {
        "zcr": lambda: zcr(frames, buffers, out=rows.get("zcr")),
        "chroma": lambda: chroma_from_power(power, buffers, out=rows.get("chroma")),
        "mfcc": lambda: mfcc_from_melspec(mel, buffers, out=rows.get("mfcc")),
        "melspec": lambda: mel,
    }
    return {feature: from_shared[feature]() for feature in features}


def frame_signal(signal: torch.Tensor) -> torch.Tensor:
    """All 2048-sample windows of a clip at hop 512 (center=False), as a strided view: no overlapping copies."""
    if signal.shape[-1] < N_FFT:
        raise ValueError(f"a clip needs at least {N_FFT} samples for one frame, got {signal.shape[-1]}")
    return signal.unfold(-1, N_FFT, HOP_LENGTH)


def reference_features(frame: np.ndarray) -> dict[str, np.ndarray]:
    """librosa's own values for one 2048-sample frame: the ground truth tests and benchmarks compare against."""
    import librosa

    kwargs = {"n_fft": N_FFT, "hop_length": HOP_LENGTH, "center": False}
    magnitude = np.abs(librosa.stft(frame, **kwargs))
    return {
        "zcr": librosa.feature.zero_crossing_rate(frame, frame_length=N_FFT, hop_length=HOP_LENGTH, center=False)[:, 0],
        "rms": librosa.feature.rms(y=frame, frame_length=N_FFT, hop_length=HOP_LENGTH, center=False)[:, 0],
        "chroma": librosa.feature.chroma_stft(S=magnitude, sr=SAMPLE_RATE, tuning=0.0, n_fft=N_FFT)[:, 0],
        "mfcc": librosa.feature.mfcc(y=frame, sr=SAMPLE_RATE, n_mfcc=N_MFCC, **kwargs)[:, 0],
        "melspec": librosa.feature.melspectrogram(y=frame, sr=SAMPLE_RATE, n_mels=N_MELS, **kwargs)[:, 0],
    }

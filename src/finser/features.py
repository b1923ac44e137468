"""Exact per-frame audio features, equal to librosa's with ``center=False``.

Every function takes ``frames``, a float tensor of shape (B, 2048) sampled at 22,050 Hz, and returns (B, dim).
One frame is one analysis window, so a value here is exactly one column of the librosa call named in each
docstring. These are the FINs' regression targets and the baseline's exact features. On CPU they are computed by
compiled loops around torch's FFT (``finser.feature_kernels``); on an accelerator, or with a gradient, by the torch
functions below. Both are tested against librosa.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import NamedTuple

import numpy as np
import torch

from finser.data.audio import HOP_LENGTH, N_FFT, SAMPLE_RATE
from finser.errors import FinserError

N_MELS = 128
N_MFCC = 20
N_CHROMA = 12
TOP_DB = 80.0
TOP_DB_RATIO = 10.0 ** (-TOP_DB / 10)  # power_to_db's top_db as a ratio of powers
AMIN = 1e-10
ZCR_THRESHOLD = 1e-10
CPU = torch.device("cpu")
# Frames per pass on CPU: a chunk's windowed frames, spectra and magnitudes (~0.5-1 MiB each) stay in L2, where one
# pass over a whole large batch would stream every intermediate through memory (64-128 measured fastest).
CHUNK_FRAMES = 128

N_BINS = N_FFT // 2 + 1

# The features the compiled CPU passes compute (finser.feature_kernels) and their sizes.
KERNEL_DIMS: dict[str, int] = {"zcr": 1, "rms": 1, "chroma": N_CHROMA, "mfcc": N_MFCC, "melspec": N_MELS}
# The study's five, in the order of the baseline's 162 values per frame: the default feature set everywhere. Named
# here, not derived from a registry, so that registering a feature never changes them.
FEATURES: tuple[str, ...] = ("zcr", "rms", "chroma", "mfcc", "melspec")


def check_frames(frames: torch.Tensor) -> None:
    """Raise a FinserError naming what was expected when ``frames`` is not a (B, 2048) float tensor.

    Finiteness is checked by ``compute_all`` on the way, without an extra pass over the samples.
    """
    if not isinstance(frames, torch.Tensor):
        raise FinserError(f"frames must be a torch.Tensor of shape (B, {N_FFT}), got {type(frames).__name__}")
    if frames.ndim != 2 or frames.shape[-1] != N_FFT:
        raise FinserError(
            f"frames must have shape (B, {N_FFT}) (one {N_FFT}-sample window per row at {SAMPLE_RATE} Hz), "
            f"got {tuple(frames.shape)}"
        )
    if frames.dtype not in (torch.float32, torch.float64):
        raise FinserError(f"frames must be float32 (or float64), got {frames.dtype}")


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
def mel_bands(dtype: torch.dtype = torch.float32) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The mel filterbank's nonzero weights, band by band: ``(first_bin, offsets, weights)``.

    98.5% of the (128, 1025) filterbank is zero: band ``m`` is ``weights[offsets[m]:offsets[m + 1]]`` over the
    bins from ``first_bin[m]`` on, ~2 k weights in all, and the skipped products are exact zeros.
    """
    basis = mel_filterbank(CPU, dtype).numpy()
    nonzero = basis != 0
    first = nonzero.argmax(axis=1)
    stop = basis.shape[1] - nonzero[:, ::-1].argmax(axis=1)
    offsets = np.concatenate([[0], np.cumsum(stop - first)])
    weights = np.concatenate([row[low:high] for row, low, high in zip(basis, first, stop, strict=True)])
    return first.astype(np.int64), offsets.astype(np.int64), weights


@lru_cache(maxsize=8)
def _decibel_dct(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    # (20, 128): the DCT of decibels applied to natural logs, 10 · log10(x) = (10 / ln 10) · ln(x), so the dB
    # scaling costs no pass on either path (both take torch's natural log).
    return (10.0 / math.log(10.0)) * dct_matrix(device, dtype)


@lru_cache(maxsize=8)
def _dft_basis(device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    # (2048, 1025) cosines and sines of the real DFT, computed in float64: rfft as two matrix products.
    angle = 2 * np.pi * np.outer(np.arange(N_FFT), np.arange(N_FFT // 2 + 1)) / N_FFT
    return tuple(torch.tensor(part(angle), device=device, dtype=dtype) for part in (np.cos, np.sin))


def power_spectrum(frames: torch.Tensor) -> torch.Tensor:
    """|librosa.stft(frame, n_fft=2048, center=False)|² per frame, shape (B, 1025).

    Written as ONNX, the same DFT is two matrix products (the legacy exporter has no rfft; ``python export.py``
    checks the file against this function within its stated tolerance)."""
    windowed = frames * _window(frames.device, frames.dtype)
    if torch.onnx.is_in_onnx_export():
        cosine, sine = _dft_basis(frames.device, frames.dtype)
        return (windowed @ cosine).square() + (windowed @ sine).square()
    return torch.view_as_real(torch.fft.rfft(windowed, dim=-1)).square().sum(dim=-1)


def zcr(frames: torch.Tensor) -> torch.Tensor:
    """librosa.feature.zero_crossing_rate(frame_length=2048, hop_length=512, center=False), shape (B, 1).

    librosa zeroes samples with |x| <= 1e-10 and counts sign-bit changes over 2048 positions (the first one is
    padded with "no crossing"), so a sample is negative exactly when x < -1e-10.
    """
    negative = frames < -ZCR_THRESHOLD
    return (negative[:, 1:] != negative[:, :-1]).sum(dim=-1, keepdim=True).to(frames.dtype) / N_FFT


def rms(frames: torch.Tensor) -> torch.Tensor:
    """librosa.feature.rms(frame_length=2048, hop_length=512, center=False), shape (B, 1)."""
    return torch.linalg.vector_norm(frames, dim=-1, keepdim=True) / math.sqrt(N_FFT)


def mfcc_from_melspec(mel: torch.Tensor) -> torch.Tensor:
    """power_to_db(top_db=80, relative to each frame's own maximum), then DCT-II ortho, 20 coefficients.

    top_db clipping is relative to the frame's own maximum: computed per frame, not per file. The powers are
    clipped before the log (the same by monotonicity), whose decibel factor the DCT matrix carries.
    """
    floor = torch.clamp_min(mel.amax(dim=-1, keepdim=True) * TOP_DB_RATIO, AMIN)
    return torch.maximum(mel, floor).log() @ _decibel_dct(mel.device, mel.dtype).T


def chroma_from_magnitude(magnitude: torch.Tensor) -> torch.Tensor:
    """librosa.feature.chroma_stft(S=|STFT|, sr=22050, tuning=0.0) per frame, scaled to a maximum of 1.

    From the magnitude STFT, as the study and its baseline; tuning fixed at 0.0 so the target depends on the
    window alone (the study left it to be re-estimated per call).
    """
    raw = magnitude @ chroma_filterbank(magnitude.device, magnitude.dtype).T
    peak = raw.amax(dim=-1, keepdim=True)  # weights and magnitudes are >= 0: the max is the max of |raw|
    # util.normalize leaves frames whose norm is below the dtype's smallest normal number unscaled.
    peak = torch.where(peak < torch.finfo(magnitude.dtype).tiny, 1.0, peak)
    return raw / peak


@lru_cache(maxsize=8)
def _bin_frequencies(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    # librosa.fft_frequencies(sr=22050, n_fft=2048) as a column, (1025, 1): 0 to 11,025 Hz.
    return torch.linspace(0.0, SAMPLE_RATE / 2, N_BINS, dtype=torch.float64).to(device=device, dtype=dtype)[:, None]


def spectral_centroid_from_magnitude(magnitude: torch.Tensor) -> torch.Tensor:
    """librosa.feature.spectral_centroid(S=|STFT|, sr=22050, n_fft=2048) per frame, shape (B, 1), in Hz.

    The bins' frequencies weighted by the magnitude (not the power), as librosa's default. Its ``util.normalize``
    leaves frames whose magnitudes sum below the dtype's smallest normal number unscaled, so silence reads 0 Hz.
    """
    total = magnitude.sum(dim=-1, keepdim=True)
    total = torch.where(total < torch.finfo(magnitude.dtype).tiny, 1.0, total)
    return (magnitude @ _bin_frequencies(magnitude.device, magnitude.dtype)) / total


class MagnitudeFeature(NamedTuple):
    """A feature of each frame's magnitude spectrum (B, 1025) → (B, dim), one torch function for both paths."""

    dim: int
    function: Callable[[torch.Tensor], torch.Tensor]


# Features beyond the kernels' five, each from the magnitudes: a new one is its function and one entry here (and
# its librosa call in ``reference_features``); both paths, FEATURE_DIMS and the checks of ``feature=`` and
# ``front_end.features`` follow.
MAGNITUDE_FEATURES: dict[str, MagnitudeFeature] = {
    "spectral_centroid": MagnitudeFeature(1, spectral_centroid_from_magnitude),
}

# Every registered feature and its size: ``feature=<name>`` and ``front_end.features`` may name any of them.
FEATURE_DIMS: dict[str, int] = KERNEL_DIMS | {name: entry.dim for name, entry in MAGNITUDE_FEATURES.items()}
REGISTERED_FEATURES: tuple[str, ...] = tuple(FEATURE_DIMS)


def check_feature(feature: str) -> None:
    """Raise a FinserError listing the registered features when ``feature`` is not one."""
    if feature not in FEATURE_DIMS:
        raise FinserError(f"unknown feature {feature!r}: expected one of {', '.join(REGISTERED_FEATURES)}")


def check_feature_set(features: Iterable[str]) -> tuple[str, ...]:
    """A front-end's features (``front_end.features``): at least one, each a known feature, each once; in the
    order given, which is the order of their values in each frame's vector."""
    chosen = tuple(features)
    for feature in chosen:
        check_feature(feature)
    repeated = sorted({feature for feature in chosen if chosen.count(feature) > 1})
    if not chosen or repeated:
        raise FinserError(
            f"front_end.features={list(chosen)}: expected each of some of {', '.join(REGISTERED_FEATURES)} once"
            + (f" ({', '.join(repeated)} repeated)" if repeated else " (none given)")
        )
    return chosen


def feature_set_name(features: Iterable[str]) -> str:
    """``all`` for the study's five in order, else the features joined by ``+``: how runs and reports name it."""
    chosen = check_feature_set(features)
    return "all" if chosen == FEATURES else "+".join(chosen)


def compute(feature: str, frames: torch.Tensor) -> torch.Tensor:
    """One feature of each frame: ``frames`` (B, 2048) float at 22,050 Hz → (B, dim), librosa's per-frame value."""
    check_feature(feature)
    return compute_all(frames, (feature,))[feature]


def compute_all(frames: torch.Tensor, features: Iterable[str] = FEATURES) -> dict[str, torch.Tensor]:
    """Several features of each frame, the spectrum computed once for all of them.

    Returns a dict name → (B, dim) with the same values as :func:`compute`; all five give the baseline's 162
    values per frame. On CPU the batch goes through compiled passes (``finser.feature_kernels``) in chunks of
    ``CHUNK_FRAMES`` whose intermediates stay in cache (``compute`` takes the same path, so the two agree bit for
    bit). Frames that need a gradient, on an accelerator, or traced for an export go through torch ops in one pass.
    """
    features = tuple(features)
    for feature in features:
        check_feature(feature)
    check_frames(frames)
    if not frames.is_cpu or (frames.requires_grad and torch.is_grad_enabled()) or torch.jit.is_tracing():
        values = _compute_in_torch(frames, features)  # tracing (an export) records torch ops, not compiled loops
    else:
        values = _compute_on_cpu(frames.detach(), features)
    return {feature: values[feature] for feature in features}


def _compute_in_torch(frames: torch.Tensor, features: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """The features as differentiable torch ops, for accelerators and for frames that need a gradient."""
    if not math.isfinite(float(frames.detach().sum())) and not bool(torch.isfinite(frames).all()):
        raise _non_finite_error()
    wanted = set(features)
    values = {"zcr": zcr(frames), "rms": rms(frames)}
    if wanted - {"zcr", "rms"}:
        power = power_spectrum(frames)
        values["melspec"] = power @ mel_filterbank(frames.device, frames.dtype).T
        if "mfcc" in wanted:
            values["mfcc"] = mfcc_from_melspec(values["melspec"])
        of_magnitude = wanted & MAGNITUDE_FEATURES.keys()
        if "chroma" in wanted or of_magnitude:
            magnitude = power.sqrt()
            if "chroma" in wanted:
                values["chroma"] = chroma_from_magnitude(magnitude)
            for name in of_magnitude:
                values[name] = MAGNITUDE_FEATURES[name].function(magnitude)
    return values


class _KernelConstants(NamedTuple):
    """What the compiled passes read besides the frames, as numpy arrays and scalars of the frames' dtype."""

    window: np.ndarray
    zcr_threshold: np.floating
    mel_first: np.ndarray
    mel_offsets: np.ndarray
    mel_weights: np.ndarray
    chroma_basis: np.ndarray
    decibel_dct: np.ndarray
    amin: np.floating
    top_db_ratio: np.floating


@lru_cache(maxsize=2)
def _kernel_constants(dtype: torch.dtype) -> _KernelConstants:
    window = _window(CPU, dtype).numpy()
    scalar = window.dtype.type
    return _KernelConstants(
        window,
        scalar(-ZCR_THRESHOLD),
        *mel_bands(dtype),
        chroma_filterbank(CPU, dtype).numpy(),
        _decibel_dct(CPU, dtype).numpy(),
        scalar(AMIN),
        scalar(TOP_DB_RATIO),
    )


def _compute_on_cpu(frames: torch.Tensor, features: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """The features through ``finser.feature_kernels``, chunk by chunk, written straight into the outputs' rows.

    ZCR and RMS come from every frame whatever was asked (one cheap pass, which also finds NaN and inf: the RMS
    of a frame with one is not finite); the FFT and each spectral feature only when asked. An array with no rows
    tells a kernel to skip that output. Arrays are numpy, whose allocations and slices cost a fraction of
    torch's: on a 2.5 s file this wrapper's own time is ~10% of the call. The kernels write the five they know
    (``KERNEL_DIMS``); each ``MAGNITUDE_FEATURES`` entry asked for is its torch function of the chunk's
    magnitudes, which the spectrum pass writes for it as it does for the chroma. Nothing else is allocated.
    """
    from finser import feature_kernels  # numba: imported and compiled (or loaded from its cache) on first use

    constants = _kernel_constants(frames.dtype)
    n_frames, dtype, wanted = frames.shape[0], constants.window.dtype, set(features)
    chunk = max(1, min(CHUNK_FRAMES, n_frames))

    def array(rows: int, width: int, needed: bool = True) -> np.ndarray:
        return np.empty((rows if needed else 0, width), dtype=dtype)

    of_magnitude = [name for name in features if name in MAGNITUDE_FEATURES]
    out = {
        feature: array(n_frames, FEATURE_DIMS[feature], feature in wanted) for feature in (*KERNEL_DIMS, *of_magnitude)
    }
    out["zcr"], out["rms"] = array(n_frames, 1), array(n_frames, 1)
    spectral = bool(wanted - {"zcr", "rms"})
    windowed = array(chunk, N_FFT, spectral)
    magnitude = array(chunk, N_BINS, "chroma" in wanted or bool(of_magnitude))
    # The MFCCs' clipped mel powers, whose log torch takes in place (vectorised; numba's loop calls scalar log).
    clipped_tensor = torch.from_numpy(array(chunk, N_MELS, "mfcc" in wanted))
    clipped = clipped_tensor.numpy()
    # Mel bands go straight into the melspec output when it is asked for, else into a chunk buffer for the MFCCs.
    mel_into_output = "melspec" in wanted
    mel = out["melspec"] if mel_into_output else array(chunk, N_MELS, "mfcc" in wanted)
    power = np.empty((4, N_BINS), dtype=dtype)  # a block of four frames (feature_kernels.dot4)
    signal, row_stride = _rows_of_one_signal(frames)
    zcr_column, rms_column = out["zcr"][:, 0], out["rms"][:, 0]
    for start in range(0, n_frames, chunk):
        stop = min(start + chunk, n_frames)
        rows = stop - start
        feature_kernels.sample_pass(
            signal[start * row_stride :],
            row_stride,
            constants.window,
            constants.zcr_threshold,
            windowed[:rows],
            zcr_column[start:stop],
            rms_column[start:stop],
        )
        if not spectral:
            continue
        # rfft into a new tensor: its out= variant copies, ~10% slower.
        spectrum = torch.fft.rfft(torch.from_numpy(windowed[:rows]), dim=-1)
        feature_kernels.spectrum_pass(
            torch.view_as_real(spectrum).numpy().reshape(rows, 2 * N_BINS),
            constants.mel_first,
            constants.mel_offsets,
            constants.mel_weights,
            constants.chroma_basis,
            constants.amin,
            constants.top_db_ratio,
            power,
            magnitude[:rows],
            clipped[:rows],
            mel[start:stop] if mel_into_output else mel[:rows],
            out["chroma"][start:stop],
        )
        if "mfcc" in wanted:
            clipped_tensor[:rows].log_()
            feature_kernels.project(clipped[:rows], constants.decibel_dct, out["mfcc"][start:stop])
        for name in of_magnitude:
            out[name][start:stop] = MAGNITUDE_FEATURES[name].function(torch.from_numpy(magnitude[:rows])).numpy()
    # A sum of the RMS values is finite when every sample is; only a non-finite one, which could also be an
    # overflow of huge finite samples, pays for the exact check.
    if not math.isfinite(float(rms_column.sum())) and not bool(torch.isfinite(frames).all()):
        raise _non_finite_error()
    return {feature: torch.from_numpy(out[feature]) for feature in features}


def _rows_of_one_signal(frames: torch.Tensor) -> tuple[np.ndarray, int]:
    """A 1-D array and a row stride with ``frames[b] == signal[b * row_stride:][:2048]``: no copy of views
    whose rows are contiguous (overlapping frames of one clip, a contiguous batch)."""
    if frames.stride(-1) != 1:
        frames = frames.contiguous()
    n_frames = frames.shape[0]
    row_stride = frames.stride(0) if n_frames > 1 else N_FFT
    length = (n_frames - 1) * row_stride + N_FFT if n_frames else 0
    return torch.as_strided(frames, (length,), (1,)).numpy(), row_stride


def _non_finite_error() -> FinserError:
    return FinserError("frames contain NaN or inf samples: clean or skip the audio they came from")


def frame_signal(signal: torch.Tensor) -> torch.Tensor:
    """All 2048-sample windows of a clip at hop 512 (center=False), as a strided view: no overlapping copies."""
    if signal.shape[-1] < N_FFT:
        raise FinserError(f"a clip needs at least {N_FFT} samples for one frame, got {signal.shape[-1]}")
    if torch.onnx.is_in_onnx_export():  # ONNX's Unfold needs a fixed length; a gather of sample indices does not
        starts = torch.arange((signal.shape[-1] - N_FFT) // HOP_LENGTH + 1, device=signal.device) * HOP_LENGTH
        return signal[..., starts.unsqueeze(-1) + torch.arange(N_FFT, device=signal.device)]
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
        "spectral_centroid": librosa.feature.spectral_centroid(S=magnitude, sr=SAMPLE_RATE, n_fft=N_FFT)[:, 0],
    }

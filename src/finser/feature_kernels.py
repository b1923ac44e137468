"""``compute_all``'s CPU passes as compiled loops: one pass over the samples, one over the spectrum.

In torch each elementwise step is its own pass with ≥ 5 µs of dispatch, and a 2.5 s file has only 104 frames, so
the ~50 steps of the features cost more than their arithmetic. Each loop here does a dozen of those steps per
frame while the frame is in L1, in the frames' own dtype. Numba checks no bounds: callers size every array (see
``finser.features``), and every index below is derived from those shapes.
"""

from __future__ import annotations

import math

import numba
import numpy as np

# Reassociation lets sums vectorise; NaN and inf keep their meaning (no "nnan"/"ninf"), so bad samples still show.
FASTMATH = {"reassoc", "contract", "nsz"}


@numba.njit(cache=True, nogil=True, fastmath=FASTMATH)
def sample_pass(
    signal: np.ndarray,
    row_stride: int,
    window: np.ndarray,
    threshold: float,
    windowed: np.ndarray,
    zcr: np.ndarray,
    rms: np.ndarray,
) -> None:
    """Frame ``b`` is ``signal[b * row_stride:][:len(window)]``; writes its ZCR, RMS and (when ``windowed`` has
    rows) its windowed copy for the FFT. ``threshold`` is -1e-10 in the frames' dtype: a sample is negative for
    librosa's ZCR exactly when it is below it."""
    width = window.shape[0]
    for b in range(zcr.shape[0]):
        row = signal[b * row_stride : b * row_stride + width]
        total = threshold - threshold  # zero in the frames' dtype
        if windowed.shape[0] > 0:
            for i in range(width):
                total += row[i] * row[i]
                windowed[b, i] = row[i] * window[i]
        else:
            for i in range(width):
                total += row[i] * row[i]
        crossings = 0
        for i in range(1, width):
            crossings += (row[i] < threshold) != (row[i - 1] < threshold)
        zcr[b] = crossings / width
        rms[b] = math.sqrt(total / width)


@numba.njit(cache=True, nogil=True, fastmath=FASTMATH)
def spectrum_pass(
    spectrum: np.ndarray,
    mel_first: np.ndarray,
    mel_offsets: np.ndarray,
    mel_weights: np.ndarray,
    chroma_basis: np.ndarray,
    decibel_dct: np.ndarray,
    amin: float,
    log_range: float,
    power: np.ndarray,
    magnitude: np.ndarray,
    logs: np.ndarray,
    mel: np.ndarray,
    chroma: np.ndarray,
    mfcc: np.ndarray,
) -> None:
    """From each row of interleaved (re, im) pairs (B, 2 · bins): mel bands, chroma and MFCCs, each skipped when
    its output has no rows. ``power`` (bins,) is the frame's scratch; ``magnitude`` (B, bins) and ``logs``
    (B, mels) feed the chroma filterbank (12, bins) and the DCT (20, mels, times 10 for decibels).

    Mel band ``m`` is the dot product of its nonzero weights ``mel_weights[mel_offsets[m]:mel_offsets[m + 1]]``
    with the power from bin ``mel_first[m]`` on: ~2 k multiply-adds per frame instead of the dense 131 k. MFCCs
    clip log10 mel power ``log_range`` below each frame's peak (top_db / 10) and take the DCT, which carries the
    dB factor; chroma rows are scaled to a peak of 1 unless the peak is below the dtype's smallest normal
    number, as librosa's ``util.normalize`` leaves them.
    """
    n_bins = power.shape[0]
    for b in range(spectrum.shape[0]):
        pairs = spectrum[b]
        for k in range(n_bins):
            power[k] = pairs[2 * k] * pairs[2 * k] + pairs[2 * k + 1] * pairs[2 * k + 1]
        if magnitude.shape[0] > 0:
            for k in range(n_bins):
                magnitude[b, k] = math.sqrt(power[k])
        if mel.shape[0] > 0:
            for m in range(mel_first.shape[0]):
                # Slices first: indexing them by the loop counter needs no negative-index check, so the dot
                # product vectorises (indexing power[first + j] directly runs ~4x slower).
                weights = mel_weights[mel_offsets[m] : mel_offsets[m + 1]]
                band = power[mel_first[m] : mel_first[m] + weights.shape[0]]
                total = weights[0] - weights[0]  # zero in the frames' dtype
                for j in range(weights.shape[0]):
                    total += weights[j] * band[j]
                mel[b, m] = total
        if logs.shape[0] > 0:
            row = logs[b]
            for m in range(row.shape[0]):
                row[m] = math.log10(max(mel[b, m], amin))
            floor = row.max() - log_range
            for m in range(row.shape[0]):
                row[m] = max(row[m], floor)
    if mfcc.shape[0] > 0:
        project(logs, decibel_dct, mfcc)
    if chroma.shape[0] > 0:
        project(magnitude, chroma_basis, chroma)
        tiny = np.finfo(chroma.dtype).tiny
        for b in range(chroma.shape[0]):
            peak = chroma[b].max()  # weights and magnitudes are >= 0: the max is the max of |chroma|
            if peak >= tiny:
                chroma[b] /= peak


@numba.njit(cache=True, nogil=True, fastmath=FASTMATH)
def project(rows: np.ndarray, basis: np.ndarray, out: np.ndarray) -> None:
    """``out = rows @ basis.T`` for a short ``basis`` (n_out, width): each output a vectorised dot product.

    Frames go in blocks of 4 so a basis row is read from L1 four times instead of streamed from L2 per frame
    (the chroma basis is 49 KB). Not BLAS: numba's np.dot calls scipy's OpenBLAS, whose own threads fight
    torch's for the two cores (10x slower per file at 2 threads).
    """
    for first in range(0, rows.shape[0], 4):
        block = range(first, min(first + 4, rows.shape[0]))
        for c in range(basis.shape[0]):
            weights = basis[c]
            for b in block:
                values = rows[b]
                total = weights[0] - weights[0]  # zero in the frames' dtype
                for k in range(weights.shape[0]):
                    total += weights[k] * values[k]
                out[b, c] = total

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
    librosa's ZCR exactly when it is below it.

    A frame is four quarters, whose sums of squares and sign changes add up to the frame's. Overlapping frames
    of one clip at a hop of a quarter (``frame_signal``'s) share their quarters, so each is counted once instead
    of four times; other layouts count every frame's own four with the same code, so the values agree bit for bit.
    """
    width, n_frames = window.shape[0], zcr.shape[0]
    quarter = width // 4
    shared = row_stride == quarter
    n_quarters = n_frames + 3 if shared else 4 * n_frames
    energy = np.empty(n_quarters, dtype=signal.dtype)
    inner = np.empty(n_quarters, dtype=np.int64)  # sign changes within the quarter
    edge = np.zeros(n_quarters, dtype=np.int64)  # a sign change from the sample before the quarter
    for q in range(n_quarters):
        start = q * quarter if shared else (q // 4) * row_stride + (q % 4) * quarter
        samples = signal[start : start + quarter]
        total = threshold - threshold  # zero in the frames' dtype
        for i in range(quarter):
            total += samples[i] * samples[i]
        crossings = 0
        for i in range(1, quarter):
            crossings += (samples[i] < threshold) != (samples[i - 1] < threshold)
        energy[q], inner[q] = total, crossings
        if start > 0:
            edge[q] = (samples[0] < threshold) != (signal[start - 1] < threshold)
    for b in range(n_frames):
        first = b if shared else 4 * b  # the frame's quarters are first .. first + 3 either way
        total = (energy[first] + energy[first + 1]) + (energy[first + 2] + energy[first + 3])
        crossings = inner[first] + inner[first + 1] + inner[first + 2] + inner[first + 3]
        crossings += edge[first + 1] + edge[first + 2] + edge[first + 3]  # not the first: it is outside the frame
        zcr[b] = crossings / width
        rms[b] = math.sqrt(total / width)
        if windowed.shape[0] > 0:
            row = signal[b * row_stride : b * row_stride + width]
            for i in range(width):
                windowed[b, i] = row[i] * window[i]


@numba.njit(cache=True, nogil=True, fastmath=FASTMATH)
def spectrum_pass(
    spectrum: np.ndarray,
    mel_first: np.ndarray,
    mel_offsets: np.ndarray,
    mel_weights: np.ndarray,
    chroma_basis: np.ndarray,
    amin: float,
    top_db_ratio: float,
    power: np.ndarray,
    magnitude: np.ndarray,
    clipped: np.ndarray,
    mel: np.ndarray,
    chroma: np.ndarray,
) -> None:
    """From each row of interleaved (re, im) pairs (B, 2 · bins): mel bands, chroma and the mel powers the MFCCs
    take the log of, each skipped when its output has no rows. ``power`` (4, bins) is the scratch of a block of four
    frames; ``magnitude`` (B, bins) feeds the chroma filterbank (12, bins).

    Mel band ``m`` is the dot product of its nonzero weights ``mel_weights[mel_offsets[m]:mel_offsets[m + 1]]``
    with the power from bin ``mel_first[m]`` on: ~2 k multiply-adds per frame instead of the dense 131 k.
    ``clipped`` is the mel power clipped to ``top_db_ratio`` (10^(-top_db / 10)) of each frame's peak and at least
    ``amin``: power_to_db's clip, applied before the log (the same by monotonicity). The log itself is left to the
    caller, whose vectorised log runs 4x faster than this loop's. Chroma rows are scaled to a peak of 1 unless the
    peak is below the dtype's smallest normal number, as librosa's ``util.normalize`` leaves them.
    """
    n_frames, n_bins = spectrum.shape[0], power.shape[1]
    for first in range(0, n_frames, 4):
        block = range(first, min(first + 4, n_frames))
        for b in block:
            pairs, frame_power = spectrum[b], power[b - first]
            for k in range(n_bins):
                frame_power[k] = pairs[2 * k] * pairs[2 * k] + pairs[2 * k + 1] * pairs[2 * k + 1]
            if magnitude.shape[0] > 0:
                for k in range(n_bins):
                    magnitude[b, k] = math.sqrt(frame_power[k])
        if mel.shape[0] == 0:
            continue
        for m in range(mel_first.shape[0]):
            weights = mel_weights[mel_offsets[m] : mel_offsets[m + 1]]
            bins = slice(mel_first[m], mel_first[m] + weights.shape[0])
            row0, row1, row2, row3 = rows4(power, 0, len(block) - 1, bins)
            totals = dot4(weights, row0, row1, row2, row3)
            for b in block:
                mel[b, m] = totals[b - first]
        if clipped.shape[0] > 0:
            for b in block:
                row, bands = clipped[b], mel[b]
                floor = max(bands.max() * top_db_ratio, amin)
                for m in range(row.shape[0]):
                    row[m] = max(bands[m], floor)
    if chroma.shape[0] > 0:
        project(magnitude, chroma_basis, chroma)
        tiny = np.finfo(chroma.dtype).tiny
        for b in range(chroma.shape[0]):
            peak = chroma[b].max()  # weights and magnitudes are >= 0: the max is the max of |chroma|
            if peak >= tiny:
                chroma[b] /= peak


@numba.njit(cache=True, nogil=True, fastmath=FASTMATH)
def project(rows: np.ndarray, basis: np.ndarray, out: np.ndarray) -> None:
    """``out = rows @ basis.T`` for a short ``basis`` (n_out, width), four rows at a time (see ``dot4``).

    Not BLAS: numba's np.dot calls scipy's OpenBLAS, whose own threads fight torch's for the two cores (10x
    slower per file at 2 threads).
    """
    last = rows.shape[0] - 1
    for first in range(0, last + 1, 4):
        row0, row1, row2, row3 = rows4(rows, first, last, slice(0, basis.shape[1]))
        for c in range(basis.shape[0]):
            totals = dot4(basis[c], row0, row1, row2, row3)
            for offset in range(min(4, last + 1 - first)):
                out[first + offset, c] = totals[offset]


@numba.njit(cache=True, nogil=True, inline="always")
def rows4(array: np.ndarray, first: int, last: int, columns: slice) -> tuple:
    """Rows ``first`` to ``first + 3`` of ``array`` (those past ``last`` repeat it), restricted to ``columns``.

    Repeating the last row of a short block sends every row through the same code, so a frame's values do not
    depend on its position in the batch."""
    return (
        array[first, columns],
        array[min(first + 1, last), columns],
        array[min(first + 2, last), columns],
        array[min(first + 3, last), columns],
    )


@numba.njit(cache=True, nogil=True, fastmath=FASTMATH, inline="always")
def dot4(weights: np.ndarray, row0: np.ndarray, row1: np.ndarray, row2: np.ndarray, row3: np.ndarray) -> tuple:
    """Four vectorised dot products with one pass over ``weights``: each weight is loaded once per four frames,
    and the four sums hide each other's latency (1.5x faster than one frame at a time for chroma and mel)."""
    total0 = total1 = total2 = total3 = weights[0] - weights[0]  # zero in the frames' dtype
    for k in range(weights.shape[0]):
        total0 += weights[k] * row0[k]
        total1 += weights[k] * row1[k]
        total2 += weights[k] * row2[k]
        total3 += weights[k] * row3[k]
    return total0, total1, total2, total3

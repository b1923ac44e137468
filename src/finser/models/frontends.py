"""Learnable filterbank front-ends, the controls beside the FINs: SincNet and LEAF, both mel-initialised.

Each maps frames (N, 2048) at 22,050 Hz, the FINs' input at their hop of 512, to one band power per filter
(N, n_filters), measured around the frame's centre. What follows them in ``SERModel.compress`` sees the frame
sequence (B, T, n_filters): a log for SincNet (:class:`LogPower`), LEAF's own PCEN (:class:`PCEN`), whose smoother
runs over time. Written from the papers (Ravanelli & Bengio 2018; Zeghidour et al. 2021); no weights exist to load.

Both read every ``stride``-th output of their filters inside the frame (1 reads all of them, as the papers do): the
band power of a filter output is spread over many of its periods (LEAF's squared modulus is a smooth envelope), so
a regular subset estimates it at 1/stride of the cost.
"""

from __future__ import annotations

import math

import librosa
import numpy as np
import torch
from torch import nn

from finser.errors import FinserError
from finser.features import N_FFT, SAMPLE_RATE
from finser.models.fin import single_group
from finser.models.ser import log_power

NYQUIST_HZ = SAMPLE_RATE / 2


def mel_points(n_points: int, fmin: float, fmax: float) -> np.ndarray:
    """``n_points`` frequencies (Hz) evenly spaced on the HTK mel scale (2595 log10(1 + f/700)) from fmin to fmax,
    the scale both papers initialise with."""
    return librosa.mel_frequencies(n_points, fmin=fmin, fmax=fmax, htk=True)


def check_window(name: str, kernel_size: int, stride: int, span: int) -> None:
    """Odd kernels (a centre tap: the response is symmetric about the frame centre), strides ≥ 1, and the samples
    the front-end reads inside one frame."""
    if not (isinstance(kernel_size, int) and kernel_size % 2 == 1 and kernel_size > 1):
        raise FinserError(f"{name}: kernel_size must be an odd integer above 1, got {kernel_size!r}")
    if not (isinstance(stride, int) and stride >= 1):
        raise FinserError(f"{name}: stride must be an integer of at least 1, got {stride!r}")
    if span > N_FFT:
        raise FinserError(f"{name}: reads {span} samples around a frame's centre; a frame has {N_FFT}")


class Filterbank(nn.Module):
    """A learnable front-end whose weights all train at the run's rate (one optimiser group)."""

    def parameter_groups(self, lr: float) -> list[dict]:
        return single_group(self, lr)


class SincNetFrontEnd(Filterbank):
    """SincNet's layer (Ravanelli & Bengio, SLT 2018): band-pass filters g = 2 f2 sinc(2π f2 n) − 2 f1 sinc(2π f1 n),
    Hamming-windowed, two learnable cut-offs each; then each filter's power over the frame.

    Cut-offs are learned in cycles per sample (the paper's code), as f1 = min_low + |a|, f2 = f1 + min_band + |b|
    (clipped at Nyquist), and start on the mel scale: f1, f2 at consecutive mel points from ``init_low_hz`` to
    ``init_high_hz`` (by default Nyquist − min_low − min_band), except where a mel band is narrower than
    ``min_band_hz`` (below ~0.8 kHz with 80 filters): those start ``min_band_hz`` wide at their mel low cut-off.
    The power is the Hann-weighted mean square of the filter output over the frame's valid positions.
    """

    def __init__(
        self,
        n_filters: int = 80,
        kernel_size: int = 345,
        min_low_hz: float = 50.0,
        min_band_hz: float = 50.0,
        init_low_hz: float = 30.0,
        init_high_hz: float | None = None,
        stride: int = 8,
    ) -> None:
        super().__init__()
        check_window("sincnet", kernel_size, stride, kernel_size)
        self.n_filters, self.kernel_size, self.stride = n_filters, kernel_size, stride
        self.min_low, self.min_band = min_low_hz / SAMPLE_RATE, min_band_hz / SAMPLE_RATE
        high = init_high_hz if init_high_hz is not None else NYQUIST_HZ - min_low_hz - min_band_hz
        edges = mel_points(n_filters + 1, init_low_hz, high) / SAMPLE_RATE
        low = np.maximum(edges[:-1], self.min_low)
        self.low = nn.Parameter(torch.tensor(low - self.min_low, dtype=torch.float32))
        self.band = nn.Parameter(torch.tensor(np.maximum(edges[1:] - low - self.min_band, 0.0), dtype=torch.float32))
        taps = torch.arange(kernel_size, dtype=torch.float64) - (kernel_size - 1) / 2
        self.register_buffer("taps", taps.float())
        self.register_buffer("window", torch.hamming_window(kernel_size, periodic=False))
        positions = len(range(0, N_FFT - kernel_size + 1, stride))
        pooling = torch.hann_window(positions + 2, periodic=False)[1:-1]
        self.register_buffer("pooling", pooling / pooling.sum())

    def cutoffs_hz(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Each filter's low and high cut-off in Hz, (n_filters,) each."""
        low = self.min_low + self.low.abs()
        high = (low + self.min_band + self.band.abs()).clamp(max=0.5)
        return low * SAMPLE_RATE, high * SAMPLE_RATE

    def kernels(self) -> torch.Tensor:
        """The windowed band-pass impulse responses (n_filters, kernel_size), unit gain in the pass band."""
        low, high = (cutoff.unsqueeze(-1) / SAMPLE_RATE for cutoff in self.cutoffs_hz())
        band_pass = 2 * high * torch.sinc(2 * high * self.taps) - 2 * low * torch.sinc(2 * low * self.taps)
        return band_pass * self.window  # torch.sinc(x) = sin πx / πx

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        filtered = nn.functional.conv1d(frames.unsqueeze(1), self.kernels().unsqueeze(1), stride=self.stride)
        return filtered.square() @ self.pooling


class LeafFrontEnd(Filterbank):
    """LEAF's filterbank and pooling (Zeghidour et al., ICLR 2021): complex Gabor filters with a learnable centre
    frequency and bandwidth, squared modulus, then a per-channel Gaussian low-pass with a learnable width.

    Gabor filter n: exp(i η_n t) · exp(−t² / 2σ_n²) / (√(2π) σ_n) (unit gain at η_n), η in radians per sample
    clamped to [0, π], σ in samples clamped to [4, kernel_size] · √(2 ln 2) / π, as LEAF. Initialised on the mel
    scale: η_n at the centre of mel band n between ``min_hz`` and ``max_hz``, σ_n so the filter's magnitude
    response has the full width at half maximum of that band's (the square root of the mel triangle's power,
    0.75 of its base). The pooling window spans ``kernel_size`` samples centred on the frame's centre, its width
    a fraction of that span (initialised at ``pooling_width`` = 0.4, clamped to [2 / kernel_size, 0.5]); it sums
    the squared modulus at every ``stride``-th position, times ``stride``.
    """

    def __init__(
        self,
        n_filters: int = 80,
        kernel_size: int = 551,
        min_hz: float = 60.0,
        max_hz: float = 7800.0,
        pooling_width: float = 0.4,
        stride: int = 8,
    ) -> None:
        super().__init__()
        self.n_filters, self.kernel_size, self.stride = n_filters, kernel_size, stride
        self.n_positions = (kernel_size - 1) // stride + 1
        self.span = (self.n_positions - 1) * stride + kernel_size
        check_window("leaf", kernel_size, stride, self.span)
        edges = mel_points(n_filters + 2, min_hz, max_hz)
        fwhm = 0.75 * (edges[2:] - edges[:-2]) / SAMPLE_RATE  # cycles per sample
        self.centre = nn.Parameter(torch.tensor(2 * np.pi * edges[1:-1] / SAMPLE_RATE, dtype=torch.float32))
        self.sigma = nn.Parameter(torch.tensor(math.sqrt(2 * math.log(2)) / (np.pi * fwhm), dtype=torch.float32))
        self.pooling_width = nn.Parameter(torch.full((n_filters,), float(pooling_width)))
        self.register_buffer("taps", torch.arange(kernel_size, dtype=torch.float32) - (kernel_size - 1) / 2)
        offsets = (torch.arange(self.n_positions, dtype=torch.float32) - (self.n_positions - 1) / 2) * stride
        self.register_buffer("offsets", offsets)

    def centres_hz(self) -> torch.Tensor:
        return self.centre.clamp(0.0, math.pi) * SAMPLE_RATE / (2 * math.pi)

    def kernels(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Real and imaginary parts of the Gabor filters, (n_filters, kernel_size) each."""
        scale = math.sqrt(2 * math.log(2)) / math.pi
        sigma = self.sigma.clamp(4 * scale, self.kernel_size * scale).unsqueeze(-1)
        centre = self.centre.clamp(0.0, math.pi).unsqueeze(-1)
        envelope = torch.exp(-0.5 * (self.taps / sigma).square()) / (math.sqrt(2 * math.pi) * sigma)
        phase = centre * self.taps
        return envelope * torch.cos(phase), envelope * torch.sin(phase)

    def pooling(self) -> torch.Tensor:
        """The Gaussian low-pass weights at the positions read (n_filters, n_positions), times ``stride``."""
        width = self.pooling_width.clamp(2 / self.kernel_size, 0.5).unsqueeze(-1) * (self.kernel_size - 1) / 2
        return torch.exp(-0.5 * (self.offsets / width).square()) * self.stride

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        start = N_FFT // 2 - self.span // 2
        segment = frames[:, start : start + self.span].unsqueeze(1)
        real, imaginary = self.kernels()
        filtered = nn.functional.conv1d(segment, torch.cat([real, imaginary]).unsqueeze(1), stride=self.stride)
        real_out, imaginary_out = filtered.chunk(2, dim=1)
        return ((real_out.square() + imaginary_out.square()) * self.pooling()).sum(-1)


class LogPower(nn.Module):
    """log10 of every band power, floored: SincNet's bands as the heads see them (as :class:`~finser.models.ser.
    LogMel` does for the mel power)."""

    def __init__(self, floor: float = 1e-10) -> None:
        super().__init__()
        self.floor = floor

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        return log_power(values, self.floor)


class PCEN(nn.Module):
    """Per-channel energy normalisation, learnable per channel as in LEAF: (E / (ε + M)^α + δ)^(1/r) − δ^(1/r).

    M is E smoothed over frames, M_t = (1 − s) M_(t−1) + s E_t from M_0 = E_0: causal, so the zero frames that pad
    a short clip at the end change nothing before them. α ≤ 1, r ≥ 1 and s in [0, 1] are clamped as LEAF does.
    """

    def __init__(
        self,
        n_channels: int = 80,
        alpha: float = 0.96,
        delta: float = 2.0,
        root: float = 2.0,
        smoothing: float = 0.04,
        floor: float = 1e-12,
    ) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.full((n_channels,), alpha))
        self.delta = nn.Parameter(torch.full((n_channels,), delta))
        self.root = nn.Parameter(torch.full((n_channels,), root))
        self.smoothing = nn.Parameter(torch.full((n_channels,), smoothing))
        self.floor = floor

    def smooth(self, energy: torch.Tensor) -> torch.Tensor:
        """The moving average M over the frames of (B, T, C)."""
        weight = self.smoothing.clamp(0.0, 1.0)
        state, states = energy[:, 0], []
        for frame in energy.unbind(dim=1):
            state = (1 - weight) * state + weight * frame
            states.append(state)
        return torch.stack(states, dim=1)

    def forward(self, energy: torch.Tensor) -> torch.Tensor:
        energy = energy.clamp_min(0)
        alpha, exponent = self.alpha.clamp(max=1.0), 1 / self.root.clamp(min=1.0)
        gained = energy / (self.floor + self.smooth(energy)) ** alpha
        return (gained + self.delta) ** exponent - self.delta**exponent

"""Feature Imitating Networks: plain ``nn.Module``s mapping frames (B, 2048) to one feature (B, dim).

Two families:

* ``study_fin`` — the study's per-feature topologies (``fin_arch=fc`` dense-only, ``fin_arch=conv`` with its
  convolutional front-end). They predict standardised targets; ``output_scale`` undoes that inside the module.
* ``spectral_fin`` — ours: a learnable front-end initialised at the feature's own analysis (Hann-windowed Fourier
  atoms, non-negative band mixers with a fixed support; for RMS and ZCR weighted squares and neighbour products
  of every ``stride``-th sample), so it starts near the closed form and needs ≥ 100× fewer FLOPs per frame (all
  ops counted) than the study's FINs. Every operation is a learned weight or a fixed non-linearity; no FFT or
  librosa call runs in its forward.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass

import librosa
import numpy as np
import torch
from torch import nn

from finser.errors import FinserError
from finser.features import FEATURE_DIMS, N_FFT, SAMPLE_RATE, TOP_DB, check_feature, dct_matrix

BIN_HZ = SAMPLE_RATE / N_FFT


def single_group(module: nn.Module, lr: float) -> list[dict]:
    """One optimiser group: every parameter of ``module`` at the run's rate."""
    return [{"params": list(module.parameters()), "lr": lr}]


class OutputScale(nn.Module):
    """Maps standardised predictions back to the feature's units with the training targets' mean and std."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    def set_statistics(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.mean.copy_(mean)
        self.std.copy_(std)

    def forward(self, standardised: torch.Tensor) -> torch.Tensor:
        return standardised * self.std + self.mean


class FIN(nn.Module):
    """Base of every FIN: knows its feature, its output size, and how its parameters should be stepped."""

    def __init__(self, feature: str) -> None:
        super().__init__()
        check_feature(feature)
        self.feature = feature
        self.dim = FEATURE_DIMS[feature]

    def parameter_groups(self, lr: float) -> list[dict]:
        """Optimiser groups; a FIN whose parts need different step sizes overrides this."""
        return single_group(self, lr)


# ----------------------------------------------------------------------------------------------------------------
# The study's FINs


@dataclass(frozen=True)
class StudyTopology:
    """One feature's FIN in the study: an optional conv1d front-end (then max-pool) and dense hidden layers."""

    hidden: tuple[int, ...]
    conv_channels: int = 16
    conv_kernel: int = 16
    conv_stride: int = 4
    pool_kernel: int = 1
    pool_stride: int = 1


# The study's table (docs/ser.md, "The study"). RMS is dense in the study; its conv variant borrows ZCR's front-end.
STUDY_TOPOLOGIES: dict[str, StudyTopology] = {
    "rms": StudyTopology(hidden=(32, 16, 8)),
    "zcr": StudyTopology(hidden=(32, 32, 32)),
    "chroma": StudyTopology(hidden=(256, 128, 64), conv_channels=256, conv_kernel=512, pool_kernel=256,
                            conv_stride=1, pool_stride=128),
    "mfcc": StudyTopology(hidden=(256, 128), conv_channels=256, conv_kernel=512, pool_kernel=512, conv_stride=1,
                          pool_stride=110),
    "melspec": StudyTopology(hidden=(), conv_channels=512, conv_kernel=512, pool_kernel=256, conv_stride=1,
                             pool_stride=128),
}  # fmt: skip

# Features the study had no FIN for, and the study FIN whose topology theirs takes (fin_arch=fc and conv). The
# spectral centroid is read off the magnitude spectrum as chroma is: chroma's 256 filters of 512 samples (~43 Hz
# apart) give that spectrum, and its dense stack, the study's deepest, the ratio of two of its sums. ZCR's or RMS's
# 16-sample filters resolve ~1.4 kHz, too coarse for a centroid of speech (a few hundred Hz to a few kHz).
BORROWED_TOPOLOGIES: dict[str, str] = {"spectral_centroid": "chroma"}


class StudyFIN(FIN):
    """The study's FIN: [conv1d → relu → max-pool →] dense relu layers → linear output, then ``output_scale``.

    The study ended the mel FIN in a ReLU; here every FIN predicts standardised targets, so the output is linear.
    """

    def __init__(self, feature: str, convolutional: bool) -> None:
        super().__init__(feature)
        topology = STUDY_TOPOLOGIES[BORROWED_TOPOLOGIES.get(feature, feature)]
        layers: list[nn.Module] = []
        width = N_FFT
        if convolutional:
            layers += [
                nn.Unflatten(1, (1, N_FFT)),
                nn.Conv1d(1, topology.conv_channels, topology.conv_kernel, stride=topology.conv_stride),
                nn.ReLU(),
                nn.MaxPool1d(topology.pool_kernel, topology.pool_stride),
                nn.Flatten(),
            ]
            length = (N_FFT - topology.conv_kernel) // topology.conv_stride + 1
            width = topology.conv_channels * ((length - topology.pool_kernel) // topology.pool_stride + 1)
        for hidden in topology.hidden:
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        layers.append(nn.Linear(width, self.dim))
        self.body = nn.Sequential(*layers)
        self.output_scale = OutputScale(self.dim)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.output_scale(self.body(frames))


def study_fin(feature: str, convolutional: bool = True) -> StudyFIN:
    """``fin_arch=conv`` (``convolutional=True``) or ``fin_arch=fc`` for ``feature``."""
    return StudyFIN(feature, convolutional)


# ----------------------------------------------------------------------------------------------------------------
# The spectral FIN


def mel_spaced_frequencies(n_atoms: int, fmin: float = 0.0, fmax: float = SAMPLE_RATE / 2) -> np.ndarray:
    """``n_atoms`` frequencies evenly spaced on librosa's (Slaney) mel scale, excluding the end points."""
    return librosa.mel_frequencies(n_atoms + 2, fmin=fmin, fmax=fmax)[1:-1]


class FourierAtoms(nn.Module):
    """Learnable filterbank: one Hann-windowed cosine and sine atom per frequency; outputs power (B, n_atoms).

    At initialisation atom k's power is exactly |STFT(f_k)|² of the frame, librosa's power at that frequency.
    """

    def __init__(self, frequencies_hz: np.ndarray) -> None:
        super().__init__()
        time = np.arange(N_FFT)
        window = np.hanning(N_FFT + 1)[:N_FFT]  # periodic Hann, as librosa's stft
        phase = 2 * np.pi * np.outer(frequencies_hz, time) / SAMPLE_RATE
        atoms = np.concatenate([window * np.cos(phase), -window * np.sin(phase)])
        self.weight = nn.Parameter(torch.tensor(atoms, dtype=torch.float32))
        self.register_buffer("frequencies_hz", torch.tensor(frequencies_hz, dtype=torch.float32))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        projections = frames @ self.weight.T
        cosine, sine = projections.chunk(2, dim=-1)
        return cosine.square() + sine.square()


def band_weights(filterbank: np.ndarray, frequencies_hz: np.ndarray) -> np.ndarray:
    """Re-express a per-FFT-bin filterbank (out, 1025) on atoms at ``frequencies_hz``.

    Each atom samples the same continuous |X(f)|² the bins do, so a bin sum becomes a sum over atoms weighted by
    the filter at the atom's frequency times the number of bins the atom stands for.
    """
    bins = frequencies_hz / BIN_HZ
    edges = np.concatenate([[bins[0]], (bins[1:] + bins[:-1]) / 2, [bins[-1]]])
    edges[0], edges[-1] = max(0.0, 1.5 * bins[0] - 0.5 * bins[1]), 1.5 * bins[-1] - 0.5 * bins[-2]
    span = np.diff(edges)
    sampled = np.stack([np.interp(bins, np.arange(filterbank.shape[1]), row) for row in filterbank])
    return sampled * span


class BandMixer(nn.Module):
    """Non-negative mixing on a fixed support: ``mask ⊙ exp(θ)``.

    Log-parameterised weights take relative steps and zeros stay zeros, so training cannot leak a loud band into
    a quiet one (plain Adam on raw weights fills the sparse zeros and the log downstream magnifies the leak).
    """

    def __init__(self, initial: np.ndarray, support_threshold: float = 1e-4) -> None:
        super().__init__()
        support = initial > support_threshold * initial.max()
        self.register_buffer("mask", torch.tensor(support, dtype=torch.float32))
        self.log_weight = nn.Parameter(torch.tensor(np.log(np.where(support, initial, 1.0)), dtype=torch.float32))

    def weight(self) -> torch.Tensor:
        return self.mask * self.log_weight.exp()

    def forward(self, power: torch.Tensor) -> torch.Tensor:
        return power @ self.weight().T


class SpectralMel(FIN):
    """Fourier atoms → mel band mixer (power); for ``mfcc`` also dB with per-frame top_db, then a learnable DCT."""

    def __init__(self, feature: str, n_atoms: int = 256, atom_lr_scale: float = 0.01) -> None:
        super().__init__(feature)
        frequencies = mel_spaced_frequencies(n_atoms)
        self.atoms = FourierAtoms(frequencies)
        self.mixer = BandMixer(band_weights(librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT), frequencies))
        self.atom_lr_scale = atom_lr_scale
        self.dct = nn.Linear(self.mixer.mask.shape[0], self.dim, bias=True) if feature == "mfcc" else None
        if self.dct is not None:
            with torch.no_grad():
                self.dct.weight.copy_(dct_matrix())
                self.dct.bias.zero_()

    def parameter_groups(self, lr: float) -> list[dict]:
        """Band mixers take full steps; the atoms and the DCT, whose every weight touches every output, small ones."""
        mixers = [
            parameter for module in self.modules() if isinstance(module, BandMixer) for parameter in module.parameters()
        ]
        fine = [parameter for parameter in self.parameters() if all(parameter is not mixed for mixed in mixers)]
        return [{"params": mixers, "lr": lr}, {"params": fine, "lr": lr * self.atom_lr_scale}]

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        mel = self.mixer(self.atoms(frames))
        if self.dct is None:
            return mel
        decibels = 10.0 * torch.log10(mel.clamp_min(1e-10))
        decibels = torch.maximum(decibels, decibels.amax(dim=-1, keepdim=True) - TOP_DB)
        return self.dct(decibels)


class SpectralChroma(FIN):
    """Fourier atoms → magnitude → chroma band mixer → scaled to a per-frame maximum of 1."""

    def __init__(self, feature: str = "chroma", n_atoms: int = 480, atom_lr_scale: float = 0.01) -> None:
        super().__init__(feature)
        frequencies = mel_spaced_frequencies(n_atoms, fmin=30.0)
        self.atoms = FourierAtoms(frequencies)
        chroma = librosa.filters.chroma(sr=SAMPLE_RATE, n_fft=N_FFT, tuning=0.0)
        self.mixer = BandMixer(band_weights(chroma, frequencies))
        self.atom_lr_scale = atom_lr_scale

    parameter_groups = SpectralMel.parameter_groups

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        # Exact zeros for silence, as librosa (a floor under the power gave every silent frame a full-scale pattern).
        raw = self.mixer(sqrt_zero_safe(self.atoms(frames)))
        return raw / raw.amax(dim=-1, keepdim=True).clamp_min(1e-12)


class SpectralCentroid(FIN):
    """Fourier atoms → magnitude → a learnable weighted centroid: Σ w·f·|X| / Σ w·|X| over the atoms.

    Both sums are non-negative band mixers, initialised at the share of the 1,025 bins each atom stands for (times
    its frequency above), so the ratio starts at librosa's centroid sampled at mel-spaced frequencies, dense where
    speech has its energy: R² ≈ 0.999 on unseen speech before training at ~2.1 MFLOP per frame (all ops), 1/190 of
    chroma's conv FIN, whose topology fin_arch=conv borrows. Silence makes both sums 0 and the centroid 0 Hz, as
    librosa's.
    """

    def __init__(self, feature: str = "spectral_centroid", n_atoms: int = 256, atom_lr_scale: float = 0.01) -> None:
        super().__init__(feature)
        frequencies = mel_spaced_frequencies(n_atoms)
        self.atoms = FourierAtoms(frequencies)
        bins_hz = np.arange(N_FFT // 2 + 1) * BIN_HZ
        self.weighted = BandMixer(band_weights(bins_hz[None], frequencies))  # Σ f·|X|
        self.total = BandMixer(band_weights(np.ones_like(bins_hz)[None], frequencies))  # Σ |X|
        self.atom_lr_scale = atom_lr_scale

    parameter_groups = SpectralMel.parameter_groups

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        magnitude = sqrt_zero_safe(self.atoms(frames))
        return self.weighted(magnitude) / self.total(magnitude).clamp_min(1e-12)


def sqrt_zero_safe(values: torch.Tensor) -> torch.Tensor:
    """``sqrt`` whose gradient at 0 is 0, not inf: zero-padded frames (the study's crop) would turn it into NaN."""
    positive = values > 0
    return torch.where(positive, torch.where(positive, values, 1.0).sqrt(), 0.0)


class StridedFIN(FIN):
    """A FIN with one non-negative weight per sample (or pair) it reads: every ``stride``-th of the frame.

    A frame's energy and its sign changes are spread over all of it, so a regular subset estimates both well at
    1/stride of the cost; ``stride=1`` reads everything and equals the closed form at initialisation. The subset
    aliases a steady tone at a multiple of 22,050 / (2·stride) Hz (up to 100 % off for RMS at 1,378 Hz, stride 8;
    1 % away, 4 %): speech does not hold one, a test tone may.
    """

    span = N_FFT  # the positions a weight can sit at: range(0, span, stride)

    def __init__(self, feature: str, stride: int, total_weight: float) -> None:
        super().__init__(feature)
        if not isinstance(stride, int) or not 1 <= stride < N_FFT:
            raise FinserError(f"stride must be an integer from 1 to {N_FFT - 1}, got {stride!r}")
        self.stride = stride
        n_weights = self.n_weights(stride)
        self.log_weight = nn.Parameter(torch.full((n_weights,), math.log(total_weight / n_weights)))

    @classmethod
    def n_weights(cls, stride: int) -> int:
        return len(range(0, cls.span, stride))

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: object) -> None:
        """Name the stride a checkpoint was trained with, rather than torch's bare size mismatch."""
        stored = state_dict.get(prefix + "log_weight")
        if stored is not None and stored.shape != self.log_weight.shape:
            trained = next((stride for stride in range(1, N_FFT) if self.n_weights(stride) == stored.numel()), "?")
            raise FinserError(
                f"the checkpoint's {self.feature} FIN has {stored.numel()} weights (stride={trained}), this one "
                f"{self.log_weight.numel()} (stride={self.stride}): build it with spectral_fin({self.feature!r}, "
                f"stride={trained}), or re-publish it with `python train.py feature={self.feature} fin_arch=spectral`"
            )
        super()._load_from_state_dict(state_dict, prefix, *args)


class SpectralEnergy(StridedFIN):
    """RMS: a learnable non-negative weighting of the squares of every ``stride``-th sample, then a square root.

    The weights start flat (the mean square). The default stride 8 reads 256 samples: ~0.8 kFLOP per frame, 1/175
    of the study's RMS FIN, at R² ≈ 0.999 on unseen speech before training.
    """

    def __init__(self, feature: str = "rms", stride: int = 8) -> None:
        super().__init__(feature, stride, total_weight=1.0)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return sqrt_zero_safe(frames[:, :: self.stride].square() @ self.log_weight.exp()).unsqueeze(-1)


class SpectralCrossings(StridedFIN):
    """ZCR as a soft count of the sign changes among every ``stride``-th pair of neighbours (x[i], x[i+1]).

    A pair changes sign when its product is negative: tanh(x[i]·x[i+1] / (τ·p) + 10) is -1 for a change and +1
    otherwise, with p the mean square of the pairs' first samples and τ learnable (tiny at initialisation, so the
    count is nearly exact). The offset saturates tanh at a product of 0, so an exact zero counts as positive
    (librosa's ``zero_pos``): silence and zero padding count no changes. The default stride 4 reads 512 pairs:
    ~4.6 kFLOP per frame, 1/168 of the study's ZCR FIN, at R² ≈ 0.995 on unseen speech before training.
    """

    span = N_FFT - 1  # pair i is (x[i], x[i + 1])
    OFFSET = 10.0  # tanh(10) is 1 in float32: a zero product reads as exactly "no change"
    TINY = 1e-18  # silence's denominator: its square stays a normal float32, so the backward pass stays finite

    def __init__(self, feature: str = "zcr", stride: int = 4, temperature: float = 1e-10) -> None:
        # (1 - tanh) / 2 is one change; librosa divides the changes among 2047 pairs by 2048.
        super().__init__(feature, stride, total_weight=0.5 * (N_FFT - 1) / N_FFT)
        self.log_temperature = nn.Parameter(torch.tensor(math.log(temperature)))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        first, second = frames[:, : N_FFT - 1 : self.stride], frames[:, 1 :: self.stride]
        power = first.square().mean(dim=-1, keepdim=True)
        agreement = torch.tanh(first * second / (power * self.log_temperature.exp() + self.TINY) + self.OFFSET)
        return ((1 - agreement) @ self.log_weight.exp()).unsqueeze(-1)


_SPECTRAL: dict[str, type[FIN]] = {
    "zcr": SpectralCrossings,
    "rms": SpectralEnergy,
    "chroma": SpectralChroma,
    "mfcc": SpectralMel,
    "melspec": SpectralMel,
    "spectral_centroid": SpectralCentroid,
}


def spectral_fin(feature: str, **options: object) -> FIN:
    """``fin_arch=spectral``: the front-end shaped for ``feature`` (options go to its constructor).

    Options are checked against that constructor before it runs: a checkpoint's description is validated here.
    """
    check_feature(feature)
    constructor = _SPECTRAL[feature]
    accepted = [name for name in inspect.signature(constructor).parameters if name != "feature"]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise FinserError(f"spectral {feature} FIN takes {', '.join(accepted)}, not {', '.join(unknown)}")
    return constructor(feature, **options)


# ----------------------------------------------------------------------------------------------------------------
# The architectures by name: conf/fin_arch/<name>.yaml names one, an SER front-end builds five of one

FIN_ARCHITECTURES: dict[str, Callable[..., FIN]] = {
    "spectral": spectral_fin,
    "conv": functools.partial(study_fin, convolutional=True),
    "fc": functools.partial(study_fin, convolutional=False),
}

# The architectures whose constructor builds the feature's closed form (fin.init=closed_form starts from it).
CLOSED_FORM_ARCHITECTURES = ("spectral",)


def build_fin(feature: str, arch: str = "spectral", **options: object) -> FIN:
    """The ``arch`` FIN of ``feature`` (``fin_arch=<arch>``); options go to that architecture's constructor."""
    if arch not in FIN_ARCHITECTURES:
        raise FinserError(f"unknown fin_arch {arch!r}: expected one of {', '.join(FIN_ARCHITECTURES)}")
    return FIN_ARCHITECTURES[arch](feature, **options)

"""The study's two augmented copies of each training clip, and clip paths that name a version.

An augmented copy is a Clip whose path is ``<source path>#aug=<version>``: it flows through splits, manifests and
:func:`finser.data.frames.load_clips` like any clip, and :func:`render` makes its audio (the cache stores it).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import replace

import librosa
import numpy as np

from finser.data.audio import SAMPLE_RATE, AudioSpec, band_limit, crop, fit_length, load_audio
from finser.data.labels import Clip, split_segment

TAG = "#aug="
NOISE_AMPLITUDE = 0.035
STRETCH_RATE = 0.8
PITCH_STEPS = 0.7


def add_noise(signal: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise of amplitude 0.035·U(0,1)·max|x| (the study's ``noise``)."""
    amplitude = NOISE_AMPLITUDE * rng.uniform() * np.abs(signal).max(initial=0.0)
    return (signal + amplitude * rng.standard_normal(signal.size)).astype(np.float32)


def stretch_then_pitch(signal: np.ndarray, rng: np.random.Generator, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Time-stretch at rate 0.8 (25% slower) then pitch-shift +0.7 semitone (the study's ``stretch`` + ``pitch``)."""
    stretched = librosa.effects.time_stretch(signal, rate=STRETCH_RATE)
    return librosa.effects.pitch_shift(stretched, sr=sample_rate, n_steps=PITCH_STEPS).astype(np.float32)


VERSIONS: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    "noise": add_noise,
    "stretch_pitch": stretch_then_pitch,
}


def clip_seed(name: str, seed: int) -> np.random.Generator:
    """A generator fixed by the clip's file name and ``seed``: the same noise on every run and machine."""
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def augmented_versions(signal: np.ndarray, seed: int = 0) -> list[np.ndarray]:
    """The two augmented copies of one prepared signal: [noise, stretch→pitch], each as long as the input."""
    rng = np.random.default_rng(seed)
    return [fit_length(version(signal, rng), signal.size) for version in VERSIONS.values()]


def split_tag(path: str) -> tuple[str, str]:
    """``'a.wav#aug=noise'`` → ``('a.wav', 'noise')``; an untagged path is the ``'original'``."""
    source, _, version = path.partition(TAG)
    return source, version or "original"


def augmented_clips(clips: list[Clip]) -> list[Clip]:
    """One tagged copy per version of each clip, in the same split as its source."""
    return [replace(clip, path=f"{clip.path}{TAG}{version}") for clip in clips for version in VERSIONS]


def render(path: str, spec: AudioSpec, seed: int = 0) -> np.ndarray:
    """The audio of a (possibly tagged, possibly cut) clip path: decode, crop, augment, band-limit, fix the length.

    The band limit comes last so that added noise cannot put back the band it removes.
    """
    source, version = split_tag(path)
    file, start, end = split_segment(source)
    signal = crop(load_audio(file, spec.sample_rate, start, end), spec)
    if version != "original":
        augmented = VERSIONS[version](signal, clip_seed(source.rsplit("/", 1)[-1], seed))
        signal = fit_length(augmented, signal.size)
    return np.ascontiguousarray(band_limit(signal, spec.band_limit_hz, spec.sample_rate), dtype=np.float32)

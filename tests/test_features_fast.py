"""The compiled CPU path (chunks, fused sample and spectrum passes, sparse mel bands) still equals librosa.

Batches span several chunks of ``CHUNK_FRAMES`` (the last one partial) and come as overlapping views of a clip,
as the data module and the SER front-end pass them. Tolerance, as in test_features.py: float32 FFT and matmul
order differ from librosa's (numpy/scipy, float64 FFT), so each feature may differ by 1e-3 of its largest value
over the batch, plus 1e-3 absolute on the dB-domain MFCCs; ZCR is a count and must be exact.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from finser import features
from finser.errors import FinserError
from tests.conftest import speech_like_frames

RELATIVE = 1e-3
SAMPLE_RATE = features.SAMPLE_RATE


def clip(kind: str, n_frames: int) -> np.ndarray:
    """A clip of exactly ``n_frames`` frames (hop 512, center=False) of one kind of signal."""
    rng = np.random.default_rng(7)
    length = features.N_FFT + (n_frames - 1) * features.HOP_LENGTH
    time = np.arange(length) / SAMPLE_RATE
    if kind == "random":
        envelope = np.repeat(rng.uniform(1e-4, 0.8, length // 512 + 1), 512)[:length]
        return (rng.standard_normal(length) * envelope).astype(np.float32)
    if kind == "tonal":
        frequencies = np.geomspace(55, 9000, 5)
        return (0.2 * sum(np.sin(2 * np.pi * f * time * (1 + 0.05 * time)) for f in frequencies)).astype(np.float32)
    if kind == "silent":
        signal = np.zeros(length, dtype=np.float32)
        signal[length // 2 : length // 2 + 3000] = 1e-11 * rng.standard_normal(3000)  # below ZCR's threshold
        return signal
    speech = np.concatenate([frame[:512] for frame in speech_like_frames(seed=99, n_clips=8)])
    return np.resize(speech, length).astype(np.float32)


def librosa_values(frames: np.ndarray) -> dict[str, np.ndarray]:
    per_frame = [features.reference_features(frame) for frame in frames]
    return {name: np.stack([values[name] for values in per_frame]) for name in features.REGISTERED_FEATURES}


def assert_like_librosa(got: dict[str, torch.Tensor], expected: dict[str, np.ndarray]) -> None:
    for name, reference in expected.items():
        value = got[name].double().numpy()
        assert value.shape == reference.shape, name
        if name == "zcr":
            np.testing.assert_array_equal(np.round(value * features.N_FFT), np.round(reference * features.N_FFT))
            continue
        scale = max(float(np.abs(reference).max()), 1e-6)
        atol = RELATIVE * scale + (1e-3 if name == "mfcc" else 0.0)
        np.testing.assert_allclose(value, reference, rtol=0, atol=atol, err_msg=name)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["random", "tonal", "silent", "speech"])
def test_chunked_compute_all_equals_librosa_on_overlapping_views(kind: str) -> None:
    n_frames = 2 * features.CHUNK_FRAMES + 37
    signal = torch.from_numpy(clip(kind, n_frames))
    frames = features.frame_signal(signal)
    assert frames.shape == (n_frames, features.N_FFT) and not frames.is_contiguous()
    got = features.compute_all(frames, features.REGISTERED_FEATURES)
    assert_like_librosa(got, librosa_values(frames.numpy()))
    for name, value in got.items():
        assert value.is_contiguous()
        torch.testing.assert_close(value, features.compute(name, frames), rtol=0, atol=0)


def test_chunked_path_equals_the_one_pass_functional_path() -> None:
    frames = features.frame_signal(torch.from_numpy(clip("speech", features.CHUNK_FRAMES + 5)))
    chunked = features.compute_all(frames, features.REGISTERED_FEATURES)
    # Frames that need a gradient take the functional path (no out= buffers, one pass).
    one_pass = features.compute_all(frames.clone().requires_grad_(True), features.REGISTERED_FEATURES)
    for name in features.REGISTERED_FEATURES:
        assert one_pass[name].requires_grad == (name != "zcr")
        torch.testing.assert_close(
            one_pass[name].detach(), chunked[name], rtol=1e-5, atol=1e-6 * chunked[name].abs().max()
        )


@pytest.mark.slow
def test_float64_frames_equal_librosa() -> None:
    frames = features.frame_signal(torch.from_numpy(clip("tonal", 40)).double())
    got = features.compute_all(frames, features.REGISTERED_FEATURES)
    assert all(value.dtype == torch.float64 for value in got.values())
    assert_like_librosa(got, librosa_values(frames.float().numpy()))


def test_mel_bands_hold_every_nonzero_weight_of_the_filterbank() -> None:
    dense = features.mel_filterbank().numpy()
    first, offsets, weights = features.mel_bands()
    rebuilt = np.zeros_like(dense)
    for band, low in enumerate(first):
        values = weights[offsets[band] : offsets[band + 1]]
        rebuilt[band, low : low + len(values)] = values
    np.testing.assert_array_equal(rebuilt, dense)
    assert len(weights) < dense.size / 50


def test_zcr_counts_exactly_at_the_threshold() -> None:
    threshold = np.float32(features.ZCR_THRESHOLD)
    row = np.zeros(2048, dtype=np.float32)
    row[1::2] = -threshold  # exactly at -1e-10: zeroed by librosa, so no crossing
    row[::4] = -2 * threshold  # below: negative
    row[2::4] = 0.5
    frames = np.stack([row, -row, np.abs(row)])
    got = features.compute("zcr", torch.from_numpy(frames)).numpy()
    np.testing.assert_array_equal(got, librosa_values(frames)["zcr"])


def test_a_bad_sample_in_a_later_chunk_is_still_caught() -> None:
    frames = torch.zeros(features.CHUNK_FRAMES * 2 + 3, features.N_FFT)
    frames[-1, 100] = float("inf")
    with pytest.raises(FinserError, match="NaN or inf"):
        features.compute_all(frames)
    frames[-1, 100] = float("nan")
    with pytest.raises(FinserError, match="NaN or inf"):
        features.compute("zcr", frames)


def test_huge_finite_samples_are_accepted() -> None:
    """A frame whose sum overflows float32 is finite: the fast check must fall back, not raise."""
    frames = torch.full((2, features.N_FFT), 3e35)
    assert not torch.isfinite(frames.sum(dim=-1)).all()
    assert float(features.compute("zcr", frames)[0, 0]) == 0.0


def test_an_empty_batch_gives_empty_features() -> None:
    got = features.compute_all(torch.zeros(0, features.N_FFT), features.REGISTERED_FEATURES)
    assert {name: tuple(value.shape) for name, value in got.items()} == {
        name: (0, dim) for name, dim in features.FEATURE_DIMS.items()
    }


@pytest.mark.parametrize(
    "subset",
    [("mfcc",), ("rms", "zcr"), ("chroma", "mfcc"), ("melspec", "rms"), ("spectral_centroid",),
     ("chroma", "spectral_centroid")],
)  # fmt: skip
def test_a_subset_of_features_equals_those_of_all_of_them(subset: tuple[str, ...]) -> None:
    """MFCCs without the melspec output, RMS (one reduction outside the chunks), or a feature of the magnitudes
    with or without the chroma's, take other routes."""
    frames = features.frame_signal(torch.from_numpy(clip("speech", features.CHUNK_FRAMES + 3)))
    every = features.compute_all(frames, features.REGISTERED_FEATURES)
    got = features.compute_all(frames, subset)
    assert tuple(got) == subset
    for name in subset:
        assert got[name].is_contiguous()
        torch.testing.assert_close(got[name], every[name], rtol=0, atol=0)


def test_every_memory_layout_of_the_frames_gives_the_same_values() -> None:
    """The compiled pass reads rows as slices of one signal: offsets, gaps and column strides must not matter."""
    signal = torch.from_numpy(clip("speech", 40))
    views = features.frame_signal(signal)
    contiguous = views.contiguous()
    expected = features.compute_all(contiguous)
    layouts = {
        "overlapping views": views,
        "with an offset": features.frame_signal(signal[512:]),
        "every other row": contiguous[::2],
        "column-major": contiguous.T.contiguous().T,
        "one row": contiguous[5:6],
    }
    rows = {"overlapping views": slice(None), "with an offset": slice(1, None), "every other row": slice(None, None, 2)}
    rows |= {"column-major": slice(None), "one row": slice(5, 6)}
    for name, frames in layouts.items():
        got = features.compute_all(frames)
        for feature, value in got.items():
            torch.testing.assert_close(value, expected[feature][rows[name]], rtol=0, atol=0, msg=f"{name}: {feature}")

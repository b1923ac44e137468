"""finser.features equals librosa per frame (center=False) on random, tonal, silent and speech-like signals."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from finser import features
from finser.errors import FinserError
from tests.conftest import speech_like_frames

SAMPLE_RATE = features.SAMPLE_RATE
# Tolerance: float32 FFT and matmul order differ from librosa's (numpy/scipy float32): relative 1e-3 of the
# feature's scale over the batch, plus 1e-3 absolute on the dB-domain MFCCs (values up to ~1e3).
RELATIVE = 1e-3


def signals() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(20261125)
    time = np.arange(2048) / SAMPLE_RATE
    tones = np.stack(
        [
            0.3 * np.sin(2 * np.pi * f * time + p)
            for f, p in zip(rng.uniform(60, 8000, 6), rng.uniform(0, 6, 6), strict=True)
        ]
    )
    return {
        "random": (rng.standard_normal((8, 2048)) * rng.uniform(1e-3, 0.5, (8, 1))).astype(np.float32),
        "tonal": tones.astype(np.float32),
        "silent": np.zeros((2, 2048), dtype=np.float32),
        "speech": speech_like_frames(seed=424242)[::7].astype(np.float32),
    }


def reference(frames: np.ndarray, feature: str) -> np.ndarray:
    return np.stack([features.reference_features(frame)[feature] for frame in frames])


@pytest.mark.parametrize("kind", ["random", "tonal", "silent", "speech"])
@pytest.mark.parametrize("feature", features.REGISTERED_FEATURES)
def test_compute_equals_librosa(feature: str, kind: str) -> None:
    frames = signals()[kind]
    expected = reference(frames, feature)
    got = features.compute(feature, torch.from_numpy(frames)).numpy()
    assert got.shape == (len(frames), features.FEATURE_DIMS[feature])
    scale = max(float(np.abs(expected).max()), 1e-6)
    np.testing.assert_allclose(got, expected, rtol=0, atol=RELATIVE * scale + (1e-3 if feature == "mfcc" else 0))


def test_compute_all_equals_compute_for_every_feature() -> None:
    frames = torch.from_numpy(signals()["speech"])
    assert sum(value.shape[1] for value in features.compute_all(frames).values()) == 162  # the study's five
    together = features.compute_all(frames, features.REGISTERED_FEATURES)
    assert tuple(together) == features.REGISTERED_FEATURES
    for name, value in together.items():
        torch.testing.assert_close(value, features.compute(name, frames), rtol=0, atol=0)


def test_the_study_s_five_are_registered_features_and_the_default() -> None:
    assert features.FEATURES == ("zcr", "rms", "chroma", "mfcc", "melspec")
    assert set(features.FEATURES) < set(features.REGISTERED_FEATURES) == set(features.FEATURE_DIMS)
    assert sum(features.FEATURE_DIMS[name] for name in features.FEATURES) == 162


# The centroid is a ratio of two sums over 1,025 bins, within 1e-4 of librosa's relative to each frame's own value,
# and exactly 0 where librosa's is (digital silence). Noise and speech agree to ~4e-7; a pure tone leaves nearly
# every bin empty but for the float32 FFT's rounding (~1e-7 of the peak each), which the high bins' frequencies
# weigh in: up to ~4e-5 off here (librosa's FFT rounds less, its sums are float64).
CENTROID_RELATIVE = 1e-4


@pytest.mark.parametrize("gradient", [False, True], ids=["compiled CPU path", "torch path"])
def test_spectral_centroid_equals_librosa_frame_by_frame(gradient: bool) -> None:
    kinds = signals()
    partly_silent = kinds["speech"][:2].copy()
    partly_silent[:, 1024:] = 0.0
    frames = np.concatenate([kinds["random"], kinds["speech"], kinds["tonal"], kinds["silent"], partly_silent])
    expected = reference(frames, "spectral_centroid")
    tensor = torch.from_numpy(frames).requires_grad_(gradient)
    got = features.compute_all(tensor, ("spectral_centroid",))["spectral_centroid"]
    assert got.shape == (len(frames), 1) and got.requires_grad == gradient
    got = got.detach().numpy()
    np.testing.assert_allclose(got, expected, rtol=CENTROID_RELATIVE, atol=0)
    assert (got[-4:-2] == 0.0).all()  # silence: librosa's 0 Hz, no NaN


def test_spectral_centroid_of_a_pure_tone_is_its_frequency() -> None:
    time = np.arange(2048) / SAMPLE_RATE
    tone = torch.tensor(np.sin(2 * np.pi * 1000.0 * time), dtype=torch.float32)[None]
    assert float(features.compute("spectral_centroid", tone)[0, 0]) == pytest.approx(1000.0, rel=0.02)


def test_known_answers() -> None:
    time = np.arange(2048) / SAMPLE_RATE
    a440 = torch.tensor(0.5 * np.sin(2 * np.pi * 440.0 * time), dtype=torch.float32)[None]
    chroma = features.compute("chroma", a440)[0]
    assert int(chroma.argmax()) == 9 and float(chroma.max()) == pytest.approx(1.0)  # C C# D ... A is bin 9
    assert float(features.compute("rms", a440)[0, 0]) == pytest.approx(0.5 / np.sqrt(2), rel=1e-3)
    # 440 Hz crosses zero 2 × 440 times a second.
    assert float(features.compute("zcr", a440)[0, 0]) == pytest.approx(2 * 440 / SAMPLE_RATE, abs=2 / 2048)
    silence = torch.zeros(1, 2048)
    assert float(features.compute("rms", silence)) == 0.0 and float(features.compute("zcr", silence)) == 0.0


def test_frame_signal_is_a_view_of_the_clip() -> None:
    signal = torch.arange(2048 + 3 * 512 + 100, dtype=torch.float32)
    frames = features.frame_signal(signal)
    assert frames.shape == (4, 2048)
    assert frames.untyped_storage().data_ptr() == signal.untyped_storage().data_ptr()
    assert frames.stride() == (512, 1)
    assert float(frames[3, 0]) == 3 * 512
    with pytest.raises(FinserError, match="at least 2048 samples"):
        features.frame_signal(torch.zeros(2047))


@pytest.mark.parametrize(
    ("frames", "message"),
    [
        (torch.zeros(4, 1024), r"shape \(B, 2048\)"),
        (torch.zeros(2048), r"shape \(B, 2048\)"),
        (torch.zeros(4, 2048, dtype=torch.int16), "float32"),
        (np.zeros((4, 2048), dtype=np.float32), "torch.Tensor"),
        (torch.full((2, 2048), float("nan")), "NaN"),
    ],
)
def test_bad_frames_raise_a_value_error_saying_what_was_expected(frames: object, message: str) -> None:
    with pytest.raises(FinserError, match=message):
        features.compute("rms", frames)


def test_unknown_feature_lists_the_known_ones() -> None:
    with pytest.raises(FinserError, match="expected one of zcr, rms, chroma, mfcc, melspec, spectral_centroid"):
        features.compute("spectral_flux", torch.zeros(1, 2048))

"""The references beside a SER run's scores: the linear probe on time-mean exact features, and FIN drift."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from finser.data.labels import EMOTIONS
from finser.data.synthetic import SyntheticCorpusSpec, clip_audio
from finser.data.utterances import Utterance
from finser.features import FEATURES, SAMPLE_RATE
from finser.models.fin import spectral_fin
from finser.models.frontends import PCEN, LeafFrontEnd
from finser.models.ser import FINFrontEnd
from finser.tasks.references import PROBE_C, fin_drift, linear_probe, time_mean_features
from finser.tasks.ser import classification_metrics

N_CLASSES = 8


def tones(n_per_class: int, seed: int) -> list[Utterance]:
    """Each emotion index is a pure tone of its own pitch (220 Hz · 1.5^index), random level and noise: linearly
    separable by the time-mean chroma and mel bands."""
    generator = np.random.default_rng(seed)
    time = np.arange(4096) / SAMPLE_RATE
    clips = []
    for emotion in range(N_CLASSES):
        for index in range(n_per_class):
            signal = generator.uniform(0.1, 0.5) * np.sin(2 * np.pi * 220 * 1.5**emotion * time)
            signal += 0.01 * generator.standard_normal(time.size)
            clips.append(Utterance(torch.from_numpy(signal.astype(np.float32)), emotion, "toy", f"{seed}/{index}"))
    return clips


def test_time_mean_features_are_the_mean_of_compute_all_per_frame() -> None:
    clips = tones(1, seed=0)
    features, emotions = time_mean_features(clips)
    assert features.shape == (N_CLASSES, 162) and emotions.tolist() == list(range(N_CLASSES))


def test_the_linear_probe_scores_a_separable_toy_set_near_perfectly() -> None:
    sets = {"train": tones(6, seed=0), "val": tones(3, seed=1), "test": tones(3, seed=2), "other": tones(2, seed=3)}
    prefixes = {"test": "test/", "other": "eval/other/"}
    results = linear_probe(sets, classification_metrics(N_CLASSES), prefixes)
    assert results["C"] in PROBE_C
    for prefix in ("train/", "val/", "test/", "eval/other/"):
        assert {f"{prefix}{key}" for key in ("acc", "f1_macro", "f1_weighted")} <= set(results)
    assert results["test/f1_macro"] > 0.95 and results["eval/other/acc"] > 0.95


def test_the_probe_finds_nothing_in_labels_unrelated_to_the_sound() -> None:
    clips = tones(4, seed=0)
    shuffled = [
        Utterance(clip.waveform, int(label), clip.corpus, clip.key)
        for clip, label in zip(clips, np.random.default_rng(0).permutation([c.emotion for c in clips]), strict=True)
    ]
    results = linear_probe({"train": shuffled, "val": tones(2, seed=1), "test": tones(2, seed=2)},
                           classification_metrics(N_CLASSES), {"test": "test/"})  # fmt: skip
    assert results["test/acc"] < 0.5  # labels unrelated to the sound: nothing to find


def test_an_untouched_closed_form_fin_imitates_its_feature() -> None:
    spec = SyntheticCorpusSpec(seed=4)
    speech = [
        Utterance(torch.from_numpy(clip_audio(spec, index, emotion, 0)), index, "synthetic", emotion)
        for index, emotion in enumerate(EMOTIONS)
    ]
    fins = {feature: spectral_fin(feature).eval() for feature in FEATURES}
    drift = fin_drift(fins, speech)
    assert set(drift) == set(FEATURES)
    assert all(value == pytest.approx(1.0, abs=0.01) for value in drift.values()), drift


def test_the_own_input_probe_reads_the_front_ends_values_and_leaves_its_mode() -> None:
    """A frozen FIN front-end's head sees the FINs' values: the closed-form spectral FINs give the exact features'
    time-means closely, the same FINs redrawn at random do not, and the front-end goes back to training mode."""
    clips = tones(1, seed=0)
    exact, _ = time_mean_features(clips)
    front_end = FINFrontEnd("spectral").train()
    constructed, emotions = time_mean_features(clips, front_end=front_end)
    assert emotions.tolist() == list(range(N_CLASSES)) and all(module.training for module in front_end.modules())
    np.testing.assert_allclose(constructed, exact, atol=0.05 * np.abs(exact).max())  # the construction imitates
    torch.manual_seed(0)
    front_end.randomize_()
    redrawn, _ = time_mean_features(clips, front_end=front_end)
    assert not np.allclose(redrawn, exact, atol=0.05 * np.abs(exact).max())
    sets = {"train": tones(6, seed=0), "val": tones(3, seed=1), "test": tones(3, seed=2)}
    results = linear_probe(sets, classification_metrics(N_CLASSES), {"test": "test/"}, front_end=front_end)
    assert results["C"] in PROBE_C and "test/f1_macro" in results


def test_a_front_ends_own_values_pass_through_its_own_compression() -> None:
    """LEAF's values reach its head through PCEN, not the FINs' log-mel: the probe's input follows the front-end."""
    values, emotions = time_mean_features(tones(1, seed=0), front_end=LeafFrontEnd(n_filters=8), compress=PCEN(8))
    assert values.shape == (N_CLASSES, 8) and np.isfinite(values).all() and emotions.tolist() == list(range(N_CLASSES))

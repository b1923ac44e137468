"""FIN architectures: shapes, the study's sizes, our FLOP budget, and sound training of the spectral front-end."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode
from torchmetrics.functional import r2_score

from finser.features import FEATURE_DIMS, FEATURES, compute
from finser.models.fin import BandMixer, spectral_fin, study_fin
from tests.conftest import speech_like_frames

# paper.md: parameters and multiply-accumulates per frame of the study's FINs.
STUDY_PARAMETERS = {"rms": 66_000, "zcr": 263_000, "chroma": 900_000, "mfcc": 822_000, "melspec": 983_000}
STUDY_MACS = {"rms": 0.07e6, "zcr": 0.39e6, "chroma": 202e6, "mfcc": 202e6, "melspec": 404e6}
STUDY_DENSE = {"rms"}  # the study's RMS FIN is dense-only; the others have a conv front-end


def count_parameters(module: torch.nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


def flops_per_frame(module: torch.nn.Module) -> float:
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        module(torch.randn(1, 2048))
    return counter.get_total_flops()


@pytest.mark.parametrize("feature", FEATURES)
@pytest.mark.parametrize("arch", ["spectral", "fc", "conv"])
def test_output_shape(feature: str, arch: str) -> None:
    net = spectral_fin(feature) if arch == "spectral" else study_fin(feature, convolutional=arch == "conv")
    assert net(torch.randn(3, 2048)).shape == (3, FEATURE_DIMS[feature])


@pytest.mark.parametrize("feature", FEATURES)
@pytest.mark.parametrize("arch", ["spectral", "fc", "conv"])
def test_gradients_stay_finite_on_zero_padded_frames(feature: str, arch: str) -> None:
    """The study's crop zero-pads short clips: silent frames must not turn fine-tuning into NaN."""
    net = spectral_fin(feature) if arch == "spectral" else study_fin(feature, convolutional=arch == "conv")
    frames = torch.cat([torch.zeros(2, 2048), torch.from_numpy(speech_like_frames(seed=3))[:2]])
    net(frames).sum().backward()
    for name, parameter in net.named_parameters():
        assert torch.isfinite(parameter.grad).all(), f"{feature}/{arch}: non-finite gradient in {name}"


@pytest.mark.parametrize("feature", FEATURES)
def test_study_topology_matches_the_papers_parameter_count(feature: str) -> None:
    net = study_fin(feature, convolutional=feature not in STUDY_DENSE)
    assert count_parameters(net) == pytest.approx(STUDY_PARAMETERS[feature], rel=0.10)


@pytest.mark.parametrize("feature", ["chroma", "mfcc", "melspec"])
def test_spectral_needs_at_most_a_hundredth_of_the_studys_flops(feature: str) -> None:
    assert flops_per_frame(spectral_fin(feature)) <= 2 * STUDY_MACS[feature] / 100
    assert flops_per_frame(study_fin(feature)) == pytest.approx(2 * STUDY_MACS[feature], rel=0.05)


@pytest.mark.parametrize("feature", FEATURES)
def test_spectral_fin_starts_near_the_closed_form_on_unseen_speech(feature: str) -> None:
    frames = torch.from_numpy(speech_like_frames(seed=777, n_clips=3))
    with torch.no_grad():
        predicted, target = spectral_fin(feature)(frames), compute(feature, frames)
    assert float(r2_score(predicted, target, multioutput="variance_weighted")) > 0.99


def test_band_mixer_keeps_its_zeros_under_training() -> None:
    initial = torch.tensor([[1.0, 0.0, 0.5], [0.0, 2.0, 0.0]]).numpy()
    mixer = BandMixer(initial)
    optimizer = torch.optim.Adam(mixer.parameters(), lr=0.1)
    for _ in range(20):
        optimizer.zero_grad()
        mixer(torch.rand(8, 3)).sum().backward()
        optimizer.step()
    weight = mixer.weight().detach()
    assert torch.equal(weight == 0, torch.from_numpy(initial) == 0)
    assert (weight >= 0).all() and not torch.allclose(weight, torch.from_numpy(initial))


def test_study_fin_undoes_target_scaling_inside() -> None:
    net = study_fin("mfcc")
    frames = torch.randn(2, 2048)
    standardised = net.body(frames)
    net.output_scale.set_statistics(torch.full((20,), 3.0), torch.full((20,), 2.0))
    torch.testing.assert_close(net(frames), standardised * 2.0 + 3.0)

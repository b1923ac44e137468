"""FIN architectures: shapes, the study's sizes, our FLOP budget, and sound training of the spectral front-end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode
from torchmetrics.functional import r2_score

from finser.errors import FinserError
from finser.features import FEATURE_DIMS, FEATURES, REGISTERED_FEATURES, compute
from finser.models.checkpoint import load_fin, save_checkpoint
from finser.models.cost import operations_per_frame
from finser.models.fin import BandMixer, spectral_fin, study_fin
from finser.study import DENSE_FINS, FIN_MACS, FIN_PARAMETERS
from tests.conftest import speech_like_frames

STRIDED = ["rms", "zcr"]  # spectral FINs that read every stride-th sample (pair)


def count_parameters(module: torch.nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


def flops_per_frame(module: torch.nn.Module) -> float:
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        module(torch.randn(1, 2048))
    return counter.get_total_flops()


@pytest.mark.parametrize("feature", REGISTERED_FEATURES)
@pytest.mark.parametrize("arch", ["spectral", "fc", "conv"])
def test_output_shape(feature: str, arch: str) -> None:
    net = spectral_fin(feature) if arch == "spectral" else study_fin(feature, convolutional=arch == "conv")
    assert net(torch.randn(3, 2048)).shape == (3, FEATURE_DIMS[feature])


@pytest.mark.parametrize("feature", REGISTERED_FEATURES)
@pytest.mark.parametrize("arch", ["spectral", "fc", "conv"])
def test_gradients_stay_finite_on_zero_padded_frames(feature: str, arch: str) -> None:
    """The study's crop zero-pads short clips: silent frames must not turn fine-tuning into NaN."""
    net = spectral_fin(feature) if arch == "spectral" else study_fin(feature, convolutional=arch == "conv")
    frames = torch.cat([torch.zeros(2, 2048), torch.from_numpy(speech_like_frames(seed=3))[:2]])
    net(frames).sum().backward()
    for name, parameter in net.named_parameters():
        assert torch.isfinite(parameter.grad).all(), f"{feature}/{arch}: non-finite gradient in {name}"


@pytest.mark.parametrize("feature", REGISTERED_FEATURES)
def test_spectral_fin_of_digital_silence_is_librosas(feature: str) -> None:
    """Pauses and the study's zero padding are exact zeros: the FIN must give librosa's value there too."""
    silence = torch.zeros(3, 2048)
    with torch.no_grad():
        predicted = spectral_fin(feature)(silence)
    target = compute(feature, silence)
    assert torch.allclose(predicted, target, rtol=1e-4, atol=1e-4 * max(1.0, float(target.abs().max()))), feature


@pytest.mark.parametrize("feature", FEATURES)
def test_study_topology_matches_the_papers_parameter_count(feature: str) -> None:
    net = study_fin(feature, convolutional=feature not in DENSE_FINS)
    assert count_parameters(net) == pytest.approx(FIN_PARAMETERS[feature], rel=0.10)


@pytest.mark.parametrize("feature", REGISTERED_FEATURES)
def test_spectral_needs_at_most_a_hundredth_of_the_studys_flops(feature: str) -> None:
    """All ops (finser.models.cost, as bench section 2 reports): matmul FLOPs plus one per element of every other op,
    against our copy of the study's FIN of the feature (of the study's FIN it borrows, for one the study had not)."""
    frames = torch.from_numpy(speech_like_frames(seed=3, n_clips=1)[:16])
    study = flops_per_frame(study_fin(feature, convolutional=feature not in DENSE_FINS))
    assert operations_per_frame(spectral_fin(feature), frames) <= study / 100


@pytest.mark.parametrize("feature", FEATURES)
def test_our_copies_of_the_study_s_fins_cost_what_the_paper_says(feature: str) -> None:
    """The paper's figures, which the goal divides, are those of our copies of its FINs (it rounds RMS's to 0.07 M)."""
    study = study_fin(feature, convolutional=feature not in DENSE_FINS)
    assert flops_per_frame(study) == pytest.approx(2 * FIN_MACS[feature], rel=0.10)


def test_a_feature_the_study_had_not_borrows_the_topology_of_one_it_had() -> None:
    for convolutional in (True, False):
        borrowed, chroma = study_fin("spectral_centroid", convolutional), study_fin("chroma", convolutional)
        assert [p.shape[1:] for p in borrowed.parameters()] == [p.shape[1:] for p in chroma.parameters()]
        assert borrowed(torch.randn(2, 2048)).shape == (2, 1)


def test_the_spectral_centroid_fin_learns_its_weights_and_atoms() -> None:
    """Gradients reach the centroid's two sums and the Fourier atoms; the sums take full steps, the atoms small ones."""
    net = spectral_fin("spectral_centroid")
    frames = torch.from_numpy(speech_like_frames(seed=5, n_clips=1))
    torch.nn.functional.mse_loss(net(frames), compute("spectral_centroid", frames)).backward()
    for name, parameter in net.named_parameters():
        assert torch.isfinite(parameter.grad).all() and parameter.grad.abs().sum() > 0, name
    groups = net.parameter_groups(1e-3)
    assert [group["lr"] for group in groups] == [1e-3, pytest.approx(1e-5)]
    assert any(parameter is net.atoms.weight for parameter in groups[1]["params"])


@pytest.mark.parametrize("feature", REGISTERED_FEATURES)
def test_spectral_fin_starts_near_the_closed_form_on_unseen_speech(feature: str) -> None:
    """0.99 for every feature, strided RMS and ZCR included: above the study's trained FINs (0.93 to 0.98)."""
    frames = torch.from_numpy(speech_like_frames(seed=777, n_clips=3))
    with torch.no_grad():
        predicted, target = spectral_fin(feature)(frames), compute(feature, frames)
    assert float(r2_score(predicted, target, multioutput="variance_weighted")) > 0.99


@pytest.mark.parametrize("feature", STRIDED)
def test_stride_one_reads_every_sample_and_equals_the_closed_form(feature: str) -> None:
    frames = torch.from_numpy(speech_like_frames(seed=777, n_clips=3))
    with torch.no_grad():
        predicted = spectral_fin(feature, stride=1)(frames)
    torch.testing.assert_close(predicted, compute(feature, frames), rtol=0, atol=2e-3 * float(predicted.max()))


def test_strided_rms_follows_the_level_of_white_noise() -> None:
    """White noise has no structure a stride could alias with: every 8th sample carries its level."""
    generator = np.random.default_rng(0)
    gains = np.exp(generator.uniform(np.log(1e-3), 0.0, size=(512, 1)))
    frames = torch.from_numpy((generator.standard_normal((512, 2048)) * gains).astype(np.float32))
    with torch.no_grad():
        predicted = spectral_fin("rms")(frames)
    assert float(r2_score(predicted, compute("rms", frames))) > 0.99


@pytest.mark.parametrize("feature", STRIDED)
@pytest.mark.parametrize("stride", [1, None])
def test_silence_and_runs_of_zeros_read_as_librosa_does(feature: str, stride: int | None) -> None:
    """Silence is exactly 0; zero padding adds no crossings (librosa counts 0 as positive) and no energy.

    The second frame changes sign at every sample, then holds zeros: at any stride, half its pairs cross.
    """
    net = spectral_fin(feature) if stride is None else spectral_fin(feature, stride=stride)
    frames = torch.zeros(2, 2048)
    frames[1, :1024] = 0.3 * (-1.0) ** torch.arange(1024)
    with torch.no_grad():
        predicted = net(frames)
    assert float(predicted[0]) == 0.0
    torch.testing.assert_close(predicted, compute(feature, frames), rtol=0, atol=1e-3)


@pytest.mark.parametrize("feature", STRIDED)
def test_a_checkpoint_of_another_stride_is_refused_naming_it(tmp_path: Path, feature: str) -> None:
    """Published configs hold only the feature, so a file trained at another stride must say which one."""
    config = {"_target_": "finser.models.fin.spectral_fin", "feature": feature}
    default = spectral_fin(feature)
    assert load_fin(save_checkpoint(default, config, tmp_path / "default.ckpt", kind="fin")).stride == default.stride
    save_checkpoint(spectral_fin(feature, stride=1), config, tmp_path / "exact.ckpt", kind="fin")
    with pytest.raises(FinserError, match=rf"stride=1\), this one .* \(stride={default.stride}\)"):
        load_fin(tmp_path / "exact.ckpt")


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

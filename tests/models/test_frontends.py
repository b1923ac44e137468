"""The learnable front-ends (SincNet, LEAF with PCEN) and the closed-form FIN control: shapes, gradients, their
mel initialisation measured from the filters' own responses, and published checkpoints that load back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from finser.data.labels import EMOTIONS
from finser.errors import FinserError
from finser.features import FEATURES, SAMPLE_RATE
from finser.inference import EmotionPredictor
from finser.models.checkpoint import load_model, save_checkpoint
from finser.models.fin import build_fin
from finser.models.frontends import PCEN, LeafFrontEnd, SincNetFrontEnd
from finser.pipeline import FrontEndWeights
from tests.conftest import REPO, speech_like_frames

N_FFT_RESPONSE = 1 << 16  # zero-padded response: a grid of 0.34 Hz


def htk_mel_points(n_points: int, fmin: float, fmax: float) -> np.ndarray:
    """Evenly spaced on 2595 log10(1 + f / 700), written out here rather than taken from the code under test."""
    mel = np.linspace(2595 * np.log10(1 + fmin / 700), 2595 * np.log10(1 + fmax / 700), n_points)
    return 700 * (10 ** (mel / 2595) - 1)


def compose_preset(experiment: str, *overrides: str):
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose("train", overrides=[f"experiment={experiment}", *overrides])


@pytest.mark.parametrize("front_end", [SincNetFrontEnd, LeafFrontEnd])
def test_one_non_negative_band_power_per_filter_and_frame(front_end) -> None:
    frames = torch.from_numpy(speech_like_frames(seed=3, n_clips=1))
    values = front_end(n_filters=40)(frames)
    values = values.detach()
    assert values.shape == (len(frames), 40) and bool((values >= 0).all()) and float(values.sum()) > 0


@pytest.mark.parametrize("front_end", [SincNetFrontEnd, LeafFrontEnd])
def test_a_tone_peaks_in_the_filter_nearest_its_frequency(front_end) -> None:
    module = front_end()
    centres = torch.stack(module.cutoffs_hz()).mean(0) if isinstance(module, SincNetFrontEnd) else module.centres_hz()
    for frequency in (300.0, 1000.0, 3000.0):
        tone = torch.sin(2 * np.pi * frequency * torch.arange(2048) / SAMPLE_RATE).unsqueeze(0)
        assert int(module(tone).argmax()) == int((centres - frequency).abs().argmin()), frequency


@pytest.mark.parametrize("experiment", ["ser_sincnet", "ser_leaf"])
def test_gradients_reach_every_front_end_and_pcen_parameter(experiment: str) -> None:
    cfg = compose_preset(experiment)
    net = instantiate(cfg.task.net)
    assert net.head.norm.num_features == cfg.front_end.net.n_filters  # the head's input size follows the front-end
    waveform = torch.from_numpy(speech_like_frames(seed=4, n_clips=2)[:, :].reshape(-1)[: 2 * 8192]).view(2, 8192)
    loss = torch.nn.functional.cross_entropy(net(waveform), torch.tensor([0, 5]))
    loss.backward()
    for name, parameter in [*net.front_end.named_parameters(), *net.compress.named_parameters()]:
        assert parameter.grad is not None and float(parameter.grad.abs().sum()) > 0, name


def test_sincnet_starts_at_mel_cut_offs_and_its_measured_pass_bands_centre_on_them() -> None:
    """Cut-offs equal consecutive HTK mel points (30 Hz to Nyquist - 100 Hz) wherever that band is at least
    min_band_hz wide (narrower ones start min_band_hz wide). Measured: the centre of each kernel's half-power band is
    within 10 Hz of its cut-offs' centre, a sixth of the Hamming window's resolution (22,050 / 345 = 64 Hz)."""
    module = SincNetFrontEnd()
    low, high = (cutoff.detach().numpy() for cutoff in module.cutoffs_hz())
    edges = htk_mel_points(81, 30.0, SAMPLE_RATE / 2 - 100.0)
    wide = np.diff(edges) >= 50.0
    assert wide.sum() > 50
    np.testing.assert_allclose(low[wide], edges[:-1][wide], rtol=1e-4)
    np.testing.assert_allclose(high[wide], edges[1:][wide], rtol=1e-4)
    power = np.abs(np.fft.rfft(module.kernels().detach().double().numpy(), N_FFT_RESPONSE)) ** 2
    frequencies = np.fft.rfftfreq(N_FFT_RESPONSE, 1 / SAMPLE_RATE)
    for index, response in enumerate(power):
        passed = frequencies[response >= response.max() / 2]
        assert abs((passed[0] + passed[-1]) / 2 - (low[index] + high[index]) / 2) < 10.0, index


def test_leaf_gabor_filters_peak_at_mel_centres_with_mel_widths() -> None:
    """Each Gabor filter's measured peak response lies within 1 Hz (three grid steps) of its HTK mel band's centre
    (60 to 7,800 Hz); its magnitude response's half-maximum width within 3 % of that band's (0.75 of its base) for
    the filters the 551-tap window does not truncate (±3σ inside it)."""
    module = LeafFrontEnd()
    real, imaginary = (part.detach().double().numpy() for part in module.kernels())
    response = np.abs(np.fft.fft(real + 1j * imaginary, N_FFT_RESPONSE))
    frequencies = np.fft.fftfreq(N_FFT_RESPONSE, 1 / SAMPLE_RATE)
    edges = htk_mel_points(82, 60.0, 7800.0)
    np.testing.assert_allclose(frequencies[response.argmax(axis=1)], edges[1:-1], atol=1.0)
    untruncated = module.sigma.detach().numpy() < 551 / 6
    assert untruncated.sum() > 40
    for index in np.flatnonzero(untruncated):
        width = np.count_nonzero(response[index] >= response[index].max() / 2) * SAMPLE_RATE / N_FFT_RESPONSE
        assert width == pytest.approx(0.75 * (edges[index + 2] - edges[index]), rel=0.03), index


def test_pcen_follows_its_formula_on_steady_energy_and_is_causal() -> None:
    pcen = PCEN(n_channels=3)
    steady = torch.full((1, 20, 3), 0.01)
    expected = (0.01 / (1e-12 + 0.01) ** 0.96 + 2.0) ** 0.5 - 2.0**0.5  # M = E for steady energy
    torch.testing.assert_close(pcen(steady), torch.full_like(steady, expected))
    energy = torch.rand(2, 20, 3)
    changed = energy.clone()
    changed[:, 12:] = 0.0  # zero padding after frame 12
    torch.testing.assert_close(pcen(changed)[:, :12], pcen(energy)[:, :12])


def test_the_closed_form_preset_starts_its_fins_at_the_closed_form_construction(tmp_path: Path) -> None:
    cfg = compose_preset("ser_fin_closed_form")
    assert (cfg.fin.init, cfg.task.front_end_trainable) == ("closed_form", True)
    net = instantiate(cfg.task.net)
    torch.manual_seed(1)  # nothing drawn: the construction does not depend on the generator
    assert cfg.front_end.weights.init == "closed_form"  # what build_task applies
    FrontEndWeights(cfg.fin.init, tmp_path / "no_fins_here").apply(net.front_end)  # no FIN file is read
    for feature in FEATURES:
        constructed = build_fin(feature, "spectral").state_dict()
        for name, value in net.front_end.fins[feature].state_dict().items():
            assert torch.equal(value, constructed[name]), (feature, name)
    with pytest.raises(FinserError, match="only fin_arch=spectral constructs"):
        FrontEndWeights("closed_form").apply(
            instantiate(compose_preset("ser_fin_closed_form", "fin_arch=conv").task.net).front_end
        )


@pytest.mark.parametrize("experiment", ["ser_sincnet", "ser_leaf"])
def test_a_published_learnable_front_end_model_loads_back_and_predicts(tmp_path: Path, experiment: str) -> None:
    cfg = compose_preset(experiment)
    config = OmegaConf.to_container(cfg.task.net, resolve=True)
    net = instantiate(config)
    with torch.no_grad():  # moved off its initialisation, so loading must restore the weights
        for parameter in [*net.front_end.parameters(), *net.compress.parameters()]:
            parameter.mul_(1.05)
    meta = {"kind": "ser", "emotions": list(EMOTIONS), "clip_samples": 8192, "sample_rate": SAMPLE_RATE}
    path = save_checkpoint(net.eval(), config, tmp_path / "ser_model.ckpt", **meta)
    loaded, _ = load_model(path)
    waveform = torch.from_numpy(speech_like_frames(seed=6, n_clips=1).reshape(-1)[: 2 * 8192]).view(2, 8192)
    with torch.no_grad():
        torch.testing.assert_close(loaded(waveform), net(waveform))
    audio = tmp_path / "clip.wav"
    import soundfile

    soundfile.write(audio, waveform[0].numpy(), SAMPLE_RATE)
    (row,) = EmotionPredictor(path).predict(audio)
    assert row.emotion in EMOTIONS and not row.error

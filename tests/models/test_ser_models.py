"""SER networks and task on random tensors and tiny generated audio: front-ends, heads, masks, FIN freezing."""

from __future__ import annotations

import functools
from pathlib import Path

import lightning as L
import pytest
import torch

from finser.data.audio import AudioSpec
from finser.data.labels import EMOTIONS
from finser.data.splits import speaker_split
from finser.data.synthetic import build_synthetic_corpus
from finser.data.utterances import UtteranceDataModule, balanced_sampler, class_counts
from finser.errors import FinserError
from finser.features import FEATURES, compute_all, frame_signal
from finser.models.checkpoint import load_model, save_checkpoint
from finser.models.ser import (
    Conv1dHead,
    ExactFrontEnd,
    FINFrontEnd,
    KerasSameConv1d,
    LogMel,
    SERModel,
    TemporalHead,
    n_frames,
)
from finser.pipeline import FrontEndWeights
from finser.tasks.references import fin_drift
from finser.tasks.ser import SERTask
from tests.conftest import PRETRAINED_R2, publish_tiny_fins, speech_like_frames

ADAM = functools.partial(torch.optim.Adam)


def speech(n_clips: int = 3, n_samples: int = 2048 + 512 * 7) -> torch.Tensor:
    """Clips (B, samples) cut from generated speech: 8 frames each by default."""
    frames = torch.from_numpy(speech_like_frames(seed=5, n_clips=n_clips))
    signal = torch.cat([frames[:, :512].reshape(-1), frames[-1, 512:]])
    return signal[: n_clips * n_samples].reshape(n_clips, n_samples)


def fin_task(fin_dir: Path, init: str, trainable: bool, head: torch.nn.Module | None = None) -> SERTask:
    """An SER task as ``finser.pipeline.build_task`` makes one: the FINs loaded (or redrawn) first."""
    net = SERModel(FINFrontEnd("spectral"), head or Conv1dHead())
    loaded = FrontEndWeights(init, fin_dir).apply(net.front_end)
    return SERTask(net, ADAM, 1e-3, front_end_trainable=trainable, **loaded.task_arguments())


def test_exact_front_end_equals_the_time_means_of_compute_all() -> None:
    waveform = speech()
    model = SERModel(ExactFrontEnd(), Conv1dHead())
    values, mask = model.frame_features(waveform)
    assert values.shape == (3, 162, n_frames(waveform.shape[-1])) and bool(mask.all())
    for row in range(len(waveform)):
        features = compute_all(frame_signal(waveform[row]))
        expected = torch.cat([features[name] for name in FEATURES], dim=-1).mean(dim=0)
        torch.testing.assert_close(values[row].mean(dim=-1), expected, rtol=1e-4, atol=1e-4)  # float32 sum order


def test_log_mel_compresses_only_the_mel_power() -> None:
    values = torch.rand(4, 162) * 100
    compressed = LogMel()(values)
    torch.testing.assert_close(compressed[:, :34], values[:, :34])
    torch.testing.assert_close(compressed[:, 34:], torch.log10(values[:, 34:] + 1e-8))


def test_study_clip_gives_104_frames_and_both_heads_give_eight_logits() -> None:
    assert n_frames(55_125) == 104
    sequence, mask = torch.randn(2, 162, 104), torch.ones(2, 104, dtype=torch.bool)
    for head in (Conv1dHead(), TemporalHead(pooling="attentive"), TemporalHead(pooling="statistics")):
        assert head(sequence, mask).shape == (2, len(EMOTIONS))


def test_the_study_head_starts_from_keras_defaults_and_pytorch_s_stay_an_option() -> None:
    torch.manual_seed(0)
    head = Conv1dHead()
    layers = [layer for layer in head.modules() if isinstance(layer, torch.nn.Conv1d | torch.nn.Linear)]
    assert len(layers) == 9
    for layer in layers:
        weight = layer.weight.detach()
        fan_in, fan_out = weight[0].numel(), weight.shape[0] * weight[0, 0].numel()
        bound = (6 / (fan_in + fan_out)) ** 0.5  # Glorot-uniform; a conv's fans count its kernel width
        assert bound * 0.99 < float(weight.abs().max()) <= bound
        assert float(weight.std()) == pytest.approx(bound / 3**0.5, rel=0.05)
        assert not layer.bias.any()
    assert head.norm.momentum == pytest.approx(0.01) and head.norm.eps == pytest.approx(1e-3)

    pytorch = Conv1dHead(init="pytorch")
    first = pytorch.body[0].weight.detach()
    assert float(first.abs().max()) <= 1 / first[0].numel() ** 0.5 and pytorch.body[0].bias.any()
    assert pytorch.norm.momentum == pytest.approx(0.1) and pytorch.norm.eps == pytest.approx(1e-5)
    with pytest.raises(FinserError, match="unknown init 'glorot': expected one of keras, pytorch"):
        Conv1dHead(init="glorot")


def test_same_padding_of_an_even_kernel_is_keras_s_three_before_four_after() -> None:
    conv = KerasSameConv1d(1, 1, 8, bias=False)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0, 0] = 1.0  # output[i] = input[i - 3]: the first tap sees 3 padded zeros before
    sequence = torch.arange(1.0, 11.0).reshape(1, 1, 10)
    expected = torch.cat([torch.zeros(3), torch.arange(1.0, 8.0)])
    torch.testing.assert_close(conv(sequence)[0, 0], expected)


@pytest.mark.parametrize("head", [Conv1dHead, functools.partial(TemporalHead, pooling="attentive")])
def test_a_clips_logits_do_not_depend_on_the_padding_of_its_batch(head: type) -> None:
    torch.manual_seed(0)
    model = SERModel(ExactFrontEnd(), head()).eval()
    long = speech(n_clips=2, n_samples=2048 + 512 * 11)
    short = long[0, : 2048 + 512 * 4].clone()
    padded = long.clone()
    padded[0] = 0
    padded[0, : short.numel()] = short
    with torch.no_grad():
        batched = model(padded, torch.tensor([short.numel(), long.shape[-1]]))
        alone = model(short.unsqueeze(0), torch.tensor([short.numel()]))
    torch.testing.assert_close(batched[0], alone[0], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("trainable", [True, False])
def test_gradients_reach_fin_weights_only_when_trainable(fin_dir: Path, trainable: bool) -> None:
    task = fin_task(fin_dir, "pretrained", trainable)
    loss = torch.nn.functional.cross_entropy(task.net(speech()), torch.tensor([0, 3, 7]))
    loss.backward()
    fin_grads = [p.grad for p in task.net.front_end.parameters()]
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in task.net.head.parameters() if p.ndim > 1)
    if trainable:
        assert all(grad is not None for grad in fin_grads) and sum(float(g.abs().sum()) for g in fin_grads) > 0
    else:
        assert all(grad is None for grad in fin_grads)
    optimised = {id(p) for group in task.configure_optimizers()["optimizer"].param_groups for p in group["params"]}
    assert all((id(p) in optimised) == trainable for p in task.net.front_end.parameters())


def test_pretrained_init_loads_the_published_fins_and_random_init_differs(fin_dir: Path) -> None:
    pretrained = fin_task(fin_dir, "pretrained", False).net.front_end.fins
    torch.manual_seed(0)
    random = fin_task(fin_dir, "random", True).net.front_end.fins
    constructed = FINFrontEnd("spectral").fins
    for feature in FEATURES:
        published, _ = load_model(fin_dir / f"{feature}_spectral.ckpt")
        for name, value in published.state_dict().items():
            assert torch.equal(pretrained[feature].state_dict()[name], value), (feature, name)
        for name, parameter in random[feature].named_parameters():
            assert not torch.allclose(parameter, pretrained[feature].get_parameter(name)), (feature, name)
            # "random" also undoes the spectral FINs' closed-form construction: no hidden pre-training.
            assert not torch.allclose(parameter, constructed[feature].get_parameter(name)), (feature, name)


def test_frozen_fins_are_bit_identical_after_training_and_the_net_rebuilds_without_fin_files(
    tmp_path: Path, fin_dir: Path, cache_dir: Path
) -> None:
    clips = build_synthetic_corpus(cache_dir / "synthetic", n_speakers=3, clips_per_emotion=1)
    audio = AudioSpec(offset=0.0, duration=0.25)
    datamodule = UtteranceDataModule(clips, functools.partial(speaker_split, seed=0), batch_size=8, audio=audio)
    torch.manual_seed(0)
    task = fin_task(fin_dir, "pretrained", False, head=TemporalHead(channels=16, n_layers=1))
    fins_before = {name: value.clone() for name, value in task.net.front_end.state_dict().items()}
    head_before = {name: value.clone() for name, value in task.net.head.state_dict().items()}
    trainer = L.Trainer(
        accelerator="cpu", max_epochs=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, default_root_dir=tmp_path,
    )  # fmt: skip
    trainer.fit(task, datamodule=datamodule)
    for name, value in task.net.front_end.state_dict().items():
        assert torch.equal(value, fins_before[name]), name
    assert any(not torch.equal(value, head_before[name]) for name, value in task.net.head.state_dict().items())
    assert task.feature_cache  # frozen features were computed once per clip and reused
    (metrics,) = trainer.test(task, datamodule=datamodule, verbose=False)
    published = {feature: load_model(fin_dir / f"{feature}_spectral.ckpt")[0] for feature in FEATURES}
    for feature, r2 in fin_drift(published, datamodule.sets["test"]).items():  # untouched: no drift at all
        assert metrics[f"fin_drift/{feature}/r2"] == pytest.approx(r2, abs=1e-6), feature
        assert metrics[f"fin_drift/{feature}/r2_pretrained"] == pytest.approx(PRETRAINED_R2)
    assert 0 <= metrics["reference/linear_probe/test/f1_macro"] <= 1 and metrics["reference/linear_probe/C"] > 0
    assert 0 <= metrics["reference/own_input_probe/test/f1_macro"] <= 1  # on the frozen FINs' own values

    config = {
        "_target_": "finser.models.ser.SERModel",
        "front_end": {"_target_": "finser.models.ser.FINFrontEnd", "arch": "spectral"},
        "head": {"_target_": "finser.models.ser.TemporalHead", "channels": 16, "n_layers": 1},
    }
    path = save_checkpoint(task.net, config, tmp_path / "ser.ckpt", kind="ser", emotions=list(EMOTIONS))
    model, meta = load_model(path)  # builds the architecture from the config alone, then loads the weights
    waveform = speech(n_clips=2)
    with torch.no_grad():
        torch.testing.assert_close(model(waveform), task.net.eval()(waveform))
    assert meta["emotions"] == list(EMOTIONS)


def test_balanced_sampling_draws_every_emotion_about_equally_often() -> None:
    emotions = [0] * 90 + [1] * 10  # a 9:1 imbalance, like calm against the rest of the union
    drawn = torch.tensor(list(balanced_sampler(emotions, seed=0)))
    share_of_rare = float((torch.tensor(emotions)[drawn] == 1).float().mean())
    assert 0.4 < share_of_rare < 0.6
    counts = class_counts(emotions, 8)
    assert counts[:2].tolist() == [90.0, 10.0] and counts[2:].sum() == 0


def test_a_fin_of_another_feature_or_arch_in_the_front_end_names_both(tmp_path: Path) -> None:
    paths = publish_tiny_fins(tmp_path)
    front_end = FINFrontEnd("spectral")
    swapped = {**paths, "chroma": paths["mfcc"]}  # a user copied the MFCC FIN over the chroma one
    with pytest.raises(FinserError, match="holds the mfcc fin with fin_arch=spectral, where the chroma FIN"):
        front_end.load_pretrained(swapped, load_model)
    with pytest.raises(FinserError, match="with fin_arch=spectral, where the zcr FIN with fin_arch=conv belongs"):
        FINFrontEnd("conv").load_pretrained(paths, load_model)


def test_a_subset_of_the_fins_loads_only_those_and_its_checkpoint_loads_back(tmp_path: Path) -> None:
    """``front_end.features`` without the mel FIN: only the four published FINs are read, their values fill the
    34 inputs in the order given, and the published SER model rebuilds with the same subset and outputs."""
    subset = ("mfcc", "zcr", "rms", "chroma")
    paths = publish_tiny_fins(tmp_path)
    front_end = FINFrontEnd("spectral", features=subset)
    metas = front_end.load_pretrained(front_end.checkpoint_paths(tmp_path), load_model)
    assert set(metas) == set(subset) and set(front_end.fins) == set(subset)
    frames = frame_signal(speech(n_clips=1)[0])
    with torch.no_grad():
        values = front_end(frames)
        expected = torch.cat([load_model(paths[feature])[0](frames) for feature in subset], dim=-1)
    torch.testing.assert_close(values, expected)
    net = SERModel(front_end, Conv1dHead(n_features=34)).eval()
    config = {
        "_target_": "finser.models.ser.SERModel",
        "front_end": {"_target_": "finser.models.ser.FINFrontEnd", "arch": "spectral", "features": list(subset)},
        "head": {"_target_": "finser.models.ser.Conv1dHead", "n_features": 34},
    }
    model, _ = load_model(save_checkpoint(net, config, tmp_path / "ser.ckpt", kind="ser", emotions=list(EMOTIONS)))
    assert model.front_end.features == subset
    with torch.no_grad():
        torch.testing.assert_close(model(speech()), net(speech()))

"""An exported SER model scores a whole recording as predict.py does: the same windows, the same probabilities."""

from __future__ import annotations

import logging
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from finser.data.audio import read_blocks
from finser.export import OPSET, TOLERANCE, export, generated_audio, signal_windows
from finser.inference import EmotionPredictor, Tally, from_offset, windows
from finser.models.checkpoint import load_model, read_checkpoint, save_checkpoint
from tests.conftest import REPO
from tests.test_export import EMOTIONS, READERS, publish_ser

CLIP = 11_025  # publish_ser's clip: 0.5 s, hop 5512
# Shorter than one window, exactly one, between one and two, exactly two hops on, several with a ragged end.
LENGTHS = (5_000, CLIP, CLIP + 3_000, CLIP + 2 * (CLIP // 2), 4 * CLIP + 77)
FRONT_ENDS = {
    "exact": {"_target_": "finser.models.ser.ExactFrontEnd"},
    "fin": {"_target_": "finser.models.ser.FINFrontEnd", "arch": "spectral"},
}


class Windower(torch.nn.Module):
    """signal_windows alone, so the exported graph's windows can be read back."""

    def __init__(self, clip_samples: int | None, offset_samples: int = 0) -> None:
        super().__init__()
        self.clip_samples, self.offset_samples = clip_samples, offset_samples

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return signal_windows(audio, self.clip_samples, self.offset_samples)


def predict_windows(signal: np.ndarray, clip_samples: int, offset: int = 0) -> tuple[list[int], np.ndarray]:
    """predict.py's windows (inference.from_offset, then windows) of the signal fed in uneven blocks, as read_blocks
    yields it; starts count from where the model starts hearing."""
    cuts = np.cumsum(np.random.default_rng(signal.size).integers(1, 4_000, size=signal.size // 1_000 + 1))
    heard = from_offset(np.split(signal, cuts[cuts < signal.size]), offset, Tally())
    parts = list(windows(heard, clip_samples))
    return [start for start, _ in parts], np.stack([window for _, window in parts])


def traced_windowers(tmp_path: Path, clip_samples: int, offset: int = 0) -> dict[str, object]:
    """The windower as onnxruntime and TorchScript run it, traced once on a signal of several windows."""
    import onnxruntime

    windower, example = Windower(clip_samples, offset), generated_audio(1, 3 * clip_samples)
    path = tmp_path / "windows.onnx"
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation note
        torch.onnx.export(windower, (example,), str(path), input_names=["audio"], output_names=["windows"],
                          dynamic_axes={"audio": {0: "batch", 1: "samples"}, "windows": {0: "batch", 1: "windows"}},
                          opset_version=OPSET, dynamo=False)  # fmt: skip
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    traced = torch.jit.trace(windower, (example,), check_trace=False)
    return {
        "eager": lambda audio: windower(audio).numpy(),
        "onnx": lambda audio: session.run(None, {"audio": audio.numpy()})[0],
        "torchscript": lambda audio: traced(audio).numpy(),
    }


@pytest.mark.parametrize("clip_samples", [CLIP, 4_097])  # an odd clip: the hop is its floor half
def test_the_graphs_windows_are_predicts_windows(tmp_path: Path, clip_samples: int) -> None:
    """Same starts (a window at every hop), same zero padding of the last, at every length: one rule."""
    runs = traced_windowers(tmp_path, clip_samples)
    hop = clip_samples // 2
    for length in (*LENGTHS, clip_samples - 1, clip_samples + 1, clip_samples + hop, clip_samples + hop + 1):
        signal = generated_audio(2, length, seed=length)
        starts, expected = predict_windows(signal[1].numpy(), clip_samples)
        assert starts == [hop * index for index in range(len(starts))]
        assert starts[-1] + clip_samples >= length  # the last window reaches the end, the one before does not
        assert len(starts) == 1 or starts[-1] - hop + clip_samples < length
        for name, run in runs.items():
            got = run(signal)
            assert got.shape == (2, len(starts), clip_samples), (name, length)
            np.testing.assert_array_equal(got[1], expected, err_msg=f"{name} at {length} samples")


@pytest.mark.parametrize("offset", [2_000, CLIP + 7])
def test_windows_from_the_offset_are_predicts(tmp_path: Path, offset: int) -> None:
    """From the offset on, and from the start for a signal that ends before it (predict's rule), in every runtime;
    the lengths straddle the offset."""
    runs = traced_windowers(tmp_path, CLIP, offset)
    for length in (offset - 1, offset, offset + 1, offset + CLIP, offset + 3 * CLIP + 5, 700):
        signal = generated_audio(2, length, seed=length)
        expected = predict_windows(signal[1].numpy(), CLIP, offset)[1]
        for name, run in runs.items():
            np.testing.assert_array_equal(run(signal)[1], expected, err_msg=f"{name} at {length} samples")


def test_without_a_clip_length_the_whole_signal_is_one_window() -> None:
    """A checkpoint that records no clip length: predict scores the whole signal at once, and so does the graph."""
    signal = generated_audio(2, 3 * CLIP + 5, seed=6)
    ((start, expected),) = windows([signal[1, :CLIP].numpy(), signal[1, CLIP:].numpy()], None)
    assert start == 0
    np.testing.assert_array_equal(Windower(None)(signal)[1].numpy(), expected[None])


def write_recordings(folder: Path) -> list[Path]:
    """Float WAVs at 22,050 Hz of every length in LENGTHS (tones in noise, each its own)."""
    folder.mkdir()
    paths = []
    for length in LENGTHS:
        path = folder / f"{length}.wav"
        soundfile.write(path, generated_audio(1, length, seed=length)[0].numpy(), 22_050, subtype="FLOAT")
        paths.append(path)
    return paths


@pytest.mark.slow  # an export per case: 10-20 s on 2 shared cores with the FIN front-end
@pytest.mark.parametrize("format_name", sorted(READERS))
@pytest.mark.parametrize("front_end", sorted(FRONT_ENDS))
@pytest.mark.parametrize("head", ["conv1d", "temporal"])
def test_the_exported_file_gives_predicts_probabilities(tmp_path: Path, head: str, front_end: str, format_name: str):
    """A whole recording in, predict.py's averaged and per-window probabilities out, no windowing by the caller."""
    checkpoint = publish_ser(tmp_path, head, FRONT_ENDS[front_end])
    path, _ = export(checkpoint, format_name)
    predictor = EmotionPredictor(checkpoint)
    atol = TOLERANCE * 2  # export's tolerance for outputs of at most 1
    for recording in write_recordings(tmp_path / "recordings"):
        rows = predictor.predict(recording, list_windows=True)
        expected = np.array([[row.probabilities[emotion] for emotion in EMOTIONS] for row in rows])
        signal = np.concatenate(list(read_blocks(recording)))[None, :]  # the samples predict decoded
        (average, per_window), meta = READERS[format_name](path, signal)
        assert per_window.shape == (1, len(rows) - 1, len(EMOTIONS))
        np.testing.assert_allclose(average[0], expected[0], rtol=0, atol=atol, err_msg=recording.name)
        np.testing.assert_allclose(per_window[0], expected[1:], rtol=0, atol=atol, err_msg=recording.name)
    assert meta["emotions"].split(",") == EMOTIONS and meta["clip_samples"] == str(CLIP)


@pytest.mark.slow
def test_the_docs_snippet_scores_a_wav_of_any_length_as_predict(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """docs/predicting.md's onnxruntime + numpy example, as a user pastes it, gives predict.py's row."""
    checkpoint = publish_ser(tmp_path, "conv1d", FRONT_ENDS["exact"])
    export(checkpoint, "onnx", tmp_path / "ser.onnx")
    signal = generated_audio(1, 3 * CLIP + 1_234, seed=9)[0].numpy()
    soundfile.write(tmp_path / "recording.wav", signal, 22_050, subtype="PCM_16")
    (block,) = re.findall(r"```python\n(.*?)```", (REPO / "docs" / "predicting.md").read_text(), flags=re.DOTALL)
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    exec(compile(block, "docs/predicting.md", "exec"), namespace)
    rows = EmotionPredictor(checkpoint).predict(tmp_path / "recording.wav", list_windows=True)
    expected = [rows[0].probabilities[emotion] for emotion in EMOTIONS]
    np.testing.assert_allclose(namespace["probabilities"][0], expected, rtol=0, atol=TOLERANCE * 2)
    assert len(namespace["window_probabilities"][0]) == len(rows) - 1 > 1


def test_a_band_limited_model_is_exported_with_a_warning_and_its_cutoff(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The graph does not low-pass (soxr is no tensor op): export says so, and the metadata names the cutoff."""
    checkpoint = publish_ser(tmp_path, "conv1d", FRONT_ENDS["exact"])
    payload = read_checkpoint(checkpoint)
    model, _ = load_model(checkpoint)
    meta = {**payload["meta"], "clip": {**payload["meta"]["clip"], "band_limit_hz": 4000}}
    limited = save_checkpoint(model, payload["model"], tmp_path / "limited.ckpt", **meta)
    with caplog.at_level(logging.WARNING, logger="finser.export"):
        path, _ = export(limited, "torchscript")
    assert "does not low-pass" in caplog.text and "4000 Hz" in caplog.text
    assert READERS["torchscript"](path, generated_audio(1, CLIP).numpy())[1]["band_limit_hz"] == "4000"

"""predict.py labels files at any rate and channel count; bad files get an error row and the rest continue."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from rich.console import Console

from benchmarks.predict import predict_peak_rss, tiny_ser_checkpoint, write_noise
from finser.data.audio import AudioSpec, load_audio
from finser.data.augment import render
from finser.data.labels import EMOTIONS, Clip
from finser.data.utterances import UtteranceDataModule
from finser.inference import EmotionPredictor, progress_bar
from finser.models.checkpoint import load_model, read_checkpoint, save_checkpoint
from finser.models.fin import spectral_fin
from predict import main as predict_main
from tests.conftest import REPO, read_results, run_train
from tests.preloaded import run_python


@pytest.fixture(scope="module")
def ser_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_ser_checkpoint(tmp_path_factory.mktemp("ser") / "ser_model.ckpt")


def predict(*arguments: str) -> subprocess.CompletedProcess:
    command = [sys.executable, str(REPO / "predict.py"), *arguments]
    return run_python(command, timeout=300)


def test_a_folder_at_several_rates_with_bad_files(ser_checkpoint: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    folder = tmp_path / "clips"
    folder.mkdir()
    soundfile.write(folder / "a_48k_stereo.wav", 0.1 * rng.standard_normal((48_000 * 3, 2)), 48_000)
    soundfile.write(folder / "b_16k.flac", 0.1 * rng.standard_normal(16_000 * 7), 16_000)
    soundfile.write(folder / "c_short.wav", 0.1 * rng.standard_normal(1000), 22_050)
    (folder / "d_not_audio.wav").write_text("hello, I am text")
    out = tmp_path / "predictions.csv"
    result = predict(f"ckpt={ser_checkpoint}", f"audio={folder}", f"out={out}")
    assert result.returncode == 0, result.stderr
    rows = {Path(row["path"]).name: row for row in csv.DictReader(out.open())}
    assert set(rows) == {"a_48k_stereo.wav", "b_16k.flac", "c_short.wav", "d_not_audio.wav"}
    for good in ("a_48k_stereo.wav", "b_16k.flac"):
        assert rows[good]["emotion"] in EMOTIONS and not rows[good]["error"]
        probabilities = [float(rows[good][f"p_{emotion}"]) for emotion in EMOTIONS]
        assert sum(probabilities) == pytest.approx(1.0, abs=1e-3)
        assert float(rows[good]["probability"]) == pytest.approx(max(probabilities), abs=1e-4)
    assert "shorter than one" in rows["c_short.wav"]["error"]
    assert "not readable as audio" in rows["d_not_audio.wav"]["error"]
    assert result.stdout.splitlines()[0].startswith("path,emotion,probability")


def test_long_files_are_scored_on_sliding_windows(ser_checkpoint: Path, tmp_path: Path) -> None:
    path = tmp_path / "long.wav"
    soundfile.write(path, 0.1 * np.random.default_rng(1).standard_normal(22_050 * 6), 22_050)
    result = predict(f"ckpt={ser_checkpoint}", f"audio={path}", "windows=true")
    rows = list(csv.DictReader(result.stdout.splitlines()))
    # 6 s with 2.5 s windows every 1.25 s: starts 0, 1.25, 2.5, 3.75 (the last zero-padded).
    assert [row["path"].split("#")[-1] for row in rows[1:]] == ["0.00-2.50s", "1.25-3.75s", "2.50-5.00s", "3.75-6.25s"]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("audio=x.wav",), "missing ckpt"),
        (("ckpt=missing.ckpt", "audio=x.wav"), "does not exist"),
        (("ckpt={ckpt}", "audio=/no/such/path"), "does not exist"),
        (("ckpt={ckpt}", "audio={empty}"), "has no audio files"),
        (("ckpt={fin}", "audio={empty}"), "predict needs an SER model"),
        (("ckpt={ckpt}", "audio={empty}", "colour=blue"), "unknown argument"),
        (("ckpt={ckpt}", "audio={empty}", "batch=0"), "batch='0': expected a whole number >= 1"),
        (("ckpt={ckpt}", "audio={empty}", "windows=ture"), "windows='ture': expected windows=true or windows=false"),
        (("ckpt={ckpt}", "audio={fin}", "out={fin}/out.csv"), "cannot be written"),
    ],
)
def test_bad_arguments_say_what_is_wrong(ser_checkpoint: Path, tmp_path: Path, arguments: tuple, message: str):
    fin = save_checkpoint(spectral_fin("rms"), {"_target_": "finser.models.fin.spectral_fin", "feature": "rms"},
                          tmp_path / "rms.ckpt", kind="fin")  # fmt: skip
    (tmp_path / "empty").mkdir()
    filled = [a.format(ckpt=ser_checkpoint, empty=tmp_path / "empty", fin=fin) for a in arguments]
    result = predict(*filled)
    assert result.returncode == 1
    assert message in result.stderr


@pytest.mark.slow
def test_windows_are_scored_in_bounded_batches_with_the_same_probabilities(ser_checkpoint: Path, tmp_path: Path):
    path = tmp_path / "minute.wav"
    soundfile.write(path, 0.1 * np.random.default_rng(2).standard_normal(16_000 * 60), 16_000)
    predictor = EmotionPredictor(ser_checkpoint, batch_size=4)
    batches = []
    model = predictor.model
    predictor.model = lambda batch: batches.append(len(batch)) or model(batch)
    rows = predictor.predict(path, list_windows=True)
    # Before: every window in one forward pass, from the whole decoded file.
    signal = load_audio(path)
    hop = predictor.clip_samples // 2
    starts = range(0, len(signal) - predictor.clip_samples + hop, hop)
    pieces = [np.pad(signal[s : s + 55_125], (0, 55_125 - len(signal[s : s + 55_125]))) for s in starts]
    with torch.no_grad():
        expected = torch.softmax(model(torch.from_numpy(np.stack(pieces))), dim=-1).numpy()
    assert len(rows) == 1 + len(pieces) == 1 + 48 and max(batches) == 4 and sum(batches) == 48
    got = np.array([[row.probabilities[emotion] for emotion in EMOTIONS] for row in rows])
    np.testing.assert_allclose(got[1:], expected, atol=1e-6)
    np.testing.assert_allclose(got[0], expected.mean(axis=0), atol=1e-6)


def test_a_long_file_stays_under_1_gb(ser_checkpoint: Path, tmp_path: Path) -> None:
    # 10 minutes tell already: before, the whole decoded file and every window went through the model at once
    # (peak RSS 1.6 GB here, 4.8 GB for 60 minutes); blocks and bounded batches keep it flat whatever the length.
    # The first run on a fresh clone also compiles the feature kernels (numba, ~0.5 GB once, whatever the length):
    # a short file first, so the long one measures what grows with the input.
    short = write_noise(tmp_path / "short.wav", minutes=0.1, sample_rate=16_000)
    baseline = predict_peak_rss([f"ckpt={ser_checkpoint}", f"audio={short}"], tmp_path / "short.csv")
    path = write_noise(tmp_path / "ten_minutes.wav", minutes=10, sample_rate=16_000)
    result = predict_peak_rss([f"ckpt={ser_checkpoint}", f"audio={path}"], tmp_path / "out.csv")
    assert baseline["returncode"] == 0 and result["returncode"] == 0, result["stderr"]
    assert result["peak_rss_mb"] < 1024
    assert result["peak_rss_mb"] - baseline["peak_rss_mb"] < 256  # 100x the audio, a bounded difference


def test_rows_of_finished_files_are_kept_when_a_later_file_crashes(
    ser_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "clips"
    for name in ("a.wav", "b.wav", "c.wav"):
        write_noise(folder / name, minutes=0.05, sample_rate=22_050)
    original = EmotionPredictor.predict

    def crash_on_c(self: EmotionPredictor, path: Path, *arguments: object, **options: object) -> list:
        if path.name == "c.wav":
            raise RuntimeError("killed while scoring c.wav")
        return original(self, path, *arguments, **options)

    monkeypatch.setattr(EmotionPredictor, "predict", crash_on_c)
    out = tmp_path / "predictions.csv"
    with pytest.raises(RuntimeError, match="killed while scoring"):
        predict_main([f"ckpt={ser_checkpoint}", f"audio={folder}", f"out={out}"])
    assert not out.exists()  # out appears whole or not at all; the rows done are in its temporary
    (partial,) = tmp_path.glob(".predictions.csv.*.partial")
    assert [Path(row["path"]).name for row in csv.DictReader(partial.open())] == ["a.wav", "b.wav"]


def test_mostly_silent_or_mostly_padded_files_are_scored_with_a_warning(
    ser_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    rng = np.random.default_rng(3)
    folder = tmp_path / "clips"
    folder.mkdir()
    speech = 0.1 * rng.standard_normal(22_050 * 4)
    soundfile.write(folder / "a_fine.wav", speech, 22_050)
    soundfile.write(folder / "b_silent.wav", np.concatenate([speech[:2_646], np.zeros(22_050 * 4)]), 22_050)
    soundfile.write(folder / "c_short.wav", speech[: 22_050 * 3 // 10], 22_050)
    assert predict_main([f"ckpt={ser_checkpoint}", f"audio={folder}"]) == 0
    rows = {Path(row["path"]).name: row for row in csv.DictReader(capsys.readouterr().out.splitlines())}
    assert all(row["emotion"] in EMOTIONS and not row["error"] for row in rows.values())
    assert rows["a_fine.wav"]["warning"] == ""
    assert rows["b_silent.wav"]["warning"] == "mostly silence: 97% of the samples are digital silence (|x| < 0.0001)"
    assert rows["c_short.wav"]["warning"] == "mostly padding: the file is 0.30 s, the model's clip is 2.50 s"


def test_a_progress_bar_on_a_terminal_and_nothing_otherwise(ser_checkpoint: Path, tmp_path: Path) -> None:
    path = write_noise(tmp_path / "clip.wav", minutes=0.1, sample_rate=22_050)
    terminal = Console(file=io.StringIO(), force_terminal=True, width=100)
    with progress_bar([path], terminal) as advance:
        advance(path, 3.0)
    assert "clip.wav" in terminal.file.getvalue() and "3.0/6.0" in terminal.file.getvalue()
    pipe = Console(file=io.StringIO(), force_terminal=False)
    with progress_bar([path], pipe) as advance:
        advance(path, 3.0)
    assert pipe.file.getvalue() == ""
    assert "s of audio" not in predict(f"ckpt={ser_checkpoint}", f"audio={path}").stderr  # not a terminal: no bar


def test_a_model_trained_band_limited_scores_band_limited_windows(tmp_path: Path) -> None:
    """``dataset.band_limit_hz=8000`` in training is recorded in ser_model.ckpt and applied to every window predict
    scores (it scored full-band audio): a file scores as its own low-passed copy does under a full-band model."""
    from finser.data.audio import band_limit

    full_band = tiny_ser_checkpoint(tmp_path / "full.ckpt")
    payload = read_checkpoint(full_band)
    model, _ = load_model(full_band)
    meta = {**payload["meta"], "band_limit_hz": 4000}
    limited = save_checkpoint(model, payload["model"], tmp_path / "limited.ckpt", **meta)
    signal = (0.1 * np.random.default_rng(7).standard_normal(55_125)).astype(np.float32)  # white: energy above 4 kHz
    soundfile.write(tmp_path / "clip.wav", signal, 22_050, subtype="FLOAT")
    soundfile.write(tmp_path / "low.wav", band_limit(signal, 4000), 22_050, subtype="FLOAT")
    scored = EmotionPredictor(limited).predict(tmp_path / "clip.wav")[0].probabilities
    expected = EmotionPredictor(full_band).predict(tmp_path / "low.wav")[0].probabilities
    unlimited = EmotionPredictor(full_band).predict(tmp_path / "clip.wav")[0].probabilities
    assert scored == pytest.approx(expected, abs=1e-5)
    assert scored != pytest.approx(unlimited, abs=1e-5)  # the band limit changed what the model heard


def with_clip(checkpoint: Path, path: Path, spec: AudioSpec) -> Path:
    """``checkpoint``'s model republished as trained on clips cut by ``spec`` (its whole clip record)."""
    payload = read_checkpoint(checkpoint)
    model, _ = load_model(checkpoint)
    legacy = ("clip_samples", "sample_rate", "offset", "band_limit_hz")
    meta = {**{key: value for key, value in payload["meta"].items() if key not in legacy}, "clip": asdict(spec)}
    return save_checkpoint(model, payload["model"], path, **meta)


def scored_alone(model: torch.nn.Module, clips: np.ndarray) -> np.ndarray:
    """The model's probabilities for a batch of prepared clips."""
    with torch.no_grad():
        return torch.softmax(model(torch.from_numpy(np.ascontiguousarray(clips))), dim=-1).numpy()


def test_windows_start_at_the_offset_and_the_first_is_the_training_crop(ser_checkpoint: Path, tmp_path: Path) -> None:
    """A model trained on 0.5 s from 0.3 s, band-limited at 4 kHz, scores a 16 kHz file's first window as its
    training clip of that file was rendered (``render``, what the datamodules cut); predict started at 0 s."""
    spec = AudioSpec(offset=0.3, duration=0.5, band_limit_hz=4000)
    checkpoint = with_clip(ser_checkpoint, tmp_path / "clip.ckpt", spec)
    path = tmp_path / "speech.wav"
    soundfile.write(path, 0.1 * np.random.default_rng(4).standard_normal(16_000), 16_000)  # 1 s
    predictor = EmotionPredictor(checkpoint)
    rows = predictor.predict(path, list_windows=True)
    assert [row.path.split("#")[-1] for row in rows[1:]] == ["0.30-0.80s", "0.55-1.05s"]  # half-clip hop, padded
    first = np.array([rows[1].probabilities[emotion] for emotion in EMOTIONS])
    np.testing.assert_allclose(first, scored_alone(predictor.model, render(str(path), spec)[None])[0], atol=1e-6)


def test_a_file_ending_before_the_offset_is_scored_from_its_start_with_a_warning(
    ser_checkpoint: Path, tmp_path: Path
) -> None:
    checkpoint = with_clip(ser_checkpoint, tmp_path / "clip.ckpt", AudioSpec(offset=0.6, duration=0.5))
    path = tmp_path / "short.wav"
    signal = (0.1 * np.random.default_rng(5).standard_normal(8_820)).astype(np.float32)  # 0.4 s
    soundfile.write(path, signal, 22_050, subtype="FLOAT")
    predictor = EmotionPredictor(checkpoint)
    (row,) = predictor.predict(path)
    assert (
        row.warning
        == "short of the offset: the file ends before the model's 0.60-s offset, so it was scored from its start"
    )
    expected = scored_alone(predictor.model, np.pad(signal, (0, 11_025 - signal.size))[None])[0]
    np.testing.assert_allclose([row.probabilities[emotion] for emotion in EMOTIONS], expected, atol=1e-6)


def test_a_model_published_before_the_clip_record_scores_as_it_did(ser_checkpoint: Path, tmp_path: Path) -> None:
    """Flat ``clip_samples`` and ``sample_rate`` (and no offset) in older files: windows from 0 s, full band."""
    predictor = EmotionPredictor(ser_checkpoint)
    assert predictor.clip == AudioSpec(offset=0.0, duration=2.5) and predictor.clip_samples == 55_125


def test_a_model_trained_on_its_own_clip_is_scored_on_that_clip_by_predict_and_eval(
    tmp_path: Path, cache_dir: Path
) -> None:
    """Trained on 0.5 s from 0.3 s, band-limited at 4 kHz: predict's first window of a file is the datamodule's clip
    of it, and eval.py cuts its test clips the same way without being told (and refuses being told otherwise)."""
    clip = ("dataset.audio.offset=0.3", "dataset.audio.duration=0.5", "dataset.band_limit_hz=4000")
    run_train(tmp_path, cache_dir, "experiment=ser_baseline", "training.batch_size=8", *clip)
    trained = read_results(tmp_path / "run")
    spec = AudioSpec(offset=0.3, duration=0.5, band_limit_hz=4000)
    path = next((cache_dir / "synthetic").rglob("*.wav"))
    splits = ("train", "val", "test")
    datamodule = UtteranceDataModule([Clip(str(path), "synthetic", "s", "neutral", split) for split in splits], list,
                                     audio=spec)  # fmt: skip
    datamodule.setup()
    predictor = EmotionPredictor(trained["checkpoint"])
    rows = predictor.predict(path, list_windows=True)
    assert rows[1].path.endswith("#0.30-0.80s")
    expected = scored_alone(predictor.model, datamodule.sets["test"].waveform(0).numpy()[None])[0]
    np.testing.assert_allclose([rows[1].probabilities[e] for e in EMOTIONS], expected, atol=1e-6)

    evaluated = tmp_path / "eval"
    run_train(evaluated, cache_dir, f"ckpt={trained['checkpoint']}", "experiment=ser_baseline", script="eval.py")
    results = read_results(evaluated / "run")
    assert results["clip"] == asdict(spec)
    assert (evaluated / "run" / "confusion_test.png").is_file()  # in eval's run dir (it wrote them to the cwd)
    assert results["test/f1_macro"] == trained["test/f1_macro"] and results["test/acc"] == trained["test/acc"]
    refused = run_train(evaluated, cache_dir, f"ckpt={trained['checkpoint']}", "experiment=ser_baseline",
                        "dataset.audio.duration=2.5", script="eval.py", check=False)  # fmt: skip
    assert (
        refused.returncode == 1
        and "eval cuts its test clips the same way: drop dataset.audio.duration=2.5" in refused.stderr
    )

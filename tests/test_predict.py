"""predict.py labels files at any rate and channel count; bad files get an error row and the rest continue."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
from hydra.utils import instantiate
from omegaconf import OmegaConf

from finser.data.labels import EMOTIONS
from finser.models.checkpoint import save_checkpoint
from finser.models.fin import spectral_fin
from tests.conftest import REPO


@pytest.fixture(scope="module")
def ser_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny untrained SER model (exact front-end, the study's head) published as run.py publishes one."""
    head = OmegaConf.load(REPO / "conf" / "ser_head" / "conv1d.yaml").net
    config = {"_target_": "finser.models.ser.SERModel", "front_end": {"_target_": "finser.models.ser.ExactFrontEnd"},
              "head": OmegaConf.to_container(head)}  # fmt: skip
    model = instantiate(config)
    path = tmp_path_factory.mktemp("ser") / "ser_model.ckpt"
    meta = {"kind": "ser", "emotions": list(EMOTIONS), "clip_samples": 55_125, "sample_rate": 22_050}
    return save_checkpoint(model, config, path, **meta)


def predict(*arguments: str) -> subprocess.CompletedProcess:
    command = [sys.executable, str(REPO / "predict.py"), *arguments]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)


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
    ],
)
def test_bad_arguments_say_what_is_wrong(ser_checkpoint: Path, tmp_path: Path, arguments: tuple, message: str):
    fin = save_checkpoint(spectral_fin("rms"), {"_target_": "finser.models.fin.spectral_fin", "feature": "rms"},
                          tmp_path / "rms.ckpt", kind="fin")  # fmt: skip
    (tmp_path / "empty").mkdir()
    filled = [a.format(ckpt=ser_checkpoint, empty=tmp_path / "empty", fin=fin) for a in arguments]
    result = predict(*filled)
    assert result.returncode == 2
    assert message in result.stderr

"""Output never destroys input: predict's out= refuses the checkpoint, the audio and files finser did not write."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from benchmarks.predict import tiny_ser_checkpoint, write_noise
from finser.errors import FinserError
from finser.outputs import atomic_text, check_output
from predict import main as predict_main


@pytest.fixture(scope="module")
def ser_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_ser_checkpoint(tmp_path_factory.mktemp("ser") / "ser_model.ckpt")


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    path = tmp_path / "clip.wav"
    write_noise(path, minutes=0.02, sample_rate=22_050)
    return path


def test_check_output_refuses_inputs_foreign_files_and_folders(tmp_path: Path) -> None:
    source, foreign = tmp_path / "in.wav", tmp_path / "important.txt"
    source.write_bytes(b"RIFF")
    foreign.write_text("keep me")
    with pytest.raises(FinserError, match="is an input of this command"):
        check_output(tmp_path / "." / "in.wav", "out", [source], overwrite=True)  # even told to overwrite
    with pytest.raises(FinserError, match="add overwrite=true"):
        check_output(foreign, "out")
    with pytest.raises(FinserError, match="is a folder"):
        check_output(tmp_path, "out")
    assert check_output(foreign, "out", overwrite=True) == foreign
    assert check_output(foreign, "out", ours=lambda path: path.read_text() == "keep me") == foreign
    assert foreign.read_text() == "keep me"  # checking never writes


def test_atomic_text_leaves_the_old_file_whole_when_writing_fails(tmp_path: Path) -> None:
    target = tmp_path / "table.csv"
    target.write_text("old\n")
    with pytest.raises(RuntimeError), atomic_text(target) as handle:
        handle.write("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old\n" and list(tmp_path.iterdir()) == [target]
    with atomic_text(target) as handle:
        handle.write("new\n")
    assert target.read_text() == "new\n" and list(tmp_path.iterdir()) == [target]


@pytest.mark.parametrize("victim", ["ckpt", "audio", "foreign"])
def test_predict_never_overwrites_its_inputs_or_a_foreign_file(
    ser_checkpoint: Path, clip: Path, tmp_path: Path, victim: str, capsys: pytest.CaptureFixture
) -> None:
    foreign = tmp_path / "important.txt"
    foreign.write_text("keep me")
    target = {"ckpt": ser_checkpoint, "audio": clip, "foreign": foreign}[victim]
    before = target.read_bytes()
    assert predict_main([f"ckpt={ser_checkpoint}", f"audio={clip}", f"out={target}"]) == 1
    assert target.read_bytes() == before
    assert f"out={target}" in capsys.readouterr().err


def test_predict_replaces_its_own_predictions_and_foreign_files_when_told(
    ser_checkpoint: Path, clip: Path, tmp_path: Path
) -> None:
    out = tmp_path / "predictions.csv"
    for arguments in ([], [], ["overwrite=true"]):
        assert predict_main([f"ckpt={ser_checkpoint}", f"audio={clip}", f"out={out}", *arguments]) == 0
        assert [row["path"] for row in csv.DictReader(out.open())] == [str(clip)]
    foreign = tmp_path / "important.txt"
    foreign.write_text("replace me")
    assert predict_main([f"ckpt={ser_checkpoint}", f"audio={clip}", f"out={foreign}", "overwrite=true"]) == 0
    assert foreign.read_text().startswith("path,emotion,probability,")
    assert predict_main([f"ckpt={ser_checkpoint}", f"audio={clip}", f"out={ser_checkpoint}", "overwrite=true"]) == 1


def test_a_manifest_replaces_a_manifest_but_no_other_file(tmp_path: Path) -> None:
    from finser.data.labels import Clip, read_manifest, write_manifest

    clips = [Clip(str(tmp_path / "a.wav"), "ravdess", "01", "happy")]
    manifest, foreign = tmp_path / "ravdess.csv", tmp_path / "notes.csv"
    write_manifest(clips, manifest)
    write_manifest(clips, manifest)  # its own file: replaced
    assert read_manifest(manifest) == clips
    foreign.write_text("my,own,table\n")
    with pytest.raises(FinserError, match=r"manifest=.*add overwrite=true"):
        write_manifest(clips, foreign)
    assert foreign.read_text() == "my,own,table\n"
    write_manifest(clips, foreign, overwrite=True)
    assert read_manifest(foreign) == clips

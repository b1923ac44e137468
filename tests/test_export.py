"""export.py: published FINs and SER models leave Python as ONNX and TorchScript files equal to PyTorch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

import export as export_entry
from finser.errors import FinserError
from finser.export import TOLERANCE, export, exported_module, generated_audio, output_list
from finser.features import REGISTERED_FEATURES
from finser.models.checkpoint import build_model, load_model, save_checkpoint
from finser.models.fin import build_fin
from tests.conftest import REPO

ARCHS = sorted(path.stem for path in (REPO / "conf" / "fin_arch").glob("*.yaml"))
HEADS = {
    "conv1d": {"_target_": "finser.models.ser.Conv1dHead", "channels": [8, 8, 8, 8, 8, 8, 4, 4], "n_classes": 4},
    "temporal": {"_target_": "finser.models.ser.TemporalHead", "channels": 8, "n_layers": 2, "n_classes": 4},
}
EMOTIONS = ["neutral", "happy", "sad", "angry"]
OFFSET = 0.1  # publish_ser's clip starts 0.1 s in: predict and the exported graph both skip it
# Every spectral FIN is its own class per feature; the study's FINs share one class, shown on their smallest.
FIN_CASES = [(feature, arch) for arch in ARCHS for feature in (REGISTERED_FEATURES if arch == "spectral" else ("rms",))]


def publish_fin(tmp_path: Path, feature: str, arch: str) -> Path:
    torch.manual_seed(0)
    config = {"_target_": "finser.models.fin.build_fin", "feature": feature, "arch": arch}
    path = tmp_path / f"{feature}_{arch}.ckpt"
    return save_checkpoint(build_fin(feature, arch), config, path, kind="fin", feature=feature, arch=arch)


def publish_ser(tmp_path: Path, head: str, front_end: dict) -> Path:
    torch.manual_seed(0)
    config = {"_target_": "finser.models.ser.SERModel", "front_end": front_end, "head": HEADS[head]}
    model = build_model(config).eval()
    for module in model.modules():  # batch norm statistics away from their identity start, so they are tested
        if isinstance(module, torch.nn.BatchNorm1d):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.5, 2)
    clip = {"sample_rate": 22_050, "offset": OFFSET, "duration": 0.5, "band_limit_hz": None}  # 11,025 samples
    return save_checkpoint(model, config, tmp_path / "ser_model.ckpt", kind="ser", emotions=EMOTIONS, clip=clip)


def onnx_outputs(path: Path, inputs: np.ndarray) -> tuple[list[np.ndarray], dict[str, str]]:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return session.run(None, {name: inputs}), {p.key: p.value for p in onnx.load(str(path)).metadata_props}


def torchscript_outputs(path: Path, inputs: np.ndarray) -> tuple[list[np.ndarray], dict[str, str]]:
    extra = {"finser.json": ""}
    module = torch.jit.load(str(path), _extra_files=extra)
    with torch.no_grad():
        outputs = output_list(module, torch.from_numpy(inputs))
    return [output.numpy() for output in outputs], json.loads(extra["finser.json"])


READERS = {"onnx": onnx_outputs, "torchscript": torchscript_outputs}


def assert_same(path: Path, checkpoint: Path, format_name: str, inputs: torch.Tensor) -> dict[str, str]:
    """The exported file, run on inputs of a batch size (and length) it was not traced with, equals PyTorch."""
    model, meta = load_model(checkpoint)
    with torch.no_grad():
        expected = output_list(exported_module(model, meta), inputs)
    outputs, exported_meta = READERS[format_name](path, inputs.numpy())
    assert len(outputs) == len(expected)
    for output, reference in zip(outputs, expected, strict=True):
        np.testing.assert_allclose(output, reference, rtol=0, atol=TOLERANCE * (1 + reference.abs().max().item()))
    return exported_meta


@pytest.mark.parametrize("format_name", sorted(READERS))
@pytest.mark.parametrize(("feature", "arch"), FIN_CASES)
def test_every_fin_architecture_round_trips(tmp_path: Path, feature: str, arch: str, format_name: str) -> None:
    checkpoint = publish_fin(tmp_path, feature, arch)
    path, _ = export(checkpoint, format_name)
    assert path != checkpoint and path.exists() and checkpoint.exists()
    meta = assert_same(path, checkpoint, format_name, generated_audio(7, 2048, seed=5))
    assert meta["feature"] == feature and meta["sample_rate"] == "22050"


@pytest.mark.slow  # 10-16 s each on 2 shared cores: tracing the five spectral FINs inside an SER model
@pytest.mark.parametrize("format_name", sorted(READERS))
@pytest.mark.parametrize("head", sorted(HEADS))
def test_both_ser_heads_round_trip_at_any_batch_and_length(tmp_path: Path, head: str, format_name: str) -> None:
    front_end = {"_target_": "finser.models.ser.FINFrontEnd", "arch": "spectral"}
    checkpoint = publish_ser(tmp_path, head, front_end)
    path, _ = export(checkpoint, format_name, tmp_path / "out" / f"model.{format_name}")
    for batch, samples in ((1, 2048), (4, 30_000)):
        meta = assert_same(path, checkpoint, format_name, generated_audio(batch, samples, seed=batch))
    assert meta["emotions"].split(",") == EMOTIONS
    assert (meta["sample_rate"], meta["n_fft"], meta["hop_length"]) == ("22050", "2048", "512")


@pytest.mark.slow
@pytest.mark.parametrize("format_name", sorted(READERS))
def test_the_exact_front_end_round_trips_in_both_formats(tmp_path: Path, format_name: str) -> None:
    """The baseline's exact features leave Python too: ONNX writes the FFT as the same DFT in matrix products."""
    checkpoint = publish_ser(tmp_path, "conv1d", {"_target_": "finser.models.ser.ExactFrontEnd"})
    path, _ = export(checkpoint, format_name)
    for batch, samples in ((1, 2048), (2, 20_000)):
        assert_same(path, checkpoint, format_name, generated_audio(batch, samples, seed=3))


def test_a_checkpoint_that_is_not_finsers_is_refused(tmp_path: Path) -> None:
    torch.save({"state_dict": {}}, tmp_path / "lightning.ckpt")
    with pytest.raises(FinserError, match="not a finser checkpoint"):
        export(tmp_path / "lightning.ckpt", "onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lightning.ckpt"]


def test_the_output_never_replaces_the_checkpoint(tmp_path: Path) -> None:
    checkpoint = publish_fin(tmp_path, "rms", "spectral")
    before = checkpoint.read_bytes()
    with pytest.raises(FinserError, match="is the checkpoint itself"):
        export(checkpoint, "torchscript", checkpoint)
    assert checkpoint.read_bytes() == before


def test_the_entry_point_reports_bad_arguments_and_missing_onnx(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert export_entry.main(["ckpt=x.ckpt"]) == 1
    assert "missing format" in capsys.readouterr().err
    assert export_entry.main([f"ckpt={publish_fin(tmp_path, 'rms', 'spectral')}", "format=tflite"]) == 1
    assert "expected one of onnx, torchscript" in capsys.readouterr().err
    monkeypatch.setitem(__import__("sys").modules, "onnxruntime", None)  # as if the extra were not installed
    assert export_entry.main([f"ckpt={tmp_path / 'rms_spectral.ckpt'}", "format=onnx"]) == 1
    assert "pip install 'finser[onnx]'" in capsys.readouterr().err

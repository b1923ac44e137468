"""Published checkpoints round-trip through finser.load_fin and refuse anything else."""

from __future__ import annotations

import os
import re
import stat
import sys
from pathlib import Path

import pytest
import torch

import finser
from finser.errors import FinserError
from finser.models.checkpoint import FORMAT, load_model, save_checkpoint
from finser.models.fin import spectral_fin, study_fin
from tests.conftest import REPO
from tests.preloaded import run_python


def test_round_trip_gives_the_same_function(tmp_path: Path) -> None:
    net = study_fin("rms", convolutional=False)
    net.output_scale.set_statistics(torch.tensor([0.1]), torch.tensor([0.05]))
    config = {"_target_": "finser.models.fin.study_fin", "feature": "rms", "convolutional": False}
    path = save_checkpoint(net, config, tmp_path / "rms_fc.ckpt", kind="fin", feature="rms", arch="fc")
    loaded = finser.load_fin(path)
    assert isinstance(loaded, torch.nn.Module) and not loaded.training
    frames = torch.randn(5, 2048)
    torch.testing.assert_close(loaded(frames), net.eval()(frames))


def test_a_file_that_is_not_a_finser_checkpoint_is_refused(tmp_path: Path) -> None:
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(FinserError, match="not a finser checkpoint"):
        finser.load_fin(tmp_path / "junk.ckpt")
    torch.save({"state_dict": {}}, tmp_path / "lightning.ckpt")
    with pytest.raises(FinserError, match="not a finser checkpoint"):
        finser.load_fin(tmp_path / "lightning.ckpt")
    with pytest.raises(FinserError, match="does not exist"):
        finser.load_fin(tmp_path / "missing.ckpt")


@pytest.mark.parametrize(
    "config",
    [
        {"_target_": "os.system", "command": "true"},
        # nested: an SER model whose head would be built by a foreign constructor
        {
            "_target_": "finser.models.ser.SERModel",
            "front_end": {"_target_": "finser.models.ser.ExactFrontEnd"},
            "head": {"_target_": "os.system", "command": "true"},
        },
        {"_target_": "finser.models.ser.SERModel", "layers": [{"_target_": "subprocess.run", "args": ["true"]}]},
    ],
)
def test_a_constructor_outside_finser_is_refused_at_any_depth(tmp_path: Path, config: dict) -> None:
    path = save_checkpoint(spectral_fin("rms"), config, tmp_path / "x.ckpt")
    with pytest.raises(FinserError, match=r"not one of finser's model constructors|where a plain value belongs"):
        finser.load_fin(path)


class WritesMarker:
    """A pickle payload: unpickling it creates ``marker`` (what a hostile checkpoint would do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (Path.touch, (self.marker,))


def crafted(path: Path, model: object, state_dict: object = None, meta: object = None, **payload: object) -> Path:
    """A file in finser's format whose fields say whatever an attacker or a damaged disk wrote."""
    meta = {"kind": "fin"} if meta is None else meta
    torch.save({"format": FORMAT, "model": model, "state_dict": state_dict or {}, "meta": meta, **payload}, path)
    return path


def gadgets(tmp_path: Path, marker: Path) -> dict[str, dict]:
    """Descriptions that made main (1398933) run code or misbuild through hydra.utils.instantiate."""
    pickled = tmp_path / "payload.pkl"
    torch.save(WritesMarker(marker), pickled)
    return {
        "torch.load of a pickle": {"_target_": "finser.models.checkpoint.torch.load", "_args_": [str(pickled)],
                                   "weights_only": False},
        "Path.write_text": {"_target_": "finser.models.checkpoint.Path.write_text", "data": "owned",
                            "self": {"_target_": "finser.models.checkpoint.Path", "_args_": [str(marker)]}},
        "os.system": {"_target_": "finser.models.checkpoint.os.system", "_args_": [f"touch {marker}"]},
        "module attribute path": {"_target_": "finser.models.ser.torch.save", "obj": 1, "f": str(marker)},
        "nested target": {"_target_": "finser.models.ser.SERModel",
                          "front_end": {"_target_": "finser.models.ser.ExactFrontEnd"},
                          "head": {"_target_": "finser.models.fin.Path.touch", "self": str(marker)}},
        "_partial_": {"_target_": "finser.models.fin.spectral_fin", "feature": "rms", "_partial_": True},
        "_args_ on a model": {"_target_": "finser.models.fin.study_fin", "_args_": ["rms"]},
        "_call_": {"_target_": "finser.models.fin.study_fin", "feature": "rms", "_call_": False},
        "_convert_ in a value": {"_target_": "finser.models.ser.Conv1dHead", "channels": {"_convert_": "all"}},
        "unknown keyword": {"_target_": "finser.models.fin.study_fin", "feature": "rms", "colour": "blue"},
        "unknown spectral option": {"_target_": "finser.models.fin.spectral_fin", "feature": "rms", "colour": "blue"},
        "a tensor as argument": {"_target_": "finser.models.ser.Conv1dHead", "n_features": torch.tensor(162)},
    }  # fmt: skip


def test_crafted_descriptions_are_refused_before_anything_is_built(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    for name, model in gadgets(tmp_path, marker).items():
        path = crafted(tmp_path / "hostile.ckpt", model)
        with pytest.raises(FinserError, match=re.escape(str(path))):
            finser.load_fin(path)
        assert not marker.exists(), f"{name}: the checkpoint ran code"


def test_predict_refuses_a_hostile_checkpoint_in_one_line(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    path = crafted(tmp_path / "ser_model.ckpt", gadgets(tmp_path, marker)["torch.load of a pickle"],
                   meta={"kind": "ser", "emotions": ["angry", "sad"]})  # fmt: skip
    (tmp_path / "clips").mkdir()
    command = [sys.executable, str(REPO / "predict.py"), f"ckpt={path}", f"audio={tmp_path / 'clips'}"]
    result = run_python(command, timeout=300)
    assert result.returncode == 1
    assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "not one of finser's model constructors" in result.stderr
    assert not marker.exists()


def rms_fin_config() -> dict:
    return {"_target_": "finser.models.fin.study_fin", "feature": "rms", "convolutional": False}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p: p.update(format="finser-checkpoint-2"), "made by finser checkpoint format 2; this finser reads 1"),
        (lambda p: p.pop("meta"), "'meta' entry is missing"),
        (lambda p: p["meta"].pop("kind"), "metadata names no kind"),
        (lambda p: p.update(meta={"kind": "ser"}), "SER model without its emotions"),
        (lambda p: p["state_dict"].update({"body.0.weights": p["state_dict"].pop("body.0.weight")}), "do not fit"),
        (lambda p: p["state_dict"].pop("body.0.weight"), "do not fit"),
        (lambda p: p["state_dict"].update({"body.0.weight": torch.zeros(3, 3)}), "do not fit"),
    ],
    ids=["other format", "no meta", "no kind", "ser without emotions", "renamed key", "missing key", "wrong shape"],
)
def test_damaged_or_foreign_files_are_a_finser_error_naming_the_file(tmp_path: Path, change, message: str) -> None:
    net = study_fin("rms", convolutional=False)
    payload = {"format": FORMAT, "model": rms_fin_config(), "state_dict": net.state_dict(), "meta": {"kind": "fin"}}
    change(payload)
    path = tmp_path / "damaged.ckpt"
    torch.save(payload, path)
    with pytest.raises(FinserError, match=rf"{re.escape(str(path))}.*{message}"):
        load_model(path)


def test_published_files_are_readable_as_the_umask_says(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        path = save_checkpoint(study_fin("rms", False), rms_fin_config(), tmp_path / "rms_fc.ckpt", kind="fin")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644

"""Published checkpoints round-trip through finser.load_fin and refuse anything else."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import finser
from finser.errors import FinserError
from finser.models.checkpoint import save_checkpoint
from finser.models.fin import spectral_fin, study_fin


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
    with pytest.raises(FinserError, match=r"outside finser\.models"):
        finser.load_fin(path)

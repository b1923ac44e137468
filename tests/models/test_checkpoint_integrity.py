"""Published checkpoints carry their integrity: a changed byte or a NaN weight is refused, naming the file."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

import finser
from finser.errors import FinserError
from finser.models.checkpoint import save_checkpoint
from finser.models.fin import spectral_fin

CONFIG = {"_target_": "finser.models.fin.spectral_fin", "feature": "mfcc"}


def published(path: Path) -> Path:
    return save_checkpoint(spectral_fin("mfcc"), CONFIG, path, kind="fin", feature="mfcc", arch="spectral")


def largest_tensor_bytes(path: Path) -> bytes:
    state_dict = torch.load(path, weights_only=True)["state_dict"]
    tensor = max(state_dict.values(), key=lambda t: t.numel() * t.element_size())
    return tensor.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def test_flipped_bytes_in_a_tensor_are_refused(tmp_path: Path) -> None:
    path = published(tmp_path / "mfcc_spectral.ckpt")
    finser.load_fin(path)
    raw = bytearray(path.read_bytes())
    start = raw.find(largest_tensor_bytes(path))
    assert start >= 0
    for position in range(start + 100, start + 164):  # 64 flipped bytes inside the tensor's data
        raw[position] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(FinserError, match=rf"{path}.*do not match the checksum"):
        finser.load_fin(path)


def test_nan_weights_are_refused_at_publish_and_at_load(tmp_path: Path) -> None:
    net = spectral_fin("mfcc")
    with torch.no_grad():
        next(net.parameters()).fill_(float("nan"))
    with pytest.raises(FinserError, match="NaN or inf"):
        save_checkpoint(net, CONFIG, tmp_path / "nan.ckpt", kind="fin")
    assert not (tmp_path / "nan.ckpt").exists()
    path = published(tmp_path / "mfcc_spectral.ckpt")
    payload = torch.load(path, weights_only=True)
    for tensor in payload["state_dict"].values():
        if tensor.is_floating_point():
            tensor.fill_(float("nan"))
    payload.pop("checksum")  # a file that claims nothing about its bytes is still checked finite
    torch.save(payload, path)
    with pytest.raises(FinserError, match=rf"{path} is damaged.*NaN or inf"):
        finser.load_fin(path)


def test_a_file_without_checksum_loads_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = published(tmp_path / "old.ckpt")
    payload = torch.load(path, weights_only=True)
    payload.pop("checksum")
    torch.save(payload, path)
    with caplog.at_level(logging.WARNING):
        model = finser.load_fin(path)
    assert "records no checksum" in caplog.text and str(path) in caplog.text
    frames = torch.randn(3, 2048)
    torch.testing.assert_close(model(frames), spectral_fin("mfcc").eval()(frames))

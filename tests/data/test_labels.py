"""Manifests: written whole or not at all, read the same from any working directory."""

from __future__ import annotations

import errno
import tempfile
from pathlib import Path

import pytest

from finser.data.labels import Clip, write_manifest
from finser.errors import FinserError


def test_an_unwritable_manifest_folder_is_one_error_and_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def denying_mkstemp(*args: object, dir: str = "", **kwargs: object) -> object:
        # chmod does not stop root (as in CI): deny creating the file itself
        raise PermissionError(errno.EACCES, "Permission denied", str(dir))

    monkeypatch.setattr(tempfile, "mkstemp", denying_mkstemp)
    with pytest.raises(FinserError, match=r"cannot write manifest=\S+m\.csv: Permission denied: choose a path"):
        write_manifest([Clip("a.wav", "ravdess", "01", "calm")], tmp_path / "m.csv")
    assert list(tmp_path.iterdir()) == []

"""One command-line grammar and one exit code for every entry point that is not composed by Hydra."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

import export as export_entry
import predict as predict_entry
from finser.cli import EXIT_ERROR, Key, parse_keys
from finser.errors import FinserError
from tests.conftest import REPO

KEYS = {"ckpt": Key(required=True), "windows": Key("false", kind="bool"), "batch": Key("32", kind="count")}


def test_values_are_read_as_their_kind_with_defaults() -> None:
    assert parse_keys(["ckpt=a.ckpt", "windows=TRUE"], KEYS, "usage") == {
        "ckpt": "a.ckpt",
        "windows": True,
        "batch": 32,
    }
    assert parse_keys(["batch=4", "ckpt=a=b"], KEYS, "usage") == {"ckpt": "a=b", "windows": False, "batch": 4}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["ckpt=a", "windows=ture"], "windows='ture': expected windows=true or windows=false"),
        (["ckpt=a", "windows=yes"], "expected windows=true or windows=false"),
        (["ckpt=a", "batch=0"], "batch='0': expected a whole number >= 1"),
        (["ckpt=a", "batch=two"], "batch='two'"),
        (["ckpt=a", "colour=blue"], "unknown argument 'colour=blue'"),
        (["ckpt=a", "--windows"], "unknown argument '--windows'"),
        (["ckpt=a", "ckpt=b"], "ckpt= is given twice ('a' and 'b')"),
        (["windows=true"], "missing ckpt="),
        (["ckpt="], "missing ckpt="),
    ],
)
def test_anything_else_is_refused_with_the_usage(argv: list[str], message: str) -> None:
    with pytest.raises(FinserError) as caught:
        parse_keys(argv, KEYS, "usage: cmd ckpt=PATH")
    assert message in str(caught.value)
    if "unknown" in message or "missing" in message or "twice" in message:
        assert str(caught.value).endswith("usage: cmd ckpt=PATH")


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("entry", ["predict", "export", "prepare_corpora"])
@pytest.mark.parametrize("mistake", ["colour=blue", "overwrite=ture"])
def test_every_entry_point_refuses_the_same_mistake_with_the_same_exit_code(
    entry: str, mistake: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unknown key, and a boolean that is neither true nor false (export has no boolean: an unknown key there),
    end predict.py, export.py and prepare_corpora.py alike: exit 1 and one ``error:`` line naming it, before any
    file is read."""
    mains = {
        "predict": (predict_entry.main, [f"ckpt={tmp_path}/none.ckpt", f"audio={tmp_path}"]),
        "export": (export_entry.main, [f"ckpt={tmp_path}/none.ckpt", "format=onnx"]),
        "prepare_corpora": (
            load_script("prepare_corpora").main,
            ["dataset=savee", f"dataset.root={tmp_path}", f"manifest={tmp_path}/m.csv"],
        ),
    }
    main, argv = mains[entry]
    assert main([*argv, mistake]) == EXIT_ERROR
    error = capsys.readouterr().err
    assert error.startswith("error: ") and mistake.split("=")[0] in error.splitlines()[0]

"""Every command in the README's code blocks is one finser accepts as written: each ``train.py``/``eval.py`` line
composes (its sweeps at their first value, as the first job of the ``-m`` sweep), each ``predict.py``/``export.py``
line parses, each ``make`` line names a target with its variables, and the Python block runs on a published FIN.
Running them at full size is what ``make train``/``make test`` and the end-to-end tests do."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser

import export as export_entry
import predict as predict_entry
from finser.cli import parse_keys
from tests.conftest import REPO, publish_tiny_fins

README = (REPO / "README.md").read_text()


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.DOTALL)


def command_lines() -> list[list[str]]:
    lines = [line for block in blocks("bash") for line in block.splitlines() if line.strip()]
    return [shlex.split(line, comments=True) for line in lines]


def first_job(overrides: list[str]) -> list[str]:
    """The overrides of a ``-m`` sweep's first job: each swept value at its first element."""
    parsed = OverridesParser.create().parse_overrides(overrides)
    return [
        f"{override.get_key_element()}={next(iter(override.sweep_string_iterator()))}"
        if override.is_sweep_override()
        else override.input_line
        for override in parsed
    ]


COMMANDS = command_lines()


def running(*scripts: str) -> list[list[str]]:
    return [command for command in COMMANDS if command[0] == "python" and command[1] in scripts]


def test_the_readme_shows_every_entry_point() -> None:
    programs = {command[1] if command[0] == "python" else command[0] for command in COMMANDS}
    assert {"train.py", "eval.py", "predict.py", "export.py", "make"} <= programs


@pytest.mark.parametrize("command", running("train.py", "eval.py"), ids=" ".join)
def test_each_train_and_eval_line_composes(command: list[str]) -> None:
    config = "train" if command[1] == "train.py" else "eval"
    overrides = first_job([token for token in command[2:] if token != "-m"])
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        compose(config, overrides=overrides)  # raises as train.py would for a wrong key or option


@pytest.mark.parametrize("command", running("predict.py", "export.py"), ids=" ".join)
def test_each_predict_and_export_line_parses(command: list[str]) -> None:
    entry = predict_entry if command[1] == "predict.py" else export_entry
    parse_keys(command[2:], entry.KEYS, entry.USAGE)


@pytest.mark.parametrize("command", [c for c in COMMANDS if c[0] == "make"], ids=" ".join)
def test_each_make_line_is_a_target(command: list[str]) -> None:
    """``make -n``: the target and its variables exist (nothing runs; the venv stamp is made out of date-proof)."""
    result = subprocess.run(["make", "-n", "-o", ".venv/.installed", *command[1:]], cwd=REPO, capture_output=True,
                            text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_the_python_block_runs_on_a_published_fin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    publish_tiny_fins(tmp_path / "outputs" / "fins")
    monkeypatch.chdir(tmp_path)
    (block,) = blocks("python")
    exec(compile(block, "README.md", "exec"), {})  # the README's own example, as a user pastes it

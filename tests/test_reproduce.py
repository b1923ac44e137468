"""scripts/reproduce.sh's commands compose as Hydra composes a ``-m`` sweep, for each of its documented settings."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.types import RunMode

from finser.cli import parse_keys
from tests.conftest import REPO, load_script

RECORDER = """#!/bin/sh
for argument in "$@"; do printf '%s\\n' "$argument"; done >> "$RECORD"
echo "--" >> "$RECORD"
"""


def recorded_commands(tmp_path: Path, **variables: str) -> list[list[str]]:
    """The ``python`` command lines reproduce.sh runs with ``variables``, recorded instead of run."""
    recorder, record = tmp_path / "python", tmp_path / "record"
    recorder.write_text(RECORDER)
    recorder.chmod(0o755)
    env = {**os.environ, **variables, "PYTHON": str(recorder), "RECORD": str(record), "OUT": str(tmp_path / "out")}
    subprocess.run(["bash", str(REPO / "scripts" / "reproduce.sh")], cwd=REPO, env=env, check=True, timeout=60)
    commands, current = [], []
    for line in record.read_text().splitlines():
        if line == "--":
            commands.append(current)
            current = []
        else:
            current.append(line)
    return commands


@pytest.mark.parametrize(
    "variables",
    [
        {"DATASET": "synthetic", "SEEDS": "0,1,2", "SER_ARGS": "training.batch_size=8 dataset.audio.duration=1.5"},
        {"DATASET": "synthetic", "FOLDS": "all", "FRACTIONS": "0.1,1.0", "CONTROLS": "1", "LEAVE_ONE_OUT": "1"},
        {"DATASET": "synthetic", "FRACTIONS": "0.5"},
    ],
)
def test_every_sweep_of_reproduce_sh_composes_in_multirun_mode(tmp_path: Path, variables: dict[str, str]) -> None:
    """A ``-m`` sweep composes its primary config with every override that is not swept, before any job has chosen
    its experiment: an SER-only key set without ``++`` failed there (seen: ``datamodule.train_fraction``)."""
    commands = [command for command in recorded_commands(tmp_path, **variables) if command[0] == "train.py"]
    assert len(commands) == 2 + ("CONTROLS" in variables) + ("LEAVE_ONE_OUT" in variables)
    for command in commands:
        assert command[1] == "-m"
        with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
            hydra = GlobalHydra.instance().hydra
            hydra.compose_config("train", command[2:], run_mode=RunMode.MULTIRUN)  # raises as `train.py -m` would
        GlobalHydra.instance().clear()
    if "LEAVE_ONE_OUT" in variables:
        (subsets,) = [argument for argument in commands[-1] if argument.startswith("front_end.features=")]
        assert subsets.count("[") == 5 and "[rms,chroma,mfcc,melspec]" in subsets  # each FIN left out once


def test_the_report_it_ends_with_takes_the_sweeps_folder(tmp_path: Path) -> None:
    """reproduce.sh's last command is the report, in its key=value form (seen: ``"$OUT" --out "$REPORT"``)."""
    report = load_script("report")
    command = recorded_commands(tmp_path, DATASET="synthetic", REPORT=str(tmp_path / "report"))[-1]
    assert command[0] == "scripts/report.py"
    options = parse_keys(command[1:], report.KEYS, report.USAGE)
    assert (options["runs"], options["out"]) == ([str(tmp_path / "out")], str(tmp_path / "report"))

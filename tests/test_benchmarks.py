"""The benchmark package (benchmarks/, `make bench`): its entry points, its harness and what train.py loads from it."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
from hydra.utils import get_object

from benchmarks.timing import fmt, paired_ratios
from finser.cli import EXIT_ERROR, parse_keys
from tests.conftest import REPO

SECTIONS = ["features", "fins", "training", "startup", "data", "predict", "sharing", "steps"]


@pytest.mark.parametrize("name", SECTIONS)
def test_every_section_measures_and_renders(name: str) -> None:
    module = importlib.import_module(f"benchmarks.{name}")
    assert callable(module.run) and callable(module.markdown)


def test_the_fin_cost_section_sets_a_fin_the_study_had_not_beside_nothing() -> None:
    """Section 2 covers every registered feature; the study's columns are its numbers, or dashes where it had none."""
    from benchmarks import fins
    from finser import study
    from finser.features import REGISTERED_FEATURES

    assert "spectral_centroid" in REGISTERED_FEATURES and set(fins.fin_variants("spectral_centroid")) >= {"fc", "conv"}
    measured = {"params": 10, "flops_per_frame": 2e6, "all_ops_per_frame": 3e6, "frames_per_s": 1e4,
                "frames_per_s_1_thread": 6e3, "r2_published": None, "r2_at_init": 0.5, "r2_at_init_white_noise": None,
                "relative_error_white_noise": None}  # fmt: skip
    rows = {
        feature: {"feature": feature, "arch": "spectral", **measured} for feature in ("chroma", "spectral_centroid")
    }
    lines = fins.markdown(rows).splitlines()
    chroma, centroid = (next(line for line in lines if line.startswith(f"| {name} |")) for name in rows)
    assert chroma.endswith(f"| {study.FIN_R2['chroma'][0]:.2f} |") and "K / " in chroma
    assert "| — (not in the study) | — | — |" in centroid and centroid.endswith("| — |")


def test_the_start_up_timer_is_a_callback_train_py_can_load() -> None:
    # benchmarks/startup.py adds it as +callbacks.bench_timer._target_=...; train.py's folder starts its sys.path.
    assert issubclass(get_object("benchmarks.callbacks.FirstStepTimer"), L.Callback)


def test_ratios_are_taken_turn_by_turn_and_numbers_print_with_three_figures() -> None:
    assert paired_ratios([1.0, 2.0, 0.5], [2.0, 2.0, 2.0]) == [1.0, 2.0, 4.0]
    assert (fmt(1234.56), fmt(12.345), fmt(0.012345), fmt(0.0)) == ("1,235", "12.3", "0.012", "0.0")


def test_a_failed_data_section_is_reported_not_raised() -> None:
    from benchmarks import data

    error = "benchmarks.data took over 300 s"
    assert data.markdown({"error": error}) == f"**Pending**: {error}."


def test_sharing_flags_a_slow_down_past_the_goal() -> None:
    from benchmarks import sharing

    rates = {"compute_all_frames_per_s": 100.0, "fin_step_frames_per_s": 100.0}
    results = {f"{label}|0": rates for label in sharing.POLICIES}
    results |= {f"{label}|2": {key: value / (1.5 if "PASSIVE" in label else 30) for key, value in rates.items()}
                for label in sharing.POLICIES}  # fmt: skip
    table = sharing.markdown(results)
    assert table.count("1.5× ✓") == 2 and table.count("30.0× ⚠") == 2


def test_busy_competitors_are_gone_after_the_block() -> None:
    from benchmarks import sharing

    with sharing.competing(2) as busy:
        assert len(busy) == 2 and all(process.poll() is None for process in busy)
    assert all(process.poll() is not None for process in busy)


@pytest.mark.parametrize(("script", "module"), [("bench.py", "__main__"), ("bench_data.py", "data")])
def test_the_scripts_run_the_package_from_any_folder(tmp_path: Path, script: str, module: str) -> None:
    """``help`` reaches the package's own usage (and exit code) from a folder that is not the repository's."""
    result = subprocess.run([sys.executable, str(REPO / "scripts" / script), "help"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == EXIT_ERROR
    assert result.stderr.endswith(importlib.import_module(f"benchmarks.{module}").USAGE + "\n")


def test_bench_never_replaces_a_bench_md_it_did_not_write(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Refused before any section runs: exit 1, one error line, the file untouched."""
    from benchmarks.__main__ import main

    (tmp_path / "bench.md").write_text("# my table\n")
    assert main([f"out={tmp_path}", "quick=true"]) == EXIT_ERROR
    assert "bench.md exists and this command did not write it: choose another folder, or add overwrite=true" in (
        capsys.readouterr().err
    )
    assert (tmp_path / "bench.md").read_text() == "# my table\n"


@pytest.mark.parametrize(("name", "arguments"), [("data", (0.05, 1.0)), ("scale", (0.005, 4))])
def test_each_section_process_is_started_with_keys_its_module_takes(
    name: str, arguments: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``make bench`` runs sections 5 and 9 as ``python -m benchmarks.<name> key=value ... json=FILE``: a key the
    module refused would leave the section Pending in every bench.md."""
    module = importlib.import_module(f"benchmarks.{name}")
    commands = []

    def record(command: list[str], **_: object) -> subprocess.CompletedProcess:
        commands.append(command)
        return subprocess.CompletedProcess(command, EXIT_ERROR, "", "")

    monkeypatch.setattr(subprocess, "run", record)
    assert "error" in module.run(*arguments, timeout=1)
    (command,) = commands
    assert command[1:3] == ["-m", f"benchmarks.{name}"]
    parsed = parse_keys(command[3:], module.KEYS, module.USAGE)
    assert [parsed[key] for key in list(module.KEYS)[:2]] == list(arguments) and parsed["json"].endswith(".json")


@pytest.mark.parametrize("head", ["conv1d", "temporal"])
def test_a_head_read_from_its_file_alone_builds_with_the_eight_emotions(head: str) -> None:
    import torch
    from hydra.utils import instantiate

    from benchmarks.heads import head_config
    from finser.data.labels import EMOTIONS

    built = instantiate(head_config(head)).eval()
    with torch.no_grad():
        assert built(torch.randn(2, 162, 10), torch.ones(2, 10, dtype=torch.bool)).shape == (2, len(EMOTIONS))

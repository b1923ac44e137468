"""One command-line grammar and one exit code for every entry point that is not composed by Hydra."""

from __future__ import annotations

import importlib
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

import export as export_entry
import predict as predict_entry
from finser.cli import EXIT_ERROR, Key, parse_keys
from finser.errors import FinserError
from tests.conftest import REPO, load_script

KEYS = {"ckpt": Key(required=True), "windows": Key("false", kind="bool"), "batch": Key("32", kind="count")}


def test_values_are_read_as_their_kind_with_defaults() -> None:
    assert parse_keys(["ckpt=a.ckpt", "windows=TRUE"], KEYS, "usage") == {
        "ckpt": "a.ckpt",
        "windows": True,
        "batch": 32,
    }
    assert parse_keys(["batch=4", "ckpt=a=b"], KEYS, "usage") == {"ckpt": "a=b", "windows": False, "batch": 4}


def test_fractions_and_lists_are_read_as_hydra_writes_them() -> None:
    """A fraction is a number from 0 to 1; a list is ``[a,b]`` as in ``front_end.features=[...]``, or one item."""
    keys = {"scale": Key("0.05", kind="fraction"), "runs": Key(required=True, kind="list")}
    assert parse_keys(["runs=[a,b/c]", "scale=1e-3"], keys, "usage") == {"scale": 0.001, "runs": ["a", "b/c"]}
    assert parse_keys(["runs=outputs/reproduce"], keys, "usage") == {"scale": 0.05, "runs": ["outputs/reproduce"]}
    assert parse_keys(["runs=[a, b]", "scale=0"], keys, "usage") == {"scale": 0.0, "runs": ["a", "b"]}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["ckpt=a", "windows=ture"], "windows='ture': expected windows=true or windows=false"),
        (["ckpt=a", "windows=yes"], "expected windows=true or windows=false"),
        (["ckpt=a", "batch=0"], "batch='0': expected a whole number >= 1"),
        (["ckpt=a", "batch=two"], "batch='two'"),
        (["ckpt=a", "colour=blue"], "unknown argument 'colour=blue'"),
        (["ckpt=a", "--windows"], "unknown argument '--windows': the --flag form is gone: write windows=true"),
        (["ckpt=a", "--batch", "4"], "unknown argument '--batch': the --flag form is gone: write batch=4"),
        (["ckpt=a", "--batch=4"], "unknown argument '--batch=4': the --flag form is gone: write batch=4"),
        (["--ckpt"], "unknown argument '--ckpt': the --flag form is gone: write ckpt=VALUE"),
        (["ckpt=a", "--colour"], "unknown argument '--colour': expected key=value"),
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


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("scale=1.5", "scale='1.5': expected a number from 0 to 1"),
        ("scale=-0.1", "expected a number from 0 to 1"),
        ("scale=nan", "expected a number from 0 to 1"),
        ("scale=half", "scale='half': expected a number from 0 to 1"),
        ("runs=[]", "runs='[]': expected one path or a list [a,b,...]"),
        ("runs=[a,,b]", "expected one path or a list [a,b,...]"),
    ],
)
def test_a_fraction_or_list_that_is_not_one_is_refused(value: str, message: str) -> None:
    keys = {"scale": Key("0.05", kind="fraction"), "runs": Key("a", kind="list")}
    with pytest.raises(FinserError, match=message.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        parse_keys([value], keys, "usage")


def entry_module(entry: str):
    """The module of an entry point: a root script, a script under scripts/, or a benchmarks module."""
    if entry in ("predict", "export"):
        return {"predict": predict_entry, "export": export_entry}[entry]
    if entry.startswith("benchmarks"):
        return importlib.import_module(entry)
    return load_script(entry)


def valid_arguments(entry: str, tmp_path: Path) -> list[str]:
    """Arguments each entry point accepts, naming only paths under ``tmp_path`` that do not exist."""
    return {
        "predict": [f"ckpt={tmp_path}/none.ckpt", f"audio={tmp_path}"],
        "export": [f"ckpt={tmp_path}/none.ckpt", "format=onnx"],
        "prepare_corpora": ["dataset=savee", f"dataset.root={tmp_path}", f"manifest={tmp_path}/m.csv"],
        "report": [f"runs={tmp_path}/runs", f"out={tmp_path}/report"],
        "benchmarks.__main__": [f"out={tmp_path}/bench", "quick=true"],
        "benchmarks.data": ["scale=0.01", f"json={tmp_path}/data.json"],
        "benchmarks.scale": ["fraction=0.01", f"json={tmp_path}/scale.json"],
    }[entry]


ENTRIES = ["predict", "export", "prepare_corpora", "report"] + [
    f"benchmarks.{name}" for name in ("__main__", "data", "scale")
]


@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize("mistake", ["colour=blue", "overwrite=ture", "twice"])
def test_every_entry_point_refuses_the_same_mistake_with_the_same_exit_code(
    entry: str, mistake: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unknown key, a boolean that is neither true nor false (an unknown key where there is no ``overwrite``)
    and a key given twice end every entry point alike: exit 1 and one ``error:`` line naming the key, before any
    file is read or written."""
    argv = valid_arguments(entry, tmp_path)
    repeated = argv[0] if mistake == "twice" else mistake
    key = repeated.split("=")[0]
    assert entry_module(entry).main([*argv, repeated]) == EXIT_ERROR
    error = capsys.readouterr().err
    assert error.startswith("error: ") and key in error.splitlines()[0]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("entry", ["report", "benchmarks.__main__", "benchmarks.data", "benchmarks.scale"])
@pytest.mark.parametrize("old", [["--out", "somewhere"], ["--overwrite"], ["--help"], ["help"]])
def test_the_old_flags_and_help_show_the_key_value_form(
    entry: str, old: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """What argparse took before (``--out DIR``, ``--overwrite``, ``--help``) is refused with the usage, naming the
    key=value to write where the command has that key; nothing runs."""
    module = entry_module(entry)
    assert module.main([*valid_arguments(entry, tmp_path), *old]) == EXIT_ERROR
    error = capsys.readouterr().err
    assert error.startswith(f"error: unknown argument {old[0]!r}") and error.rstrip().endswith(
        module.USAGE.splitlines()[-1]
    )
    if old[0].lstrip("-") in module.KEYS:
        assert f"write {old[0].lstrip('-')}={'true' if old == ['--overwrite'] else 'somewhere'}" in error
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("entry", ENTRIES)
def test_each_usage_names_every_key_the_command_takes(entry: str) -> None:
    module = entry_module(entry)
    assert module.USAGE.startswith("usage: ") and "--" not in module.USAGE
    for key in module.KEYS:
        assert f"{key}=" in module.USAGE


def test_the_report_with_no_arguments_shows_its_usage(capsys: pytest.CaptureFixture[str]) -> None:
    report = load_script("report")
    assert report.main([]) == EXIT_ERROR
    assert capsys.readouterr().err == f"error: missing runs=\n{report.USAGE}\n"


def entry_of(command: list[str]) -> tuple[str, list[str]]:
    """The entry point a ``python ...`` command line runs (as ENTRIES names it) and its arguments."""
    if command[1] == "-m":
        module = command[2] if command[2] != "benchmarks" else "benchmarks.__main__"
        return module, command[3:]
    script = Path(command[1]).stem
    return {"bench": "benchmarks.__main__", "bench_data": "benchmarks.data"}.get(script, script), command[2:]


def test_the_make_targets_pass_keys_their_commands_take() -> None:
    """``make report`` and ``make bench-scale`` (seen: ``--fraction``, argparse's form) parse as their commands do."""
    targets = ["report", "bench", "bench-scale", "RUNS=outputs/x", "SCALE=0.01"]
    outer = {"MAKEFLAGS", "MAKELEVEL", "MFLAGS"}  # under `make test` the child make would print Entering/Leaving
    environment = {name: value for name, value in os.environ.items() if name not in outer}
    made = subprocess.run(["make", "-n", "--no-print-directory", "-o", ".venv/.installed", *targets], cwd=REPO,
                          capture_output=True, text=True, check=True, timeout=60, env=environment).stdout  # fmt: skip
    commands = [shlex.split(line) for line in made.replace("\\\n", " ").splitlines()]
    entries = [entry_of(command) for command in commands]
    assert [entry for entry, _ in entries] == ["report", "benchmarks.__main__", "benchmarks.scale"]
    parsed = [parse_keys(arguments, entry_module(entry).KEYS, "") for entry, arguments in entries]
    assert parsed[0]["runs"] == ["outputs/x"] and parsed[2]["fraction"] == 0.01


def unbracket(argument: str) -> str:
    """``[key=value]``, a synopsis's optional key, as the key=value itself."""
    return argument[1:-1] if argument.startswith("[") and argument.endswith("]") else argument


def documented_commands() -> list[tuple[str, list[str]]]:
    """Every ``scripts/report.py``, ``scripts/bench*.py`` and ``python -m benchmarks[.data|.scale]`` command with
    arguments in the README and docs/ (code spans and bash lines), as its entry point and arguments."""
    script = r"scripts/(?:report|bench|bench_data)\.py|-m benchmarks(?:\.data|\.scale)?(?![.\w])"
    pattern = re.compile(rf"(?:python )?({script})(.*)")
    found = []
    for path in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        text = path.read_text()
        for snippet in re.findall(r"`([^`\n]+)`", text) + text.splitlines():
            match = pattern.search(snippet)
            arguments = shlex.split(match.group(2), comments=True) if match and "`" not in match.group(0) else []
            if arguments:  # a synopsis's [key=value] is that key=value; a bare name is only a mention
                found.append(entry_of(["python", *match.group(1).split(), *map(unbracket, arguments)]))
    return found


def test_every_report_and_bench_command_in_the_docs_parses() -> None:
    """The README and docs/ write these commands as they now parse (seen: ``python -m benchmarks.data --scale 0.02
    --serve-scale 0`` in docs/performance.md, argparse's form)."""
    commands = documented_commands()
    assert {entry for entry, _ in commands} >= {"report", "benchmarks.__main__", "benchmarks.data", "benchmarks.scale"}
    for entry, arguments in commands:
        module = entry_module(entry)
        parse_keys(arguments, module.KEYS, "")

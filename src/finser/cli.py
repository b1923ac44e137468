"""The ``key=value`` command line of every entry point Hydra does not compose (predict.py, export.py,
scripts/prepare_corpora.py, scripts/report.py and the benchmark), and how every entry point ends on an error.

The grammar is Hydra's, as train.py and eval.py take it: ``key=value`` pairs, each key once, no key the command does
not know, a boolean is ``true`` or ``false`` (``windows=ture`` is refused, never read as false) and a list is
``[a,b]``. A ``--flag`` is refused with the ``key=value`` to write instead. Every entry point exits 1 on any error (a
:class:`~finser.errors.FinserError`: an argument, config key, path or checkpoint refused, or nothing to show for the
work), as Hydra does for a wrong config key, and 0 otherwise.
"""

from __future__ import annotations

import math
import sys
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from finser.errors import FinserError

EXIT_ERROR = 1
BOOLEANS = {"true": True, "false": False}
Value = str | bool | int | float | list[str]


@dataclass(frozen=True)
class Key:
    """One ``key=value`` a command takes: required or its default, and the kind its value is read as (a key of
    :data:`READERS`)."""

    default: str | None = None
    required: bool = False
    kind: str = "text"


def read_bool(value: str) -> bool | None:
    return BOOLEANS.get(value.lower())


def read_count(value: str) -> int | None:
    return int(value) if value.isdigit() and int(value) >= 1 else None


def read_fraction(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) and 0 <= number <= 1 else None


def read_list(value: str) -> list[str] | None:
    """``[a,b]`` as Hydra writes a list (``front_end.features=[...]``; no item holds a comma), or one item."""
    listed = value.startswith("[") and value.endswith("]")
    items = [item.strip() for item in value[1:-1].split(",")] if listed else [value]
    return items if all(items) else None


# Each kind's reader (None: the value is not of that kind) and what it expects, for the error.
READERS: dict[str, tuple[Callable[[str], Value | None], str]] = {
    "text": (lambda value: value, "any text"),
    "bool": (read_bool, "{key}=true or {key}=false"),
    "count": (read_count, "a whole number >= 1"),
    "fraction": (read_fraction, "a number from 0 to 1"),
    "list": (read_list, "one path or a list [a,b,...]"),
}


def read_value(key: str, value: str, kind: str) -> Value:
    reader, expected = READERS[kind]
    result = reader(value)
    if result is None:
        raise FinserError(f"{key}={value!r}: expected {expected.format(key=key)}")
    return result


def usage(synopsis: str) -> str:
    """``usage:`` and a command's synopsis as its docstring shows it (indented, maybe over several lines), each line
    kept under the first."""
    first, *rest = textwrap.dedent(synopsis).strip().splitlines()
    return "\n".join([f"usage: {first}", *(f"       {line}" for line in rest)])


def flag_hint(argv: list[str], index: int, keys: Mapping[str, Key]) -> str:
    """For ``--key`` (or ``--key=v``, ``--key v``) of a known key, as argparse took it: the ``key=value`` to write."""
    flag = argv[index]
    name, separator, value = flag.removeprefix("--").partition("=")
    key = name.replace("-", "_")
    if not flag.startswith("--") or key not in keys:
        return ""
    if keys[key].kind == "bool":
        value = "true"
    elif not separator:
        following = argv[index + 1] if index + 1 < len(argv) else ""
        value = following if following and not following.startswith("-") and "=" not in following else "VALUE"
    return f": the --flag form is gone: write {key}={value}"


def parse_keys(argv: list[str], keys: Mapping[str, Key], usage: str) -> dict[str, Value | None]:
    """``argv``'s values by key (defaults filled in, each read as its kind); anything else refused with ``usage``."""
    given: dict[str, str] = {}
    for index, argument in enumerate(argv):
        key, separator, value = argument.partition("=")
        if not separator or key not in keys:
            hint = flag_hint(argv, index, keys) or f": expected key=value with key in {', '.join(keys)}"
            raise FinserError(f"unknown argument {argument!r}{hint}\n{usage}")
        if key in given:
            raise FinserError(f"{key}= is given twice ({given[key]!r} and {value!r}): give it once\n{usage}")
        given[key] = value
    missing = [key for key, spec in keys.items() if spec.required and not given.get(key)]
    if missing:
        raise FinserError(f"missing {' and '.join(f'{key}=' for key in missing)}\n{usage}")
    values: dict[str, Value | None] = {}
    for key, spec in keys.items():
        value = given.get(key, spec.default)
        values[key] = None if value is None else read_value(key, value, spec.kind)
    return values


def exit_code(command: Callable[[], int]) -> int:
    """Run an entry point's body: a FinserError ends it with its message on one ``error:`` line and exit 1."""
    try:
        return command()
    except FinserError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_ERROR

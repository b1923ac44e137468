"""The ``key=value`` command line of predict.py, export.py and scripts/prepare_corpora.py, and how every entry point
ends on an error.

The grammar is Hydra's, as train.py and eval.py take it: ``key=value`` pairs, each key once, no key the command does
not know, and a boolean is ``true`` or ``false`` (``windows=ture`` is refused, never read as false). Every entry point
exits 1 on any error (a :class:`~finser.errors.FinserError`: an argument, config key, path or checkpoint refused, or
nothing to show for the work), as Hydra does for a wrong config key, and 0 otherwise.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from finser.errors import FinserError

EXIT_ERROR = 1
BOOLEANS = {"true": True, "false": False}


@dataclass(frozen=True)
class Key:
    """One ``key=value`` a command takes: required or its default, and the kind its value is read as."""

    default: str | None = None
    required: bool = False
    kind: str = "text"  # text | bool | count (a whole number >= 1)


def read_value(key: str, value: str, kind: str) -> str | bool | int:
    if kind == "bool":
        if value.lower() not in BOOLEANS:
            raise FinserError(f"{key}={value!r}: expected {key}=true or {key}=false")
        return BOOLEANS[value.lower()]
    if kind == "count":
        if not value.isdigit() or int(value) < 1:
            raise FinserError(f"{key}={value!r}: expected a whole number >= 1")
        return int(value)
    return value


def parse_keys(argv: list[str], keys: Mapping[str, Key], usage: str) -> dict[str, str | bool | int | None]:
    """``argv``'s values by key (defaults filled in, each read as its kind); anything else refused with ``usage``."""
    given: dict[str, str] = {}
    for argument in argv:
        key, separator, value = argument.partition("=")
        if not separator or key not in keys:
            raise FinserError(
                f"unknown argument {argument!r}: expected key=value with key in {', '.join(keys)}\n{usage}"
            )
        if key in given:
            raise FinserError(f"{key}= is given twice ({given[key]!r} and {value!r}): give it once\n{usage}")
        given[key] = value
    missing = [key for key, spec in keys.items() if spec.required and not given.get(key)]
    if missing:
        raise FinserError(f"missing {' and '.join(f'{key}=' for key in missing)}\n{usage}")
    values: dict[str, str | bool | int | None] = {}
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

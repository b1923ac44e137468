"""Tables and figures from finished runs.

    python scripts/report.py runs=DIR|[DIR,...] [out=outputs/report] [overwrite=true]

``runs`` are run or sweep folders, searched recursively for results.json; ``out`` is where report.md and the PNG
figures go. A report.md or figure there that finser did not write is replaced only with ``overwrite=true``. Exits 1
with one ``error:`` line for a refused argument or path, or when no finished run is found.
"""

from __future__ import annotations

import logging
import sys

from finser.cli import Key, exit_code, parse_keys, usage
from finser.report import write_report

KEYS = {"runs": Key(required=True, kind="list"), "out": Key("outputs/report"), "overwrite": Key("false", kind="bool")}
USAGE = usage(__doc__.split("\n\n")[1])


def report(argv: list[str]) -> int:
    options = parse_keys(argv, KEYS, USAGE)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    print(write_report(options["runs"], options["out"], options["overwrite"]))
    return 0


def main(argv: list[str]) -> int:
    return exit_code(lambda: report(argv))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

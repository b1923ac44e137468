"""`python scripts/report.py RUN_DIR... [--out outputs/report] [--overwrite]`: tables and figures from finished runs."""

from __future__ import annotations

import argparse
import logging
import sys

from finser.errors import FinserError
from finser.report import write_report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "run_dirs", nargs="+", help="run or sweep directories; results.json files are found recursively"
    )
    parser.add_argument("--out", default="outputs/report", help="where report.md and the PNG figures go")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace report.md and figures in --out that finser did not write"
    )
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        report = write_report(arguments.run_dirs, arguments.out, arguments.overwrite)
    except FinserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())

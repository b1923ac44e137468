"""Export a published model: `python export.py ckpt=PATH format=onnx|torchscript [out=FILE]`.

A FIN (outputs/fins/*.ckpt) or an SER model (ser_model.ckpt) becomes a file that runs without finser, checked
against PyTorch on generated audio before the path is printed; format=onnx needs `pip install 'finser[onnx]'`.
"""

from __future__ import annotations

import sys

from finser.errors import FinserError

KEYS = {"ckpt": None, "format": None, "out": None}


def parse(argv: list[str]) -> dict[str, str | None]:
    options = dict(KEYS)
    for argument in argv:
        key, separator, value = argument.partition("=")
        if not separator or key not in KEYS:
            raise FinserError(f"unknown argument {argument!r}: expected key=value with key in {', '.join(KEYS)}")
        options[key] = value
    missing = [key for key in ("ckpt", "format") if not options[key]]
    if missing:
        raise FinserError(f"missing {' and '.join(missing)}: usage: {__doc__.splitlines()[0].split(': ', 1)[1]}")
    return options


def main(argv: list[str]) -> int:
    try:
        options = parse(argv)
        from finser.export import TOLERANCE, export  # after parsing: a usage error needs no torch import

        path, difference = export(options["ckpt"], options["format"], options["out"])
    except FinserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{path} (max difference from PyTorch {difference:.3g}, tolerance {TOLERANCE:g} relative)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

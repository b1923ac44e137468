"""Export a published model: `python export.py ckpt=PATH format=onnx|torchscript [out=FILE]`.

A FIN (outputs/fins/*.ckpt) or an SER model (ser_model.ckpt) becomes a file that runs without finser, checked
against PyTorch on generated audio before the path is printed; format=onnx needs `pip install 'finser[onnx]'`.
"""

from __future__ import annotations

import sys

from finser.cli import Key, exit_code, parse_keys

KEYS = {"ckpt": Key(required=True), "format": Key(required=True), "out": Key()}
USAGE = f"usage: {__doc__.splitlines()[0].split(': ', 1)[1]}"


def export_command(argv: list[str]) -> int:
    options = parse_keys(argv, KEYS, USAGE)
    from finser.export import TOLERANCE, export  # after parsing: a usage error needs no torch import

    path, difference = export(options["ckpt"], options["format"], options["out"])
    print(f"{path} (max difference from PyTorch {difference:.3g}, tolerance {TOLERANCE:g} relative)")
    return 0


def main(argv: list[str]) -> int:
    return exit_code(lambda: export_command(argv))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

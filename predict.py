"""Predict: `python predict.py ckpt=PATH audio=FILE_OR_DIR [out=FILE.csv] [overwrite=true] [windows=true] [batch=N]`

Prints one CSV row per file (path, emotion, probability, each class's probability, error, warning) as each file
finishes; a file that cannot be read gets a row with its error and the rest continue. ``batch`` bounds the windows
per forward pass (memory), never the results. A progress bar goes to stderr when it is a terminal. ``out`` may
replace a predictions file, never the checkpoint or an input file; any other existing file needs ``overwrite=true``.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

from rich.console import Console

from finser.errors import FinserError
from finser.inference import (
    BATCH_SIZE,
    EmotionPredictor,
    PredictionWriter,
    audio_files,
    is_predictions_file,
    progress_bar,
)
from finser.outputs import check_output

KEYS = {"ckpt": None, "audio": None, "out": None, "windows": "false", "batch": str(BATCH_SIZE), "overwrite": "false"}
TRUE = {"1", "true", "yes"}


def parse(argv: list[str]) -> dict[str, str | None]:
    options = dict(KEYS)
    for argument in argv:
        key, separator, value = argument.partition("=")
        if not separator or key not in KEYS:
            raise FinserError(f"unknown argument {argument!r}: expected key=value with key in {', '.join(KEYS)}")
        options[key] = value
    missing = [key for key in ("ckpt", "audio") if not options[key]]
    if missing:
        raise FinserError(f"missing {' and '.join(missing)}: usage: {__doc__.splitlines()[0].split(': ', 1)[1]}")
    if not options["batch"].isdigit() or int(options["batch"]) < 1:
        raise FinserError(f"batch={options['batch']!r}: expected a whole number of windows per forward pass, e.g. 32")
    return options


def main(argv: list[str]) -> int:
    try:
        options = parse(argv)
        predictor = EmotionPredictor(options["ckpt"], int(options["batch"]))
        files = audio_files(options["audio"])
        if options["out"] is not None:
            overwrite = options["overwrite"].lower() in TRUE
            inputs = [Path(options["ckpt"]), *files]
            check_output(options["out"], "out", inputs, is_predictions_file, overwrite)
        writer = PredictionWriter(predictor.emotions, options["out"])
    except FinserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    list_windows = str(options["windows"]).lower() in TRUE
    failed = 0
    with writer, progress_bar(files, Console(stderr=True)) as advance:
        for path in files:
            rows = predictor.predict(path, list_windows, functools.partial(advance, path))
            writer.write(rows)
            failed += bool(rows[0].error)
    return 1 if failed == len(files) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

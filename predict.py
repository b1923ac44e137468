"""Predict: `python predict.py ckpt=PATH audio=FILE_OR_DIR [out=FILE.csv] [overwrite=true] [windows=true] [batch=N]`

Prints one CSV row per file (path, emotion, probability, each class's probability, error, warning) as each file
finishes; a file that cannot be read gets a row with its error and the rest continue. ``batch`` bounds the windows
per forward pass (memory), never the results. A progress bar goes to stderr when it is a terminal. ``out`` may
replace a predictions file, never the checkpoint or an input file; any other existing file needs ``overwrite=true``.
Exits 1 with one ``error:`` line for a refused argument, checkpoint or path, or when no file could be scored.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

from rich.console import Console

from finser.cli import Key, exit_code, parse_keys
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

KEYS = {
    "ckpt": Key(required=True),
    "audio": Key(required=True),
    "out": Key(),
    "overwrite": Key("false", kind="bool"),
    "windows": Key("false", kind="bool"),
    "batch": Key(str(BATCH_SIZE), kind="count"),
}
USAGE = f"usage: {__doc__.splitlines()[0].split(': ', 1)[1]}"


def predict(argv: list[str]) -> int:
    options = parse_keys(argv, KEYS, USAGE)
    predictor = EmotionPredictor(options["ckpt"], options["batch"])
    files = audio_files(options["audio"])
    if options["out"] is not None:
        check_output(options["out"], "out", [Path(options["ckpt"]), *files], is_predictions_file, options["overwrite"])
    writer = PredictionWriter(predictor.emotions, options["out"])
    failed = 0
    with writer, progress_bar(files, Console(stderr=True)) as advance:
        for path in files:
            rows = predictor.predict(path, options["windows"], functools.partial(advance, path))
            writer.write(rows)
            failed += bool(rows[0].error)
    if failed == len(files):
        raise FinserError(f"no file under {options['audio']} could be scored (each one's error is in its row)")
    return 0


def main(argv: list[str]) -> int:
    return exit_code(lambda: predict(argv))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

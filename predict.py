"""Predict emotions: `python predict.py ckpt=PATH audio=FILE_OR_DIR [out=FILE.csv] [windows=true]`.

Prints one CSV row per file (path, emotion, probability, each class's probability, error); a file that cannot be
read gets a row with its error and the rest continue.
"""

from __future__ import annotations

import sys

from finser.errors import FinserError
from finser.inference import EmotionPredictor, audio_files, write_predictions

KEYS = {"ckpt": None, "audio": None, "out": None, "windows": "false"}


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
    return options


def main(argv: list[str]) -> int:
    try:
        options = parse(argv)
        predictor = EmotionPredictor(options["ckpt"])
        files = audio_files(options["audio"])
    except FinserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    list_windows = str(options["windows"]).lower() in {"1", "true", "yes"}
    predictions = [row for path in files for row in predictor.predict(path, list_windows)]
    write_predictions(predictions, predictor.emotions, options["out"])
    return 1 if all(prediction.error for prediction in predictions) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

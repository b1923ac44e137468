"""Index and validate a downloaded corpus.

    python scripts/prepare_corpora.py dataset=NAME dataset.root=DIR manifest=OUT.csv [overwrite=true]

Prints the clip counts per emotion × speaker and every skipped file with its reason, and writes the manifest CSV
(path, corpus, speaker, emotion, split) that `dataset.manifest=OUT.csv` reads back. Exits non-zero, naming the path,
when the root is missing or holds no usable clip. An existing manifest is replaced; any other existing file only with
``overwrite=true``. `dataset=combined` indexes the study's four corpora at once.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

from finser.data.corpora import CORPORA, STUDY_CORPORA, no_clips_message, scan, summarise_skipped
from finser.data.labels import EMOTIONS, Clip, check_manifest_target, write_manifest
from finser.errors import FinserError

DATASETS: dict[str, tuple[str, ...]] = {name: (name,) for name in CORPORA} | {"combined": STUDY_CORPORA}
USAGE = "usage: python scripts/prepare_corpora.py dataset=NAME dataset.root=DIR manifest=OUT.csv"


def parse_arguments(arguments: list[str]) -> dict[str, str]:
    """``key=value`` pairs, as on a Hydra command line; the three keys are required."""
    pairs = dict(argument.split("=", 1) for argument in arguments if "=" in argument)
    missing = [key for key in ("dataset", "dataset.root", "manifest") if key not in pairs]
    unknown = set(pairs) - {"dataset", "dataset.root", "manifest", "overwrite"}
    if missing or unknown or len(pairs) != len(arguments):
        raise FinserError(f"missing or malformed arguments {missing or arguments}\n{USAGE}")
    if pairs["dataset"] not in DATASETS:
        raise FinserError(f"unknown dataset {pairs['dataset']!r}: choose from {', '.join(DATASETS)}")
    return pairs


def count_table(clips: list[Clip]) -> str:
    """Markdown table: one row per (corpus, speaker), one column per emotion present, and totals."""
    counts = Counter((clip.corpus, clip.speaker, clip.emotion) for clip in clips)
    emotions = [emotion for emotion in EMOTIONS if any(clip.emotion == emotion for clip in clips)]
    rows = sorted({(corpus, speaker) for corpus, speaker, _ in counts})
    lines = ["| corpus | speaker | " + " | ".join(emotions) + " | total |", "|---|---|" + "---:|" * (len(emotions) + 1)]
    for corpus, speaker in rows:
        cells = [counts[(corpus, speaker, emotion)] for emotion in emotions]
        lines.append(f"| {corpus} | {speaker} | " + " | ".join(map(str, cells)) + f" | {sum(cells)} |")
    totals = [sum(counts[(c, s, emotion)] for c, s in rows) for emotion in emotions]
    lines.append("| **all** | " + f"{len(rows)} | " + " | ".join(map(str, totals)) + f" | {sum(totals)} |")
    return "\n".join(lines)


def main(arguments: list[str]) -> int:
    try:
        options = parse_arguments(arguments)
        names, manifest = DATASETS[options["dataset"]], Path(options["manifest"])
        overwrite = options.get("overwrite", "false").lower() in {"1", "true", "yes"}
        check_manifest_target(manifest, overwrite)  # before the scan, which decodes every file
        index = scan(options["dataset.root"], names)
        if not index.clips:
            raise FinserError(no_clips_message(options["dataset.root"], names, index))
        write_manifest(index.clips, manifest, overwrite)
    except FinserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"# {options['dataset']}: {len(index.clips)} usable clips under {options['dataset.root']}\n")
    print(count_table(index.clips))
    print(
        f"\n## Skipped: {len(index.skipped)} paths"
        + (f" ({summarise_skipped(index.skipped)})" if index.skipped else "")
    )
    for entry in index.skipped:
        print(f"- {entry.path}: {entry.reason}")
    print(f"\nwrote {options['manifest']} ({len(index.clips)} rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Index and validate a downloaded corpus.

    python scripts/prepare_corpora.py dataset=NAME dataset.root=DIR manifest=OUT.csv [overwrite=true]

Prints the clip counts per emotion × speaker, one line per corpus for the utterances its protocol leaves out
(IEMOCAP's labels beyond its four), every skipped file with its reason, and writes the manifest CSV (path, corpus,
speaker, emotion, split; a clip cut from a longer file has the path ``<file>#t=<start>,<end>``) that
`dataset.manifest=OUT.csv` reads back. Exits non-zero, naming the path, when the root is missing or holds no usable
clip. An existing manifest is replaced; any other existing file only with
``overwrite=true``. `dataset=combined` indexes the study's four corpora at once.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

from finser.cli import Key, exit_code, parse_keys
from finser.data.corpora import CORPORA, STUDY_CORPORA, no_clips_message, scan, summarise_excluded, summarise_skipped
from finser.data.labels import EMOTIONS, Clip, check_manifest_target, write_manifest
from finser.errors import FinserError

DATASETS: dict[str, tuple[str, ...]] = {name: (name,) for name in CORPORA} | {"combined": STUDY_CORPORA}
USAGE = "usage: python scripts/prepare_corpora.py dataset=NAME dataset.root=DIR manifest=OUT.csv [overwrite=true]"
KEYS = {
    "dataset": Key(required=True),
    "dataset.root": Key(required=True),
    "manifest": Key(required=True),
    "overwrite": Key("false", kind="bool"),
}


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


def prepare(arguments: list[str]) -> int:
    options = parse_keys(arguments, KEYS, USAGE)
    if options["dataset"] not in DATASETS:
        raise FinserError(f"unknown dataset {options['dataset']!r}: choose from {', '.join(DATASETS)}")
    names, manifest = DATASETS[options["dataset"]], Path(options["manifest"])
    check_manifest_target(manifest, options["overwrite"])  # before the scan, which decodes every file
    index = scan(options["dataset.root"], names)
    if not index.clips:
        raise FinserError(no_clips_message(options["dataset.root"], names, index))
    write_manifest(index.clips, manifest, options["overwrite"])
    print(f"# {options['dataset']}: {len(index.clips)} usable clips under {options['dataset.root']}\n")
    print(count_table(index.clips))
    for corpus, counts in index.excluded.items():
        if counts:
            print(f"\n{corpus}: left out {summarise_excluded(corpus, counts)}")
    print(
        f"\n## Skipped: {len(index.skipped)} paths"
        + (f" ({summarise_skipped(index.skipped)})" if index.skipped else "")
    )
    for entry in index.skipped:
        print(f"- {entry.path}: {entry.reason}")
    print(f"\nwrote {options['manifest']} ({len(index.clips)} rows)")
    return 0


def main(arguments: list[str]) -> int:
    return exit_code(lambda: prepare(arguments))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

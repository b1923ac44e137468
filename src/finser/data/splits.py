"""Speaker-independent splits: no speaker's clips are in two splits."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace

from finser.data.labels import Clip
from finser.errors import FinserError

SPLITS = ("train", "val", "test")


def speaker_split(clips: Sequence[Clip], seed: int = 0, fractions: Sequence[float] = (0.7, 0.15, 0.15)) -> list[Clip]:
    """Assign whole speakers to train/val/test, per corpus, deterministically by ``seed``.

    Speakers are shuffled and dealt so each split's share of clips is as close to ``fractions`` as whole speakers
    allow; a corpus with fewer than three speakers cannot be split this way and says so.
    """
    by_corpus: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for clip in clips:
        by_corpus[clip.corpus][clip.speaker] += 1
    assignment: dict[tuple[str, str], str] = {}
    for corpus, counts in sorted(by_corpus.items()):
        speakers = sorted(counts)
        if len(speakers) < len(SPLITS):
            raise FinserError(
                f"corpus {corpus!r} has {len(speakers)} speaker(s): a speaker-independent train/val/test split "
                f"needs at least {len(SPLITS)}; use split=random or add corpora"
            )
        random.Random(f"{seed}-{corpus}").shuffle(speakers)
        total = sum(counts.values())
        targets = [fraction * total for fraction in fractions]
        filled = [0.0] * len(SPLITS)
        # Each split gets one speaker first, then each next speaker goes where the deficit is largest.
        for index, speaker in enumerate(speakers):
            if index < len(SPLITS):
                chosen = index
            else:
                chosen = max(range(len(SPLITS)), key=lambda k: (targets[k] - filled[k]) / targets[k])
            filled[chosen] += counts[speaker]
            assignment[(corpus, speaker)] = SPLITS[chosen]
    return [replace(clip, split=assignment[(clip.corpus, clip.speaker)]) for clip in clips]

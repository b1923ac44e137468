"""Speaker-independent splits of a one-emotion pool: no speaker in two splits, and more speakers in train than test.

Determinism by seed, and disjointness and stratification over every emotion, are tested in ``test_splits.py``.
"""

from __future__ import annotations

from finser.data.labels import Clip
from finser.data.splits import speaker_split


def make_clips(n_speakers: int, per_speaker: int = 4) -> list[Clip]:
    return [Clip(f"{s}_{i}.wav", "c", f"spk{s}", "happy") for s in range(n_speakers) for i in range(per_speaker)]


def test_no_speaker_in_two_splits_and_every_split_used() -> None:
    split = speaker_split(make_clips(10), seed=1)
    speakers_by_split = {name: {c.speaker for c in split if c.split == name} for name in ("train", "val", "test")}
    assert all(speakers_by_split.values())
    assert not (speakers_by_split["train"] & speakers_by_split["val"])
    assert not (speakers_by_split["train"] & speakers_by_split["test"])
    assert not (speakers_by_split["val"] & speakers_by_split["test"])
    assert len(speakers_by_split["train"]) > len(speakers_by_split["test"])

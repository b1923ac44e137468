"""Speaker folds (every speaker tested exactly once, never trained on in its fold) and training fractions (nested,
stratified, the same for every variant)."""

from __future__ import annotations

from collections import Counter

import pytest

from finser.data.augment import augmented_clips, split_tag
from finser.data.labels import EMOTIONS, Clip
from finser.data.splits import speaker_folds
from finser.data.utterances import train_subset
from finser.errors import FinserError


def pool(n_speakers: int = 12, per_emotion: int = 4, corpus: str = "c") -> list[Clip]:
    return [
        Clip(f"{corpus}/{s}_{emotion}_{i}.wav", corpus, f"{s:02d}", emotion)
        for s in range(n_speakers)
        for emotion in EMOTIONS
        for i in range(per_emotion)
    ]


def speakers_in(clips: list[Clip], split: str) -> set[tuple[str, str]]:
    return {(clip.corpus, clip.speaker) for clip in clips if clip.split == split}


@pytest.mark.parametrize("n_folds", [4, 6, 12])
def test_every_speaker_is_tested_in_exactly_one_fold(n_folds: int) -> None:
    clips = pool() + pool(8, 2, corpus="d")
    tested = Counter()
    for fold in range(n_folds):
        split = speaker_folds(clips, folds=n_folds, fold=fold, seed=fold)
        assert not speakers_in(split, "test") & speakers_in(split, "train")
        assert not speakers_in(split, "test") & speakers_in(split, "val")
        assert not speakers_in(split, "train") & speakers_in(split, "val")
        assert speakers_in(split, "val") and speakers_in(split, "train")
        tested.update(speakers_in(split, "test"))
    everyone = {(clip.corpus, clip.speaker) for clip in clips}
    assert set(tested) == {key for key in everyone if key[0] == "c"} | {key for key in everyone if key[0] == "d"}
    assert all(count == 1 for count in tested.values())


def test_folds_are_fixed_across_seeds_and_stratified_by_emotion() -> None:
    clips = pool()
    first, second = speaker_folds(clips, folds=4, fold=1, seed=0), speaker_folds(clips, folds=4, fold=1, seed=3)
    assert speakers_in(first, "test") == speakers_in(second, "test")  # the seed redraws validation, not the folds
    assert {clip.emotion for clip in first if clip.split == "test"} == set(EMOTIONS)
    validation = {frozenset(speakers_in(speaker_folds(clips, folds=4, fold=1, seed=s), "val")) for s in range(4)}
    assert len(validation) > 1


def test_fixed_folds_reproduce_a_published_partition() -> None:
    clips = pool(4, 2, corpus="savee")
    published = {"savee": [["02"], ["00"], ["03"], ["01"]]}
    for fold, (speaker,) in enumerate(published["savee"]):
        split = speaker_folds(clips, folds=None, fold=fold, fixed=published)
        assert speakers_in(split, "test") == {("savee", speaker)}


def test_fixed_folds_drop_speakers_the_corpus_lacks_and_refuse_an_empty_fold() -> None:
    clips = pool(4, 1, corpus="esd")
    published = {"esd": [["00", "90"], ["01", "91"], ["92", "93"], ["02", "03"]]}
    assert speakers_in(speaker_folds(clips, fold=0, folds=None, fixed=published), "test") == {("esd", "00")}
    with pytest.raises(FinserError, match=r"fold 2 of 'esd'.*92, 93.*none of them"):
        speaker_folds(clips, fold=2, folds=None, fixed=published)


def test_bad_fold_settings_are_refused() -> None:
    with pytest.raises(FinserError, match=r"split.fold=4.*0 to 3"):
        speaker_folds(pool(), folds=4, fold=4)
    with pytest.raises(FinserError, match=r"'c' has 3 speaker\(s\).*split.folds=4"):
        speaker_folds(pool(3), folds=4, fold=0)
    with pytest.raises(FinserError, match=r"split.folds=5.*'savee' defines 4"):
        speaker_folds(pool(4, corpus="savee"), folds=5, fold=0, fixed={"savee": [["00"], ["01"], ["02"], ["03"]]})
    with pytest.raises(FinserError, match=r"speaker\(s\) 03 of 'savee' are in none"):
        speaker_folds(pool(4, corpus="savee"), folds=None, fold=0, fixed={"savee": [["00"], ["01"], ["02"]]})


def test_augmented_copies_stay_in_their_source_clip_split() -> None:
    split = speaker_folds(pool(), folds=4, fold=0, augment=True)
    by_path = {clip.path: clip.split for clip in split}
    copies = [clip for clip in split if split_tag(clip.path)[1] != "original"]
    assert copies and all(by_path[split_tag(clip.path)[0]] == clip.split == "train" for clip in copies)


def training(clips: list[Clip]) -> set[str]:
    return {clip.path for clip in clips if clip.split == "train"}


def test_fractions_are_nested_stratified_and_leave_val_and_test_alone() -> None:
    split = speaker_folds(pool(per_emotion=10), folds=4, fold=0, augment=True)
    subsets = {fraction: train_subset(split, fraction, seed=2) for fraction in (0.1, 0.2, 0.5, 1.0)}
    assert training(subsets[0.1]) < training(subsets[0.2]) < training(subsets[0.5]) < training(subsets[1.0])
    assert training(subsets[1.0]) == training(split)
    originals = [clip for clip in subsets[0.2] if clip.split == "train" and split_tag(clip.path)[1] == "original"]
    per_group = Counter((clip.speaker, clip.emotion) for clip in originals)
    assert set(per_group.values()) == {2}  # 20% of each speaker's 10 clips per emotion
    kept = {clip.path for clip in originals}
    assert {split_tag(clip.path)[0] for clip in subsets[0.2] if clip.split == "train"} == kept  # copies follow
    for subset in subsets.values():
        assert [clip for clip in subset if clip.split != "train"] == [clip for clip in split if clip.split != "train"]
    assert training(train_subset(split, 0.2, seed=3)) != training(subsets[0.2])


def test_a_fraction_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(FinserError, match=r"train_fraction=0.*\(0, 1\]"):
        train_subset(pool(), 0, seed=0)
    with pytest.raises(FinserError, match=r"train_fraction=1.5"):
        train_subset(augmented_clips(pool()), 1.5, seed=0)

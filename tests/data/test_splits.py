"""Protocols: speaker-disjoint (stratified, ESD official), the study's random split, augmentation and leakage."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from finser.data.audio import STUDY_CROP
from finser.data.augment import split_tag
from finser.data.corpora import scan
from finser.data.frames import FrameDataModule, named_sets
from finser.data.labels import EMOTIONS, Clip
from finser.data.sampling import EpochSampler
from finser.data.splits import corpus_split, leaky_split, random_split, speaker_split
from finser.data.utterances import report_unlearnable_emotions
from finser.errors import FinserError


def pool(n_speakers: int = 10, per_emotion: int = 3, corpus: str = "c") -> list[Clip]:
    return [
        Clip(f"{corpus}/{s}_{e}_{i}.wav", corpus, f"{s:02d}", emotion)
        for s in range(n_speakers)
        for e, emotion in enumerate(EMOTIONS)
        for i in range(per_emotion)
    ]


def test_speaker_split_is_disjoint_stratified_and_deterministic() -> None:
    clips = pool() + pool(6, 2, corpus="d")
    split = speaker_split(clips, seed=1)
    owners: dict[tuple[str, str], set[str]] = {}
    for clip in split:
        owners.setdefault((clip.corpus, clip.speaker), set()).add(clip.split)
    assert all(len(splits) == 1 for splits in owners.values())
    for name in ("train", "val", "test"):
        assert {clip.emotion for clip in split if clip.split == name} == set(EMOTIONS)  # every emotion everywhere
    sizes = Counter(clip.split for clip in split if clip.corpus == "c")
    assert sizes["train"] > sizes["val"] > 0 and sizes["test"] > 0
    assert split == speaker_split(clips, seed=1) and split != speaker_split(clips, seed=2)


def test_speaker_split_of_tess_alone_is_refused(trees: Path) -> None:
    clips = scan(trees / "tess", ["tess"]).clips
    with pytest.raises(FinserError, match=r"'tess' has 2 speaker\(s\).*meaningless.*split=random"):
        speaker_split(clips)
    assert Counter(clip.split for clip in random_split(clips)) == {"train": 7 * 3, "val": 7}  # 4 per emotion: 3 / 1 / 0


def test_esd_uses_its_official_split(trees: Path) -> None:
    tagged = Clip("x/0011_000371.wav", "esd", "0011", "angry")
    assert speaker_split([tagged])[0].split == "test"
    clips = speaker_split(scan(trees / "esd", ["esd"]).clips)
    assert {clip.split for clip in clips} == {"val"}  # the trees hold the first 2 utterances of each block


def test_random_split_is_70_15_15_per_corpus_and_emotion() -> None:
    split = random_split(pool(4, 5) + pool(2, 5, corpus="d"), seed=0)
    for corpus, n in (("c", 20), ("d", 10)):
        for emotion in EMOTIONS:
            counts = Counter(c.split for c in split if c.corpus == corpus and c.emotion == emotion)
            assert counts == {
                "train": round(0.7 * n),
                "val": round(0.15 * n),
                "test": n - round(0.7 * n) - round(0.15 * n),
            }
    assert split == random_split(pool(4, 5) + pool(2, 5, corpus="d"), seed=0)


@pytest.mark.parametrize("protocol", [speaker_split, random_split])
def test_augmented_copies_stay_in_their_source_split(protocol) -> None:
    split = protocol(pool(), augment=True)
    originals = {clip.path: clip.split for clip in split if "#aug=" not in clip.path}
    copies = [clip for clip in split if "#aug=" in clip.path]
    assert len(copies) == 2 * sum(s == "train" for s in originals.values())
    assert all(originals[split_tag(copy.path)[0]] == copy.split == "train" for copy in copies)


def test_leaky_split_warns_and_does_leak() -> None:
    with pytest.warns(UserWarning, match="inflated"):
        split = leaky_split(pool())
    sources: dict[str, set[str]] = {}
    for clip in split:
        sources.setdefault(split_tag(clip.path)[0], set()).add(clip.split)
    assert any(len(splits) > 1 for splits in sources.values())  # copies of one recording on both sides


def test_datamodule_augments_the_training_frames_only(trees: Path, tmp_path: Path) -> None:
    clips = scan(trees / "ravdess", ["ravdess"]).clips
    module = FrameDataModule(
        clips, lambda c: speaker_split(c, augment=True), batch_size=8, audio=STUDY_CROP, cache_dir=str(tmp_path)
    )
    module.setup()
    per_split = Counter(clip.split for clip in module.clips if "#aug=" not in clip.path)
    frames_per_clip = 1 + (55_125 - 2048) // 512
    assert len(module.sets["train"]) == 3 * per_split["train"] * frames_per_clip
    assert len(module.sets["val"]) == per_split["val"] * frames_per_clip
    assert next(iter(module.train_dataloader())).shape == (8, 2048)


def test_tess_inside_the_pool_gives_one_speaker_to_train_and_one_to_test(trees: Path) -> None:
    clips = scan(trees, ["ravdess", "tess"]).clips
    tess = {(clip.speaker, clip.split) for clip in speaker_split(clips) if clip.corpus == "tess"}
    assert {split for _, split in tess} == {"train", "test"} and len(tess) == 2


@pytest.mark.parametrize("held_out", ["savee", "tess"])
def test_leave_one_corpus_out_tests_on_the_held_out_corpus_alone(trees: Path, held_out: str) -> None:
    clips = scan(trees, ["ravdess", "crema_d", "tess", "savee"]).clips
    split = corpus_split(clips, held_out=held_out, seed=0)
    test = [clip for clip in split if clip.split == "test"]
    assert test and all(clip.corpus == held_out for clip in test)
    assert len(test) == sum(clip.corpus == held_out for clip in clips)  # every clip of the held-out corpus
    trained = {split_name: {(clip.corpus, clip.speaker) for clip in split if clip.split == split_name}
               for split_name in ("train", "val")}  # fmt: skip
    assert trained["train"] and trained["val"] and not trained["train"] & trained["val"]  # speaker-disjoint
    assert {corpus for corpus, _ in trained["train"]} == {"ravdess", "crema_d", "tess", "savee"} - {held_out}
    assert split == corpus_split(clips, held_out=held_out, seed=0)


def test_leave_one_corpus_out_names_the_corpora_it_can_hold_out(trees: Path) -> None:
    clips = scan(trees, ["ravdess", "savee"]).clips
    with pytest.raises(
        FinserError, match=r"split\.held_out='esd': expected one of the run's corpora \(ravdess, savee\)"
    ):
        corpus_split(clips, held_out="esd")
    with pytest.raises(FinserError, match="needs several corpora"):
        corpus_split([clip for clip in clips if clip.corpus == "savee"], held_out="savee")


def test_a_split_that_leaves_a_set_empty_says_which_and_why() -> None:
    one_clip_per_emotion = random_split(pool(n_speakers=1, per_emotion=1))  # 0.15 × 1 rounds to no val/test clip
    with pytest.raises(FinserError, match="leaves val and test without clips: 8 clips from 1 speaker"):
        named_sets(one_clip_per_emotion, {})


def test_an_emotion_scored_but_never_trained_is_named(caplog: pytest.LogCaptureFixture) -> None:
    index = {emotion: position for position, emotion in enumerate(EMOTIONS)}
    sets = {
        "train": [index["neutral"], index["happy"]],
        "val": [index["neutral"]],
        "test": [index["happy"], index["calm"]],  # CREMA-D has no calm: a split can leave it for test alone
        "esd": [index["surprise"]],
    }
    with caplog.at_level("WARNING"):
        report_unlearnable_emotions(sets, EMOTIONS)
    warnings = [record.getMessage() for record in caplog.records]
    assert len(warnings) == 2
    assert "test has clips of calm but train has none" in warnings[0] and "cannot be learned" in warnings[0]
    assert "esd has clips of surprise but train has none" in warnings[1]


def test_epoch_sampler_order_is_a_function_of_seed_and_epoch_alone() -> None:
    sampler = EpochSampler(50, seed=3)
    first = list(sampler)
    sampler.set_epoch(1)
    second = list(sampler)
    sampler.set_epoch(0)
    assert sorted(first) == list(range(50)) and first != second and list(sampler) == first
    assert list(EpochSampler(50, seed=4)) != first

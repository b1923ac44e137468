"""Train/val/test protocols: ``speaker`` (default, actor-disjoint), ``random`` (the study's), ``corpus`` (leave one
corpus out), ``leaky`` (a warning).

Each is a function clips → clips with ``split`` set, chosen by ``conf/split/*.yaml``. With ``augment=True`` each
training clip gains its augmented copies *after* the split, so a copy always sits in its source clip's split.
"""

from __future__ import annotations

import logging
import random
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import replace

from finser.data.augment import augmented_clips
from finser.data.corpora import esd_official_split
from finser.data.labels import Clip
from finser.errors import FinserError

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")

# Corpora that ship their own split: the speaker protocol uses it instead of dealing speakers.
OFFICIAL_SPLITS: dict[str, Callable[[str], str]] = {"esd": esd_official_split}


def with_augmented(clips: list[Clip], augment: bool) -> list[Clip]:
    """Add the augmented copies of the training clips only (never of val/test)."""
    if not augment:
        return clips
    return clips + augmented_clips([clip for clip in clips if clip.split == "train"])


def by_corpus(clips: Sequence[Clip]) -> dict[str, list[Clip]]:
    groups: dict[str, list[Clip]] = defaultdict(list)
    for clip in clips:
        groups[clip.corpus].append(clip)
    return dict(sorted(groups.items()))


def deal_speakers(
    corpus: str,
    clips: Sequence[Clip],
    seed: int,
    fractions: Sequence[float],
    pooled: bool = False,
    splits: Sequence[str] = SPLITS,
) -> dict[str, str]:
    """Speaker → split (one of ``splits``) for one corpus, as close to ``fractions`` per emotion as whole speakers
    allow.

    A corpus with fewer speakers than splits is refused alone; ``pooled`` with others, its speakers go to the first
    and the last split (train and test: the pool's val comes from the other corpora).

    Speakers are shuffled by ``seed``; each split gets one speaker first, then each next speaker goes to the split
    whose per-emotion deficit it fills best (stratification by emotion), ties broken by the total deficit.
    """
    counts: dict[str, Counter] = defaultdict(Counter)
    for clip in clips:
        counts[clip.speaker][clip.emotion] += 1
    speakers = sorted(counts)
    if len(speakers) < len(splits) and pooled:
        # TESS (2 speakers) inside a pool: one speaker trains, the other is tested, still speaker-disjoint.
        random.Random(f"{seed}-{corpus}").shuffle(speakers)
        assignment = {speaker: (splits[0], splits[-1])[k] for k, speaker in enumerate(speakers)}
        log.warning("corpus %r has %d speaker(s), not dealt by share: %s", corpus, len(speakers), assignment)
        return assignment
    if len(speakers) < len(splits):
        raise FinserError(
            f"corpus {corpus!r} has {len(speakers)} speaker(s): a speaker-independent {'/'.join(splits)} split "
            f"needs at least {len(splits)} and is meaningless otherwise (TESS has only 2); "
            f"use split=random or add corpora (dataset=combined)"
        )
    random.Random(f"{seed}-{corpus}").shuffle(speakers)
    totals = Counter(clip.emotion for clip in clips)
    targets = [{emotion: fraction * n for emotion, n in totals.items()} for fraction in fractions]
    filled: list[Counter] = [Counter() for _ in splits]

    def score(k: int, speaker: str) -> tuple[float, float]:
        fills = sum(min(n, max(0.0, targets[k][e] - filled[k][e])) for e, n in counts[speaker].items())
        total_target = sum(targets[k].values())
        return fills / sum(counts[speaker].values()), (total_target - sum(filled[k].values())) / total_target

    assignment = {}
    for index, speaker in enumerate(speakers):
        chosen = index if index < len(splits) else max(range(len(splits)), key=lambda k: score(k, speaker))
        filled[chosen].update(counts[speaker])
        assignment[speaker] = splits[chosen]
    return assignment


def speaker_split(
    clips: Sequence[Clip], seed: int = 0, fractions: Sequence[float] = (0.7, 0.15, 0.15), augment: bool = False
) -> list[Clip]:
    """Assign whole speakers to train/val/test per corpus (ESD: its official split), deterministic by ``seed``."""
    split: dict[int, str] = {}
    for corpus, members in by_corpus(clips).items():
        if corpus in OFFICIAL_SPLITS:
            split.update({id(clip): OFFICIAL_SPLITS[corpus](clip.path) for clip in members})
            continue
        assignment = deal_speakers(corpus, members, seed, fractions, pooled=len(by_corpus(clips)) > 1)
        split.update({id(clip): assignment[clip.speaker] for clip in members})
    return with_augmented([replace(clip, split=split[id(clip)]) for clip in clips], augment)


def corpus_split(
    clips: Sequence[Clip], held_out: str, seed: int = 0, val_fraction: float = 0.15, augment: bool = False
) -> list[Clip]:
    """Leave one corpus out: test on every clip of ``held_out``; train and validate on the other corpora, their
    speakers dealt to train or val per corpus (stratified by emotion, as :func:`speaker_split`). Speakers are
    disjoint by construction: no corpus shares a speaker with another."""
    corpora = by_corpus(clips)
    if held_out not in corpora or len(corpora) < 2:
        raise FinserError(
            f"split.held_out={held_out!r}: expected one of the run's corpora ({', '.join(corpora)}) and at least one "
            "other to train on; leave-one-corpus-out needs several corpora (dataset=combined)"
        )
    split = {id(clip): "test" for clip in corpora[held_out]}
    for corpus, members in corpora.items():
        if corpus != held_out:
            fractions = (1 - val_fraction, val_fraction)
            assignment = deal_speakers(corpus, members, seed, fractions, pooled=True, splits=("train", "val"))
            split.update({id(clip): assignment[clip.speaker] for clip in members})
    return with_augmented([replace(clip, split=split[id(clip)]) for clip in clips], augment)


def stratified_files(clips: Sequence[Clip], seed: int, fractions: Sequence[float]) -> list[Clip]:
    """Per corpus × emotion, shuffle the files and cut them at ``fractions`` (the study's file-level split)."""
    groups: dict[tuple[str, str], list[Clip]] = defaultdict(list)
    for clip in clips:
        groups[(clip.corpus, clip.emotion)].append(clip)
    result = []
    for (corpus, emotion), members in sorted(groups.items()):
        members = sorted(members, key=lambda clip: clip.path)
        random.Random(f"{seed}-{corpus}-{emotion}").shuffle(members)
        n_train = round(fractions[0] * len(members))
        n_val = round(fractions[1] * len(members))
        for position, clip in enumerate(members):
            name = "train" if position < n_train else "val" if position < n_train + n_val else "test"
            result.append(replace(clip, split=name))
    return result


def random_split(
    clips: Sequence[Clip], seed: int = 0, fractions: Sequence[float] = (0.7, 0.15, 0.15), augment: bool = False
) -> list[Clip]:
    """The study's protocol: a 70/15/15 file split per corpus × emotion, so a speaker appears in every split."""
    return with_augmented(stratified_files(clips, seed, fractions), augment)


LEAKY_WARNING = (
    "split=leaky augments BEFORE splitting: noisy/stretched copies of a test clip are in train, so test scores are "
    "inflated. Use it only to show that inflation; report split=speaker or split=random."
)


def leaky_split(
    clips: Sequence[Clip], seed: int = 0, fractions: Sequence[float] = (0.7, 0.15, 0.15), augment: bool = True
) -> list[Clip]:
    """Augment-then-split (a named, warned demonstration): every copy is dealt independently of its source."""
    log.warning("!" * 20 + " " + LEAKY_WARNING + " " + "!" * 20)
    warnings.warn(LEAKY_WARNING, UserWarning, stacklevel=2)
    originals = [replace(clip, split="") for clip in clips]
    return stratified_files(originals + augmented_clips(originals), seed, fractions)

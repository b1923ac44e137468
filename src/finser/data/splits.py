"""Train/val/test protocols: ``speaker`` (default, actor-disjoint), ``speaker_folds`` (speaker cross-validation),
``random`` (the study's), ``corpus`` (leave one corpus out), ``leaky`` (a warning).

Each is a function clips → clips with ``split`` set, chosen by ``conf/split/*.yaml``. With ``augment=True`` each
training clip gains its augmented copies *after* the split, so a copy always sits in its source clip's split.
"""

from __future__ import annotations

import logging
import random
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

import numpy as np
from sklearn.model_selection import LeaveOneGroupOut, StratifiedGroupKFold

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


def fold_partition(corpus: str, clips: Sequence[Clip], folds: int, fold_seed: int, pooled: bool) -> list[list[str]]:
    """The speakers of one corpus cut into ``folds`` test folds by scikit-learn: leave-one-speaker-out when there are
    as many folds as speakers, else StratifiedGroupKFold (speakers as groups, emotions balanced across folds).

    Inside a pool, a corpus with fewer speakers than folds puts one speaker in each of its first folds (TESS's two);
    leave-one-out folds follow the speakers' sorted names.
    """
    speakers = np.array([clip.speaker for clip in clips])
    count = len(set(speakers))
    if count < folds and not pooled:
        raise FinserError(
            f"corpus {corpus!r} has {count} speaker(s): split.folds={folds} needs at least that many (each fold "
            "tests one speaker or more); lower split.folds"
        )
    if count <= folds:
        alone = [sorted(set(speakers[test])) for _, test in LeaveOneGroupOut().split(speakers, groups=speakers)]
        return alone + [[] for _ in range(folds - count)]
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=fold_seed)
    emotions = [clip.emotion for clip in clips]
    return [sorted(set(speakers[test])) for _, test in splitter.split(speakers, emotions, groups=speakers)]


def fixed_partition(corpus: str, clips: Sequence[Clip], published: Sequence[Sequence[str]]) -> list[list[str]]:
    """A published partition (e.g. EmoBox's) restricted to the speakers this corpus holds; every speaker it holds
    must be in one fold of it, or the folds would not cover the corpus."""
    present = {clip.speaker for clip in clips}
    listed = [str(speaker) for members in published for speaker in members]
    unlisted = sorted(present - set(listed))
    if unlisted or len(listed) != len(set(listed)):
        raise FinserError(
            f"speaker(s) {', '.join(unlisted) or 'listed twice'} of {corpus!r} are in none or several of the "
            f"{len(published)} fixed folds of split.fixed.{corpus}: give each speaker exactly one fold"
        )
    return [[str(speaker) for speaker in members if str(speaker) in present] for members in published]


def speaker_folds(
    clips: Sequence[Clip],
    folds: int | None = 4,
    fold: int = 0,
    seed: int = 0,
    fold_seed: int = 0,
    val_fraction: float = 0.15,
    fixed: Mapping[str, Sequence[Sequence[str]]] | None = None,
    augment: bool = False,
) -> list[Clip]:
    """Speaker cross-validation: per corpus, test on the speakers of fold ``fold`` of ``folds``, and deal the
    remaining speakers to train or val by ``seed`` (stratified by emotion, as :func:`speaker_split`).

    The folds depend on ``fold_seed`` alone, so every seed and variant tests fold ``fold`` on the same speakers; a
    corpus in ``fixed`` uses that published partition instead (``folds`` null: its length).
    """
    fixed = dict(fixed or {})
    corpora = by_corpus(clips)
    sizes = {corpus: len(fixed[corpus]) for corpus in corpora if corpus in fixed}
    if folds is None and len(set(sizes.values())) != 1:
        raise FinserError(
            f"split.folds=null takes the number of folds from split.fixed, but the run's corpora define "
            f"{sizes or 'none'}: set split.folds=K"
        )
    count = folds if folds is not None else next(iter(sizes.values()))
    for corpus, size in sizes.items():
        if size != count:
            raise FinserError(f"split.folds={count}, but {corpus!r} defines {size} fixed folds (split.fixed."
                              f"{corpus}): set split.folds={size} or drop the corpus")  # fmt: skip
    if not 0 <= fold < count:
        raise FinserError(f"split.fold={fold}: expected a fold from 0 to {count - 1} (split.folds={count})")
    split: dict[int, str] = {}
    for corpus, members in corpora.items():
        partition = (
            fixed_partition(corpus, members, fixed[corpus])
            if corpus in fixed
            else fold_partition(corpus, members, count, fold_seed, pooled=len(corpora) > 1)
        )
        tested = set(partition[fold])
        if corpus in fixed and not tested:
            raise FinserError(
                f"fold {fold} of {corpus!r} tests speakers {', '.join(map(str, fixed[corpus][fold]))}, and the "
                f"corpus holds none of them: choose another split.fold"
            )
        rest = [clip for clip in members if clip.speaker not in tested]
        assignment = deal_speakers(corpus, rest, seed, (1 - val_fraction, val_fraction), pooled=len(corpora) > 1,
                                   splits=("train", "val")) if rest else {}  # fmt: skip
        split.update({id(clip): "test" if clip.speaker in tested else assignment[clip.speaker] for clip in members})
    return with_augmented([replace(clip, split=split[id(clip)]) for clip in clips], augment)

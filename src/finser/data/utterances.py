"""Utterance-level data for SER: one waveform per clip, its emotion index and its corpus.

Two ways to shape a clip (``audio``, a :class:`finser.data.audio.AudioSpec`):

* fixed (the study, the SER presets' default): from ``offset`` 0.6 s take 2.5 s, zero-padded to exactly 55,125
  samples. Framed with center=False at hop 512 (each frame exactly one FIN input) that is 104 frames; the study's
  108 came from librosa's center=True padding, which a FIN never saw in pre-training, so finser keeps
  center=False and does not mask the zero padding (the study averaged over it too).
* full length (``duration=None``): each clip from ``offset`` to its end; a batch is zero-padded to its longest
  clip and carries ``length`` so the model masks frames past each clip's end.

Augmentation is the split's job (``dataset.augment=true``: the study's noise and stretch+pitch copies join the
training clips after the split, see :mod:`finser.data.splits`); this module renders whatever clips it is given,
tagged copies included, in memory or through the decoded cache (``cache_dir``).
"""

from __future__ import annotations

import logging
import random
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from finser.data.audio import STUDY_CROP, AudioSpec
from finser.data.augment import split_tag
from finser.data.cache import DecodedCache
from finser.data.frames import cached_usable, load_clips, named_sets
from finser.data.labels import EMOTIONS, Clip, check_emotions, check_labels, within_emotions
from finser.data.sampling import EpochSampler, ResumableLoader
from finser.errors import FinserError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Utterance:
    waveform: torch.Tensor  # (samples,) float32 at the spec's rate (22,050 Hz)
    emotion: int
    corpus: str
    key: str  # the clip's path (tagged for augmented copies): names the clip in caches


class UtteranceSet(Dataset):
    """Prepared clips held in memory (576 synthetic clips of 2.5 s are 127 MB); ``emotions`` orders the labels."""

    def __init__(self, loaded: Sequence[tuple[Clip, np.ndarray]], emotions: Sequence[str] = EMOTIONS) -> None:
        if not loaded:
            raise FinserError("no usable clips for this split: check the corpus and the skipped files above")
        self.clips = [clip for clip, _ in loaded]
        self.signals = [torch.from_numpy(np.ascontiguousarray(signal, dtype=np.float32)) for _, signal in loaded]
        self.index = {emotion: position for position, emotion in enumerate(emotions)}

    def __len__(self) -> int:
        return len(self.clips)

    def waveform(self, index: int) -> torch.Tensor:
        return self.signals[index]

    def __getitem__(self, index: int) -> Utterance:
        clip = self.clips[index]
        return Utterance(self.waveform(index), self.index[clip.emotion], clip.corpus, clip.path)

    def emotions(self) -> list[int]:
        return [self.index[clip.emotion] for clip in self.clips]


class CachedUtteranceSet(UtteranceSet):
    """Clips read from the decoded cache on disk when asked for: a full-scale, augmented corpus need not fit in RAM.

    ``clips`` come from :func:`finser.data.frames.cached_usable`, which verified their entries in this process, so
    reads are unchecked (DataLoader workers fork after that, or receive the verified cache when spawned).
    """

    def __init__(self, cache: DecodedCache, clips: Sequence[Clip], emotions: Sequence[str] = EMOTIONS) -> None:
        if not clips:
            raise FinserError("no usable clips for this split: check the corpus and the skipped files above")
        self.cache, self.clips = cache, list(clips)
        self.index = {emotion: position for position, emotion in enumerate(emotions)}

    def waveform(self, index: int) -> torch.Tensor:
        return torch.from_numpy(self.cache.read(self.clips[index].path))


def collate(items: Sequence[Utterance]) -> dict[str, torch.Tensor | list[str]]:
    """Zero-pad to the longest waveform of the batch; ``length`` lets the model mask the padding frames."""
    lengths = torch.tensor([item.waveform.numel() for item in items])
    waveform = torch.zeros(len(items), int(lengths.max()))
    for row, item in enumerate(items):
        waveform[row, : item.waveform.numel()] = item.waveform
    return {
        "waveform": waveform,
        "length": lengths,
        "emotion": torch.tensor([item.emotion for item in items]),
        "corpus": [item.corpus for item in items],
        "key": [item.key for item in items],
    }


def train_subset(clips: Sequence[Clip], fraction: float, seed: int) -> list[Clip]:
    """Keep ``fraction`` of the training clips per corpus × speaker × emotion (at least one each), val and test
    untouched; augmented copies follow their source clip.

    Each group is shuffled by ``seed`` alone and cut at its first ``fraction``, so at one seed a smaller fraction is
    a subset of a larger one, and every variant trained at that seed sees the same clips.
    """
    if not 0 < fraction <= 1:
        raise FinserError(f"datamodule.train_fraction={fraction}: expected a fraction in (0, 1], e.g. 0.1")
    groups: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    for clip in clips:
        if clip.split == "train" and split_tag(clip.path)[1] == "original":
            groups[(clip.corpus, clip.speaker, clip.emotion)].append(clip.path)
    kept = set()
    for key, paths in sorted(groups.items()):
        order = sorted(paths)
        random.Random("-".join((str(seed), *key))).shuffle(order)
        kept.update(order[: max(1, round(fraction * len(order)))])
    return [clip for clip in clips if clip.split != "train" or split_tag(clip.path)[0] in kept]


def class_counts(emotions: Sequence[int], n_classes: int) -> torch.Tensor:
    """Clips per emotion index (zeros for emotions a set lacks)."""
    counts = Counter(emotions)
    return torch.tensor([counts.get(index, 0) for index in range(n_classes)], dtype=torch.float32)


def balanced_sampler(emotions: Sequence[int], seed: int) -> EpochSampler:
    """Draw clips with probability 1 / (their emotion's count): every emotion equally often per epoch on average."""
    counts = class_counts(emotions, max(emotions) + 1)
    return EpochSampler(len(emotions), seed, weights=1.0 / counts[torch.tensor(emotions)])


def report_unlearnable_emotions(emotions_per_set: Mapping[str, Sequence[int]], names: Sequence[str]) -> None:
    """Warn about emotions that are scored but never trained on (a corpus without them, or a split that put every
    speaker of one into test): the model cannot predict them, so each such clip counts as an error."""
    trained = set(emotions_per_set["train"])
    for name, emotions in emotions_per_set.items():
        missing = sorted(set(emotions) - trained)
        if name != "train" and missing:
            labels = ", ".join(names[index] for index in missing)
            log.warning(
                "%s has clips of %s but train has none: they cannot be learned, so those clips count as errors in "
                "%s's accuracy and F1 (add a corpus that has them, or compare on the emotions both share)",
                name,
                labels,
                name,
            )


class UtteranceDataModule(L.LightningDataModule):
    """Train/val/test clips of one corpus (or a union), split by ``split``, plus each evaluation corpus as a test set.

    Batches are dicts: ``waveform`` (B, samples), ``length`` (B,), ``emotion`` (B,) indices into ``emotions`` (the
    dataset's label set, ``dataset.emotions``; every clip's emotion must be one of them), ``corpus`` (list of B
    names, for per-corpus metrics on a union), ``key`` (list of B clip paths).
    """

    def __init__(
        self,
        clips: Sequence[Clip],
        split: Callable[[Sequence[Clip]], list[Clip]],
        eval_clips: Mapping[str, Sequence[Clip]] | None = None,
        batch_size: int = 32,
        num_workers: int = 0,
        audio: AudioSpec | None = None,
        cache_dir: str | None = None,
        augment_seed: int = 0,
        balanced_sampling: bool = False,
        seed: int = 0,
        train_fraction: float = 1.0,
        emotions: Sequence[str] = EMOTIONS,
    ) -> None:
        """``audio`` shapes every clip (default: the study's crop); ``cache_dir`` reads clips from a decoded cache
        on disk instead of RAM; ``seed`` orders the training clips of each epoch and, with ``train_fraction`` below
        1, draws the training subset (:func:`train_subset`)."""
        super().__init__()
        self.emotions = check_emotions(emotions)
        check_labels(clips, self.emotions, "the dataset")
        self.clips = train_subset(split(clips), train_fraction, seed)
        self.eval_clips = {
            name: within_emotions(members, self.emotions, f"eval_datasets.{name}")
            for name, members in (eval_clips or {}).items()
        }
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.spec = audio or STUDY_CROP
        self.cache = DecodedCache(cache_dir, self.spec, augment_seed) if cache_dir else None
        self.augment_seed = augment_seed
        self.balanced_sampling = balanced_sampling
        self.seed = seed
        self.sets: dict[str, UtteranceSet] = {}
        self.test_set_names = ["test", *sorted(self.eval_clips)]

    def _load(self, clips: Sequence[Clip]) -> UtteranceSet:
        if self.cache is None:
            return UtteranceSet(load_clips(clips, audio=self.spec, seed=self.augment_seed), self.emotions)
        return CachedUtteranceSet(self.cache, cached_usable(self.cache, clips), self.emotions)

    def setup(self, stage: str | None = None) -> None:
        if self.sets:
            return
        for name, clips in named_sets(self.clips, self.eval_clips).items():
            self.sets[name] = self._load(clips)
        log.info("clips per set: %s", {name: len(clips) for name, clips in self.sets.items()})
        emotions_per_set = {name: utterances.emotions() for name, utterances in self.sets.items()}
        report_unlearnable_emotions(emotions_per_set, self.emotions)

    def train_class_counts(self) -> torch.Tensor:
        """Training clips per emotion, for class-weighted losses."""
        self.setup()
        return class_counts(self.sets["train"].emotions(), len(self.emotions))

    def _loader(self, name: str, shuffle: bool = False) -> DataLoader:
        sampler = None
        if shuffle and self.balanced_sampling:
            sampler = balanced_sampler(self.sets[name].emotions(), self.seed)
        elif shuffle:
            sampler = EpochSampler(len(self.sets[name]), self.seed)
        return (ResumableLoader if shuffle else DataLoader)(
            self.sets[name],
            batch_size=self.batch_size,
            sampler=sampler,
            collate_fn=collate,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> list[DataLoader]:
        return [self._loader(name) for name in self.test_set_names]

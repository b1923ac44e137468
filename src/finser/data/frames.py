"""Frame-level data for FIN pre-training: every 2048-sample window (hop 512) of every clip, as views."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from finser.data.audio import HOP_LENGTH, N_FFT, AudioError, AudioSpec
from finser.data.augment import render
from finser.data.cache import DecodedCache
from finser.data.labels import Clip
from finser.data.sampling import EpochSampler, ResumableLoader
from finser.errors import FinserError

log = logging.getLogger(__name__)


def load_clips(
    clips: Sequence[Clip], *, audio: AudioSpec | None = None, seed: int = 0
) -> list[tuple[Clip, np.ndarray]]:
    """Decode clips in memory, skipping the unusable ones with a warning that names each file and its reason.

    With ``audio`` each is rendered to that spec (crop, band limit), else at full length; an augmented copy (path
    ``...#aug=noise``) gets its version's audio and a cut (``...#t=1.5,3.2``) its segment either way. Runs with a
    cache read their clips through :class:`DecodedCache` instead.
    """
    loaded, skipped = [], []
    for clip in clips:
        try:
            loaded.append((clip, render(clip.path, audio or AudioSpec(), seed)))
        except AudioError as error:
            skipped.append(str(error))
    for reason in skipped:
        log.warning("skipped %s", reason)
    if skipped:
        log.warning("skipped %d of %d clips (reasons above)", len(skipped), len(clips))
    return loaded


def stacked(batch: torch.Tensor) -> torch.Tensor:
    """The DataLoader's collate: the frame sets' ``__getitems__`` already returns the stacked batch (B, 2048)."""
    return batch


class FrameSet(Dataset):
    """All frames of a set of clips, stored once as one signal; item ``i`` is a (2048,) view into it.

    The DataLoader fetches a batch with ``__getitems__`` (one gather), not 256 ``__getitem__`` calls and a stack.
    """

    def __init__(self, signals: Sequence[np.ndarray]) -> None:
        if not signals:
            raise FinserError("no usable clips for this split: check the corpus and the skipped files above")
        self.signal = torch.from_numpy(np.concatenate(signals))
        starts, offset = [], 0
        for signal in signals:
            n_frames = 1 + (len(signal) - N_FFT) // HOP_LENGTH
            starts.append(offset + HOP_LENGTH * np.arange(n_frames))
            offset += len(signal)
        self.starts = torch.from_numpy(np.concatenate(starts))

    @staticmethod
    def frame_starts(lengths: Sequence[int]) -> np.ndarray:
        """(clip, start) of every whole frame, center=False: a clip of n samples has 1 + (n - 2048) // 512."""
        rows = [
            np.stack([np.full(1 + (n - N_FFT) // HOP_LENGTH, k), HOP_LENGTH * np.arange(1 + (n - N_FFT) // HOP_LENGTH)])
            for k, n in enumerate(lengths)
            if n >= N_FFT
        ]
        return np.concatenate(rows, axis=1).T if rows else np.zeros((0, 2), dtype=np.int64)

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, index: int) -> torch.Tensor:
        start = int(self.starts[index])
        return self.signal[start : start + N_FFT]

    def __getitems__(self, indices: Sequence[int]) -> torch.Tensor:
        """Frames ``indices`` as one (B, 2048) tensor: a row gather from the view of every window of the signal.

        ``index_select`` copies rows ~2× faster than advanced indexing does on this overlapping view.
        """
        starts = self.starts.index_select(0, torch.as_tensor(indices, dtype=torch.long))
        return self.signal.unfold(0, N_FFT, 1).index_select(0, starts)

    def sample(self, n_frames: int, seed: int = 0) -> torch.Tensor:
        """A deterministic random subset of frames (B, 2048): the same on every process of a distributed run."""
        generator = torch.Generator().manual_seed(seed)
        return self.__getitems__(torch.randperm(len(self), generator=generator)[:n_frames].tolist())


class CachedFrameSet(FrameSet):
    """The frames of clips held in a :class:`DecodedCache`, read from disk per batch: RAM stays flat at any scale.

    ``paths`` come from :func:`cached_usable`, which verified their entries in this process: reads are unchecked.
    """

    def __init__(self, cache: DecodedCache, paths: Sequence[str]) -> None:
        if not paths:
            raise FinserError("no usable clips for this split: check the corpus and the skipped files above")
        self.cache, self.paths = cache, list(paths)
        self.entries = [cache.entries[cache.key(path)] for path in self.paths]
        self.index = torch.from_numpy(self.frame_starts([entry.length for entry in self.entries]))
        self.starts = self.index[:, 1]

    def __getitem__(self, index: int) -> torch.Tensor:
        clip, start = (int(value) for value in self.index[index])
        return torch.from_numpy(self.cache.read_entry(self.entries[clip], start, start + N_FFT))

    def __getitems__(self, indices: Sequence[int]) -> torch.Tensor:
        """Frames ``indices`` as one (B, 2048) tensor: one read per run of touching frames of a clip, one gather.

        Frames overlap (hop 512): an in-order batch (validation, test), or a training batch of shuffled runs
        (``FrameDataModule.disk_run_frames``), reads each run's span once, 1/4 of the bytes of per-frame reads.
        The spans go back to back into one buffer, of which every frame is a window.
        """
        rows = self.index.index_select(0, torch.as_tensor(indices, dtype=torch.long)).numpy()
        order = np.lexsort((rows[:, 1], rows[:, 0]))
        clips, starts = rows[order, 0], rows[order, 1]
        # A run ends where the clip changes or the next frame starts after this one ends.
        breaks = np.flatnonzero((np.diff(clips) != 0) | (np.diff(starts) > N_FFT)) + 1
        lows, highs = np.concatenate([[0], breaks]), np.concatenate([breaks, [len(rows)]])
        firsts, lasts = starts[lows], starts[highs - 1]
        spans = [
            self.cache.read_bytes(self.entries[clip], first, last + N_FFT)
            for clip, first, last in zip(clips[lows].tolist(), firsts.tolist(), lasts.tolist(), strict=True)
        ]
        run_offsets = np.concatenate([[0], np.cumsum(lasts + N_FFT - firsts)[:-1]])
        positions = np.empty(len(rows), dtype=np.int64)
        positions[order] = starts + np.repeat(run_offsets - firsts, highs - lows)
        samples = torch.frombuffer(bytearray(b"".join(spans)), dtype=torch.float32)
        return samples.unfold(0, N_FFT, 1).index_select(0, torch.from_numpy(positions))


def named_sets(clips: Sequence[Clip], eval_clips: Mapping[str, Sequence[Clip]]) -> dict[str, list[Clip]]:
    """Split clips into train/val/test by their ``split`` field, followed by each evaluation corpus by name."""
    groups = {name: [clip for clip in clips if clip.split == name] for name in ("train", "val", "test")}
    empty = [name for name, members in groups.items() if not members]
    if empty:
        speakers = len({(clip.corpus, clip.speaker) for clip in clips})
        raise FinserError(
            f"the split leaves {' and '.join(empty)} without clips: {len(clips)} clips from {speakers} speaker(s) "
            "cannot fill train, val and test. Add clips or speakers (dataset=combined), or use split=random"
        )
    return {**groups, **{name: list(members) for name, members in eval_clips.items()}}


def cached_usable(cache: DecodedCache, clips: Sequence[Clip]) -> list[Clip]:
    """Decode clips into the cache once (verifying the entries already there) and keep the usable ones, warning with
    each skipped file's reason; a set left with none stops the run, naming the files."""
    failures = cache.ensure([clip.path for clip in clips])
    for path, reason in failures.items():
        log.warning("skipped %s: %s", path, reason)
    usable = [clip for clip in clips if clip.path not in failures]
    if failures and not usable:
        reasons = list(failures.values())
        more = f"; and {len(reasons) - 3} more (listed above)" if len(reasons) > 3 else ""
        raise FinserError(
            f"no usable clip among the {len(clips)} of this set: {'; '.join(reasons[:3])}{more}. Restore or replace "
            "those audio files (a damaged cache entry is decoded again from its source file)"
        )
    return usable


class FrameDataModule(L.LightningDataModule):
    """Train/val/test frames from one corpus, split by ``split``, plus every evaluation corpus as a test set.

    ``test_set_names`` orders the test dataloaders: "test" first, then each evaluation corpus by name.
    """

    def __init__(
        self,
        clips: Sequence[Clip],
        split: Callable[[Sequence[Clip]], list[Clip]],
        eval_clips: Mapping[str, Sequence[Clip]] | None = None,
        batch_size: int = 256,
        num_workers: int = 0,
        audio: AudioSpec | None = None,
        cache_dir: str | None = None,
        augment_seed: int = 0,
        seed: int = 0,
        ram_budget_mb: float = 1024,
        disk_run_frames: int = 16,
    ) -> None:
        """``audio`` crops and band-limits (None: full length, as decoded); ``cache_dir`` decodes into a cache on
        disk, and sets beyond ``ram_budget_mb`` are served from it (full scale), shuffled in runs of
        ``disk_run_frames`` touching frames (one read each; 1: frame by frame); ``seed`` orders each epoch's
        frames."""
        super().__init__()
        self.clips = split(clips)
        self.audio = audio
        self.cache = DecodedCache(cache_dir, audio or AudioSpec(), augment_seed) if cache_dir else None
        self.augment_seed = augment_seed
        self.seed = seed
        self.ram_left_mb = ram_budget_mb
        self.disk_run_frames = disk_run_frames
        self.eval_clips = dict(eval_clips or {})
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.sets: dict[str, FrameSet] = {}
        self.test_set_names = ["test", *sorted(self.eval_clips)]

    def setup(self, stage: str | None = None) -> None:
        if self.sets:
            return
        for name, clips in named_sets(self.clips, self.eval_clips).items():
            self.sets[name] = self._frames(clips)
        log.info("frames per set: %s", {name: len(frames) for name, frames in self.sets.items()})

    def _frames(self, clips: Sequence[Clip]) -> FrameSet:
        """From the cache into RAM while the sets fit ``ram_budget_mb`` together (a shuffled batch from RAM is one
        gather; from disk it is one read per frame, ~6× slower), else served from the cache on disk."""
        if self.cache is None:
            return FrameSet([signal for _, signal in load_clips(clips, audio=self.audio, seed=self.augment_seed)])
        paths = [clip.path for clip in cached_usable(self.cache, clips)]
        megabytes = 4 * sum(self.cache.length(path) for path in paths) / 2**20  # float32 samples
        if megabytes > self.ram_left_mb:
            return CachedFrameSet(self.cache, paths)
        self.ram_left_mb -= megabytes
        return FrameSet([self.cache.signal(path) for path in paths])

    def _loader(self, name: str, shuffle: bool) -> DataLoader:
        frames = self.sets[name]
        block = self.disk_run_frames if isinstance(frames, CachedFrameSet) else 1
        return (ResumableLoader if shuffle else DataLoader)(
            frames,
            batch_size=self.batch_size,
            sampler=EpochSampler(len(frames), self.seed, block=block) if shuffle else None,
            collate_fn=stacked,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> list[DataLoader]:
        return [self._loader(name, shuffle=False) for name in self.test_set_names]

    def sample_train_frames(self, n_frames: int) -> torch.Tensor:
        """Frames for target statistics, identical on every rank."""
        self.setup()
        return self.sets["train"].sample(n_frames)

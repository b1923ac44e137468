"""Frame-level data for FIN pre-training: every 2048-sample window (hop 512) of every clip, as views."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from finser.data.audio import AudioError, load_audio
from finser.data.labels import Clip
from finser.errors import FinserError

log = logging.getLogger(__name__)

N_FFT = 2048
HOP_LENGTH = 512


def load_clips(
    clips: Sequence[Clip], loader: Callable[[str], np.ndarray] = load_audio
) -> list[tuple[Clip, np.ndarray]]:
    """Decode clips, skipping the unusable ones with a warning that names each file and its reason."""
    loaded, skipped = [], []
    for clip in clips:
        try:
            loaded.append((clip, loader(clip.path)))
        except AudioError as error:
            skipped.append(str(error))
    for reason in skipped:
        log.warning("skipped %s", reason)
    if skipped:
        log.warning("skipped %d of %d clips (reasons above)", len(skipped), len(clips))
    return loaded


class FrameSet(Dataset):
    """All frames of a set of clips, stored once as one signal; item ``i`` is a (2048,) view into it."""

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

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, index: int) -> torch.Tensor:
        start = int(self.starts[index])
        return self.signal[start : start + N_FFT]

    def sample(self, n_frames: int, seed: int = 0) -> torch.Tensor:
        """A deterministic random subset of frames (B, 2048): the same on every process of a distributed run."""
        generator = torch.Generator().manual_seed(seed)
        chosen = torch.randperm(len(self), generator=generator)[:n_frames]
        return torch.stack([self[int(index)] for index in chosen])


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
    ) -> None:
        super().__init__()
        self.clips = split(clips)
        self.eval_clips = dict(eval_clips or {})
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.sets: dict[str, FrameSet] = {}
        self.test_set_names = ["test", *sorted(self.eval_clips)]

    def setup(self, stage: str | None = None) -> None:
        if self.sets:
            return
        for name in ("train", "val", "test"):
            members = [clip for clip in self.clips if clip.split == name]
            self.sets[name] = FrameSet([signal for _, signal in load_clips(members)])
        for name, clips in self.eval_clips.items():
            self.sets[name] = FrameSet([signal for _, signal in load_clips(clips)])
        log.info("frames per set: %s", {name: len(frames) for name, frames in self.sets.items()})

    def _loader(self, name: str, shuffle: bool) -> DataLoader:
        return DataLoader(
            self.sets[name],
            batch_size=self.batch_size,
            shuffle=shuffle,
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

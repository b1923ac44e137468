"""FIN frames: a batch fetched at once equals the frames fetched one by one, in RAM and from the decoded cache."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch.utils.data import BatchSampler

from finser.data.audio import AudioSpec
from finser.data.cache import DecodedCache
from finser.data.frames import CachedFrameSet, FrameDataModule, FrameSet
from finser.data.labels import Clip
from finser.data.sampling import EpochSampler
from finser.errors import FinserError

from .conftest import write_wav

SECONDS = [0.3, 1.1, 0.15, 0.8, 1.4, 0.6]
SPLITS = ["train", "train", "train", "val", "train", "test"]


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> list[Clip]:
    """Noise clips at 22,050 Hz (decoded as they are), each of its own length and level."""
    folder = tmp_path_factory.mktemp("frames")
    generator = np.random.default_rng(0)
    paths = [
        write_wav(folder / f"c{k}.wav", (0.1 * (k + 1) * generator.uniform(-1, 1, int(s * 22_050))), 22_050, "FLOAT")
        for k, s in enumerate(SECONDS)
    ]
    return [
        Clip(str(path), "generated", f"s{k}", "neutral", split)
        for k, (path, split) in enumerate(zip(paths, SPLITS, strict=True))
    ]


@pytest.fixture(scope="module")
def cache(clips: list[Clip], tmp_path_factory: pytest.TempPathFactory) -> DecodedCache:
    cache = DecodedCache(tmp_path_factory.mktemp("cache"), AudioSpec())
    assert cache.ensure([clip.path for clip in clips]) == {}
    return cache


def frame_sets(clips: list[Clip], cache: DecodedCache) -> tuple[FrameSet, CachedFrameSet]:
    paths = [clip.path for clip in clips]
    return FrameSet([cache.signal(path) for path in paths]), CachedFrameSet(cache, paths)


def one_by_one(frames: FrameSet, indices: list[int]) -> torch.Tensor:
    return torch.stack([frames[index] for index in indices])


def index_lists(n_frames: int) -> list[list[int]]:
    """Shuffled (frames of every clip, some twice), in order (runs of overlapping frames), and a single frame."""
    generator = np.random.default_rng(1)
    shuffled = generator.integers(0, n_frames, 300).tolist()
    return [shuffled, list(range(n_frames)), list(range(n_frames - 1, 5, -3)), [7]]


def test_batched_fetch_equals_stacking_single_frames(clips: list[Clip], cache: DecodedCache) -> None:
    in_ram, cached = frame_sets(clips, cache)
    assert len(in_ram) == len(cached) == sum(1 + (int(s * 22_050) - 2048) // 512 for s in SECONDS)
    lists = index_lists(len(cached))
    assert len(set(cached.index[lists[0], 0].tolist())) == len(SECONDS)  # frames of every clip
    for indices in lists:
        expected = one_by_one(in_ram, indices)
        for frames in (in_ram, cached):
            batch = frames.__getitems__(indices)
            assert batch.shape == (len(indices), 2048) and batch.dtype == torch.float32 and batch.is_contiguous()
            assert torch.equal(batch, expected)
            assert torch.equal(batch, one_by_one(frames, indices))


def test_sample_is_a_deterministic_batch_of_distinct_frames(clips: list[Clip], cache: DecodedCache) -> None:
    in_ram, cached = frame_sets(clips, cache)
    chosen = torch.randperm(len(in_ram), generator=torch.Generator().manual_seed(0))[:50].tolist()
    assert torch.equal(in_ram.sample(50), one_by_one(in_ram, chosen))
    assert torch.equal(cached.sample(50), in_ram.sample(50))


TRAIN_MB = 4 * sum(int(s * 22_050) for s, split in zip(SECONDS, SPLITS, strict=True) if split == "train") / 2**20


@pytest.mark.parametrize(
    ("cached", "ram_budget_mb", "on_disk"),
    [
        (False, 0, set()),  # decoded straight into RAM
        (True, 1024, set()),  # through the cache, every set fits the budget
        (True, TRAIN_MB, {"val", "test"}),  # the budget is shared: train takes it all
        (True, 0, {"train", "val", "test"}),  # served from the cache on disk
    ],
)
def test_data_module_loaders_yield_the_per_item_batches(
    clips: list[Clip], cache: DecodedCache, cached: bool, ram_budget_mb: float, on_disk: set[str]
) -> None:
    """The same batches as fetching frames one by one in the sampler's order, epoch after epoch."""
    module = FrameDataModule(
        [dataclasses.replace(clip, split="") for clip in clips],
        lambda members: [dataclasses.replace(clip, split=split) for clip, split in zip(members, SPLITS, strict=True)],
        batch_size=16,
        cache_dir=str(cache.folder.parent) if cached else None,
        seed=3,
        ram_budget_mb=ram_budget_mb,
    )
    module.setup()
    assert {name for name, frames in module.sets.items() if isinstance(frames, CachedFrameSet)} == on_disk
    train = module.sets["train"]
    for epoch in (0, 1):
        loader = module.train_dataloader()
        loader.sampler.set_epoch(epoch)
        block = module.disk_run_frames if "train" in on_disk else 1
        order = BatchSampler(EpochSampler(len(train), 3, block=block), 16, drop_last=False)
        order.sampler.set_epoch(epoch)
        batches = list(loader)
        assert len(batches) == len(order) > 1
        for batch, indices in zip(batches, order, strict=True):
            assert torch.equal(batch, one_by_one(train, indices))
    for name, loader in [("val", module.val_dataloader()), ("test", module.test_dataloader()[0])]:
        frames = module.sets[name]
        assert torch.equal(torch.cat(list(loader)), one_by_one(frames, list(range(len(frames)))))


def test_a_block_sampler_shuffles_runs_of_consecutive_items_each_once_per_epoch() -> None:
    n_items, block = 103, 8  # 12 whole blocks and a short one of 7
    sampler = EpochSampler(n_items, seed=3, block=block)
    orders = []
    for epoch in (0, 1):
        sampler.set_epoch(epoch)
        order = list(sampler)
        assert sorted(order) == list(range(n_items))
        position, block_starts = 0, []
        while position < n_items:
            start = order[position]
            length = min(block, n_items - start)
            assert start % block == 0 and order[position : position + length] == list(range(start, start + length))
            block_starts.append(start)
            position += length
        assert block_starts != sorted(block_starts), "the blocks are shuffled"
        assert order == list(sampler), "the order depends on (seed, epoch) alone"
        orders.append(order)
    assert orders[0] != orders[1]
    with pytest.raises(FinserError, match="block"):
        EpochSampler(10, seed=0, weights=torch.ones(10), block=4)
